//! The session actor: one per WebSocket, the transport edge.
//!
//! It authenticates, keeps the heartbeat, rate-limits, validates and dispatches client
//! messages, and writes the frames the broker delivers. Those arrive through the
//! session's outbox on its thread's delivery hub (`broker::hub`), the bounded outbound
//! queue (`session.outbound_queue` frames); the broker evicts a session whose outbox is
//! full. Logic lives in plain types ([`RateLimiter`], [`TopicSet`], [`Tokens`],
//! `protocol::parse_client_message`, and the socket's two halves in
//! [`super::transport`]); this file only moves messages.
//!
//! The session owns its connection (see `transport`): the client's frames come in as a
//! stream on the actor's context, and a task of its own on the same thread
//! ([`WriteTask`]) writes the session's own frames and the outbox's shared ones, from
//! the `Outgoing` the two share. So the actor is not polled at every delivery, is still
//! polled when the client stopped reading, and closes itself on its heartbeat deadline.
//!
//! RFC 6455 at this edge: fragmented client messages are joined by [`Reassembler`]
//! (capped like one frame) and then handled like one text frame; a text message that is
//! not UTF-8 closes with 1007, a frame that breaks the framing rules with 1002, a message
//! over the cap with 1009. A close frame (ours or the echo of the client's) is the last
//! frame; the connection is shut down as soon as it is written.

use super::commands::{self, Dispatch, Failure};
use super::fragments::{Assembled, Reassembler, ReassemblyError};
use super::rate::{RateLimiter, Verdict};
use super::reject::Reject;
use super::transport::{
    Inbound, InboundFailure, Incoming, Outgoing, WriteEvent, WriteTask, Writer,
};
use super::{Registration, SessionShared};
use crate::broker::last_seen;
use crate::broker::{
    CloseSession, RequestSnapshot, ResumeFrom, SessionId, SetTopics, SnapshotRoute,
};
use crate::clock;
use crate::conn::{ConnHandle, PoolPermit};
use crate::presence::PushPresence;
use crate::protocol::{
    now_ts, parse_client_message, ClientMessage, Command, Envelope, ErrorCode, ErrorData,
    HeartbeatData, Reply, Role, SnapshotEncoding, TransportKind,
};
use crate::topics::TopicSet;
use actix::prelude::*;
use actix_http::ws::{self, CloseCode, CloseReason, Item};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// After a close frame is queued (whoever closed), how long the frames before it and
/// the close frame itself get to reach the client. Normally they are out at once and
/// the connection shut down; this only bounds a client that stopped reading.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What the handshake request said that the session needs.
pub struct Handshake {
    /// `?token=` or `Authorization: Bearer` (else the client sends `auth`).
    pub token: Option<String>,
    pub conn: Option<ConnHandle>,
    pub snapshot_encoding: SnapshotEncoding,
}

pub struct Session {
    id: SessionId,
    shared: Arc<SessionShared>,
    role: Option<Role>,
    /// The token's label (see `auth::Identity`), once authenticated.
    label: String,
    handshake_token: Option<String>,
    /// How this connection wants snapshots (`?snapshot=` at the handshake).
    snapshot_encoding: SnapshotEncoding,
    registration: Option<Registration>,
    conn: Option<ConnHandle>,
    /// The connection's halves until `started` puts them on the context.
    transport: Option<(Inbound, Writer)>,
    /// Everything this session writes, in order; shared with its write task (same
    /// thread, never borrowed across an await).
    out: Rc<RefCell<Outgoing>>,
    /// The client's side of the connection ended (EOF or a read error).
    inbound_done: bool,
    last_seen: Arc<AtomicU64>,
    topics: TopicSet,
    rate: RateLimiter,
    /// The fragmented client message in progress, if any.
    reassembler: Reassembler,
    /// Set when the server closed the connection (not the client).
    server_closed: bool,
    /// When it authenticated (Unix seconds), for presence.
    since: f64,
    /// Whether it has joined presence (at its first delivered frame, the snapshot).
    in_presence: bool,
}

