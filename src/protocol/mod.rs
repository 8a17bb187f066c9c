//! Every wire type of protocol v1 (`docs/protocol.md`), and nothing else.
//!
//! Server → client objects ([`outbound`]) are built through [`Envelope`] so that every
//! one of them has `type`, `data` and `timestamp`, plus `seq` (broadcasts) or `id`
//! (replies). Client → server messages ([`inbound`]) are parsed by
//! [`parse_client_message`], which turns any malformed input into a [`ProtocolError`]
//! carrying the contract's error code ([`codes`]) and, when the client gave one, the
//! command `id` to echo back. Commands and their bounds are in [`commands`]. This file
//! holds the vocabulary both directions share (ids, roles, character states, needs)
//! and re-exports every item, so `crate::protocol::X` names each of them.

pub(crate) mod codes;
pub(crate) mod commands;
pub(crate) mod inbound;
pub(crate) mod outbound;

pub use codes::{close, ErrorCode};
pub use commands::{
    Command, MAX_AUDIT_ENTRIES, MAX_NAME_LEN, MAX_STEP_TICKS, MAX_TICK_RATE, MIN_STEP_TICKS,
    MIN_TICK_RATE, OPERATOR_COMMANDS,
};
pub use inbound::{parse_client_message, ClientMessage, ProtocolError, Topic};
pub use outbound::{
    wire, Bounds, CharacterUpdate, CharacterView, Clock, Envelope, ErrorData, EventNotification,
    HeartbeatData, Item, ItemData, ItemKind, Limits, LocationKind, LocationView, Presence,
    PresenceSession, RateBudget, Reply, ServerInfo, Snapshot, SnapshotEncoding, StateChange,
    TransportKind, Welcome, CHARACTER_FIELDS,
};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Name reported in `welcome.server`.
pub const SERVER_NAME: &str = "simcast";
/// Version of the wire protocol this module implements.
pub const PROTOCOL_VERSION: u32 = 1;

/// Unix time in seconds as a float, the `timestamp` of every object.
pub fn now_ts() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Identifier of a character; a counter, never reused within one world.
pub type CharacterId = u64;
/// Identifier of a scheduled event; a counter, never reused within one world.
pub type EventId = u64;

/// Role attached to a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watch, subscribe, `inspect`, `snapshot`, `metrics`.
    Viewer,
    /// Everything a viewer may do, plus every command that changes the simulation.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

/// The state of a character's state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CharState {
    Idle,
    Sleeping,
    Working,
    Eating,
    Traveling,
    Socializing,
}

impl CharState {
    pub const ALL: [CharState; 6] = [
        CharState::Idle,
        CharState::Sleeping,
        CharState::Working,
        CharState::Eating,
        CharState::Traveling,
        CharState::Socializing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CharState::Idle => "idle",
            CharState::Sleeping => "sleeping",
            CharState::Working => "working",
            CharState::Eating => "eating",
            CharState::Traveling => "traveling",
            CharState::Socializing => "socializing",
        }
    }
}

impl fmt::Display for CharState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CharState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CharState::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown state `{s}`; expected one of idle, sleeping, working, eating, traveling, socializing"
                )
            })
    }
}

/// Needs of a character, each in 0–100 (100 = fully satisfied).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Needs {
    pub energy: f64,
    pub hunger: f64,
    pub social: f64,
}
