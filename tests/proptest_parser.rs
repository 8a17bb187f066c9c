//! Property tests for the client-message parser and command arguments (issue 5, hostile
//! input): arbitrary text and bytes, JSON that is well formed but wrong, and valid
//! messages. The parser never panics, every refusal is 1001 with a message, and every
//! valid message parses to exactly what was sent. The longer, coverage-guided run is
//! the cargo-fuzz crate in `fuzz/` (docs/fuzzing.md).
//!
//! `PROPTEST_CASES` raises the case count (default 256 per property, well under 10 s).

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use simcast::protocol::{
    parse_client_message, CharState, ClientMessage, Command, ErrorCode, ItemKind, Topic,
    MAX_NAME_LEN, MAX_STEP_TICKS, MAX_TICK_RATE, MIN_TICK_RATE,
};

const COMMANDS: [&str; 15] = [
    "inspect",
    "snapshot",
    "metrics",
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
];

/// Every key the protocol uses, so generated objects hit real fields often.
const KEYS: [&str; 22] = [
    "type",
    "id",
    "cmd",
    "args",
    "token",
    "topics",
    "last_seq",
    "character_id",
    "state",
    "ticks",
    "tick_rate",
    "name",
    "location",
    "event_type",
    "in_ticks",
    "data",
    "event_id",
    "seed",
    "enabled",
    "x",
    "",
    "Type",
];

const TYPES: [&str; 8] = [
    "auth",
    "subscribe",
    "unsubscribe",
    "command",
    "heartbeat",
    "resume",
    "nope",
    "",
];

/// Any JSON value, numbers at the edges included (negative, fractional, past u64).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(json!(u64::MAX as f64 * 2.0)),
        prop::sample::select(&COMMANDS[..]).prop_map(|s| json!(s)),
        prop::sample::select(&TYPES[..]).prop_map(|s| json!(s)),
        prop::sample::select(
            &[
                "idle",
                "sleeping",
                "flying",
                "character:1",
                "character:x",
                "state_change"
            ][..]
        )
        .prop_map(|s| json!(s)),
        ".{0,80}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(&KEYS[..]), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// An object that looks like a client message: a real or wrong `type`, maybe a `cmd`,
/// maybe an `id`, and arbitrary other fields.
fn message_like() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop_oneof![
            prop::sample::select(&TYPES[..]).prop_map(|s| json!(s)),
            any_json()
        ]),
        prop::option::of(prop_oneof![
            prop::sample::select(&COMMANDS[..]).prop_map(|s| json!(s)),
            any_json()
        ]),
        prop::option::of(any_json()),
        prop::option::of(any_json()),
        prop::collection::vec((prop::sample::select(&KEYS[..]), any_json()), 0..4),
    )
        .prop_map(|(kind, cmd, id, args, extra)| {
            let mut m: Map<String, Value> =
                extra.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            for (k, v) in [("type", kind), ("cmd", cmd), ("id", id), ("args", args)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
}

/// Checks the contract for one parse: a refusal is 1001 with a message, and an echoed
/// id is a string or a number; an accepted command passes its range checks.
fn check_parse(text: &str) -> Result<(), TestCaseError> {
    match parse_client_message(text) {
        Ok(ClientMessage::Command { id, command }) => {
            if let Some(id) = id {
                prop_assert!(id.is_string() || id.is_number(), "id {id}");
            }
            check_command(&command)?;
        }
        Ok(_) => {}
        Err(e) => {
            prop_assert_eq!(e.code, ErrorCode::InvalidMessage, "{}", text);
            prop_assert!(!e.message.is_empty(), "empty message for {}", text);
            if let Some(id) = &e.id {
                prop_assert!(id.is_string() || id.is_number(), "id {id}");
            }
        }
    }
    Ok(())
}

fn check_command(command: &Command) -> Result<(), TestCaseError> {
    match command {
        Command::Step { ticks } => prop_assert!((1..=MAX_STEP_TICKS).contains(ticks)),
        Command::SetSpeed { tick_rate } => prop_assert!(
            tick_rate.is_finite() && (MIN_TICK_RATE..=MAX_TICK_RATE).contains(tick_rate)
        ),
        Command::Schedule { event_type, .. } => {
            prop_assert!(!event_type.is_empty() && event_type.len() <= MAX_NAME_LEN)
        }
        Command::Spawn { name: Some(n), .. } => {
            prop_assert!(!n.is_empty() && n.len() <= MAX_NAME_LEN)
        }
        _ => {}
    }
    Ok(())
}

/// A short printable name within the length limit (multi-byte characters included).
fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_ é☃]{1,16}".prop_filter("within MAX_NAME_LEN bytes", |s| {
        !s.is_empty() && s.len() <= MAX_NAME_LEN
    })
}

