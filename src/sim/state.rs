//! The simulation state as commands see it: the world plus what belongs with it — the
//! clock settings (paused, tick rate) and the population `reset` rebuilds.
//!
//! Plain data and one function, [`SimState::apply`]: the actor applies commands through
//! it live, and `persistence` replays the journal ([`super::journal`]) through the very
//! same function, so a replayed world *is* the live world (same state hash), not a
//! re-implementation of it.
//!
//! The breakpoints set (`break`, `unbreak`) are part of it: they survive a restart
//! like the rest, and a replayed journal sets and removes them as the live world did.

use super::breakpoint::Breakpoints;
use super::journal::JournalEntry;
use super::{SimError, World};
use crate::protocol::{Command, EventNotification, Item, ItemData};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimState {
    pub world: World,
    pub paused: bool,
    pub tick_rate: f64,
    /// Characters a `reset` creates.
    pub characters: usize,
    /// Breakpoints set and not yet fired or removed. A snapshot written before they
    /// were kept has none.
    #[serde(default)]
    pub breakpoints: Breakpoints,
}

impl SimState {
    pub fn new(seed: u64, characters: usize, tick_rate: f64) -> Self {
        SimState {
            world: World::new(seed, characters),
            paused: false,
            tick_rate,
            characters,
            breakpoints: Breakpoints::default(),
        }
    }

    /// The `control` item everyone gets for a state-changing command (protocol 1.1):
    /// `event_notification` with `data: {command, by, args}`; `None` for the others.
    pub fn control_item(command: &Command, by: &str, tick: u64, now: f64) -> Option<Item> {
        if !Self::changes_state(command) {
            return None;
        }
        let args = command.wire_args();
        let data = ItemData::EventNotification(EventNotification {
            event_type: "control".into(),
            tick,
            data: json!({ "command": command.name(), "by": by, "args": args }),
            event_id: None,
            characters: Vec::new(),
        });
        Some(Item::new(data, now))
    }

    /// Whether a command changes the state (and so goes into the journal, and is
    /// broadcast as a `control` item).
    pub fn changes_state(command: &Command) -> bool {
        matches!(
            command,
            Command::Pause {}
                | Command::Resume {}
                | Command::Step { .. }
                | Command::SetSpeed { .. }
                | Command::SetState { .. }
                | Command::Spawn { .. }
                | Command::Remove { .. }
                | Command::Schedule { .. }
                | Command::Cancel { .. }
                | Command::Reset { .. }
                | Command::Rewind { .. }
                | Command::Break { .. }
                | Command::Unbreak { .. }
        )
    }

    /// What a restored world keeps that differs from the asked-for `seed`, `characters`
    /// and `tick_rate` (config and flags), one `name: restored (asked)` entry each: a
    /// saved world wins over them, and the server says so rather than dropping them.
    pub fn differences(&self, seed: u64, characters: usize, tick_rate: f64) -> Vec<String> {
        let mut out = Vec::new();
        if self.world.seed() != seed {
            out.push(format!("seed {} (asked {seed})", self.world.seed()));
        }
        if self.characters != characters {
            out.push(format!(
                "characters {} (asked {characters})",
                self.characters
            ));
        }
        if self.tick_rate != tick_rate {
            out.push(format!("tick_rate {} (asked {tick_rate})", self.tick_rate));
        }
        out
    }

    /// Advances `n` ticks.
    pub fn step(&mut self, n: u64, now: f64, out: &mut Vec<Item>) {
        for _ in 0..n {
            self.world.step(now, out);
        }
    }

