//! The broadcast stream: batches and seq, item shapes, subscriptions, resume, resync,
//! heartbeat, ping/pong, and validation errors that keep the connection.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Reads batches until `n` were seen; returns them.
async fn batches(c: &mut Client, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(c.next_of("batch").await);
    }
    out
}

fn items(batches: &[Value]) -> Vec<Value> {
    batches
        .iter()
        .flat_map(|b| b["data"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn batches_have_strictly_increasing_seq_and_item_fields() {
    let server = TestServer::start(test_config());
    let (mut c, _, snapshot) = server.client(OPERATOR).await;
    c.send_json(json!({"type": "subscribe", "topics": ["character_update"]}))
        .await;
    let got = batches(&mut c, 40).await;
    let snap_seq = snapshot["data"]["seq"].as_u64().expect("seq");
    let mut prev = snap_seq;
    for b in &got {
        let seq = b["seq"].as_u64().expect("batch seq");
        let from = b["from_seq"].as_u64().expect("batch from_seq");
        assert_eq!(from, prev + 1, "each range starts right after the last");
        assert!(seq >= from, "seq rises strictly");
        prev = seq;
        assert!(b["timestamp"].as_f64().is_some());
        assert!(
            !b["data"].as_array().expect("data").is_empty(),
            "never empty"
        );
    }
    let all = items(&got);
    let mut kinds = BTreeSet::new();
    for item in &all {
        assert!(item["timestamp"].as_f64().is_some(), "{item}");
        let d = &item["data"];
        let kind = item["type"].as_str().expect("type");
        kinds.insert(kind.to_owned());
        let keys: &[&str] = match kind {
            "state_change" => &[
                "character_id",
                "name",
                "old_state",
                "new_state",
                "location",
                "tick",
            ],
            "event_notification" => &["event_type", "tick", "data"],
            "character_update" => &[
                "character_id",
                "state",
                "location",
                "position",
                "needs",
                "tick",
            ],
            other => panic!("unexpected item type {other}"),
        };
        for k in keys {
            assert!(d.get(*k).is_some(), "{kind} lacks {k}: {d}");
        }
        if kind == "character_update" {
            assert_eq!(d["position"].as_array().map(Vec::len), Some(2));
            for need in ["energy", "hunger", "social"] {
                let v = d["needs"][need].as_f64().expect("need");
                assert!((0.0..=100.0).contains(&v));
            }
        }
    }
    assert!(kinds.contains("character_update"), "{kinds:?}");
    assert!(kinds.contains("state_change"), "{kinds:?}");
}

#[tokio::test]
async fn default_topics_exclude_updates_and_unsubscribe_removes() {
    let server = TestServer::start(test_config());
    let (mut c, _, _) = server.client(VIEWER).await;
    let got = batches(&mut c, 30).await;
    assert!(items(&got)
        .iter()
        .all(|i| i["type"] == "state_change" || i["type"] == "event_notification"));
    assert!(
        items(&got).iter().any(|i| i["type"] == "state_change"),
        "some state changes in 30 ticks"
    );

    c.send_json(json!({"type": "unsubscribe", "topics": ["state_change", "event_notification"]}))
        .await;
    let r = c.next_of("reply").await;
    assert_eq!(r["data"]["topics"], json!([]));
    // Ten more batches are flushed; then the heartbeat answer is the next thing that
    // arrives: no batch, since a connection never gets an empty one.
    let unsubscribed_at = metric(server.addr, "simcast_seq").await as u64;
    wait_for_seq(server.addr, unsubscribed_at + 10).await;
    c.send_json(json!({"type": "heartbeat"})).await;
    loop {
        let v = c.next_json().await;
        assert_ne!(v["type"], "batch", "nothing after unsubscribing all: {v}");
        if v["type"] == "heartbeat" {
            break;
        }
    }
}

#[tokio::test]
async fn a_tick_cut_into_many_broker_batches_arrives_as_one_frame() {
    let mut config = test_config();
    config.broker.max_batch_size = 1; // every item its own broker batch
    let server = TestServer::start(config);
    let (mut c, _, snapshot) = server.client(OPERATOR).await;
    c.send_json(json!({"type": "subscribe", "topics": ["character_update"]}))
        .await;
    let got = batches(&mut c, 20).await;
    let mut prev = snapshot["data"]["seq"].as_u64().expect("seq");
    let mut ticks_seen = BTreeSet::new();
    let mut multi = 0;
    for b in &got {
        let (from, seq) = (b["from_seq"].as_u64(), b["seq"].as_u64());
        let (from, seq) = (from.expect("from_seq"), seq.expect("seq"));
        assert_eq!(from, prev + 1);
        prev = seq;
        multi += usize::from(seq > from);
        let ticks: BTreeSet<u64> = items(std::slice::from_ref(b))
            .iter()
            .filter_map(|i| i["data"]["tick"].as_u64())
            .collect();
        for t in ticks {
            assert!(ticks_seen.insert(t), "tick {t} spread over two frames");
        }
    }
    assert!(
        multi >= 5,
        "frames cover several broker batches ({multi}/20)"
    );
}

#[tokio::test]
async fn character_topic_carries_every_item_about_that_character_only() {
    let server = TestServer::start(test_config());
    let (mut c, _, _) = server.client(OPERATOR).await;
    c.send_json(json!({"type": "unsubscribe", "topics": ["state_change", "event_notification"]}))
        .await;
    c.next_of("reply").await;
    c.send_json(json!({"type": "subscribe", "topics": ["character:3"]}))
        .await;
    let r = c.next_of("reply").await;
    assert_eq!(r["data"]["topics"], json!(["character:3"]));
    let got = batches(&mut c, 40).await;
    let all = items(&got);
    assert!(!all.is_empty(), "updates about character 3 arrive");
    assert!(all.iter().any(|i| i["type"] == "character_update"));
    for i in &all {
        let d = &i["data"];
        let about_3 = d["character_id"] == 3
            || d["data"]["characters"]
                .as_array()
                .is_some_and(|cs| cs.contains(&json!(3)));
        assert!(about_3, "item not about character 3: {i}");
    }
}

#[tokio::test]
async fn resume_sends_missed_batches_without_gap() {
    let server = TestServer::start(test_config());
    let (mut a, _, _) = server.client(VIEWER).await;
    let seen = batches(&mut a, 5).await;
    let last_seq = seen.last().and_then(|b| b["seq"].as_u64()).expect("seq");
    a.close().await;
    wait_for_seq(server.addr, last_seq + 8).await; // batches go by while away

    let (mut b, _, snapshot) = server.client(VIEWER).await;
    let join_seq = snapshot["data"]["seq"].as_u64().expect("seq");
    assert!(join_seq > last_seq + 2, "batches were missed while away");
    b.send_json(json!({"type": "resume", "last_seq": last_seq}))
        .await;
    // Ranges chain from right after last_seq: the missed batches and the live ones
    // form one run (the broker holds live delivery until the resume).
    let mut next = last_seq + 1;
    while next <= join_seq + 3 {
        let batch = b.next_of("batch").await;
        assert_eq!(batch["from_seq"].as_u64(), Some(next), "no gap, no overlap");
        next = batch["seq"].as_u64().expect("seq") + 1;
    }
}

#[tokio::test]
async fn resume_older_than_history_gets_resync_snapshot() {
    let mut config = test_config();
    config.broker.history_size = 4;
    let server = TestServer::start(config);
    let (mut a, _, _) = server.client(VIEWER).await;
    batches(&mut a, 10).await;
    // This client joins after seq 10; batch 2 has left the 4-batch history.
    let (mut c, _, snapshot) = server.client(VIEWER).await;
    assert!(snapshot["data"]["seq"].as_u64().expect("seq") >= 10);
    c.send_json(json!({"type": "resume", "last_seq": 1})).await;
    let s = c.next_of("snapshot").await;
    assert_eq!(s["data"]["resync"], true);
    assert!(s["data"]["characters"].is_array());

    // A seq from the future (another server run) also resyncs.
    c.send_json(json!({"type": "resume", "last_seq": 1_000_000}))
        .await;
    let s = c.next_of("snapshot").await;
    assert_eq!(s["data"]["resync"], true);
}

#[tokio::test]
async fn heartbeat_and_text_ping() {
    let server = TestServer::start(test_config());
    let (mut c, _, _) = server.client(VIEWER).await;
    c.send_json(json!({"type": "heartbeat"})).await;
    let h = c.next_of("heartbeat").await;
    assert!(h["data"]["server_time"].as_f64().is_some());
    assert!(h["timestamp"].as_f64().is_some());
    c.send_text("ping").await;
    loop {
        if c.next_text().await == "pong" {
            break;
        }
    }
}

#[tokio::test]
async fn server_pings_and_a_responsive_client_outlives_client_timeout() {
    let mut config = test_config();
    config.session.heartbeat_interval_ms = 100;
    config.session.client_timeout_ms = 600;
    let server = TestServer::start(config);
    let (mut c, _, _) = server.client(VIEWER).await;
    let started = Instant::now();
    let mut pings = 0;
    // The time itself is under test: the connection must outlive client_timeout (600
    // ms) well past it while the client answers (tungstenite pongs as it reads).
    while started.elapsed() < Duration::from_millis(1500) {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut c.ws)).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Close(f)))) => panic!("closed while responsive: {f:?}"),
            Ok(Some(Ok(_))) => {}
            other => panic!("stream ended: {other:?}"),
        }
    }
    assert!(
        pings >= 3,
        "server pings every heartbeat_interval ({pings})"
    );
    c.send_json(json!({"type": "heartbeat"})).await;
    c.next_of("heartbeat").await;
}

