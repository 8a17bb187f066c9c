//! Every command of the contract over a real WebSocket: replies, effects and errors
//! (protocol: client → server, commands, errors).
//!
//! Determinism: tests that look at ticks pause the simulation first and then `step`, and
//! use a `snapshot` command as a barrier. The snapshot travels session → simulation →
//! broker, and the broker flushes every item published before it, so every batch
//! produced by earlier commands has been delivered before the snapshot's reply.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The test config with a rate budget large enough that no test runs into it.
fn config() -> simcast::config::Config {
    let mut c = test_config();
    c.session.rate_limit_messages = 100_000;
    c
}

/// Checks the reply envelope of a successful command and returns its `data`.
fn assert_reply<'a>(r: &'a Value, id: &str) -> &'a Value {
    assert_eq!(r["type"], "reply", "expected a reply for {id}: {r}");
    assert_eq!(r["id"], id, "reply must carry the command id: {r}");
    assert_eq!(r["data"]["ok"], true, "reply data.ok must be true: {r}");
    assert!(r["timestamp"].as_f64().is_some(), "numeric timestamp: {r}");
    &r["data"]
}

/// Checks an `error` envelope with the given code and command id.
fn assert_error(r: &Value, id: &str, code: u64) {
    assert_eq!(r["type"], "error", "expected an error for {id}: {r}");
    assert_eq!(r["id"], id, "error must carry the command id: {r}");
    assert_eq!(r["data"]["code"], code, "{r}");
    assert!(
        r["data"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error message: {r}"
    );
    assert!(r["timestamp"].as_f64().is_some(), "numeric timestamp: {r}");
}

/// Sends a command; returns its `reply`/`error` and every other frame read before it.
async fn run(c: &mut Client, id: &str, cmd: &str, args: Value) -> (Value, Vec<Value>) {
    c.send_json(json!({"type": "command", "id": id, "cmd": cmd, "args": args}))
        .await;
    let mut before = Vec::new();
    loop {
        let v = c.next_json().await;
        if v["id"] == id && (v["type"] == "reply" || v["type"] == "error") {
            return (v, before);
        }
        before.push(v);
    }
}

/// Sends a command expected to succeed; returns the reply's data.
async fn ok(c: &mut Client, id: &str, cmd: &str, args: Value) -> Value {
    let (r, _) = run(c, id, cmd, args).await;
    assert_reply(&r, id).clone()
}

/// A `snapshot` command used as a barrier: returns the snapshot data from the reply
/// and every frame that arrived before the reply (batches flushed ahead of it). The
/// `snapshot` object that follows the reply is consumed too.
async fn barrier(c: &mut Client, id: &str) -> (Value, Vec<Value>) {
    let (r, before) = run(c, id, "snapshot", json!({})).await;
    let data = assert_reply(&r, id).clone();
    let snap = c.next_of("snapshot").await;
    assert_eq!(snap["id"], id, "{snap}");
    (data, before)
}

/// Subscribes to `character_update` (an item for some character on every tick) and
/// waits until the broker applies it.
async fn subscribe_updates(c: &mut Client) {
    c.send_json(json!({"type": "subscribe", "topics": ["character_update"]}))
        .await;
    let (_, before) = barrier(c, "sub-barrier").await;
    assert!(
        before
            .iter()
            .any(|v| v["type"] == "reply" && v["data"]["ok"] == true),
        "subscribe is acknowledged: {before:?}"
    );
}

/// Every item of every batch among `frames`.
fn items(frames: &[Value]) -> Vec<Value> {
    frames
        .iter()
        .filter(|v| v["type"] == "batch")
        .flat_map(|b| b["data"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Ticks of the simulation's items; `control` items (stamped with the tick the command
/// ran at, before what it caused) are left out.
fn item_ticks(frames: &[Value]) -> Vec<u64> {
    items(frames)
        .iter()
        .filter(|i| i["data"]["event_type"] != "control")
        .filter_map(|i| i["data"]["tick"].as_u64())
        .collect()
}

fn tick_of(v: &Value) -> u64 {
    v["tick"]
        .as_u64()
        .unwrap_or_else(|| panic!("tick must be an integer: {v}"))
}

/// Reads every frame that arrives within `dur`.
async fn read_for(c: &mut Client, dur: Duration) -> Vec<Value> {
    let deadline = Instant::now() + dur;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return out;
        }
        match tokio::time::timeout(left, c.next_json()).await {
            Ok(v) => out.push(v),
            Err(_) => return out,
        }
    }
}

/// Returns the first frame (among `seen`, then newly read ones, which are appended to
/// `seen`) matching `pred`; fails after `WAIT`.
async fn wait_for(c: &mut Client, seen: &mut Vec<Value>, pred: impl Fn(&Value) -> bool) -> Value {
    if let Some(v) = seen.iter().find(|v| pred(v)) {
        return v.clone();
    }
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "expected frame did not arrive");
        let v = c.next_json().await;
        seen.push(v.clone());
        if pred(&v) {
            return v;
        }
    }
}

