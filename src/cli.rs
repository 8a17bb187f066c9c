//! The command-line client: `simcast watch` prints the live stream, `simcast ctl` sends
//! one command. Both speak protocol v1 over WebSocket (tokio-tungstenite), like any
//! other client; nothing here is used by the server.
//!
//! `watch` reconnects by itself (exponential backoff with full jitter, capped at 30 s)
//! and resumes from the last `seq` it printed, so a server restart or a network blip
//! loses nothing that is still in the server's history; if the gap is too old the
//! server sends a resync snapshot and `watch` says so.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("bad url `{0}`: use http://, https://, ws:// or wss://")]
    Url(String),
    #[error("connecting to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("connection closed{0}")]
    Closed(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("server error {code}: {message}")]
    Server { code: u64, message: String },
    #[error("{0}")]
    Usage(String),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// `http://host:port[/...]` or `ws://...` → the WebSocket URL with the token.
pub fn ws_url(base: &str, token: &str, query: &str) -> Result<String, CliError> {
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| CliError::Url(base.to_owned()))?;
    let scheme = match scheme {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return Err(CliError::Url(base.to_owned())),
    };
    let host = rest.split('/').next().unwrap_or(rest);
    if host.is_empty() {
        return Err(CliError::Url(base.to_owned()));
    }
    let token: String = token
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    Ok(format!("{scheme}://{host}/ws?token={token}{query}"))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects; `wss://` trusts the system's roots plus every certificate in `ca`.
async fn connect(url: &str, ca: Option<&std::path::Path>) -> Result<Ws, CliError> {
    let shown = url.split("?token=").next().unwrap_or(url).to_owned();
    let connector = if url.starts_with("wss://") {
        let config = crate::tls::client_config(ca).map_err(|e| CliError::Connect {
            url: shown.clone(),
            message: e.to_string(),
        })?;
        Some(tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(
            config,
        )))
    } else {
        None
    };
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_tls_with_config(url, None, false, connector),
    )
    .await
    .map_err(|_| CliError::Connect {
        url: shown.clone(),
        message: "timed out".into(),
    })?
    .map_err(|e| CliError::Connect {
        url: shown,
        message: e.to_string(),
    })?;
    Ok(ws)
}

/// Next JSON object from the server; `Closed` with the close code and reason.
async fn next_json(ws: &mut Ws, within: Duration) -> Result<Value, CliError> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .map_err(|_| CliError::Timeout(within))?;
        match msg {
            Some(Ok(Message::Text(t))) => match serde_json::from_str(&t) {
                Ok(v) => return Ok(v),
                Err(_) => continue, // e.g. "pong"
            },
            Some(Ok(Message::Close(frame))) => {
                let why = frame
                    .map(|f| format!(" ({} {})", u16::from(f.code), f.reason))
                    .unwrap_or_default();
                return Err(CliError::Closed(why));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(CliError::Closed(format!(": {e}"))),
            None => return Err(CliError::Closed(String::new())),
        }
    }
}

fn usage(message: &str) -> CliError {
    CliError::Usage(message.to_owned())
}

/// The command table shared with the dashboard console (`static/commands.json`): names,
/// aliases, roles and arguments, so `ctl` and the console parse one grammar.
#[derive(Debug, serde::Deserialize)]
struct CommandTable {
    commands: Vec<CommandSpec>,
}

#[derive(Debug, serde::Deserialize)]
struct CommandSpec {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    /// `operator` or `viewer`; the server decides, the tests check it matches.
    #[cfg_attr(not(test), allow(dead_code))]
    role: String,
    args: Vec<ArgSpec>,
    /// Checked by the tests of both parsers.
    #[cfg_attr(not(test), allow(dead_code))]
    #[serde(default)]
    examples: Vec<Example>,
}

#[derive(Debug, serde::Deserialize)]
struct ArgSpec {
    /// As shown in usage lines: `ID`, `IN_TICKS`.
    name: String,
    /// The wire argument.
    key: String,
    #[serde(rename = "type")]
    kind: ArgType,
    #[serde(default)]
    optional: bool,
    /// `--in`: the next word is this argument, wherever it stands.
    flag: Option<String>,
    /// `in`: an optional word before the value (`schedule festival in 20`).
    prefix: Option<String>,
    /// Takes every positional word left (JSON).
    #[serde(default)]
    rest: bool,
    // `console_default` is the console's; `ctl` requires the argument.
}

