//! Presence (protocol 1.1): who is watching, pushed to every connection.
//!
//! Sessions register with the [`actor::Presence`] actor once their first snapshot is on
//! its way to the client ([`JoinPresence`]) and leave when they end ([`LeavePresence`],
//! from `session::Registration`'s drop, the one place a session unregisters). The actor
//! keeps the roster and tells each connection what changed, coalesced by the plain
//! rule in [`throttle`]: the first presence at once, then only news, at most once a
//! second. Viewers get the counts; operators also the session list. Both frames are
//! serialized once per round and shared by everyone who gets them.

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
