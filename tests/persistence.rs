//! Persistence against the real binary: the world survives SIGTERM and SIGKILL with the
//! same state hash, paused stays paused, scheduled events fire once (cancelled ones
//! never), seq keeps rising, `replay --until` rebuilds past ticks, and a damaged data
//! directory is refused unless `--fresh`.

mod common;
use common::process::{temp_dir, ServerProcess, BIN};
use common::{ok, Client, OPERATOR};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn config(dir: &Path) -> String {
    format!(
        "[[auth.tokens]]\ntoken = \"{OPERATOR}\"\nrole = \"operator\"\n[sim]\ncharacters = 150\ntick_rate = 20.0\n[persistence]\ndir = {:?}\nsnapshot_interval_ticks = 0\n",
        dir.join("data").display().to_string()
    )
}

fn start(dir: &Path, extra: &[&str]) -> Result<ServerProcess, String> {
    ServerProcess::start(dir, &config(dir), extra)
}

async fn connect(addr: &str) -> (Client, Value) {
    let mut c = Client::connect(&format!("ws://{addr}/ws?token={OPERATOR}")).await;
    let snapshot = c.next_of("snapshot").await;
    (c, snapshot)
}

async fn snapshot(c: &mut Client) -> Value {
    let r = ok(c, "snap", "snapshot", json!({})).await;
    c.next_of("snapshot").await;
    r
}

/// Steps `n` ticks and returns the scheduled events that fired (event ids).
async fn step_collect_events(c: &mut Client, n: u64) -> Vec<u64> {
    // The step's items and then the fence snapshot travel one ordered stream
    // (simulation → broker → this session), so every item of the step arrives before
    // the fence; batches are collected from the moment the step is sent.
    c.send_json(json!({"type": "command", "id": "step", "cmd": "step", "args": {"ticks": n}}))
        .await;
    c.send_json(json!({"type": "command", "id": "fence", "cmd": "snapshot"}))
        .await;
    let mut fired = Vec::new();
    let mut target = None;
    let mut fence_tick = None;
    while target.is_none() || fence_tick.is_none() {
        let v = c.next_json().await;
        if v["type"] == "batch" {
            for item in v["data"].as_array().into_iter().flatten() {
                if let Some(id) = item["data"]["event_id"].as_u64() {
                    fired.push(id);
                }
            }
        } else if v["id"] == "step" {
            assert_eq!(v["type"], "reply", "{v}");
            target = v["data"]["tick"].as_u64();
        } else if v["type"] == "snapshot" && v["id"] == "fence" {
            fence_tick = v["data"]["tick"].as_u64();
        }
    }
    assert_eq!(fence_tick, target, "the fence comes after the whole step");
    fired
}

fn replay(dir: &Path, until: Option<u64>) -> Value {
    common::process::replay(&dir.join("data"), until)
}