    /// Applies a state-changing command; returns its result (without `ok`). Commands
    /// that do not change state are not handled here.
    pub fn apply(
        &mut self,
        command: &Command,
        now: f64,
        out: &mut Vec<Item>,
    ) -> Result<Value, SimError> {
        Ok(match command {
            Command::Pause {} => {
                self.paused = true;
                json!({ "paused": true, "tick": self.world.tick() })
            }
            Command::Resume {} => {
                self.paused = false;
                json!({ "paused": false, "tick": self.world.tick() })
            }
            Command::Step { ticks } => {
                self.step(*ticks, now, out);
                json!({ "stepped": ticks, "tick": self.world.tick(), "paused": self.paused })
            }
            Command::SetSpeed { tick_rate } => {
                self.tick_rate = *tick_rate;
                json!({ "tick_rate": tick_rate })
            }
            Command::SetState {
                character_id,
                state,
            } => {
                self.world.set_state(*character_id, *state, now, out)?;
                json!({ "character_id": character_id, "state": state })
            }
            Command::Spawn { name, location } => {
                let character = self
                    .world
                    .spawn(name.clone(), location.as_deref(), now, out)?;
                json!({ "character_id": character.id, "character": character })
            }
            Command::Remove { character_id } => {
                self.world.remove(*character_id, now, out)?;
                json!({ "character_id": character_id })
            }
            Command::Schedule {
                event_type,
                in_ticks,
                data,
            } => {
                // The current tick is done: an event due "now" fires on the next step.
                let due_tick = self.world.tick() + (*in_ticks).max(1);
                let data = data.clone().unwrap_or_else(|| json!({}));
                let event_id = self.world.schedule(event_type.clone(), *in_ticks, data);
                json!({ "event_id": event_id, "due_tick": due_tick })
            }
            Command::Cancel { event_id } => {
                self.world.cancel(*event_id)?;
                json!({ "event_id": event_id, "cancelled": true })
            }
            Command::Reset { seed } => {
                let seed = seed.unwrap_or_else(|| self.world.seed());
                self.world = World::new(seed, self.characters);
                json!({ "seed": seed, "tick": 0 })
            }
            Command::Break { .. } | Command::Unbreak { .. } => self.apply_breakpoint(command)?,
            Command::Inspect { .. }
            | Command::Snapshot {}
            | Command::Metrics {}
            | Command::Save {}
            | Command::DebugLog { .. }
            | Command::ViewAt { .. }
            | Command::Timeline {}
            | Command::Rewind { .. }
            | Command::Breakpoints {}
            | Command::Audit { .. } => json!({}),
        })
    }

    /// `break` and `unbreak` (also how a breakpoint that fired goes away).
    fn apply_breakpoint(&mut self, command: &Command) -> Result<Value, SimError> {
        Ok(match command {
            Command::Break { when } => {
                json!({ "breakpoint_id": self.breakpoints.add(when)? })
            }
            Command::Unbreak { breakpoint_id } => {
                if !self.breakpoints.remove(*breakpoint_id) {
                    return Err(SimError::UnknownBreakpoint(*breakpoint_id));
                }
                json!({ "breakpoint_id": breakpoint_id, "removed": true })
            }
            _ => json!({}),
        })
    }

    /// How many of `entries` a replay until the end of tick `until` applies (and applies
    /// them): the rest happened after that tick.
    pub fn replay_count(&mut self, entries: &[JournalEntry], until: u64) -> usize {
        for (i, entry) in entries.iter().enumerate() {
            if self.world.tick() >= until {
                return i;
            }
            self.replay(std::slice::from_ref(entry), Some(until));
        }
        entries.len()
    }

    /// Replays journal entries in order. With `until`, stops as soon as the world has
    /// completed tick `until`: the result is the world as that tick left it, before any
    /// command issued while it was current. Returns whether every entry was applied.
    pub fn replay(&mut self, entries: &[JournalEntry], until: Option<u64>) -> bool {
        let mut sink = Vec::new();
        for entry in entries {
            match entry {
                JournalEntry::Ticks { ticks } => {
                    for _ in 0..*ticks {
                        if until.is_some_and(|u| self.world.tick() >= u) {
                            return false;
                        }
                        self.world.step(0.0, &mut sink);
                        sink.clear();
                    }
                }
                JournalEntry::Command { cmd } => {
                    if until.is_some_and(|u| self.world.tick() >= u) {
                        return false;
                    }
                    let cmd = Command::from(cmd.clone());
                    // Journaled commands succeeded live, so they succeed again; a
                    // failure here would mean a corrupt journal.
                    if let Err(e) = self.apply(&cmd, 0.0, &mut sink) {
                        log::warn!("replaying {}: {e}", cmd.name());
                    }
                    sink.clear();
                }
            }
        }
        true
    }
}

impl crate::persistence::Journaled for SimState {
    type Entry = JournalEntry;

