//! `view_at` and `timeline` (protocol "Time travel and breakpoints") against a real
//! server: a past tick is rebuilt exactly (the state hash and the characters of the live
//! snapshot taken at that tick), the range is reported, and ticks outside it get 1001.

mod common;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn view_at_rebuilds_the_live_snapshot_of_a_past_tick() {
    let server = TestServer::start(test_config());
    let (mut c, _, _) = server.client(OPERATOR).await;
    ok(&mut c, "p", "pause", json!({})).await;
    ok(&mut c, "s1", "step", json!({"ticks": 37})).await;
    let then = live(&mut c).await;
    let tick = then["tick"].as_u64().expect("tick");
    // Changes after that tick: more ticks, and a command.
    ok(
        &mut c,
        "st",
        "set_state",
        json!({"character_id": 2, "state": "sleeping"}),
    )
    .await;
    ok(&mut c, "s2", "step", json!({"ticks": 150})).await;
    let now = live(&mut c).await;
    assert_ne!(now["state_hash"], then["state_hash"]);

    let view = ok(&mut c, "v", "view_at", json!({"tick": tick})).await;
    assert_eq!(view["tick"], tick);
    assert_eq!(view["state_hash"], then["state_hash"], "the same world");
    assert_eq!(view["characters"], then["characters"]);
    assert_eq!(view["resync"], false);
    assert_eq!(view["clock"], then["clock"]);

    let newest = now["tick"].as_u64().expect("tick");
    let view = ok(&mut c, "v2", "view_at", json!({"tick": newest})).await;
    assert_eq!(
        view["state_hash"], now["state_hash"],
        "the newest tick is the live world"
    );

    let range = ok(&mut c, "t", "timeline", json!({})).await;
    assert_eq!(range["newest_tick"], newest);
    assert!(range["oldest_tick"].as_u64().expect("oldest") <= tick);
}

#[tokio::test]
async fn ticks_outside_the_retained_range_get_1001_naming_it() {
    let mut config = test_config();
    config.sim.history_ticks = 50;
    config.sim.checkpoint_every = 10;
    let server = TestServer::start(config);
    let (mut c, _, _) = server.client(VIEWER).await;
    let (mut op, _, _) = server.client(OPERATOR).await;
    ok(&mut op, "p", "pause", json!({})).await;
    ok(&mut op, "s", "step", json!({"ticks": 300})).await;
    let range = ok(&mut c, "t", "timeline", json!({})).await;
    let (oldest, newest) = (
        range["oldest_tick"].as_u64().expect("oldest"),
        range["newest_tick"].as_u64().expect("newest"),
    );
    assert!(newest - oldest >= 50, "at least history_ticks: {range}");
    assert!(oldest > 0, "older checkpoints were dropped: {range}");
    for tick in [oldest - 1, newest + 1] {
        let r = c.command("v", "view_at", json!({"tick": tick})).await;
        assert_eq!(r["type"], "error", "{r}");
        assert_eq!(r["data"]["code"], 1001, "{r}");
        let message = r["data"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(&format!("{oldest}..={newest}")),
            "{message}"
        );
    }
    let r = c.command("v", "view_at", json!({"tick": "soon"})).await;
    assert_eq!(r["data"]["code"], 1001, "{r}");
    let view = ok(&mut c, "v", "view_at", json!({"tick": oldest})).await;
    assert_eq!(view["tick"], oldest);
}

/// Characters per state in a snapshot's data.
fn counts(snapshot: &Value) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for c in snapshot["characters"].as_array().expect("characters") {
        *out.entry(c["state"].as_str().unwrap_or("").to_owned())
            .or_insert(0) += 1;
    }
    out
}

