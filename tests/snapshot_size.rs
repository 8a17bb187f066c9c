//! The join snapshot's wire size and rounding. Every client gets a snapshot on
//! connect, so at 1 000 characters its size is the cost of a reconnect storm. The wire
//! rounds positions and needs (`protocol::wire`); these tests pin what that buys, check
//! that the rounding stays on the wire (the world keeps its exact floats) and that
//! `destination` is present exactly while traveling. The compact encoding
//! (`?snapshot=compact`) must carry exactly what the objects carry, in far fewer bytes.

use serde_json::Value;
use simcast::protocol::{Envelope, Snapshot, SnapshotEncoding, CHARACTER_FIELDS};
use simcast::sim::World;

/// Bytes of the whole `snapshot` frame at 1 000 characters (~218 KB now; ~310 KB with
/// full-precision floats). Not the 150 KB once hoped for: with each character an object
/// with the contract's member names, the names and punctuation alone are ~97 bytes a
/// character, and the bare contract fields at this rounding already come to ~137 KB
/// before the ~22 KB of locations. Going lower needs another shape (a contract change).
const BUDGET_1000: usize = 225_000;
/// The same at 200 characters (~62 KB before rounding).
const BUDGET_200: usize = 46_000;
/// The compact encoding at 1 000 characters: the 150 KB target (~85 KB now).
const COMPACT_BUDGET_1000: usize = 150_000;

/// A world of `characters` characters after `ticks` ticks (so some are traveling).
fn world(characters: usize, ticks: u64) -> World {
    let mut world = World::new(7, characters);
    let mut out = Vec::new();
    for _ in 0..ticks {
        world.step(1.0, &mut out);
        out.clear();
    }
    world
}

/// The `snapshot` frame, encoded as the broker encodes it.
fn encoded_snapshot(world: &World) -> String {
    Envelope::new("snapshot", &snapshot_of(world)).to_json()
}

fn snapshot_of(world: &World) -> Snapshot {
    Snapshot {
        tick: world.tick(),
        clock: simcast::sim::rules::clock_at(world.tick()),
        paused: false,
        tick_rate: 10.0,
        seed: world.seed(),
        state_hash: format!("{:016x}", world.state_hash()),
        characters: world.characters(),
        locations: world.locations(),
        seq: 123_456,
        resync: false,
    }
}

fn parse(frame: &str) -> Value {
    serde_json::from_str(frame).expect("a snapshot frame is JSON")
}

#[test]
fn snapshot_fits_its_budget_at_200_and_1000_characters() {
    for (n, budget) in [(200, BUDGET_200), (1000, BUDGET_1000)] {
        for ticks in [0, 600] {
            let len = encoded_snapshot(&world(n, ticks)).len();
            eprintln!("{n} characters, tick {ticks}: {len} bytes");
            assert!(len <= budget, "{n} characters: {len} > {budget} bytes");
        }
    }
}

#[test]
fn wire_values_are_rounded_and_the_world_is_not() {
    let w = world(200, 600);
    let hash = w.state_hash();
    let frame = parse(&encoded_snapshot(&w));
    assert_eq!(w.state_hash(), hash, "encoding leaves the world alone");
    let views = w.characters();
    let wire = frame["data"]["characters"].as_array().expect("characters");
    assert_eq!(wire.len(), views.len());
    for (c, v) in wire.iter().zip(&views) {
        for (i, p) in v.position.iter().enumerate() {
            let got = c["position"][i].as_f64().expect("position");
            assert_eq!(got, (p * 10.0).round() / 10.0, "{c}");
        }
        for (k, need) in [
            ("energy", v.needs.energy),
            ("hunger", v.needs.hunger),
            ("social", v.needs.social),
        ] {
            assert_eq!(c["needs"][k].as_i64(), Some(need.round() as i64), "{c}");
        }
        assert_eq!(c["destination"].as_str(), v.destination.as_deref(), "{c}");
        for key in [
            "id",
            "name",
            "state",
            "location",
            "home",
            "workplace",
            "state_since",
        ] {
            assert!(c.get(key).is_some(), "{key} missing in {c}");
        }
    }
    assert!(views.iter().any(|v| v.destination.is_some()), "some travel");
    assert!(views.iter().any(|v| v.destination.is_none()));
}

#[test]
fn inspect_rounds_like_the_snapshot() {
    let w = world(50, 300);
    let snapshot = parse(&encoded_snapshot(&w));
    let first = &snapshot["data"]["characters"][0];
    let id = first["id"].as_u64().expect("id");
    let inspection = serde_json::to_value(w.inspect(id).expect("character")).expect("json");
    for key in ["position", "needs", "state", "location"] {
        assert_eq!(inspection[key], first[key], "{key}");
    }
}

#[test]
fn the_compact_snapshot_fits_150_kb_at_1000_characters() {
    for ticks in [0, 600] {
        let snapshot = snapshot_of(&world(1000, ticks));
        let len = snapshot.to_frame(SnapshotEncoding::Compact, None).len();
        let objects = snapshot.to_frame(SnapshotEncoding::Objects, None).len();
        eprintln!("1000 characters, tick {ticks}: compact {len} bytes, objects {objects}");
        assert!(len <= COMPACT_BUDGET_1000, "{len} > {COMPACT_BUDGET_1000}");
    }
}

/// Expands a compact row the way a client does: a field per column, `position` and
/// `needs` as in objects, a `null` destination left out.
fn expand(fields: &[Value], row: &Value) -> Value {
    let mut object = serde_json::Map::new();
    for (field, value) in fields.iter().zip(row.as_array().expect("row")) {
        let field = field.as_str().expect("field name");
        let value = match field {
            "needs" => serde_json::json!({
                "energy": value[0], "hunger": value[1], "social": value[2]
            }),
            "destination" if value.is_null() => continue,
            _ => value.clone(),
        };
        object.insert(field.to_owned(), value);
    }
    Value::Object(object)
}

#[test]
fn the_compact_snapshot_carries_exactly_what_the_objects_carry() {
    let snapshot = snapshot_of(&world(200, 600));
    let objects = parse(&snapshot.to_frame(SnapshotEncoding::Objects, None));
    let compact = parse(&snapshot.to_frame(SnapshotEncoding::Compact, None));
    let (o, c) = (&objects["data"], &compact["data"]);
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("data").keys().cloned().collect();
        k.retain(|k| k != "character_fields");
        k.sort();
        k
    };
    assert_eq!(keys(o), keys(c), "the same fields besides character_fields");
    for key in keys(o).iter().filter(|k| *k != "characters") {
        assert_eq!(o[key], c[key], "{key}");
    }
    let fields = c["character_fields"].as_array().expect("character_fields");
    assert_eq!(fields.len(), CHARACTER_FIELDS.len());
    let rows = c["characters"].as_array().expect("rows");
    let wanted = o["characters"].as_array().expect("objects");
    assert_eq!(rows.len(), wanted.len());
    for (row, want) in rows.iter().zip(wanted) {
        assert_eq!(&expand(fields, row), want);
    }
}
