//! The world: the town, its characters, the scheduled events, and the RNG, advanced one
//! tick at a time, and the commands that change it between ticks.
//!
//! Determinism is the point of this module. The world owns the only RNG (ChaCha8 from
//! the seed, whose output is specified and the same on every platform), keeps characters
//! in a `BTreeMap` so iteration is always in id order, and never reads a clock: the
//! `now` passed to [`World::step`] and to the commands only stamps outgoing items. The
//! same seed and the same commands at the same ticks therefore give the same world and
//! the same items, which [`World::state_hash`] makes cheap to check. A character itself
//! is in `character`, the hash's encoding in `hash`.

use super::character::{default_name, Character, Identity, Inspection, Plan, Start};
use super::hash::HashedState;
use super::rules::{self, Action, Decision, Places, Reason, Situation};
use super::schedule::Schedule;
use super::town::{PlaceIdx, Town};
use crate::protocol::{
    CharState, CharacterId, CharacterView, EventId, EventNotification, Item, ItemData,
    LocationKind, LocationView,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A character that is neither traveling nor changing state gets a `character_update`
/// every this many ticks (staggered by id), which bounds update volume to about
/// `characters / UPDATE_EVERY` per tick while keeping every client's view fresh.
pub(crate) const UPDATE_EVERY: u64 = 10;

/// Errors of world commands. Each names what was not found, as clients see it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("unknown character {0}")]
    UnknownCharacter(CharacterId),
    /// Also returned for an event that already fired: it is no longer known.
    #[error("unknown event {0}")]
    UnknownEvent(EventId),
    #[error("unknown location `{0}`")]
    UnknownLocation(String),
    /// Also returned for a breakpoint that already fired: it is no longer set.
    #[error("unknown breakpoint {0}")]
    UnknownBreakpoint(u64),
    /// A `break` condition that cannot be read: where and why.
    #[error(transparent)]
    Condition(#[from] super::breakpoint::ParseError),
}

fn notification(
    event_type: &str,
    tick: u64,
    data: Value,
    event_id: Option<EventId>,
    characters: Vec<CharacterId>,
    now: f64,
) -> Item {
    Item::new(
        ItemData::EventNotification(EventNotification {
            event_type: event_type.to_owned(),
            tick,
            data,
            event_id,
            characters,
        }),
        now,
    )
}

/// The whole simulation state. Serializable as a whole (RNG position included), so a
/// saved world continues exactly where it stopped; see `persistence`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    seed: u64,
    tick: u64,
    rng: ChaCha8Rng,
    town: Town,
    characters: BTreeMap<CharacterId, Character>,
    next_character_id: CharacterId,
    schedule: Schedule,
    /// Scratch list of characters that started socializing this tick, kept between
    /// ticks only so its allocation is reused.
    #[serde(skip)]
    new_socializers: Vec<(CharacterId, PlaceIdx)>,
}

/// What every character's step shares within one tick.
struct TickContext<'a> {
    tick: u64,
    minute: u32,
    day: u64,
    town: &'a Town,
    now: f64,
}

/// The characters of a tick at a glance ([`World::census_full`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Census {
    /// Characters per state, in `CharState::ALL` order.
    pub counts: [u32; 6],
    /// Mean, lowest and highest energy, hunger and social (0 / ±inf without characters).
    pub means: [f64; 3],
    pub min: [f64; 3],
    pub max: [f64; 3],
}

