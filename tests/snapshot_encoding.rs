//! `?snapshot=compact` on `/ws` (docs/protocol.md, "Compact snapshots"): the connection
//! gets every snapshot as rows (the join, the `snapshot` command, a resync after
//! `reset`), while the others on the same server keep the contract's objects.

mod common;

use common::*;
use serde_json::{json, Value};

fn is_compact(snapshot: &Value) -> bool {
    let data = &snapshot["data"];
    data["character_fields"].is_array() && data["characters"][0].is_array()
}

fn is_objects(snapshot: &Value) -> bool {
    let data = &snapshot["data"];
    data.get("character_fields").is_none() && data["characters"][0].is_object()
}

#[tokio::test]
async fn a_compact_connection_gets_every_snapshot_as_rows_and_others_get_objects() {
    let server = TestServer::start(test_config());
    let url = format!("{}&snapshot=compact", server.ws_url(Some(OPERATOR)));
    let mut compact = Client::connect(&url).await;
    assert_eq!(compact.next_json().await["type"], "welcome");
    let join = compact.next_of("snapshot").await;
    assert!(is_compact(&join), "{join}");
    let (mut plain, _, plain_join) = server.client(VIEWER).await;
    assert!(is_objects(&plain_join), "{plain_join}");

    let reply = compact.command("s", "snapshot", json!({})).await;
    assert!(is_compact(&json!({ "data": reply["data"] })), "{reply}");
    assert!(is_compact(&compact.next_of("snapshot").await));

    // The reply (from the simulation) and the resync snapshot (through the broker) take
    // different paths: either may come first.
    compact
        .send_json(json!({"type": "command", "id": "r", "cmd": "reset", "args": {"seed": 9}}))
        .await;
    let (mut replied, mut resync) = (false, None);
    while !replied || resync.is_none() {
        let v = compact.next_json().await;
        replied |= v["id"] == "r" && v["type"] == "reply";
        if v["type"] == "snapshot" && v["data"]["resync"] == true {
            resync = Some(v);
        }
    }
    let resync = resync.unwrap_or_default();
    assert!(is_compact(&resync), "{resync}");
    let resync = plain.next_of("snapshot").await;
    assert!(
        is_objects(&resync) && resync["data"]["resync"] == true,
        "{resync}"
    );
}

#[tokio::test]
async fn an_unknown_snapshot_encoding_is_refused_at_the_handshake() {
    let server = TestServer::start(test_config());
    let url = format!("{}&snapshot=tiny", server.ws_url(Some(OPERATOR)));
    let request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .expect("request");
    let refused = tokio_tungstenite::connect_async(request).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 400)
        }
        other => panic!("expected a 400, got {:?}", other.map(|_| ())),
    }
}
