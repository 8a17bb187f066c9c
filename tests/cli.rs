//! The binary itself: the run command prints the dashboard URL with a token, bad config
//! stops the start with a message naming the key, and `watch` / `ctl` work against a
//! real server process.

mod common;
use common::process::{temp_dir, ServerProcess, BIN};
use std::process::Command;

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = common::scratch_dir("cli-files").join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// Starts the binary on 127.0.0.1:0 with no tokens configured: it generates one and
/// prints the dashboard URL with it.
fn start_server() -> ServerProcess {
    let dir = temp_dir("cli");
    let config = format!(
        "[sim]\ncharacters = 40\ntick_rate = 20.0\n[persistence]\ndir = {:?}\n",
        dir.join("data").display().to_string()
    );
    let server = ServerProcess::start(&dir, &config, &[]).expect("server starts");
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    assert_eq!(server.token.len(), 32, "a generated 128-bit token");
    server
}

fn ctl(server: &ServerProcess, words: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["ctl", "--url", &server.url, "--token", &server.token])
        .args(words)
        .output()
        .expect("run ctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn print_config_prints_the_embedded_default() {
    let out = Command::new(BIN).arg("print-config").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed = simcast::config::Config::from_toml(&text, "printed").expect("valid TOML");
    assert_eq!(parsed.server.bind, "127.0.0.1:8080");
    for key in [
        "[server]",
        "[auth]",
        "[pool]",
        "[session]",
        "[broker]",
        "[sim]",
    ] {
        assert!(text.contains(key), "{key}");
    }
}

#[test]
fn bad_config_stops_the_start_naming_the_key() {
    for (text, key) in [
        ("[pool]\nmax_connections = 0\n", "pool.max_connections"),
        ("[sim]\ntick_rate = \"fast\"\n", "tick_rate"),
        ("[server]\nbnid = \"x\"\n", "bnid"),
    ] {
        let path = temp_file("bad.toml", text);
        let out = Command::new(BIN)
            .args([
                "--config",
                &path.display().to_string(),
                "--bind",
                "127.0.0.1:0",
            ])
            .output()
            .expect("run");
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "stderr should name {key}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/simcast.toml"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/simcast.toml"));
}

#[test]
fn server_process_with_ctl_and_watch() {
    let server = start_server();

    let (ok, out, err) = ctl(&server, &["pause"]);
    assert!(ok, "{err}");
    let reply: serde_json::Value = serde_json::from_str(&out).expect("JSON reply");
    assert_eq!(reply["paused"], true);
    let tick = reply["tick"].as_u64().expect("tick");

    let (ok, out, err) = ctl(&server, &["step", "10"]);
    assert!(ok, "{err}");
    let reply: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(reply["tick"].as_u64(), Some(tick + 10));

    let (ok, out, _) = ctl(&server, &["set-state", "3", "sleeping"]);
    assert!(ok);
    assert!(out.contains("sleeping"));
    let (ok, out, _) = ctl(&server, &["inspect", "3"]);
    assert!(ok);
    let reply: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(reply["state"], "sleeping");
    let (ok, out, _) = ctl(&server, &["schedule", "construction_complete", "--in", "5"]);
    assert!(ok);
    assert!(out.contains("event_id"));

    // Errors exit non-zero with the server's message.
    let (ok, _, err) = ctl(&server, &["inspect", "99999"]);
    assert!(!ok);
    assert!(err.contains("1001") && err.contains("99999"), "{err}");
    let (ok, _, err) = ctl(&server, &["fly"]);
    assert!(!ok);
    assert!(err.contains("1001"), "{err}");

    // watch prints readable items (resume the world so items flow).
    let (ok, _, _) = ctl(&server, &["resume"]);
    assert!(ok);
    let out = Command::new(BIN)
        .args([
            "watch",
            "--url",
            &server.url,
            "--token",
            &server.token,
            "--topics",
            "character_update",
            "--max-items",
            "5",
        ])
        .output()
        .expect("watch");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("[tick ") && l.contains("energy")),
        "{text}"
    );

    let out = Command::new(BIN)
        .args([
            "watch",
            "--url",
            &server.url,
            "--token",
            &server.token,
            "--json",
            "--max-items",
            "3",
            "--topics",
            "character_update",
        ])
        .output()
        .expect("watch --json");
    assert!(out.status.success());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("one JSON item per line");
        assert_eq!(v["type"], "character_update");
    }

    // Tokens never reach the log, not even from query strings.
    let log = server.log();
    assert!(log.contains("dashboard: http://127.0.0.1:"), "{log}");
    assert!(
        !log.contains(&server.token),
        "the token leaked into the log:\n{log}"
    );

    // A wrong token is refused, not retried forever.
    let out = Command::new(BIN)
        .args([
            "watch",
            "--url",
            &server.url,
            "--token",
            "wrong",
            "--max-items",
            "1",
        ])
        .output()
        .expect("watch");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1008"));
}

