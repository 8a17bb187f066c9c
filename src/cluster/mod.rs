//! Scale-out over NATS JetStream (issue 11; docs/cluster.md): a `sim` node runs the
//! world and publishes every numbered batch to a JetStream stream; `gateway` nodes
//! serve their own clients from it.
//!
//! - [`sim_node`]: the publisher (and the simulation's tick deferral) and the responders.
//! - [`gateway`]: the stream feed into the broker, and [`gateway::RemoteSim`], which
//!   stands where the simulation stands on a standalone server.
//! - [`wire`]: commands, time series reads and presence rosters as NATS payloads.
//! - [`link`]: the connection to NATS (reconnecting forever) and its state, for metrics.
//! - [`stream`]: the JetStream stream of numbered batches: made sure of at start, one
//!   batch published per simcast `seq` (deduplicated by it), read back in order after
//!   any `seq` a gateway names, with a report when that is older than what it holds.
//! - [`rpc`]: request/reply for commands, snapshot requests and time series reads,
//!   bounded by 5 s.
//! - [`presence`]: cluster-wide presence: each node publishes its own roster and
//!   merges everyone else's (a node that stops publishing drops out).
//! - [`codec`]: a [`crate::broker::batcher::Batch`] as bytes and back, so that a
//!   gateway's frames are byte for byte the sim node's.
//!
//! Only features nats-server 2.9 has are used (Debian's package): file-stored streams
//! with limits and a duplicate window, `Nats-Msg-Id`, `STREAM.MSG.GET`, ordered pull
//! consumers (`DeliverPolicy::ByStartSequence`, ack policy none, since 2.9.0), core
//! request/reply with no-responders status.
//!
//! Public like `broker`: the integration tests against a real nats-server
//! (`tests/nats_stream.rs`) use it.

pub mod codec;
pub(crate) mod gateway;
pub mod link;
pub(crate) mod presence;
pub mod rpc;
pub(crate) mod sim_node;
pub mod stream;
pub(crate) mod wire;

use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

/// How long a failed start-up step (connect, stream, subscribe) waits to try again.
const START_RETRY: Duration = Duration::from_millis(500);

/// A link to NATS; tries again until the client exists (it then reconnects by itself).
async fn connect_until_up(url: &str, name: &str) -> link::Link {
    loop {
        match link::Link::connect(url, name).await {
            Ok(link) => return link,
            Err(e) => {
                log::warn!("cluster: {e}; retrying");
                actix::clock::sleep(START_RETRY).await;
            }
        }
    }
}

/// Mirrors the link's state into `cluster_connected`.
fn watch_link(link: &link::Link, metrics: &Arc<Metrics>) {
    let mut state = link.watch();
    let metrics = Arc::clone(metrics);
    actix::spawn(async move {
        loop {
            let up = state.borrow_and_update().is_up();
            metrics.cluster_connected.set(i64::from(up));
            if state.changed().await.is_err() {
                return;
            }
        }
    });
}

/// The stream, made sure of; tries again until NATS answers.
async fn ensure_until_done(
    link: &link::Link,
    settings: stream::StreamSettings,
) -> stream::BatchStream {
    loop {
        match stream::BatchStream::ensure(link, settings.clone()).await {
            Ok(stream) => return stream,
            Err(e) => {
                log::warn!("cluster: {e}; retrying");
                actix::clock::sleep(START_RETRY).await;
            }
        }
    }
}

/// Subscribes to `call`'s subject, trying again until NATS answers.
async fn serve_until_subscribed(rpc: &rpc::Rpc, call: rpc::Call) -> Option<rpc::Requests> {
    loop {
        match rpc.serve(call).await {
            Ok(requests) => return Some(requests),
            Err(e) => {
                log::warn!("cluster: {e}; retrying");
                actix::clock::sleep(START_RETRY).await;
            }
        }
    }
}

/// The subjects of one cluster, from `cluster.subject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    /// Where the sim node publishes batches (the stream's one subject).
    pub batches: String,
    /// Commands, request/reply.
    pub cmd: String,
    /// Snapshot requests, request/reply.
    pub snapshot: String,
    /// Time series reads (`GET /api/timeseries` on a gateway), request/reply.
    pub series: String,
    /// Every node's own presence roster, published (core NATS, no stream).
    pub presence: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        Subjects {
            batches: format!("{prefix}.batches"),
            cmd: format!("{prefix}.cmd"),
            snapshot: format!("{prefix}.snapshot"),
            series: format!("{prefix}.series"),
            presence: format!("{prefix}.presence"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_hang_off_the_prefix() {
        let s = Subjects::new("simcast.eu");
        assert_eq!(s.batches, "simcast.eu.batches");
        assert_eq!(s.cmd, "simcast.eu.cmd");
        assert_eq!(s.snapshot, "simcast.eu.snapshot");
        assert_eq!(s.series, "simcast.eu.series");
        assert_eq!(s.presence, "simcast.eu.presence");
    }
}
