//! Every wire type of protocol v1 (`docs/protocol.md`), and nothing else.
//!
//! Server → client objects are built through [`Envelope`] so that every one of them
//! has `type`, `data` and `timestamp`, plus `seq` (broadcasts) or `id` (replies).
//! Client → server messages are parsed by [`parse_client_message`], which turns any
//! malformed input into a [`ProtocolError`] carrying the contract's error code and, when
//! the client gave one, the command `id` to echo back.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
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

/// Application error codes carried in `error.data.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Not JSON, not an object, unknown type or cmd, missing or ill-typed field,
    /// binary frame, unknown character or event id.
    InvalidMessage = 1001,
    /// A command the role may not run; `auth` sent twice.
    AuthFailed = 1002,
    /// Over the per-connection message budget; the message was not executed.
    RateLimit = 1003,
    /// The server failed to do what was asked.
    ServerError = 1004,
}

impl ErrorCode {
    pub fn as_u16(self) -> u16 {
        self as u16
    }
}

/// WebSocket close codes the server uses.
pub mod close {
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Invalid token, authentication timeout, or flooding past twice the rate budget.
    pub const POLICY: u16 = 1008;
    /// A frame over `max_message_bytes`.
    pub const TOO_BIG: u16 = 1009;
    /// The connection pool is full.
    pub const TRY_AGAIN: u16 = 1013;

    pub const REASON_INVALID_TOKEN: &str = "Invalid token";
    pub const REASON_AUTH_TIMEOUT: &str = "Authentication timeout";
    pub const REASON_POOL_FULL: &str = "Maximum connections reached";
    pub const REASON_RATE: &str = "Rate limit exceeded";
    pub const REASON_TOO_BIG: &str = "Message too big";
    pub const REASON_TIMEOUT: &str = "Client timeout";
    pub const REASON_SHUTDOWN: &str = "Server shutting down";
}

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

/// Wire rounding of positions and needs.
///
/// A 1 000-character snapshot with full-precision floats is ~310 KB, most of it digits
/// no client shows: the dashboard and the CLI draw positions on a 1000 × 1000 plane and
/// print needs as whole numbers. So the wire carries positions to 0.1 and needs as whole
/// numbers, in every object that has them (snapshot characters and locations, `inspect`,
/// `character_update`), so that a client sees the same value whichever object it last
/// read. Rounding happens here, at serialization, and nowhere else: the world, its
/// `state_hash`, saved worlds and determinism all keep the exact floats.
pub mod wire {
    use super::Needs;
    use serde::ser::{SerializeStruct, SerializeTuple};
    use serde::Serializer;

    /// Rounds to one decimal, the precision of positions on the wire.
    pub fn tenth(v: f64) -> f64 {
        (v * 10.0).round() / 10.0
    }

    /// A need (0–100) as the whole number the wire carries.
    pub fn whole(v: f64) -> i64 {
        // `as` saturates and maps NaN to 0; needs are clamped to 0–100 anyway.
        v.round() as i64
    }

    /// `[x, y]`, each to one decimal.
    pub fn position<S: Serializer>(p: &[f64; 2], serializer: S) -> Result<S::Ok, S::Error> {
        let mut t = serializer.serialize_tuple(2)?;
        t.serialize_element(&tenth(p[0]))?;
        t.serialize_element(&tenth(p[1]))?;
        t.end()
    }

    /// `{energy, hunger, social}` as whole numbers.
    pub fn needs<S: Serializer>(n: &Needs, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Needs", 3)?;
        s.serialize_field("energy", &whole(n.energy))?;
        s.serialize_field("hunger", &whole(n.hunger))?;
        s.serialize_field("social", &whole(n.social))?;
        s.end()
    }
}

/// A character as clients see it (snapshots, `inspect`). Positions and needs are
/// rounded when serialized (see [`wire`]); the fields themselves keep full precision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CharacterView {
    pub id: CharacterId,
    pub name: String,
    pub state: CharState,
    /// Id of the place the character is at; while traveling, the place it left.
    pub location: String,
    #[serde(serialize_with = "wire::position")]
    pub position: [f64; 2],
    #[serde(serialize_with = "wire::needs")]
    pub needs: Needs,
    /// Id of the place the character is heading to while traveling; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    pub home: String,
    pub workplace: String,
    /// Tick at which the current state was entered.
    pub state_since: u64,
}

/// Kind of a place in the town.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationKind {
    Home,
    Workplace,
    Market,
    Tavern,
    Park,
}

