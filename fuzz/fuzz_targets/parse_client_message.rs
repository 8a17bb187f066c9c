//! Fuzzes `simcast::protocol::parse_client_message`, the parser every client text frame
//! goes through. Properties: it never panics; a refusal is always code 1001 with a
//! non-empty message, and echoes only a string or number `id`; an accepted command
//! satisfies every range check (see `invariants`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use simcast::protocol::{
    parse_client_message, ClientMessage, Command, ErrorCode, MAX_NAME_LEN, MAX_STEP_TICKS,
    MAX_TICK_RATE, MIN_TICK_RATE,
};

fn invariants(command: &Command) {
    match command {
        Command::Step { ticks } => assert!((1..=MAX_STEP_TICKS).contains(ticks)),
        Command::SetSpeed { tick_rate } => {
            assert!(tick_rate.is_finite() && (MIN_TICK_RATE..=MAX_TICK_RATE).contains(tick_rate))
        }
        Command::Schedule { event_type, .. } => {
            assert!(!event_type.is_empty() && event_type.len() <= MAX_NAME_LEN)
        }
        Command::Spawn { name: Some(n), .. } => assert!(!n.is_empty() && n.len() <= MAX_NAME_LEN),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8 by the time they reach the parser; invalid bytes still
    // exercise it after a lossy conversion.
    let text = String::from_utf8_lossy(data);
    match parse_client_message(&text) {
        Ok(ClientMessage::Command { id, command }) => {
            if let Some(id) = id {
                assert!(id.is_string() || id.is_number());
            }
            invariants(&command);
        }
        Ok(_) => {}
        Err(e) => {
            assert_eq!(e.code, ErrorCode::InvalidMessage);
            assert!(!e.message.is_empty());
            if let Some(id) = &e.id {
                assert!(id.is_string() || id.is_number());
            }
        }
    }
});
