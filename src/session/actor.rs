//! The session actor: one per WebSocket (actix-web-actors), the transport edge.
//!
//! It authenticates, keeps the heartbeat, rate-limits, validates and dispatches client
//! messages, and writes the frames the broker delivers. Its mailbox is the bounded
//! outbound queue (`session.outbound_queue` frames); the broker evicts a session whose
//! queue is full. Logic lives in plain types ([`RateLimiter`], [`TopicSet`], [`Tokens`],
//! `protocol::parse_client_message`); this file only moves messages.
//!
//! Heartbeat: every `heartbeat_interval` the server pings; a client that sends nothing
//! (pongs included) for `client_timeout` is closed here. If the client stopped reading,
//! this actor is not polled at all (actix-web#2441) and cannot close itself: the broker's
//! sweep then shuts the socket down from outside (see `broker::pool::ConnHandle`).

use super::rate::{RateLimiter, Verdict};
use super::subscriptions::TopicSet;
use super::{Registration, SessionShared};
use crate::broker::pool::{ConnHandle, PoolPermit};
use crate::broker::{
    CloseSession, Deliver, JoinSession, RequestSnapshot, ResumeFrom, SessionId, SetTopics,
    SnapshotRoute,
};
use crate::clock;
use crate::protocol::{
    close, now_ts, parse_client_message, ClientMessage, Command, Envelope, ErrorCode, ErrorData,
    HeartbeatData, Role, OPERATOR_COMMANDS,
};
use crate::sim::actor::RunCommand;
use actix::prelude::*;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// After the server closes a connection, how long the client gets to finish the close
/// handshake before the socket is shut down regardless.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub struct Session {
    id: SessionId,
    shared: Arc<SessionShared>,
    role: Option<Role>,
    handshake_token: Option<String>,
    registration: Option<Registration>,
    conn: Option<ConnHandle>,
    last_seen: Arc<AtomicU64>,
    topics: TopicSet,
    rate: RateLimiter,
    /// Set when the server closed the connection (not the client).
    server_closed: bool,
}

impl Session {
    /// `permit` is `None` when the pool is full: the session then only closes with 1013.
    pub fn new(
        shared: Arc<SessionShared>,
        permit: Option<PoolPermit>,
        handshake_token: Option<String>,
        conn: Option<ConnHandle>,
    ) -> Self {
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let registration = permit.map(|permit| Registration::new(id, &shared, permit));
        Session {
            id,
            rate: RateLimiter::new(shared.rate_limit_messages, shared.rate_limit_window_ms),
            shared,
            role: None,
            handshake_token,
            registration,
            conn,
            last_seen: Arc::new(AtomicU64::new(clock::now_ms())),
            topics: TopicSet::default_topics(),
            server_closed: false,
        }
    }

    fn send_text(&self, ctx: &mut ws::WebsocketContext<Self>, text: String) {
        ctx.text(text);
        self.shared.metrics.messages_sent.inc();
    }

    fn reply(&self, ctx: &mut ws::WebsocketContext<Self>, id: Option<&Value>, mut data: Value) {
        if let Value::Object(map) = &mut data {
            map.insert("ok".into(), Value::Bool(true));
        }
        self.send_text(ctx, Envelope::new("reply", data).with_id(id).to_json());
    }

    fn error(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
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

    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: u16, reason: &str) {
        ctx.close(Some(CloseReason {
            code: CloseCode::from(code),
            description: Some(reason.to_owned()),
        }));
        self.server_closed = true;
        ctx.stop();
    }

    fn authenticate(&mut self, token: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(role) = self.shared.tokens.role_of(token) else {
            self.shared
                .metrics
                .connections_rejected
                .with_label_values(&["auth"])
                .inc();
            self.close(ctx, close::POLICY, close::REASON_INVALID_TOKEN);
            return;
        };
        self.role = Some(role);
        let welcome = self.shared.welcome_json(self.id, role);
        self.send_text(ctx, welcome);
        // The snapshot travels simulation → broker, which stamps its seq and from then
        // on delivers every batch to this session: nothing falls between the two.
        let join = JoinSession {
            session: self.id,
            deliver: ctx.address().recipient(),
            close: ctx.address().recipient(),
            conn: self.conn,
            last_seen: Arc::clone(&self.last_seen),
            topics: self.topics.clone(),
        };
        self.request_snapshot(SnapshotRoute::Join(join), None, ctx);
    }

