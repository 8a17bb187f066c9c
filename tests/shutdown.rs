//! Graceful shutdown of the real binary: SIGTERM and SIGINT close every session with
//! 1001 and the process exits in bounded time, even with a client that never reads.

mod common;
use common::process::{temp_dir, ServerProcess};
use common::{Client, Ended, OPERATOR};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn start(tag: &str) -> ServerProcess {
    let dir = temp_dir(&format!("shutdown-{tag}"));
    // An outbound queue far larger than what arrives during the test: the jammed client
    // is never evicted as slow, so it is still there, jammed, when the signal comes.
    let config = format!(
        "[[auth.tokens]]\ntoken = \"{OPERATOR}\"\nrole = \"operator\"\n[sim]\ncharacters = 2000\ntick_rate = 50.0\n[session]\noutbound_queue = 100000\n[persistence]\ndir = {:?}\n",
        dir.join("data").display().to_string()
    );
    ServerProcess::start(&dir, &config, &[]).expect("server starts")
}

/// A raw WebSocket client, with a small receive buffer, that subscribes to the heavy
/// topic and never reads.
fn jammed(addr: &str) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let to: SocketAddr = addr.parse().expect("addr");
    sock.connect_timeout(&to.into(), common::WAIT)
        .expect("connect");
    let mut s: std::net::TcpStream = sock.into();
    write!(
        s,
        "GET /ws?token={OPERATOR} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("handshake");
    s.set_read_timeout(Some(common::WAIT)).expect("timeout");
    let mut b = [0u8; 12];
    s.read_exact(&mut b).expect("response");
    assert_eq!(&b, b"HTTP/1.1 101");
    let payload = br#"{"type":"subscribe","topics":["character_update"]}"#;
    let mut frame = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    s.write_all(&frame).expect("frame");
    s
}

/// Bytes the server's end of the connection `server_port` <-> `client_port` holds
/// unsent, from `/proc/net/tcp` (`tx_queue`): the kernel keeps them because the
/// client's receive window is closed. `None` while the socket is not listed.
fn server_send_queue(server_port: u16, client_port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, queues) = (f.get(1)?, f.get(2)?, f.get(4)?);
        if port(local)? != server_port || port(remote)? != client_port {
            return None;
        }
        u64::from_str_radix(queues.split(':').next()?, 16).ok()
    })
}

/// Waits until the jammed connection is backed up on the server: its socket holds at
/// least [`JAMMED_BYTES`] it cannot send, and the server still counts the connection
/// (nothing evicted it). Returns the bytes held.
async fn wait_jammed(addr: &str, jam: &std::net::TcpStream) -> u64 {
    let server: SocketAddr = addr.parse().expect("addr");
    let client_port = jam.local_addr().expect("local addr").port();
    let held = common::wait_until("the jammed connection to back up", || async {
        match server_send_queue(server.port(), client_port) {
            Some(q) if q >= JAMMED_BYTES => Ok(q),
            other => Err(format!("server send queue {other:?}")),
        }
    })
    .await;
    let text = common::metrics_text(server).await;
    assert_eq!(
        common::metric_in(&text, "simcast_connections_active"),
        Some(2.0),
        "both clients still connected while jammed:\n{text}"
    );
    assert_eq!(
        common::metric_in(&text, "simcast_evictions_total").unwrap_or(0.0),
        0.0,
        "{text}"
    );
    held
}

/// What counts as jammed: more than a few ticks of the heavy topic stuck in the
/// server's socket.
const JAMMED_BYTES: u64 = 64 * 1024;

async fn closes_all_with_1001(sig: i32) {
    let mut proc = start(&sig.to_string());
    let addr = proc.addr.clone();
    let mut c = Client::connect(&format!("ws://{addr}/ws?token={OPERATOR}")).await;
    c.next_of("snapshot").await;
    let jam = jammed(&addr);
    let held = wait_jammed(&addr, &jam).await;
    eprintln!("jammed: {held} bytes held in the server's socket");
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
