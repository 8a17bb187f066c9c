//! The session actor: one per WebSocket (actix-web-actors), the transport edge.
//!
//! It authenticates, keeps the heartbeat, rate-limits, validates and dispatches client
//! messages, and writes the frames the broker delivers. Those arrive through the
//! session's outbox on its thread's delivery hub (`broker::hub`), the bounded outbound
//! queue (`session.outbound_queue` frames); the broker evicts a session whose outbox is
//! full. Logic lives in plain types ([`RateLimiter`], [`TopicSet`], [`Tokens`],
//! `protocol::parse_client_message`); this file only moves messages.
//!
//! Heartbeat: every `heartbeat_interval` the server pings; a client that sends nothing
//! (pongs included) for `client_timeout` is closed here. If the client stopped reading,
//! this actor is not polled at all (actix-web#2441) and cannot close itself: the broker's
//! sweep then shuts the socket down from outside (see `crate::conn::ConnHandle`).
//!
//! RFC 6455 at this edge: fragmented client messages are joined by [`Reassembler`]
//! (capped like one frame) and then handled like one text frame; a text message that is
//! not UTF-8 closes with 1007, a frame that breaks the framing rules with 1002, a message
//! over the cap with 1009. Large outbound frames go out as a text frame plus
//! continuations, one [`PIECE_BYTES`] piece per poll ([`FeedPieces`]), so neither
//! actix-web-actors' encode buffer nor the HTTP/1 dispatcher's write buffer ever holds
//! (or keeps the capacity of) a whole join snapshot. The TCP connection ends as soon as
//! the close frame is written: see `client_disconnect_timeout` in `crate::run`.