    /// Asks the simulation for a snapshot; waits for mailbox room rather than failing.
    fn request_snapshot(
        &mut self,
        route: SnapshotRoute,
        id: Option<Value>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let fut = self.shared.sim_snapshots.send(RequestSnapshot { route });
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

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        if self.role.is_none() {
            return self.on_text_unauthenticated(text, ctx);
        }
        match self.rate.check(clock::now_ms()) {
            Verdict::Allow => {}
            Verdict::Refuse => {
                let id = parse_client_message(text).ok().and_then(|m| match m {
                    ClientMessage::Command { id, .. } => id,
                    _ => None,
                });
                return self.error(
                    ctx,
                    ErrorCode::RateLimit,
                    format!(
                        "rate limit: at most {} messages per {} ms; message dropped",
                        self.shared.rate_limit_messages, self.shared.rate_limit_window_ms
                    ),
                    id.as_ref(),
                );
            }
            Verdict::Disconnect => {
                self.shared
                    .metrics
                    .evictions
                    .with_label_values(&["rate"])
                    .inc();
                return self.close(ctx, close::POLICY, close::REASON_RATE);
            }
        }
        if text == "ping" {
            self.shared.metrics.messages_sent.inc();
            return ctx.text("pong");
        }
        match parse_client_message(text) {
            Ok(msg) => self.on_message(msg, ctx),
            Err(e) => match e.cmd.as_deref() {
                Some(cmd)
                    if self.role != Some(Role::Operator) && OPERATOR_COMMANDS.contains(&cmd) =>
                {
                    self.error(
                        ctx,
                        ErrorCode::AuthFailed,
                        format!("command `{cmd}` requires the operator role"),
                        e.id.as_ref(),
                    )
                }
                _ => self.error(ctx, e.code, e.message, e.id.as_ref()),
            },
        }
    }

    fn on_text_unauthenticated(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        if text == "ping" {
            self.shared.metrics.messages_sent.inc();
            return ctx.text("pong");
        }
        match parse_client_message(text) {
            Ok(ClientMessage::Auth { token }) => self.authenticate(&token, ctx),
            _ => {
                self.shared
                    .metrics
                    .connections_rejected
                    .with_label_values(&["auth"])
                    .inc();
                self.close(ctx, close::POLICY, close::REASON_INVALID_TOKEN);
            }
        }
    }

    fn on_message(&mut self, msg: ClientMessage, ctx: &mut ws::WebsocketContext<Self>) {
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

    fn set_topics(&mut self, topics: TopicSet, ctx: &mut ws::WebsocketContext<Self>) {
        self.topics = topics.clone();
        self.tell_broker(
            SetTopics {
                session: self.id,
                topics,
            },
            ctx,
        );
        let data = json!({ "topics": self.topics.to_strings() });
        self.reply(ctx, None, data);
    }

    /// Sends a control message to the broker, waiting for mailbox room if need be.
    fn tell_broker<M>(&mut self, msg: M, ctx: &mut ws::WebsocketContext<Self>)
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

    fn on_command(
        &mut self,
        id: Option<Value>,
        command: Command,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        if command.requires_operator() && self.role != Some(Role::Operator) {
            return self.error(
                ctx,
                ErrorCode::AuthFailed,
                format!("command `{}` requires the operator role", command.name()),
                id.as_ref(),
            );
        }
        match command {
            Command::Snapshot {} => {
                let route = SnapshotRoute::Reply {
                    session: self.id,
                    deliver: ctx.address().recipient(),
                    id: id.clone(),
                };
                self.request_snapshot(route, id, ctx);
            }
            Command::Metrics {} => {
                let data = metrics_reply(&self.shared);
                self.reply(ctx, id.as_ref(), data);
            }
            command => {
                let fut = self.shared.sim_commands.send(RunCommand { command });
                ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
                    Ok(Ok(data)) => act.reply(ctx, id.as_ref(), data),
                    Ok(Err(e)) => act.error(ctx, e.code, e.message, id.as_ref()),
                    Err(e) => act.error(
                        ctx,
                        ErrorCode::ServerError,
                        format!("simulation unavailable: {e}"),
                        id.as_ref(),
                    ),
                }));
            }
        }
    }

    fn heartbeat(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.check_silence(ctx);
        if !self.server_closed {
            ctx.ping(b"");
        }
    }

    /// Closes the connection (1000, `Client timeout`) once the client has been silent
    /// for `client_timeout`. Checked on every heartbeat and, when the deadline falls
    /// before the next one, exactly at the deadline: a live session closes itself, with
    /// a close frame, before the broker's sweep (which waits a grace period longer)
    /// would shut a frozen one down from outside.
    fn check_silence(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.server_closed {
            return;
        }
        let silent = clock::now_ms().saturating_sub(self.last_seen.load(Ordering::Acquire));
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
        {
            self.shared
                .metrics
                .evictions
                .with_label_values(&["timeout"])
                .inc();
            log::info!("session {} timed out after {silent} ms of silence", self.id);
            self.close(ctx, 1000, close::REASON_TIMEOUT);
        }
    }
}

