//! Helpers shared by the cluster tests (`cluster.rs`, `cluster_breakpoints.rs`): a
//! node's config, and a client past its `welcome` and first `snapshot` on a node that
//! may still be reaching the sim node.

use super::{wait_until, Client, OPERATOR, VIEWER};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// How long one join attempt waits for its first snapshot before it tries again.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(6);

/// A cluster node's config: `role` on `nats`, a world of `characters`, data in `dir`,
/// an operator token named `alice` and a viewer token.
pub(crate) fn config(dir: &Path, role: &str, nats: &str, characters: u32) -> String {
    format!(
        r#"[[auth.tokens]]
token = "{OPERATOR}"
role = "operator"
name = "alice"
[[auth.tokens]]
token = "{VIEWER}"
role = "viewer"
[sim]
characters = {characters}
tick_rate = 20.0
[persistence]
dir = {data:?}
snapshot_interval_ticks = 0
[cluster]
role = "{role}"
nats_url = "{nats}"
"#,
        data = dir.join("data").display().to_string()
    )
}

/// A client of `addr` with `token`, past its `welcome` and first `snapshot`. Tries again
/// (within `WAIT`) while the node is still reaching the sim node: it closes joins with
/// 1013 then.
pub(crate) async fn join(addr: &str, token: &str) -> (Client, Value) {
    let (c, _, snapshot) = join_welcomed(addr, token).await;
    (c, snapshot)
}

/// [`join`], with the `welcome` too.
pub(crate) async fn join_welcomed(addr: &str, token: &str) -> (Client, Value, Value) {
    let url = format!("ws://{addr}/ws?token={token}");
    wait_until(&format!("a snapshot from {addr}"), || async {
        let mut c = Client::connect(&url).await;
        let welcome = c.next_json().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        match tokio::time::timeout(SNAPSHOT_WAIT, first_snapshot(&mut c)).await {
            Ok(Some(snapshot)) => Ok((c, welcome, snapshot)),
            Ok(None) => Err("the join was closed before its snapshot".to_string()),
            Err(_) => Err(format!("no snapshot within {SNAPSHOT_WAIT:?}")),
        }
    })
    .await
}

/// The first snapshot, or `None` when the connection closes first.
pub(crate) async fn first_snapshot(c: &mut Client) -> Option<Value> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    while let Some(Ok(msg)) = c.ws.next().await {
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).ok()?;
                if v["type"] == "snapshot" {
                    return Some(v);
                }
            }
            Message::Close(_) => return None,
            _ => {}
        }
    }
    None
}
