//! A `sim` node's side of the cluster, on an arbiter of its own:
//!
//! * the **publisher** takes the broker's delivered batches ([`Outflow`], through the
//!   bounded [`crate::broker::BatchSink`]) and publishes each to the stream, in order, waiting for the
//!   stream's ack and retrying until it comes (a republish is deduplicated by seq);
//! * the **tick deferral**: while NATS is away, or more than [`DEFER_TICKS_ABOVE`]
//!   batches wait, the simulation defers its ticks (`sim::actor`), so an outage slows
//!   the world down instead of losing batches;
//! * the **responders** answer gateways' snapshot requests (the `snapshot` object, as
//!   `GET /api/snapshot` gives it), commands (run as if sent here, with the label
//!   the gateway checked) and time series reads (the rows; the gateway renders them as
//!   this node's `GET /api/timeseries` would).
//!
//! At start, before ticks are let through, the broker's seq is raised above the stream's
//! newest: a restarted sim node never reuses a seq, and the jump makes every gateway
//! resync its clients onto the restored world.

use super::link::Link;
use super::rpc::{Call, Incoming, Rpc};
use super::stream::{BatchStream, StreamSettings};
use super::wire::{CommandAnswer, CommandRequest, SeriesAnswer, SeriesRequest, SeriesRow};
use super::{codec, Subjects};
use crate::broker::{Broker, Outflow, RaiseSeq, RequestSnapshot, SnapshotRoute};
use crate::config::ClusterConfig;
use crate::metrics::Metrics;
use crate::ports::RunCommand;
use crate::sim::actor::{ReadRows, Simulation};
use actix::prelude::*;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Batches waiting for their ack above which the simulation defers its ticks.
pub(crate) const DEFER_TICKS_ABOVE: usize = 64;

/// The sink's bound: what the broker can hand on while ticks are deferred (only
/// commands' items arrive then, which the rate limit bounds). When it is full the batch
/// is counted as unpublished: gateways see the gap and resync.
pub(crate) const SINK_CAPACITY: usize = 16_384;

/// How long a failed publish waits before it is tried again.
const RETRY: Duration = Duration::from_millis(250);

/// What `run` wires in before anything starts: the broker's sink and the simulation's
/// tick deferral flag (set: no ticks until the stream is reached).
pub(crate) struct SimNodeParts {
    pub sink: crate::broker::BatchSink,
    pub defer_ticks: Arc<AtomicBool>,
    outflow: mpsc::Receiver<Outflow>,
}

impl SimNodeParts {
    pub(crate) fn new() -> Self {
        let (sink, outflow) = mpsc::channel(SINK_CAPACITY);
        SimNodeParts {
            sink,
            defer_ticks: Arc::new(AtomicBool::new(true)),
            outflow,
        }
    }
}

impl Default for SimNodeParts {
    fn default() -> Self {
        Self::new()
    }
}

/// The actors the sim node's tasks talk to.
pub(crate) struct SimNodeActors {
    pub sim: Addr<Simulation>,
    pub broker: Addr<Broker>,
    pub metrics: Arc<Metrics>,
}

/// Starts the publisher and the responders on `arbiter`.
pub(crate) fn start(
    arbiter: &ArbiterHandle,
    config: ClusterConfig,
    history_size: usize,
    parts: SimNodeParts,
    actors: SimNodeActors,
) {
    arbiter.spawn(async move {
        let link = super::connect_until_up(&config.nats_url, "simcast-sim").await;
        super::watch_link(&link, &actors.metrics);
        let settings = StreamSettings::new(&config, history_size);
        let stream = super::ensure_until_done(&link, settings).await;
        raise_seq(&stream, &actors.broker).await;
        let rpc = Rpc::new(&link, Subjects::new(&config.subject));
        serve(&rpc, Call::Snapshot, actors.broker.clone(), answer_snapshot).await;
        serve(&rpc, Call::Command, actors.sim.clone(), answer_command).await;
        serve(&rpc, Call::Series, actors.sim.clone(), answer_series).await;
        publish(stream, link, parts, actors.metrics).await;
    });
}

/// Raises the broker's seq above the stream's newest (see the module doc).
async fn raise_seq(stream: &BatchStream, broker: &Addr<Broker>) {
    loop {
        match stream.last_seq().await {
            Ok(last) => {
                let above = last.unwrap_or(0);
                if let Err(e) = broker.send(RaiseSeq { above }).await {
                    log::error!("cluster: broker unavailable: {e}");
                }
                return;
            }
            Err(e) => {
                log::warn!("cluster: reading the stream's last seq: {e}; retrying");
                actix::clock::sleep(RETRY).await;
            }
        }
    }
}

/// Publishes every batch in order; defers the simulation's ticks while it cannot keep
/// up: while a publish fails (NATS away), while more than [`DEFER_TICKS_ABOVE`] batches
/// wait, and while the link is down. Ticks resume when the link is back and the backlog
/// is small, also when no batch is waiting (a simulation that defers makes none).
async fn publish(stream: BatchStream, link: Link, parts: SimNodeParts, metrics: Arc<Metrics>) {
    let SimNodeParts {
        defer_ticks,
        mut outflow,
        ..
    } = parts;
    let mut state = link.watch();
    let gate = |waiting: usize, defer_ticks: &AtomicBool| {
        metrics.cluster_lag.set(waiting as i64);
        let up = link.state().is_up();
        defer_ticks.store(waiting > DEFER_TICKS_ABOVE || !up, Ordering::Release);
    };
    gate(outflow.len(), &defer_ticks);
    loop {
        let flow = tokio::select! {
            flow = outflow.recv() => match flow {
                Some(flow) => flow,
                None => return,
            },
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
                gate(outflow.len(), &defer_ticks);
                continue;
            }
        };
        publish_one(&stream, &flow, &defer_ticks, &metrics).await;
        gate(outflow.len(), &defer_ticks);
    }
}