/// Returns the first batch item matching `pred`, reading on as needed.
async fn wait_for_item(
    c: &mut Client,
    seen: &mut Vec<Value>,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let batch = wait_for(c, seen, |v| {
        v["type"] == "batch" && v["data"].as_array().is_some_and(|a| a.iter().any(&pred))
    })
    .await;
    batch["data"]
        .as_array()
        .and_then(|a| a.iter().find(|i| pred(i)).cloned())
        .expect("matching item")
}

fn character(snapshot: &Value, id: u64) -> Option<&Value> {
    snapshot["characters"]
        .as_array()
        .expect("characters array")
        .iter()
        .find(|c| c["id"] == id)
}

#[tokio::test]
async fn pause_stops_ticks_and_resume_restarts_them() {
    let server = TestServer::start(config());
    let (mut c, _, _) = server.client(OPERATOR).await;
    subscribe_updates(&mut c).await;

    let paused = ok(&mut c, "p", "pause", json!({})).await;
    assert_eq!(paused["paused"], true, "{paused}");
    let t = tick_of(&paused);

    let (snap, _) = barrier(&mut c, "s1").await;
    assert_eq!(snap["paused"], true);
    assert_eq!(tick_of(&snap), t, "no tick after the pause reply");

    // A window in which nothing may arrive (a negative check needs one); the barrier
    // below checks the tick did not move either.
    let during = read_for(&mut c, Duration::from_millis(300)).await;
    let late: Vec<u64> = item_ticks(&during).into_iter().filter(|&x| x > t).collect();
    assert!(
        late.is_empty(),
        "items of ticks after {t} while paused: {late:?}"
    );
    let (snap, before) = barrier(&mut c, "s2").await;
    assert_eq!(tick_of(&snap), t, "tick moved while paused");
    assert!(item_ticks(&before).iter().all(|&x| x <= t));

    let resumed = ok(&mut c, "r", "resume", json!({})).await;
    assert_eq!(resumed["paused"], false, "{resumed}");
    let mut seen = Vec::new();
    let item = wait_for_item(&mut c, &mut seen, |i| {
        i["data"]["tick"].as_u64().is_some_and(|x| x > t)
    })
    .await;
    assert!(tick_of(&item["data"]) > t);
    let (snap, _) = barrier(&mut c, "s3").await;
    assert_eq!(snap["paused"], false);
    assert!(tick_of(&snap) > t, "ticks advance after resume: {snap}");
}

#[tokio::test]
async fn step_advances_exactly_n_ticks_while_paused() {
    let server = TestServer::start(config());
    let (mut c, _, _) = server.client(OPERATOR).await;
    subscribe_updates(&mut c).await;
    ok(&mut c, "p", "pause", json!({})).await;

    for n in [1u64, 7] {
        let (snap, _) = barrier(&mut c, &format!("before-{n}")).await;
        let old = tick_of(&snap);

        let (r, mut frames) = run(&mut c, &format!("step-{n}"), "step", json!({"ticks": n})).await;
        let data = assert_reply(&r, &format!("step-{n}"));
        assert_eq!(tick_of(data), old + n, "step reply tick: {data}");
        assert_eq!(data["paused"], true, "{data}");

        let (snap, before) = barrier(&mut c, &format!("after-{n}")).await;
        assert_eq!(tick_of(&snap), old + n, "snapshot after step {n}");
        assert_eq!(snap["paused"], true);

        frames.extend(before);
        let ticks = item_ticks(&frames);
        assert!(!ticks.is_empty(), "step {n} produced no batch items");
        assert!(
            ticks.iter().all(|&x| x > old && x <= old + n),
            "item ticks outside ({old}, {}]: {ticks:?}",
            old + n
        );
        assert_eq!(ticks.iter().max(), Some(&(old + n)), "{ticks:?}");
    }
}

