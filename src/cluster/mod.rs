//! Scale-out over NATS JetStream (issue 11): the parts a `sim` node and its gateways
//! share, not yet wired into the broker or the sessions.
//!
//! - [`link`]: the connection to NATS (reconnecting forever) and its state, for metrics.
//! - [`stream`]: the JetStream stream of numbered batches: made sure of at start, one
//!   batch published per simcast `seq` (deduplicated by it), read back in order after
//!   any `seq` a gateway names, with a report when that is older than what it holds.
//! - [`rpc`]: request/reply for commands and snapshot requests, bounded by 5 s.
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
pub mod link;
pub mod rpc;
pub mod stream;

/// The subjects of one cluster, from `cluster.subject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    /// Where the sim node publishes batches (the stream's one subject).
    pub batches: String,
    /// Commands, request/reply.
    pub cmd: String,
    /// Snapshot requests, request/reply.
    pub snapshot: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        Subjects {
            batches: format!("{prefix}.batches"),
            cmd: format!("{prefix}.cmd"),
            snapshot: format!("{prefix}.snapshot"),
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
    }
}
