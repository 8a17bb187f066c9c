//! Breakpoints survive a restart of the real binary (issue 23): after SIGTERM (the
//! snapshot) and after SIGKILL (the journal) the same breakpoints exist with the same
//! ids, `breakpoints` lists them, one that was removed or already fired does not come
//! back, new ids continue without reuse, and a kept one still fires (`breakpoint_hit`,
//! the world paused at its tick). A `rewind` keeps the breakpoints as they are, and a
//! restart after it keeps that too.

mod common;
use common::process::{temp_dir, ServerProcess};
use common::{live, next_hit, ok, Client, OPERATOR, WAIT};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

fn config(dir: &Path) -> String {
    format!(
        "[[auth.tokens]]\ntoken = \"{OPERATOR}\"\nrole = \"operator\"\n[sim]\ncharacters = 40\ntick_rate = 20.0\n[persistence]\ndir = {:?}\nsnapshot_interval_ticks = 0\n",
        dir.join("data").display().to_string()
    )
}

fn start(dir: &Path) -> ServerProcess {
    ServerProcess::start(dir, &config(dir), &[])
        .unwrap_or_else(|log| panic!("the server did not start:\n{log}"))
}

async fn connect(server: &ServerProcess) -> Client {
    let mut c = Client::connect(&format!("ws://{}/ws?token={OPERATOR}", server.addr)).await;
    c.next_of("snapshot").await;
    c
}

async fn set(c: &mut Client, when: &str) -> u64 {
    let r = ok(c, "b", "break", json!({ "when": when })).await;
    r["breakpoint_id"].as_u64().expect("breakpoint_id")
}

