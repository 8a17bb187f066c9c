//! A `gateway` node's side of the cluster: no simulation, the stream instead.
//!
//! * [`RemoteSim`] stands where the simulation stands on a standalone server: sessions
//!   and the broker send it `RunCommand` and `TakeSnapshot` as they would send the
//!   simulation, and it asks the sim node over request/reply. Concurrent snapshot
//!   requests share one round trip (a reconnect storm asks once, not once per client):
//!   every snapshot is followed by a catch-up from the history, so one a little older
//!   than a request is as good. A command that finds no sim node fails with 1004 within
//!   5 s; the connection stays. A time series read ([`ReadSeries`], for
//!   `GET /api/timeseries`) gets the sim node's rows, or why not, within 5 s.
//! * The **feed** reads the stream in order into the broker ([`IngestBatch`]): first what
//!   the stream still holds (up to `history_size` batches, so `resume` works on a
//!   gateway that just started), then each batch as the sim node publishes it. After a
//!   NATS outage the reader goes on after the last batch it gave, so the gap fills
//!   from the stream; a gap the stream cannot fill reaches the broker as a seq jump and
//!   every session gets a resync snapshot.

use super::link::Link;
use super::rpc::{Call, Rpc, RpcError};
use super::stream::{BatchStream, Next, ReadStart, StreamSettings};
use super::wire::{error_code, CommandAnswer, CommandRequest, SeriesAnswer, SeriesRequest};
use super::{codec, Subjects};
use crate::broker::{Broker, IngestBatch};
use crate::config::ClusterConfig;
use crate::metrics::Metrics;
use crate::ports::{
    CommandError, Publish, ReadSeries, RunCommand, SnapshotFor, SnapshotUnavailable, TakeSnapshot,
};
use crate::protocol::{Reply, Snapshot};
use crate::sim::series::Row;
use actix::prelude::*;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// Snapshot requests waiting for the round trip in flight. Bounded by the broker's own
/// bound on waiting snapshot requests (`broker::tickets`); past it, requests fail at once.
const WAITING_CAPACITY: usize = 65_536;

/// Mailbox of [`RemoteSim`]: sessions' commands and snapshot requests. Senders wait
/// for room (`send`), as they do for the simulation's.
pub(crate) const REMOTE_MAILBOX: usize = 4096;

/// The simulation, as a gateway reaches it (see the module doc).
pub(crate) struct RemoteSim {
    rpc: Rpc,
    broker: Addr<Broker>,
    /// Tickets waiting for the snapshot request in flight (or the next one).
    waiting: Vec<TakeSnapshot>,
    in_flight: bool,
}

impl RemoteSim {
    pub(crate) fn new(rpc: Rpc, broker: Addr<Broker>) -> Self {
        RemoteSim {
            rpc,
            broker,
            waiting: Vec::new(),
            in_flight: false,
        }
    }

    /// Asks the sim node for one snapshot for every route waiting now.
    fn ask(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight || self.waiting.is_empty() {
            return;
        }
        self.in_flight = true;
        let tickets = std::mem::take(&mut self.waiting);
        let rpc = self.rpc.clone();
        let fut = async move { rpc.request(Call::Snapshot, Bytes::new()).await };
        ctx.spawn(fut.into_actor(self).map(move |answer, act, ctx| {
            act.in_flight = false;
            match answer
                .map_err(|e| e.to_string())
                .and_then(|b| read_snapshot(&b))
            {
                Ok(snapshot) => act.answer(tickets, &snapshot),
                Err(e) => act.fail(tickets, &e),
            }
            act.ask(ctx);
        }));
    }

    /// Hands the snapshot to the broker for every ticket (it may be a little older than
    /// a ticket's request: every snapshot is followed by a catch-up from the history).
    fn answer(&self, tickets: Vec<TakeSnapshot>, snapshot: &Snapshot) {
        for take in tickets {
            let mut snapshot = snapshot.clone();
            snapshot.resync = take.resync;
            self.broker.do_send(Publish::Snapshot {
                snapshot: Box::new(snapshot),
                to: SnapshotFor::Request(take.ticket),
            });
        }
    }

