//! The cluster (issue 11, docs/cluster.md) as real processes: a nats-server with
//! JetStream on a free loopback port, one `sim` node and two `gateway` nodes, each with
//! a data directory of its own. Every wait is bounded; every process is ended by the
//! PID of the child the harness started.

mod common;
use common::cluster::{config, join, join_welcomed};
use common::nats::NatsServer;
use common::process::{temp_dir, ServerProcess};
use common::{Client, OPERATOR, VIEWER, WAIT};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// SIGKILL.
const KILL: i32 = 9;
/// SIGTERM: a clean stop.
const TERM: i32 = 15;
/// How soon other nodes' clients see a cleanly stopped node's sessions gone: its leave,
/// then one presence pacing (1 s) with room to spare; shorter than the 3 s expiry.
const LEAVE_SEEN_WITHIN: Duration = Duration::from_secs(2);

/// A node of `role` in a fresh directory (or `dir`, to restart one on its data).
fn node(role: &str, nats: &str, dir: Option<&Path>) -> (ServerProcess, std::path::PathBuf) {
    let dir = dir.map_or_else(|| temp_dir(&format!("cluster-{role}")), Path::to_path_buf);
    let process = ServerProcess::start(&dir, &config(&dir, role, nats, 60), &[])
        .unwrap_or_else(|log| panic!("{role} node did not start:\n{log}"));
    (process, dir)
}

struct Cluster {
    nats: NatsServer,
    sim: ServerProcess,
    sim_dir: std::path::PathBuf,
    gateways: Vec<ServerProcess>,
}

impl Cluster {
    fn start() -> Cluster {
        let nats = NatsServer::start();
        let (sim, sim_dir) = node("sim", &nats.url(), None);
        let gateways = (0..2)
            .map(|_| node("gateway", &nats.url(), None).0)
            .collect();
        Cluster {
            nats,
            sim,
            sim_dir,
            gateways,
        }
    }

    fn gateway(&self, i: usize) -> &str {
        &self.gateways[i].addr
    }
}

/// The next `batch` frames for `time`, as (from_seq, seq, raw text).
async fn batches(c: &mut Client, time: Duration) -> Vec<(u64, u64, String)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + time;
    while let Ok(text) = tokio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        c.next_text(),
    )
    .await
    {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if v["type"] == "batch" {
            let seq = |k: &str| v[k].as_u64().unwrap_or(0);
            out.push((seq("from_seq"), seq("seq"), text));
        }
    }
    out
}

/// Every frame starts where the one before it ended, starting at `after + 1`.
fn assert_continuous(after: u64, frames: &[(u64, u64, String)]) {
    let mut next = after + 1;
    for (from, seq, _) in frames {
        assert_eq!(*from, next, "a gap: {frames:?}", frames = ranges(frames));
        next = seq + 1;
    }
}

fn ranges(frames: &[(u64, u64, String)]) -> Vec<(u64, u64)> {
    frames.iter().map(|(f, s, _)| (*f, *s)).collect()
}

/// The last seq a client has seen, from its snapshot and the frames after it.
fn last_seen(snapshot: &Value, frames: &[(u64, u64, String)]) -> u64 {
    frames
        .last()
        .map_or_else(|| snapshot["data"]["seq"].as_u64().unwrap_or(0), |f| f.1)
}

#[tokio::test]
async fn both_gateways_deliver_the_same_seq_and_the_same_bytes() {
    let cluster = Cluster::start();
    let (mut a, _) = join(cluster.gateway(0), VIEWER).await;
    let (mut b, _) = join(cluster.gateway(1), VIEWER).await;
    let (fa, fb) = tokio::join!(
        batches(&mut a, Duration::from_secs(2)),
        batches(&mut b, Duration::from_secs(2))
    );
    assert!(
        fa.len() > 10 && fb.len() > 10,
        "{} / {}",
        fa.len(),
        fb.len()
    );
    let by_range: std::collections::HashMap<(u64, u64), &str> =
        fb.iter().map(|(f, s, t)| ((*f, *s), t.as_str())).collect();
    let common: Vec<_> = fa
        .iter()
        .filter_map(|(f, s, t)| by_range.get(&(*f, *s)).map(|other| (t, other)))
        .collect();
    assert!(common.len() > 5, "the gateways' ranges overlap");
    for (mine, theirs) in common {
        assert_eq!(mine.as_str(), *theirs, "the same range, the same bytes");
    }
}

