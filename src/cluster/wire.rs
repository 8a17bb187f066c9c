//! What gateways and the sim node say to each other over request/reply, besides
//! batches (`codec`): a command with the label of the token that sent it, and its
//! answer. Snapshots travel as the `snapshot` object a client would get (objects form).

use crate::protocol::{Command, ErrorCode};
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
}