#[tokio::test]
async fn set_speed_changes_tick_rate_and_refuses_bad_rates() {
    let server = TestServer::start(config());
    let (mut c, _, _) = server.client(OPERATOR).await;

    let data = ok(&mut c, "sp", "set_speed", json!({"tick_rate": 50})).await;
    assert_eq!(data["tick_rate"].as_f64(), Some(50.0), "{data}");
    let (snap, _) = barrier(&mut c, "s1").await;
    assert_eq!(snap["tick_rate"].as_f64(), Some(50.0), "{snap}");

    for (i, bad) in [json!(0), json!(-1), json!(5000), json!("fast")]
        .into_iter()
        .enumerate()
    {
        let id = format!("bad-{i}");
        let (r, _) = run(&mut c, &id, "set_speed", json!({"tick_rate": bad})).await;
        assert_error(&r, &id, 1001);
    }
    let (r, _) = run(&mut c, "missing", "set_speed", json!({})).await;
    assert_error(&r, "missing", 1001);

    let (snap, _) = barrier(&mut c, "s2").await;
    assert_eq!(
        snap["tick_rate"].as_f64(),
        Some(50.0),
        "refused rates leave the speed alone"
    );
}

#[tokio::test]
async fn set_state_is_broadcast_and_visible_in_inspect() {
    let server = TestServer::start(config());
    let (mut c, _, _) = server.client(OPERATOR).await;
    ok(&mut c, "p", "pause", json!({})).await;
    let (snap, _) = barrier(&mut c, "s1").await;
    let before = character(&snap, 1).expect("character 1").clone();
    let old = before["state"].as_str().expect("state").to_owned();
    let target = if old == "sleeping" {
        "working"
    } else {
        "sleeping"
    };

    let (r, mut seen) = run(
        &mut c,
        "ss",
        "set_state",
        json!({"character_id": 1, "state": target}),
    )
    .await;
    assert_reply(&r, "ss");
    let change = wait_for_item(&mut c, &mut seen, |i| {
        i["type"] == "state_change" && i["data"]["character_id"] == 1
    })
    .await;
    let d = &change["data"];
    assert_eq!(d["new_state"], target, "{change}");
    assert_eq!(d["old_state"], old.as_str(), "{change}");
    assert_eq!(d["name"], before["name"], "{change}");
    assert!(d["location"].is_string() && d["tick"].is_u64(), "{change}");

    let inspected = ok(&mut c, "i", "inspect", json!({"character_id": 1})).await;
    assert_eq!(inspected["state"], target, "{inspected}");

    let (r, _) = run(
        &mut c,
        "unknown-char",
        "set_state",
        json!({"character_id": 999_999, "state": "idle"}),
    )
    .await;
    assert_error(&r, "unknown-char", 1001);
    let (r, _) = run(
        &mut c,
        "unknown-state",
        "set_state",
        json!({"character_id": 1, "state": "flying"}),
    )
    .await;
    assert_error(&r, "unknown-state", 1001);
}