/// A place in the town (snapshots).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocationView {
    pub id: String,
    pub name: String,
    pub kind: LocationKind,
    #[serde(serialize_with = "wire::position")]
    pub position: [f64; 2],
}

/// `state_change` item data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateChange {
    pub character_id: CharacterId,
    pub name: String,
    pub old_state: CharState,
    pub new_state: CharState,
    pub location: String,
    pub tick: u64,
}

/// `event_notification` item data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventNotification {
    pub event_type: String,
    pub tick: u64,
    pub data: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// Characters this event is about, for `character:<id>` topics. Not on the wire.
    #[serde(skip)]
    pub characters: Vec<CharacterId>,
}

/// `character_update` item data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CharacterUpdate {
    pub character_id: CharacterId,
    pub state: CharState,
    pub location: String,
    #[serde(serialize_with = "wire::position")]
    pub position: [f64; 2],
    #[serde(serialize_with = "wire::needs")]
    pub needs: Needs,
    pub tick: u64,
}

/// The payload of one batch item.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemData {
    StateChange(StateChange),
    EventNotification(EventNotification),
    CharacterUpdate(CharacterUpdate),
}

/// The three item kinds, which are also the three kind topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKind {
    StateChange,
    EventNotification,
    CharacterUpdate,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::StateChange => "state_change",
            ItemKind::EventNotification => "event_notification",
            ItemKind::CharacterUpdate => "character_update",
        }
    }
}

/// One element of a `batch`: `{type, data, timestamp}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub data: ItemData,
    /// When the simulation produced it (Unix seconds); latency is measured from here.
    pub timestamp: f64,
}

impl Item {
    pub fn new(data: ItemData, timestamp: f64) -> Self {
        Item { data, timestamp }
    }

    pub fn kind(&self) -> ItemKind {
        match self.data {
            ItemData::StateChange(_) => ItemKind::StateChange,
            ItemData::EventNotification(_) => ItemKind::EventNotification,
            ItemData::CharacterUpdate(_) => ItemKind::CharacterUpdate,
        }
    }

    /// Whether this item is about the given character (`character:<id>` topics).
    pub fn concerns(&self, id: CharacterId) -> bool {
        match &self.data {
            ItemData::StateChange(s) => s.character_id == id,
            ItemData::CharacterUpdate(u) => u.character_id == id,
            ItemData::EventNotification(e) => e.characters.contains(&id),
        }
    }
}

impl Serialize for Item {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("type", self.kind().as_str())?;
        match &self.data {
            ItemData::StateChange(d) => map.serialize_entry("data", d)?,
            ItemData::EventNotification(d) => map.serialize_entry("data", d)?,
            ItemData::CharacterUpdate(d) => map.serialize_entry("data", d)?,
        }
        map.serialize_entry("timestamp", &self.timestamp)?;
        map.end()
    }
}

/// Every server → client object: `{type, id?, seq?, data, timestamp}`.
#[derive(Debug, Serialize)]
pub struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub data: T,
    pub timestamp: f64,
}

impl<'a, T: Serialize> Envelope<'a, T> {
    pub fn new(kind: &'a str, data: T) -> Self {
        Envelope {
            kind,
            id: None,
            seq: None,
            data,
            timestamp: now_ts(),
        }
    }

    pub fn with_id(mut self, id: Option<&'a Value>) -> Self {
        self.id = id;
        self
    }

    pub fn with_seq(mut self, seq: u64) -> Self {
        self.seq = Some(seq);
        self
    }

    /// Serializes to a JSON string. Our types contain no maps with non-string keys and
    /// no non-finite floats by construction, so failure is a bug; it is logged and an
    /// `error` object is returned instead of panicking.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            log::error!("serializing {} failed: {e}", self.kind);
            format!(
                r#"{{"type":"error","data":{{"code":1004,"message":"serialization failed"}},"timestamp":{}}}"#,
                now_ts()
            )
        })
    }
}

/// A `reply`'s data: a command's result with `"ok": true`. The one place `ok` is set:
/// every reply (WebSocket, `POST /api/command`, the broker's snapshot replies) is built here.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply(Value);

impl Reply {
    /// The result of a command that succeeded; an object gains `"ok": true`.
    pub fn new(mut data: Value) -> Self {
        if let Value::Object(map) = &mut data {
            map.insert("ok".into(), Value::Bool(true));
        }
        Reply(data)
    }

    pub fn data(&self) -> &Value {
        &self.0
    }