impl Session {
    /// `permit` is `None` when the pool is full: the session then only closes with 1013.
    pub fn new(
        shared: Arc<SessionShared>,
        permit: Option<PoolPermit>,
        handshake: Handshake,
        transport: (Inbound, Writer),
    ) -> Self {
        let Handshake {
            token: handshake_token,
            conn,
            snapshot_encoding,
        } = handshake;
        let id = shared.next_session_id();
        let registration = permit.map(|permit| Registration::new(id, &shared, permit));
        Session {
            id,
            rate: RateLimiter::new(shared.rate_limit_messages, shared.rate_limit_window_ms),
            reassembler: Reassembler::new(shared.max_message_bytes),
            shared,
            role: None,
            label: String::new(),
            handshake_token,
            snapshot_encoding,
            registration,
            conn,
            transport: Some(transport),
            out: Rc::default(),
            inbound_done: false,
            last_seen: Arc::new(AtomicU64::new(clock::now_ms())),
            topics: TopicSet::default_topics(),
            server_closed: false,
            since: 0.0,
            in_presence: false,
        }
    }

    /// Queues a frame of the session's own. A client that lets [`OWN_FRAMES_CAPACITY`]
    /// of them pile up is not reading: it is closed as slow, like a full outbox.
    ///
    /// [`OWN_FRAMES_CAPACITY`]: super::transport::OWN_FRAMES_CAPACITY
    fn send_text(&mut self, ctx: &mut Context<Self>, text: impl Into<bytestring::ByteString>) {
        if self.out.borrow_mut().text(text).is_err() {
            log::info!("session {}: not reading its replies; closing", self.id);
            last_seen::count_eviction(&self.last_seen, &self.shared.metrics, "slow");
            return self.close(ctx, crate::protocol::close::POLICY, "Slow consumer");
        }
        self.shared.metrics.messages_sent.inc();
    }

    fn reply(&mut self, ctx: &mut Context<Self>, id: Option<&Value>, reply: Reply) {
        self.send_text(ctx, reply.to_json(id));
    }

    /// Sends a failure the dispatch has counted already.
    fn failure(&mut self, ctx: &mut Context<Self>, f: Failure, id: Option<&Value>) {
        let data = ErrorData {
            code: f.code.as_u16(),
            message: f.message,
        };
        self.send_text(ctx, Envelope::new("error", data).with_id(id).to_json());
    }

    fn error(
        &mut self,
        ctx: &mut Context<Self>,
        code: ErrorCode,
        message: impl Into<String>,
        id: Option<&Value>,
    ) {
        let data = ErrorData {
            code: code.as_u16(),
            message: message.into(),
        };
        self.shared.metrics.error(data.code);
        self.send_text(ctx, Envelope::new("error", data).with_id(id).to_json());
    }

    /// Counts `why` and closes with its code and reason.
    fn reject(&mut self, ctx: &mut Context<Self>, why: Reject) {
        // Counted once: the broker's sweep may have ended this session first.
        if last_seen::claim_end(&self.last_seen) {
            why.count(&self.shared.metrics);
        }
        self.close(ctx, why.code(), why.reason());
    }

    fn close(&mut self, ctx: &mut Context<Self>, code: u16, reason: &str) {
        self.server_closed = true;
        self.end(
            ctx,
            Some(CloseReason {
                code: CloseCode::from(code),
                description: Some(reason.to_owned()),
            }),
        );
    }

    /// Queues the last frame, a close frame with `reason`; the write task stops the actor
    /// once it is out, or [`CLOSE_GRACE`] stops it regardless.
    fn end(&mut self, ctx: &mut Context<Self>, reason: Option<CloseReason>) {
        if self.out.borrow().is_closing() {
            return;
        }
        self.out.borrow_mut().close(reason);
        ctx.run_later(CLOSE_GRACE, |_, ctx| ctx.stop());
    }

    fn authenticate(&mut self, token: &str, ctx: &mut Context<Self>) {
        let Some(who) = self.shared.tokens.identify(token) else {
            return self.reject_unauthenticated(ctx);
        };
        let role = who.role;
        self.role = Some(role);
        self.label = who.label;
        self.since = now_ts();
        let welcome = self.shared.welcome_json(self.id, role);
        self.send_text(ctx, welcome);
        let (conn, topics) = (self.conn.clone(), self.topics.clone());
        let close = ctx.address().recipient();
        let (outbox, joined) = self.shared.join(
            self.id,
            close,
            conn,
            &self.last_seen,
            topics,
            self.snapshot_encoding,
        );
        self.out.borrow_mut().attach(outbox);
        self.on_snapshot_sent(joined, None, ctx);
    }

    /// Asks the broker for a snapshot; waits for mailbox room rather than failing.
    fn request_snapshot(
        &mut self,
        route: SnapshotRoute,
        id: Option<Value>,
        ctx: &mut Context<Self>,
    ) {
        let fut = self.shared.broker.send(RequestSnapshot { route });
        self.on_snapshot_sent(fut, id, ctx);
    }

