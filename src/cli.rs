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

/// A `ctl` command's name as typed and the words after it.
struct CtlWords<'a> {
    name: &'a str,
    rest: &'a [String],
}

impl CtlWords<'_> {
    /// The `i`-th word after the name as a JSON number: a whole number if it is one.
    fn num(&self, i: usize, what: &str) -> Result<Value, CliError> {
        self.rest
            .get(i)
            .ok_or_else(|| usage(&format!("`{}` needs {what}", self.name)))?
            .parse::<f64>()
            .map(|n| {
                if n.fract() == 0.0 && n >= 0.0 {
                    json!(n as u64)
                } else {
                    json!(n)
                }
            })
            .map_err(|_| usage(&format!("{what} must be a number")))
    }

    /// The word after the flag `f`.
    fn flag(&self, f: &str) -> Option<&String> {
        self.rest
            .iter()
            .position(|w| w == f)
            .and_then(|i| self.rest.get(i + 1))
    }
}

/// Turns `ctl` words into a command: `step 10`, `set-state 42 sleeping`,
/// `schedule festival --in 50 --data '{"x":1}'`, ...
pub fn parse_ctl(words: &[String]) -> Result<(String, Value), CliError> {
    let (name, rest) = words
        .split_first()
        .ok_or_else(|| usage("missing command (pause, resume, step N, inspect ID, ...)"))?;
    let cmd = name.replace('-', "_");
    let w = CtlWords { name, rest };
    let args = match cmd.as_str() {
        "pause" | "resume" | "snapshot" | "metrics" | "save" => json!({}),
        "step" => json!({ "ticks": w.num(0, "a tick count")? }),
        "set_speed" | "speed" => {
            return Ok((
                "set_speed".into(),
                json!({ "tick_rate": w.num(0, "a tick rate")? }),
            ))
        }
        "inspect" | "remove" => json!({ "character_id": w.num(0, "a character id")? }),
        "set_state" => json!({
            "character_id": w.num(0, "a character id")?,
            "state": rest.get(1).ok_or_else(|| usage("`set-state` needs ID STATE"))?,
        }),
        "cancel" => json!({ "event_id": w.num(0, "an event id")? }),
        "schedule" => schedule_args(&w)?,
        "spawn" => spawn_args(&w),
        "reset" => reset_args(&w)?,
        "audit" => audit_args(&w)?,
        "debug_log" => debug_log_args(&w)?,
        // Unknown names go to the server, which answers with a clear 1001.
        _ => json!({}),
    };
    Ok((cmd, args))
}

/// `schedule EVENT_TYPE --in TICKS [--data JSON]`
fn schedule_args(w: &CtlWords) -> Result<Value, CliError> {
    let event_type = w
        .rest
        .first()
        .filter(|word| !word.starts_with("--"))
        .ok_or_else(|| usage("`schedule` needs EVENT_TYPE --in TICKS"))?;
    let in_ticks = w
        .flag("--in")
        .ok_or_else(|| usage("`schedule` needs --in TICKS"))?
        .parse::<u64>()
        .map_err(|_| usage("--in must be a whole number"))?;
    let mut args = json!({ "event_type": event_type, "in_ticks": in_ticks });
    if let Some(data) = w.flag("--data") {
        args["data"] =
            serde_json::from_str(data).map_err(|e| usage(&format!("--data must be JSON: {e}")))?;
    }
    Ok(args)
}

/// `spawn [--name NAME] [--location PLACE]`
fn spawn_args(w: &CtlWords) -> Value {
    let mut args = json!({});
    if let Some(n) = w.flag("--name") {
        args["name"] = json!(n);
    }
    if let Some(l) = w.flag("--location") {
        args["location"] = json!(l);
    }
    args
}

/// `reset [SEED]` or `reset --seed SEED`
fn reset_args(w: &CtlWords) -> Result<Value, CliError> {
    Ok(match w.flag("--seed").or(w.rest.first()) {
        Some(s) => {
            json!({ "seed": s.parse::<u64>().map_err(|_| usage("seed must be a whole number"))? })
        }
        None => json!({}),
    })
}

/// `audit [LIMIT]` or `audit --limit LIMIT`
fn audit_args(w: &CtlWords) -> Result<Value, CliError> {
    Ok(match w.flag("--limit").or(w.rest.first()) {
        Some(n) => json!({
            "limit": n.parse::<u64>().map_err(|_| usage("the audit limit must be a whole number"))?
        }),
        None => json!({}),
    })
}

/// `debug-log on|off`
fn debug_log_args(w: &CtlWords) -> Result<Value, CliError> {
    let on = match w.rest.first().map(String::as_str) {
        Some("on" | "true" | "1") => true,
        Some("off" | "false" | "0") => false,
        _ => return Err(usage("`debug-log` needs on or off")),
    };
    Ok(json!({ "enabled": on }))
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
    let msg = json!({"type": "command", "id": "ctl", "cmd": cmd, "args": args});
    send_json(&mut ws, &msg).await?;
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
            "error" => log::warn!("server error: {}", v["data"]),
            _ => {}
        }
    }
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