#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum ArgType {
    Int,
    Id,
    Number,
    Word,
    State,
    Bool,
    Json,
}

#[derive(Debug, serde::Deserialize)]
#[cfg_attr(not(test), allow(dead_code))]
struct Example {
    line: String,
    args: Value,
}

fn command_table() -> &'static CommandTable {
    static TABLE: std::sync::OnceLock<CommandTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        serde_json::from_str(include_str!("../static/commands.json"))
            .expect("static/commands.json is a valid command table")
    })
}

impl CommandTable {
    /// The command a typed name means (case and `-` vs `_` do not matter).
    fn find(&self, typed: &str) -> Option<&CommandSpec> {
        let w = typed.to_lowercase().replace('-', "_");
        self.commands
            .iter()
            .find(|c| c.name == w || c.aliases.contains(&w))
    }
}

impl CommandSpec {
    /// `schedule TYPE IN_TICKS [JSON]`
    fn usage(&self) -> String {
        let mut line = self.name.clone();
        for a in &self.args {
            line.push(' ');
            line.push_str(&if a.optional {
                format!("[{}]", a.name)
            } else {
                a.name.clone()
            });
        }
        line
    }

    /// The args from the words after the name: flags take the word after them, the
    /// other words fill the positional arguments in order (the table's rules).
    fn parse(&self, words: &[String]) -> Result<Value, CliError> {
        let usage_line = || format!("usage: {}", self.usage());
        let mut raw: Vec<(&ArgSpec, String)> = Vec::new();
        let mut taken = vec![false; words.len()];
        for a in &self.args {
            let Some(flag) = &a.flag else { continue };
            let Some(i) = (0..words.len()).find(|&j| !taken[j] && words[j] == *flag) else {
                continue;
            };
            let value = words
                .get(i + 1)
                .ok_or_else(|| usage(&format!("{flag} needs {} ({})", a.name, usage_line())))?;
            raw.push((a, value.clone()));
            taken[i] = true;
            taken[i + 1] = true;
        }
        let free: Vec<&String> = (0..words.len())
            .filter(|&j| !taken[j])
            .map(|j| &words[j])
            .collect();
        let mut pos = 0;
        for a in &self.args {
            if raw.iter().any(|(r, _)| r.key == a.key) {
                continue;
            }
            if let Some(prefix) = &a.prefix {
                if pos + 1 < free.len() && free[pos].to_lowercase() == *prefix {
                    pos += 1;
                }
            }
            if pos >= free.len() {
                if a.optional {
                    continue;
                }
                return Err(usage(&usage_line()));
            }
            let value = if a.rest {
                let all = free[pos..].iter().map(|w| w.as_str()).collect::<Vec<_>>();
                pos = free.len();
                all.join(" ")
            } else {
                pos += 1;
                free[pos - 1].clone()
            };
            raw.push((a, value));
        }
        let mut args = serde_json::Map::new();
        for a in &self.args {
            if let Some((_, text)) = raw.iter().find(|(r, _)| r.key == a.key) {
                let value = a
                    .kind
                    .parse(text)
                    .map_err(|wants| usage(&format!("{} {wants} ({})", a.name, usage_line())))?;
                args.insert(a.key.clone(), value);
            }
        }
        Ok(Value::Object(args))
    }
}

impl ArgType {
    /// The typed word as the wire value; `Err` says what was wanted.
    fn parse(self, s: &str) -> Result<Value, String> {
        let whole = |s: &str| -> Result<Value, String> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err("must be a whole number".into());
            }
            s.parse::<u64>()
                .map(Value::from)
                .map_err(|_| "must be a whole number".into())
        };
        match self {
            ArgType::Int => whole(s),
            ArgType::Id => whole(s.strip_prefix('#').unwrap_or(s)),
            ArgType::Number => match s.parse::<f64>() {
                Ok(n) if n.is_finite() && n.fract() == 0.0 && n >= 0.0 => Ok(json!(n as u64)),
                Ok(n) if n.is_finite() => Ok(json!(n)),
                _ => Err("must be a number".into()),
            },
            ArgType::Word => Ok(json!(s)),
            ArgType::State => Ok(json!(s.to_lowercase())),
            ArgType::Bool => match s.to_lowercase().as_str() {
                "on" | "true" | "1" => Ok(json!(true)),
                "off" | "false" | "0" => Ok(json!(false)),
                _ => Err("must be on or off".into()),
            },
            ArgType::Json => serde_json::from_str(s).map_err(|e| format!("is not valid JSON: {e}")),
        }
    }
}