/// A valid command and the `args` object a client would send for it.
fn valid_command() -> impl Strategy<Value = (Command, Value)> {
    let state = prop::sample::select(&CharState::ALL[..]);
    prop_oneof![
        any::<u64>().prop_map(|id| (
            Command::Inspect { character_id: id },
            json!({"character_id": id})
        )),
        Just((Command::Snapshot {}, json!({}))),
        Just((Command::Metrics {}, json!({}))),
        Just((Command::Pause {}, json!({}))),
        Just((Command::Resume {}, json!({}))),
        (1..=MAX_STEP_TICKS).prop_map(|t| (Command::Step { ticks: t }, json!({"ticks": t}))),
        (MIN_TICK_RATE..=MAX_TICK_RATE)
            .prop_map(|r| (Command::SetSpeed { tick_rate: r }, json!({"tick_rate": r}))),
        (any::<u64>(), state).prop_map(|(id, s)| (
            Command::SetState {
                character_id: id,
                state: s
            },
            json!({"character_id": id, "state": s.as_str()})
        )),
        (prop::option::of(name()), prop::option::of(name())).prop_map(|(n, l)| {
            let mut args = json!({});
            if let Some(n) = &n {
                args["name"] = json!(n);
            }
            if let Some(l) = &l {
                args["location"] = json!(l);
            }
            (
                Command::Spawn {
                    name: n,
                    location: l,
                },
                args,
            )
        }),
        any::<u64>().prop_map(|id| (
            Command::Remove { character_id: id },
            json!({"character_id": id})
        )),
        (name(), any::<u64>(), prop::option::of(any_json())).prop_map(|(e, t, d)| {
            let mut args = json!({"event_type": e, "in_ticks": t});
            // `data: null` means no data, like a missing key.
            let data = d.filter(|d| !d.is_null());
            if let Some(d) = &data {
                args["data"] = d.clone();
            }
            (
                Command::Schedule {
                    event_type: e,
                    in_ticks: t,
                    data,
                },
                args,
            )
        }),
        any::<u64>().prop_map(|id| (Command::Cancel { event_id: id }, json!({"event_id": id}))),
        prop::option::of(any::<u64>()).prop_map(|s| {
            let args = s.map_or(json!({}), |s| json!({"seed": s}));
            (Command::Reset { seed: s }, args)
        }),
        Just((Command::Save {}, json!({}))),
        any::<bool>().prop_map(|b| (Command::DebugLog { enabled: b }, json!({"enabled": b}))),
    ]
}

fn topic() -> impl Strategy<Value = (Topic, String)> {
    prop_oneof![
        Just((
            Topic::Kind(ItemKind::StateChange),
            "state_change".to_owned()
        )),
        Just((
            Topic::Kind(ItemKind::EventNotification),
            "event_notification".to_owned()
        )),
        Just((
            Topic::Kind(ItemKind::CharacterUpdate),
            "character_update".to_owned()
        )),
        any::<u64>().prop_map(|id| (Topic::Character(id), format!("character:{id}"))),
    ]
}