    /// Reports a snapshot request the broker did not take as an error to the client.
    fn on_snapshot_sent(
        &mut self,
        fut: Request<crate::broker::Broker, RequestSnapshot>,
        id: Option<Value>,
        ctx: &mut Context<Self>,
    ) {
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            if let Err(e) = res {
                act.error(
                    ctx,
                    ErrorCode::ServerError,
                    format!("snapshot unavailable: {e}"),
                    id.as_ref(),
                );
            }
        }));
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        if self.role.is_none() {
            return self.on_text_unauthenticated(text, ctx);
        }
        let id = || {
            parse_client_message(text).ok().and_then(|m| match m {
                ClientMessage::Command { id, .. } => id,
                _ => None,
            })
        };
        if !self.admit(id, ctx) {
            return;
        }
        if text == "ping" {
            return self.send_text(ctx, "pong");
        }
        match parse_client_message(text) {
            Ok(msg) => self.on_message(msg, ctx),
            Err(e) => {
                let role = self.role.unwrap_or(Role::Viewer);
                let failure = commands::refuse(&self.shared, role, &e);
                self.failure(ctx, failure, e.id.as_ref());
            }
        }
    }

    fn on_text_unauthenticated(&mut self, text: &str, ctx: &mut Context<Self>) {
        if text == "ping" {
            return self.send_text(ctx, "pong");
        }
        match parse_client_message(text) {
            Ok(ClientMessage::Auth { token }) => self.authenticate(&token, ctx),
            _ => self.reject_unauthenticated(ctx),
        }
    }

    /// A wrong token, or anything but `auth` before authentication: counted, then
    /// closed with 1008.
    fn reject_unauthenticated(&mut self, ctx: &mut Context<Self>) {
        self.reject(ctx, Reject::InvalidToken);
    }

    /// The rate limit, for every message an authenticated client sends (text or
    /// binary): over budget, error 1003 (with the command's `id`, computed only then)
    /// and the message is dropped; past twice the budget, counted and closed with 1008.
    fn admit(&mut self, id: impl FnOnce() -> Option<Value>, ctx: &mut Context<Self>) -> bool {
        match self.rate.check(clock::now_ms()) {
            Verdict::Allow => true,
            Verdict::Refuse => {
                let message = format!(
                    "rate limit: at most {} messages per {} ms; message dropped",
                    self.shared.rate_limit_messages, self.shared.rate_limit_window_ms
                );
                self.error(ctx, ErrorCode::RateLimit, message, id().as_ref());
                false
            }
            Verdict::Disconnect => {
                self.reject(ctx, Reject::RateLimited);
                false
            }
        }
    }

    fn on_message(&mut self, msg: ClientMessage, ctx: &mut Context<Self>) {
        match msg {
            ClientMessage::Auth { .. } => {
                self.error(ctx, ErrorCode::AuthFailed, "already authenticated", None)
            }
            ClientMessage::Heartbeat => {
                let data = HeartbeatData {
                    server_time: now_ts(),
                };
                self.send_text(ctx, Envelope::new("heartbeat", data).to_json());
            }
            ClientMessage::Subscribe { topics } => {
                let mut next = self.topics.clone();
                if let Err(e) = next.add(&topics) {
                    return self.error(ctx, ErrorCode::InvalidMessage, e, None);
                }
                self.set_topics(next, ctx);
            }
            ClientMessage::Unsubscribe { topics } => {
                let mut next = self.topics.clone();
                next.remove(&topics);
                self.set_topics(next, ctx);
            }
            ClientMessage::Resume { last_seq } => {
                let msg = ResumeFrom {
                    session: self.id,
                    last_seq,
                };
                self.tell_broker(msg, ctx);
            }
            ClientMessage::Command { id, command } => self.on_command(id, command, ctx),
        }
    }

    fn set_topics(&mut self, topics: TopicSet, ctx: &mut Context<Self>) {
        self.topics = topics.clone();
        self.tell_broker(
            SetTopics {
                session: self.id,
                topics,
            },
            ctx,
        );
        let data = json!({ "topics": self.topics.to_strings() });
        self.reply(ctx, None, Reply::new(data));
    }

    /// Sends a control message to the broker, waiting for mailbox room if need be.
    fn tell_broker<M>(&mut self, msg: M, ctx: &mut Context<Self>)
    where
        M: Message<Result = ()> + Send + 'static,
        crate::broker::Broker: Handler<M>,
    {
        let fut = self.shared.broker.send(msg);
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            if let Err(e) = res {
                act.error(
                    ctx,
                    ErrorCode::ServerError,
                    format!("broker unavailable: {e}"),
                    None,
                );
            }
        }));
    }

    fn on_command(&mut self, id: Option<Value>, command: Command, ctx: &mut Context<Self>) {
        let role = self.role.unwrap_or(Role::Viewer);
        match commands::dispatch(&self.shared, role, self.label.clone(), command) {
            Err(failure) => self.failure(ctx, failure, id.as_ref()),
            Ok(Dispatch::Reply(reply)) => self.reply(ctx, id.as_ref(), reply),
            Ok(Dispatch::Snapshot) => {
                let route = SnapshotRoute::Reply {
                    session: self.id,
                    id: id.clone(),
                };
                self.request_snapshot(route, id, ctx);
            }
            Ok(Dispatch::Pending(answer)) => {
                ctx.spawn(answer.into_actor(self).map(move |res, act, ctx| match res {
                    Ok(reply) => act.reply(ctx, id.as_ref(), reply),
                    Err(failure) => act.failure(ctx, failure, id.as_ref()),
                }));
            }
        }
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        self.check_silence(ctx);
        if !self.server_closed && self.out.borrow_mut().ping().is_err() {
            self.close(ctx, crate::protocol::close::POLICY, "Slow consumer");
        }
    }

    /// Closes the connection (1000, `Client timeout`) once the client has been silent
    /// for `client_timeout`. Checked on every heartbeat and, when the deadline falls
    /// before the next one, exactly at the deadline: a live session closes itself, with
    /// a close frame, before the broker's sweep (which waits a grace period longer)
    /// would shut a frozen one down from outside.
    fn check_silence(&mut self, ctx: &mut Context<Self>) {
        if self.server_closed {
            return;
        }
        let silent = last_seen::silent_for(&self.last_seen, clock::now_ms());
        let timeout = self.shared.client_timeout.as_millis() as u64;
        if silent < timeout {
            let left = timeout - silent;
            if left < self.shared.heartbeat_interval.as_millis() as u64 {
                ctx.run_later(Duration::from_millis(left + 1), |act, ctx| {
                    act.check_silence(ctx)
                });
            }
            return;
        }
        log::info!("session {} timed out after {silent} ms of silence", self.id);
        self.reject(ctx, Reject::ClientTimeout);
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some((inbound, writer)) = self.transport.take() {
            ctx.add_stream(inbound);
            self.spawn_writer(writer, ctx);
        }
        if self.registration.is_none() {
            return self.reject(ctx, Reject::PoolFull);
        }
        ctx.run_interval(self.shared.heartbeat_interval, |act, ctx| {
            act.heartbeat(ctx)
        });
        match self.handshake_token.take() {
            Some(token) => self.authenticate(&token, ctx),
            None => {
                ctx.run_later(self.shared.auth_timeout, |act, ctx| {
                    if act.role.is_none() {
                        act.reject(ctx, Reject::AuthTimeout);
                    }
                });
            }
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Dropping the actor drops the reading half and the write task ends, dropping
        // the writing half: that closes the socket.
        self.out.borrow_mut().abort();
        self.registration.take();
    }
}

