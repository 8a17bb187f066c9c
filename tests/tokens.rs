//! Tokens reload on SIGHUP without a restart: the new list takes effect for new
//! connections, the old tokens stop working.

mod common;
use common::process::{temp_dir, ServerProcess};
use common::{close_code, wait_until, Client};
use std::time::{Duration, Instant};

fn config(data: &std::path::Path, token: &str) -> String {
    format!(
        "[[auth.tokens]]\ntoken = \"{token}\"\nrole = \"operator\"\n[sim]\ncharacters = 20\n[persistence]\ndir = {:?}\n",
        data.display().to_string()
    )
}

async fn welcomed(addr: &str, token: &str) -> bool {
    let mut c = Client::connect(&format!("ws://{addr}/ws?token={token}")).await;
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::StreamExt::next(&mut c.ws),
    )
    .await;
    match first {
        Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => t.contains("welcome"),
        _ => false,
    }
}

#[tokio::test]
async fn sighup_reloads_tokens() {
    let dir = temp_dir("tokens");
    let data = dir.join("data");
    let proc = ServerProcess::start(&dir, &config(&data, "first-token"), &[]).expect("starts");
    let addr = proc.addr.clone();
    assert!(welcomed(&addr, "first-token").await);

    std::fs::write(dir.join("config.toml"), config(&data, "second-token")).expect("write");
    proc.signal(libc::SIGHUP);
    wait_until("the reloaded token to be accepted", || {
        let addr = addr.clone();
        async move {
            match welcomed(&addr, "second-token").await {
                true => Ok(()),
                false => Err("refused".to_owned()),
            }
        }
    })
    .await;
    let mut old = Client::connect(&format!("ws://{addr}/ws?token=first-token")).await;
    assert_eq!(
        close_code(&old.ended().await),
        1008,
        "the old token is gone"
    );
}

const SECRET_OP: &str = "secret-op-7f3a";
const SECRET_VIEWER: &str = "secret-viewer-9c1d";
const SECRET_GUESS: &str = "secret-guess-55e0";

/// Sends a command and keeps every text that arrives until its answer.
async fn command_kept(
    c: &mut Client,
    seen: &mut Vec<String>,
    id: &str,
    cmd: &str,
    args: serde_json::Value,
) -> serde_json::Value {
    c.send_json(serde_json::json!({"type": "command", "id": id, "cmd": cmd, "args": args}))
        .await;
    loop {
        let text = c.next_text().await;
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        seen.push(text);
        if v["id"] == id {
            return v;
        }
    }
}

/// Keeps every text frame for `within`.
async fn keep_for(c: &mut Client, seen: &mut Vec<String>, within: Duration) {
    use futures_util::StreamExt;
    let deadline = Instant::now() + within;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        c.ws.next(),
    )
    .await
    {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            seen.push(t);
        }
    }
}

/// Reads an SSE stream's raw bytes until `until` appears or 5 s pass.
async fn sse_kept(addr: &str, token: &str, until: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET /events?token={token} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&raw).contains(until) && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => raw.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}

