//! The SSE session: the same stream as a WebSocket session, one way, for clients
//! behind proxies that block WebSocket.
//!
//! One actor per `GET /events`. It joins the broker like a WebSocket session (welcome,
//! snapshot, then every batch), writes each object as one `data:` line (with `id:` =
//! `seq` where the object has one), and sends a `: keep-alive` comment every heartbeat
//! interval so proxies keep the connection open. Commands go through
//! `POST /api/command`. `Last-Event-ID` (sent by `EventSource` on reconnect) or the
//! `last_event_id` query parameter resumes like `resume`.
//!
//! Outbound queue: a bounded channel of `session.outbound_queue` events between this
//! actor and the response body. When it is full the client is not keeping up: the
//! session ends (the client reconnects with `Last-Event-ID` and resumes from history).
//! Every successful push refreshes `last_seen`, so the broker's sweep evicts an SSE
//! client whose channel stays full (a client that stopped reading) like a jammed
//! WebSocket.
//!
//! Presence: the session joins `crate::presence` with its first delivered frame (the
//! snapshot) and gets `presence` events like a WebSocket session.

use super::auth::Identity;
use super::{Registration, SessionShared};
use crate::broker::{last_seen, CloseSession, Deliver, ResumeFrom, SessionId};
use crate::clock;
use crate::conn::{ConnHandle, PoolPermit};
use crate::presence::PushPresence;
use crate::protocol::{Role, TransportKind};
use crate::topics::TopicSet;
use actix::prelude::*;
use actix_web::web::Bytes;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::sync::mpsc;

/// How long the browser waits before reconnecting (the SSE `retry:` field), in ms.
const RETRY_MS: u64 = 2000;

pub(crate) struct SseSession {
    id: SessionId,
    shared: Arc<SessionShared>,
    role: Role,
    tx: mpsc::Sender<Bytes>,
    _registration: Registration,
    conn: Option<ConnHandle>,
    last_seen: Arc<AtomicU64>,
    topics: TopicSet,
    resume_from: Option<u64>,
    /// How this connection wants snapshots (`?snapshot=`).
    encoding: crate::protocol::SnapshotEncoding,
    /// The token's label and when the stream started, for presence.
    label: String,
    since: f64,
    in_presence: bool,
}

impl SseSession {
    /// Returns the actor and the receiving end to stream as the response body.
    pub(crate) fn new(
        shared: Arc<SessionShared>,
        permit: PoolPermit,
        who: Identity,
        topics: TopicSet,
        resume_from: Option<u64>,
        conn: Option<ConnHandle>,
        encoding: crate::protocol::SnapshotEncoding,
    ) -> (Self, mpsc::Receiver<Bytes>) {
        let id = shared.next_session_id();
        let (tx, rx) = mpsc::channel(shared.outbound_queue);
        let registration = Registration::new(id, &shared, permit);
        let session = SseSession {
            id,
            shared,
            role: who.role,
            label: who.label,
            since: crate::protocol::now_ts(),
            in_presence: false,
            tx,
            _registration: registration,
            conn,
            last_seen: Arc::new(AtomicU64::new(clock::now_ms())),
            topics,
            resume_from,
            encoding,
        };
        (session, rx)
    }

    /// Queues one chunk for the client; ends the session when the client is gone or
    /// not keeping up.
    fn push(&mut self, chunk: Bytes, ctx: &mut Context<Self>) {
        match self.tx.try_send(chunk) {
            Ok(()) => {
                last_seen::touch(&self.last_seen, clock::now_ms());
                self.shared.metrics.messages_sent.inc();
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Counted once: the broker's sweep may have ended this session first.
                last_seen::count_eviction(&self.last_seen, &self.shared.metrics, "slow");
                log::info!("sse session {} is not keeping up; closing", self.id);
                ctx.stop();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => ctx.stop(),
        }
    }

    /// One SSE event: `id:` when the object has a seq, then the JSON on one `data:` line
    /// (our JSON never contains raw newlines: serde_json escapes them).
    fn event(json: &str, seq: Option<u64>) -> Bytes {
        let mut out = String::with_capacity(json.len() + 32);
        if let Some(seq) = seq {
            out.push_str("id: ");
            out.push_str(&seq.to_string());
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(json);
        out.push_str("\n\n");
        Bytes::from(out)
    }
}

impl Actor for SseSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.push(Bytes::from(format!("retry: {RETRY_MS}\n\n")), ctx);
        let json = self.shared.welcome_json(self.id, self.role);
        self.push(Self::event(&json, None), ctx);
        let (conn, topics) = (self.conn.clone(), self.topics.clone());
        let close = ctx.address().recipient();
        let (outbox, snapshot) =
            self.shared
                .join(self.id, close, conn, &self.last_seen, topics, self.encoding);
        ctx.add_stream(outbox);
        ctx.spawn(snapshot.into_actor(self).map(|res, act, ctx| {
            if let Err(e) = res {
                log::warn!("sse session {}: no snapshot: {e}", act.id);
                ctx.stop();
            }
        }));
        if let Some(last_seq) = self.resume_from {
            // The broker holds this until the join is processed, then sends what was
            // missed right after the snapshot.
            let resume = self.shared.broker.send(ResumeFrom {
                session: self.id,
                last_seq,
            });
            ctx.spawn(resume.into_actor(self).map(|_, _, _| ()));
        }
        ctx.run_interval(self.shared.heartbeat_interval, |act, ctx| {
            act.push(Bytes::from_static(b": keep-alive\n\n"), ctx);
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        log::debug!("sse session {} ended", self.id);
    }
}

impl Handler<CloseSession> for SseSession {
    type Result = ();

    /// SSE has no close codes: ending the stream is the signal (EventSource reconnects).
    fn handle(&mut self, _: CloseSession, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl StreamHandler<Deliver> for SseSession {
    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        self.join_presence(ctx);
        let event = Self::event(&msg.frame, msg.seq);
        self.push(event, ctx);
    }
}

impl SseSession {
    /// Joins presence once, at the first delivered frame (the join snapshot).
    fn join_presence(&mut self, ctx: &mut Context<Self>) {
        if std::mem::replace(&mut self.in_presence, true) {
            return;
        }
        let push = ctx.address().recipient();
        let (id, role, since) = (self.id, self.role, self.since);
        self.shared
            .join_presence(TransportKind::Sse, id, role, &self.label, since, push);
    }
}

impl Handler<PushPresence> for SseSession {
    type Result = ();

    fn handle(&mut self, msg: PushPresence, ctx: &mut Self::Context) {
        let event = Self::event(&msg.frame, None);
        self.push(event, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_id_only_with_seq() {
        assert_eq!(
            &SseSession::event(r#"{"a":1}"#, Some(7))[..],
            b"id: 7\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            &SseSession::event(r#"{"a":1}"#, None)[..],
            b"data: {\"a\":1}\n\n"
        );
    }
}