impl World {
    /// A world of `characters` characters generated from `seed`: first the town, then
    /// the characters in id order, all from one RNG stream.
    pub fn new(seed: u64, characters: usize) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let town = Town::generate(&mut rng, characters);
        let mut world = World {
            seed,
            tick: 0,
            rng,
            town,
            characters: BTreeMap::new(),
            next_character_id: 1,
            schedule: Schedule::new(),
            new_socializers: Vec::new(),
        };
        for _ in 0..characters {
            world.add_character(None, None, Start::Morning);
        }
        world
    }

    /// The one way a character comes to be, for the first characters and for `spawn`
    /// alike: takes the next id, gives it its home, draws its workplace, then its state
    /// and needs, and places it at `at` (default: its home). Returns its id.
    fn add_character(
        &mut self,
        name: Option<String>,
        at: Option<PlaceIdx>,
        start: Start,
    ) -> CharacterId {
        let id = self.next_character_id;
        self.next_character_id += 1;
        let home = self.town.home_for(id - 1);
        let workplace = self.town.pick(LocationKind::Workplace, &mut self.rng);
        let (state, needs) = start.draw(&mut self.rng);
        let who = Identity {
            id,
            name: name.unwrap_or_else(|| default_name(id)),
            home,
            workplace,
        };
        let location = at.unwrap_or(home);
        let c = Character::new(who, location, state, needs, &self.town, self.tick);
        self.characters.insert(id, c);
        id
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of ticks completed.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    pub fn character_count(&self) -> usize {
        self.characters.len()
    }

    /// One character's state and needs (breakpoint conditions).
    pub fn character_state(&self, id: CharacterId) -> Option<(CharState, crate::protocol::Needs)> {
        self.characters.get(&id).map(|c| (c.state, c.needs))
    }

    /// Each character's id, state and needs, in id order (breakpoint conditions).
    pub fn character_needs(
        &self,
    ) -> impl Iterator<Item = (CharacterId, CharState, crate::protocol::Needs)> + '_ {
        self.characters.values().map(|c| (c.id, c.state, c.needs))
    }

    /// One pass over the characters: the counts per state, and the mean, lowest and
    /// highest of each need (energy, hunger, social). The time series and breakpoint
    /// conditions of a tick share it.
    pub fn census_full(&self) -> Census {
        let mut census = Census {
            counts: [0; 6],
            means: [0.0; 3],
            min: [f64::INFINITY; 3],
            max: [f64::NEG_INFINITY; 3],
        };
        for c in self.characters.values() {
            census.counts[c.state as usize] += 1;
            for (i, v) in [c.needs.energy, c.needs.hunger, c.needs.social]
                .into_iter()
                .enumerate()
            {
                census.means[i] += v;
                census.min[i] = census.min[i].min(v);
                census.max[i] = census.max[i].max(v);
            }
        }
        let n = self.characters.len().max(1) as f64;
        census.means = census.means.map(|s| s / n);
        census
    }

    /// Advances exactly one tick and appends its items to `out`.
    ///
    /// Order within a tick (deterministic): scheduled events due now; then each
    /// character in id order (its `state_change`, a `shift_ended` if it left work, its
    /// `character_update`); then `characters_met` for characters who started
    /// socializing this tick. `now` only stamps the items.
    pub fn step(&mut self, now: f64, out: &mut Vec<Item>) {
        self.tick += 1;
        self.fire_due_events(now, out);
        let tick = TickContext {
            tick: self.tick,
            minute: rules::minute_of_day(self.tick),
            day: rules::day_of(self.tick),
            town: &self.town,
            now,
        };
        let mut new_social = std::mem::take(&mut self.new_socializers);
        new_social.clear();
        for c in self.characters.values_mut() {
            step_character(c, &tick, &mut self.rng, &mut new_social, out);
        }
        self.emit_meets(&new_social, now, out);
        self.new_socializers = new_social;
    }

    /// The scheduled events due at the current tick, as `event_notification`s.
    fn fire_due_events(&mut self, now: f64, out: &mut Vec<Item>) {
        let t = self.tick;
        for ev in self.schedule.take_due(t) {
            out.push(notification(
                &ev.event_type,
                t,
                ev.data,
                Some(ev.id),
                Vec::new(),
                now,
            ));
        }
    }

    /// One `characters_met` per character that started socializing this tick, with a
    /// random other character socializing at the same place (if any). At most one meet
    /// per newcomer keeps the volume linear in arrivals even when a crowd gathers.
    /// Costs one pass over the characters, and only on ticks with newcomers.
    fn emit_meets(&mut self, newcomers: &[(CharacterId, PlaceIdx)], now: f64, out: &mut Vec<Item>) {
        if newcomers.is_empty() {
            return;
        }
        let mut crowds: BTreeMap<PlaceIdx, Vec<CharacterId>> = BTreeMap::new();
        for &(_, place) in newcomers {
            crowds.entry(place).or_default();
        }
        for c in self.characters.values() {
            if c.state == CharState::Socializing {
                if let Some(crowd) = crowds.get_mut(&c.location) {
                    crowd.push(c.id);
                }
            }
        }
        for &(id, place) in newcomers {
            // Crowds were filled in id order, so each is sorted and contains `id`.
            let Some(crowd) = crowds.get(&place) else {
                continue;
            };
            if crowd.len() < 2 {
                continue;
            }
            let me = crowd.binary_search(&id).unwrap_or(0);
            let k = self.rng.gen_range(0..crowd.len() - 1);
            let partner = if k >= me { crowd[k + 1] } else { crowd[k] };
            out.push(notification(
                "characters_met",
                self.tick,
                json!({
                    "characters": [id, partner],
                    "location": self.town.id_of(place),
                }),
                None,
                vec![id, partner],
                now,
            ));
        }
    }

    /// Forces a character into `state`, effective at the current tick.
    ///
    /// - Setting the state it is already in changes nothing and emits nothing.
    /// - `traveling`: it heads for the park (home if it is at the park already) and
    ///   becomes idle on arrival.
    /// - Any other state: entered in place. A traveling character stops where it is:
    ///   its position stays on the road and its location becomes the *nearest* place,
    ///   so the rules that follow ("am I at home?") reason about where it actually is
    ///   rather than where it set out from.
    ///
    /// Emits the `state_change` and a `character_update`.
    pub fn set_state(
        &mut self,
        id: CharacterId,
        state: CharState,
        now: f64,
        out: &mut Vec<Item>,
    ) -> Result<(), SimError> {
        let town = &self.town;
        let c = self
            .characters
            .get_mut(&id)
            .ok_or(SimError::UnknownCharacter(id))?;
        if c.state == state {
            return Ok(());
        }
        if state == CharState::Traveling {
            let to = if c.location == town.park() {
                c.home
            } else {
                town.park()
            };
            c.plan = Some(Plan {
                to,
                then: CharState::Idle,
            });
        } else if c.plan.take().is_some() {
            c.location = town.nearest(c.position);
        }
        c.enter(state, self.tick, town, now, out);
        out.push(c.update_item(town, self.tick, now));
        Ok(())
    }

    /// Adds a character, idle at `location` (default: its home), with a new id.
    /// Emits `character_spawned` and a `character_update`.
    pub fn spawn(
        &mut self,
        name: Option<String>,
        location: Option<&str>,
        now: f64,
        out: &mut Vec<Item>,
    ) -> Result<CharacterView, SimError> {
        // Validate before taking an id or drawing from the RNG, so a refused spawn
        // leaves no trace in the world.
        let at = match location {
            Some(loc) => Some(
                self.town
                    .lookup(loc)
                    .ok_or_else(|| SimError::UnknownLocation(loc.to_owned()))?,
            ),
            None => None,
        };
        let id = self.add_character(name, at, Start::Fresh);
        let c = &self.characters[&id];
        let view = c.view(&self.town);
        out.push(notification(
            "character_spawned",
            self.tick,
            json!({"character_id": id, "name": view.name, "location": view.location}),
            None,
            vec![id],
            now,
        ));
        out.push(c.update_item(&self.town, self.tick, now));
        Ok(view)
    }

    /// Removes a character; its id is never handed out again. Emits `character_removed`.
    pub fn remove(
        &mut self,
        id: CharacterId,
        now: f64,
        out: &mut Vec<Item>,
    ) -> Result<(), SimError> {
        let c = self
            .characters
            .remove(&id)
            .ok_or(SimError::UnknownCharacter(id))?;
        out.push(notification(
            "character_removed",
            self.tick,
            json!({
                "character_id": id,
                "name": c.name,
                "location": self.town.id_of(c.location),
            }),
            None,
            vec![id],
            now,
        ));
        Ok(())
    }

    /// Schedules an event `in_ticks` ticks from now. The current tick has already
    /// completed, so `in_ticks` 0 means the same as 1: the next step. The event fires
    /// as an `event_notification` in the step that completes tick `tick() + in_ticks`.
    pub fn schedule(&mut self, event_type: String, in_ticks: u64, data: Value) -> EventId {
        let due = self.tick.saturating_add(in_ticks.max(1));
        self.schedule.schedule(event_type, due, data)
    }

    /// Cancels a pending event; unknown and already-fired ids are an error.
    pub fn cancel(&mut self, id: EventId) -> Result<(), SimError> {
        if self.schedule.cancel(id) {
            Ok(())
        } else {
            Err(SimError::UnknownEvent(id))
        }
    }

    /// Every character, in id order.
    pub fn characters(&self) -> Vec<CharacterView> {
        self.characters
            .values()
            .map(|c| c.view(&self.town))
            .collect()
    }

    pub fn locations(&self) -> Vec<LocationView> {
        self.town.locations()
    }

    pub fn inspect(&self, id: CharacterId) -> Option<Inspection> {
        let c = self.characters.get(&id)?;
        Some(c.inspection(&self.town, self.tick))
    }

    /// A 64-bit FNV-1a hash of everything that determines the future of the world: the
    /// seed (which fixes the town), the tick, the RNG position, the id counters, every
    /// character and every pending event. Two worlds with equal hashes will (barring a
    /// collision) produce the same items from the same commands. The encoding is in
    /// `hash`; it is the same across builds and machines.
    pub fn state_hash(&self) -> u64 {
        HashedState {
            seed: self.seed,
            tick: self.tick,
            rng: &self.rng,
            next_character_id: self.next_character_id,
            characters: &self.characters,
            schedule: &self.schedule,
        }
        .hash()
    }
}

