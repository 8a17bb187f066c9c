//! Tokens reload on SIGHUP without a restart: the new list takes effect for new
//! connections, the old tokens stop working.

mod common;
use common::process::{temp_dir, ServerProcess};
use common::{close_code, Client};
use std::time::{Duration, Instant};

fn config(data: &std::path::Path, token: &str) -> String {
    format!(
        "[[auth.tokens]]\ntoken = \"{token}\"\nrole = \"operator\"\n[sim]\ncharacters = 20\n[persistence]\ndir = {:?}\n",
        data.display().to_string()
    )
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
    let dir = temp_dir("tokens");
    let data = dir.join("data");
    let proc = ServerProcess::start(&dir, &config(&data, "first-token"), &[]).expect("starts");
    let addr = proc.addr.clone();
    assert!(welcomed(&addr, "first-token").await);

    std::fs::write(dir.join("config.toml"), config(&data, "second-token")).expect("write");
    proc.signal(libc::SIGHUP);
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