async fn survives(sig: i32, tag: &str) {
    let dir = temp_dir(&format!("persist-{tag}"));
    let mut server = start(&dir, &[]).expect("starts");
    let addr = server.addr.clone();
    let (mut c, first) = connect(&addr).await;
    // Some live ticks before the pause: the broker has flushed a few batches past the
    // join's snapshot.
    let joined_at = first["data"]["seq"].as_u64().expect("the snapshot's seq");
    let socket: std::net::SocketAddr = addr.parse().expect("the server's address");
    common::wait_for_seq(socket, joined_at + 4).await;
    ok(&mut c, "pause", "pause", json!({})).await;
    let early = snapshot(&mut c).await;
    let fire = ok(
        &mut c,
        "s1",
        "schedule",
        json!({"event_type": "fair", "in_ticks": 40}),
    )
    .await["event_id"]
        .as_u64()
        .expect("id");
    let cancelled = ok(
        &mut c,
        "s2",
        "schedule",
        json!({"event_type": "storm", "in_ticks": 45}),
    )
    .await["event_id"]
        .as_u64()
        .expect("id");
    ok(&mut c, "c", "cancel", json!({ "event_id": cancelled })).await;
    ok(
        &mut c,
        "st",
        "set_state",
        json!({"character_id": 5, "state": "sleeping"}),
    )
    .await;
    ok(
        &mut c,
        "sp",
        "spawn",
        json!({"name": "Persisted", "location": "park"}),
    )
    .await;
    assert!(step_collect_events(&mut c, 10).await.is_empty());
    let before = snapshot(&mut c).await;
    let last_seq = before["seq"].as_u64().expect("seq");
    c.close().await;

    server.signal(sig);
    let status = server.wait_exit(Duration::from_secs(15));
    if sig == libc::SIGTERM {
        assert!(status.success(), "{status:?}");
    }
    drop(server);

    // Offline, the data directory rebuilds the world: the end of the run, and (after a
    // crash, when the journal since the start snapshot is all there) any tick since.
    let full = replay(&dir, None);
    assert_eq!(full["tick"], before["tick"]);
    assert_eq!(full["state_hash"], before["state_hash"]);
    if sig == libc::SIGKILL {
        let past = replay(&dir, early["tick"].as_u64());
        assert_eq!(past["tick"], early["tick"]);
        assert_eq!(past["state_hash"], early["state_hash"]);
    }

    let server = start(&dir, &[]).expect("restarts");
    let addr = server.addr.clone();
    let (mut c, after) = connect(&addr).await;
    let after = &after["data"];
    assert_eq!(
        after["tick"], before["tick"],
        "tick goes on from where it was"
    );
    assert_eq!(after["paused"], true, "a paused world stays paused");
    assert_eq!(after["state_hash"], before["state_hash"], "same world");
    assert!(
        after["seq"].as_u64().expect("seq") >= last_seq,
        "seq never goes back"
    );
    assert!(after["characters"]
        .as_array()
        .expect("chars")
        .iter()
        .any(|ch| ch["name"] == "Persisted"));

    // A client resuming from before the restart: the missed batches or a resync, never
    // a silent gap.
    c.send_json(json!({"type": "resume", "last_seq": last_seq.saturating_sub(3)}))
        .await;
    let resync = c.next_of("snapshot").await;
    assert_eq!(resync["data"]["resync"], true);

    // Scheduled events still fire once when due; the cancelled one never.
    let fired = step_collect_events(&mut c, 60).await;
    assert_eq!(fired, vec![fire], "fired once, cancelled never");
}

#[tokio::test]
async fn world_survives_sigterm() {
    survives(libc::SIGTERM, "term").await;
}

#[tokio::test]
async fn world_survives_sigkill_through_the_journal() {
    survives(libc::SIGKILL, "kill").await;
}

#[tokio::test]
async fn damaged_data_is_refused_unless_fresh() {
    let dir = temp_dir("persist-corrupt");
    let mut server = start(&dir, &[]).expect("starts");
    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(15));
    drop(server);
    let data = dir.join("data");
    std::fs::write(data.join("world.json"), b"{ torn").expect("write");
    std::fs::write(data.join("world.prev.json"), b"junk").expect("write");
    let err = start(&dir, &[]).err().expect("refuses to start");
    assert!(
        err.contains("world.json") && err.contains("--fresh"),
        "{err}"
    );
    let server = start(&dir, &["--fresh"]).expect("starts fresh");
    let (_c, snap) = connect(&server.addr).await;
    assert!(
        snap["data"]["tick"].as_u64().expect("tick") < 50,
        "a new world"
    );
    let moved = std::fs::read_dir(&data)
        .expect("ls")
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("discarded-"));
    assert!(moved, "old data moved aside, not deleted");
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_runs_without_persistence() {
    let dir = temp_dir("persist-shared");
    let first = start(&dir, &[]).expect("first starts");
    let second = start(&dir, &[]).expect("second starts too");
    let (_c, snap) = connect(&second.addr).await;
    assert!(snap["data"]["characters"].is_array());
    let log = second.log();
    assert!(log.contains("WITHOUT persistence"), "{log}");
    // The first still owns (and writes) the world.
    assert!(!first.log().contains("WITHOUT persistence"));
}

#[tokio::test]
async fn a_restored_world_names_the_flags_it_does_not_apply() {
    let dir = temp_dir("persist-flags");
    let mut server = start(&dir, &[]).expect("starts");
    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(15));
    drop(server);
    let server = start(&dir, &["--characters", "40", "--seed", "9"]).expect("restarts");
    let (_c, snap) = connect(&server.addr).await;
    assert_eq!(
        snap["data"]["characters"].as_array().map(Vec::len),
        Some(150)
    );
    assert_eq!(snap["data"]["seed"], 42, "the saved world's seed is kept");
    let log = server.log();
    let warning = log
        .lines()
        .find(|l| l.contains("the restored world keeps"))
        .unwrap_or_else(|| panic!("no restore warning in:\n{log}"));
    assert!(warning.contains("seed 42 (asked 9)"), "{warning}");
    assert!(warning.contains("characters 150 (asked 40)"), "{warning}");
    assert!(warning.contains("--fresh"), "{warning}");
    assert!(
        !warning.contains("tick_rate"),
        "the tick rate was not changed: {warning}"
    );
}