impl Handler<CloseSession> for Session {
    type Result = ();

    fn handle(&mut self, msg: CloseSession, ctx: &mut Self::Context) {
        self.close(ctx, msg.code, msg.reason);
    }
}

/// The write task's report, back on the session.
#[derive(Message)]
#[rtype(result = "()")]
struct WriteReported {
    event: WriteEvent,
}

impl Session {
    /// Starts the task that writes what the session queues (see [`WriteTask`]); it
    /// reports through a weak address, so it never keeps the session alive.
    fn spawn_writer(&mut self, writer: Writer, ctx: &mut Context<Self>) {
        let session = ctx.address().downgrade();
        let report = move |event| {
            if let Some(addr) = session.upgrade() {
                addr.do_send(WriteReported { event });
            }
        };
        actix::spawn(WriteTask::new(writer, Rc::clone(&self.out), report));
    }
}

impl Handler<WriteReported> for Session {
    type Result = ();

    fn handle(&mut self, msg: WriteReported, ctx: &mut Self::Context) {
        match msg.event {
            WriteEvent::FirstDelivered => self.join_presence(ctx),
            // Our FIN is out; the socket is dropped once the client's EOF arrives too
            // (`finished`), or at CLOSE_GRACE.
            WriteEvent::Closed if self.inbound_done => ctx.stop(),
            WriteEvent::Closed => {}
            WriteEvent::Failed(e) => {
                log::debug!("session {}: write failed: {e}", self.id);
                self.server_closed = true;
                ctx.stop();
            }
        }
    }
}

