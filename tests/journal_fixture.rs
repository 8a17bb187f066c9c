//! A journal written by the server before the journal had entry types of its own
//! (`tests/fixtures/journal-v1`: a 6-character world, seed 11, and every state-changing
//! command: pause, resume, step, set_speed, set_state, spawn with and without a name,
//! remove, schedule with and without data, cancel, reset with and without a seed),
//! replayed by `simcast replay`. A rename on the wire that leaked into the journal
//! format would fail here.
//!
//! What is pinned, and what a change of the town's rules must do:
//! - The shape of the replay (ticks, seeds, character count, paused, entries) is pinned
//!   in this file: it follows from the journal alone, so it never changes with the rules.
//!   A failure there is a journal-format break: fix the code, not the fixture.
//! - The state hashes (`fixtures/journal-v1/expected_hashes.json`) depend on the rules
//!   (needs, schedules, movement, the RNG's use). They were first recorded from the live
//!   server that wrote the journal. A change that alters the rules on purpose
//!   regenerates them with
//!   `cargo test --test journal_fixture -- --ignored regenerate_expected_hashes`
//!   (it first checks the shape above, so it cannot paper over a format break) and
//!   commits the new file with a line in the commit message saying which rule changed
//!   and why the hashes move. `fixtures/journal-v1/README.md` says the same.

mod common;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-v1")
}

fn replay(until: Option<u64>) -> Value {
    common::process::replay(&fixture(), until)
}

/// The hashes the replay must reach: `end` (the whole journal) and `until_86`.
fn expected_hashes() -> Value {
    let path = fixture().join("expected_hashes.json");
    let text = std::fs::read_to_string(&path).expect("expected_hashes.json");
    serde_json::from_str(&text).expect("expected_hashes.json is JSON")
}

/// The whole journal: recorded from the live server's `snapshot` before it was killed
/// (SIGKILL, so the journal was not folded into a snapshot). Checks the shape; returns
/// the replay.
fn replay_to_the_end() -> Value {
    let end = replay(None);
    assert_eq!(end["tick"], 12, "{end}");
    assert_eq!(end["seed"], 99, "{end}");
    assert_eq!(end["paused"], true, "{end}");
    assert_eq!(end["replayed_entries"], 69, "{end}");
    end
}

/// Tick 86: after the spawns, the removal, the scheduled and cancelled events, just
/// before the first `reset` (which starts the world over). Checks the shape; returns
/// the replay.
fn replay_to_86() -> Value {
    let before = replay(Some(86));
    assert_eq!(before["tick"], 86, "{before}");
    assert_eq!(before["seed"], 11, "{before}");
    assert_eq!(before["characters"], 7, "{before}");
    assert_eq!(before["paused"], false, "{before}");
    before
}

#[test]
fn the_old_journal_replays_to_its_recorded_state_hash() {
    let end = replay_to_the_end();
    assert_eq!(end["state_hash"], expected_hashes()["end"], "{end}");
}

#[test]
fn the_old_journal_replays_to_its_recorded_hash_before_the_reset() {
    let before = replay_to_86();
    assert_eq!(
        before["state_hash"],
        expected_hashes()["until_86"],
        "{before}"
    );
}

/// Not a check: rewrites `expected_hashes.json` from today's rules (see the module
/// docs for when). Run with
/// `cargo test --test journal_fixture -- --ignored regenerate_expected_hashes`.
#[test]
#[ignore = "rewrites the fixture; run only after an intended change of the rules"]
fn regenerate_expected_hashes() {
    let end = replay_to_the_end();
    let before = replay_to_86();
    let hashes = serde_json::json!({
        "end": end["state_hash"],
        "until_86": before["state_hash"],
    });
    assert!(
        hashes["end"].is_string() && hashes["until_86"].is_string(),
        "{hashes}"
    );
    let text = serde_json::to_string_pretty(&hashes).expect("JSON") + "\n";
    let path = fixture().join("expected_hashes.json");
    std::fs::write(&path, text).expect("write expected_hashes.json");
    eprintln!("wrote {}: {hashes}", path.display());
}
