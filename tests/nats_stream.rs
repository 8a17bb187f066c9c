//! The cluster groundwork (issue 11) against a real nats-server with JetStream, started
//! by the harness (`common::nats::NatsServer`) on a free loopback port with a store of
//! its own: the stream of batches (order, the seq ↔ stream-sequence mapping,
//! deduplication, retention, gaps, a NATS restart) and request/reply. Every wait is
//! bounded; each test's server is killed when the test ends.

mod common;

use bytes::Bytes;
use common::nats::NatsServer;
use common::WAIT;
use simcast::broker::batcher::Batch;
use simcast::cluster::codec;
use simcast::cluster::link::{Link, LinkState};
use simcast::cluster::rpc::{Call, Rpc, RpcError, RPC_TIMEOUT};
use simcast::cluster::stream::{BatchReader, BatchStream, Next, ReadStart, StoredBatch};
use simcast::cluster::stream::{Published, StreamSettings};
use simcast::cluster::Subjects;
use simcast::config::ClusterConfig;
use simcast::protocol::{EventNotification, Item, ItemData};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tokio::time::timeout;

#[test]
fn the_harness_starts_stops_and_restarts_nats_on_one_port_and_store() {
    let mut nats = NatsServer::start();
    let port = nats.port();
    assert_ne!(port, 4222);
    assert_eq!(nats.url(), format!("nats://127.0.0.1:{port}"));
    assert!(
        nats.store_dir().join("jetstream").is_dir(),
        "JetStream keeps its store under -sd; log:\n{}",
        nats.log_text()
    );

    nats.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "stopped: nothing accepts on {port}"
    );
    nats.restart();
    assert_eq!(nats.port(), port, "restart keeps the port");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(nats.log_text().contains("Server is ready"));
}

async fn link(nats: &NatsServer) -> Link {
    let link = Link::connect(&nats.url(), "simcast-test")
        .await
        .expect("connect");
    assert!(link.wait_connected(WAIT).await, "{:?}", link.state());
    link
}

fn settings(history: usize) -> StreamSettings {
    StreamSettings::new(&ClusterConfig::default(), history)
}

async fn open_stream(link: &Link, history: usize) -> BatchStream {
    timeout(WAIT, BatchStream::ensure(link, settings(history)))
        .await
        .expect("ensure in time")
        .expect("ensure the stream")
}

/// A real batch numbered `seq` (one event about character `seq`), encoded.
fn payload(seq: u64) -> Bytes {
    let item = Item::new(
        ItemData::EventNotification(EventNotification {
            event_type: "test".into(),
            tick: seq,
            data: serde_json::json!({ "seq": seq }),
            event_id: None,
            characters: vec![seq],
        }),
        seq as f64,
    );
    let batch = Batch {
        seq,
        items: vec![item],
        timestamp: seq as f64 + 0.5,
    };
    Bytes::from(codec::encode(&batch).expect("encode"))
}

async fn publish(stream: &BatchStream, seq: u64) -> Published {
    timeout(WAIT, stream.publish_batch(seq, payload(seq)))
        .await
        .expect("ack in time")
        .expect("publish")
}

async fn reader(stream: &BatchStream, after: u64) -> Box<BatchReader> {
    match timeout(WAIT, stream.read_after(after)).await {
        Ok(Ok(ReadStart::Reader(reader))) => reader,
        Ok(Ok(ReadStart::Expired { oldest, .. })) => panic!("after {after}: expired ({oldest})"),
        Ok(Err(e)) => panic!("read after {after}: {e}"),
        Err(_) => panic!("read after {after}: not in time"),
    }
}

async fn next(reader: &mut BatchReader) -> Next {
    timeout(WAIT, reader.next())
        .await
        .expect("a batch in time")
        .expect("read")
}

