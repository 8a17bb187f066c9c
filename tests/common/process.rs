//! The real `simcast` binary as a child process: started on 127.0.0.1:0 with a config
//! file, its address read from the `dashboard:` line it prints on stdout, its log
//! (stderr) captured, signalled and killed by its PID only.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_simcast");

pub(crate) struct ServerProcess {
    child: Child,
    /// `host:port`.
    pub addr: String,
    /// The dashboard URL's base (`http://host:port` or `https://…`).
    pub url: String,
    /// The token in the printed URL.
    pub token: String,
    log: Arc<Mutex<String>>,
}

/// A fresh, empty directory for a server process's files ([`super::scratch_dir`]).
pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    super::scratch_dir(tag)
}

impl ServerProcess {
    /// Writes `config` to `dir/config.toml` and starts the binary with it. Returns the
    /// server's log when it refuses to start.
    pub(crate) fn start(dir: &Path, config: &str, extra: &[&str]) -> Result<ServerProcess, String> {
        let path = dir.join("config.toml");
        std::fs::write(&path, config).expect("config");
        let mut child = Command::new(BIN)
            .args([
                "--config",
                &path.display().to_string(),
                "--bind",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn simcast");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        let stderr = child.stderr.take().expect("stderr");
        let log_done = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let mut banner = String::new();
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let _ = reader.read_line(&mut banner);
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines().map_while(Result::ok) {});
        let Some(url) = banner.trim().strip_prefix("dashboard: ").map(str::to_owned) else {
            let _ = child.wait();
            let _ = log_done.join();
            return Err(log.lock().map(|l| l.clone()).unwrap_or_default());
        };
        let (base, token) = url.split_once("/?token=").unwrap_or((url.as_str(), ""));
        let addr = base.split("://").nth(1).unwrap_or(base).to_owned();
        Ok(ServerProcess {
            child,
            addr,
            url: base.to_owned(),
            token: token.to_owned(),
            log,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn signal(&self, sig: i32) {
        signal_child(&self.child, sig);
    }

    /// Waits for the process to exit, failing the test after `within`.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        wait_child_exit(&mut self.child, within)
    }

    /// Everything the server logged so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for a child this harness started to exit, failing the test after `within`
/// (polled every [`super::POLL`]).
pub(crate) fn wait_child_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process {} did not exit within {within:?}",
            child.id()
        );
        std::thread::sleep(super::POLL);
    }
}

/// Sends `sig` to a child this harness started (a simcast server, a nats-server), by
/// its PID: the one `kill(2)` of the tests.
pub(crate) fn signal_child(child: &Child, sig: i32) {
    // SAFETY: kill(2) takes no pointers; the PID is that of a child we spawned and have
    // not reaped yet (we hold its `Child`), so it cannot name another process.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "signal {sig} to {}", child.id());
}

/// `simcast replay --data-dir DIR [--until T]`: the replayed world's summary (JSON).
#[allow(dead_code)] // not every test binary replays
pub(crate) fn replay(data_dir: &std::path::Path, until: Option<u64>) -> serde_json::Value {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["replay", "--data-dir", &data_dir.display().to_string()]);
    if let Some(u) = until {
        cmd.args(["--until", &u.to_string()]);
    }
    let out = cmd.output().expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}