#[tokio::test]
async fn timeseries_rows_match_the_snapshots_of_their_ticks_in_csv_and_json() {
    let server = TestServer::start(test_config());
    let (mut c, _, _) = server.client(OPERATOR).await;
    ok(&mut c, "p", "pause", json!({})).await;
    ok(&mut c, "s", "step", json!({"ticks": 60})).await;
    let now = live(&mut c).await;
    let tick = now["tick"].as_u64().expect("tick");
    let auth = format!("Bearer {OPERATOR}");
    let path = format!("/api/timeseries?from_tick={}&to_tick={tick}", tick - 30);
    let (status, body) = http(server.addr, "GET", &path, &[("Authorization", &auth)], "").await;
    assert_eq!(status, 200, "{body}");
    let series: Value = serde_json::from_str(&body).expect("json");
    let rows = series["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 31);
    for row in [&rows[0], &rows[15], &rows[30]] {
        let t = row["tick"].as_u64().expect("tick");
        let view = ok(&mut c, "v", "view_at", json!({"tick": t})).await;
        for (state, n) in counts(&view) {
            assert_eq!(row[&state].as_u64(), Some(n), "tick {t} {state}");
        }
        assert_eq!(row["day"], view["clock"]["day"]);
        assert_eq!(row["minute_of_day"], view["clock"]["minute_of_day"]);
    }
    assert_eq!(rows[30]["tick"], tick);

    let csv_path = format!("{path}&format=csv");
    let (status, csv) = http(
        server.addr,
        "GET",
        &csv_path,
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(status, 200);
    let mut lines = csv.lines();
    let header = lines.next().expect("header");
    assert!(
        header.starts_with("tick,day,minute_of_day,idle,sleeping"),
        "{header}"
    );
    assert!(
        header.ends_with("mean_energy,mean_hunger,mean_social"),
        "{header}"
    );
    assert_eq!(lines.count(), 31);

    let (status, _) = http(
        server.addr,
        "GET",
        "/api/timeseries?format=xml",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = http(server.addr, "GET", "/api/timeseries", &[], "").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn rewind_goes_back_resyncs_everyone_and_the_same_commands_reach_the_same_state() {
    let server = TestServer::start(test_config());
    let (mut op, _, _) = server.client(OPERATOR).await;
    let (mut watcher, _, _) = server.client(VIEWER).await;
    ok(&mut op, "p", "pause", json!({})).await;
    ok(&mut op, "s", "step", json!({"ticks": 30})).await;
    let at = live(&mut op).await;
    let tick = at["tick"].as_u64().expect("tick");
    let redo = |c: &'static str| json!({"character_id": 3, "state": c});
    ok(&mut op, "a", "set_state", redo("eating")).await;
    ok(&mut op, "b", "step", json!({"ticks": 40})).await;
    let first = live(&mut op).await;

    let r = ok(&mut op, "r", "rewind", json!({"tick": tick})).await;
    assert_eq!(
        (r["tick"].as_u64(), r["from_tick"].as_u64()),
        (Some(tick), first["tick"].as_u64())
    );
    let back = live(&mut op).await;
    assert_eq!(
        back["state_hash"], at["state_hash"],
        "the world at the end of {tick}"
    );
    // Everyone: a control item, then a resync snapshot of the rewound world.
    let (mut control, mut resync) = (false, None);
    while !control || resync.is_none() {
        let v = watcher.next_json().await;
        let items = v["data"].as_array().cloned().unwrap_or_default();
        control |= items
            .iter()
            .any(|i| i["data"]["data"]["command"] == "rewind");
        if v["type"] == "snapshot" && v["data"]["resync"] == true {
            resync = Some(v);
        }
    }
    let resync = resync.unwrap_or_default();
    assert_eq!(resync["data"]["state_hash"], at["state_hash"]);

    ok(&mut op, "a2", "set_state", redo("eating")).await;
    ok(&mut op, "b2", "step", json!({"ticks": 40})).await;
    let again = live(&mut op).await;
    assert_eq!(
        again["state_hash"], first["state_hash"],
        "the same commands, the same world"
    );
    let r = op.command("far", "rewind", json!({"tick": 999_999})).await;
    assert_eq!(r["data"]["code"], 1001, "{r}");
}

#[tokio::test]
async fn a_restart_after_a_rewind_restores_the_rewound_timeline_and_replay_agrees() {
    use common::process::{replay, temp_dir, ServerProcess};
    let dir = temp_dir("rewind-restart");
    let config = format!(
        "[[auth.tokens]]\ntoken = \"{OPERATOR}\"\nrole = \"operator\"\n[sim]\ncharacters = 40\n[persistence]\ndir = {:?}\n",
        dir.join("data").display().to_string()
    );
    let mut server = ServerProcess::start(&dir, &config, &[]).expect("starts");
    let mut c = Client::connect(&format!("ws://{}/ws?token={OPERATOR}", server.addr)).await;
    c.next_of("snapshot").await;
    ok(&mut c, "p", "pause", json!({})).await;
    ok(&mut c, "s", "step", json!({"ticks": 50})).await;
    ok(&mut c, "r", "rewind", json!({"tick": 20})).await;
    ok(&mut c, "s2", "step", json!({"ticks": 5})).await;
    let before = live(&mut c).await;
    assert_eq!(before["tick"], 25);
    drop(c);
    server.signal(libc::SIGTERM);
    server.wait_exit(std::time::Duration::from_secs(15));
    drop(server);
    let offline = replay(&dir.join("data"), None);
    assert_eq!(offline["tick"], 25);
    assert_eq!(offline["state_hash"], before["state_hash"]);
    let server = ServerProcess::start(&dir, &config, &[]).expect("restarts");
    let mut c = Client::connect(&format!("ws://{}/ws?token={OPERATOR}", server.addr)).await;
    let after = c.next_of("snapshot").await;
    assert_eq!(after["data"]["tick"], 25);
    assert_eq!(after["data"]["state_hash"], before["state_hash"]);
}

/// Characters whose `need` is below `limit` in a snapshot's data.
fn below(snapshot: &Value, need: &str, limit: f64) -> Vec<u64> {
    let chars = snapshot["characters"].as_array().expect("characters");
    let low = chars
        .iter()
        .filter(|c| c["needs"][need].as_f64().unwrap_or(100.0) < limit);
    low.filter_map(|c| c["id"].as_u64()).collect()
}

#[tokio::test]
async fn a_breakpoint_pauses_at_the_first_tick_where_it_holds_and_says_who() {
    let server = TestServer::start(test_config());
    let (mut op, _, _) = server.client(OPERATOR).await;
    let (mut watcher, _, _) = server.client(VIEWER).await;
    ok(&mut op, "p", "pause", json!({})).await;
    let start = live(&mut op).await;
    // A threshold a little below the lowest energy now: some character reaches it soon.
    let lowest = start["characters"]
        .as_array()
        .expect("characters")
        .iter()
        .filter_map(|c| c["needs"]["energy"].as_f64())
        .fold(100.0, f64::min);
    let limit = (lowest - 3.0).max(1.0);
    let when = format!("any energy < {limit}");
    let set = ok(&mut op, "b", "break", json!({"when": when})).await;
    let id = set["breakpoint_id"].as_u64().expect("id");
    let list = ok(&mut op, "l", "breakpoints", json!({})).await;
    assert_eq!(list["breakpoints"][0]["when"], when);
    let stepped = ok(&mut op, "s", "step", json!({"ticks": 2000})).await;
    let hit_tick = stepped["tick"].as_u64().expect("tick");
    assert!(
        stepped["stepped"].as_u64().expect("stepped") < 2000,
        "stopped at the hit"
    );
    assert_eq!(stepped["paused"], true);

    let hit = loop {
        let v = watcher.next_json().await;
        let items = v["data"].as_array().cloned().unwrap_or_default();
        if let Some(i) = items
            .iter()
            .find(|i| i["data"]["event_type"] == "breakpoint_hit")
        {
            break i["data"]["data"].clone();
        }
    };
    assert_eq!(hit["breakpoint_id"], id);
    assert_eq!(hit["tick"], hit_tick);
    assert_eq!(hit["when"], when);
    // Checked against the past: it held at the hit tick, for those characters, and not
    // at the tick before.
    let at_hit = ok(&mut op, "v1", "view_at", json!({"tick": hit_tick})).await;
    let before = ok(&mut op, "v0", "view_at", json!({"tick": hit_tick - 1})).await;
    let ids: Vec<u64> = hit["characters"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(!ids.is_empty());
    // Wire needs are whole numbers: compare with a margin of the rounding.
    for id in &ids {
        assert!(
            below(&at_hit, "energy", limit + 0.5).contains(id),
            "{id} at the hit"
        );
    }
    assert!(
        below(&before, "energy", limit - 0.5).is_empty(),
        "it did not hold before"
    );
    let list = ok(&mut op, "l2", "breakpoints", json!({})).await;
    assert_eq!(list["breakpoints"], json!([]), "a breakpoint fires once");
}

#[tokio::test]
async fn every_example_condition_is_understood_and_a_broken_one_says_where() {
    let server = TestServer::start(test_config());
    let (mut op, _, _) = server.client(OPERATOR).await;
    for when in [
        "character 7 hunger < 20",
        "character 7 state == sleeping",
        "count sleeping > 100",
        "any energy < 5",
        "tick >= 5000",
        "tick >= 5000 and any energy < 5 or character 7 state == sleeping",
    ] {
        let set = ok(&mut op, "b", "break", json!({"when": when})).await;
        let id = set["breakpoint_id"].clone();
        ok(&mut op, "u", "unbreak", json!({"breakpoint_id": id})).await;
    }
    let r = op
        .command("x", "break", json!({"when": "count dancing > 3"}))
        .await;
    assert_eq!(r["data"]["code"], 1001, "{r}");
    let message = r["data"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("at 6") && message.contains("a state"),
        "{message}"
    );
    let r = op
        .command("y", "unbreak", json!({"breakpoint_id": 999}))
        .await;
    assert_eq!(r["data"]["code"], 1001, "{r}");
    let (mut viewer, _, _) = server.client(VIEWER).await;
    let r = viewer
        .command("z", "break", json!({"when": "tick > 1"}))
        .await;
    assert_eq!(r["data"]["code"], 1002, "{r}");
}