/// The next batch, which must be `seq`, decoded back to the batch published.
async fn expect_batch(reader: &mut BatchReader, seq: u64) -> StoredBatch {
    let Next::Batch(stored) = next(reader).await else {
        panic!("expected batch {seq}");
    };
    assert_eq!(stored.seq, seq);
    assert_eq!(stored.payload, payload(seq));
    let batch = codec::decode(&stored.payload).expect("decode");
    assert_eq!((batch.seq, batch.timestamp), (seq, seq as f64 + 0.5));
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_read_back_in_order_after_any_seq() {
    let nats = NatsServer::start();
    let link = link(&nats).await;
    let stream = open_stream(&link, 64).await;
    // The world began before the stream: simcast seq 101 is stream sequence 1, so the
    // mapping goes through the header, not an assumption that they are equal.
    for seq in 101..=110 {
        let published = publish(&stream, seq).await;
        assert_eq!(published.stream_seq, seq - 100);
        assert!(!published.duplicate);
    }
    assert_eq!(stream.last_seq().await.expect("last"), Some(110));

    for after in [100, 104, 109] {
        let mut r = reader(&stream, after).await;
        for seq in after + 1..=110 {
            let stored = expect_batch(&mut r, seq).await;
            assert_eq!(stored.stream_seq, seq - 100);
            assert_eq!(stored.pending, 110 - seq);
        }
    }

    // Caught up, the reader waits for what the sim node publishes next.
    let mut live = reader(&stream, 110).await;
    assert!(timeout(Duration::from_millis(300), live.next())
        .await
        .is_err());
    publish(&stream, 111).await;
    expect_batch(&mut live, 111).await;
    assert_eq!(live.expected(), 112);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republished_seq_is_deduplicated() {
    let nats = NatsServer::start();
    let link = link(&nats).await;
    let stream = open_stream(&link, 64).await;
    for seq in 1..=3 {
        publish(&stream, seq).await;
    }
    let again = publish(&stream, 2).await;
    assert_eq!((again.stream_seq, again.duplicate), (2, true));

    // A sim node that restarted (a new connection) republishes what it had sent.
    let restarted = Link::connect(&nats.url(), "simcast-test-2")
        .await
        .expect("connect");
    assert!(restarted.wait_connected(WAIT).await);
    let restarted = open_stream(&restarted, 64).await;
    let again = publish(&restarted, 3).await;
    assert_eq!((again.stream_seq, again.duplicate), (3, true));
    assert_eq!(publish(&restarted, 4).await.stream_seq, 4);

    let mut r = reader(&stream, 0).await;
    for seq in 1..=4 {
        expect_batch(&mut r, seq).await;
    }
    // Nothing stored twice: the next thing after 4 is the next batch published, not a
    // second copy of 3 or 4.
    publish(&restarted, 5).await;
    expect_batch(&mut r, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_older_than_the_stream_holds_is_reported() {
    let nats = NatsServer::start();
    let link = link(&nats).await;
    let stream = open_stream(&link, 5).await;
    for seq in 1..=12 {
        publish(&stream, seq).await;
    }
    // max_msgs = history 5: batches 8..=12 are left.
    for after in [0, 3, 6] {
        match stream.read_after(after).await.expect("read") {
            ReadStart::Expired { after: a, oldest } => assert_eq!((a, oldest), (after, 8)),
            ReadStart::Reader(_) => panic!("after {after}: batch {} is gone", after + 1),
        }
    }
    let mut r = reader(&stream, 7).await;
    for seq in 8..=12 {
        expect_batch(&mut r, seq).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_missing_on_the_way_is_a_gap_not_silence() {
    let nats = NatsServer::start();
    let link = link(&nats).await;
    let stream = open_stream(&link, 64).await;
    // The stream is empty; the reader wants everything after 3, but 4 never comes.
    let mut r = reader(&stream, 3).await;
    publish(&stream, 6).await;
    assert_eq!(
        next(&mut r).await,
        Next::Gap {
            expected: 4,
            found: 6
        }
    );
    expect_batch(&mut r, 6).await;
    publish(&stream, 7).await;
    expect_batch(&mut r, 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_or_fail_in_bounded_time() {
    let nats = NatsServer::start();
    let link = link(&nats).await;
    let rpc = Rpc::new(&link, Subjects::new("simcast"));

    let mut commands = rpc.serve(Call::Command).await.expect("serve");
    let responder = tokio::spawn(async move {
        while let Some(request) = commands.next().await {
            let reply = [b"did ".as_slice(), &request.payload].concat();
            request.respond(Bytes::from(reply)).await.expect("respond");
        }
    });
    let reply = rpc
        .request(Call::Command, Bytes::from_static(b"pause"))
        .await;
    assert_eq!(reply.expect("reply"), Bytes::from_static(b"did pause"));

    // No sim node on the snapshot subject: the server says so at once.
    let started = Instant::now();
    let err = rpc
        .request(Call::Snapshot, Bytes::new())
        .await
        .expect_err("no one");
    assert!(matches!(err, RpcError::NoResponders { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A sim node that is subscribed but never answers: the timeout, within 5 s.
    let silent = rpc.serve(Call::Snapshot).await.expect("serve");
    let started = Instant::now();
    let err = rpc
        .request(Call::Snapshot, Bytes::new())
        .await
        .expect_err("silent");
    let took = started.elapsed();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err}");
    assert!(took >= RPC_TIMEOUT - Duration::from_millis(200), "{took:?}");
    assert!(took < RPC_TIMEOUT + Duration::from_secs(1), "{took:?}");
    drop(silent);
    responder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_survives_a_nats_restart() {
    let mut nats = NatsServer::start();
    let link = link(&nats).await;
    let stream = open_stream(&link, 64).await;
    for seq in 1..=5 {
        publish(&stream, seq).await;
    }
    let mut before = reader(&stream, 0).await;
    for seq in 1..=3 {
        expect_batch(&mut before, seq).await;
    }

    let mut state = link.watch();
    tokio::task::block_in_place(|| nats.stop());
    let lost = timeout(WAIT, state.wait_for(|s| *s == LinkState::Disconnected))
        .await
        .is_ok();
    assert!(lost, "the link sees the server go: {:?}", link.state());
    tokio::task::block_in_place(|| nats.restart());
    let back = timeout(WAIT, state.wait_for(|s| *s == LinkState::Connected))
        .await
        .is_ok();
    assert!(back, "reconnected: {:?}", link.state());
    assert_eq!(link.disconnects(), 1);

    // The batches were on disk: a reader opened now finds them, and new ones follow.
    let stream = open_stream(&link, 64).await;
    assert_eq!(stream.last_seq().await.expect("last"), Some(5));
    publish_until_acked(&stream, 6).await;
    let mut after = reader(&stream, 3).await;
    for seq in 4..=6 {
        expect_batch(&mut after, seq).await;
    }
    // The reader from before the restart goes on where it was, with no gap, and at
    // once (it reopens its consumer when the link is back).
    let started = Instant::now();
    for seq in 4..=7 {
        if seq == 7 {
            publish(&stream, 7).await;
        }
        expect_batch(&mut before, seq).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// JetStream may still be recovering its streams right after a restart.
async fn publish_until_acked(stream: &BatchStream, seq: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        match timeout(WAIT, stream.publish_batch(seq, payload(seq))).await {
            Ok(Ok(_)) => return,
            other => assert!(Instant::now() < deadline, "publish {seq}: {other:?}"),
        }
        // Pacing of the retries; the loop ends on an ack or its deadline.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
