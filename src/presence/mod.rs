//! Presence (protocol 1.1): who is watching, pushed to every connection.
//!
//! Sessions register with the [`actor::Presence`] actor once their first snapshot is on
//! its way to the client ([`JoinPresence`]) and leave when they end ([`LeavePresence`],
//! from `session::Registration`'s drop, the one place a session unregisters). The actor
//! keeps the roster and tells each connection what changed, coalesced by the plain
//! rule in [`throttle`]: the first presence at once, then only news, at most once a
//! second. Viewers get the counts; operators also the session list. Both frames are
//! serialized once per round and shared by everyone who gets them.
//!
//! In a cluster, presence counts every node's sessions: the actor also keeps the other
//! nodes' rosters ([`OtherNode`], each until it expires unless renewed), and hands its
//! own ([`LocalRoster`], [`WatchLocal`]) to `cluster::presence`, which carries rosters
//! between nodes. A standalone server never gets either and counts its own sessions.

pub(crate) mod actor;
pub(crate) mod throttle;

pub(crate) use actor::Presence;

use crate::broker::SessionId;
use crate::protocol::PresenceSession;
use actix::prelude::*;
use bytestring::ByteString;

/// Session → presence: this session is connected and has its snapshot; send it
/// presence from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JoinPresence {
    pub session: PresenceSession,
    pub push: Recipient<PushPresence>,
}

/// Session → presence: the session is gone (sent whether or not it had joined).
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeavePresence {
    pub session: SessionId,
}

/// Presence → session: one serialized `presence` object to write as is.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct PushPresence {
    pub frame: ByteString,
}

/// One node's own sessions: its counts, and its first sessions as operators see them
/// (operators first, then viewers, each in joining order; at most
/// [`actor::MAX_LISTED`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct NodeRoster {
    pub(crate) viewers: usize,
    pub(crate) operators: usize,
    pub(crate) sessions: Vec<PresenceSession>,
}

/// Cluster → presence: another node's roster, as it published it; counted until
/// `expires_in` from now unless a newer one comes (a node that dies drops out).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct OtherNode {
    pub(crate) node: u64,
    pub(crate) roster: NodeRoster,
    pub(crate) expires_in: std::time::Duration,
}

/// Cluster → presence: this node's own roster, to publish.
#[derive(Message)]
#[rtype(result = "NodeRoster")]
pub(crate) struct LocalRoster;

/// Cluster → presence: send a new value on `changes` whenever this node's own sessions
/// change (one slot: the publisher only needs to know that they did).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct WatchLocal {
    pub(crate) changes: tokio::sync::watch::Sender<u64>,
}