#[tokio::test]
async fn a_command_through_one_gateway_is_seen_on_the_other_and_on_the_sim_node() {
    let cluster = Cluster::start();
    let (mut op, _) = join(cluster.gateway(0), OPERATOR).await;
    let (mut watcher, _) = join(cluster.gateway(1), VIEWER).await;
    let reply = op.command("p", "pause", json!({})).await;
    assert_eq!(reply["type"], "reply", "{reply}");
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "no control item on the other gateway"
        );
        let v = watcher.next_json().await;
        let items = v["data"].as_array().cloned().unwrap_or_default();
        let control = items.iter().find(|i| i["data"]["event_type"] == "control");
        if let Some(item) = control {
            assert_eq!(item["data"]["data"]["command"], "pause", "{item}");
            assert_eq!(item["data"]["data"]["by"], "alice", "{item}");
            break;
        }
    }
    let (_, on_sim) = join(&cluster.sim.addr, VIEWER).await;
    assert_eq!(on_sim["data"]["paused"], true, "the sim node ran it");
}

#[tokio::test]
async fn a_client_resumes_on_another_gateway_with_no_gap() {
    let cluster = Cluster::start();
    let (mut a, snapshot) = join(cluster.gateway(0), VIEWER).await;
    let frames = batches(&mut a, Duration::from_secs(1)).await;
    let last = last_seen(&snapshot, &frames);
    drop(a);
    // The world goes on while the client is away: the resume must replay batches it
    // missed, not only ones that come after it returns.
    let away: std::net::SocketAddr = cluster.gateway(1).parse().expect("gateway address");
    common::wait_for_seq(away, last + 10).await;
    let (mut b, _) = join(cluster.gateway(1), VIEWER).await;
    b.send_json(json!({"type": "resume", "last_seq": last}))
        .await;
    let after = batches(&mut b, Duration::from_secs(1)).await;
    assert!(!after.is_empty());
    assert_continuous(last, &after);
}

#[tokio::test]
async fn a_killed_gateways_clients_resume_on_another_and_its_clients_never_notice() {
    let mut cluster = Cluster::start();
    let (mut staying, s0) = join(cluster.gateway(1), VIEWER).await;
    let (mut moving, m0) = join(cluster.gateway(0), VIEWER).await;
    let seen = batches(&mut moving, Duration::from_millis(700)).await;
    let last = last_seen(&m0, &seen);
    cluster.gateways[0].signal(KILL);
    cluster.gateways[0].wait_exit(WAIT);
    let (mut moved, _) = join(cluster.gateway(1), VIEWER).await;
    moved
        .send_json(json!({"type": "resume", "last_seq": last}))
        .await;
    let (after, kept) = tokio::join!(
        batches(&mut moved, Duration::from_secs(1)),
        batches(&mut staying, Duration::from_secs(1))
    );
    assert_continuous(last, &after);
    let first = kept.first().map_or(0, |f| f.0);
    assert!(first > s0["data"]["seq"].as_u64().unwrap_or(0));
    assert_continuous(first - 1, &kept);
}

