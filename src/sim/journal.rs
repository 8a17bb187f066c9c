//! The journal's entry types: what `journal.jsonl` holds, one [`JournalEntry`] a line.
//!
//! The journal has serde types of its own, apart from the wire's `protocol::Command`,
//! so that the wire can change (a field renamed, a command added) without breaking the
//! replay of journals already on disk. The names below are the journal's format, frozen
//! as first written (`{"cmd":{"cmd":"pause","args":{}}}`); they match the wire's today
//! but do not follow it. A wire command converts into a [`JournaledCommand`] when it
//! changes the state, and back into a `Command` to be applied on replay, through the
//! one `SimState::apply`. `tests/fixtures/journal-v1` is a journal written by the server
//! before this split, and `tests/journal_fixture.rs` replays it to its recorded hash.
//!
//! `break` and `unbreak` were added later (a journal without them still reads). A
//! breakpoint that fires is journaled as its `unbreak` and then a `pause`, after the
//! ticks that led to it.

use crate::protocol::{CharState, CharacterId, Command, EventId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the journal records, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JournalEntry {
    /// The world advanced this many ticks (by the clock or by `step`).
    Ticks { ticks: u64 },
    /// A command that changed the state was applied.
    Command { cmd: JournaledCommand },
}

impl JournalEntry {
    /// The entry for a state-changing command; `None` for a command that changes
    /// nothing (and so is never journaled).
    pub fn command(command: &Command) -> Option<JournalEntry> {
        JournaledCommand::from_command(command).map(|cmd| JournalEntry::Command { cmd })
    }
}

/// A state-changing command as the journal spells it. Field order is the order on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", content = "args")]
pub enum JournaledCommand {
    #[serde(rename = "pause")]
    Pause {},
    #[serde(rename = "resume")]
    Resume {},
    #[serde(rename = "step")]
    Step {
        #[serde(rename = "ticks")]
        ticks: u64,
    },
    #[serde(rename = "set_speed")]
    SetSpeed {
        #[serde(rename = "tick_rate")]
        tick_rate: f64,
    },
    #[serde(rename = "set_state")]
    SetState {
        #[serde(rename = "character_id")]
        character_id: CharacterId,
        #[serde(rename = "state")]
        state: CharState,
    },
    #[serde(rename = "spawn")]
    Spawn {
        #[serde(rename = "name", default)]
        name: Option<String>,
        #[serde(rename = "location", default)]
        location: Option<String>,
    },
    #[serde(rename = "remove")]
    Remove {
        #[serde(rename = "character_id")]
        character_id: CharacterId,
    },
    #[serde(rename = "schedule")]
    Schedule {
        #[serde(rename = "event_type")]
        event_type: String,
        #[serde(rename = "in_ticks")]
        in_ticks: u64,
        #[serde(rename = "data", default)]
        data: Option<Value>,
    },
    #[serde(rename = "cancel")]
    Cancel {
        #[serde(rename = "event_id")]
        event_id: EventId,
    },
    #[serde(rename = "reset")]
    Reset {
        #[serde(rename = "seed", default)]
        seed: Option<u64>,
    },
    #[serde(rename = "break")]
    Break {
        #[serde(rename = "when")]
        when: String,
    },
    #[serde(rename = "unbreak")]
    Unbreak {
        #[serde(rename = "breakpoint_id")]
        breakpoint_id: u64,
    },
}

impl JournaledCommand {
    /// The journal's form of a command that changes the state; `None` for the others.
    pub fn from_command(command: &Command) -> Option<JournaledCommand> {
        Some(match command.clone() {
            Command::Pause {} => JournaledCommand::Pause {},
            Command::Resume {} => JournaledCommand::Resume {},
            Command::Step { ticks } => JournaledCommand::Step { ticks },
            Command::SetSpeed { tick_rate } => JournaledCommand::SetSpeed { tick_rate },
            Command::SetState {
                character_id,
                state,
            } => JournaledCommand::SetState {
                character_id,
                state,
            },
            Command::Spawn { name, location } => JournaledCommand::Spawn { name, location },
            Command::Remove { character_id } => JournaledCommand::Remove { character_id },
            Command::Schedule {
                event_type,
                in_ticks,
                data,
            } => JournaledCommand::Schedule {
                event_type,
                in_ticks,
                data,
            },
            Command::Cancel { event_id } => JournaledCommand::Cancel { event_id },
            Command::Reset { seed } => JournaledCommand::Reset { seed },
            Command::Break { when } => JournaledCommand::Break { when },
            Command::Unbreak { breakpoint_id } => JournaledCommand::Unbreak { breakpoint_id },
            Command::Inspect { .. }
            | Command::Snapshot {}
            | Command::Metrics {}
            | Command::Save {}
            | Command::DebugLog { .. }
            | Command::ViewAt { .. }
            | Command::Timeline {}
            // A rewind is kept on disk as a snapshot of the rewound world (`sim::actor`).
            | Command::Rewind { .. }
            | Command::Breakpoints {}
            | Command::Audit { .. } => return None,
        })
    }
}

impl From<JournaledCommand> for Command {
    fn from(cmd: JournaledCommand) -> Command {
        match cmd {
            JournaledCommand::Pause {} => Command::Pause {},
            JournaledCommand::Resume {} => Command::Resume {},
            JournaledCommand::Step { ticks } => Command::Step { ticks },
            JournaledCommand::SetSpeed { tick_rate } => Command::SetSpeed { tick_rate },
            JournaledCommand::SetState {
                character_id,
                state,
            } => Command::SetState {
                character_id,
                state,
            },
            JournaledCommand::Spawn { name, location } => Command::Spawn { name, location },
            JournaledCommand::Remove { character_id } => Command::Remove { character_id },
            JournaledCommand::Schedule {
                event_type,
                in_ticks,
                data,
            } => Command::Schedule {
                event_type,
                in_ticks,
                data,
            },
            JournaledCommand::Cancel { event_id } => Command::Cancel { event_id },
            JournaledCommand::Reset { seed } => Command::Reset { seed },
            JournaledCommand::Break { when } => Command::Break { when },
            JournaledCommand::Unbreak { breakpoint_id } => Command::Unbreak { breakpoint_id },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal the server wrote before the journal had types of its own.
    const FIXTURE: &str = include_str!("../../tests/fixtures/journal-v1/journal.jsonl");

    #[test]
    fn the_fixture_journal_reads_and_writes_back_byte_for_byte() {
        let mut lines = FIXTURE.lines();
        assert_eq!(lines.next(), Some(r#"{"journal":1}"#));
        let mut commands = 0;
        for line in lines {
            let entry: JournalEntry = serde_json::from_str(line).expect(line);
            commands += usize::from(matches!(entry, JournalEntry::Command { .. }));
            assert_eq!(serde_json::to_string(&entry).expect("json"), line);
        }
        assert!(commands >= 12, "{commands}");
    }

    #[test]
    fn every_state_changing_command_round_trips_through_the_journal() {
        let commands = [
            Command::Pause {},
            Command::Resume {},
            Command::Step { ticks: 3 },
            Command::SetSpeed { tick_rate: 2.5 },
            Command::SetState {
                character_id: 4,
                state: CharState::Eating,
            },
            Command::Spawn {
                name: Some("Zed".into()),
                location: None,
            },
            Command::Remove { character_id: 2 },
            Command::Schedule {
                event_type: "fair".into(),
                in_ticks: 9,
                data: Some(serde_json::json!({"size": 3})),
            },
            Command::Cancel { event_id: 1 },
            Command::Reset { seed: Some(8) },
            Command::Break {
                when: "tick >= 5".into(),
            },
            Command::Unbreak { breakpoint_id: 1 },
        ];
        for command in commands {
            let entry = JournalEntry::command(&command).expect("state-changing");
            // Today the journal spells a command as the wire does.
            let wire = serde_json::json!({ "cmd": command });
            assert_eq!(serde_json::to_value(&entry).expect("json"), wire);
            let JournalEntry::Command { cmd } = entry else {
                unreachable!()
            };
            assert_eq!(Command::from(cmd), command);
        }
        assert!(JournalEntry::command(&Command::Snapshot {}).is_none());
    }
}