    /// The `reply` object, answering the command `id` if it had one.
    pub fn to_json(&self, id: Option<&Value>) -> String {
        Envelope::new("reply", &self.0).with_id(id).to_json()
    }
}

/// `welcome` data.
#[derive(Debug, Clone, Serialize)]
pub struct Welcome {
    pub session_id: u64,
    pub role: Role,
    pub server: ServerInfo,
    pub heartbeat_interval_ms: u64,
    pub seq: u64,
    pub protocol: u32,
    /// What this server allows (protocol 1.1): clients read these, never copies.
    pub limits: Limits,
    /// Random per server start: a client that sees it change knows the server restarted
    /// (its `seq` may have restarted too).
    pub boot_id: String,
}

/// `welcome.data.limits`: every bound a client must stay within, taken from the
/// server's own config and rules (nothing here is a second copy of them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    /// The per-connection message budget (`session.rate_limit_*`).
    pub rate: RateBudget,
    /// Largest client message (`server.max_message_bytes`); bigger closes with 1009.
    pub max_message_bytes: usize,
    /// `step {ticks}` accepts `min..=max`.
    pub step_ticks: Bounds<u64>,
    /// `set_speed {tick_rate}` accepts `min..=max` ticks per second.
    pub tick_rate: Bounds<f64>,
    /// Positions lie in `0..=town_size` on both axes.
    pub town_size: f64,
}

/// Messages per window, counted after authentication (see `session::rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateBudget {
    pub messages: u32,
    pub window_ms: u64,
}

/// An inclusive range of accepted values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bounds<T> {
    pub min: T,
    pub max: T,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    pub name: &'static str,
    pub version: &'static str,
}

impl ServerInfo {
    pub fn current() -> Self {
        ServerInfo {
            name: SERVER_NAME,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// The game clock at a tick (protocol 1.1): clients show this and advance it by the
/// `tick` of later items (one tick is one game minute); they never derive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Clock {
    /// The game day; the first day is 1.
    pub day: u64,
    /// Minute of the day, 0–1439.
    pub minute_of_day: u32,
}

/// `snapshot` data: the whole world as of batch `seq`.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub tick: u64,
    /// The game clock at `tick`.
    pub clock: Clock,
    pub paused: bool,
    pub tick_rate: f64,
    pub seed: u64,
    /// `World::state_hash` in hex: equal hashes mean equal worlds (determinism checks,
    /// replay, restarts).
    pub state_hash: String,
    pub characters: Vec<CharacterView>,
    pub locations: Vec<LocationView>,
    /// Every batch up to and including `seq` is reflected in this snapshot.
    pub seq: u64,
    pub resync: bool,
}

/// `presence` data (protocol 1.1): who is connected, pushed (coalesced) to everyone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Presence {
    pub viewers: usize,
    pub operators: usize,
    /// Only in operators' presence: every connected session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Vec<PresenceSession>>,
}

/// One connected session, as operators see it: the token's label, never the token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PresenceSession {
    pub session_id: u64,
    pub role: Role,
    pub name: String,
    pub transport: TransportKind,
    /// When it authenticated, Unix seconds.
    pub since: f64,
}

/// How a session is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    Ws,
    Sse,
}

/// `error` data.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorData {
    pub code: u16,
    pub message: String,
}

/// `heartbeat` data.
#[derive(Debug, Clone, Serialize)]
pub struct HeartbeatData {
    pub server_time: f64,
}

/// A client → server message, after validation.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    Auth { token: String },
    Subscribe { topics: Vec<Topic> },
    Unsubscribe { topics: Vec<Topic> },
    Command { id: Option<Value>, command: Command },
    Heartbeat,
    Resume { last_seq: u64 },
}

/// A subscription topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Kind(ItemKind),
    Character(CharacterId),
}

impl Topic {
    /// The topics a new connection starts with.
    pub const DEFAULT: [Topic; 2] = [
        Topic::Kind(ItemKind::StateChange),
        Topic::Kind(ItemKind::EventNotification),
    ];
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Kind(k) => f.write_str(k.as_str()),
            Topic::Character(id) => write!(f, "character:{id}"),
        }
    }
}

impl FromStr for Topic {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "state_change" => Ok(Topic::Kind(ItemKind::StateChange)),
            "event_notification" => Ok(Topic::Kind(ItemKind::EventNotification)),
            "character_update" => Ok(Topic::Kind(ItemKind::CharacterUpdate)),
            _ => match s.strip_prefix("character:").map(str::parse::<u64>) {
                Some(Ok(id)) => Ok(Topic::Character(id)),
                _ => Err(format!(
                    "unknown topic `{s}`; expected state_change, event_notification, character_update or character:<id>"
                )),
            },
        }
    }
}

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