/// Turns `ctl` words into a command by the command table (`static/commands.json`):
/// `step 10`, `set-state 42 sleeping`, `schedule festival --in 50 --data '{"x":1}'`, ...
pub fn parse_ctl(words: &[String]) -> Result<(String, Value), CliError> {
    let (name, rest) = words
        .split_first()
        .ok_or_else(|| usage("missing command (pause, resume, step N, inspect ID, ...)"))?;
    match command_table().find(name) {
        Some(spec) => Ok((spec.name.clone(), spec.parse(rest)?)),
        // Unknown names go to the server, which answers with a clear 1001.
        None => Ok((name.replace('-', "_"), json!({}))),
    }
}

/// The message `ctl` sends. When the words make a valid `protocol::Command`, the
/// message is built from that value, so its wire shape comes from the one type the
/// server parses (empty options go as `null`, a speed as a float: the server reads
/// both). An unknown name, or arguments the type refuses, go as written: the server
/// then answers with its own 1001, which names the problem in its terms.
fn command_message(cmd: &str, args: Value) -> Value {
    let written = json!({"cmd": cmd, "args": args});
    let mut msg = serde_json::from_value::<crate::protocol::Command>(written.clone())
        .ok()
        .and_then(|typed| serde_json::to_value(typed).ok())
        .unwrap_or(written);
    if let Value::Object(map) = &mut msg {
        map.insert("type".into(), json!("command"));
        map.insert("id".into(), json!("ctl"));
    }
    msg
}

/// `simcast ctl`: sends one command, prints the reply's data, fails on an error.
pub async fn ctl(url: &str, token: &str, words: &[String]) -> Result<Value, CliError> {
    ctl_with_ca(url, token, words, None).await
}

/// [`ctl`], trusting the certificates in `ca` too for `wss://`/`https://` (`--ca`).
pub async fn ctl_with_ca(
    url: &str,
    token: &str,
    words: &[String],
    ca: Option<&std::path::Path>,
) -> Result<Value, CliError> {
    let (cmd, args) = parse_ctl(words)?;
    let mut ws = connect(&ws_url(url, token, "")?, ca).await?;
    let welcome = next_json(&mut ws, Duration::from_secs(10)).await?;
    if welcome["type"] != "welcome" {
        return Err(CliError::Closed(format!(": unexpected {welcome}")));
    }
    send_json(&mut ws, &command_message(&cmd, args)).await?;
    loop {
        let v = next_json(&mut ws, Duration::from_secs(30)).await?;
        if v["id"] != "ctl" {
            continue;
        }
        let _ = ws.close(None).await;
        return match v["type"].as_str() {
            Some("reply") => Ok(v["data"].clone()),
            _ => Err(CliError::Server {
                code: v["data"]["code"].as_u64().unwrap_or(0),
                message: v["data"]["message"].as_str().unwrap_or("").to_owned(),
            }),
        };
    }
}

/// How `watch` prints.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub url: String,
    pub token: String,
    pub topics: Vec<String>,
    pub json: bool,
    /// Stop after this many items (for scripts and tests); `None`: run until killed.
    pub max_items: Option<u64>,
    /// Extra trusted certificates (PEM) for `wss://`, e.g. a self-signed server's.
    pub ca: Option<std::path::PathBuf>,
}