/// `simcast run`: the same arguments give a byte-identical file; a sweep adds `run`.
#[test]
fn headless_runs_are_reproducible_and_sweeps_are_numbered() {
    let dir = common::process::temp_dir("headless-run");
    let run = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let status = std::process::Command::new(common::process::BIN)
            .args(["run", "--characters", "50", "--ticks", "300", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .expect("runs");
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        std::fs::read_to_string(out).expect("the file")
    };
    let a = run("a.csv", &["--seed", "9", "--set", "characters=40"]);
    let b = run("b.csv", &["--seed", "9", "--set", "characters=40"]);
    assert_eq!(a, b, "byte-identical");
    assert_eq!(a.lines().count(), 302, "a header and ticks 0..=300");
    let first = a.lines().nth(1).expect("tick 0");
    let counts: u32 = first
        .split(',')
        .skip(3)
        .take(6)
        .map(|v| v.parse::<u32>().unwrap_or(0))
        .sum();
    assert_eq!(counts, 40, "--set characters applied: {first}");
    let sweep = run("s.csv", &["--sweep", "seed=1..3"]);
    assert!(sweep.starts_with("run,tick,day"));
    assert_eq!(sweep.lines().count(), 1 + 3 * 301);
    assert!(sweep
        .lines()
        .last()
        .is_some_and(|l| l.starts_with("3,300,")));
    let bad = std::process::Command::new(common::process::BIN)
        .args(["run", "--ticks", "5", "--out"])
        .arg(dir.join("x.csv"))
        .args(["--set", "speed=3"])
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown parameter `speed`"));
}

/// `simcast run --model wolf_sheep`: the same arguments give the same bytes, the census
/// columns are the model's, and an unknown model or param is refused with what exists.
#[test]
fn wolf_sheep_runs_headless_and_unknown_models_and_params_are_refused() {
    let dir = common::process::temp_dir("wolf-sheep-run");
    let simcast = |out: &str, extra: &[&str]| {
        std::process::Command::new(common::process::BIN)
            .args(["run", "--model", "wolf_sheep", "--ticks", "100", "--out"])
            .arg(dir.join(out))
            .args(extra)
            .output()
            .expect("runs")
    };
    let read = |name: &str, extra: &[&str]| {
        let done = simcast(name, extra);
        let err = String::from_utf8_lossy(&done.stderr).into_owned();
        assert!(done.status.success(), "{err}");
        std::fs::read_to_string(dir.join(name)).expect("the file")
    };
    let args = ["--sweep", "seed=1..4", "--set", "initial_wolves=20"];
    let a = read("a.csv", &args);
    assert_eq!(a, read("b.csv", &args), "byte-identical");
    assert!(
        a.starts_with("run,tick,sheep,wolf,grass\n1,0,100,20,"),
        "{a}"
    );
    assert_eq!(a.lines().count(), 1 + 4 * 101);
    let seeds: std::collections::BTreeSet<&str> = a
        .lines()
        .filter(|l| l.split(',').nth(1) == Some("100"))
        .map(|l| l.split_once(',').map_or(l, |(_, rest)| rest))
        .collect();
    assert!(seeds.len() > 1, "seeds give different worlds: {seeds:?}");
    let one = read("one.csv", &["--seed", "3"]);
    assert!(one.starts_with("tick,sheep,wolf,grass\n0,100,50,"), "{one}");

    let refused = |extra: &[&str], wanted: &[&str]| {
        let done = simcast("x.csv", extra);
        let err = String::from_utf8_lossy(&done.stderr).into_owned();
        assert_eq!(done.status.code(), Some(2), "{err}");
        for w in wanted {
            assert!(err.contains(w), "stderr should contain {w}: {err}");
        }
    };
    refused(
        &["--set", "speed=3"],
        &[
            "unknown parameter `speed`",
            "initial_sheep",
            "grass_regrowth_time",
        ],
    );
    refused(
        &["--sweep", "characters=1,2"],
        &["`characters`", "wolf_reproduce"],
    );
    refused(
        &["--set", "sheep_reproduce=2"],
        &["sheep_reproduce", "0..=1"],
    );
    let other = std::process::Command::new(common::process::BIN)
        .args(["run", "--model", "boids", "--ticks", "5", "--out"])
        .arg(dir.join("y.csv"))
        .output()
        .expect("runs");
    assert_eq!(other.status.code(), Some(2));
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        err.contains("unknown model `boids` (known: town, wolf_sheep)"),
        "{err}"
    );
}