const AUDIT_OPERATOR: &str = "audit-op-secret";
const AUDIT_VIEWER: &str = "audit-viewer-secret";

/// Every operator command, from every transport, is in `audit` after a restart, oldest
/// first and with its label and outcome; a viewer may not read it; no token is kept.
#[tokio::test]
async fn audit_survives_a_restart_and_names_who_did_what() {
    use common::post_command;
    let dir = temp_dir("persist-audit");
    let config = format!(
        "[[auth.tokens]]\ntoken = \"{AUDIT_OPERATOR}\"\nrole = \"operator\"\nname = \"alice\"\n\
         [[auth.tokens]]\ntoken = \"{AUDIT_VIEWER}\"\nrole = \"viewer\"\nname = \"vera\"\n\
         [sim]\ncharacters = 20\n[persistence]\ndir = {:?}\n",
        dir.join("data").display().to_string()
    );
    let mut server = ServerProcess::start(&dir, &config, &[]).expect("starts");
    let ws = |token: &str| format!("ws://{}/ws?token={token}", server.addr);
    let mut op = Client::connect(&ws(AUDIT_OPERATOR)).await;
    op.next_of("snapshot").await;
    assert_eq!(op.command("1", "pause", json!({})).await["type"], "reply");
    let refused = op
        .command("2", "remove", json!({"character_id": 99999}))
        .await;
    assert_eq!(refused["type"], "error", "{refused}");
    let addr: std::net::SocketAddr = server.addr.parse().expect("addr");
    let body = json!({"cmd": "set_speed", "args": {"tick_rate": 4.0}});
    let (status, _) = post_command(addr, AUDIT_OPERATOR, &body).await;
    assert_eq!(status, 200);
    // The CLI goes through the WebSocket like any client.
    let cli = Command::new(BIN)
        .args(["ctl", "--url", &format!("http://{}", server.addr)])
        .args(["--token", AUDIT_OPERATOR, "step", "3"])
        .output()
        .expect("simcast ctl");
    assert!(cli.status.success(), "{cli:?}");

    let mut viewer = Client::connect(&ws(AUDIT_VIEWER)).await;
    viewer.next_of("snapshot").await;
    let denied = viewer.command("a", "audit", json!({})).await;
    assert_eq!(denied["type"], "error");
    assert_eq!(denied["data"]["code"], 1002, "{denied}");
    let (status, text) = post_command(addr, AUDIT_VIEWER, &json!({"cmd": "audit"})).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("1002"), "{text}");

    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(15));
    let first_log = server.log();
    drop(server);

    let server = ServerProcess::start(&dir, &config, &[]).expect("restarts");
    let mut op = Client::connect(&format!("ws://{}/ws?token={AUDIT_OPERATOR}", server.addr)).await;
    op.next_of("snapshot").await;
    let reply = op.command("audit", "audit", json!({})).await;
    assert_eq!(reply["type"], "reply", "{reply}");
    let entries = reply["data"]["entries"]
        .as_array()
        .expect("entries")
        .clone();
    let seen: Vec<(&str, &str, bool)> = entries
        .iter()
        .map(|e| {
            let command = e["command"].as_str().unwrap_or("");
            (command, e["by"].as_str().unwrap_or(""), e["ok"] == true)
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("pause", "alice", true),
            ("remove", "alice", false),
            ("set_speed", "alice", true),
            ("step", "alice", true),
        ],
        "{entries:?}"
    );
    assert_eq!(entries[2]["args"], json!({"tick_rate": 4.0}));
    assert_eq!(entries[3]["args"], json!({"ticks": 3}));
    for e in &entries {
        assert!(
            e["tick"].is_u64() && e["timestamp"].as_f64().is_some(),
            "{e}"
        );
    }
    assert!(
        entries[1]["error"].is_string(),
        "why it failed: {}",
        entries[1]
    );
    let limited = op.command("two", "audit", json!({"limit": 2})).await;
    let last: Vec<&str> = limited["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["command"].as_str())
        .collect();
    assert_eq!(last, vec!["set_speed", "step"], "the newest, oldest first");
    let zero = op.command("zero", "audit", json!({"limit": 0})).await;
    assert_eq!(zero["data"]["code"], 1001, "{zero}");

    let file = std::fs::read_to_string(dir.join("data").join("audit.jsonl")).expect("audit file");
    for text in [&file, &first_log, &server.log()] {
        for token in [AUDIT_OPERATOR, AUDIT_VIEWER] {
            assert!(!text.contains(token), "a token was kept or logged");
        }
    }
}
