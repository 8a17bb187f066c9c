//! TLS end to end (issue 5, item 7): a self-signed certificate made at run time with
//! rcgen, the real server serving `https://` and `wss://`, clients that trust that
//! certificate, and clear refusals for a missing or unusable certificate or key.

mod common;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

const BIN: &str = env!("CARGO_BIN_EXE_simcast");

/// A fresh temp dir with `cert.pem` and `key.pem` for localhost and 127.0.0.1.
struct Certs {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    cert_der: rustls::pki_types::CertificateDer<'static>,
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn make_certs(tag: &str) -> Certs {
    let dir = common::scratch_dir(&format!("tls-{tag}"));
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("self-signed certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key");
    Certs {
        dir,
        cert,
        key,
        cert_der: ck.cert.der().clone(),
    }
}

fn tls_config(certs: &Certs) -> simcast::config::Config {
    let mut c = test_config();
    c.server.tls.cert_file = certs.cert.display().to_string();
    c.server.tls.key_file = certs.key.display().to_string();
    c
}

/// A client configuration that trusts exactly the test certificate (built here with
/// rustls directly, independent of the code under test).
fn trusting(certs: &Certs) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs.cert_der.clone()).expect("add root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

async fn wss_client(url: &str, config: Arc<rustls::ClientConfig>) -> Client {
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async_tls_with_config(
            url,
            None,
            false,
            Some(tokio_tungstenite::Connector::Rustls(config)),
        ),
    )
    .await
    .expect("connect in time")
    .expect("wss handshake");
    Client { ws }
}

/// GET over HTTPS with a raw TLS stream; returns (status, body).
async fn https_get(
    addr: SocketAddr,
    path: &str,
    config: Arc<rustls::ClientConfig>,
) -> (u16, String) {
    let tcp = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = tokio::time::timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("TLS handshake");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    // A peer that closes without close_notify ends in an error after the data: keep
    // what arrived.
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut buf))
        .await
        .expect("response in time");
    let (status, _, body) = parse_response(&buf);
    (status, body)
}

#[tokio::test]
async fn wss_and_https_work_with_a_trusted_self_signed_certificate() {
    let certs = make_certs("e2e");
    let server = TestServer::start(tls_config(&certs));
    let config = trusting(&certs);
    let url = format!("wss://{}/ws?token={OPERATOR}", server.addr);

    // welcome + snapshot + a batch, then a command and its reply.
    let mut c = wss_client(&url, Arc::clone(&config)).await;
    let welcome = c.next_json().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["data"]["role"], "operator");
    let snapshot = c.next_of("snapshot").await;
    assert!(snapshot["data"]["characters"].as_array().is_some());
    c.send_json(json!({"type": "subscribe", "topics": ["character_update"]}))
        .await;
    let batch = c.next_of("batch").await;
    assert!(batch["seq"].as_u64().is_some(), "{batch}");
    let r = c.command("1", "pause", json!({})).await;
    assert_eq!(r["type"], "reply", "{r}");
    let r = c.command("2", "snapshot", json!({})).await;
    assert_eq!(r["data"]["paused"], true, "{r}");
    // A viewer over TLS too.
    let mut v = wss_client(
        &format!("wss://{}/ws?token={VIEWER}", server.addr),
        Arc::clone(&config),
    )
    .await;
    v.next_of("snapshot").await;
    v.send_text("ping").await;
    while v.next_text().await != "pong" {}
    c.close().await;
    v.close().await;

    // HTTPS: /healthz needs no token, /api/snapshot does.
    let (status, body) = https_get(server.addr, "/healthz", Arc::clone(&config)).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, body) = https_get(
        server.addr,
        &format!("/api/snapshot?token={VIEWER}"),
        Arc::clone(&config),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let snap: serde_json::Value = serde_json::from_str(&body).expect("snapshot JSON");
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["data"]["paused"], true);
    let (status, _) = https_get(server.addr, "/api/snapshot", Arc::clone(&config)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn plain_ws_and_http_to_the_tls_port_fail_and_untrusted_clients_are_refused() {
    let certs = make_certs("plain");
    let server = TestServer::start(tls_config(&certs));

    // ws:// (no TLS) to the TLS port: the handshake fails, in bounded time.
    let plain = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(server.ws_url(Some(OPERATOR))),
    )
    .await
    .expect("fails in time, does not hang");
    assert!(plain.is_err(), "plain ws:// must not work on the TLS port");
    let (status, _) = http(server.addr, "GET", "/healthz", &[], "").await;
    assert_eq!(status, 0, "no plain HTTP answer on the TLS port");

    // A client that does not trust the certificate refuses it.
    let empty = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth(),
    );
    let untrusted = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async_tls_with_config(
            format!("wss://{}/ws?token={OPERATOR}", server.addr),
            None,
            false,
            Some(tokio_tungstenite::Connector::Rustls(empty)),
        ),
    )
    .await
    .expect("fails in time");
    let err = untrusted.expect_err("untrusted certificate must be refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    // The server keeps serving trusted clients afterwards.
    let mut c = wss_client(
        &format!("wss://{}/ws?token={OPERATOR}", server.addr),
        trusting(&certs),
    )
    .await;
    c.next_of("snapshot").await;
}

