//! `GET /events`: the SSE fallback — token, `id:` = seq, `Last-Event-ID` resume,
//! keep-alive comments, topics — and `POST /api/command` alongside it.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One SSE event or comment as read off the wire.
#[derive(Debug)]
enum Sse {
    Event { id: Option<u64>, data: Value },
    Comment(String),
    Retry,
}

struct SseClient {
    reader: BufReader<TcpStream>,
    pub status: u16,
}

impl SseClient {
    async fn open(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> SseClient {
        let mut stream = tokio::time::timeout(WAIT, TcpStream::connect(server.addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n",
            server.addr
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut reader = BufReader::new(stream);
        let mut status = 0;
        loop {
            let mut line = String::new();
            tokio::time::timeout(WAIT, reader.read_line(&mut line))
                .await
                .expect("headers in time")
                .expect("read");
            if status == 0 {
                status = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        SseClient { reader, status }
    }

    /// Next event or comment. The body is chunked: chunk-size lines are skipped (they are
    /// hex numbers, never `data:`/`id:`/`:`-prefixed).
    async fn next(&mut self) -> Sse {
        let mut id = None;
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
                .await
                .expect("an event in time")
                .expect("read");
            assert!(n > 0, "stream ended");
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.parse().ok();
            } else if let Some(v) = line.strip_prefix("data: ") {
                let data = serde_json::from_str(v).unwrap_or_else(|e| panic!("{e}: {v}"));
                return Sse::Event { id, data };
            } else if let Some(v) = line.strip_prefix(':') {
                return Sse::Comment(v.trim().to_owned());
            } else if line.starts_with("retry:") {
                return Sse::Retry;
            }
        }
    }

    async fn next_event(&mut self) -> (Option<u64>, Value) {
        loop {
            if let Sse::Event { id, data } = self.next().await {
                return (id, data);
            }
        }
    }

    async fn next_of(&mut self, kind: &str) -> (Option<u64>, Value) {
        loop {
            let (id, data) = self.next_event().await;
            if data["type"] == kind {
                return (id, data);
            }
        }
    }
}

#[tokio::test]
async fn events_need_a_token() {
    let server = TestServer::start(test_config());
    let (status, body) = http(server.addr, "GET", "/events", &[], "").await;
    assert_eq!(status, 401);
    let v: Value = serde_json::from_str(&body).expect("error JSON");
    assert_eq!(v["type"], "error");
    let (status, _) = http(server.addr, "GET", "/events?token=nope", &[], "").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn stream_is_welcome_snapshot_then_batches_with_seq_ids() {
    let server = TestServer::start(test_config());
    let mut sse = SseClient::open(&server, &format!("/events?token={VIEWER}"), &[]).await;
    assert_eq!(sse.status, 200);
    let (id, welcome) = sse.next_event().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["data"]["role"], "viewer");
    assert_eq!(id, None);
    let (id, snapshot) = sse.next_event().await;
    assert_eq!(snapshot["type"], "snapshot");
    let snap_seq = snapshot["data"]["seq"].as_u64().expect("seq");
    assert_eq!(id, Some(snap_seq));
    let mut prev = snap_seq;
    for _ in 0..10 {
        let (id, batch) = sse.next_of("batch").await;
        let seq = batch["seq"].as_u64().expect("seq");
        assert_eq!(id, Some(seq), "id: carries seq");
        assert_eq!(batch["from_seq"].as_u64(), Some(prev + 1), "ranges chain");
        assert!(seq > prev);
        assert_ne!(batch["data"], serde_json::json!([]), "never empty");
        prev = seq;
    }
}

#[tokio::test]
async fn bearer_header_and_topics_parameter() {
    let server = TestServer::start(test_config());
    let auth = format!("Bearer {OPERATOR}");
    let mut sse = SseClient::open(
        &server,
        "/events?topics=character_update",
        &[("Authorization", auth.as_str())],
    )
    .await;
    assert_eq!(sse.status, 200);
    let mut kinds = BTreeSet::new();
    for _ in 0..20 {
        let (_, batch) = sse.next_of("batch").await;
        for item in batch["data"].as_array().expect("items") {
            kinds.insert(item["type"].as_str().unwrap_or("").to_owned());
        }
    }
    assert_eq!(kinds, BTreeSet::from(["character_update".to_owned()]));
    let (status, body) = http(
        server.addr,
        "GET",
        "/events?token=op-token&topics=weather",
        &[],
        "",
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn last_event_id_resumes_without_gap() {
    let server = TestServer::start(test_config());
    let path = format!("/events?token={VIEWER}");
    let mut first = SseClient::open(&server, &path, &[]).await;
    let mut last = 0;
    for _ in 0..5 {
        let (id, _) = first.next_of("batch").await;
        last = id.expect("id");
    }
    drop(first);
    wait_for_seq(server.addr, last + 8).await; // batches go by while away
    let last_id = last.to_string();
    let mut again = SseClient::open(&server, &path, &[("Last-Event-ID", last_id.as_str())]).await;
    let (_, snapshot) = again.next_of("snapshot").await;
    let join = snapshot["data"]["seq"].as_u64().expect("seq");
    assert!(join > last + 2, "batches were missed while away");
    // The resumed stream's ranges start right after `last` and chain with no gap.
    let mut expected_from = last + 1;
    while expected_from <= join + 3 {
        let (id, batch) = again.next_of("batch").await;
        let seq = batch["seq"].as_u64().expect("seq");
        assert_eq!(batch["from_seq"].as_u64(), Some(expected_from), "no gap");
        assert_eq!(id, Some(seq));
        expected_from = seq + 1;
    }

    // The same through the query parameter, for a fresh EventSource.
    let mut q = SseClient::open(&server, &format!("{path}&last_event_id={last}"), &[]).await;
    let (_, batch) = q.next_of("batch").await;
    assert_eq!(batch["from_seq"].as_u64(), Some(last + 1));
}

#[tokio::test]
async fn keep_alive_comments_while_paused_and_commands_over_post() {
    let mut config = test_config();
    config.session.heartbeat_interval_ms = 200;
    config.session.client_timeout_ms = 1000;
    let server = TestServer::start(config);
    // character_update: every character gets one at least every 10 ticks, so the step
    // below is sure to have items for this stream (empty batches are never sent).
    let path = format!("/events?token={OPERATOR}&topics=character_update");
    let mut sse = SseClient::open(&server, &path, &[]).await;
    sse.next_of("snapshot").await;
    let body = json!({"type": "command", "id": "p", "cmd": "pause", "args": {}});
    let (status, reply) = post_command(server.addr, OPERATOR, &body).await;
    assert_eq!(status, 200, "{reply}");
    // Paused: nothing to deliver, but comments keep coming, and the stream outlives
    // client_timeout because the client keeps reading. The 1.6 s (past client_timeout)
    // is the thing under test, not a wait for the server.
    let mut comments = 0;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(1600) {
        if let Sse::Comment(c) = sse.next().await {
            assert_eq!(c, "keep-alive");
            comments += 1;
        }
    }
    assert!(comments >= 4, "{comments} keep-alives");
    let body = json!({"type": "command", "id": "s", "cmd": "step", "args": {"ticks": 10}});
    let (status, reply) = post_command(server.addr, OPERATOR, &body).await;
    assert_eq!(status, 200, "{reply}");
    let (_, batch) = sse.next_of("batch").await;
    assert!(batch["seq"].as_u64().is_some());
}

/// An SSE stream gets presence after its snapshot, and operators see it as `sse`.
#[tokio::test]
async fn sse_streams_get_presence_and_are_listed_as_sse() {
    let server = TestServer::start(test_config());
    let mut sse = SseClient::open(&server, &format!("/events?token={VIEWER}"), &[]).await;
    assert_eq!(sse.next_event().await.1["type"], "welcome");
    assert_eq!(sse.next_event().await.1["type"], "snapshot");
    let (id, presence) = sse.next_of("presence").await;
    assert_eq!(id, None, "presence has no seq");
    assert_eq!(presence["data"]["viewers"], 1);
    assert!(presence["data"].get("sessions").is_none(), "{presence}");
    let (mut op, _, _) = server.client(OPERATOR).await;
    let listed = op.next_of("presence").await;
    let sessions = listed["data"]["sessions"].as_array().expect("sessions");
    let listed_as: Vec<(&str, &str)> = sessions
        .iter()
        .filter_map(|s| Some((s["role"].as_str()?, s["transport"].as_str()?)))
        .collect();
    // Operators first, then viewers.
    assert_eq!(
        listed_as,
        vec![("operator", "ws"), ("viewer", "sse")],
        "{listed}"
    );
}

#[tokio::test]
async fn events_can_ask_for_compact_snapshots_and_a_bad_encoding_is_refused() {
    let server = TestServer::start(test_config());
    let path = format!("/events?token={VIEWER}&snapshot=compact");
    let mut sse = SseClient::open(&server, &path, &[]).await;
    assert_eq!(sse.status, 200);
    let (_, snapshot) = sse.next_of("snapshot").await;
    let fields = snapshot["data"]["character_fields"]
        .as_array()
        .expect("fields");
    assert_eq!(fields[0], "id");
    assert!(snapshot["data"]["characters"][0].is_array(), "{snapshot}");
    let path = format!("/events?token={VIEWER}&snapshot=tiny");
    let (status, body) = http(server.addr, "GET", &path, &[], "").await;
    assert_eq!(status, 400, "{body}");
}