/// `cluster_*` from a node's `/metrics`.
async fn cluster_metric(addr: &str, name: &str) -> f64 {
    let addr: std::net::SocketAddr = addr.parse().expect("addr");
    let auth = format!("Bearer {OPERATOR}");
    let (status, body) =
        common::http(addr, "GET", "/metrics", &[("Authorization", &auth)], "").await;
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("simcast_{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[tokio::test]
async fn a_nats_outage_keeps_clients_connected_and_their_ranges_continuous() {
    let mut cluster = Cluster::start();
    let (mut a, s) = join(cluster.gateway(0), VIEWER).await;
    let before = batches(&mut a, Duration::from_millis(500)).await;
    let last = last_seen(&s, &before);
    let deferred = cluster_metric(&cluster.sim.addr, "ticks_deferred_total").await;
    cluster.nats.stop();
    let during = batches(&mut a, Duration::from_secs(3)).await;
    assert!(
        during.len() <= 2,
        "nothing new while NATS is away: {during:?}",
        during = ranges(&during)
    );
    cluster.nats.restart();
    let after = batches(&mut a, Duration::from_secs(4)).await;
    let mut all = during;
    all.extend(after);
    assert!(all.len() > 5, "batches again after NATS is back");
    assert_continuous(last, &all);
    let deferred_now = cluster_metric(&cluster.sim.addr, "ticks_deferred_total").await;
    assert!(deferred_now > deferred, "the sim node deferred ticks");
    for addr in [cluster.gateway(0), cluster.gateway(1), &cluster.sim.addr] {
        assert_eq!(
            cluster_metric(addr, "cluster_connected").await,
            1.0,
            "{addr}"
        );
    }
    assert!(cluster_metric(cluster.gateway(0), "cluster_gaps_repaired_total").await >= 1.0);
}

#[tokio::test]
async fn a_restarted_sim_node_resyncs_the_gateways_clients_and_seq_keeps_rising() {
    let mut cluster = Cluster::start();
    let (mut a, s) = join(cluster.gateway(0), VIEWER).await;
    let before = batches(&mut a, Duration::from_millis(500)).await;
    let last = last_seen(&s, &before);
    cluster.sim.signal(KILL);
    cluster.sim.wait_exit(WAIT);
    let (sim, _) = node("sim", &cluster.nats.url(), Some(&cluster.sim_dir));
    cluster.sim = sim;
    let deadline = Instant::now() + WAIT;
    let resync = loop {
        assert!(Instant::now() < deadline, "no resync snapshot");
        let v = a.next_json().await;
        if v["type"] == "snapshot" {
            break v;
        }
        if v["type"] == "batch" {
            assert!(
                v["seq"].as_u64().unwrap_or(0) <= last + 2,
                "no batch across the restart"
            );
        }
    };
    assert_eq!(resync["data"]["resync"], true, "{resync}");
    let seq = resync["data"]["seq"].as_u64().unwrap_or(0);
    assert!(seq > last, "seq keeps rising: {seq} after {last}");
    let after = batches(&mut a, Duration::from_secs(1)).await;
    assert!(!after.is_empty());
    assert_continuous(seq, &after);
}

#[tokio::test]
async fn without_a_sim_node_a_command_gets_1004_within_5_s_and_the_connection_stays() {
    let mut cluster = Cluster::start();
    let (mut op, _) = join(cluster.gateway(0), OPERATOR).await;
    cluster.sim.signal(KILL);
    cluster.sim.wait_exit(WAIT);
    let sent = Instant::now();
    let answer = op.command("p", "pause", json!({})).await;
    assert!(
        sent.elapsed() <= Duration::from_millis(5_500),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["data"]["code"], 1004, "{answer}");
    op.send_json(json!({"type": "heartbeat"})).await;
    assert_eq!(op.next_of("heartbeat").await["type"], "heartbeat");
    let sent = Instant::now();
    let (status, body) = timeseries(cluster.gateway(0), "from_tick=0&format=csv").await;
    assert!(
        sent.elapsed() <= Duration::from_secs(7),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(status, 503, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(error["data"]["code"], 1004, "{error}");
    let message = error["data"]["message"].as_str().unwrap_or("");
    assert!(message.contains("simulation unavailable"), "{message}");
}

/// `GET /api/timeseries?<query>` on `addr` with the operator token: status and body.
async fn timeseries(addr: &str, query: &str) -> (u16, String) {
    let addr: std::net::SocketAddr = addr.parse().expect("addr");
    let auth = format!("Bearer {OPERATOR}");
    let path = format!("/api/timeseries?{query}");
    common::http(addr, "GET", &path, &[("Authorization", &auth)], "").await
}

/// [`timeseries`] once it answers 200 (a gateway answers 503 until it reaches the sim
/// node), within [`WAIT`].
async fn timeseries_ok(addr: &str, query: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = timeseries(addr, query).await;
        if status == 200 {
            return body;
        }
        assert!(Instant::now() < deadline, "{addr}: {status} {body}");
        // Pacing of the poll; the loop ends on the condition or its deadline.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn both_gateways_serve_the_sim_nodes_time_series_as_csv_and_json() {
    let cluster = Cluster::start();
    let sim = cluster.sim.addr.clone();
    // A range the sim node has already computed, so every node's answer is final.
    let deadline = Instant::now() + WAIT;
    let newest = loop {
        let body = timeseries_ok(&sim, "format=json").await;
        let all: Value = serde_json::from_str(&body).expect("JSON");
        let newest = all["rows"]
            .as_array()
            .and_then(|r| r.last())
            .map(|r| r["tick"].clone());
        match newest.and_then(|t| t.as_u64()) {
            Some(tick) if tick >= 20 => break tick,
            _ => assert!(
                Instant::now() < deadline,
                "the sim node's series grows: {all}"
            ),
        }
        // Pacing of the poll; the loop ends on the condition or its deadline.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let range = format!("from_tick={}&to_tick={newest}", newest - 20);
    for format in ["csv", "json"] {
        let query = format!("{range}&format={format}");
        let on_sim = timeseries_ok(&sim, &query).await;
        let rows = if format == "csv" {
            on_sim.lines().count() - 1
        } else {
            let v: Value = serde_json::from_str(&on_sim).expect("JSON");
            v["rows"].as_array().map_or(0, Vec::len)
        };
        assert_eq!(rows, 21, "{on_sim}");
        for gateway in [cluster.gateway(0), cluster.gateway(1)] {
            let on_gateway = timeseries_ok(gateway, &query).await;
            assert_eq!(on_gateway, on_sim, "{format} from {gateway}");
        }
    }
    let (status, body) = timeseries(cluster.gateway(0), "format=xml").await;
    assert_eq!(
        status, 400,
        "the gateway checks the query as the sim node does: {body}"
    );
}

/// Reads `c` until a `presence` whose data satisfies `want`, within [`WAIT`]; returns
/// its data.
async fn presence_where(c: &mut Client, want: impl Fn(&Value) -> bool) -> Value {
    presence_within(c, WAIT, want).await
}

/// [`presence_where`] within `within`.
async fn presence_within(c: &mut Client, within: Duration, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    let mut last = Value::Null;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, c.next_json()).await {
            Ok(v) if v["type"] == "presence" && want(&v["data"]) => return v["data"].clone(),
            Ok(v) if v["type"] == "presence" => last = v["data"].clone(),
            Ok(_) => {}
            Err(_) => panic!("no such presence within {within:?}; the last one: {last}"),
        }
    }
}

fn counts(viewers: u64, operators: u64) -> impl Fn(&Value) -> bool {
    move |d| d["viewers"] == viewers && d["operators"] == operators
}

fn listed_ids(d: &Value) -> Vec<u64> {
    d["sessions"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["session_id"].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn presence_counts_and_lists_every_gateways_sessions() {
    let mut cluster = Cluster::start();
    let (mut viewer_a, welcome_va, _) = join_welcomed(cluster.gateway(0), VIEWER).await;
    let (mut operator_a, welcome_oa, _) = join_welcomed(cluster.gateway(0), OPERATOR).await;
    let (viewer_b, welcome_vb, _) = join_welcomed(cluster.gateway(1), VIEWER).await;
    let (_operator_b, welcome_ob, _) = join_welcomed(cluster.gateway(1), OPERATOR).await;
    let ids: Vec<u64> = [&welcome_va, &welcome_oa, &welcome_vb, &welcome_ob]
        .iter()
        .map(|w| w["data"]["session_id"].as_u64().expect("session_id"))
        .collect();
    let unique: std::collections::HashSet<&u64> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        4,
        "session ids are unique across nodes: {ids:?}"
    );

    presence_where(&mut viewer_a, counts(2, 2)).await;
    let seen = presence_where(&mut operator_a, |d| {
        counts(2, 2)(d) && listed_ids(d).len() == 4
    })
    .await;
    let mut listed = listed_ids(&seen);
    listed.sort_unstable();
    let mut expected = ids.clone();
    expected.sort_unstable();
    assert_eq!(listed, expected, "{seen}");
    let roles: Vec<&str> = seen["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["role"].as_str())
        .collect();
    assert_eq!(
        roles,
        ["operator", "operator", "viewer", "viewer"],
        "operators first"
    );

    viewer_b.close().await;
    presence_where(&mut viewer_a, counts(1, 2)).await;
    let seen = presence_where(&mut operator_a, counts(1, 2)).await;
    assert!(
        !listed_ids(&seen).contains(&ids[2]),
        "the viewer who left: {seen}"
    );

    // A gateway stopped cleanly announces its leave: its sessions drop out of the
    // counts well before its roster would expire (`ROSTER_TTL`, 3 s).
    cluster.gateways[1].signal(TERM);
    presence_within(&mut viewer_a, LEAVE_SEEN_WITHIN, counts(1, 1)).await;
    let status = cluster.gateways[1].wait_exit(WAIT);
    assert!(status.success(), "a clean stop: {status:?}");

    // A node that dies drops out of everyone's counts when its roster expires.
    let (_on_sim, _) = join(&cluster.sim.addr, VIEWER).await;
    presence_where(&mut viewer_a, counts(2, 1)).await;
    cluster.sim.signal(KILL);
    cluster.sim.wait_exit(WAIT);
    presence_where(&mut viewer_a, counts(1, 1)).await;
}