/// `breakpoints` as `(id, when)`.
async fn listed(c: &mut Client) -> Vec<(u64, String)> {
    let r = ok(c, "l", "breakpoints", json!({})).await;
    let list = r["breakpoints"].as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|b| {
            let id = b["breakpoint_id"].as_u64().expect("id");
            (id, b["when"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

/// Waits until the journal on disk holds the `ticks` entry of a step that a hit of
/// breakpoint `id` ended, then the `unbreak` and `pause` the hit is journaled as, in
/// that order: what a crash after it must find.
fn wait_for_journaled_hit(dir: &Path, ticks: u64, id: u64) {
    let journal = dir.join("data").join("journal.jsonl");
    let lines = format!(
        "{{\"ticks\":{ticks}}}\n\
         {{\"cmd\":{{\"cmd\":\"unbreak\",\"args\":{{\"breakpoint_id\":{id}}}}}}}\n\
         {{\"cmd\":{{\"cmd\":\"pause\",\"args\":{{}}}}}}\n"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if text.contains(&lines) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the hit of {id} is not in the journal:\n{text}"
        );
        // Pacing of the poll; the loop ends on the line or its deadline.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(server: &mut ServerProcess, sig: i32) {
    server.signal(sig);
    let status = server.wait_exit(Duration::from_secs(15));
    if sig == libc::SIGTERM {
        assert!(status.success(), "{status:?}");
    }
}

async fn survive(sig: i32, tag: &str) {
    let dir = temp_dir(&format!("breakpoints-{tag}"));
    let mut server = start(&dir);
    let mut c = connect(&server).await;
    let mut watch = connect(&server).await;
    ok(&mut c, "p", "pause", json!({})).await;
    let t0 = live(&mut c).await["tick"].as_u64().expect("tick");
    let kept_when = format!("tick >= {}", t0 + 30);
    let kept = set(&mut c, &kept_when).await;
    let removed = set(&mut c, &format!("tick >= {}", t0 + 10)).await;
    ok(&mut c, "u", "unbreak", json!({ "breakpoint_id": removed })).await;
    let fired = set(&mut c, &format!("tick >= {}", t0 + 5)).await;
    let stepped = ok(&mut c, "s", "step", json!({"ticks": 20})).await;
    assert_eq!(stepped["tick"].as_u64(), Some(t0 + 5), "{stepped}");
    assert_eq!(stepped["stepped"].as_u64(), Some(5), "{stepped}");
    assert_eq!(next_hit(&mut watch).await["breakpoint_id"], fired);
    assert_eq!(listed(&mut c).await, vec![(kept, kept_when.clone())]);
    if sig == libc::SIGKILL {
        wait_for_journaled_hit(&dir, 5, fired);
    }
    c.close().await;
    stop(&mut server, sig);
    drop(server);

    let server = start(&dir);
    let mut c = connect(&server).await;
    let mut watch = connect(&server).await;
    assert_eq!(
        listed(&mut c).await,
        vec![(kept, kept_when.clone())],
        "the same breakpoint, the same id; the removed and the fired ones stay gone"
    );
    let before = live(&mut c).await;
    assert_eq!(before["tick"].as_u64(), Some(t0 + 5));
    assert_eq!(before["paused"], true, "the hit's pause is kept too");
    let newer = set(&mut c, &format!("tick >= {}", t0 + 100)).await;
    assert_eq!(newer, fired + 1, "ids go on without reuse");

    // It still fires, on the clock: at its tick, and the world pauses there.
    ok(&mut c, "r", "resume", json!({})).await;
    let hit = next_hit(&mut watch).await;
    assert_eq!(hit["breakpoint_id"], kept, "{hit}");
    assert_eq!(hit["when"], kept_when.as_str());
    assert_eq!(hit["tick"].as_u64(), Some(t0 + 30), "{hit}");
    let after = live(&mut c).await;
    assert_eq!(after["paused"], true);
    assert_eq!(after["tick"].as_u64(), Some(t0 + 30));
    let left: Vec<u64> = listed(&mut c).await.iter().map(|b| b.0).collect();
    assert_eq!(left, vec![newer], "it fired once");
}

#[tokio::test]
async fn breakpoints_survive_sigterm_and_still_fire() {
    survive(libc::SIGTERM, "term").await;
}

#[tokio::test]
async fn breakpoints_survive_sigkill_through_the_journal_and_still_fire() {
    survive(libc::SIGKILL, "kill").await;
}

/// `rewind` keeps the breakpoints as they are now, like the clock's settings: one set
/// after the tick rewound to stays set, one that fired before the rewind stays gone
/// although it was set at that tick. The rewound world is what a restart finds.
#[tokio::test]
async fn a_rewind_keeps_the_breakpoints_as_they_are_and_a_restart_keeps_that() {
    let dir = temp_dir("breakpoints-rewind");
    let mut server = start(&dir);
    let mut c = connect(&server).await;
    let mut watch = connect(&server).await;
    ok(&mut c, "p", "pause", json!({})).await;
    let t0 = live(&mut c).await["tick"].as_u64().expect("tick");
    let early = set(&mut c, &format!("tick >= {}", t0 + 10)).await;
    let stepped = ok(&mut c, "s", "step", json!({"ticks": 20})).await;
    assert_eq!(stepped["tick"].as_u64(), Some(t0 + 10), "{stepped}");
    assert_eq!(next_hit(&mut watch).await["breakpoint_id"], early);
    ok(&mut c, "s2", "step", json!({"ticks": 5})).await;
    let late_when = format!("tick >= {}", t0 + 40);
    let late = set(&mut c, &late_when).await;
    ok(&mut c, "rw", "rewind", json!({ "tick": t0 + 5 })).await;
    assert_eq!(live(&mut c).await["tick"].as_u64(), Some(t0 + 5));
    assert_eq!(listed(&mut c).await, vec![(late, late_when.clone())]);
    c.close().await;
    stop(&mut server, libc::SIGTERM);
    drop(server);

    let server = start(&dir);
    let mut c = connect(&server).await;
    let mut watch = connect(&server).await;
    assert_eq!(listed(&mut c).await, vec![(late, late_when)]);
    let stepped = ok(&mut c, "s3", "step", json!({"ticks": 100})).await;
    assert_eq!(
        stepped["tick"].as_u64(),
        Some(t0 + 40),
        "the early one did not come back: {stepped}"
    );
    assert_eq!(next_hit(&mut watch).await["breakpoint_id"], late);
}