/// Commands only an operator may run, by wire name.
pub const OPERATOR_COMMANDS: [&str; 13] = [
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
            Command::Audit { limit: Some(n) } if *n == 0 || *n > crate::audit::MAX_ENTRIES => {
                Err(format!(
                    "`limit` must be between 1 and {}, got {n}",
                    crate::audit::MAX_ENTRIES
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

/// A client message the server refuses, with the code to answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
    /// The command `id` if the message had one, echoed in the `error`.
    pub id: Option<Value>,
    /// The `cmd` of a command whose arguments were refused, so that the role check can
    /// still come first (a viewer gets 1002 for `step`, however it is spelled).
    pub cmd: Option<String>,
}

impl ProtocolError {
    pub fn invalid(message: impl Into<String>, id: Option<Value>) -> Self {
        ProtocolError {
            code: ErrorCode::InvalidMessage,
            message: message.into(),
            id,
            cmd: None,
        }
    }

    pub fn data(&self) -> ErrorData {
        ErrorData {
            code: self.code.as_u16(),
            message: self.message.clone(),
        }
    }
}

fn take_str(obj: &mut serde_json::Map<String, Value>, key: &str) -> Result<String, String> {
    match obj.remove(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("`{key}` must be a string")),
        None => Err(format!("missing field `{key}`")),
    }
}

fn take_topics(obj: &mut serde_json::Map<String, Value>) -> Result<Vec<Topic>, String> {
    match obj.remove("topics") {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s.parse::<Topic>(),
                _ => Err("every topic must be a string".into()),
            })
            .collect(),
        Some(_) => Err("`topics` must be an array of strings".into()),
        None => Err("missing field `topics`".into()),
    }
}