    fn replay(&mut self, entries: &[JournalEntry], until: Option<u64>) -> bool {
        SimState::replay(self, entries, until)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn differences_name_what_a_restored_world_keeps() {
        let state = super::SimState::new(42, 200, 10.0);
        assert!(state.differences(42, 200, 10.0).is_empty());
        assert_eq!(
            state.differences(7, 1000, 10.0),
            vec!["seed 42 (asked 7)", "characters 200 (asked 1000)"]
        );
        assert_eq!(
            state.differences(42, 200, 20.0),
            vec!["tick_rate 10 (asked 20)"]
        );
    }

    use super::*;
    use crate::protocol::CharState;

    #[test]
    fn replay_of_the_journal_reproduces_the_live_state() {
        let mut live = SimState::new(3, 50, 10.0);
        let start = live.clone();
        let mut journal = Vec::new();
        let mut out = Vec::new();
        let commands = [
            Command::SetState {
                character_id: 4,
                state: CharState::Sleeping,
            },
            Command::Schedule {
                event_type: "fair".into(),
                in_ticks: 30,
                data: None,
            },
            Command::Pause {},
            Command::Spawn {
                name: Some("Zed".into()),
                location: Some("park".into()),
            },
            Command::Break {
                when: "tick >= 500".into(),
            },
            Command::Break {
                when: "any energy < 3".into(),
            },
            Command::Reset { seed: Some(8) },
            Command::Remove { character_id: 2 },
            Command::Unbreak { breakpoint_id: 1 },
        ];
        for (i, cmd) in commands.iter().enumerate() {
            live.step(17, 0.0, &mut out);
            journal.push(JournalEntry::Ticks { ticks: 17 });
            live.apply(cmd, 0.0, &mut out).expect("applies");
            journal.push(JournalEntry::command(cmd).expect("state-changing"));
            if i == 2 {
                let text = serde_json::to_string(&journal).expect("json");
                journal = serde_json::from_str(&text).expect("parse back");
            }
        }
        live.step(5, 0.0, &mut out);
        journal.push(JournalEntry::Ticks { ticks: 5 });

        let mut replayed = start.clone();
        assert!(replayed.replay(&journal, None));
        assert_eq!(replayed.world.state_hash(), live.world.state_hash());
        assert_eq!(replayed.paused, live.paused);
        assert_eq!(listed(&replayed), listed(&live));
        assert_eq!(listed(&live), vec![(2, "any energy < 3".to_owned())]);

        let mut partial = start;
        assert!(!partial.replay(&journal, Some(20)));
        assert_eq!(partial.world.tick(), 20);
    }

    fn listed(state: &SimState) -> Vec<(u64, String)> {
        let breakpoints = state.breakpoints.iter();
        breakpoints.map(|b| (b.id, b.when.clone())).collect()
    }

    #[test]
    fn breakpoints_are_saved_with_the_state_and_ids_are_not_reused() {
        let mut live = SimState::new(3, 10, 10.0);
        let mut out = Vec::new();
        for when in ["tick >= 40", "count sleeping > 2", "character 1 energy < 9"] {
            let set = Command::Break { when: when.into() };
            live.apply(&set, 0.0, &mut out).expect("applies");
        }
        let unbreak = Command::Unbreak { breakpoint_id: 3 };
        live.apply(&unbreak, 0.0, &mut out).expect("applies");
        let again = live.apply(&unbreak, 0.0, &mut out).expect_err("gone");
        assert_eq!(again.to_string(), "unknown breakpoint 3");
        let bad = Command::Break {
            when: "tick >".into(),
        };
        let err = live.apply(&bad, 0.0, &mut out).expect_err("unreadable");
        assert!(err.to_string().starts_with("condition: at 6"), "{err}");

        let text = serde_json::to_string(&live).expect("json");
        let mut restored: SimState = serde_json::from_str(&text).expect("parse back");
        assert_eq!(listed(&restored), listed(&live));
        let next = Command::Break {
            when: "tick >= 50".into(),
        };
        let id = restored.apply(&next, 0.0, &mut out).expect("applies");
        assert_eq!(id["breakpoint_id"], 4, "3 was used once already");
    }

    #[test]
    fn a_state_saved_before_breakpoints_were_kept_loads_with_none() {
        let live = SimState::new(3, 10, 10.0);
        let mut value = serde_json::to_value(&live).expect("json");
        value.as_object_mut().expect("object").remove("breakpoints");
        let mut old: SimState = serde_json::from_value(value).expect("loads");
        assert!(old.breakpoints.is_empty());
        let set = Command::Break {
            when: "tick >= 5".into(),
        };
        let id = old.apply(&set, 0.0, &mut Vec::new()).expect("applies");
        assert_eq!(id["breakpoint_id"], 1);
    }
}