/// One item as a person reads it.
pub fn format_item(item: &Value) -> String {
    let d = &item["data"];
    let tick = d["tick"].as_u64().unwrap_or(0);
    match item["type"].as_str().unwrap_or("") {
        "state_change" => format!(
            "[tick {tick}] #{} {}: {} -> {} @ {}",
            d["character_id"],
            d["name"].as_str().unwrap_or("?"),
            d["old_state"].as_str().unwrap_or("?"),
            d["new_state"].as_str().unwrap_or("?"),
            d["location"].as_str().unwrap_or("?"),
        ),
        "event_notification" if d["event_type"] == "control" => {
            let c = &d["data"];
            format!(
                "[tick {tick}] control: {} {} {}",
                c["by"].as_str().unwrap_or("?"),
                c["command"].as_str().unwrap_or("?"),
                c["args"]
            )
        }
        "event_notification" => {
            let id = d["event_id"]
                .as_u64()
                .map(|i| format!(" (event {i})"))
                .unwrap_or_default();
            format!(
                "[tick {tick}] event {}{id} {}",
                d["event_type"].as_str().unwrap_or("?"),
                d["data"]
            )
        }
        "character_update" => format!(
            "[tick {tick}] #{} {} @ {} ({:.0}, {:.0}) energy {:.0} hunger {:.0} social {:.0}",
            d["character_id"],
            d["state"].as_str().unwrap_or("?"),
            d["location"].as_str().unwrap_or("?"),
            d["position"][0].as_f64().unwrap_or(0.0),
            d["position"][1].as_f64().unwrap_or(0.0),
            d["needs"]["energy"].as_f64().unwrap_or(0.0),
            d["needs"]["hunger"].as_f64().unwrap_or(0.0),
            d["needs"]["social"].as_f64().unwrap_or(0.0),
        ),
        _ => item.to_string(),
    }
}

