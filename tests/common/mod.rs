//! Shared harness for integration tests: a real server on 127.0.0.1:0 in its own
//! thread and actix System, and a tokio-tungstenite client with timeouts everywhere.
//! `process`: the real binary as a child process; `nats`: a real nats-server with
//! JetStream (issue 11); `cluster`: a cluster node's config and joins.
#![allow(dead_code)]

pub(crate) mod cluster;
pub(crate) mod nats;
pub(crate) mod process;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use simcast::config::{Config, TokenConfig};
use simcast::protocol::Role;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) const OPERATOR: &str = "op-token";
pub(crate) const VIEWER: &str = "viewer-token";
/// Upper bound for any single wait in a test: generous, so a loaded CI machine does not
/// flake, while a hang still fails in bounded time.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A small, fast world with one operator and one viewer token.
pub(crate) fn test_config() -> Config {
    let mut c = Config::default();
    c.auth.tokens = vec![
        TokenConfig {
            token: OPERATOR.into(),
            role: Role::Operator,
            name: None,
        },
        TokenConfig {
            token: VIEWER.into(),
            role: Role::Viewer,
            name: None,
        },
    ];
    c.sim.characters = 30;
    c.sim.tick_rate = 20.0;
    c.server.workers = 2;
    c.persistence.dir = scratch_dir("test").display().to_string();
    c
}

/// A fresh, empty directory for one test's files: the one way the tests make one. It
/// lives under cargo's scratch space for integration tests (`CARGO_TARGET_TMPDIR`,
/// inside `target/`), so runs do not pile directories up in /tmp and `cargo clean`
/// removes them; `tempfile` makes the name unique.
pub(crate) fn scratch_dir(tag: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("simcast-{tag}-"))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch dir")
        .keep()
}

pub(crate) struct TestServer {
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    pub sim: actix::Addr<simcast::sim::actor::Simulation>,
    pub broker: actix::Addr<simcast::broker::Broker>,
}

impl TestServer {
    pub(crate) fn start(config: Config) -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix::System::new();
            system.block_on(async move {
                let mut running = simcast::start(listener, config).expect("server starts");
                let arbiters = std::mem::take(&mut running.arbiters);
                tx.send((
                    running.addr,
                    running.handle(),
                    running
                        .sim
                        .clone()
                        .expect("a standalone server has a simulation"),
                    running.broker.clone(),
                ))
                .expect("report address");
                let _ = running.server.await;
                for a in arbiters {
                    a.stop();
                }
            });
        });
        let (addr, handle, sim, broker) = rx.recv_timeout(WAIT).expect("server started");
        TestServer {
            addr,
            handle,
            thread: Some(thread),
            sim,
            broker,
        }
    }

    pub(crate) fn ws_url(&self, token: Option<&str>) -> String {
        match token {
            Some(t) => format!("ws://{}/ws?token={}", self.addr, t),
            None => format!("ws://{}/ws", self.addr),
        }
    }

    pub(crate) fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Connects and reads `welcome` and `snapshot`.
    pub(crate) async fn client(&self, token: &str) -> (Client, Value, Value) {
        let mut c = Client::connect(&self.ws_url(Some(token))).await;
        let welcome = c.next_json().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        let snapshot = c.next_of("snapshot").await;
        (c, welcome, snapshot)
    }

    pub(crate) fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            let handle = self.handle.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(handle.stop(false));
            })
            .join()
            .ok();
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) struct Client {
    pub ws: Ws,
}

/// How a connection ended, as the client saw it.
#[derive(Debug, PartialEq)]
pub(crate) enum Ended {
    Closed(u16, String),
    /// The TCP connection ended without a close frame.
    Dropped,
}

/// Runs a command and returns its reply's data; anything but a `reply` fails the test.
pub(crate) async fn ok(c: &mut Client, id: &str, cmd: &str, args: Value) -> Value {
    let r = c.command(id, cmd, args).await;
    assert_eq!(r["type"], "reply", "{cmd}: {r}");
    r["data"].clone()
}

/// The live world now: the `snapshot` command's reply data (its `snapshot` frame read too).
pub(crate) async fn live(c: &mut Client) -> Value {
    let data = ok(c, "live", "snapshot", json!({})).await;
    c.next_of("snapshot").await;
    data
}

/// The next `breakpoint_hit` item's data. Read it from a client that sends no commands:
/// a client waiting for a reply skips the batches before it.
pub(crate) async fn next_hit(c: &mut Client) -> Value {
    loop {
        let v = c.next_json().await;
        let items = v["data"].as_array().cloned().unwrap_or_default();
        let hit = items
            .iter()
            .find(|i| i["data"]["event_type"] == "breakpoint_hit");
        if let Some(item) = hit {
            return item["data"]["data"].clone();
        }
    }
}

impl Client {
    pub(crate) async fn connect(url: &str) -> Client {
        Self::connect_with(url.into_client_request().expect("request")).await
    }