    /// No snapshot: the broker tells each ticket's waiter (a join is closed, a command
    /// gets 1004, a resync is asked for again).
    fn fail(&self, tickets: Vec<TakeSnapshot>, why: &str) {
        log::warn!("cluster: no snapshot from the sim node: {why}");
        for take in tickets {
            self.broker.do_send(SnapshotUnavailable {
                ticket: take.ticket,
                why: why.to_owned(),
            });
        }
    }
}

/// The data of the `snapshot` object a sim node answers with.
fn read_snapshot(bytes: &Bytes) -> Result<Snapshot, String> {
    let json = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    #[derive(serde::Deserialize)]
    struct Object {
        data: Snapshot,
    }
    let object: Object = serde_json::from_str(json).map_err(|e| format!("not a snapshot: {e}"))?;
    Ok(object.data)
}

impl Actor for RemoteSim {
    type Context = Context<Self>;
}

impl Handler<TakeSnapshot> for RemoteSim {
    type Result = ();

    fn handle(&mut self, msg: TakeSnapshot, ctx: &mut Self::Context) {
        if self.waiting.len() >= WAITING_CAPACITY {
            return self.fail(vec![msg], "too many snapshot requests waiting");
        }
        self.waiting.push(msg);
        self.ask(ctx);
    }
}

/// HTTP → the sim node: the time series in `from..=to`, its rows fetched from the sim
/// node (`sim::actor::ReadRows` there) and rendered here as the sim node would, so the
/// bodies are the same on every node.
impl Handler<ReadSeries> for RemoteSim {
    type Result = ResponseFuture<Result<String, String>>;

    fn handle(&mut self, msg: ReadSeries, _: &mut Self::Context) -> Self::Result {
        let rpc = self.rpc.clone();
        Box::pin(async move {
            let rows = fetch_series(&rpc, msg.from, msg.to).await?;
            Ok(crate::sim::series::render(&rows, msg.format))
        })
    }
}

/// The sim node's rows in `from..=to`, or why not.
async fn fetch_series(rpc: &Rpc, from: u64, to: u64) -> Result<Vec<Row>, String> {
    let request = SeriesRequest { from, to };
    let payload = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    let answer = rpc
        .request(Call::Series, Bytes::from(payload))
        .await
        .map_err(|e| format!("simulation unavailable: {e}"))?;
    match serde_json::from_slice::<SeriesAnswer>(&answer) {
        Ok(SeriesAnswer::Rows(rows)) => Ok(rows.into_iter().map(Row::from).collect()),
        Ok(SeriesAnswer::Err(message)) => Err(message),
        Err(e) => Err(format!("unreadable answer from the sim node: {e}")),
    }
}

impl Handler<RunCommand> for RemoteSim {
    type Result = ResponseFuture<Result<Reply, CommandError>>;

    fn handle(&mut self, msg: RunCommand, _: &mut Self::Context) -> Self::Result {
        let rpc = self.rpc.clone();
        Box::pin(async move { run_remote(&rpc, msg).await })
    }
}

/// Runs a command on the sim node; any failure to reach it is 1004.
async fn run_remote(rpc: &Rpc, msg: RunCommand) -> Result<Reply, CommandError> {
    let unavailable = CommandError::server;
    let request = CommandRequest {
        command: msg.command,
        by: msg.by,
    };
    let payload = serde_json::to_vec(&request).map_err(|e| unavailable(e.to_string()))?;
    let answer = rpc
        .request(Call::Command, Bytes::from(payload))
        .await
        .map_err(|e: RpcError| unavailable(format!("simulation unavailable: {e}")))?;
    match serde_json::from_slice::<CommandAnswer>(&answer) {
        Ok(CommandAnswer::Ok(data)) => Ok(Reply::new(data)),
        Ok(CommandAnswer::Err { code, message }) => Err(CommandError {
            code: error_code(code),
            message,
        }),
        Err(e) => Err(unavailable(format!(
            "unreadable answer from the sim node: {e}"
        ))),
    }
}

/// Where the feed starts: after the oldest batch the gateway's history can hold.
fn warm_start(last: Option<u64>, history_size: usize) -> u64 {
    last.map_or(0, |last| last.saturating_sub(history_size as u64))
}

