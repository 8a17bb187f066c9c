//! The simulation is a pure function of its seed and its commands.
//!
//! Two worlds built from one seed and fed the same commands at the same ticks must agree
//! on `state_hash()` after every tick and emit the same items (timestamps aside: each
//! world gets a different `now`, which proves wall-clock time never leaks into the
//! state). A different seed must diverge, and the run must be busy enough that the
//! comparison means something.

use serde_json::json;
use simcast::protocol::{CharState, EventNotification, Item, ItemData};
use simcast::sim::World;
use std::collections::{BTreeMap, BTreeSet};

const SEED: u64 = 20_240_601;
const CHARACTERS: usize = 200;
const TICKS: u64 = 1_000;

/// A command applied between steps, after the given tick has completed.
#[derive(Debug, Clone)]
enum Cmd {
    SetState(u64, CharState),
    Spawn(Option<&'static str>, Option<&'static str>),
    Remove(u64),
    Schedule(&'static str, u64),
    /// Cancels the event returned by the n-th `Schedule` of the run (0-based).
    Cancel(usize),
}

fn script() -> BTreeMap<u64, Vec<Cmd>> {
    use CharState::*;
    use Cmd::*;
    let mut s: BTreeMap<u64, Vec<Cmd>> = BTreeMap::new();
    let mut at = |tick: u64, cmd: Cmd| s.entry(tick).or_default().push(cmd);
    at(0, Schedule("market_day", 50)); // event 0: fires at tick 50
    at(0, Schedule("storm", 120)); // event 1: cancelled below
    at(3, SetState(5, Traveling));
    at(10, SetState(7, Socializing));
    at(10, SetState(8, Eating));
    at(25, Spawn(Some("Visitor"), Some("tavern")));
    at(40, Remove(12));
    at(60, Cancel(1));
    at(61, Schedule("parade", 200)); // event 2: fires at tick 261
    at(100, SetState(5, Sleeping));
    at(150, Spawn(None, None));
    at(200, SetState(201, Traveling));
    at(230, Schedule("eclipse", 0)); // event 3: in_ticks 0 = next tick, 231
    at(250, Remove(201));
    at(300, Schedule("concert", 400)); // event 4: cancelled below
    at(420, Cancel(4));
    at(500, SetState(30, Working));
    at(600, SetState(31, Idle));
    at(777, Remove(3));
    s
}

/// Everything one run produced, for comparing and for checking the run was not trivial.
struct Run {
    hashes: Vec<u64>,
    /// Items per tick, timestamps stripped.
    items: Vec<Vec<ItemData>>,
    event_ids: Vec<u64>,
    final_world: World,
}

fn run(seed: u64, clock: impl Fn(u64) -> f64) -> Run {
    let mut world = World::new(seed, CHARACTERS);
    let script = script();
    let mut event_ids = Vec::new();
    let mut hashes = vec![world.state_hash()];
    let mut items = Vec::new();
    let mut out: Vec<Item> = Vec::new();
    for tick in 0..TICKS {
        let now = clock(tick);
        for cmd in script.get(&tick).into_iter().flatten() {
            match cmd {
                Cmd::SetState(id, state) => world
                    .set_state(*id, *state, now, &mut out)
                    .expect("scripted character exists"),
                Cmd::Spawn(name, location) => {
                    world
                        .spawn(name.map(str::to_owned), *location, now, &mut out)
                        .expect("scripted location exists");
                }
                Cmd::Remove(id) => world
                    .remove(*id, now, &mut out)
                    .expect("scripted character exists"),
                Cmd::Schedule(kind, in_ticks) => event_ids.push(world.schedule(
                    (*kind).to_owned(),
                    *in_ticks,
                    json!({"scripted": kind}),
                )),
                Cmd::Cancel(n) => world.cancel(event_ids[*n]).expect("event is pending"),
            }
        }
        world.step(now, &mut out);
        assert_eq!(world.tick(), tick + 1);
        for item in &out {
            assert_eq!(
                item.timestamp, now,
                "items carry the `now` they were made at"
            );
        }
        hashes.push(world.state_hash());
        items.push(out.drain(..).map(|i| i.data).collect());
    }
    Run {
        hashes,
        items,
        event_ids,
        final_world: world,
    }
}

fn notifications(run: &Run) -> impl Iterator<Item = &EventNotification> {
    run.items.iter().flatten().filter_map(|d| match d {
        ItemData::EventNotification(e) => Some(e),
        _ => None,
    })
}

#[test]
fn same_seed_same_commands_same_world_every_tick() {
    let a = run(SEED, |t| 1_700_000_000.0 + t as f64 * 0.1);
    let b = run(SEED, |t| 42.0 + t as f64 * 7.0);
    assert_eq!(a.hashes.len(), TICKS as usize + 1);
    for (tick, (ha, hb)) in a.hashes.iter().zip(&b.hashes).enumerate() {
        assert_eq!(ha, hb, "state hash differs after tick {tick}");
    }
    for (tick, (ia, ib)) in a.items.iter().zip(&b.items).enumerate() {
        assert_eq!(ia, ib, "items differ at tick {}", tick + 1);
    }
    assert_eq!(a.final_world.characters(), b.final_world.characters());
    assert_eq!(a.final_world.locations(), b.final_world.locations());
}

#[test]
fn a_different_seed_diverges() {
    let a = run(SEED, |_| 0.0);
    let c = run(SEED + 1, |_| 0.0);
    assert_ne!(
        a.hashes[0], c.hashes[0],
        "different seeds give different worlds"
    );
    let differing = a
        .hashes
        .iter()
        .zip(&c.hashes)
        .filter(|(x, y)| x != y)
        .count();
    assert_eq!(differing, a.hashes.len(), "and they never coincide");
    assert_ne!(a.items, c.items);
    assert_ne!(a.final_world.locations(), c.final_world.locations());
}

#[test]
fn the_run_is_not_trivial() {
    let a = run(SEED, |_| 0.0);
    let changes: Vec<_> = a
        .items
        .iter()
        .flatten()
        .filter_map(|d| match d {
            ItemData::StateChange(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(
        changes.len() > 2_000,
        "only {} state changes",
        changes.len()
    );
    let seen: BTreeSet<CharState> = changes
        .iter()
        .flat_map(|s| [s.old_state, s.new_state])
        .collect();
    assert_eq!(
        seen,
        CharState::ALL.into_iter().collect(),
        "every state appears"
    );
    let departures = changes
        .iter()
        .filter(|s| s.new_state == CharState::Traveling)
        .count();
    let arrivals = changes
        .iter()
        .filter(|s| s.old_state == CharState::Traveling)
        .count();
    assert!(
        departures > 100 && arrivals > 100,
        "{departures} / {arrivals}"
    );
    assert!(
        notifications(&a).any(|e| e.event_type == "characters_met"),
        "characters meet"
    );
    assert!(notifications(&a).any(|e| e.event_type == "shift_ended"));
    assert_eq!(
        notifications(&a)
            .filter(|e| e.event_type == "character_spawned")
            .count(),
        2
    );
    assert_eq!(
        notifications(&a)
            .filter(|e| e.event_type == "character_removed")
            .count(),
        3
    );
    assert_eq!(a.final_world.character_count(), CHARACTERS + 2 - 3);
}

#[test]
fn scheduled_events_fire_once_at_their_tick_and_cancelled_never() {
    let a = run(SEED, |_| 0.0);
    assert_eq!(a.event_ids, vec![1, 2, 3, 4, 5]);
    let fired: Vec<_> = notifications(&a)
        .filter(|e| e.event_id.is_some())
        .map(|e| (e.event_id, e.event_type.as_str(), e.tick, e.data.clone()))
        .collect();
    assert_eq!(
        fired,
        vec![
            (Some(1), "market_day", 50, json!({"scripted": "market_day"})),
            (Some(4), "eclipse", 231, json!({"scripted": "eclipse"})),
            (Some(3), "parade", 261, json!({"scripted": "parade"})),
        ]
    );
    // Each fired in the step that completed its due tick.
    for (tick_index, items) in a.items.iter().enumerate() {
        for d in items {
            if let ItemData::EventNotification(e) = d {
                if e.event_id.is_some() {
                    assert_eq!(e.tick, tick_index as u64 + 1);
                }
            }
        }
    }
}
