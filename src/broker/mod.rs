//! The broker: turns the simulation's items into numbered batches and delivers them.
//!
//! Two halves joined by one narrow interface, the [`Publish`](crate::ports::Publish)
//! stream:
//! - *produce* — the world sends `Publish` messages (items, snapshots) in order; the
//!   [`batcher`] cuts batches and stamps `seq`, the [`history`] keeps them for
//!   `resume`. Snapshot requests ([`RequestSnapshot`]) come here, not to the world: the
//!   broker keeps each route under a ticket (`tickets`) and asks the world with
//!   `ports::TakeSnapshot`;
//! - *deliver* — the [`actor`] serializes each batch once per distinct topic set and
//!   hands the shared bytes to every session ([`fanout`], free of actor context so
//!   benches call it directly) through one [`hub`] per worker thread; the [`roster`]
//!   keeps who is joined and where each stands in the seq stream.
//!
//! In a cluster (docs/cluster.md) the halves run on different nodes. The sim node's
//! broker also hands every delivered batch to a [`BatchSink`] (the stream publisher);
//! a gateway's broker has no batcher of its own: the stream's batches come in as
//! [`IngestBatch`], numbered by the sim node, and are delivered as the sim node did, so
//! frames are the same bytes on every gateway ([`relay`]).

pub(crate) mod actor;
pub mod batcher;
pub mod fanout;
pub(crate) mod history;
pub mod hub;
pub mod last_seen;
pub mod mailroom;
pub(crate) mod pacing;
pub(crate) mod relay;
pub(crate) mod roster;
pub(crate) mod stagger;
#[cfg(test)]
pub(crate) mod testing;
mod tickets;

pub use actor::{Broker, BrokerSettings};
pub use relay::{BatchSink, IngestBatch, Outflow, RaiseSeq, ResyncEveryone, SeqSource};

use crate::conn::ConnHandle;
use crate::topics::TopicSet;
use actix::prelude::*;
use bytestring::ByteString;
use serde_json::Value;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Identifies a session; a counter, unique within one server run.
pub type SessionId = u64;

/// Where a snapshot goes once the broker has stamped it. The broker keeps it while the
/// world builds the snapshot (`tickets`); the world sees only a ticket.
#[derive(Debug)]
pub enum SnapshotRoute {
    /// A newly authenticated session: send it the snapshot, then every later batch.
    Join(JoinSession),
    /// Answer to the `snapshot` command: a `reply` and then the `snapshot`, both with `id`.
    /// Everything published before it reaches the session first (a fence clients rely
    /// on), so it ends the session's resume window.
    Reply {
        session: SessionId,
        id: Option<Value>,
    },
    /// A session whose `resume` seq is older than the history.
    Resync { session: SessionId },
    /// Every joined session (after `reset`), with `resync: true`.
    Everyone,
    /// `GET /api/snapshot`: the serialized `snapshot` object.
    Http {
        reply: tokio::sync::oneshot::Sender<String>,
    },
}

/// What the broker needs to deliver to, watch, and if need be evict a session.
#[derive(Debug)]
pub struct JoinSession {
    pub session: SessionId,
    /// The hub of the session's thread, where its [`hub::Outbox`] is open.
    pub route: hub::HubRoute,
    pub close: Recipient<CloseSession>,
    pub conn: Option<ConnHandle>,
    /// Milliseconds (see [`crate::clock`]) of the session's last inbound frame.
    pub last_seen: Arc<AtomicU64>,
    pub topics: TopicSet,
    /// How this session wants snapshots (its join snapshot and every later one).
    pub encoding: crate::protocol::SnapshotEncoding,
}

/// Broker → session (through its hub's [`hub::Outbox`]): one serialized frame to write
/// as-is. Cloning the bytes is a reference-count increment, so one serialization serves
/// every receiver.
#[derive(Debug, Clone)]
pub struct Deliver {
    pub frame: ByteString,
    /// The `seq` the object carries (batches; snapshots: the seq they reflect), for
    /// transports that label frames with it (SSE `id:`).
    pub seq: Option<u64>,
}

/// Session → broker: the session's whole topic set after a subscribe/unsubscribe.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetTopics {
    pub session: SessionId,
    pub topics: TopicSet,
}

/// Session → broker: send the batches after `last_seq` that this session missed.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ResumeFrom {
    pub session: SessionId,
    pub last_seq: u64,
}

/// Session → broker: the session is gone; forget it. Sent once, from the session's
/// `stopped` (the one place a session unregisters).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: SessionId,
}

impl SnapshotRoute {
    /// Whether the snapshot replaces its receivers' picture of the world (`resync`).
    pub(crate) fn is_resync(&self) -> bool {
        matches!(self, SnapshotRoute::Resync { .. } | SnapshotRoute::Everyone)
    }
}

/// Sessions, HTTP, a sim node's responder → broker: get a snapshot from the world and
/// send it along `route`, stamped with its `seq`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RequestSnapshot {
    pub route: SnapshotRoute,
}

/// Broker → session: close the connection with this code and reason (shutdown).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct CloseSession {
    pub code: u16,
    pub reason: &'static str,
}

/// Shutdown → broker: close every session with 1001; returns how many were asked.
/// A session whose mailbox is full (jammed) has its socket shut down instead.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct CloseAll;
