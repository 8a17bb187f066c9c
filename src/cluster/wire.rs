//! What gateways and the sim node say to each other over request/reply, besides
//! batches (`codec`): a command with the label of the token that sent it, and its
//! answer; a time series read and its rows. Snapshots travel as the `snapshot` object a client
//! would get (objects form).

use crate::protocol::{Command, ErrorCode};
use crate::sim::series::Row;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A gateway's client command, checked there (role, rate), run by the sim node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRequest {
    pub command: Command,
    /// The token's label, for the `control` item and the audit journal.
    pub by: String,
}

/// The sim node's answer to a [`CommandRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandAnswer {
    /// The reply's data (with its `"ok": true`).
    Ok(Value),
    /// The simulation refused it: the error the client gets.
    Err { code: u16, message: String },
}

/// The error code of an answer, as the protocol names it (an unknown one is 1004).
pub fn error_code(code: u16) -> ErrorCode {
    match code {
        1001 => ErrorCode::InvalidMessage,
        1002 => ErrorCode::AuthFailed,
        1003 => ErrorCode::RateLimit,
        _ => ErrorCode::ServerError,
    }
}

/// A gateway's `GET /api/timeseries` range, read on the sim node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesRequest {
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
pub enum SeriesAnswer {
    Rows(Vec<SeriesRow>),
    /// Why there are no rows (the message the HTTP client gets).
    Err(String),
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
}
