//! Server → client objects: the [`Envelope`] every one of them is sent in, batch items,
//! `welcome`, `snapshot`, `presence`, `reply` ([`Reply`], the one owner of `"ok"`),
//! `error` and `heartbeat` data, and the [`wire`] rounding of positions and needs.
//! Serialize only, except batch items and snapshots: a gateway reads those back from
//! the sim node (`cluster::codec` for batches, `cluster::gateway` for snapshots) and
//! re-serializes them byte for byte.

use super::{now_ts, CharState, CharacterId, EventId, Needs, Role, SERVER_NAME};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

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
/// Read back (a gateway's snapshot from its sim node) they hold the rounded values,
/// which serialize to the same bytes again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationView {
    pub id: String,
    pub name: String,
    pub kind: LocationKind,
    #[serde(serialize_with = "wire::position")]
    pub position: [f64; 2],
}

/// `state_change` item data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    pub character_id: CharacterId,
    pub name: String,
    pub old_state: CharState,
    pub new_state: CharState,
    pub location: String,
    pub tick: u64,
}

/// `event_notification` item data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// The payload of one batch item. Read back as `{type, data}` (its [`Item`]'s).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Item {
    #[serde(flatten)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// The game day; the first day is 1.
    pub day: u64,
    /// Minute of the day, 0–1439.
    pub minute_of_day: u32,
}

/// `snapshot` data: the whole world as of batch `seq` (read back by a gateway, as its
/// sim node sent it: `crate::cluster`).
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// How a connection wants snapshots' characters, chosen when it connects
/// (`?snapshot=compact` on `/ws` and `/events`; docs/protocol.md, "Compact snapshots").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotEncoding {
    /// `characters` is an array of character objects (the contract's form).
    #[default]
    Objects,
    /// `characters` is an array of rows, one value per name in `character_fields`.
    Compact,
}

/// The columns of a compact snapshot row, in order. `position` is `[x, y]`, `needs`
/// `[energy, hunger, social]` (rounded as in objects), `destination` is `null` when the
/// character is not traveling.
pub const CHARACTER_FIELDS: [&str; 10] = [
    "id",
    "name",
    "state",
    "location",
    "position",
    "needs",
    "destination",
    "home",
    "workplace",
    "state_since",
];

/// One character as a compact row (see [`CHARACTER_FIELDS`]).
struct Row<'a>(&'a CharacterView);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let c = self.0;
        let position = [wire::tenth(c.position[0]), wire::tenth(c.position[1])];
        let n = &c.needs;
        let needs = [n.energy, n.hunger, n.social].map(wire::whole);
        let mut t = serializer.serialize_tuple(CHARACTER_FIELDS.len())?;
        t.serialize_element(&c.id)?;
        t.serialize_element(&c.name)?;
        t.serialize_element(&c.state)?;
        t.serialize_element(&c.location)?;
        t.serialize_element(&position)?;
        t.serialize_element(&needs)?;
        t.serialize_element(&c.destination)?;
        t.serialize_element(&c.home)?;
        t.serialize_element(&c.workplace)?;
        t.serialize_element(&c.state_since)?;
        t.end()
    }
}

/// A snapshot in the compact encoding: the same fields as [`Snapshot`], with
/// `character_fields` and `characters` as rows. About 40 % of the objects' size.
pub(crate) struct CompactSnapshot<'a>(pub &'a Snapshot);

impl Serialize for CompactSnapshot<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let s = self.0;
        let rows: Vec<Row<'_>> = s.characters.iter().map(Row).collect();
        let mut m = serializer.serialize_struct("Snapshot", 11)?;
        m.serialize_field("tick", &s.tick)?;
        m.serialize_field("clock", &s.clock)?;
        m.serialize_field("paused", &s.paused)?;
        m.serialize_field("tick_rate", &s.tick_rate)?;
        m.serialize_field("seed", &s.seed)?;
        m.serialize_field("state_hash", &s.state_hash)?;
        m.serialize_field("character_fields", &CHARACTER_FIELDS)?;
        m.serialize_field("characters", &rows)?;
        m.serialize_field("locations", &s.locations)?;
        m.serialize_field("seq", &s.seq)?;
        m.serialize_field("resync", &s.resync)?;
        m.end()
    }
}

impl Snapshot {
    /// The `snapshot` data as JSON in `encoding`.
    pub fn to_value(&self, encoding: SnapshotEncoding) -> Value {
        let value = match encoding {
            SnapshotEncoding::Objects => serde_json::to_value(self),
            SnapshotEncoding::Compact => serde_json::to_value(CompactSnapshot(self)),
        };
        value.unwrap_or(Value::Null)
    }

    /// The whole `snapshot` frame in `encoding`, with the `id` of the command that asked
    /// for it, if any.
    pub fn to_frame(&self, encoding: SnapshotEncoding, id: Option<&Value>) -> String {
        match encoding {
            SnapshotEncoding::Objects => Envelope::new("snapshot", self).with_id(id).to_json(),
            SnapshotEncoding::Compact => Envelope::new("snapshot", CompactSnapshot(self))
                .with_id(id)
                .to_json(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