/// Publishes one batch, retrying (and deferring the simulation's ticks) until it is
/// acknowledged.
async fn publish_one(
    stream: &BatchStream,
    flow: &Outflow,
    defer_ticks: &AtomicBool,
    metrics: &Metrics,
) {
    let seq = flow.batch.seq;
    let payload = match codec::encode_flow(&flow.batch, flow.end_of_delivery) {
        Ok(p) => Bytes::from(p),
        Err(e) => {
            // Unreachable with our types; the gap it leaves makes gateways resync.
            metrics.cluster_unpublished.inc();
            return log::error!("cluster: {e}");
        }
    };
    let mut failures = 0u32;
    while let Err(e) = stream.publish_batch(seq, payload.clone()).await {
        defer_ticks.store(true, Ordering::Release);
        if failures.is_multiple_of(20) {
            log::warn!("cluster: publishing batch {seq}: {e}; deferring ticks");
        }
        failures += 1;
        actix::clock::sleep(RETRY).await;
    }
}

/// Answers each request on `call`'s subject with `answer`, on a task of its own.
async fn serve<A, F, Fut>(rpc: &Rpc, call: Call, to: A, answer: F)
where
    A: Clone + 'static,
    F: Fn(Incoming, A) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let Some(mut requests) = super::serve_until_subscribed(rpc, call).await else {
        return;
    };
    actix::spawn(async move {
        while let Some(request) = requests.next().await {
            actix::spawn(answer(request, to.clone()));
        }
    });
}

/// A snapshot request: answered with the `snapshot` object (from the world, stamped by
/// the broker).
async fn answer_snapshot(request: Incoming, broker: Addr<Broker>) {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let asked = broker.try_send(RequestSnapshot {
        route: SnapshotRoute::Http { reply },
    });
    // Nothing sent back on failure: the gateway's request times out (within 5 s) and
    // its client hears that the simulation is unavailable.
    if let Err(e) = asked {
        return log::warn!("cluster: snapshot request not taken: {e}");
    }
    let Ok(json) = answer.await else {
        return log::warn!("cluster: snapshot request dropped");
    };
    if let Err(e) = request.respond(Bytes::from(json)).await {
        log::warn!("cluster: answering a snapshot request: {e}");
    }
}

/// A gateway's command: run here, answered with its reply or error.
async fn answer_command(request: Incoming, sim: Addr<Simulation>) {
    let answer = match serde_json::from_slice::<CommandRequest>(&request.payload) {
        Err(e) => CommandAnswer::Err {
            code: crate::protocol::ErrorCode::InvalidMessage.as_u16(),
            message: format!("cluster: unreadable command: {e}"),
        },
        Ok(CommandRequest { command, by }) => match sim.send(RunCommand { command, by }).await {
            Ok(Ok(reply)) => CommandAnswer::Ok(reply.data().clone()),
            Ok(Err(e)) => CommandAnswer::Err {
                code: e.code.as_u16(),
                message: e.message,
            },
            Err(e) => CommandAnswer::Err {
                code: crate::protocol::ErrorCode::ServerError.as_u16(),
                message: format!("simulation unavailable: {e}"),
            },
        },
    };
    let bytes = match serde_json::to_vec(&answer) {
        Ok(b) => Bytes::from(b),
        Err(e) => return log::error!("cluster: encoding a command answer: {e}"),
    };
    if let Err(e) = request.respond(bytes).await {
        log::warn!("cluster: answering a command: {e}");
    }
}

/// A gateway's time series read: answered with the rows, or why not (unreadable, the
/// simulation gone, more than one NATS message can carry).
async fn answer_series(request: Incoming, sim: Addr<Simulation>) {
    let answer = match serde_json::from_slice::<SeriesRequest>(&request.payload) {
        Err(e) => SeriesAnswer::Err(format!("cluster: unreadable time series read: {e}")),
        Ok(SeriesRequest { from, to }) => match sim.send(ReadRows { from, to }).await {
            Ok(rows) => SeriesAnswer::Rows(rows.iter().map(SeriesRow::from).collect()),
            Err(e) => SeriesAnswer::Err(format!("simulation unavailable: {e}")),
        },
    };
    let mut bytes = match serde_json::to_vec(&answer) {
        Ok(b) => b,
        Err(e) => return log::error!("cluster: encoding a time series answer: {e}"),
    };
    let limit = request.max_payload();
    if bytes.len() > limit {
        let message = format!(
            "the range is {} bytes over NATS, more than its max_payload ({limit}); ask for \
             fewer ticks (from_tick, to_tick)",
            bytes.len()
        );
        bytes = match serde_json::to_vec(&SeriesAnswer::Err(message)) {
            Ok(b) => b,
            Err(e) => return log::error!("cluster: encoding a time series answer: {e}"),
        };
    }
    if let Err(e) = request.respond(Bytes::from(bytes)).await {
        log::warn!("cluster: answering a time series read: {e}");
    }
}
