//! Graceful shutdown of the real binary: SIGTERM and SIGINT close every session with
//! 1001 and the process exits in bounded time, even with a client that never reads.

mod common;
use common::process::{temp_dir, ServerProcess};
use common::{Client, Ended, OPERATOR};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn start(tag: &str) -> ServerProcess {
    let dir = temp_dir(&format!("shutdown-{tag}"));
    let config = format!(
        "[[auth.tokens]]\ntoken = \"{OPERATOR}\"\nrole = \"operator\"\n[sim]\ncharacters = 2000\ntick_rate = 50.0\n[persistence]\ndir = {:?}\n",
        dir.join("data").display().to_string()
    );
    ServerProcess::start(&dir, &config, &[]).expect("server starts")
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
    let mut proc = start(&sig.to_string());
    let addr = proc.addr.clone();
    let mut c = Client::connect(&format!("ws://{addr}/ws?token={OPERATOR}")).await;
    c.next_of("snapshot").await;
    let _jam = jammed(&addr);
    tokio::time::sleep(Duration::from_millis(1500)).await; // let it jam
    let started = Instant::now();
    proc.signal(sig);
    assert_eq!(
        c.ended().await,
        Ended::Closed(1001, "Server shutting down".into())
    );
    let status = proc.wait_exit(Duration::from_secs(10));
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