#[tokio::test]
async fn scheduled_events_fire_when_due_and_cancelled_ones_never() {
    let server = TestServer::start(config());
    let (mut c, _, _) = server.client(OPERATOR).await;
    ok(&mut c, "p", "pause", json!({})).await;
    let (snap, _) = barrier(&mut c, "s0").await;
    let t0 = tick_of(&snap);

    let payload = json!({"note": "hello", "n": 3});
    let kept = ok(
        &mut c,
        "sch-a",
        "schedule",
        json!({"event_type": "market_day", "in_ticks": 3, "data": payload}),
    )
    .await;
    let kept_id = kept["event_id"].as_u64().expect("event_id");
    let dropped = ok(
        &mut c,
        "sch-b",
        "schedule",
        json!({"event_type": "storm", "in_ticks": 2, "data": {}}),
    )
    .await;
    let dropped_id = dropped["event_id"].as_u64().expect("event_id");
    assert_ne!(kept_id, dropped_id);
    // `data` is optional.
    let bare = ok(
        &mut c,
        "sch-c",
        "schedule",
        json!({"event_type": "bell", "in_ticks": 3}),
    )
    .await;
    let bare_id = bare["event_id"].as_u64().expect("event_id");
    let cancelled = ok(&mut c, "cn", "cancel", json!({"event_id": dropped_id})).await;
    assert_eq!(cancelled["event_id"], dropped_id, "{cancelled}");

    let is_event =
        |id: u64| move |i: &Value| i["type"] == "event_notification" && i["data"]["event_id"] == id;

    // Not due yet after two ticks; the cancelled one (due at t0+2) does not fire.
    let (_, mut frames) = run(&mut c, "st1", "step", json!({"ticks": 2})).await;
    let (snap, before) = barrier(&mut c, "s1").await;
    assert_eq!(tick_of(&snap), t0 + 2);
    frames.extend(before);
    let all = items(&frames);
    assert!(!all.iter().any(is_event(kept_id)), "fired early: {all:?}");
    assert!(
        !all.iter().any(is_event(dropped_id)),
        "cancelled event fired"
    );

    // Due on the third tick.
    let (_, mut frames) = run(&mut c, "st2", "step", json!({"ticks": 1})).await;
    let (_, before) = barrier(&mut c, "s2").await;
    frames.extend(before);
    let all = items(&frames);
    let fired: Vec<&Value> = all.iter().filter(|i| is_event(kept_id)(i)).collect();
    assert_eq!(fired.len(), 1, "the event fires once: {all:?}");
    let d = &fired[0]["data"];
    assert_eq!(d["event_type"], "market_day", "{d}");
    assert_eq!(d["data"], payload, "{d}");
    assert_eq!(tick_of(d), t0 + 3, "{d}");
    assert!(fired[0]["timestamp"].as_f64().is_some());
    let bell = all
        .iter()
        .find(|i| is_event(bare_id)(i))
        .expect("event without data fires");
    assert_eq!(bell["data"]["event_type"], "bell", "{bell}");
    assert!(bell["data"]["data"].is_object(), "{bell}");

    // Well past both due ticks: the cancelled event never arrives.
    let (_, mut frames) = run(&mut c, "st3", "step", json!({"ticks": 10})).await;
    let (_, before) = barrier(&mut c, "s3").await;
    frames.extend(before);
    let all = items(&frames);
    assert!(
        !all.iter().any(is_event(dropped_id)),
        "cancelled event fired"
    );
    assert!(!all.iter().any(is_event(kept_id)), "event fired twice");

    let (r, _) = run(&mut c, "cn-unknown", "cancel", json!({"event_id": 987_654})).await;
    assert_error(&r, "cn-unknown", 1001);
}

#[tokio::test]
async fn spawn_and_remove_characters() {
    let server = TestServer::start(config());
    let (mut c, _, _) = server.client(OPERATOR).await;
    ok(&mut c, "p", "pause", json!({})).await;

    let data = ok(
        &mut c,
        "sp1",
        "spawn",
        json!({"name": "Visitor", "location": "tavern"}),
    )
    .await;
    let id = data["character_id"].as_u64().expect("character_id");
    let ch = &data["character"];
    assert_eq!(ch["id"], id, "{data}");
    assert_eq!(ch["name"], "Visitor", "{data}");
    assert_eq!(ch["location"], "tavern", "{data}");
    for key in ["state", "position", "needs"] {
        assert!(ch.get(key).is_some(), "spawned character lacks {key}: {ch}");
    }
    let (snap, _) = barrier(&mut c, "s1").await;
    let listed = character(&snap, id).expect("spawned character in snapshot");
    assert_eq!(listed["name"], "Visitor");
    assert_eq!(snap["characters"].as_array().map(Vec::len), Some(31));

    // No arguments at all: a default name and place.
    let data = ok(&mut c, "sp2", "spawn", json!({})).await;
    let id2 = data["character_id"].as_u64().expect("character_id");
    assert_ne!(id2, id);
    assert!(data["character"]["name"]
        .as_str()
        .is_some_and(|n| !n.is_empty()));
    let (snap, _) = barrier(&mut c, "s2").await;
    assert!(character(&snap, id2).is_some());

    let data = ok(&mut c, "rm", "remove", json!({"character_id": id})).await;
    assert_eq!(data["character_id"], id, "{data}");
    let (snap, _) = barrier(&mut c, "s3").await;
    assert!(
        character(&snap, id).is_none(),
        "removed character still listed"
    );
    assert!(character(&snap, id2).is_some());

    let (r, _) = run(&mut c, "rm-again", "remove", json!({"character_id": id})).await;
    assert_error(&r, "rm-again", 1001);
    let (r, _) = run(
        &mut c,
        "rm-unknown",
        "remove",
        json!({"character_id": 999_999}),
    )
    .await;
    assert_error(&r, "rm-unknown", 1001);
    let (r, _) = run(&mut c, "sp-moon", "spawn", json!({"location": "the-moon"})).await;
    assert_error(&r, "sp-moon", 1001);
    let (snap, _) = barrier(&mut c, "s4").await;
    assert_eq!(
        snap["characters"].as_array().map(Vec::len),
        Some(31),
        "refused commands change nothing"
    );
}