impl Session {
    /// Joins presence once, at the first delivered frame (the join snapshot), so that
    /// presence comes after it.
    fn join_presence(&mut self, ctx: &mut Context<Self>) {
        let Some(role) = self.role.filter(|_| !self.in_presence) else {
            return;
        };
        self.in_presence = true;
        let push = ctx.address().recipient();
        let (id, since) = (self.id, self.since);
        self.shared
            .join_presence(TransportKind::Ws, id, role, &self.label, since, push);
    }
}

impl Handler<PushPresence> for Session {
    type Result = ();

    fn handle(&mut self, msg: PushPresence, ctx: &mut Self::Context) {
        self.send_text(ctx, msg.frame);
    }
}

impl Session {
    fn on_inbound_failure(&mut self, failure: InboundFailure, ctx: &mut Context<Self>) {
        log::debug!("session {}: inbound failure: {failure:?}", self.id);
        match failure {
            InboundFailure::TooBig => self.close_too_big(ctx),
            InboundFailure::InvalidUtf8 => self.reject(ctx, Reject::InvalidUtf8),
            InboundFailure::Protocol => self.reject(ctx, Reject::Protocol),
            InboundFailure::Transport => {
                self.server_closed = true;
                ctx.stop();
            }
        }
    }

    fn close_too_big(&mut self, ctx: &mut Context<Self>) {
        self.shared.metrics.messages_received.inc();
        self.reject(ctx, Reject::TooBig);
    }

    /// A binary message (one frame or reassembled): refused, the connection stays.
    fn on_binary(&mut self, ctx: &mut Context<Self>) {
        self.shared.metrics.messages_received.inc();
        if self.role.is_none() {
            return self.reject_unauthenticated(ctx);
        }
        if !self.admit(|| None, ctx) {
            return;
        }
        self.error(
            ctx,
            ErrorCode::InvalidMessage,
            "binary frames are not accepted; send one JSON object per text message",
            None,
        );
    }

    fn on_fragment(&mut self, item: Item, ctx: &mut Context<Self>) {
        match self.reassembler.push(Incoming::fragment(&item)) {
            Ok(Assembled::Pending) => {}
            Ok(Assembled::Text(text)) => {
                self.shared.metrics.messages_received.inc();
                self.on_text(&text, ctx);
            }
            Ok(Assembled::Binary) => self.on_binary(ctx),
            Err(ReassemblyError::TooBig { .. }) => self.close_too_big(ctx),
            Err(ReassemblyError::InvalidUtf8) => self.reject(ctx, Reject::InvalidUtf8),
            Err(ReassemblyError::NotStarted | ReassemblyError::AlreadyStarted) => {
                self.reject(ctx, Reject::Protocol)
            }
        }
    }
}

impl StreamHandler<Result<Incoming, InboundFailure>> for Session {
    fn handle(&mut self, msg: Result<Incoming, InboundFailure>, ctx: &mut Self::Context) {
        last_seen::touch(&self.last_seen, clock::now_ms());
        if self.out.borrow().is_closing() {
            // Closing already: only the close frame and the shutdown are left.
            return;
        }
        let msg = match msg {
            Ok(msg) => msg,
            Err(failure) => return self.on_inbound_failure(failure, ctx),
        };
        match msg {
            Incoming::Text(text) => {
                self.shared.metrics.messages_received.inc();
                self.on_text(&text, ctx);
            }
            Incoming::Binary => self.on_binary(ctx),
            Incoming::Fragment(item) => self.on_fragment(item, ctx),
            Incoming::Ping(payload) => {
                let pong = self.out.borrow_mut().control(ws::Message::Pong(payload));
                if pong.is_err() {
                    self.close(ctx, crate::protocol::close::POLICY, "Slow consumer");
                }
            }
            Incoming::Pong => {}
            // Echo the code (RFC 6455 §5.5.1); the connection ends once the echo is out.
            Incoming::Close(reason) => self.end(ctx, reason),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // The client's side ended (EOF). While closing, the write task still gets our
        // close frame out (a half-closed client can read it) and then stops the actor.
        self.inbound_done = true;
        let writing_close = {
            let out = self.out.borrow();
            out.is_closing() && !out.is_closed()
        };
        if !writing_close {
            ctx.stop();
        }
    }
}