/// Every way a token can come in (query, Bearer header, first message, SSE, HTTP), good
/// and bad, with the debug log and item logging on: no message any client gets, and no
/// line of the server's log, contains a token.
#[tokio::test]
async fn no_token_in_any_message_or_in_the_log() {
    use common::{http, post_command};
    let dir = temp_dir("tokens-secret");
    let config = format!(
        "[[auth.tokens]]\ntoken = \"{SECRET_OP}\"\nrole = \"operator\"\nname = \"alice\"\n\
         [[auth.tokens]]\ntoken = \"{SECRET_VIEWER}\"\nrole = \"viewer\"\n\
         [sim]\ncharacters = 20\n[persistence]\ndir = {:?}\n",
        dir.join("data").display().to_string()
    );
    let mut server = ServerProcess::start(&dir, &config, &[]).expect("starts");
    let addr = server.addr.clone();
    let mut seen = Vec::new();

    // Operator by query string: commands of every kind, item logging on.
    let mut op = Client::connect(&format!("ws://{addr}/ws?token={SECRET_OP}")).await;
    let commands = [
        ("debug_log", serde_json::json!({"enabled": true})),
        ("pause", serde_json::json!({})),
        ("step", serde_json::json!({"ticks": 3})),
        ("set_speed", serde_json::json!({"tick_rate": 7.0})),
        ("spawn", serde_json::json!({"name": "Zed"})),
        (
            "schedule",
            serde_json::json!({"event_type": "fair", "in_ticks": 1}),
        ),
        ("inspect", serde_json::json!({"character_id": 1})),
        ("remove", serde_json::json!({"character_id": 424242})),
        ("metrics", serde_json::json!({})),
        ("snapshot", serde_json::json!({})),
        ("resume", serde_json::json!({})),
    ];
    for (i, (cmd, args)) in commands.into_iter().enumerate() {
        command_kept(&mut op, &mut seen, &i.to_string(), cmd, args).await;
    }

    // Viewer by Bearer header, and one by first message; a refused operator command.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{addr}/ws"),
    )
    .expect("request");
    let bearer = format!("Bearer {SECRET_VIEWER}").parse().expect("header");
    req.headers_mut().insert("Authorization", bearer);
    let mut viewer = Client::connect_with(req).await;
    command_kept(&mut viewer, &mut seen, "v", "pause", serde_json::json!({})).await;
    let mut late = Client::connect(&format!("ws://{addr}/ws")).await;
    late.send_text(&format!(r#"{{"type":"auth","token":"{SECRET_VIEWER}"}}"#))
        .await;
    let again = format!(r#"{{"type":"auth","token":"{SECRET_VIEWER}"}}"#);
    late.send_text(&again).await; // auth twice: an error, which must not echo it
    let reply = command_kept(&mut late, &mut seen, "a", "audit", serde_json::json!({})).await;
    assert_eq!(reply["data"]["code"], 1002, "{reply}");
    command_kept(&mut op, &mut seen, "audit", "audit", serde_json::json!({})).await;

    // Wrong tokens, every way.
    let mut wrong = Client::connect(&format!("ws://{addr}/ws?token={SECRET_GUESS}")).await;
    assert_eq!(close_code(&wrong.ended().await), 1008);
    let mut wrong = Client::connect(&format!("ws://{addr}/ws")).await;
    wrong
        .send_text(&format!(r#"{{"type":"auth","token":"{SECRET_GUESS}"}}"#))
        .await;
    assert_eq!(close_code(&wrong.ended().await), 1008);

    // SSE and HTTP.
    seen.push(sse_kept(&addr, SECRET_VIEWER, "\"presence\"").await);
    seen.push(sse_kept(&addr, SECRET_GUESS, "\r\n\r\n").await);
    let sock: std::net::SocketAddr = addr.parse().expect("addr");
    for (token, body) in [
        (SECRET_OP, serde_json::json!({"cmd": "pause"})),
        (SECRET_VIEWER, serde_json::json!({"cmd": "resume"})),
        (SECRET_GUESS, serde_json::json!({"cmd": "metrics"})),
    ] {
        seen.push(post_command(sock, token, &body).await.1);
    }
    for path in ["/api/snapshot", "/metrics"] {
        for token in [SECRET_OP, SECRET_GUESS] {
            let q = format!("{path}?token={token}");
            seen.push(http(sock, "GET", &q, &[], "").await.1);
        }
    }

    // Presence and control items reach the first connections meanwhile.
    keep_for(&mut op, &mut seen, Duration::from_millis(1500)).await;
    keep_for(&mut viewer, &mut seen, Duration::from_millis(200)).await;
    keep_for(&mut late, &mut seen, Duration::from_millis(200)).await;
    assert!(
        seen.iter().any(|t| t.contains("\"presence\"")),
        "presence was seen"
    );
    assert!(
        seen.iter().any(|t| t.contains("\"entries\"")),
        "audit was seen"
    );

    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(15));
    let log = server.log();
    assert!(log.contains("sim: "), "item logging was on:\n{log}");
    for secret in [SECRET_OP, SECRET_VIEWER, SECRET_GUESS] {
        for text in &seen {
            assert!(!text.contains(secret), "{secret} in a message: {text}");
        }
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    let audit = std::fs::read_to_string(dir.join("data/audit.jsonl")).expect("audit file");
    assert!(audit.contains("\"by\":\"alice\"") && !audit.contains("secret-"));
}