/// One character's part of a tick: its needs change with what it does, then it either
/// travels on or, if it is not traveling, follows the rules' decision. Its
/// `character_update` goes out if it changed state, was traveling, or is due for its
/// staggered refresh; a new socializer is noted for `emit_meets`.
fn step_character(
    c: &mut Character,
    tick: &TickContext,
    rng: &mut ChaCha8Rng,
    new_social: &mut Vec<(CharacterId, PlaceIdx)>,
    out: &mut Vec<Item>,
) {
    let before = c.state;
    c.needs = rules::update_needs(c.needs, c.state);
    let changed = match c.plan {
        Some(plan) => travel(c, plan, tick, out),
        None => decide(c, tick, rng, out),
    };
    if changed && c.state == CharState::Socializing {
        new_social.push((c.id, c.location));
    }
    let t = tick.tick;
    if changed || before == CharState::Traveling || (t + c.id).is_multiple_of(UPDATE_EVERY) {
        out.push(c.update_item(tick.town, t, tick.now));
    }
}

/// Moves a traveling character one step along its plan; on arrival it enters the
/// planned state there. Returns whether it changed state.
fn travel(c: &mut Character, plan: Plan, tick: &TickContext, out: &mut Vec<Item>) -> bool {
    let town = tick.town;
    let (pos, arrived) =
        rules::travel_step(c.position, town.position(plan.to), rules::TRAVEL_SPEED);
    c.position = pos;
    if arrived {
        c.location = plan.to;
        c.plan = None;
        c.enter(plan.then, tick.tick, town, tick.now, out);
    }
    arrived
}