/// The `metrics` command's result: the counters plus the pool.
pub fn metrics_reply(shared: &SessionShared) -> Value {
    let mut data = serde_json::to_value(shared.metrics.summary()).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut data {
        map.insert(
            "pool".into(),
            json!({ "active": shared.pool.active(), "max": shared.pool.max() }),
        );
    }
    data
}

impl Actor for Session {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.shared.outbound_queue);
        if self.registration.is_none() {
            self.shared
                .metrics
                .connections_rejected
                .with_label_values(&["pool_full"])
                .inc();
            return self.close(ctx, close::TRY_AGAIN, close::REASON_POOL_FULL);
        }
        ctx.run_interval(self.shared.heartbeat_interval, |act, ctx| {
            act.heartbeat(ctx)
        });
        match self.handshake_token.take() {
            Some(token) => self.authenticate(&token, ctx),
            None => {
                ctx.run_later(self.shared.auth_timeout, |act, ctx| {
                    if act.role.is_none() {
                        act.shared
                            .metrics
                            .connections_rejected
                            .with_label_values(&["auth"])
                            .inc();
                        act.close(ctx, close::POLICY, close::REASON_AUTH_TIMEOUT);
                    }
                });
            }
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.registration.take();
        if let (true, Some(conn)) = (self.server_closed, self.conn) {
            // A client that never reads would never see our close frame; end the socket
            // after a grace period. ConnHandle checks it is still the same socket.
            actix::spawn(async move {
                actix::clock::sleep(CLOSE_GRACE).await;
                conn.shutdown();
            });
        }
    }
}

impl Handler<CloseSession> for Session {
    type Result = ();

    fn handle(&mut self, msg: CloseSession, ctx: &mut Self::Context) {
        self.close(ctx, msg.code, msg.reason);
    }
}

impl Handler<Deliver> for Session {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        ctx.text(msg.frame);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen.store(clock::now_ms(), Ordering::Release);
        let msg = match msg {
            Ok(msg) => msg,
            Err(ws::ProtocolError::Overflow) => {
                self.shared.metrics.messages_received.inc();
                self.shared
                    .metrics
                    .evictions
                    .with_label_values(&["too_big"])
                    .inc();
                return self.close(ctx, close::TOO_BIG, close::REASON_TOO_BIG);
            }
            Err(e) => {
                log::debug!("session {}: protocol error: {e}", self.id);
                self.server_closed = true;
                return ctx.stop();
            }
        };
        match msg {
            ws::Message::Text(text) => {
                self.shared.metrics.messages_received.inc();
                self.on_text(&text, ctx);
            }
            ws::Message::Binary(_) | ws::Message::Continuation(_) => {
                self.shared.metrics.messages_received.inc();
                if self.role.is_none() {
                    return self.close(ctx, close::POLICY, close::REASON_INVALID_TOKEN);
                }
                if self.rate.check(clock::now_ms()) == Verdict::Disconnect {
                    return self.close(ctx, close::POLICY, close::REASON_RATE);
                }
                self.error(
                    ctx,
                    ErrorCode::InvalidMessage,
                    "binary and fragmented frames are not accepted; send one JSON object per text frame",
                    None,
                );
            }
            ws::Message::Ping(payload) => ctx.pong(&payload),
            ws::Message::Pong(_) => {}
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
            ws::Message::Nop => {}
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