#[tokio::test]
async fn reset_resyncs_every_client_and_is_deterministic() {
    let server = TestServer::start(config());
    let (mut op, _, _) = server.client(OPERATOR).await;
    let (mut viewer, _, _) = server.client(VIEWER).await;
    ok(&mut op, "p", "pause", json!({})).await;
    ok(&mut op, "st", "step", json!({"ticks": 5})).await;

    let is_resync = |v: &Value| v["type"] == "snapshot" && v["data"]["resync"] == true;
    let mut lists = Vec::new();
    for round in 0..2 {
        let id = format!("reset-{round}");
        let (r, mut seen) = run(&mut op, &id, "reset", json!({"seed": 4242})).await;
        let data = assert_reply(&r, &id);
        assert_eq!(data["seed"], 4242, "{data}");
        let snap = wait_for(&mut op, &mut seen, is_resync).await;
        let s = &snap["data"];
        assert_eq!(tick_of(s), 0, "{s}");
        assert_eq!(s["seed"], 4242, "{s}");
        assert!(snap["timestamp"].as_f64().is_some());

        let mut vseen = Vec::new();
        let vsnap = wait_for(&mut viewer, &mut vseen, is_resync).await;
        assert_eq!(tick_of(&vsnap["data"]), 0);
        assert_eq!(vsnap["data"]["seed"], 4242);
        assert_eq!(vsnap["data"]["characters"], s["characters"]);

        lists.push(s["characters"].clone());
        // Move the world on so the second reset has something to undo.
        ok(
            &mut op,
            &format!("st-{round}"),
            "step",
            json!({"ticks": 20}),
        )
        .await;
    }
    assert_eq!(lists[0], lists[1], "same seed, same characters after reset");
    assert_eq!(lists[0].as_array().map(Vec::len), Some(30));
}

#[tokio::test]
async fn snapshot_command_replies_and_sends_a_snapshot() {
    let server = TestServer::start(config());
    let (mut c, _, _) = server.client(VIEWER).await;
    let (r, _) = run(&mut c, "snap", "snapshot", json!({})).await;
    let data = assert_reply(&r, "snap");
    for key in [
        "tick",
        "paused",
        "tick_rate",
        "characters",
        "locations",
        "seq",
        "resync",
    ] {
        assert!(
            data.get(key).is_some(),
            "snapshot reply lacks {key}: {data}"
        );
    }
    assert_eq!(data["characters"].as_array().map(Vec::len), Some(30));
    let snap = c.next_of("snapshot").await;
    assert_eq!(snap["id"], "snap", "{snap}");
    assert!(snap["timestamp"].as_f64().is_some());
    assert_eq!(snap["data"]["tick"], data["tick"]);
    assert_eq!(snap["data"]["characters"], data["characters"]);
    assert_eq!(snap["data"]["resync"], false);
}

#[tokio::test]
async fn metrics_command_reports_counters() {
    let server = TestServer::start(config());
    let (mut c, _, _) = server.client(OPERATOR).await;
    let (_other, _, _) = server.client(VIEWER).await;
    let data = ok(&mut c, "m", "metrics", json!({})).await;
    assert!(
        data["connections_active"].as_i64().is_some_and(|n| n >= 1),
        "{data}"
    );
    assert!(
        data["connections_total"].as_u64().is_some_and(|n| n >= 2),
        "{data}"
    );
    assert!(
        data["messages_received"].as_u64().is_some_and(|n| n >= 1),
        "{data}"
    );
    assert!(
        data["messages_sent"].as_u64().is_some_and(|n| n >= 1),
        "{data}"
    );
    assert!(data["errors"].is_u64(), "{data}");
}

