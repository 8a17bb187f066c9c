//! Fuzzes `simcast::protocol::Command::parse` (a command's name and arguments) with the
//! name mostly chosen from the real commands, so the fuzzer spends its time on the
//! argument shapes. Input: byte 0 picks the command (values past the list take the name
//! from the bytes up to the first NUL); the rest is the `args` JSON text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simcast::protocol::{Command, MAX_NAME_LEN, MAX_STEP_TICKS, MAX_TICK_RATE, MIN_TICK_RATE};

const NAMES: [&str; 15] = [
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

fn check(cmd: &str, result: Result<Command, String>) {
    match result {
        Ok(command) => {
            assert_eq!(command.name(), cmd);
            match &command {
                Command::Step { ticks } => assert!((1..=MAX_STEP_TICKS).contains(ticks)),
                Command::SetSpeed { tick_rate } => assert!(
                    tick_rate.is_finite() && (MIN_TICK_RATE..=MAX_TICK_RATE).contains(tick_rate)
                ),
                Command::Schedule { event_type, .. } => {
                    assert!(!event_type.is_empty() && event_type.len() <= MAX_NAME_LEN)
                }
                Command::Spawn { name: Some(n), .. } => {
                    assert!(!n.is_empty() && n.len() <= MAX_NAME_LEN)
                }
                _ => {}
            }
        }
        Err(message) => assert!(!message.is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (cmd, args) = match NAMES.get(pick as usize % 32) {
        Some(name) => (name.to_string(), rest),
        None => {
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let args = rest.get(end + 1..).unwrap_or(&[]);
            (String::from_utf8_lossy(&rest[..end]).into_owned(), args)
        }
    };
    check(&cmd, Command::parse(&cmd, None));
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(args) {
        check(&cmd, Command::parse(&cmd, Some(value)));
    }
});