/// `run` refuses to start over a certificate or key it cannot use, naming the file.
fn run_error(config: simcast::config::Config) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let system = actix::System::new();
    let result = system.block_on(async move {
        simcast::start(listener, config)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    result.expect_err("run must refuse")
}

#[test]
fn missing_or_unusable_certificate_or_key_stops_the_start_naming_the_file() {
    let certs = make_certs("bad");
    let missing = certs.dir.join("no-such-cert.pem");

    let mut c = tls_config(&certs);
    c.server.tls.cert_file = missing.display().to_string();
    let err = run_error(c);
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("certificate file"), "{err}");
    assert!(err.contains("cannot read"), "{err}");

    let mut c = tls_config(&certs);
    let missing_key = certs.dir.join("no-such-key.pem");
    c.server.tls.key_file = missing_key.display().to_string();
    let err = run_error(c);
    assert!(err.contains(&missing_key.display().to_string()), "{err}");
    assert!(err.contains("key file"), "{err}");

    // Unreadable: a directory where a file should be.
    let mut c = tls_config(&certs);
    c.server.tls.cert_file = certs.dir.display().to_string();
    let err = run_error(c);
    assert!(err.contains("cannot read"), "{err}");

    // Readable but not a certificate / not a key.
    let garbage = certs.dir.join("garbage.pem");
    std::fs::write(&garbage, "hello\n").expect("write");
    let mut c = tls_config(&certs);
    c.server.tls.cert_file = garbage.display().to_string();
    let err = run_error(c);
    assert!(
        err.contains("garbage.pem") && err.contains("no CERTIFICATE"),
        "{err}"
    );
    let mut c = tls_config(&certs);
    c.server.tls.key_file = certs.cert.display().to_string();
    let err = run_error(c);
    assert!(
        err.contains("cert.pem") && err.contains("no PRIVATE KEY"),
        "{err}"
    );

    // A key that does not belong to the certificate.
    let other = make_certs("other");
    let mut c = tls_config(&certs);
    c.server.tls.key_file = other.key.display().to_string();
    let err = run_error(c);
    assert!(err.contains(&other.key.display().to_string()), "{err}");

    // Only one of the two set: a config error naming the table.
    let err = simcast::config::Config::from_toml("[server.tls]\ncert_file = \"x.pem\"\n", "t")
        .expect_err("half a TLS config")
        .to_string();
    assert!(err.contains("server.tls"), "{err}");
}

/// The real binary with `[server.tls]`.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // By PID: only the child this test started.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_config(dir: &Path, cert: &Path, key: &Path) -> PathBuf {
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nworkers = 1\n[server.tls]\ncert_file = {:?}\nkey_file = {:?}\n\
             [[auth.tokens]]\ntoken = \"{OPERATOR}\"\nrole = \"operator\"\n\
             [sim]\ncharacters = 30\ntick_rate = 20.0\n[persistence]\ndir = {:?}\n",
            cert.display().to_string(),
            key.display().to_string(),
            dir.join("data").display().to_string(),
        ),
    )
    .expect("config");
    config
}