#[tokio::test]
async fn inspect_returns_character_fields_and_transitions() {
    let server = TestServer::start(config());
    let (mut c, _, _) = server.client(VIEWER).await;
    let data = ok(&mut c, "i", "inspect", json!({"character_id": 2})).await;
    assert_eq!(data["id"], 2, "{data}");
    assert!(data["name"].is_string(), "{data}");
    assert!(data["state"].is_string(), "{data}");
    assert!(data["location"].is_string(), "{data}");
    assert_eq!(data["position"].as_array().map(Vec::len), Some(2), "{data}");
    for need in ["energy", "hunger", "social"] {
        let n = data["needs"][need].as_f64().expect("need");
        assert!((0.0..=100.0).contains(&n), "{data}");
    }
    assert!(data["recent_transitions"].is_array(), "{data}");

    let (r, _) = run(
        &mut c,
        "i-unknown",
        "inspect",
        json!({"character_id": 424_242}),
    )
    .await;
    assert_error(&r, "i-unknown", 1001);
}

#[tokio::test]
async fn save_writes_a_file() {
    let config = config();
    let dir = std::path::PathBuf::from(&config.persistence.dir);
    let server = TestServer::start(config);
    let (mut c, _, _) = server.client(OPERATOR).await;
    let data = ok(&mut c, "sv", "save", json!({})).await;
    let path = std::path::PathBuf::from(data["path"].as_str().expect("path"));
    assert!(path.is_file(), "saved file missing: {}", path.display());
    assert!(
        path.starts_with(&dir),
        "{} not under {}",
        path.display(),
        dir.display()
    );
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read save")).expect("JSON save");
    assert_eq!(saved["format"], 1, "{saved}");
    assert!(saved["state"]["world"]["characters"].is_object(), "{saved}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn debug_log_toggles() {
    // The real binary, whose log (stderr) the harness keeps: `debug_log` makes the
    // simulation log every item it produces (`sim: {item}`), and stop when turned off.
    let dir = common::process::temp_dir("debug-log");
    let toml = format!(
        "[[auth.tokens]]\ntoken = \"{OPERATOR}\"\nrole = \"operator\"\n[sim]\ncharacters = 30\n\
         [persistence]\ndir = {:?}\n",
        dir.join("data").display().to_string()
    );
    let server = common::process::ServerProcess::start(&dir, &toml, &[]).expect("starts");
    let mut c = Client::connect(&format!("ws://{}/ws?token={OPERATOR}", server.addr)).await;
    c.next_of("snapshot").await;
    ok(&mut c, "p", "pause", json!({})).await;
    let t0 = ok(&mut c, "s0", "snapshot", json!({})).await["tick"]
        .as_u64()
        .expect("tick");
    // Ten ticks logged, ten not, ten logged: every character gets an update at least
    // every ten ticks, so each step has items. The log is one ordered stream, so once a
    // line of the third step is in, any line of the second would be too.
    ok(&mut c, "d1", "debug_log", json!({"enabled": true})).await;
    ok(&mut c, "st1", "step", json!({"ticks": 10})).await;
    ok(&mut c, "d0", "debug_log", json!({"enabled": false})).await;
    ok(&mut c, "st2", "step", json!({"ticks": 10})).await;
    ok(&mut c, "d2", "debug_log", json!({"enabled": true})).await;
    ok(&mut c, "st3", "step", json!({"ticks": 10})).await;
    let logged = wait_until("items of the third step in the log", || async {
        let ticks = logged_item_ticks(&server.log());
        if ticks.iter().any(|t| (t0 + 21..=t0 + 30).contains(t)) {
            Ok(ticks)
        } else {
            Err(format!("logged ticks {ticks:?} (t0 = {t0})"))
        }
    })
    .await;
    assert!(
        logged.iter().any(|t| (t0 + 1..=t0 + 10).contains(t)),
        "the first step was logged: {logged:?} (t0 = {t0})"
    );
    assert!(
        !logged.iter().any(|t| (t0 + 11..=t0 + 20).contains(t)),
        "nothing logged while off: {logged:?} (t0 = {t0})"
    );
    let (r, _) = run(&mut c, "d-bad", "debug_log", json!({"enabled": "yes"})).await;
    assert_error(&r, "d-bad", 1001);
}

/// The ticks of the items the simulation logged (`sim: {item}` lines).
fn logged_item_ticks(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| Some(format!("{{{}", l.split_once("sim: {")?.1)))
        .filter_map(|item| serde_json::from_str::<Value>(&item).ok())
        .filter_map(|item| item["data"]["tick"].as_u64())
        .collect()
}

