//! Sessions: one actor per WebSocket, and the plain types it is built from.
//!
//! The actor (`actor.rs`) moves messages between the connection it owns
//! ([`transport`]: the socket's halves, read through actix-http's `ws::Codec` and
//! written directly) and the rest of the server; authentication ([`auth`]), rate limiting ([`rate`]),
//! topic sets ([`crate::topics`]) and message fragmentation ([`fragments`]) are plain
//! types, unit-tested without sockets. Commands go through one dispatch ([`commands`]),
//! shared with `POST /api/command`. Both kinds of session join `crate::presence`
//! once their first snapshot is on its way, and leave it from [`Registration`]'s drop.

pub(crate) mod actor;
pub mod auth;
pub(crate) mod commands;
pub(crate) mod fragments;
pub(crate) mod rate;
pub(crate) mod reject;
pub(crate) mod sse;
pub(crate) mod transport;

pub use actor::{Handshake, Session};

use crate::broker::hub::{LocalHub, Outbox};
use crate::broker::{
    Broker, CloseSession, JoinSession, Leave, RequestSnapshot, SessionId, SnapshotRoute,
};
use crate::conn::{ConnHandle, PoolPermit};
use crate::metrics::Metrics;
use crate::ports::RunCommand;
use crate::protocol::{self, Bounds, Limits, RateBudget};
use crate::topics::TopicSet;
use actix::prelude::*;
use auth::Tokens;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// Everything sessions share: settings, the other actors' addresses, counters.
#[derive(Clone)]
pub struct SessionShared {
    pub tokens: Tokens,
    pub heartbeat_interval: Duration,
    pub client_timeout: Duration,
    pub auth_timeout: Duration,
    pub rate_limit_messages: u32,
    pub rate_limit_window_ms: u64,
    pub outbound_queue: usize,
    /// Largest client message (one frame, or the fragments of one message together).
    pub max_message_bytes: usize,
    /// `welcome.data.limits.town_size`: positions lie in `0..=town_size` (the world's,
    /// given by whoever builds the node).
    pub town_size: f64,
    pub broker: Addr<Broker>,
    pub sim_commands: Recipient<RunCommand>,
    pub metrics: Arc<Metrics>,
    pub latest_seq: Arc<AtomicU64>,
    pub pool: Arc<crate::conn::Pool>,
    /// Source of session ids (a counter, never reused in one run).
    pub next_id: Arc<AtomicU64>,
    /// Random per server start (`welcome.data.boot_id`).
    pub boot_id: String,
    /// Where sessions join and leave presence.
    pub presence: Addr<crate::presence::Presence>,
}

impl SessionShared {
    /// The `welcome` object for a newly authenticated session (WebSocket or SSE).
    pub fn welcome_json(&self, session_id: SessionId, role: crate::protocol::Role) -> String {
        let welcome = crate::protocol::Welcome {
            session_id,
            role,
            server: crate::protocol::ServerInfo::current(),
            heartbeat_interval_ms: self.heartbeat_interval.as_millis() as u64,
            seq: self.latest_seq.load(std::sync::atomic::Ordering::Acquire),
            protocol: crate::protocol::PROTOCOL_VERSION,
            limits: self.limits(),
            boot_id: self.boot_id.clone(),
        };
        crate::protocol::Envelope::new("welcome", welcome).to_json()
    }

    /// Joins presence for a session whose first snapshot is on its way, as the token
    /// labelled `name` sees it (role, transport, `since` it authenticated); a full
    /// presence mailbox leaves it out (logged), nothing else.
    pub fn join_presence(
        &self,
        transport: crate::protocol::TransportKind,
        id: SessionId,
        role: crate::protocol::Role,
        name: &str,
        since: f64,
        push: Recipient<crate::presence::PushPresence>,
    ) {
        let session = crate::protocol::PresenceSession {
            session_id: id,
            role,
            name: name.to_owned(),
            transport,
            since,
        };
        let join = crate::presence::JoinPresence { session, push };
        if let Err(e) = self.presence.try_send(join) {
            log::warn!("session {id} is not in presence: {e}");
        }
    }

    /// `welcome.data.limits`, from the config values sessions enforce and the
    /// protocol's and the world's constants.
    pub fn limits(&self) -> Limits {
        Limits {
            rate: RateBudget {
                messages: self.rate_limit_messages,
                window_ms: self.rate_limit_window_ms,
            },
            max_message_bytes: self.max_message_bytes,
            step_ticks: Bounds {
                min: protocol::MIN_STEP_TICKS,
                max: protocol::MAX_STEP_TICKS,
            },
            tick_rate: Bounds {
                min: protocol::MIN_TICK_RATE,
                max: protocol::MAX_TICK_RATE,
            },
            town_size: self.town_size,
        }
    }
}

impl SessionShared {
    /// A new session's id (a counter, never reused in one run).
    pub fn next_session_id(&self) -> SessionId {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// The one join path of both transports, once the session is authenticated: opens
    /// its outbox on the delivery hub of the calling (worker) thread (the stream of every
    /// frame the broker sends it, which the caller reads as its transport needs), and
    /// asks the broker for the join snapshot. The broker gets it from the world, stamps
    /// its seq and from then on delivers every batch to this session: nothing falls
    /// between.
    pub fn join(
        &self,
        session: SessionId,
        close: Recipient<CloseSession>,
        conn: Option<ConnHandle>,
        last_seen: &Arc<AtomicU64>,
        topics: TopicSet,
        encoding: crate::protocol::SnapshotEncoding,
    ) -> (Outbox, Request<Broker, RequestSnapshot>) {
        let hub = LocalHub::this_thread();
        let outbox = hub.open(session, self.outbound_queue);
        let join = JoinSession {
            session,
            route: hub.route(),
            close,
            conn,
            last_seen: Arc::clone(last_seen),
            topics,
            encoding,
        };
        let request = self.broker.send(RequestSnapshot {
            route: SnapshotRoute::Join(join),
        });
        (outbox, request)
    }
}

/// A session's hold on a pool slot. Dropping it (when the session stops, or when the
/// actor is dropped without stopping because the connection died) is the one place a
/// session unregisters: it tells the broker and frees the slot.
pub struct Registration {
    session: SessionId,
    shared: Arc<SessionShared>,
    _permit: PoolPermit,
}

impl Registration {
    /// Counts the connection as accepted and active until dropped.
    pub fn new(session: SessionId, shared: &Arc<SessionShared>, permit: PoolPermit) -> Self {
        shared.metrics.connections_total.inc();
        shared.metrics.connections_active.inc();
        Registration {
            session,
            shared: Arc::clone(shared),
            _permit: permit,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.broker.do_send(Leave {
            session: self.session,
        });
        // Never dropped (see `presence::actor`): a lost leave would be a ghost.
        self.shared
            .presence
            .do_send(crate::presence::LeavePresence {
                session: self.session,
            });
        self.shared.metrics.connections_active.dec();
    }
}
