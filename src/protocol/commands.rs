//! Debug commands ([`Command`], the `cmd` + `args` of a `command` message), which the
//! operator role gates ([`OPERATOR_COMMANDS`]), and the bounds their arguments must
//! stay within (also announced in `welcome.data.limits`). Range checks serde cannot
//! express are made here, at parse time, so a parsed command is a valid one.

use super::{CharState, CharacterId, EventId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A debug command, with its arguments validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", content = "args", rename_all = "snake_case")]
pub enum Command {
    Inspect {
        character_id: CharacterId,
    },
    Snapshot {},
    Metrics {},
    Pause {},
    Resume {},
    Step {
        ticks: u64,
    },
    SetSpeed {
        tick_rate: f64,
    },
    SetState {
        character_id: CharacterId,
        state: CharState,
    },
    Spawn {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        location: Option<String>,
    },
    Remove {
        character_id: CharacterId,
    },
    Schedule {
        event_type: String,
        in_ticks: u64,
        #[serde(default)]
        data: Option<Value>,
    },
    Cancel {
        event_id: EventId,
    },
    Reset {
        #[serde(default)]
        seed: Option<u64>,
    },
    Save {},
    DebugLog {
        enabled: bool,
    },
    /// The world as it was at the end of `tick` (protocol 1.1, time travel).
    ViewAt {
        tick: u64,
    },
    /// The retained range of ticks `view_at` can show.
    Timeline {},
    /// The live world goes back to the end of `tick` and runs on from there.
    Rewind {
        tick: u64,
    },
    /// Pause at the end of the first tick where `when` holds (`sim::breakpoint`).
    Break {
        when: String,
    },
    Unbreak {
        breakpoint_id: u64,
    },
    Breakpoints {},
    /// The newest `limit` audit entries (default `audit::DEFAULT_LIMIT`).
    Audit {
        #[serde(default)]
        limit: Option<usize>,
    },
}

/// Smallest `step`: zero ticks would be a no-op that still broadcasts a control item.
pub const MIN_STEP_TICKS: u64 = 1;
/// Largest `step` a single command may ask for, so one command cannot stall the tick.
pub const MAX_STEP_TICKS: u64 = 10_000;
/// Tick-rate bounds accepted by `set_speed` (ticks per second).
pub const MIN_TICK_RATE: f64 = 0.1;
pub const MAX_TICK_RATE: f64 = 1000.0;
/// Longest `event_type` and `name` accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// The most audit entries the server keeps and `audit {limit}` can ask for.
pub const MAX_AUDIT_ENTRIES: usize = 1000;

/// Commands only an operator may run, by wire name.
pub const OPERATOR_COMMANDS: [&str; 16] = [
    "pause",
    "resume",
    "step",
    "set_speed",
    "set_state",
    "spawn",
    "remove",
    "schedule",
    "cancel",
    "reset",
    "save",
    "debug_log",
    "audit",
    "rewind",
    "break",
    "unbreak",
];

impl Command {
    /// Whether only an operator may run it.
    pub fn requires_operator(&self) -> bool {
        OPERATOR_COMMANDS.contains(&self.name())
    }

    /// The `cmd` name as on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Inspect { .. } => "inspect",
            Command::Snapshot {} => "snapshot",
            Command::Metrics {} => "metrics",
            Command::Pause {} => "pause",
            Command::Resume {} => "resume",
            Command::Step { .. } => "step",
            Command::SetSpeed { .. } => "set_speed",
            Command::SetState { .. } => "set_state",
            Command::Spawn { .. } => "spawn",
            Command::Remove { .. } => "remove",
            Command::Schedule { .. } => "schedule",
            Command::Cancel { .. } => "cancel",
            Command::Reset { .. } => "reset",
            Command::Save {} => "save",
            Command::DebugLog { .. } => "debug_log",
            Command::Audit { .. } => "audit",
            Command::ViewAt { .. } => "view_at",
            Command::Timeline {} => "timeline",
            Command::Rewind { .. } => "rewind",
            Command::Break { .. } => "break",
            Command::Unbreak { .. } => "unbreak",
            Command::Breakpoints {} => "breakpoints",
        }
    }

    /// The validated arguments as the wire spells them (`{}` when there are none), for
    /// `control` items and audit entries.
    pub fn wire_args(&self) -> Value {
        let wire = serde_json::to_value(self).unwrap_or(Value::Null);
        wire.get("args")
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()))
    }

    /// Range checks serde cannot express.
    fn check(&self) -> Result<(), String> {
        match self {
            Command::Step { ticks } if !(MIN_STEP_TICKS..=MAX_STEP_TICKS).contains(ticks) => {
                Err(format!(
                    "`ticks` must be between {MIN_STEP_TICKS} and {MAX_STEP_TICKS}, got {ticks}"
                ))
            }
            Command::SetSpeed { tick_rate }
                if !tick_rate.is_finite()
                    || *tick_rate < MIN_TICK_RATE
                    || *tick_rate > MAX_TICK_RATE =>
            {
                Err(format!(
                    "`tick_rate` must be between {MIN_TICK_RATE} and {MAX_TICK_RATE}, got {tick_rate}"
                ))
            }
            Command::Schedule { event_type, .. }
                if event_type.is_empty() || event_type.len() > MAX_NAME_LEN =>
            {
                Err(format!("`event_type` must be 1 to {MAX_NAME_LEN} bytes"))
            }
            Command::Spawn {
                name: Some(name), ..
            } if name.is_empty() || name.len() > MAX_NAME_LEN => {
                Err(format!("`name` must be 1 to {MAX_NAME_LEN} bytes"))
            }
            Command::Audit { limit: Some(n) } if *n == 0 || *n > MAX_AUDIT_ENTRIES => {
                Err(format!(
                    "`limit` must be between 1 and {MAX_AUDIT_ENTRIES}, got {n}"
                ))
            }
            _ => Ok(()),
        }
    }

    /// Parses `cmd` + `args` (missing or null args mean `{}`).
    pub fn parse(cmd: &str, args: Option<Value>) -> Result<Command, String> {
        let args = match args {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v,
            Some(_) => return Err("`args` must be an object".into()),
        };
        let mut obj = serde_json::Map::new();
        obj.insert("cmd".into(), Value::String(cmd.to_owned()));
        obj.insert("args".into(), args);
        let command: Command = serde_json::from_value(Value::Object(obj))
            .map_err(|e| format!("bad command `{cmd}`: {e}"))?;
        command.check()?;
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_args_mean_empty() {
        assert_eq!(Command::parse("snapshot", None), Ok(Command::Snapshot {}));
        assert_eq!(
            Command::parse("spawn", Some(Value::Null)),
            Ok(Command::Spawn {
                name: None,
                location: None
            })
        );
    }

    #[test]
    fn roles_gate_mutating_commands() {
        assert!(!Command::Inspect { character_id: 1 }.requires_operator());
        assert!(!Command::Snapshot {}.requires_operator());
        assert!(!Command::Metrics {}.requires_operator());
        assert!(Command::Pause {}.requires_operator());
        assert!(Command::Reset { seed: None }.requires_operator());
    }
}
