//! The HTTP endpoints of the contract: `/healthz`, `/`, `/api/snapshot`,
//! `/api/command` and `/metrics`, with their tokens and error codes.

mod common;
use common::*;
use serde_json::{json, Value};

fn json_body(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body}"))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Posts a command body with the operator's (or the given) bearer token.
async fn post_command(server: &TestServer, token: &str, body: &str) -> (u16, Value) {
    let auth = bearer(token);
    let (status, body) = http(
        server.addr,
        "POST",
        "/api/command",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .await;
    (status, json_body(&body))
}

fn assert_error_body(v: &Value, code: u64) {
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["data"]["code"], code, "{v}");
    assert!(
        v["data"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(v["timestamp"].as_f64().is_some(), "{v}");
}

#[tokio::test]
async fn healthz_needs_no_token() {
    let server = TestServer::start(test_config());
    let (status, body) = http(server.addr, "GET", "/healthz", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(body.trim(), "ok");
}

#[tokio::test]
async fn dashboard_is_served_without_a_token() {
    let server = TestServer::start(test_config());
    let (status, head, body) = http_full(server.addr, "GET", "/", &[], "").await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(body.to_ascii_lowercase().contains("<html"), "{body}");
}

#[tokio::test]
async fn snapshot_requires_a_token() {
    let server = TestServer::start(test_config());
    let (status, _) = http(server.addr, "GET", "/api/snapshot", &[], "").await;
    assert_eq!(status, 401);
    let (status, _) = http(server.addr, "GET", "/api/snapshot?token=wrong", &[], "").await;
    assert_eq!(status, 401);

    let path = format!("/api/snapshot?token={VIEWER}");
    let (status, head, body) = http_full(server.addr, "GET", &path, &[], "").await;
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let via_query = json_body(&body);

    let auth = bearer(OPERATOR);
    let (status, body) = http(
        server.addr,
        "GET",
        "/api/snapshot",
        &[("Authorization", auth.as_str())],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let via_header = json_body(&body);

    for snap in [via_query, via_header] {
        assert_eq!(snap["type"], "snapshot", "{snap}");
        assert!(snap["timestamp"].as_f64().is_some(), "{snap}");
        let d = &snap["data"];
        assert!(d["tick"].is_u64(), "{d}");
        assert!(d["paused"].is_boolean(), "{d}");
        assert!(d["tick_rate"].as_f64().is_some(), "{d}");
        assert!(d["seq"].is_u64(), "{d}");
        assert!(d["resync"].is_boolean(), "{d}");
        assert_eq!(d["characters"].as_array().map(Vec::len), Some(30), "{d}");
        assert!(d["locations"].as_array().is_some_and(|l| !l.is_empty()));
    }
}

#[tokio::test]
async fn command_endpoint_runs_commands_and_reports_errors() {
    let server = TestServer::start(test_config());

    // The WebSocket command object as the body.
    let (status, r) = post_command(
        &server,
        OPERATOR,
        r#"{"type":"command","id":"1","cmd":"pause","args":{}}"#,
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["type"], "reply", "{r}");
    assert_eq!(r["id"], "1", "{r}");
    assert_eq!(r["data"]["ok"], true, "{r}");
    assert_eq!(r["data"]["paused"], true, "{r}");
    assert!(r["timestamp"].as_f64().is_some(), "{r}");

    // Without `type`.
    let (status, r) = post_command(
        &server,
        OPERATOR,
        r#"{"id":"2","cmd":"step","args":{"ticks":3}}"#,
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["type"], "reply", "{r}");
    assert_eq!(r["id"], "2", "{r}");
    assert_eq!(r["data"]["ok"], true, "{r}");
    let tick = r["data"]["tick"].as_u64().expect("tick");

    // The snapshot seen over HTTP agrees (the world is paused).
    let (status, r) =
        post_command(&server, VIEWER, r#"{"id":"3","cmd":"snapshot","args":{}}"#).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["id"], "3", "{r}");
    assert_eq!(r["data"]["ok"], true, "{r}");
    assert_eq!(r["data"]["tick"], tick, "{r}");
    assert_eq!(r["data"]["paused"], true, "{r}");

    // A viewer may not pause.
    let (status, r) = post_command(
        &server,
        VIEWER,
        r#"{"type":"command","id":"4","cmd":"pause","args":{}}"#,
    )
    .await;
    assert_eq!(status, 403, "{r}");
    assert_error_body(&r, 1002);
    assert_eq!(r["id"], "4", "{r}");

    // Bad JSON.
    let (status, r) = post_command(&server, OPERATOR, r#"{"type":"command","id":"5","#).await;
    assert_eq!(status, 400, "{r}");
    assert_error_body(&r, 1001);

    // Unknown character.
    let (status, r) = post_command(
        &server,
        VIEWER,
        r#"{"id":"6","cmd":"inspect","args":{"character_id":987654}}"#,
    )
    .await;
    assert_eq!(status, 400, "{r}");
    assert_error_body(&r, 1001);
    assert_eq!(r["id"], "6", "{r}");

    // A known character.
    let (status, r) = post_command(
        &server,
        VIEWER,
        r#"{"id":7,"cmd":"inspect","args":{"character_id":1}}"#,
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["id"], 7, "{r}");
    assert_eq!(r["data"]["id"], 1, "{r}");

    // No token at all.
    let (status, _) = http(
        server.addr,
        "POST",
        "/api/command",
        &[("Content-Type", "application/json")],
        &json!({"id": "8", "cmd": "metrics", "args": {}}).to_string(),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn metrics_endpoint_exposes_prometheus_text() {
    let server = TestServer::start(test_config());
    let (status, _) = http(server.addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 401);

    // Some traffic: a WebSocket client exchanging messages, and one error.
    let (mut c, _, _) = server.client(OPERATOR).await;
    c.send_json(json!({"type": "heartbeat"})).await;
    c.next_of("heartbeat").await;
    let (status, _) = post_command(&server, OPERATOR, "not json").await;
    assert_eq!(status, 400);

    let path = format!("/metrics?token={OPERATOR}");
    let (status, head, text) = http_full(server.addr, "GET", &path, &[], "").await;
    assert_eq!(status, 200, "{text}");
    assert!(head.contains("content-type: text/plain"), "{head}");
    for name in [
        "simcast_connections_total",
        "simcast_connections_active",
        "simcast_messages_sent_total",
        "simcast_messages_received_total",
        "simcast_errors_total",
    ] {
        let value = metric_in(&text, name).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        assert!(value >= 1.0, "{name} = {value}:\n{text}");
    }

    let auth = bearer(VIEWER);
    let (status, text) = http(
        server.addr,
        "GET",
        "/metrics",
        &[("Authorization", auth.as_str())],
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert!(text.contains("simcast_connections_total"), "{text}");
    c.close().await;
}
