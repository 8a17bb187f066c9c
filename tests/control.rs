//! Everyone sees every control change (protocol 1.1): a state-changing command from any
//! transport is broadcast as a `control` item, in order, labelled, never with the token.

mod common;
use common::*;
use serde_json::{json, Value};

fn labelled_config() -> simcast::config::Config {
    let mut config = test_config();
    for t in &mut config.auth.tokens {
        if t.token == OPERATOR {
            t.name = Some("alice".into());
        }
    }
    config
}

/// Reads batches until the `control` item for `command` arrives; returns its data and
/// the items after it in the same frame.
async fn next_control(c: &mut Client, command: &str) -> (Value, Vec<Value>) {
    loop {
        let batch = c.next_of("batch").await;
        let items = batch["data"].as_array().cloned().unwrap_or_default();
        let at = items.iter().position(|i| {
            i["data"]["event_type"] == "control" && i["data"]["data"]["command"] == command
        });
        if let Some(at) = at {
            return (items[at]["data"]["data"].clone(), items[at + 1..].to_vec());
        }
    }
}

#[tokio::test]
async fn control_items_from_websocket_and_http_carry_the_label() {
    let server = TestServer::start(labelled_config());
    let (mut watcher, _, _) = server.client(VIEWER).await;
    let (mut op, _, _) = server.client(OPERATOR).await;

    op.command("1", "pause", json!({})).await;
    let (control, _) = next_control(&mut watcher, "pause").await;
    assert_eq!(
        control,
        json!({"command": "pause", "by": "alice", "args": {}})
    );

    let body = json!({"cmd": "set_speed", "args": {"tick_rate": 5.0}});
    let (status, reply) = post_command(server.addr, OPERATOR, &body).await;
    assert_eq!(status, 200, "{reply}");
    let (control, _) = next_control(&mut watcher, "set_speed").await;
    assert_eq!(control["by"], "alice");
    assert_eq!(control["args"]["tick_rate"], 5.0);

    // In order with what it caused: the step's control item comes before the tick's.
    watcher
        .send_json(json!({"type": "subscribe", "topics": ["character_update"]}))
        .await;
    watcher.next_of("reply").await;
    op.command("2", "step", json!({"ticks": 10})).await;
    let (control, after) = next_control(&mut watcher, "step").await;
    assert_eq!(control["by"], "alice");
    assert_eq!(control["args"]["ticks"], 10);
    assert!(
        after.iter().any(|i| i["type"] == "character_update"),
        "the stepped ticks' items follow the control item"
    );
}

#[tokio::test]
async fn an_unnamed_token_gets_a_default_label_and_no_token_is_ever_sent() {
    let server = TestServer::start(test_config());
    let (mut watcher, _, _) = server.client(VIEWER).await;
    let (mut op, _, _) = server.client(OPERATOR).await;
    op.command(
        "1",
        "schedule",
        json!({"event_type": "fair", "in_ticks": 3}),
    )
    .await;
    let mut seen = String::new();
    loop {
        let text = watcher.next_text().await;
        seen.push_str(&text);
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let control = v["data"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["data"]["event_type"] == "control"));
        if let Some(control) = control {
            assert_eq!(control["data"]["data"]["by"], "operator-1");
            assert_eq!(control["data"]["data"]["command"], "schedule");
            break;
        }
    }
    assert!(
        !seen.contains(OPERATOR) && !seen.contains(VIEWER),
        "a token was sent"
    );
}