/// A value of the wrong type for every field of every command: a string where a number
/// is expected, a number where a string or bool is, and so on.
fn wrong_for(key: &str) -> Vec<Value> {
    match key {
        "character_id" | "ticks" | "in_ticks" | "event_id" | "seed" => {
            vec![
                json!("1"),
                json!(-1),
                json!(1.5),
                json!(true),
                json!([1]),
                json!({}),
            ]
        }
        "tick_rate" => vec![json!("1"), json!(true), json!(0), json!(1e9), json!([])],
        "state" => vec![json!(1), json!("flying"), json!(null), json!(["idle"])],
        "enabled" => vec![json!(1), json!("true"), json!(null)],
        "event_type" | "name" | "location" => vec![json!(1), json!(false), json!({}), json!([])],
        _ => vec![json!(null)],
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Shrinking a failure still ends in bounded time.
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_text_never_panics_and_is_refused_with_1001(text in ".{0,300}") {
        check_parse(&text)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        check_parse(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_json_values_are_refused_cleanly(v in any_json()) {
        check_parse(&v.to_string())?;
    }

    #[test]
    fn structured_but_wrong_messages_are_refused_cleanly(v in message_like()) {
        check_parse(&v.to_string())?;
    }

    #[test]
    fn truncated_and_mangled_valid_messages_are_refused_cleanly(
        (cmd, args) in valid_command(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let text = json!({"type": "command", "id": "m", "cmd": cmd.name(), "args": args}).to_string();
        let mut bytes = text.into_bytes();
        let i = flip.index(bytes.len());
        bytes[i] = byte;
        check_parse(&String::from_utf8_lossy(&bytes))?;
        bytes.truncate(cut.index(bytes.len()));
        check_parse(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn command_parse_with_any_name_and_args_never_panics(
        cmd in prop_oneof![prop::sample::select(&COMMANDS[..]).prop_map(str::to_owned), ".{0,20}"],
        args in prop::option::of(any_json()),
    ) {
        match Command::parse(&cmd, args) {
            Ok(command) => {
                prop_assert_eq!(command.name(), cmd.as_str());
                check_command(&command)?;
            }
            Err(message) => prop_assert!(!message.is_empty()),
        }
    }

    #[test]
    fn valid_commands_round_trip(
        (command, args) in valid_command(),
        id in prop_oneof![".{0,12}".prop_map(|s| json!(s)), any::<i64>().prop_map(|n| json!(n))],
    ) {
        let text = json!({"type": "command", "id": id, "cmd": command.name(), "args": args}).to_string();
        prop_assert_eq!(
            parse_client_message(&text),
            Ok(ClientMessage::Command { id: Some(id), command: command.clone() })
        );
        // The same arguments through Command::parse directly.
        prop_assert_eq!(Command::parse(command.name(), Some(args)), Ok(command));
    }

    #[test]
    fn a_wrong_typed_argument_is_1001_and_keeps_id_and_cmd(
        (command, args) in valid_command(),
        pick in any::<prop::sample::Index>(),
        wrong in any::<prop::sample::Index>(),
    ) {
        let Value::Object(map) = &args else { unreachable!() };
        let keys: Vec<&String> = map.keys().filter(|k| k.as_str() != "data").collect();
        prop_assume!(!keys.is_empty());
        let key = keys[pick.index(keys.len())].clone();
        let choices = wrong_for(&key);
        let bad_value = choices[wrong.index(choices.len())].clone();
        // `null` for an optional field means "absent": still valid.
        prop_assume!(!(bad_value.is_null() && matches!(key.as_str(), "name" | "location" | "seed")));
        let mut bad = args.clone();
        bad[&key] = bad_value;
        let text = json!({"type": "command", "id": 42, "cmd": command.name(), "args": bad}).to_string();
        let err = parse_client_message(&text).expect_err(&text);
        prop_assert_eq!(err.code, ErrorCode::InvalidMessage);
        prop_assert!(!err.message.is_empty());
        prop_assert_eq!(err.id, Some(json!(42)));
        prop_assert_eq!(err.cmd.as_deref(), Some(command.name()));
    }

    #[test]
    fn valid_other_messages_round_trip(
        topics in prop::collection::vec(topic(), 0..8),
        last_seq in any::<u64>(),
        token in ".{0,40}",
    ) {
        let names: Vec<&String> = topics.iter().map(|(_, n)| n).collect();
        let wanted: Vec<Topic> = topics.iter().map(|(t, _)| *t).collect();
        prop_assert_eq!(
            parse_client_message(&json!({"type": "subscribe", "topics": names}).to_string()),
            Ok(ClientMessage::Subscribe { topics: wanted.clone() })
        );
        prop_assert_eq!(
            parse_client_message(&json!({"type": "unsubscribe", "topics": names}).to_string()),
            Ok(ClientMessage::Unsubscribe { topics: wanted })
        );
        prop_assert_eq!(
            parse_client_message(&json!({"type": "resume", "last_seq": last_seq}).to_string()),
            Ok(ClientMessage::Resume { last_seq })
        );
        prop_assert_eq!(
            parse_client_message(&json!({"type": "auth", "token": token}).to_string()),
            Ok(ClientMessage::Auth { token })
        );
    }
}

/// Inputs that have broken JSON parsers elsewhere: deep nesting, huge numbers, long
/// strings, lone surrogates. Each must be refused (or parsed) without a panic.
#[test]
fn edge_inputs_are_refused_cleanly() {
    let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_args = format!(
        r#"{{"type":"command","id":"d","cmd":"schedule","args":{{"event_type":"e","in_ticks":1,"data":{}{}}}}}"#,
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let long_name = format!(
        r#"{{"type":"command","id":"n","cmd":"spawn","args":{{"name":"{}"}}}}"#,
        "x".repeat(MAX_NAME_LEN + 1)
    );
    let huge = r#"{"type":"command","id":"h","cmd":"step","args":{"ticks":1e400}}"#;
    let big_int = r#"{"type":"resume","last_seq":18446744073709551616}"#;
    let surrogate = r#"{"type":"auth","token":"\ud800"}"#;
    let dup = r#"{"type":"heartbeat","type":"command"}"#;
    for text in [
        deep_array.as_str(),
        deep_args.as_str(),
        long_name.as_str(),
        huge,
        big_int,
        surrogate,
        dup,
        "",
        "\u{0}",
        "{",
        "null",
    ] {
        let shown: String = text.chars().take(60).collect();
        match parse_client_message(text) {
            Ok(m) => panic!("accepted {shown}: {m:?}"),
            Err(e) => {
                assert_eq!(e.code, ErrorCode::InvalidMessage, "{shown}");
                assert!(!e.message.is_empty(), "{shown}");
            }
        }
    }
}