use super::commands::{self, Dispatch, Failure};
use super::fragments::{
    needs_fragments, Assembled, Fragment, Piece, Pieces, Reassembler, ReassemblyError, PIECE_BYTES,
};
use super::rate::{RateLimiter, Verdict};
use super::reject::Reject;
use super::{Registration, SessionShared};
use crate::broker::{
    CloseSession, Deliver, RequestSnapshot, ResumeFrom, SessionId, SetTopics, SnapshotRoute,
};
use crate::clock;
use crate::conn::{ConnHandle, PoolPermit};
use crate::presence::PushPresence;
use crate::protocol::{
    now_ts, parse_client_message, ClientMessage, Command, Envelope, ErrorCode, ErrorData,
    HeartbeatData, Reply, Role, TransportKind,
};
use crate::topics::TopicSet;
use actix::prelude::*;
use actix_http::ws::Item;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use serde_json::{json, Value};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// After a session ends (whoever closed), how long its last frames get to reach the
/// client before the socket is shut down regardless. Normally the dispatcher has closed
/// TCP long before (no linger, see `crate::run`); this only catches a client that stopped
/// reading, whose pending write would otherwise never finish.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub struct Session {
    id: SessionId,
    shared: Arc<SessionShared>,
    role: Option<Role>,
    /// The token's label (see `auth::Identity`), once authenticated.
    label: String,
    handshake_token: Option<String>,
    registration: Option<Registration>,
    conn: Option<ConnHandle>,
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
        handshake_token: Option<String>,
        conn: Option<ConnHandle>,
    ) -> Self {
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
            registration,
            conn,
            last_seen: Arc::new(AtomicU64::new(clock::now_ms())),
            topics: TopicSet::default_topics(),
            server_closed: false,
            since: 0.0,
            in_presence: false,
        }
    }

    fn send_text(&self, ctx: &mut ws::WebsocketContext<Self>, text: String) {
        ctx.text(text);
        self.shared.metrics.messages_sent.inc();
    }

    fn reply(&self, ctx: &mut ws::WebsocketContext<Self>, id: Option<&Value>, reply: Reply) {
        self.send_text(ctx, reply.to_json(id));
    }

    /// Sends a failure the dispatch has counted already.
    fn failure(&self, ctx: &mut ws::WebsocketContext<Self>, f: Failure, id: Option<&Value>) {
        let data = ErrorData {
            code: f.code.as_u16(),
            message: f.message,
        };
        self.send_text(ctx, Envelope::new("error", data).with_id(id).to_json());
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

    /// Counts `why` and closes with its code and reason.
    fn reject(&mut self, ctx: &mut ws::WebsocketContext<Self>, why: Reject) {
        why.count(&self.shared.metrics);
        self.close(ctx, why.code(), why.reason());
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
        let joined = self
            .shared
            .join::<Self>(self.id, ctx, conn, &self.last_seen, topics);
        self.on_snapshot_sent(joined, None, ctx);
    }

    /// Asks the simulation for a snapshot; waits for mailbox room rather than failing.
    fn request_snapshot(
        &mut self,
        route: SnapshotRoute,
        id: Option<Value>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let fut = self.shared.sim_snapshots.send(RequestSnapshot { route });
        self.on_snapshot_sent(fut, id, ctx);
    }

    /// Reports a snapshot request the simulation did not take as an error to the client.
    fn on_snapshot_sent(
        &mut self,
        fut: actix::dev::RecipientRequest<RequestSnapshot>,
        id: Option<Value>,
        ctx: &mut ws::WebsocketContext<Self>,
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

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
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
            self.shared.metrics.messages_sent.inc();
            return ctx.text("pong");
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

    fn on_text_unauthenticated(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        if text == "ping" {
            self.shared.metrics.messages_sent.inc();
            return ctx.text("pong");
        }
        match parse_client_message(text) {
            Ok(ClientMessage::Auth { token }) => self.authenticate(&token, ctx),
            _ => self.reject_unauthenticated(ctx),
        }
    }

    /// A wrong token, or anything but `auth` before authentication: counted, then
    /// closed with 1008.
    fn reject_unauthenticated(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.reject(ctx, Reject::InvalidToken);
    }

    /// The rate limit, for every message an authenticated client sends (text or
    /// binary): over budget, error 1003 (with the command's `id`, computed only then)
    /// and the message is dropped; past twice the budget, counted and closed with 1008.
    fn admit(
        &mut self,
        id: impl FnOnce() -> Option<Value>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) -> bool {
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
        self.reply(ctx, None, Reply::new(data));
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
        log::info!("session {} timed out after {silent} ms of silence", self.id);
        self.reject(ctx, Reject::ClientTimeout);
    }
}

impl Actor for Session {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
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
        self.registration.take();
        if let Some(conn) = self.conn.take() {
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

impl StreamHandler<Deliver> for Session {
    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        self.join_presence(ctx);
        if !needs_fragments(msg.frame.len()) {
            return ctx.text(msg.frame);
        }
        // Waiting (not spawning) keeps the mailbox shut while the pieces go out: no other
        // data frame can land between two fragments, and a slow client still fills the
        // bounded mailbox the broker watches.
        ctx.wait(FeedPieces {
            pieces: Pieces::new(msg.frame.into_bytes(), PIECE_BYTES),
            wrote_last_poll: false,
        });
    }
}

impl Session {
    /// Joins presence once, at the first delivered frame (the join snapshot), so that
    /// presence comes after it. Its pushes wait in the mailbox behind this frame's
    /// pieces, which keep the mailbox shut until they are out.
    fn join_presence(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
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
        ctx.text(msg.frame);
        self.shared.metrics.messages_sent.inc();
    }
}

/// Writes a large text frame as fragments, at most one piece per poll of the session.
///
/// actix-web-actors encodes everything queued on the context into one buffer per poll,
/// and the HTTP/1 dispatcher copies what it gets into its write buffer: queueing all
/// pieces at once would rebuild the whole frame in both. Every other poll this writes
/// nothing, so the body stream reports "pending" and the dispatcher flushes its write
/// buffer to the socket before it asks for the next piece.
struct FeedPieces {
    pieces: Pieces,
    wrote_last_poll: bool,
}

impl ActorFuture<Session> for FeedPieces {
    type Output = ();

    fn poll(
        mut self: Pin<&mut Self>,
        _: &mut Session,
        ctx: &mut ws::WebsocketContext<Session>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        let this = &mut *self;
        // Woken either way: the dispatcher polls the body again once it has flushed.
        task.waker().wake_by_ref();
        if std::mem::take(&mut this.wrote_last_poll) {
            return Poll::Pending;
        }
        let Some(piece) = this.pieces.next() else {
            return Poll::Ready(());
        };
        let last = matches!(piece, Piece::Last(_));
        ctx.write_raw(ws::Message::Continuation(match piece {
            Piece::First(b) => Item::FirstText(b),
            Piece::Continue(b) => Item::Continue(b),
            Piece::Last(b) => Item::Last(b),
        }));
        if last {
            return Poll::Ready(());
        }
        this.wrote_last_poll = true;
        Poll::Pending
    }
}

/// What a decoder error means for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InboundFailure {
    /// A frame over `max_message_bytes`: close 1009.
    TooBig,
    /// A text frame that is not UTF-8: close 1007.
    InvalidUtf8,
    /// The client broke the framing rules: close 1002.
    Protocol,
    /// Reading the socket failed: nobody is left to send a close frame to.
    Transport,
}

/// Sorts actix-http's decoder errors by the close code RFC 6455 asks for.
///
/// Two cases arrive as `ProtocolError::Io` rather than as a variant of their own:
/// actix-web-actors turns a text frame's `Utf8Error` into `Io(Other, "<utf8 error>")`
/// (`WsStream::poll_next`), and actix-http reports reserved bits as `Io(InvalidData)`
/// (`Parser::parse_metadata`). Any other `Io` is the request payload failing, i.e. the
/// connection itself. `tests/ws_rfc6455.rs` pins both wordings.
fn classify(e: &ws::ProtocolError) -> InboundFailure {
    match e {
        ws::ProtocolError::Overflow => InboundFailure::TooBig,
        ws::ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            InboundFailure::Protocol
        }
        ws::ProtocolError::Io(io) if io.to_string().contains("utf-8") => {
            InboundFailure::InvalidUtf8
        }
        ws::ProtocolError::Io(_) => InboundFailure::Transport,
        _ => InboundFailure::Protocol,
    }
}