/// Asks the rules what a character that is not traveling does next, and does it; a
/// character that leaves work also emits `shift_ended`. Returns whether it changed state.
fn decide(
    c: &mut Character,
    tick: &TickContext,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<Item>,
) -> bool {
    let decision = rules::decide(&situation(c, tick), &places(c, tick.town), rng);
    let changed = act(c, &decision, tick, out);
    if changed && decision.reason == Reason::ShiftEnd {
        out.push(shift_ended(c, tick));
    }
    changed
}

/// What the rules see of a character at this tick.
fn situation(c: &Character, tick: &TickContext) -> Situation {
    Situation {
        state: c.state,
        needs: c.needs,
        ticks_in_state: tick.tick.saturating_sub(c.state_since),
        at: c.location,
        minute: tick.minute,
        works_today: rules::works_on(c.id, tick.day),
        routine_offset: rules::routine_offset(c.id),
    }
}

/// The places the rules may send a character to.
fn places(c: &Character, town: &Town) -> Places {
    Places {
        home: c.home,
        workplace: c.workplace,
        market: town.market(),
        tavern: town.tavern(),
        park: town.park(),
    }
}

/// Applies a decision. Returns whether the character changed state.
fn act(c: &mut Character, decision: &Decision, tick: &TickContext, out: &mut Vec<Item>) -> bool {
    let (t, town, now) = (tick.tick, tick.town, tick.now);
    match decision.action {
        Action::Stay => false,
        Action::Become(state) => {
            c.enter(state, t, town, now, out);
            true
        }
        Action::Travel { to, then } => {
            c.plan = Some(Plan { to, then });
            c.enter(CharState::Traveling, t, town, now, out);
            true
        }
    }
}

