//! Smoke run of the load generator against a real server: 200 clients for about 5 s.
//! Functional, not a timing: every client connects, none fails, every client receives
//! batches, and no client misses one.

mod common;

use common::{test_config, TestServer, VIEWER};
use serde_json::Value;
use std::process::Command;

#[test]
fn load_generator_smoke_200_clients() {
    let server = TestServer::start(test_config());
    let out = Command::new(env!("CARGO_BIN_EXE_simcast-load"))
        .args([
            "--url",
            &server.ws_url(None),
            "--token",
            VIEWER,
            "--clients",
            "200",
            "--connect-rate",
            "1000",
            "--duration",
            "5",
            "--warmup",
            "0.5",
            "--quiet",
        ])
        .output()
        .expect("run simcast-load");
    server.stop();
    assert!(
        out.status.success(),
        "simcast-load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("JSON summary on stdout");
    let c = &summary["connections"];
    assert_eq!(c["ok"], 200, "{summary}");
    assert_eq!(c["failed"], 0, "{summary}");
    assert_eq!(c["ended_early"], serde_json::json!({}), "{summary}");
    assert_eq!(c["never_connected"], 0, "{summary}");
    let per_client = &summary["per_client"];
    assert_eq!(per_client["readers"], 200, "{summary}");
    assert!(
        per_client["event_bytes_mean"].as_f64().unwrap_or(0.0) > 0.0,
        "{summary}"
    );
    let k = &summary["continuity"];
    assert_eq!(k["readers"], 200, "{summary}");
    assert_eq!(k["readers_without_batches"], 0, "{summary}");
    assert!(
        k["min_batches_per_reader"].as_u64().unwrap_or(0) > 0,
        "{summary}"
    );
    assert_eq!(k["seq_gaps"], 0, "{summary}");
    assert!(
        summary["latency_ms"]["count"].as_u64().unwrap_or(0) > 0,
        "{summary}"
    );
}

#[test]
fn load_generator_refuses_non_loopback_hosts() {
    let out = Command::new(env!("CARGO_BIN_EXE_simcast-load"))
        .args([
            "--url",
            "ws://192.0.2.1:80/ws",
            "--clients",
            "1",
            "--duration",
            "1",
        ])
        .output()
        .expect("run simcast-load");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.0/8"));
}
