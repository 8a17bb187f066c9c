//! A journal written by the server before the journal had entry types of its own
//! (`tests/fixtures/journal-v1`: a 6-character world, seed 11, and every state-changing
//! command: pause, resume, step, set_speed, set_state, spawn with and without a name,
//! remove, schedule with and without data, cancel, reset with and without a seed),
//! replayed by `simcast replay` to the state hashes the live server reported. A rename
//! on the wire that leaked into the journal format would fail here.

mod common;
use serde_json::Value;

fn replay(until: Option<u64>) -> Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/journal-v1");
    common::process::replay(std::path::Path::new(dir), until)
}

#[test]
fn the_old_journal_replays_to_its_recorded_state_hash() {
    // Recorded from the live server's `snapshot` before it was killed (SIGKILL, so the
    // journal was not folded into a snapshot).
    let end = replay(None);
    assert_eq!(end["state_hash"], "4f45a13c8b1083a6", "{end}");
    assert_eq!(end["tick"], 12);
    assert_eq!(end["seed"], 99);
    assert_eq!(end["paused"], true);
    assert_eq!(end["replayed_entries"], 69);
}

#[test]
fn the_old_journal_replays_to_its_recorded_hash_before_the_reset() {
    // Tick 86: after the spawns, the removal, the scheduled and cancelled events, just
    // before the first `reset` (which starts the world over).
    let before = replay(Some(86));
    assert_eq!(before["state_hash"], "0c340ed566f81152", "{before}");
    assert_eq!(before["tick"], 86);
    assert_eq!(before["seed"], 11);
    assert_eq!(before["characters"], 7);
    assert_eq!(before["paused"], false);
}
