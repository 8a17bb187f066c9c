//! Graceful shutdown of the real binary: SIGTERM and SIGINT close every session with
//! 1001 and the process exits in bounded time, even with a client that never reads.

mod common;
use common::{Client, Ended, OPERATOR};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_simcast");

struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(tag: &str) -> (Proc, String) {
    let dir = std::env::temp_dir().join(format!("simcast-shutdown-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[[auth.tokens]]\ntoken = \"{OPERATOR}\"\nrole = \"operator\"\n[sim]\ncharacters = 2000\ntick_rate = 50.0\n[persistence]\ndir = {:?}\n",
            dir.display().to_string()
        ),
    )
    .expect("config");
    let mut child = Command::new(BIN)
        .args([
            "--config",
            &config.display().to_string(),
            "--bind",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("banner");
    let url = line
        .trim()
        .strip_prefix("dashboard: ")
        .expect("banner line")
        .to_owned();
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("addr")
        .to_owned();
    (Proc(child), addr)
}

fn signal(p: &Proc, sig: i32) {
    // SAFETY: sends a signal to the child we started, by its PID.
    let rc = unsafe { libc::kill(p.0.id() as i32, sig) };
    assert_eq!(rc, 0);
}

fn wait_exit(p: &mut Proc, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = p.0.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw WebSocket client that subscribes to the heavy topic and never reads.
fn jammed(addr: &str) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET /ws?token={OPERATOR} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("handshake");
    let mut b = [0u8; 12];
    s.read_exact(&mut b).expect("response");
    assert_eq!(&b, b"HTTP/1.1 101");
    let payload = br#"{"type":"subscribe","topics":["character_update"]}"#;
    let mut frame = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    s.write_all(&frame).expect("frame");
    s
}

async fn closes_all_with_1001(sig: i32) {
    let (mut proc, addr) = start(&sig.to_string());
    let mut c = Client::connect(&format!("ws://{addr}/ws?token={OPERATOR}")).await;
    c.next_of("snapshot").await;
    let _jam = jammed(&addr);
    tokio::time::sleep(Duration::from_millis(1500)).await; // let it jam
    let started = Instant::now();
    signal(&proc, sig);
    assert_eq!(
        c.ended().await,
        Ended::Closed(1001, "Server shutting down".into())
    );
    let status = wait_exit(&mut proc, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sigterm_closes_sessions_with_1001_and_exits_despite_a_jammed_client() {
    closes_all_with_1001(libc::SIGTERM).await;
}

#[tokio::test]
async fn sigint_does_the_same() {
    closes_all_with_1001(libc::SIGINT).await;
}
