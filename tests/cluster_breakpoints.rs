//! A breakpoint set through a gateway survives a crash of the sim node (issue 23, "a
//! breakpoint set before a sim-node restart still fires after it"): real processes, a
//! nats-server with JetStream, one `sim` node and one `gateway`, as in `cluster.rs`.
//! Every wait is bounded; every process is ended by the PID of the child the harness
//! started.

mod common;
use common::cluster::{config, join};
use common::nats::NatsServer;
use common::process::{temp_dir, ServerProcess};
use common::{next_hit, Client, OPERATOR, VIEWER, WAIT};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// SIGKILL.
const KILL: i32 = 9;

/// A node of `role` in `dir` (a restart keeps its data).
fn node(role: &str, nats: &str, dir: &Path) -> ServerProcess {
    ServerProcess::start(dir, &config(dir, role, nats, 40), &[])
        .unwrap_or_else(|log| panic!("{role} node did not start:\n{log}"))
}

/// Runs a command through the gateway, again while it answers 1004 (the sim node is
/// not reachable yet), until it is answered; returns the reply's data.
async fn ok(c: &mut Client, id: &str, cmd: &str, args: Value) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = c.command(id, cmd, args.clone()).await;
        if r["type"] == "reply" {
            return r["data"].clone();
        }
        assert!(
            r["data"]["code"] == 1004 && Instant::now() < deadline,
            "{cmd}: {r}"
        );
        // Pacing of the retries; the loop ends on a reply or its deadline.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the sim node's journal holds `line`: what a crash after it must find.
fn wait_for_journal_line(dir: &Path, line: &str) {
    let journal = dir.join("data").join("journal.jsonl");
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(Instant::now() < deadline, "no {line} in:\n{text}");
        // Pacing of the poll; the loop ends on the line or its deadline.
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_breakpoint_set_through_a_gateway_fires_after_the_sim_node_restarts() {
    let nats = NatsServer::start();
    let sim_dir: PathBuf = temp_dir("cluster-bp-sim");
    let mut sim = node("sim", &nats.url(), &sim_dir);
    let gateway = node("gateway", &nats.url(), &temp_dir("cluster-bp-gateway"));
    let (mut op, _) = join(&gateway.addr, OPERATOR).await;
    let (mut watch, _) = join(&gateway.addr, VIEWER).await;

    let paused = ok(&mut op, "p", "pause", json!({})).await;
    let t0 = paused["tick"].as_u64().expect("tick");
    let when = format!("tick >= {}", t0 + 20);
    let set = ok(&mut op, "b", "break", json!({ "when": when })).await;
    let id = set["breakpoint_id"].as_u64().expect("breakpoint_id");
    let journaled = format!(r#"{{"cmd":{{"cmd":"break","args":{{"when":"{when}"}}}}}}"#);
    wait_for_journal_line(&sim_dir, &journaled);

    sim.signal(KILL);
    sim.wait_exit(WAIT);
    drop(sim);
    let sim = node("sim", &nats.url(), &sim_dir);

    let listed = ok(&mut op, "l", "breakpoints", json!({})).await;
    assert_eq!(
        listed["breakpoints"],
        json!([{ "breakpoint_id": id, "when": when }]),
        "the restarted sim node has it"
    );
    ok(&mut op, "r", "resume", json!({})).await;
    let hit = next_hit(&mut watch).await;
    assert_eq!(hit["breakpoint_id"], id, "{hit}");
    assert_eq!(hit["tick"].as_u64(), Some(t0 + 20), "{hit}");
    let (_, on_sim) = join(&sim.addr, VIEWER).await;
    assert_eq!(on_sim["data"]["paused"], true, "the hit paused the world");
    assert_eq!(on_sim["data"]["tick"].as_u64(), Some(t0 + 20));
    let listed = ok(&mut op, "l2", "breakpoints", json!({})).await;
    assert_eq!(listed["breakpoints"], json!([]), "it fired once");
}
