//! Client → server messages: [`ClientMessage`], subscription [`Topic`]s, and
//! [`parse_client_message`], which turns any malformed input into a [`ProtocolError`]
//! with the contract's error code and, when the client gave one, the command `id` to
//! echo back. Commands themselves are parsed by `Command::parse` ([`super::commands`]).

use super::{CharacterId, Command, ErrorCode, ErrorData, ItemKind};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

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
    use crate::protocol::CharState;
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
}
