//! Authentication, roles, `welcome` and `snapshot` shapes, origins (protocol: auth).

mod common;
use common::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn assert_envelope(v: &serde_json::Value) {
    assert!(v["type"].is_string(), "type: {v}");
    assert!(v.get("data").is_some(), "data: {v}");
    assert!(v["timestamp"].as_f64().is_some(), "timestamp: {v}");
}

#[tokio::test]
async fn token_in_query_gets_welcome_then_snapshot() {
    let server = TestServer::start(test_config());
    let (_c, welcome, snapshot) = server.client(OPERATOR).await;
    assert_envelope(&welcome);
    let w = &welcome["data"];
    assert!(w["session_id"].is_u64(), "{w}");
    assert_eq!(w["role"], "operator");
    assert_eq!(w["server"]["name"], "simcast");
    assert!(w["server"]["version"].is_string());
    assert_eq!(w["heartbeat_interval_ms"], 5000);
    assert!(w["seq"].is_u64());

    assert_envelope(&snapshot);
    let s = &snapshot["data"];
    assert!(s["tick"].is_u64());
    assert_eq!(s["paused"], false);
    assert_eq!(s["tick_rate"], 20.0);
    assert_eq!(s["resync"], false);
    assert!(s["seq"].is_u64());
    let chars = s["characters"].as_array().expect("characters");
    assert_eq!(chars.len(), 30);
    for c in chars {
        for key in ["id", "name", "state", "location", "position", "needs"] {
            assert!(c.get(key).is_some(), "character lacks {key}: {c}");
        }
        assert_eq!(c["position"].as_array().map(Vec::len), Some(2));
        for need in ["energy", "hunger", "social"] {
            let n = c["needs"][need].as_f64().expect("need");
            assert!((0.0..=100.0).contains(&n));
        }
    }
    let locs = s["locations"].as_array().expect("locations");
    assert!(locs.len() >= 5);
    for l in locs {
        assert!(l["id"].is_string() && l["name"].is_string() && l["position"].is_array());
    }
}

#[tokio::test]
async fn bearer_header_authenticates() {
    let server = TestServer::start(test_config());
    let mut req = server.ws_url(None).into_client_request().expect("req");
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {VIEWER}").parse().expect("header"),
    );
    let mut c = Client::connect_with(req).await;
    let welcome = c.next_json().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["data"]["role"], "viewer");
    assert_eq!(c.next_json().await["type"], "snapshot");
}

#[tokio::test]
async fn first_message_auth_authenticates() {
    let server = TestServer::start(test_config());
    let mut c = Client::connect(&server.ws_url(None)).await;
    c.send_json(json!({"type": "auth", "token": OPERATOR}))
        .await;
    let welcome = c.next_json().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["data"]["role"], "operator");
    assert_eq!(c.next_json().await["type"], "snapshot");
    // A second auth is refused with 1002 and the connection stays.
    c.send_json(json!({"type": "auth", "token": OPERATOR}))
        .await;
    let err = c.next_of("error").await;
    assert_eq!(err["data"]["code"], 1002);
    c.send_json(json!({"type": "heartbeat"})).await;
    assert_eq!(c.next_of("heartbeat").await["type"], "heartbeat");
}

#[tokio::test]
async fn invalid_token_closes_1008_every_way() {
    let server = TestServer::start(test_config());
    let mut c = Client::connect(&server.ws_url(Some("wrong"))).await;
    assert_eq!(c.ended().await, Ended::Closed(1008, "Invalid token".into()));

    let mut req = server.ws_url(None).into_client_request().expect("req");
    req.headers_mut()
        .insert("Authorization", "Bearer nope".parse().expect("header"));
    let mut c = Client::connect_with(req).await;
    assert_eq!(c.ended().await, Ended::Closed(1008, "Invalid token".into()));

    let mut c = Client::connect(&server.ws_url(None)).await;
    c.send_json(json!({"type": "auth", "token": "nope"})).await;
    assert_eq!(c.ended().await, Ended::Closed(1008, "Invalid token".into()));

    let mut c = Client::connect(&server.ws_url(None)).await;
    c.send_json(json!({"type": "heartbeat"})).await;
    assert_eq!(
        close_code(&c.ended().await),
        1008,
        "first message must be auth"
    );
}