    pub(crate) async fn connect_with(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Client {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("connect in time")
            .expect("handshake");
        Client { ws }
    }

    pub(crate) async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_owned()))
            .await
            .expect("send");
    }

    pub(crate) async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(bytes.to_vec()))
            .await
            .expect("send");
    }

    pub(crate) async fn send_json(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    /// Next text frame (JSON or not), skipping control frames; panics on close/timeout.
    pub(crate) async fn next_text(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, self.ws.next())
                .await
                .expect("a message in time")
                .expect("stream open")
                .expect("frame");
            match msg {
                Message::Text(t) => return t,
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => continue,
            }
        }
    }

    pub(crate) async fn next_json(&mut self) -> Value {
        let t = self.next_text().await;
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
    }

    /// Next object of the given type, skipping others.
    pub(crate) async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let v = self.next_json().await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Next object carrying the given command id (reply or error).
    pub(crate) async fn next_with_id(&mut self, id: &str) -> Value {
        loop {
            let v = self.next_json().await;
            if v["id"] == id {
                return v;
            }
        }
    }

    /// Sends a command and returns the `reply` or `error` with its id.
    pub(crate) async fn command(&mut self, id: &str, cmd: &str, args: Value) -> Value {
        self.send_json(json!({"type": "command", "id": id, "cmd": cmd, "args": args}))
            .await;
        self.next_with_id(id).await
    }

    /// Reads until the server ends the connection; returns how.
    pub(crate) async fn ended(&mut self) -> Ended {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => panic!("connection not closed in time"),
                Ok(None) | Ok(Some(Err(_))) => return Ended::Dropped,
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    return Ended::Closed(u16::from(frame.code), frame.reason.to_string())
                }
                Ok(Some(Ok(Message::Close(None)))) => return Ended::Closed(1005, String::new()),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub(crate) async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

pub(crate) fn close_code(e: &Ended) -> u16 {
    match e {
        Ended::Closed(code, _) => *code,
        Ended::Dropped => 0,
    }
}

pub(crate) fn _unused(_: CloseCode) {}

/// Splits a raw HTTP/1.1 response into status, head (lower-cased, for header checks)
/// and body.
pub(crate) fn parse_response(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// One HTTP request (reqwest, a fresh connection each time); returns the status, the
/// head (status line and headers, lower-cased, for header checks) and the body. Status
/// 0 when no HTTP answer came within [`WAIT`].
pub(crate) async fn http_full(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let client = reqwest::Client::builder()
        .timeout(WAIT)
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client
        .request(method, format!("http://{addr}{path}"))
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    // No HTTP answer at all (a TLS port, a closed socket): status 0, as a client sees it.
    let Ok(resp) = req.send().await else {
        return (0, String::new(), String::new());
    };
    let status = resp.status().as_u16();
    let mut head = format!("http/1.1 {status}\r\n");
    for (k, v) in resp.headers() {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or("")));
    }
    let body = resp.text().await.expect("body in time");
    (status, head.to_ascii_lowercase(), body)
}

/// [`http_full`] without the head.
/// `POST /api/command` with `body` (a command object) and a Bearer `token`; returns the
/// status and the body of the answer.
pub(crate) async fn post_command(addr: SocketAddr, token: &str, body: &Value) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    http(addr, "POST", "/api/command", &headers, &body.to_string()).await
}

pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let (status, _, body) = http_full(addr, method, path, headers, body).await;
    (status, body)
}

/// How often the `wait_*` helpers look again. Only the pace of a poll: each wait ends
/// when its condition holds, or fails at its deadline.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` every [`POLL`] until it returns `Some`, and returns that; fails the test
/// with `what` and the last thing `probe` reported once [`WAIT`] has passed, so a
/// condition that never comes is a failure, not a hang.
pub(crate) async fn wait_until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let last = match probe().await {
            Ok(v) => return v,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "waited {WAIT:?} for {what}; last seen: {last}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A sample's value in Prometheus text: `name` alone sums every label set (absent: none
/// reported yet); a full sample such as `simcast_evictions_total{reason="slow"}` is that
/// line's value.
pub(crate) fn metric_in(text: &str, sample: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(sample)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The server's `/metrics` text, read with the operator token.
pub(crate) async fn metrics_text(addr: SocketAddr) -> String {
    let auth = format!("Bearer {OPERATOR}");
    let (status, body) = http(addr, "GET", "/metrics", &[("Authorization", &auth)], "").await;
    assert_eq!(status, 200, "/metrics: {body}");
    body
}

/// One sample from `/metrics` (see [`metric_in`]); a labelled counter not counted yet
/// reads 0.
pub(crate) async fn metric(addr: SocketAddr, sample: &str) -> f64 {
    metric_in(&metrics_text(addr).await, sample).unwrap_or(0.0)
}

/// Waits until the `/metrics` sample satisfies `want`; returns its value.
pub(crate) async fn wait_for_metric(
    addr: SocketAddr,
    sample: &str,
    want: impl Fn(f64) -> bool,
) -> f64 {
    wait_until(&format!("{sample} to reach the expected value"), || async {
        let v = metric(addr, sample).await;
        if want(v) {
            Ok(v)
        } else {
            Err(format!("{sample} = {v}"))
        }
    })
    .await
}

/// Waits until the broker has flushed a batch with a seq of at least `seq`
/// (`simcast_seq`); returns the seq it saw.
pub(crate) async fn wait_for_seq(addr: SocketAddr, seq: u64) -> u64 {
    wait_for_metric(addr, "simcast_seq", |s| s >= seq as f64).await as u64
}