impl Session {
    fn on_protocol_error(&mut self, e: ws::ProtocolError, ctx: &mut ws::WebsocketContext<Self>) {
        log::debug!("session {}: protocol error: {e}", self.id);
        match classify(&e) {
            InboundFailure::TooBig => self.close_too_big(ctx),
            InboundFailure::InvalidUtf8 => self.reject(ctx, Reject::InvalidUtf8),
            InboundFailure::Protocol => self.reject(ctx, Reject::Protocol),
            InboundFailure::Transport => {
                self.server_closed = true;
                ctx.stop();
            }
        }
    }

    fn close_too_big(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.shared.metrics.messages_received.inc();
        self.reject(ctx, Reject::TooBig);
    }

    /// A binary message (one frame or reassembled): refused, the connection stays.
    fn on_binary(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
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

    fn on_fragment(&mut self, item: Item, ctx: &mut ws::WebsocketContext<Self>) {
        let fragment = match &item {
            Item::FirstText(b) => Fragment::FirstText(b),
            Item::FirstBinary(b) => Fragment::FirstBinary(b),
            Item::Continue(b) => Fragment::Continue(b),
            Item::Last(b) => Fragment::Last(b),
        };
        match self.reassembler.push(fragment) {
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

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen.store(clock::now_ms(), Ordering::Release);
        if self.server_closed {
            // Closing already: a decoder that failed keeps reporting the same error.
            return;
        }
        let msg = match msg {
            Ok(msg) => msg,
            Err(e) => return self.on_protocol_error(e, ctx),
        };
        match msg {
            ws::Message::Text(text) => {
                self.shared.metrics.messages_received.inc();
                self.on_text(&text, ctx);
            }
            ws::Message::Binary(_) => self.on_binary(ctx),
            ws::Message::Continuation(item) => self.on_fragment(item, ctx),
            ws::Message::Ping(payload) => ctx.pong(&payload),
            ws::Message::Pong(_) => {}
            ws::Message::Close(reason) => {
                // Echo the code (RFC 6455 §5.5.1); the dispatcher then ends TCP at once.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind, msg: String) -> ws::ProtocolError {
        ws::ProtocolError::Io(std::io::Error::new(kind, msg))
    }

    #[test]
    fn decoder_errors_map_to_rfc6455_close_codes() {
        // Built at run time: the error text is what `ByteString::try_from` reports.
        let bad: Vec<u8> = vec![0xC3, 0x28];
        let utf8 = std::str::from_utf8(&bad).expect_err("invalid");
        let cut = std::str::from_utf8(&bad[..1]).expect_err("incomplete");
        let other = std::io::ErrorKind::Other;
        assert_eq!(
            classify(&io(other, utf8.to_string())),
            InboundFailure::InvalidUtf8
        );
        assert_eq!(
            classify(&io(other, cut.to_string())),
            InboundFailure::InvalidUtf8
        );
        let rsv = io(std::io::ErrorKind::InvalidData, "reserved bits".into());
        assert_eq!(classify(&rsv), InboundFailure::Protocol);
        let payload = io(other, "A payload reached EOF, but is not complete.".into());
        assert_eq!(classify(&payload), InboundFailure::Transport);
        assert_eq!(
            classify(&ws::ProtocolError::Overflow),
            InboundFailure::TooBig
        );
        for e in [
            ws::ProtocolError::UnmaskedFrame,
            ws::ProtocolError::BadOpCode,
            ws::ProtocolError::InvalidOpcode(3),
            ws::ProtocolError::InvalidLength(126),
            ws::ProtocolError::ContinuationNotStarted,
            ws::ProtocolError::ContinuationStarted,
        ] {
            assert_eq!(classify(&e), InboundFailure::Protocol, "{e}");
        }
    }
}