/// The `shift_ended` notification of a character that has just left work.
fn shift_ended(c: &Character, tick: &TickContext) -> Item {
    notification(
        "shift_ended",
        tick.tick,
        json!({
            "character_id": c.id,
            "workplace": tick.town.id_of(c.workplace),
        }),
        None,
        vec![c.id],
        tick.now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Needs, StateChange};
    use crate::sim::character::RECENT_TRANSITIONS;

    fn run(world: &mut World, ticks: u64) -> Vec<Item> {
        let mut out = Vec::new();
        for _ in 0..ticks {
            world.step(0.0, &mut out);
        }
        out
    }

    fn events<'a>(items: &'a [Item], kind: &'a str) -> impl Iterator<Item = &'a EventNotification> {
        items.iter().filter_map(move |i| match &i.data {
            ItemData::EventNotification(e) if e.event_type == kind => Some(e),
            _ => None,
        })
    }

    fn state_changes(items: &[Item]) -> impl Iterator<Item = &StateChange> {
        items.iter().filter_map(|i| match &i.data {
            ItemData::StateChange(s) => Some(s),
            _ => None,
        })
    }

    #[test]
    fn new_world_is_seeded_and_at_home() {
        let w = World::new(9, 50);
        assert_eq!((w.seed(), w.tick(), w.character_count()), (9, 0, 50));
        let chars = w.characters();
        assert_eq!(
            chars.iter().map(|c| c.id).collect::<Vec<_>>(),
            (1..=50).collect::<Vec<_>>()
        );
        assert_eq!(chars[0].name, "Ada");
        assert_eq!(default_name(41), "Ada 2");
        for c in &chars {
            assert_eq!(c.location, c.home);
            assert!(matches!(c.state, CharState::Idle | CharState::Sleeping));
            assert!(c.workplace.starts_with("work_"));
        }
        assert_eq!(w.state_hash(), World::new(9, 50).state_hash());
        assert_ne!(w.state_hash(), World::new(10, 50).state_hash());
        assert_eq!(w.locations().len(), 13 + 3 + 3);
    }

    #[test]
    fn step_advances_and_changes_the_hash() {
        let mut w = World::new(1, 30);
        let h0 = w.state_hash();
        let items = run(&mut w, 1);
        assert_eq!(w.tick(), 1);
        assert_ne!(w.state_hash(), h0);
        // Nobody changes state in the first ticks (dwell), so only staggered updates.
        let updates: Vec<_> = items
            .iter()
            .filter_map(|i| match &i.data {
                ItemData::CharacterUpdate(u) => Some(u.character_id),
                _ => None,
            })
            .collect();
        assert_eq!(updates, vec![9, 19, 29]);
    }

    #[test]
    fn updates_are_bounded_for_settled_characters() {
        let mut w = World::new(3, 100);
        let items = run(&mut w, 10);
        let updates = items
            .iter()
            .filter(|i| matches!(i.data, ItemData::CharacterUpdate(_)))
            .count();
        // Each character once per 10 ticks, plus its state changes (none yet: dwell
        // covers ticks 1..4 and nothing is due by tick 10 for most).
        assert!((100..150).contains(&updates), "{updates}");
    }

    #[test]
    fn unknown_ids_are_errors_with_readable_messages() {
        let mut w = World::new(1, 3);
        let mut out = Vec::new();
        let err = w
            .set_state(999, CharState::Idle, 0.0, &mut out)
            .unwrap_err();
        assert_eq!(err, SimError::UnknownCharacter(999));
        assert_eq!(err.to_string(), "unknown character 999");
        assert_eq!(
            w.remove(999, 0.0, &mut out).unwrap_err().to_string(),
            "unknown character 999"
        );
        assert_eq!(w.cancel(7).unwrap_err().to_string(), "unknown event 7");
        assert_eq!(
            w.spawn(None, Some("moon"), 0.0, &mut out).unwrap_err(),
            SimError::UnknownLocation("moon".into())
        );
        assert!(w.inspect(999).is_none());
        assert!(out.is_empty());
        assert_eq!(w.character_count(), 3);
    }

    #[test]
    fn spawn_and_remove_continue_the_id_counter() {
        let mut w = World::new(1, 3);
        let mut out = Vec::new();
        let a = w
            .spawn(Some("Zed".into()), Some("tavern"), 0.0, &mut out)
            .unwrap();
        assert_eq!(
            (a.id, a.name.as_str(), a.location.as_str()),
            (4, "Zed", "tavern")
        );
        assert_eq!(a.state, CharState::Idle);
        assert_eq!(
            a.position,
            w.locations()
                .iter()
                .find(|l| l.id == "tavern")
                .unwrap()
                .position
        );
        let spawned: Vec<_> = events(&out, "character_spawned").collect();
        assert_eq!(spawned.len(), 1);
        assert_eq!(spawned[0].characters, vec![4]);
        assert_eq!(spawned[0].data["name"], "Zed");

        w.remove(4, 0.0, &mut out).unwrap();
        assert_eq!(events(&out, "character_removed").count(), 1);
        assert!(w.inspect(4).is_none());
        let b = w.spawn(None, None, 0.0, &mut out).unwrap();
        assert_eq!(b.id, 5, "ids are never reused");
        assert_eq!(b.name, "Elin");
        assert_eq!(b.location, b.home);
    }

    #[test]
    fn set_state_in_place_emits_change_and_update() {
        let mut w = World::new(1, 3);
        let mut out = Vec::new();
        let before = w.inspect(1).unwrap().character.state;
        let target = if before == CharState::Working {
            CharState::Eating
        } else {
            CharState::Working
        };
        w.set_state(1, target, 0.0, &mut out).unwrap();
        let changes: Vec<_> = state_changes(&out).collect();
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (changes[0].old_state, changes[0].new_state),
            (before, target)
        );
        assert!(matches!(out[1].data, ItemData::CharacterUpdate(_)));
        // Same state again: nothing happens.
        out.clear();
        w.set_state(1, target, 0.0, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn set_state_traveling_goes_to_the_park_and_arrives() {
        let mut w = World::new(2, 10);
        let mut out = Vec::new();
        w.set_state(1, CharState::Traveling, 0.0, &mut out).unwrap();
        let insp = w.inspect(1).unwrap();
        assert_eq!(insp.character.destination.as_deref(), Some("park"));
        assert_eq!(insp.pending_plan.as_deref(), Some("idle at park"));
        let mut arrived = None;
        for _ in 0..200 {
            out.clear();
            w.step(0.0, &mut out);
            // Every traveling tick carries an update for the traveler.
            assert!(out
                .iter()
                .any(|i| matches!(&i.data, ItemData::CharacterUpdate(u) if u.character_id == 1)));
            if let Some(sc) = state_changes(&out).find(|s| s.character_id == 1) {
                arrived = Some(sc.clone());
                break;
            }
        }
        let sc = arrived.expect("arrives within 200 ticks");
        assert_eq!(
            (sc.old_state, sc.new_state),
            (CharState::Traveling, CharState::Idle)
        );
        assert_eq!(sc.location, "park");
        let c = w.inspect(1).unwrap().character;
        let park = w.locations().into_iter().find(|l| l.id == "park").unwrap();
        assert_eq!((c.location.as_str(), c.position), ("park", park.position));
        assert_eq!(c.destination, None);
    }

    #[test]
    fn set_state_while_traveling_stops_at_the_nearest_place() {
        let mut w = World::new(2, 10);
        let mut out = Vec::new();
        w.set_state(1, CharState::Traveling, 0.0, &mut out).unwrap();
        w.step(0.0, &mut out);
        w.step(0.0, &mut out);
        let pos = w.inspect(1).unwrap().character.position;
        w.set_state(1, CharState::Eating, 0.0, &mut out).unwrap();
        let c = w.inspect(1).unwrap().character;
        assert_eq!(c.state, CharState::Eating);
        assert_eq!(c.position, pos, "stops where it is");
        assert_eq!(c.destination, None);
        let nearest = w.town.id_of(w.town.nearest(pos)).to_owned();
        assert_eq!(c.location, nearest);
    }

    #[test]
    fn inspect_keeps_the_last_16_transitions() {
        let mut w = World::new(4, 2);
        let mut out = Vec::new();
        let cycle = [
            CharState::Eating,
            CharState::Working,
            CharState::Socializing,
        ];
        for i in 0..20 {
            w.set_state(2, cycle[i % 3], 0.0, &mut out).unwrap();
        }
        let insp = w.inspect(2).unwrap();
        assert_eq!(insp.recent_transitions.len(), RECENT_TRANSITIONS);
        let last = insp.recent_transitions.last().unwrap();
        assert_eq!(last.to, cycle[19 % 3]);
        assert_eq!(last.from, cycle[18 % 3]);
        assert_eq!(insp.recent_transitions[0].to, cycle[4 % 3]);
        assert_eq!(insp.ticks_in_state, 0);
        // Serializes flat: character fields next to the inspection fields.
        let v = serde_json::to_value(&insp).unwrap();
        assert_eq!(v["id"], 2);
        assert_eq!(v["recent_transitions"].as_array().unwrap().len(), 16);
        assert_eq!(v["pending_plan"], Value::Null);
    }

    #[test]
    fn scheduled_events_fire_once_at_their_tick() {
        let mut w = World::new(1, 5);
        let a = w.schedule("festival".into(), 3, json!({"x": 1}));
        let b = w.schedule("storm".into(), 3, json!(null));
        let c = w.schedule("now".into(), 0, json!(null));
        assert_eq!((a, b, c), (1, 2, 3));
        w.cancel(b).unwrap();
        let mut fired = Vec::new();
        for _ in 0..6 {
            let mut out = Vec::new();
            w.step(0.0, &mut out);
            for i in out {
                if let ItemData::EventNotification(e) = i.data {
                    if e.event_id.is_some() {
                        fired.push((e.tick, e.event_id, e.event_type, e.data));
                    }
                }
            }
        }
        assert_eq!(
            fired,
            vec![
                (1, Some(3), "now".to_owned(), json!(null)),
                (3, Some(1), "festival".to_owned(), json!({"x": 1})),
            ]
        );
        assert_eq!(w.cancel(a), Err(SimError::UnknownEvent(a)), "already fired");
    }

    #[test]
    fn characters_meet_when_joining_someone_socializing() {
        let mut w = World::new(5, 3);
        let park = w.town.park();
        w.tick = 100; // 07:40, past every dwell, not work hours
        for (id, state, social) in [
            (1, CharState::Socializing, 50.0),
            (2, CharState::Idle, 10.0),
        ] {
            let c = w.characters.get_mut(&id).unwrap();
            c.state = state;
            c.state_since = 0;
            c.location = park;
            c.position = w.town.position(park);
            c.needs = Needs {
                energy: 80.0,
                hunger: 80.0,
                social,
            };
        }
        let out = run(&mut w, 1);
        let met: Vec<_> = events(&out, "characters_met").collect();
        assert_eq!(met.len(), 1, "{out:?}");
        assert_eq!(met[0].characters, vec![2, 1]);
        assert_eq!(
            met[0].data,
            json!({"characters": [2, 1], "location": "park"})
        );
    }

    #[test]
    fn a_day_cycles_through_every_state_and_ends_shifts() {
        let mut w = World::new(11, 100);
        let out = run(&mut w, 1440 * 2);
        let seen: std::collections::BTreeSet<_> =
            state_changes(&out).map(|s| s.new_state).collect();
        assert_eq!(seen.len(), CharState::ALL.len(), "{seen:?}");
        assert!(events(&out, "shift_ended").count() > 50);
        assert!(events(&out, "characters_met").count() > 0);
        for c in w.characters() {
            for n in [c.needs.energy, c.needs.hunger, c.needs.social] {
                assert!((0.0..=100.0).contains(&n));
            }
        }
    }
}

#[cfg(test)]
mod persistence_tests {
    use super::*;

    #[test]
    fn a_saved_world_reloads_bit_for_bit_and_continues_identically() {
        let mut live = World::new(9, 120);
        let mut sink = Vec::new();
        for _ in 0..300 {
            live.step(0.0, &mut sink);
        }
        live.schedule("festival".into(), 20, serde_json::json!({"x": 1}));
        let text = serde_json::to_string(&live).expect("serialize");
        let mut restored: World = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(restored.state_hash(), live.state_hash());
        for _ in 0..300 {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            live.step(0.0, &mut a);
            restored.step(0.0, &mut b);
            assert_eq!(a, b);
            assert_eq!(restored.state_hash(), live.state_hash());
        }
    }
}
