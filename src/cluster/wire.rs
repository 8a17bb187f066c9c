//! What nodes say to each other over NATS, besides batches (`codec`): a command with
//! the label of the token that sent it, and its answer; a time series read and its
//! rows; a node's presence roster. Snapshots travel as the `snapshot` object a client
//! would get (objects form).

use crate::protocol::{Command, ErrorCode, PresenceSession, Role, TransportKind};
use crate::sim::series::Row;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A gateway's client command, checked there (role, rate), run by the sim node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CommandRequest {
    pub command: Command,
    /// The token's label, for the `control` item and the audit journal.
    pub by: String,
}

/// The sim node's answer to a [`CommandRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CommandAnswer {
    /// The reply's data (with its `"ok": true`).
    Ok(Value),
    /// The simulation refused it: the error the client gets.
    Err { code: u16, message: String },
}

/// The error code of an answer, as the protocol names it (an unknown one is 1004).
pub(crate) fn error_code(code: u16) -> ErrorCode {
    match code {
        1001 => ErrorCode::InvalidMessage,
        1002 => ErrorCode::AuthFailed,
        1003 => ErrorCode::RateLimit,
        _ => ErrorCode::ServerError,
    }
}

/// A gateway's `GET /api/timeseries` range, read on the sim node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SeriesRequest {
    pub from: u64,
    pub to: u64,
}

/// One row of the series as it travels: the means as their bits, so the gateway
/// renders exactly the CSV and JSON the sim node would (a decimal round trip could move
/// a mean across a rounding edge).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesRow(u64, u64, u32, [u32; 6], [u64; 3]);

impl From<&Row> for SeriesRow {
    fn from(r: &Row) -> Self {
        SeriesRow(
            r.tick,
            r.day,
            r.minute_of_day,
            r.counts,
            r.means.map(f64::to_bits),
        )
    }
}

impl From<SeriesRow> for Row {
    fn from(SeriesRow(tick, day, minute_of_day, counts, means): SeriesRow) -> Self {
        Row {
            tick,
            day,
            minute_of_day,
            counts,
            means: means.map(f64::from_bits),
        }
    }
}

/// The sim node's answer to a [`SeriesRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SeriesAnswer {
    Rows(Vec<SeriesRow>),
    /// Why there are no rows (the message the HTTP client gets).
    Err(String),
}

/// How a session is connected, on the wire (the protocol's type is write-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireTransport {
    Ws,
    Sse,
}

/// One session of a node's roster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RosterSession {
    pub session_id: u64,
    pub role: Role,
    pub name: String,
    pub transport: WireTransport,
    pub since: f64,
}

impl From<&PresenceSession> for RosterSession {
    fn from(s: &PresenceSession) -> Self {
        RosterSession {
            session_id: s.session_id,
            role: s.role,
            name: s.name.clone(),
            transport: match s.transport {
                TransportKind::Ws => WireTransport::Ws,
                TransportKind::Sse => WireTransport::Sse,
            },
            since: s.since,
        }
    }
}

impl From<RosterSession> for PresenceSession {
    fn from(s: RosterSession) -> Self {
        PresenceSession {
            session_id: s.session_id,
            role: s.role,
            name: s.name,
            transport: match s.transport {
                WireTransport::Ws => TransportKind::Ws,
                WireTransport::Sse => TransportKind::Sse,
            },
            since: s.since,
        }
    }
}

/// What one node publishes on `<prefix>.presence`: its own sessions only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RosterMessage {
    /// Random per node start: tells nodes (and restarts of one) apart.
    pub node: u64,
    /// The first session id this node hands out (`presence::session_id_base`), to
    /// notice two nodes that drew the same one.
    pub id_base: u64,
    pub viewers: usize,
    pub operators: usize,
    /// Operators first, then viewers; at most `presence::actor::MAX_LISTED`.
    pub sessions: Vec<RosterSession>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_answers_round_trip() {
        let request = CommandRequest {
            command: Command::Step { ticks: 5 },
            by: "alice".into(),
        };
        let bytes = serde_json::to_vec(&request).expect("encode");
        assert_eq!(
            serde_json::from_slice::<CommandRequest>(&bytes).ok(),
            Some(request)
        );
        for answer in [
            CommandAnswer::Ok(serde_json::json!({"ok": true, "tick": 3})),
            CommandAnswer::Err {
                code: 1001,
                message: "unknown character 9".into(),
            },
        ] {
            let bytes = serde_json::to_vec(&answer).expect("encode");
            assert_eq!(
                serde_json::from_slice::<CommandAnswer>(&bytes).ok(),
                Some(answer)
            );
        }
        assert_eq!(error_code(1001), ErrorCode::InvalidMessage);
        assert_eq!(error_code(4242), ErrorCode::ServerError);
    }

    #[test]
    fn series_rows_round_trip_bit_for_bit() {
        let row = Row {
            tick: 9,
            day: 1,
            minute_of_day: 370,
            counts: [1, 2, 3, 4, 5, 6],
            // 0.125 sits on a rounding edge: CSV and JSON round it differently.
            means: [0.125, 1.0 / 3.0, 99.995],
        };
        let answer = SeriesAnswer::Rows(vec![SeriesRow::from(&row)]);
        let bytes = serde_json::to_vec(&answer).expect("encode");
        let Ok(SeriesAnswer::Rows(rows)) = serde_json::from_slice::<SeriesAnswer>(&bytes) else {
            panic!("rows");
        };
        let back: Vec<Row> = rows.into_iter().map(Row::from).collect();
        assert_eq!(back, vec![row]);
    }

    #[test]
    fn a_roster_round_trips() {
        let session = PresenceSession {
            session_id: (7 << 32) | 3,
            role: Role::Operator,
            name: "alice".into(),
            transport: TransportKind::Sse,
            since: 1_767_225_600.5,
        };
        let message = RosterMessage {
            node: 42,
            id_base: 7 << 32,
            viewers: 0,
            operators: 1,
            sessions: vec![RosterSession::from(&session)],
        };
        let bytes = serde_json::to_vec(&message).expect("encode");
        let back: RosterMessage = serde_json::from_slice(&bytes).expect("decode");
        assert_eq!(back, message);
        let sessions: Vec<PresenceSession> = back
            .sessions
            .into_iter()
            .map(PresenceSession::from)
            .collect();
        assert_eq!(sessions, vec![session]);
    }
}
