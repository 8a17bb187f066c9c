//! The broker's side of a cluster: what a sim node hands on, and what a gateway takes in.
//!
//! * A **sim node** stamps `seq` as a standalone server does and, at each delivery, hands
//!   the batches it delivers to its [`BatchSink`] in order, the last one marked
//!   [`Outflow::end_of_delivery`]. The sink is a bounded channel to the stream publisher
//!   (`crate::cluster`); the broker never waits for it.
//! * A **gateway**'s broker does not number anything ([`SeqSource::Stream`]). Batches
//!   arrive as [`IngestBatch`] in stream order, go into the history, and are delivered
//!   where the sim node delivered (`end_of_delivery`): the same ranges, so the same
//!   bytes, on every gateway. A snapshot from the sim node carries its own `seq`; one
//!   ahead of what the gateway has ingested waits (parked) until the batches up to it
//!   are in, so a member never gets a frame that starts before its snapshot.
//! * A batch that does not follow the last one (lost beyond repair, or a sim node that
//!   restarted with a higher seq) is never delivered as if it did: every member is taken
//!   out of live delivery and gets a `snapshot` with `resync: true` ([`ResyncEveryone`]).

use super::batcher::Batch;
use actix::prelude::*;
use std::sync::Arc;

/// Who numbers the batches this broker delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeqSource {
    /// This broker's batcher (standalone and sim nodes).
    #[default]
    Local,
    /// The cluster stream (gateways): seq and delivery boundaries come with the batches.
    Stream,
}

/// One delivered batch on its way to the cluster stream.
#[derive(Debug, Clone)]
pub struct Outflow {
    pub batch: Arc<Batch>,
    /// The last batch of one delivery: gateways deliver after it, as the sim node did.
    pub end_of_delivery: bool,
}

/// Where a sim node's broker hands delivered batches. Bounded: when it is full (the
/// stream has been unreachable for that long and the simulation's deferral did not
/// stop the items in time) the batch is counted as unpublished and logged, and gateways
/// see the gap and resync their clients; nothing is ever silently skipped.
pub type BatchSink = tokio::sync::mpsc::Sender<Outflow>;

/// Gateway → broker: the next batch read from the cluster stream.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct IngestBatch {
    pub batch: Batch,
    /// The sim node delivered after this batch.
    pub end_of_delivery: bool,
}

/// Gateway → broker: the stream cannot fill a gap (or the sim node restarted); every
/// member gets a resync snapshot, and nothing is delivered to it before that.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ResyncEveryone;

/// Sim node → broker, before the simulation starts ticking: the stream already holds
/// batches up to `above` (from this node's earlier life); the next seq issued is above
/// it, with one left out, so gateways resync onto the restored world rather than take
/// its batches as the continuation of the old one.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RaiseSeq {
    pub above: u64,
}

/// What the broker does with an ingested batch, given the last seq it ingested.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ingest {
    /// The next one (or the first one since start): issue it.
    Next,
    /// Already ingested (a redelivery after a reconnect): drop it.
    Duplicate,
    /// Batches are missing between: resync everyone, then take it.
    Gap { expected: u64 },
}

/// Classifies batch `seq` against the last one ingested (`None`: nothing ingested yet).
pub(crate) fn classify(last: Option<u64>, seq: u64) -> Ingest {
    match last {
        None => Ingest::Next,
        Some(last) if seq <= last => Ingest::Duplicate,
        Some(last) if seq == last + 1 => Ingest::Next,
        Some(last) => Ingest::Gap { expected: last + 1 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingested_batches_are_next_duplicate_or_after_a_gap() {
        assert_eq!(
            classify(None, 500),
            Ingest::Next,
            "the first one starts anywhere"
        );
        assert_eq!(classify(Some(500), 501), Ingest::Next);
        assert_eq!(classify(Some(500), 500), Ingest::Duplicate);
        assert_eq!(classify(Some(500), 3), Ingest::Duplicate);
        assert_eq!(classify(Some(500), 503), Ingest::Gap { expected: 501 });
    }
}