#[tokio::test]
async fn bad_arguments_give_1001_with_the_id_and_the_connection_stays() {
    let server = TestServer::start(config());
    let (mut c, _, _) = server.client(OPERATOR).await;
    let cases: Vec<(&str, Value)> = vec![
        // Missing arguments.
        ("step", json!({})),
        ("set_state", json!({"character_id": 1})),
        ("schedule", json!({"in_ticks": 3})),
        ("schedule", json!({"event_type": "x"})),
        ("cancel", json!({})),
        ("remove", json!({})),
        ("inspect", json!({})),
        ("debug_log", json!({})),
        // Wrong types and out-of-range values.
        ("step", json!({"ticks": "ten"})),
        ("step", json!({"ticks": -3})),
        ("step", json!({"ticks": 0})),
        ("set_state", json!({"character_id": "one", "state": "idle"})),
        ("schedule", json!({"event_type": 5, "in_ticks": 3})),
        ("cancel", json!({"event_id": "abc"})),
        ("spawn", json!({"name": 7})),
        ("reset", json!({"seed": "x"})),
        // Unknown command.
        ("fly", json!({})),
    ];
    for (i, (cmd, args)) in cases.into_iter().enumerate() {
        let id = format!("bad-{i}");
        let (r, _) = run(&mut c, &id, cmd, args.clone()).await;
        assert_error(&r, &id, 1001);
        // The connection keeps answering.
        c.send_json(json!({"type": "heartbeat"})).await;
        let hb = c.next_of("heartbeat").await;
        assert!(hb["data"]["server_time"].as_f64().is_some(), "{hb}");
    }
    // `args` that is not an object, and a numeric id.
    c.send_json(json!({"type": "command", "id": 77, "cmd": "step", "args": [1]}))
        .await;
    let r = next_with_id_value(&mut c, &json!(77)).await;
    assert_eq!(r["type"], "error", "{r}");
    assert_eq!(r["data"]["code"], 1001, "{r}");
    // Still fine.
    let data = ok(&mut c, "after", "metrics", json!({})).await;
    assert!(data["errors"].as_u64().is_some_and(|n| n >= 17), "{data}");
}

#[tokio::test]
async fn every_reply_has_type_id_ok_and_timestamp() {
    let server = TestServer::start(config());
    let (mut c, _, _) = server.client(OPERATOR).await;
    let commands: Vec<(&str, Value)> = vec![
        ("pause", json!({})),
        ("step", json!({"ticks": 2})),
        ("set_speed", json!({"tick_rate": 25})),
        ("set_state", json!({"character_id": 3, "state": "eating"})),
        ("spawn", json!({"name": "Zed"})),
        ("remove", json!({"character_id": 4})),
        ("schedule", json!({"event_type": "fair", "in_ticks": 100})),
        ("inspect", json!({"character_id": 3})),
        ("snapshot", json!({})),
        ("metrics", json!({})),
        ("save", json!({})),
        ("debug_log", json!({"enabled": false})),
        ("resume", json!({})),
        ("reset", json!({})),
    ];
    for (i, (cmd, args)) in commands.into_iter().enumerate() {
        let id = format!("{cmd}-{i}");
        let (r, _) = run(&mut c, &id, cmd, args).await;
        assert_reply(&r, &id);
    }
    let data = ok(
        &mut c,
        "sched",
        "schedule",
        json!({"event_type": "fair", "in_ticks": 100}),
    )
    .await;
    let event_id = data["event_id"].as_u64().expect("event_id");
    ok(&mut c, "cancel", "cancel", json!({"event_id": event_id})).await;
}

/// `Client::next_with_id` takes a string id; this matches any JSON id.
async fn next_with_id_value(c: &mut Client, id: &Value) -> Value {
    loop {
        let v = c.next_json().await;
        if &v["id"] == id && (v["type"] == "reply" || v["type"] == "error") {
            return v;
        }
    }
}
