//! Tokens reload on SIGHUP without a restart: the new list takes effect for new
//! connections, the old tokens stop working.

mod common;
use common::{close_code, Client};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_simcast");

struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_config(path: &std::path::Path, data: &std::path::Path, token: &str) {
    std::fs::write(
        path,
        format!(
            "[[auth.tokens]]\ntoken = \"{token}\"\nrole = \"operator\"\n[sim]\ncharacters = 20\n[persistence]\ndir = {:?}\n",
            data.display().to_string()
        ),
    )
    .expect("config");
}

async fn welcomed(addr: &str, token: &str) -> bool {
    let mut c = Client::connect(&format!("ws://{addr}/ws?token={token}")).await;
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::StreamExt::next(&mut c.ws),
    )
    .await;
    match first {
        Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => t.contains("welcome"),
        _ => false,
    }
}

#[tokio::test]
async fn sighup_reloads_tokens() {
    let dir = std::env::temp_dir().join(format!("simcast-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("c.toml");
    write_config(&config, &dir.join("data"), "first-token");
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
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("banner");
    let proc = Proc(child);
    let addr = line
        .trim()
        .trim_start_matches("dashboard: http://")
        .split('/')
        .next()
        .expect("addr")
        .to_owned();
    assert!(welcomed(&addr, "first-token").await);

    write_config(&config, &dir.join("data"), "second-token");
    // SAFETY: a signal to the child we started, by its PID.
    assert_eq!(unsafe { libc::kill(proc.0.id() as i32, libc::SIGHUP) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !welcomed(&addr, "second-token").await {
        assert!(Instant::now() < deadline, "new token never accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut old = Client::connect(&format!("ws://{addr}/ws?token=first-token")).await;
    assert_eq!(
        close_code(&old.ended().await),
        1008,
        "the old token is gone"
    );
}