#[tokio::test]
async fn no_token_by_the_deadline_closes_1008() {
    let mut config = test_config();
    config.auth.auth_timeout_ms = 300;
    let server = TestServer::start(config);
    let started = std::time::Instant::now();
    let mut c = Client::connect(&server.ws_url(None)).await;
    assert_eq!(
        c.ended().await,
        Ended::Closed(1008, "Authentication timeout".into())
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[tokio::test]
async fn viewer_is_refused_operator_commands_with_1002_and_stays() {
    let server = TestServer::start(test_config());
    let (mut c, _, _) = server.client(VIEWER).await;
    for cmd in [
        "pause",
        "resume",
        "step",
        "set_speed",
        "set_state",
        "spawn",
        "remove",
        "schedule",
        "cancel",
        "reset",
        "save",
        "debug_log",
    ] {
        let r = c.command(cmd, cmd, json!({})).await;
        assert_eq!(r["type"], "error", "{cmd}: {r}");
        assert_eq!(r["data"]["code"], 1002, "{cmd}: {r}");
    }
    // Viewer commands work.
    let r = c.command("m", "metrics", json!({})).await;
    assert_eq!(r["type"], "reply");
    assert_eq!(r["data"]["ok"], true);
    let r = c.command("i", "inspect", json!({"character_id": 1})).await;
    assert_eq!(r["type"], "reply", "{r}");
    assert_eq!(r["data"]["id"], 1);
}

#[tokio::test]
async fn foreign_origin_is_refused_when_origins_are_configured() {
    let mut config = test_config();
    config.server.allowed_origins = vec!["http://good.example".into()];
    let server = TestServer::start(config);
    let mut req = server
        .ws_url(Some(OPERATOR))
        .into_client_request()
        .expect("req");
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().expect("header"));
    let refused = tokio_tungstenite::connect_async(req).await;
    assert!(
        refused.is_err(),
        "handshake from a foreign origin must fail"
    );

    let mut req = server
        .ws_url(Some(OPERATOR))
        .into_client_request()
        .expect("req");
    req.headers_mut()
        .insert("Origin", "http://good.example".parse().expect("header"));
    let mut c = Client::connect_with(req).await;
    assert_eq!(c.next_json().await["type"], "welcome");
}

/// `welcome.data.limits` carries the values the server enforces, from its config and
/// rules (protocol 1.1), and `boot_id` names the server start.
#[tokio::test]
async fn welcome_carries_limits_and_boot_id() {
    use simcast::protocol::{MAX_STEP_TICKS, MAX_TICK_RATE, MIN_STEP_TICKS, MIN_TICK_RATE};
    let mut config = test_config();
    config.session.rate_limit_messages = 37;
    config.session.rate_limit_window_ms = 9000;
    config.server.max_message_bytes = 4096;
    let server = TestServer::start(config.clone());
    let (_a, welcome, _) = server.client(VIEWER).await;
    let w = &welcome["data"];
    assert_eq!(w["protocol"], 1, "1.1 is not complete yet: {w}");
    let limits = &w["limits"];
    assert_eq!(
        limits["rate"],
        json!({"messages": config.session.rate_limit_messages, "window_ms": config.session.rate_limit_window_ms})
    );
    assert_eq!(limits["max_message_bytes"], config.server.max_message_bytes);
    assert_eq!(
        limits["step_ticks"],
        json!({"min": MIN_STEP_TICKS, "max": MAX_STEP_TICKS})
    );
    assert_eq!(
        limits["tick_rate"],
        json!({"min": MIN_TICK_RATE, "max": MAX_TICK_RATE})
    );
    assert_eq!(limits["town_size"], simcast::sim::town::TOWN_SIZE);

    let boot = w["boot_id"].as_str().expect("boot_id").to_owned();
    assert!(
        boot.len() == 16 && boot.chars().all(|c| c.is_ascii_hexdigit()),
        "{boot}"
    );
    let (_b, again, _) = server.client(OPERATOR).await;
    assert_eq!(
        again["data"]["boot_id"], boot,
        "one boot_id per server start"
    );
    let other = TestServer::start(test_config());
    let (_c, elsewhere, _) = other.client(VIEWER).await;
    assert_ne!(
        elsewhere["data"]["boot_id"], boot,
        "a new start, a new boot_id"
    );
}