/// `simcast watch`: prints items until `max_items` or forever, reconnecting and
/// resuming by itself. Returns the number of items printed.
pub async fn watch(opts: &WatchOptions, out: &mut dyn Write) -> Result<u64, CliError> {
    let url = ws_url(&opts.url, &opts.token, "")?;
    if url.starts_with("wss://") {
        // A bad --ca file is not something reconnecting can fix: fail now.
        crate::tls::client_config(opts.ca.as_deref())
            .map_err(|e| CliError::Usage(e.to_string()))?;
    }
    let mut last_seq: Option<u64> = None;
    let mut printed = 0u64;
    let mut attempt = 0u32;
    loop {
        match watch_once(&url, opts, &mut last_seq, &mut printed, &mut attempt, out).await {
            Ok(()) => return Ok(printed),
            // Refusals that retrying cannot fix.
            Err(CliError::Closed(why)) if why.contains("1008") => {
                return Err(CliError::Closed(why))
            }
            Err(CliError::Output(e)) => return Err(CliError::Output(e)),
            Err(e) => {
                attempt = attempt.saturating_add(1);
                let cap = 500u64.saturating_mul(1 << attempt.min(6)).min(30_000);
                let wait = Duration::from_millis(rand::random::<u64>() % cap.max(1));
                log::warn!("{e}; reconnecting in {:.1} s", wait.as_secs_f64());
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// One connection of `watch`: chooses the topics, resumes after `last_seq` if it is
/// set, then prints batches until `max_items` (`Ok`) or the connection fails (`Err`).
async fn watch_once(
    url: &str,
    opts: &WatchOptions,
    last_seq: &mut Option<u64>,
    printed: &mut u64,
    attempt: &mut u32,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut ws = connect(url, opts.ca.as_deref()).await?;
    *attempt = 0;
    if !opts.topics.is_empty() {
        choose_topics(&mut ws, &opts.topics).await?;
    }
    if let Some(seq) = *last_seq {
        send_json(&mut ws, &json!({"type": "resume", "last_seq": seq})).await?;
    }
    log::info!("connected; watching");
    // Set while a `resume` repairs a gap: the seq it resumes after.
    let mut repairing: Option<u64> = None;
    loop {
        // Heartbeats every 5 s keep us well inside client_timeout; silence for 60 s
        // means the connection is dead.
        let v = next_json(&mut ws, Duration::from_secs(60)).await?;
        match v["type"].as_str().unwrap_or("") {
            "batch" => {
                let Some(seq) = follow_or_repair(&mut ws, *last_seq, &v, &mut repairing).await?
                else {
                    continue;
                };
                *last_seq = Some(seq);
                if print_batch(&v, opts, printed, out)? {
                    let _ = ws.close(None).await;
                    return Ok(());
                }
            }
            "snapshot" => on_snapshot(&v["data"], last_seq),
            "presence" => log::info!("{}", presence_line(&v["data"])),
            "error" => log::warn!("server error: {}", v["data"]),
            _ => {}
        }
    }
}

/// `presence: 2 viewers, 1 operator` (plus who, for an operator's view).
fn presence_line(d: &Value) -> String {
    let count = |k: &str, one: &str| {
        let n = d[k].as_u64().unwrap_or(0);
        format!("{n} {one}{}", if n == 1 { "" } else { "s" })
    };
    let mut line = format!(
        "presence: {}, {}",
        count("viewers", "viewer"),
        count("operators", "operator")
    );
    if let Some(sessions) = d["sessions"].as_array() {
        let who: Vec<String> = sessions
            .iter()
            .map(|s| {
                format!(
                    "{} ({}, {})",
                    s["name"].as_str().unwrap_or("?"),
                    s["role"].as_str().unwrap_or("?"),
                    s["transport"].as_str().unwrap_or("?")
                )
            })
            .collect();
        line.push_str(&format!(": {}", who.join(", ")));
    }
    line
}

/// Sends one JSON message.
async fn send_json(ws: &mut Ws, v: &Value) -> Result<(), CliError> {
    ws.send(Message::Text(v.to_string()))
        .await
        .map_err(|e| CliError::Closed(format!(": {e}")))
}

/// Narrows the stream to `topics`: unsubscribes from every other default topic, then
/// subscribes to those given.
async fn choose_topics(ws: &mut Ws, topics: &[String]) -> Result<(), CliError> {
    let all = ["state_change", "event_notification", "character_update"];
    let drop: Vec<&str> = all
        .iter()
        .copied()
        .filter(|t| !topics.iter().any(|o| o == t))
        .collect();
    send_json(ws, &json!({"type": "unsubscribe", "topics": drop})).await?;
    send_json(ws, &json!({"type": "subscribe", "topics": topics})).await
}

/// Where a batch stands: `Some(seq)` if it is to be printed (it ends at `seq`); `None`
/// if it is stale, or follows a gap, which it asks the server to repair with a
/// `resume` (once per gap).
async fn follow_or_repair(
    ws: &mut Ws,
    last_seq: Option<u64>,
    batch: &Value,
    repairing: &mut Option<u64>,
) -> Result<Option<u64>, CliError> {
    match follow(last_seq, batch, repairing) {
        Continuity::Next(seq) => Ok(Some(seq)),
        Continuity::Stale => Ok(None),
        Continuity::Gap { after } => {
            if *repairing == Some(after) {
                return Ok(None); // the resume is on its way
            }
            log::warn!("gap after batch {after}: resuming from it");
            *repairing = Some(after);
            send_json(ws, &json!({"type": "resume", "last_seq": after})).await?;
            Ok(None)
        }
    }
}

/// Prints a batch's items; `true` once `max_items` have been printed (the rest of the
/// batch is not).
fn print_batch(
    batch: &Value,
    opts: &WatchOptions,
    printed: &mut u64,
    out: &mut dyn Write,
) -> Result<bool, CliError> {
    for item in batch["data"].as_array().into_iter().flatten() {
        if opts.json {
            writeln!(out, "{item}")?;
        } else {
            writeln!(out, "{}", format_item(item))?;
        }
        *printed += 1;
        if opts.max_items.is_some_and(|m| *printed >= m) {
            out.flush()?;
            return Ok(true);
        }
    }
    out.flush()?;
    Ok(false)
}

/// A snapshot sets where printing starts (on the first connection, or after a resync)
/// and is logged.
fn on_snapshot(d: &Value, last_seq: &mut Option<u64>) {
    if d["resync"] == true {
        log::warn!("resynced: the missed batches were too old; state replaced");
    }
    if last_seq.is_none() || d["resync"] == true {
        *last_seq = d["seq"].as_u64();
    }
    log::info!(
        "snapshot: tick {} ({}), {} characters, seq {}",
        d["tick"],
        fmt_clock(&d["clock"]),
        d["characters"].as_array().map(Vec::len).unwrap_or(0),
        d["seq"]
    );
}

/// The server's game clock (`snapshot.data.clock`) as `day D, HH:MM`; `no clock` from a
/// server that sends none (v1).
fn fmt_clock(clock: &Value) -> String {
    match (clock["day"].as_u64(), clock["minute_of_day"].as_u64()) {
        (Some(day), Some(m)) => format!("day {day}, {:02}:{:02}", m / 60, m % 60),
        _ => "no clock".to_owned(),
    }
}

/// Where a received `batch` stands against the last one printed (protocol 1.1 ranges).
#[derive(Debug, PartialEq)]
enum Continuity {
    /// It follows on (or overlaps with something new): print it; it ends at this seq.
    Next(u64),
    /// Already printed: skip.
    Stale,
    /// Batches after `after` are missing: resume from there.
    Gap { after: u64 },
}

/// Classifies `batch` given the last seq printed. A frame without `from_seq` (a v1
/// server) covers just its `seq`. A frame that follows on ends a repair.
fn follow(last: Option<u64>, batch: &Value, repairing: &mut Option<u64>) -> Continuity {
    let seq = batch["seq"].as_u64().unwrap_or(0);
    let from = batch["from_seq"].as_u64().unwrap_or(seq);
    match last {
        Some(l) if seq <= l => Continuity::Stale,
        Some(l) if from > l + 1 => Continuity::Gap { after: l },
        _ => {
            *repairing = None;
            Continuity::Next(seq)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_is_one_line_with_counts_and_for_operators_who() {
        let viewer = json!({"viewers": 1, "operators": 2});
        assert_eq!(presence_line(&viewer), "presence: 1 viewer, 2 operators");
        let op = json!({"viewers": 0, "operators": 1, "sessions": [
            {"session_id": 3, "role": "operator", "name": "alice", "transport": "ws", "since": 1.0}
        ]});
        assert_eq!(
            presence_line(&op),
            "presence: 0 viewers, 1 operator: alice (operator, ws)"
        );
    }
    use crate::protocol::{CharState, Command, OPERATOR_COMMANDS};

    #[test]
    fn control_items_say_who_did_what() {
        let item = json!({"type": "event_notification", "data": {"event_type": "control",
            "tick": 12, "data": {"command": "set_speed", "by": "bob", "args": {"tick_rate": 5.0}}}});
        assert_eq!(
            format_item(&item),
            r#"[tick 12] control: bob set_speed {"tick_rate":5.0}"#
        );
    }

    #[test]
    fn clock_shows_the_servers_day_and_minute() {
        let c = json!({"day": 3, "minute_of_day": 545});
        assert_eq!(fmt_clock(&c), "day 3, 09:05");
        assert_eq!(fmt_clock(&Value::Null), "no clock");
    }

    #[test]
    fn batches_follow_on_by_from_seq() {
        let b = |from: u64, seq: u64| json!({"type": "batch", "from_seq": from, "seq": seq});
        let mut repairing = None;
        assert_eq!(follow(None, &b(3, 5), &mut repairing), Continuity::Next(5));
        assert_eq!(
            follow(Some(5), &b(6, 9), &mut repairing),
            Continuity::Next(9)
        );
        assert_eq!(follow(Some(9), &b(8, 9), &mut repairing), Continuity::Stale);
        assert_eq!(
            follow(Some(9), &b(12, 12), &mut repairing),
            Continuity::Gap { after: 9 }
        );
        repairing = Some(9);
        assert_eq!(
            follow(Some(9), &b(10, 12), &mut repairing),
            Continuity::Next(12)
        );
        assert_eq!(repairing, None, "a frame that follows on ends the repair");
        let v1 = json!({"type": "batch", "seq": 13});
        assert_eq!(follow(Some(12), &v1, &mut repairing), Continuity::Next(13));
        assert_eq!(
            follow(Some(12), &json!({"seq": 15}), &mut repairing),
            Continuity::Gap { after: 12 }
        );
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn urls() {
        assert_eq!(
            ws_url("http://127.0.0.1:8080", "a b", "").ok(),
            Some("ws://127.0.0.1:8080/ws?token=a%20b".into())
        );
        assert_eq!(
            ws_url("wss://x.example/ws", "t", "").ok(),
            Some("wss://x.example/ws?token=t".into())
        );
        assert!(ws_url("ftp://x", "t", "").is_err());
    }

    /// Every command of the protocol, one value each; the match below stops compiling
    /// when a variant is added, so this list (and the table test) cannot miss one.
    fn every_protocol_command() -> Vec<Command> {
        let all = vec![
            Command::Inspect { character_id: 1 },
            Command::Snapshot {},
            Command::Metrics {},
            Command::Pause {},
            Command::Resume {},
            Command::Step { ticks: 1 },
            Command::SetSpeed { tick_rate: 1.0 },
            Command::SetState {
                character_id: 1,
                state: CharState::Idle,
            },
            Command::Spawn {
                name: None,
                location: None,
            },
            Command::Remove { character_id: 1 },
            Command::Schedule {
                event_type: "x".into(),
                in_ticks: 1,
                data: None,
            },
            Command::Cancel { event_id: 1 },
            Command::Reset { seed: None },
            Command::Save {},
            Command::DebugLog { enabled: true },
            Command::Audit { limit: None },
            Command::ViewAt { tick: 1 },
            Command::Timeline {},
            Command::Rewind { tick: 1 },
            Command::Break {
                when: "tick > 1".into(),
            },
            Command::Unbreak { breakpoint_id: 1 },
            Command::Breakpoints {},
        ];
        for c in &all {
            match c {
                Command::Inspect { .. }
                | Command::Snapshot {}
                | Command::Metrics {}
                | Command::Pause {}
                | Command::Resume {}
                | Command::Step { .. }
                | Command::SetSpeed { .. }
                | Command::SetState { .. }
                | Command::Spawn { .. }
                | Command::Remove { .. }
                | Command::Schedule { .. }
                | Command::Cancel { .. }
                | Command::Reset { .. }
                | Command::Save {}
                | Command::DebugLog { .. }
                | Command::ViewAt { .. }
                | Command::Timeline {}
                | Command::Rewind { .. }
                | Command::Break { .. }
                | Command::Unbreak { .. }
                | Command::Breakpoints {}
                | Command::Audit { .. } => {}
            }
        }
        all
    }

    #[test]
    fn the_command_table_lists_every_protocol_command() {
        let table = command_table();
        for name in OPERATOR_COMMANDS {
            let spec = table
                .find(name)
                .unwrap_or_else(|| panic!("`{name}` in the table"));
            assert_eq!(spec.role, "operator", "{name}");
        }
        for c in every_protocol_command() {
            let spec = table
                .find(c.name())
                .unwrap_or_else(|| panic!("`{}` in the table", c.name()));
            assert_eq!(spec.name, c.name());
            let role = if c.requires_operator() {
                "operator"
            } else {
                "viewer"
            };
            assert_eq!(spec.role, role, "{}", c.name());
        }
        assert_eq!(table.commands.len(), every_protocol_command().len());
        // Every example parses to its args, and those are a valid protocol command.
        for spec in &table.commands {
            assert!(!spec.examples.is_empty(), "{} has examples", spec.name);
            for ex in &spec.examples {
                let (cmd, args) = parse_ctl(&words(&ex.line)).expect(&ex.line);
                assert_eq!(
                    (cmd.as_str(), &args),
                    (spec.name.as_str(), &ex.args),
                    "{}",
                    ex.line
                );
                let parsed: Command = serde_json::from_value(json!({"cmd": cmd, "args": args}))
                    .unwrap_or_else(|e| panic!("{}: {e}", ex.line));
                assert_eq!(parsed.name(), spec.name);
            }
        }
    }

    #[test]
    fn ctl_sends_typed_commands_and_passes_unknown_ones_through() {
        let typed = command_message("spawn", json!({}));
        assert_eq!(
            typed,
            json!({"type": "command", "id": "ctl", "cmd": "spawn",
                   "args": {"name": null, "location": null}})
        );
        let speed = command_message("set_speed", json!({"tick_rate": 5}));
        assert_eq!(speed["args"]["tick_rate"], json!(5.0));
        let unknown = command_message("fly", json!({}));
        assert_eq!(
            unknown,
            json!({"type": "command", "id": "ctl", "cmd": "fly", "args": {}})
        );
    }

    #[test]
    fn ctl_words_become_commands() {
        let p = |s: &str| parse_ctl(&words(s)).map_err(|e| e.to_string());
        assert_eq!(p("step 10"), Ok(("step".into(), json!({"ticks": 10}))));
        assert_eq!(
            p("set-state 42 sleeping"),
            Ok((
                "set_state".into(),
                json!({"character_id": 42, "state": "sleeping"})
            ))
        );
        assert_eq!(
            p("schedule construction_complete --in 50"),
            Ok((
                "schedule".into(),
                json!({"event_type": "construction_complete", "in_ticks": 50})
            ))
        );
        assert_eq!(
            p("reset --seed 7"),
            Ok(("reset".into(), json!({"seed": 7})))
        );
        assert_eq!(p("audit"), Ok(("audit".into(), json!({}))));
        assert_eq!(
            p("audit --limit 5"),
            Ok(("audit".into(), json!({"limit": 5})))
        );
        assert_eq!(
            p("speed 2.5"),
            Ok(("set_speed".into(), json!({"tick_rate": 2.5})))
        );
        assert!(p("step").is_err());
        assert!(p("inspect x").is_err());
    }
}