/// Runs `simcast` with `args` to completion (bounded); returns (success, stdout, stderr).
fn simcast(args: &[&str], within: Duration) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let mut proc = Proc(child);
    let status = common::process::wait_child_exit(&mut proc.0, within);
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    (status.success(), stdout, stderr)
}

#[test]
fn binary_serves_https_prints_an_https_dashboard_url_and_the_cli_works_with_ca() {
    let certs = make_certs("bin");
    let config = write_config(&certs.dir, &certs.cert, &certs.key);
    let mut child = Command::new(BIN)
        .args([
            "--config",
            &config.display().to_string(),
            "--bind",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("banner");
    let url = line
        .trim()
        .strip_prefix("dashboard: ")
        .unwrap_or_else(|| panic!("banner: {line}"))
        .to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert!(url.ends_with(&format!("/?token={OPERATOR}")), "{url}");
    let base = url.split("/?").next().expect("base").to_owned();
    let ca = certs.cert.display().to_string();

    // ctl over TLS, trusting the self-signed certificate with --ca.
    let (ok, out, err) = simcast(
        &[
            "ctl", "--url", &base, "--token", OPERATOR, "--ca", &ca, "pause",
        ],
        Duration::from_secs(20),
    );
    assert!(ok, "ctl --ca failed: {err}");
    assert!(out.contains("\"ok\""), "{out}");
    let (ok, out, err) = simcast(
        &[
            "ctl", "--url", &base, "--token", OPERATOR, "--ca", &ca, "snapshot",
        ],
        Duration::from_secs(20),
    );
    assert!(ok, "{err}");
    assert!(out.contains("\"paused\": true"), "{out}");
    let (ok, _, _) = simcast(
        &[
            "ctl", "--url", &base, "--token", OPERATOR, "--ca", &ca, "resume",
        ],
        Duration::from_secs(20),
    );
    assert!(ok);

    // Without --ca the self-signed certificate is not trusted: a clear failure.
    let (ok, _, err) = simcast(
        &["ctl", "--url", &base, "--token", OPERATOR, "pause"],
        Duration::from_secs(20),
    );
    assert!(!ok);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // A --ca file that does not exist is named.
    let (ok, _, err) = simcast(
        &[
            "ctl",
            "--url",
            &base,
            "--token",
            OPERATOR,
            "--ca",
            "/nonexistent/ca.pem",
            "pause",
        ],
        Duration::from_secs(20),
    );
    assert!(!ok);
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");

    // watch over wss:// prints live items and stops after --max-items.
    let wss = base.replacen("https://", "wss://", 1);
    let (ok, out, err) = simcast(
        &[
            "watch",
            "--url",
            &wss,
            "--token",
            OPERATOR,
            "--ca",
            &ca,
            "--topics",
            "character_update",
            "--max-items",
            "3",
        ],
        Duration::from_secs(30),
    );
    assert!(ok, "watch failed: {err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    drop(proc);
}

#[test]
fn binary_with_a_missing_certificate_exits_non_zero_naming_the_file() {
    let certs = make_certs("binmissing");
    let missing = certs.dir.join("missing-cert.pem");
    let config = write_config(&certs.dir, &missing, &certs.key);
    let (ok, _, err) = simcast(
        &[
            "--config",
            &config.display().to_string(),
            "--bind",
            "127.0.0.1:0",
        ],
        Duration::from_secs(20),
    );
    assert!(!ok, "must not start");
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("cannot read"), "{err}");
}

#[tokio::test]
async fn a_tls_handshake_that_never_comes_is_dropped() {
    let certs = make_certs("idle");
    let server = TestServer::start(tls_config(&certs));
    // Connects and sends nothing: dropped by the TLS handshake timeout (3 s), while a
    // trusting client is served meanwhile.
    let mut idle = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut c = wss_client(
        &format!("wss://{}/ws?token={VIEWER}", server.addr),
        trusting(&certs),
    )
    .await;
    c.next_of("snapshot").await;
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(8), idle.read(&mut buf))
        .await
        .expect("dropped within 8 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    eprintln!("idle TLS connection dropped after {:?}", started.elapsed());
}