#[tokio::test]
async fn invalid_input_gets_1001_and_the_connection_keeps_answering() {
    let server = TestServer::start(test_config());
    let (mut c, _, _) = server.client(OPERATOR).await;
    let cases = [
        "this is not json",
        "[1,2,3]",
        "42",
        r#"{"type":"dance"}"#,
        r#"{"no_type":true}"#,
        r#"{"type":"subscribe","topics":"state_change"}"#,
        r#"{"type":"subscribe","topics":["weather"]}"#,
        r#"{"type":"resume","last_seq":"x"}"#,
        r#"{"type":"command","id":"c1","cmd":"explode","args":{}}"#,
    ];
    for text in cases {
        c.send_text(text).await;
        let e = c.next_of("error").await;
        assert_eq!(e["data"]["code"], 1001, "{text} -> {e}");
        assert!(e["data"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    c.ws.send_binary_frame().await;
    let e = c.next_of("error").await;
    assert_eq!(e["data"]["code"], 1001, "binary frame");
    c.send_json(json!({"type": "heartbeat"})).await;
    c.next_of("heartbeat").await;
}

trait SendBinary {
    async fn send_binary_frame(&mut self);
}

impl SendBinary for Ws {
    async fn send_binary_frame(&mut self) {
        use futures_util::SinkExt;
        self.send(Message::Binary(vec![1, 2, 3]))
            .await
            .expect("send");
    }
}

/// `clock` as minutes since day 1, 00:00.
fn clock_minutes(snapshot: &Value) -> u64 {
    let c = &snapshot["clock"];
    let day = c["day"].as_u64().expect("clock.day");
    let minute = c["minute_of_day"].as_u64().expect("clock.minute_of_day");
    assert!(day >= 1 && minute < 1440, "{c}");
    (day - 1) * 1440 + minute
}

#[tokio::test]
async fn the_snapshot_clock_advances_one_minute_per_tick_across_a_step() {
    let server = TestServer::start(test_config());
    let (mut c, _, joined) = server.client(OPERATOR).await;
    // The world starts on day 1 at 06:00: tick t is minute t + 360 of the calendar.
    let t = joined["data"]["tick"].as_u64().expect("tick");
    assert_eq!(clock_minutes(&joined["data"]), t + 360);
    c.command("p", "pause", json!({})).await;
    let before = c.command("s0", "snapshot", json!({})).await;
    c.command("st", "step", json!({"ticks": 1500})).await;
    let after = c.command("s1", "snapshot", json!({})).await;
    let (t0, t1) = (
        before["data"]["tick"].as_u64(),
        after["data"]["tick"].as_u64(),
    );
    assert_eq!(t1, t0.map(|t| t + 1500));
    assert_eq!(
        clock_minutes(&after["data"]),
        clock_minutes(&before["data"]) + 1500,
        "1 500 ticks are 1 500 game minutes, across midnight"
    );
    assert!(after["data"]["clock"]["day"].as_u64() > before["data"]["clock"]["day"].as_u64());
}
