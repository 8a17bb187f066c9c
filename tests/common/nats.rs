//! A real `nats-server` with JetStream as a child process, for the cluster tests
//! (issue 11): on a free loopback port (never 4222), with a store directory of its own
//! under the tests' scratch space, its log in a file beside it, stopped and killed by
//! the PID of the child it started. `restart` keeps the port and the store, so what
//! JetStream wrote to disk survives it. Every wait is bounded by [`super::WAIT`].

use super::process::signal_child;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the binary is when it is not on PATH (scripts/install-nats.sh prints it).
const BIN_ENV: &str = "SIMCAST_NATS_SERVER";
/// How many fresh ports `start` tries when the one it picked is taken in between.
const PORT_TRIES: usize = 3;

pub(crate) struct NatsServer {
    child: Option<Child>,
    bin: PathBuf,
    port: u16,
    /// The JetStream store (`-sd`): kept across `restart`.
    store: PathBuf,
    /// stdout and stderr of every run, appended.
    log: PathBuf,
}

/// The `nats-server` binary: `$SIMCAST_NATS_SERVER`, else the first on PATH.
pub(crate) fn nats_server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os(BIN_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{BIN_ENV}={} is not a file; run scripts/install-nats.sh",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no nats-server: not in ${BIN_ENV} nor on PATH. Run scripts/install-nats.sh \
                 (it installs one and prints its path) and export {BIN_ENV}=<that path>"
            )
        })
}

/// A port that was free a moment ago: bound on 127.0.0.1:0, then released.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    assert_ne!(port, 4222, "the tests never use NATS's default port");
    port
}

impl NatsServer {
    /// Starts a server with JetStream on a free loopback port and waits until it
    /// accepts clients with JetStream on.
    pub(crate) fn start() -> NatsServer {
        let dir = super::scratch_dir("nats");
        let mut server = NatsServer {
            child: None,
            bin: nats_server_bin(),
            port: 0,
            store: dir.join("store"),
            log: dir.join("nats-server.log"),
        };
        for _ in 0..PORT_TRIES {
            server.port = free_port();
            if server.spawn_and_wait().is_ok() {
                return server;
            }
        }
        panic!(
            "nats-server did not start in {PORT_TRIES} tries; its log:\n{}",
            server.log_text()
        );
    }

    /// `nats://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory.
    pub(crate) fn store_dir(&self) -> &Path {
        &self.store
    }

    /// Everything the server logged so far, across restarts.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit (SIGKILL if it takes longer than
    /// [`super::WAIT`]). A no-op when it is not running.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal_child(&child, libc::SIGTERM);
        let deadline = Instant::now() + super::WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "nats-server ignored SIGTERM for {:?}; its log:\n{}",
            super::WAIT,
            self.log_text()
        );
    }

    /// Stops the server (if running) and starts it again on the same port with the
    /// same store, so JetStream recovers its streams from disk.
    pub(crate) fn restart(&mut self) {
        self.stop();
        if let Err(why) = self.spawn_and_wait() {
            panic!(
                "nats-server did not come back on port {}: {why}; its log:\n{}",
                self.port,
                self.log_text()
            );
        }
    }

    /// Spawns the child on `self.port` and waits until it is ready; on failure the
    /// child is gone and the reason is returned.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.store).expect("store dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("nats log file");
        let child = Command::new(&self.bin)
            .arg("-js")
            .arg("-sd")
            .arg(&self.store)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
        let ready = self.wait_ready();
        if ready.is_err() {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        ready
    }

    /// Waits until the port answers with an INFO line that says JetStream is on.
    fn wait_ready(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + super::WAIT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("exited early ({status})"));
                }
            }
            match info_line(addr) {
                Some(info) if info.contains(r#""jetstream":true"#) => return Ok(()),
                Some(info) => return Err(format!("JetStream is off: {info}")),
                None => std::thread::sleep(Duration::from_millis(25)),
            }
        }
        Err(format!("not ready within {:?}", super::WAIT))
    }
}

/// The server's greeting (`INFO {...}`), when something accepts on `addr`.
fn info_line(addr: SocketAddr) -> Option<String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    line.starts_with("INFO ").then_some(line)
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