/// Parses one text frame into a [`ClientMessage`].
///
/// Parsing goes through `serde_json::Value` first so that the command `id` can be echoed
/// even when the rest of the message is wrong.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ProtocolError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ProtocolError::invalid(format!("invalid JSON: {e}"), None))?;
    let Value::Object(mut obj) = value else {
        return Err(ProtocolError::invalid(
            "message must be a JSON object",
            None,
        ));
    };
    let id = obj.remove("id");
    if let Some(bad) = id.as_ref().filter(|v| !(v.is_string() || v.is_number())) {
        return Err(ProtocolError::invalid(
            format!("`id` must be a string or a number, got {bad}"),
            None,
        ));
    }
    let kind = match obj.remove("type") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(ProtocolError::invalid("`type` must be a string", id)),
        None => return Err(ProtocolError::invalid("missing field `type`", id)),
    };
    let fail = |message: String| ProtocolError::invalid(message, id.clone());
    match kind.as_str() {
        "auth" => Ok(ClientMessage::Auth {
            token: take_str(&mut obj, "token").map_err(fail)?,
        }),
        "subscribe" => Ok(ClientMessage::Subscribe {
            topics: take_topics(&mut obj).map_err(fail)?,
        }),
        "unsubscribe" => Ok(ClientMessage::Unsubscribe {
            topics: take_topics(&mut obj).map_err(fail)?,
        }),
        "heartbeat" => Ok(ClientMessage::Heartbeat),
        "resume" => match obj.remove("last_seq") {
            Some(v) => match v.as_u64() {
                Some(last_seq) => Ok(ClientMessage::Resume { last_seq }),
                None => Err(fail("`last_seq` must be a non-negative integer".into())),
            },
            None => Err(fail("missing field `last_seq`".into())),
        },
        "command" => {
            let cmd = take_str(&mut obj, "cmd").map_err(fail)?;
            let command = Command::parse(&cmd, obj.remove("args")).map_err(|message| {
                let mut e = fail(message);
                e.cmd = Some(cmd.clone());
                e
            })?;
            Ok(ClientMessage::Command { id, command })
        }
        other => Err(fail(format!(
            "unknown message type `{other}`; expected auth, subscribe, unsubscribe, command, heartbeat or resume"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_every_message_type() {
        assert_eq!(
            parse_client_message(r#"{"type":"auth","token":"t"}"#),
            Ok(ClientMessage::Auth { token: "t".into() })
        );
        assert_eq!(
            parse_client_message(
                r#"{"type":"subscribe","topics":["character_update","character:7"]}"#
            ),
            Ok(ClientMessage::Subscribe {
                topics: vec![Topic::Kind(ItemKind::CharacterUpdate), Topic::Character(7)]
            })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"heartbeat"}"#),
            Ok(ClientMessage::Heartbeat)
        );
        assert_eq!(
            parse_client_message(r#"{"type":"resume","last_seq":12}"#),
            Ok(ClientMessage::Resume { last_seq: 12 })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"command","id":"7","cmd":"pause","args":{}}"#),
            Ok(ClientMessage::Command {
                id: Some(json!("7")),
                command: Command::Pause {}
            })
        );
        assert_eq!(
            parse_client_message(
                r#"{"type":"command","id":3,"cmd":"set_state","args":{"character_id":4,"state":"sleeping"}}"#
            ),
            Ok(ClientMessage::Command {
                id: Some(json!(3)),
                command: Command::SetState {
                    character_id: 4,
                    state: CharState::Sleeping
                }
            })
        );
    }

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
    fn refuses_bad_input_with_1001_and_keeps_the_id() {
        for bad in [
            "not json",
            "[1,2]",
            r#"{"type":"nope"}"#,
            r#"{"type":"subscribe"}"#,
            r#"{"type":"subscribe","topics":["weather"]}"#,
            r#"{"type":"resume","last_seq":-1}"#,
            r#"{"type":"command","id":"9","cmd":"fly","args":{}}"#,
            r#"{"type":"command","id":"9","cmd":"step","args":{"ticks":"ten"}}"#,
            r#"{"type":"command","id":"9","cmd":"step","args":{"ticks":0}}"#,
            r#"{"type":"command","id":"9","cmd":"set_speed","args":{"tick_rate":-1}}"#,
            r#"{"type":"command","id":"9","cmd":"set_state","args":{"character_id":1,"state":"flying"}}"#,
            r#"{"type":"command","id":"9","cmd":"inspect","args":[]}"#,
        ] {
            let err = parse_client_message(bad).expect_err(bad);
            assert_eq!(err.code, ErrorCode::InvalidMessage, "{bad}");
            assert!(!err.message.is_empty());
            if bad.contains(r#""id":"9""#) {
                assert_eq!(err.id, Some(json!("9")), "{bad}");
            }
        }
    }

    #[test]
    fn roles_gate_mutating_commands() {
        assert!(!Command::Inspect { character_id: 1 }.requires_operator());
        assert!(!Command::Snapshot {}.requires_operator());
        assert!(!Command::Metrics {}.requires_operator());
        assert!(Command::Pause {}.requires_operator());
        assert!(Command::Reset { seed: None }.requires_operator());
    }

    #[test]
    fn items_serialize_as_type_data_timestamp() {
        let item = Item::new(
            ItemData::StateChange(StateChange {
                character_id: 1,
                name: "Ada".into(),
                old_state: CharState::Idle,
                new_state: CharState::Eating,
                location: "market".into(),
                tick: 5,
            }),
            1.5,
        );
        let v: Value = serde_json::to_value(&item).expect("serialize");
        assert_eq!(v["type"], "state_change");
        assert_eq!(v["data"]["new_state"], "eating");
        assert_eq!(v["timestamp"], 1.5);
        assert!(item.concerns(1) && !item.concerns(2));
    }

    #[test]
    fn character_updates_are_rounded_on_the_wire_only() {
        let update = CharacterUpdate {
            character_id: 3,
            state: CharState::Traveling,
            location: "park".into(),
            position: [508.616_804_882, 326.849_999],
            needs: Needs {
                energy: 49.686,
                hunger: 0.4,
                social: 99.5,
            },
            tick: 9,
        };
        let v = serde_json::to_value(&update).expect("serialize");
        assert_eq!(v["position"], json!([508.6, 326.8]));
        assert_eq!(
            v["needs"],
            json!({"energy": 50, "hunger": 0, "social": 100})
        );
        assert_eq!(
            update.position[0], 508.616_804_882,
            "the value itself is kept"
        );
    }

    #[test]
    fn envelope_has_type_data_timestamp_and_optional_seq_id() {
        let id = json!("x");
        let v: Value = serde_json::from_str(
            &Envelope::new("reply", json!({"ok": true}))
                .with_id(Some(&id))
                .to_json(),
        )
        .expect("json");
        assert_eq!(v["type"], "reply");
        assert_eq!(v["id"], "x");
        assert!(v["timestamp"].as_f64().is_some());
        assert!(v.get("seq").is_none());
    }
}