/// Starts the feed on `arbiter`; `remote` is started there once NATS is reached.
pub(crate) fn start(
    arbiter: &ArbiterHandle,
    config: ClusterConfig,
    history_size: usize,
    remote: actix::dev::channel::AddressReceiver<RemoteSim>,
    broker: Addr<Broker>,
    metrics: Arc<Metrics>,
) {
    arbiter.spawn(async move {
        let link = super::connect_until_up(&config.nats_url, "simcast-gateway").await;
        super::watch_link(&link, &metrics);
        let rpc = Rpc::new(&link, Subjects::new(&config.subject));
        let sim = RemoteSim::new(rpc, broker.clone());
        Context::with_receiver(remote).run(sim);
        let settings = StreamSettings::new(&config, history_size);
        let stream = super::ensure_until_done(&link, settings).await;
        feed(&stream, &link, history_size, &broker, &metrics).await;
    });
}

/// Reads the stream into the broker, forever.
async fn feed(
    stream: &BatchStream,
    link: &Link,
    history_size: usize,
    broker: &Addr<Broker>,
    metrics: &Metrics,
) {
    let mut reader = loop {
        match open_reader(stream, history_size).await {
            Ok(reader) => break reader,
            Err(e) => {
                log::warn!("cluster: opening the stream: {e}; retrying");
                actix::clock::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let mut disconnects = link.disconnects();
    loop {
        match reader.next().await {
            Ok(Next::Batch(stored)) => {
                if link.disconnects() != disconnects {
                    // Back after an outage, and the reader went on where it stopped.
                    disconnects = link.disconnects();
                    metrics.cluster_gaps_repaired.inc();
                }
                metrics.cluster_lag.set(stored.pending as i64);
                ingest(&stored.payload, broker, metrics).await;
            }
            Ok(Next::Gap { expected, found }) => {
                log::warn!("cluster: batches {expected}..{found} are not in the stream");
            }
            Err(e) => {
                log::warn!("cluster: reading the stream: {e}");
                actix::clock::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A reader after what the history can hold (or from the oldest stored batch).
async fn open_reader(
    stream: &BatchStream,
    history_size: usize,
) -> Result<Box<super::stream::BatchReader>, super::stream::StreamError> {
    let after = warm_start(stream.last_seq().await?, history_size);
    match stream.read_after(after).await? {
        ReadStart::Reader(reader) => Ok(reader),
        ReadStart::Expired { oldest, .. } => match stream.read_after(oldest - 1).await? {
            ReadStart::Reader(reader) => Ok(reader),
            ReadStart::Expired { after, .. } => Err(super::stream::StreamError::Unstable { after }),
        },
    }
}

async fn ingest(payload: &Bytes, broker: &Addr<Broker>, metrics: &Metrics) {
    match codec::decode_flow(payload) {
        Ok((batch, end_of_delivery)) => {
            let msg = IngestBatch {
                batch,
                end_of_delivery,
            };
            if let Err(e) = broker.send(msg).await {
                log::error!("cluster: broker unavailable: {e}");
            }
        }
        Err(e) => {
            // Another version's batch: skipped; the broker sees the gap and resyncs.
            metrics.cluster_unpublished.inc();
            log::error!("cluster: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_starts_where_the_history_can_hold_the_stream() {
        assert_eq!(warm_start(None, 100), 0);
        assert_eq!(warm_start(Some(40), 100), 0);
        assert_eq!(warm_start(Some(1040), 100), 940);
    }

    #[test]
    fn a_sim_nodes_snapshot_object_is_read_back() {
        let json = r#"{"type":"snapshot","data":{"tick":3,"clock":{"day":1,"minute_of_day":363},
            "paused":false,"tick_rate":10.0,"seed":1,"state_hash":"ab","characters":[],
            "locations":[],"seq":9,"resync":false},"timestamp":1.0}"#;
        let snapshot = read_snapshot(&Bytes::from(json)).expect("snapshot");
        assert_eq!((snapshot.tick, snapshot.seq), (3, 9));
        assert!(read_snapshot(&Bytes::from_static(b"{}")).is_err());
    }
}
