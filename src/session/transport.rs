//! The WebSocket transport a session owns: the raw connection after the handshake,
//! read through actix-http's `ws::Codec` and written by the session itself.
//!
//! Why its own and not actix-web-actors' (docs/architecture.md, "The delivery path"):
//! there, every frame was encoded into a fresh buffer and copied again into the HTTP/1
//! dispatcher's write buffer, and each connection kept two 8 KiB buffers for life. Here:
//!
//! * **Writing** ([`Outgoing`]): a broker frame is the shared `ByteString` every
//!   recipient holds. Server frames are not masked, so the only per-connection bytes are
//!   a header of at most 10 bytes on the stack; header and payload go out in one
//!   vectored write. What the socket does not take stays in the shared frame, so a slow
//!   connection costs its place in the frame, not a copy.
//! * **Reading** ([`Inbound`]): bytes are read through a stack buffer, and a frame is
//!   only buffered while it is incomplete; an idle connection holds no read buffer.
//!   [`crate::frame_guard`] still caps what one announced frame can make us keep.
//!
//! Plain futures and streams, no actix: the session actor adds [`Inbound`] as a stream
//! and queues what it writes in an [`Outgoing`] it shares with its [`WriteTask`].

use super::fragments::Fragment;
use crate::broker::hub::Outbox;
use crate::frame_guard::FrameGuard;
use actix_codec::{Decoder, Encoder};
use actix_http::ws::{self, CloseReason, Frame, Item, ProtocolError};
use actix_web::error::PayloadError;
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::Stream;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};

/// A connection's byte stream, plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// The connection, type-erased so the session is the same for TCP and TLS.
pub(crate) type BoxIo = Box<dyn Io>;

/// Bytes read from the socket per `read` call, into a stack buffer.
const READ_CHUNK: usize = 4096;

/// Frames written per poll before yielding, so every session on a worker thread gets
/// its turn while one of them drains a backlog.
const FRAMES_PER_POLL: usize = 16;

/// Queued frames gathered into one vectored write. A session that fell behind (its
/// worker was busy past a tick, or the client read slowly) then catches up with one
/// system call and one TCP segment for its backlog instead of one per frame, which is
/// when the machine can least afford the per-frame cost. In step with a live world a
/// session has one frame per tick and writes it alone.
const FRAMES_PER_WRITE: usize = 8;

/// The session's own frames (replies, errors, pongs, presence) waiting to be written.
/// Bounded: the client's rate budget already bounds how many it can cause, so reaching
/// this means the client stopped reading; [`Outgoing::text`] then reports it and the
/// session closes (the broker's frames have their own bound, the outbox).
pub(crate) const OWN_FRAMES_CAPACITY: usize = 256;

/// A ping with no payload as it goes on the wire: FIN + opcode 9, length 0.
const PING: &[u8] = &[0x89, 0x00];

/// Splits the connection into the session's reading and writing halves. `read_ahead`
/// is what the HTTP/1 decoder had read past the handshake request (a client may send
/// its first frame without waiting for our 101).
pub(crate) fn split(
    io: BoxIo,
    read_ahead: BytesMut,
    max_message_bytes: usize,
) -> (Inbound, Writer) {
    let (read, write) = tokio::io::split(io);
    let chunks = Chunks {
        io: read,
        read_ahead: (!read_ahead.is_empty()).then(|| read_ahead.freeze()),
    };
    let inbound = Inbound {
        chunks: FrameGuard::new(chunks, max_message_bytes),
        codec: ws::Codec::new().max_size(max_message_bytes),
        buf: BytesMut::new(),
        failed: false,
    };
    (inbound, Writer { io: write })
}

/// The socket's bytes as a stream of chunks, what [`FrameGuard`] checks.
struct Chunks {
    io: ReadHalf<BoxIo>,
    read_ahead: Option<Bytes>,
}

impl Stream for Chunks {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(bytes) = self.read_ahead.take() {
            return Poll::Ready(Some(Ok(bytes)));
        }
        let mut space = [0u8; READ_CHUNK];
        let mut buf = ReadBuf::new(&mut space);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(PayloadError::Io(e)))),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => Poll::Ready(Some(Ok(Bytes::copy_from_slice(buf.filled())))),
        }
    }
}

/// A client frame, decoded and (for text) checked to be UTF-8.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Text(ByteString),
    Binary,
    /// A piece of a fragmented message.
    Fragment(Item),
    Ping(Bytes),
    Pong,
    Close(Option<CloseReason>),
}

impl Incoming {
    /// The fragment as the reassembler takes it (`None` for whole frames).
    pub fn fragment(item: &Item) -> Fragment<'_> {
        match item {
            Item::FirstText(b) => Fragment::FirstText(b),
            Item::FirstBinary(b) => Fragment::FirstBinary(b),
            Item::Continue(b) => Fragment::Continue(b),
            Item::Last(b) => Fragment::Last(b),
        }
    }
}

/// What a broken client stream means for the connection (RFC 6455 close codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundFailure {
    /// A frame over `max_message_bytes`: close 1009.
    TooBig,
    /// A text frame that is not UTF-8: close 1007.
    InvalidUtf8,
    /// The client broke the framing rules: close 1002.
    Protocol,
    /// Reading the socket failed: nobody is left to send a close frame to.
    Transport,
}

/// Sorts actix-http's decoder errors by the close code RFC 6455 asks for. Reserved bits
/// arrive as `Io(InvalidData)` (`Parser::parse_metadata`); the decoder does no other I/O.
fn classify(e: &ProtocolError) -> InboundFailure {
    match e {
        ProtocolError::Overflow => InboundFailure::TooBig,
        _ => InboundFailure::Protocol,
    }
}

/// The client's frames, up to the first failure; the stream ends at EOF.
pub struct Inbound {
    chunks: FrameGuard<Chunks>,
    codec: ws::Codec,
    /// An incomplete frame's bytes; empty (and unallocated) between frames.
    buf: BytesMut,
    /// A failure was reported: nothing more is decoded.
    failed: bool,
}

impl Inbound {
    /// The next complete frame in `buf`, if any; frees the buffer once it is empty.
    fn decode(&mut self) -> Option<Result<Incoming, InboundFailure>> {
        if self.buf.is_empty() {
            return None;
        }
        let frame = match self.codec.decode(&mut self.buf) {
            Ok(None) => return None,
            Ok(Some(frame)) => frame,
            Err(e) => return Some(Err(classify(&e))),
        };
        if self.buf.is_empty() {
            // The frame's bytes live on in what it became; this drops our hold on the
            // allocation, so an idle connection keeps none.
            self.buf = BytesMut::new();
        }
        Some(match frame {
            Frame::Text(bytes) => ByteString::try_from(bytes)
                .map(Incoming::Text)
                .map_err(|_| InboundFailure::InvalidUtf8),
            Frame::Binary(_) => Ok(Incoming::Binary),
            Frame::Continuation(item) => Ok(Incoming::Fragment(item)),
            Frame::Ping(payload) => Ok(Incoming::Ping(payload)),
            Frame::Pong(_) => Ok(Incoming::Pong),
            Frame::Close(reason) => Ok(Incoming::Close(reason)),
        })
    }
}

impl Stream for Inbound {
    type Item = Result<Incoming, InboundFailure>;

    /// After a failure the stream ends only at the client's EOF: what the client still
    /// sends is read and dropped, because closing a socket with unread input makes the
    /// kernel answer with a reset, and a reset makes the client discard our close frame.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if !this.failed {
                if let Some(next) = this.decode() {
                    if next.is_err() {
                        this.failed = true;
                        this.buf = BytesMut::new();
                    }
                    return Poll::Ready(Some(next));
                }
            }
            match Pin::new(&mut this.chunks).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(_))) if this.failed => {}
                Poll::Ready(Some(Ok(bytes))) => this.buf.extend_from_slice(&bytes),
                Poll::Ready(Some(Err(_))) if this.failed => return Poll::Ready(None),
                Poll::Ready(Some(Err(_))) => {
                    this.failed = true;
                    return Poll::Ready(Some(Err(InboundFailure::Transport)));
                }
                Poll::Ready(None) => return Poll::Ready(None),
            }
        }
    }
}

/// The writing half of the connection; [`Outgoing`] decides what goes into it.
pub struct Writer {
    io: WriteHalf<BoxIo>,
}

impl Writer {
    pub fn poll_write(
        &mut self,
        out: &mut Outgoing,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Written>> {
        out.poll_write(&mut self.io, cx)
    }
}

/// What the write task tells its session.
#[derive(Debug)]
pub(crate) enum WriteEvent {
    /// The first frame from the broker (the join snapshot) is out.
    FirstDelivered,
    /// The close frame is out and the connection shut down for writing.
    Closed,
    /// Writing failed: the connection is gone.
    Failed(io::Error),
}

/// The session's writing, as a task of its own on the session's thread: it writes
/// what the session queues in the shared [`Outgoing`] until the close frame is out,
/// the connection fails, or the session aborts it, and reports to `report`.
///
/// Why a task and not a future on the actor's context: a hub's push wakes the writer
/// of every session at each delivery, and waking an actor's context polls all of it
/// (mailbox, read half, heartbeat timer) before the write; this task polls only the
/// write (BENCHMARKS.md, issue 8).
pub(crate) struct WriteTask<F: FnMut(WriteEvent)> {
    writer: Writer,
    out: Rc<RefCell<Outgoing>>,
    report: F,
    delivered: bool,
}

impl<F: FnMut(WriteEvent)> WriteTask<F> {
    pub(crate) fn new(writer: Writer, out: Rc<RefCell<Outgoing>>, report: F) -> Self {
        WriteTask {
            writer,
            out,
            report,
            delivered: false,
        }
    }
}

impl<F: FnMut(WriteEvent) + Unpin> Future for WriteTask<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            let step = {
                let mut out = this.out.borrow_mut();
                if out.aborted {
                    return Poll::Ready(());
                }
                this.writer.poll_write(&mut out, cx)
            };
            let event = match step {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(Written { closed: true, .. })) => WriteEvent::Closed,
                Poll::Ready(Ok(written)) => {
                    if written.delivered > 0 && !this.delivered {
                        this.delivered = true;
                        (this.report)(WriteEvent::FirstDelivered);
                    }
                    continue;
                }
                Poll::Ready(Err(e)) => WriteEvent::Failed(e),
            };
            (this.report)(event);
            return Poll::Ready(());
        }
    }
}

/// A frame on its way: its header (on the stack) and its payload (shared), with how
/// much of each is written.
struct Wire {
    head: [u8; 10],
    head_len: usize,
    head_done: usize,
    body: Bytes,
    body_done: usize,
}

impl Wire {
    /// An unmasked server text frame with `payload`.
    fn text(payload: Bytes) -> Wire {
        let mut head = [0u8; 10];
        head[0] = 0x81; // FIN + text
        let len = payload.len();
        let head_len = if len < 126 {
            head[1] = len as u8;
            2
        } else if let Ok(short) = u16::try_from(len) {
            head[1] = 126;
            head[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            head[1] = 127;
            head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        Wire {
            head,
            head_len,
            head_done: 0,
            body: payload,
            body_done: 0,
        }
    }

    /// Bytes that are a whole frame already (control frames).
    fn raw(frame: Bytes) -> Wire {
        Wire {
            head: [0; 10],
            head_len: 0,
            head_done: 0,
            body: frame,
            body_done: 0,
        }
    }

    fn is_done(&self) -> bool {
        self.head_done == self.head_len && self.body_done == self.body.len()
    }

    /// What is left of the header and of the payload.
    fn rest(&self) -> [IoSlice<'_>; 2] {
        [
            IoSlice::new(&self.head[self.head_done..self.head_len]),
            IoSlice::new(&self.body[self.body_done..]),
        ]
    }

    /// Marks up to `n` more bytes written; returns how many of `n` were not this frame's.
    fn advance(&mut self, n: usize) -> usize {
        let in_head = n.min(self.head_len - self.head_done);
        self.head_done += in_head;
        let in_body = (n - in_head).min(self.body.len() - self.body_done);
        self.body_done += in_body;
        n - in_head - in_body
    }
}

/// Writes the frames of `train` (oldest first) in vectored writes until all of them
/// are out (`Ready(Ok)`) or the socket is full (`Pending`, the rest kept in `train`).
fn write_train<W: AsyncWrite + Unpin + ?Sized>(
    train: &mut VecDeque<Wire>,
    io: &mut W,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    loop {
        while train.front().is_some_and(Wire::is_done) {
            train.pop_front();
        }
        if train.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let mut parts = [IoSlice::new(&[]); 2 * FRAMES_PER_WRITE];
        let mut used = 0;
        for (slots, wire) in parts.chunks_exact_mut(2).zip(train.iter()) {
            slots.copy_from_slice(&wire.rest());
            used += 2;
        }
        let mut n = match Pin::new(&mut *io).poll_write_vectored(cx, &parts[..used]) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => n,
        };
        for wire in train.iter_mut() {
            n = wire.advance(n);
            if n == 0 {
                break;
            }
        }
    }
}

/// What one poll of [`Outgoing`] got done.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Frames from the broker (the outbox) written completely.
    pub delivered: usize,
    /// The close frame is out and the connection shut down: the session can end.
    pub closed: bool,
}

/// Everything a session writes, in order: its own frames first (the welcome before the
/// snapshot it asks for, a reply as soon as it is made), then the broker's frames from
/// its outbox, and after a close frame nothing more.
#[derive(Default)]
pub struct Outgoing {
    own: VecDeque<Wire>,
    outbox: Option<Outbox>,
    /// Frames taken from the queues and not completely written yet, oldest first; at
    /// most [`FRAMES_PER_WRITE`], written together.
    current: VecDeque<Wire>,
    /// Woken when a frame is queued while the writer waits for one.
    waker: Option<Waker>,
    /// A close frame is queued: it is the last frame; then the connection shuts down.
    closing: bool,
    /// The connection is shut down.
    closed: bool,
    /// The session is gone: the write task ends at its next poll.
    aborted: bool,
    /// The write task's waker as of its last poll, whatever it waits for (a frame or
    /// room in the socket), so [`Outgoing::abort`] always reaches it.
    task: Option<Waker>,
    /// A heartbeat ping waiting for the next broker frame, to go out in its write.
    ping_waiting: bool,
    /// Broker frames taken from the outbox, and that count at the last ping: a
    /// difference means the stream is flowing (see [`Outgoing::ping`]).
    delivered: u64,
    delivered_at_ping: u64,
}

/// [`Outgoing::text`] found the session's own queue full: the client is not reading.
#[derive(Debug, PartialEq, Eq)]
pub struct OwnQueueFull;

impl Outgoing {
    /// The broker's frames for this session, once it has joined.
    pub fn attach(&mut self, outbox: Outbox) {
        if !self.closing {
            self.outbox = Some(outbox);
            self.wake();
        }
    }

    /// Queues a text frame of the session's own. Ignored once closing.
    pub fn text(&mut self, text: impl Into<ByteString>) -> Result<(), OwnQueueFull> {
        self.push(Wire::text(text.into().into_bytes()))
    }

    /// Queues a ping or pong with `payload` (at most 125 bytes). Ignored once closing.
    pub fn control(&mut self, message: ws::Message) -> Result<(), OwnQueueFull> {
        let mut frame = BytesMut::new();
        if ws::Codec::new().encode(message, &mut frame).is_err() {
            // Only a payload over 125 bytes fails; ours are empty or echoed pings,
            // which the decoder capped at 125. Nothing to send then.
            return Ok(());
        }
        self.push(Wire::raw(frame.freeze()))
    }

    /// Queues a heartbeat ping. While the broker's frames are flowing (one went out
    /// since the last ping), the ping waits for the next one and goes out in the same
    /// vectored write, ahead of it: at a tick or two of delay against the seconds
    /// between pings, the heartbeat then costs the server no write of its own and the
    /// client no wake-up of its own, which at 19 000 clients and 5 s was ~4 % of the
    /// writes (BENCHMARKS.md). On a quiet stream (a paused world, or no frame came
    /// since the ping before) it goes out at once. Ignored once closing.
    pub fn ping(&mut self) -> Result<(), OwnQueueFull> {
        let flowing = self.delivered != self.delivered_at_ping;
        self.delivered_at_ping = self.delivered;
        if flowing && self.outbox.is_some() && !self.closing {
            self.ping_waiting = true;
            return Ok(());
        }
        self.ping_waiting = false;
        self.push(Wire::raw(Bytes::from_static(PING)))
    }

    /// Queues the close frame, the last one: the outbox is dropped (leaving the hub),
    /// what was queued before still goes out, then the connection shuts down.
    pub fn close(&mut self, reason: Option<CloseReason>) {
        if self.closing {
            return;
        }
        let mut frame = BytesMut::new();
        let _encoded = ws::Codec::new().encode(ws::Message::Close(reason), &mut frame);
        self.own.push_back(Wire::raw(frame.freeze()));
        self.closing = true;
        self.outbox = None;
        self.wake();
    }

    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// The session is gone: the write task stops (dropping the writing half) at once,
    /// even while it waits for room in the socket.
    pub fn abort(&mut self) {
        self.aborted = true;
        self.outbox = None;
        if let Some(task) = self.task.take() {
            task.wake();
        }
    }

    /// The close frame is written and the connection shut down for writing.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn push(&mut self, wire: Wire) -> Result<(), OwnQueueFull> {
        if self.closing {
            return Ok(());
        }
        if self.own.len() >= OWN_FRAMES_CAPACITY {
            return Err(OwnQueueFull);
        }
        self.own.push_back(wire);
        self.wake();
        Ok(())
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// The next frame to write: own frames first, then the outbox's.
    fn next(&mut self, cx: &mut Context<'_>, written: &mut Written) -> Option<Wire> {
        if let Some(wire) = self.own.pop_front() {
            return Some(wire);
        }
        let outbox = self.outbox.as_mut()?;
        let frame = outbox.poll_pop(cx.waker())?;
        written.delivered += 1;
        self.delivered += 1;
        let wire = Wire::text(frame.frame.into_bytes());
        if std::mem::take(&mut self.ping_waiting) {
            // The own queue is empty (checked above): the frame follows the ping, and
            // the caller gathers both into one write.
            self.own.push_back(wire);
            return Some(Wire::raw(Bytes::from_static(PING)));
        }
        Some(wire)
    }

    /// Writes queued frames until the socket is full, nothing is left, or this poll's
    /// share is used up. `Ready` when something happened the session must see.
    pub fn poll_write<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Written>> {
        if !self.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            self.task = Some(cx.waker().clone());
        }
        let mut written = Written::default();
        let mut budget = FRAMES_PER_POLL;
        while budget > 0 {
            if self.closed {
                return Poll::Ready(Ok(Written {
                    closed: true,
                    ..written
                }));
            }
            while self.current.len() < FRAMES_PER_WRITE.min(budget) {
                let Some(wire) = self.next(cx, &mut written) else {
                    break;
                };
                self.current.push_back(wire);
            }
            if self.current.is_empty() {
                return self.poll_idle(io, cx, written);
            }
            budget = budget.saturating_sub(self.current.len());
            match write_train(&mut self.current, io, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.report(written),
            }
        }
        cx.waker().wake_by_ref();
        self.report(written)
    }

    /// Nothing left to write: flush (TLS keeps records buffered), and once the close
    /// frame is out, shut the connection down.
    fn poll_idle<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
        written: Written,
    ) -> Poll<io::Result<Written>> {
        let flushed = if self.closing {
            Pin::new(&mut *io).poll_shutdown(cx)
        } else {
            Pin::new(&mut *io).poll_flush(cx)
        };
        match flushed {
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) if self.closing => {
                self.closed = true;
                return Poll::Ready(Ok(Written {
                    closed: true,
                    ..written
                }));
            }
            _ => {}
        }
        self.waker = Some(cx.waker().clone());
        self.report(written)
    }

    /// `Ready` when frames from the broker went out (the session notes its first),
    /// `Pending` otherwise.
    fn report(&self, written: Written) -> Poll<io::Result<Written>> {
        if written.delivered > 0 {
            Poll::Ready(Ok(written))
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client frame as RFC 6455 wants it: masked.
    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [7u8, 1, 9, 3];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn pair(max: usize) -> (tokio::io::DuplexStream, Inbound, Writer) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (inbound, writer) = split(Box::new(server), BytesMut::new(), max);
        (client, inbound, writer)
    }

    #[tokio::test]
    async fn frames_split_across_reads_are_joined_and_the_buffer_is_freed_between() {
        let (mut client, mut inbound, _w) = pair(1024);
        let frame = masked(1, true, b"{\"type\":\"heartbeat\"}");
        client.write_all(&frame[..10]).await.expect("write");
        assert!(futures_util::poll!(inbound.next()).is_pending());
        assert!(inbound.buf.capacity() > 0, "a partial frame is kept");
        client.write_all(&frame[10..]).await.expect("write");
        let text = ByteString::from_static("{\"type\":\"heartbeat\"}");
        assert_eq!(inbound.next().await, Some(Ok(Incoming::Text(text))));
        assert_eq!(inbound.buf.capacity(), 0, "idle: no read buffer kept");
    }

    #[tokio::test]
    async fn read_ahead_bytes_come_first_and_invalid_utf8_ends_the_stream() {
        let (client, server) = tokio::io::duplex(1024);
        let ahead = BytesMut::from(&masked(1, true, b"ping")[..]);
        let (mut inbound, _w) = split(Box::new(server), ahead, 1024);
        let mut client = client;
        client
            .write_all(&masked(1, true, &[0xC3, 0x28]))
            .await
            .expect("write");
        let ping = ByteString::from_static("ping");
        assert_eq!(inbound.next().await, Some(Ok(Incoming::Text(ping))));
        let bad = inbound.next().await;
        assert_eq!(bad, Some(Err(InboundFailure::InvalidUtf8)));
        client
            .write_all(b"anything after it is read and dropped")
            .await
            .expect("w");
        assert!(
            futures_util::poll!(inbound.next()).is_pending(),
            "until EOF"
        );
        drop(client);
        assert_eq!(inbound.next().await, None);
    }

    #[tokio::test]
    async fn oversized_unmasked_and_reserved_bit_frames_are_sorted_by_close_code() {
        let (mut client, mut inbound, _w) = pair(8);
        client
            .write_all(&masked(1, true, b"0123456789"))
            .await
            .expect("write");
        assert_eq!(inbound.next().await, Some(Err(InboundFailure::TooBig)));
        let (mut client, mut inbound, _w) = pair(64);
        client
            .write_all(&[0x81, 0x02, b'h', b'i'])
            .await
            .expect("w");
        assert_eq!(inbound.next().await, Some(Err(InboundFailure::Protocol)));
        let (mut client, mut inbound, _w) = pair(64);
        let mut rsv = masked(1, true, b"hi");
        rsv[0] |= 0x40;
        client.write_all(&rsv).await.expect("write");
        assert_eq!(inbound.next().await, Some(Err(InboundFailure::Protocol)));
    }

    #[tokio::test]
    async fn fragments_and_control_frames_are_reported_as_such() {
        let (mut client, mut inbound, _w) = pair(64);
        let mut bytes = masked(1, false, b"ab");
        bytes.extend(masked(0, true, b"cd"));
        bytes.extend(masked(9, true, b"p"));
        bytes.extend(masked(8, true, &[0x03, 0xE8]));
        client.write_all(&bytes).await.expect("write");
        let first = Item::FirstText(Bytes::from_static(b"ab"));
        assert_eq!(inbound.next().await, Some(Ok(Incoming::Fragment(first))));
        let last = Item::Last(Bytes::from_static(b"cd"));
        assert_eq!(inbound.next().await, Some(Ok(Incoming::Fragment(last))));
        let ping = Incoming::Ping(Bytes::from_static(b"p"));
        assert_eq!(inbound.next().await, Some(Ok(ping)));
        let close = Some(CloseReason::from(ws::CloseCode::Normal));
        assert_eq!(inbound.next().await, Some(Ok(Incoming::Close(close))));
        drop(client);
        assert_eq!(inbound.next().await, None, "EOF ends the stream");
    }

    /// Polls the writer until it has nothing left to do.
    async fn drive(writer: &mut Writer, out: &mut Outgoing) -> Written {
        let mut total = Written::default();
        loop {
            let step = futures_util::future::poll_fn(|cx| match writer.poll_write(out, cx) {
                Poll::Ready(r) => Poll::Ready(Some(r)),
                Poll::Pending => Poll::Ready(None),
            })
            .await;
            match step {
                Some(Ok(w)) => {
                    total.delivered += w.delivered;
                    if w.closed {
                        total.closed = true;
                        return total;
                    }
                }
                Some(Err(e)) => panic!("write failed: {e}"),
                None => return total,
            }
        }
    }

    /// A write task on `writer` and `out`, and what it reports.
    fn task(
        writer: Writer,
        out: &Rc<RefCell<Outgoing>>,
    ) -> (impl Future<Output = ()>, Rc<RefCell<Vec<String>>>) {
        let events = Rc::new(RefCell::new(Vec::new()));
        let seen = Rc::clone(&events);
        let report = move |e: WriteEvent| seen.borrow_mut().push(format!("{e:?}"));
        (WriteTask::new(writer, Rc::clone(out), report), events)
    }

    #[tokio::test]
    async fn the_write_task_ends_when_the_close_frame_is_out_and_says_so() {
        let (mut client, _inbound, writer) = pair(64);
        let out = Rc::new(RefCell::new(Outgoing::default()));
        let (task, events) = task(writer, &out);
        out.borrow_mut().text("bye").expect("room");
        out.borrow_mut().close(None);
        task.await;
        assert_eq!(*events.borrow(), vec!["Closed".to_string()]);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, [&[0x81, 3][..], b"bye", &[0x88, 0]].concat());
    }

    #[tokio::test]
    async fn an_aborted_write_task_ends_even_while_it_waits_for_a_full_socket() {
        let (_client, server) = tokio::io::duplex(64);
        let (_inbound, writer) = split(Box::new(server), BytesMut::new(), 64);
        let out = Rc::new(RefCell::new(Outgoing::default()));
        let (task, events) = task(writer, &out);
        tokio::pin!(task);
        out.borrow_mut().text("w".repeat(1000)).expect("room");
        assert!(futures_util::poll!(&mut task).is_pending(), "socket full");
        out.borrow_mut().abort();
        assert!(futures_util::poll!(&mut task).is_ready(), "ends at once");
        assert!(
            events.borrow().is_empty(),
            "nothing to report to a gone session"
        );
    }

    #[test]
    fn headers_use_the_shortest_length_form() {
        let head = |n: usize| {
            let w = Wire::text(Bytes::from(vec![b'x'; n]));
            w.head[..w.head_len].to_vec()
        };
        assert_eq!(head(5), vec![0x81, 5]);
        assert_eq!(head(126), vec![0x81, 126, 0, 126]);
        assert_eq!(head(70_000), {
            let mut h = vec![0x81, 127];
            h.extend_from_slice(&70_000u64.to_be_bytes());
            h
        });
    }

    #[tokio::test]
    async fn own_frames_then_the_close_frame_go_out_then_the_connection_ends() {
        let (mut client, _inbound, mut writer) = pair(64);
        let mut out = Outgoing::default();
        out.text("hello").expect("room");
        let big = "y".repeat(300);
        out.text(big.clone()).expect("room");
        out.close(Some(ws::CloseCode::Away.into()));
        out.text("after close").expect("ignored");
        let written = drive(&mut writer, &mut out).await;
        assert!(written.closed);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("read");
        let mut want = vec![0x81, 5];
        want.extend_from_slice(b"hello");
        want.extend_from_slice(&[0x81, 126, 1, 44]);
        want.extend_from_slice(big.as_bytes());
        want.extend_from_slice(&[0x88, 2, 0x03, 0xE9]);
        assert_eq!(got, want, "close is last, then EOF");
    }

    #[tokio::test]
    async fn a_full_socket_keeps_the_rest_of_the_frame_and_resumes_where_it_stopped() {
        let (mut client, server) = tokio::io::duplex(64);
        let (_inbound, mut writer) = split(Box::new(server), BytesMut::new(), 64);
        let mut out = Outgoing::default();
        let payload = "z".repeat(1000);
        out.text(payload.clone()).expect("room");
        drive(&mut writer, &mut out).await;
        assert!(!out.current.is_empty(), "the socket took only part of it");
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 1004];
            client.read_exact(&mut got).await.expect("read");
            got
        });
        while !out.current.is_empty() || !out.own.is_empty() {
            drive(&mut writer, &mut out).await;
            tokio::task::yield_now().await;
        }
        let got = reader.await.expect("join");
        assert_eq!(&got[..4], &[0x81, 126, 0x03, 0xE8]);
        assert_eq!(&got[4..], payload.as_bytes());
    }

    /// A socket that takes every vectored write whole and counts the calls.
    #[derive(Default)]
    struct CountingSocket {
        bytes: Vec<u8>,
        writes: usize,
    }

    impl AsyncWrite for CountingSocket {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.writes += 1;
            let n = bufs.iter().map(|b| b.len()).sum();
            for b in bufs {
                self.bytes.extend_from_slice(b);
            }
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_backlog_goes_out_in_one_write_per_train_in_order() {
        let mut out = Outgoing::default();
        for i in 0..FRAMES_PER_WRITE + 3 {
            out.text(format!("f{i}")).expect("room");
        }
        let mut socket = CountingSocket::default();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let _ = out.poll_write(&mut socket, &mut cx);
        assert_eq!(
            socket.writes, 2,
            "{FRAMES_PER_WRITE} frames, then the other 3"
        );
        let want: Vec<u8> = (0..FRAMES_PER_WRITE + 3)
            .flat_map(|i| {
                let text = format!("f{i}");
                let mut frame = vec![0x81, text.len() as u8];
                frame.extend_from_slice(text.as_bytes());
                frame
            })
            .collect();
        assert_eq!(socket.bytes, want);
        assert!(out.current.is_empty() && out.own.is_empty());
    }

    /// `out` with an outbox on a hub of this thread, and a way to deliver broker
    /// frames into it (as the broker's `DeliverFrames` does).
    fn with_outbox(out: &mut Outgoing) -> impl Fn(u64) {
        use crate::broker::hub::{DeliverFrames, LocalHub};
        use crate::broker::testing::{frame, NoReports};
        use actix::Actor;
        let hub = LocalHub::start();
        out.attach(hub.open(1, 16));
        let reports = NoReports.start().recipient();
        move |n| {
            hub.route().addr.do_send(DeliverFrames {
                frames: vec![(1, frame(n))],
                overflowed: reports.clone(),
            })
        }
    }

    /// Polls `out` into `socket` after the hub has had its turn.
    async fn write_all(out: &mut Outgoing, socket: &mut CountingSocket) {
        actix::clock::sleep(std::time::Duration::from_millis(5)).await;
        let waker = futures_util::task::noop_waker();
        let _ = out.poll_write(socket, &mut Context::from_waker(&waker));
    }

    #[test]
    fn a_ping_rides_with_the_next_broker_frame_while_they_flow() {
        actix::System::new().block_on(async {
            let mut out = Outgoing::default();
            let deliver = with_outbox(&mut out);
            let mut socket = CountingSocket::default();
            deliver(1);
            write_all(&mut out, &mut socket).await;
            assert_eq!(socket.writes, 1);
            out.ping().expect("room");
            write_all(&mut out, &mut socket).await;
            assert_eq!(socket.writes, 1, "the ping waits for a frame");
            deliver(2);
            write_all(&mut out, &mut socket).await;
            assert_eq!(socket.writes, 2, "ping and frame in one write");
            let want = [&[0x81, 1][..], b"1", PING, &[0x81, 1], b"2"].concat();
            assert_eq!(
                socket.bytes, want,
                "the ping ahead of the frame it rode with"
            );
        });
    }

    #[test]
    fn a_ping_goes_out_alone_on_a_quiet_stream_or_when_no_frame_came_for_it() {
        actix::System::new().block_on(async {
            let mut out = Outgoing::default();
            let deliver = with_outbox(&mut out);
            let mut socket = CountingSocket::default();
            out.ping().expect("room");
            write_all(&mut out, &mut socket).await;
            assert_eq!(socket.bytes, PING, "nothing flowed yet: at once");
            deliver(1);
            write_all(&mut out, &mut socket).await;
            out.ping().expect("room");
            write_all(&mut out, &mut socket).await;
            assert_eq!(socket.writes, 2, "flowing: it waits");
            out.ping().expect("room");
            write_all(&mut out, &mut socket).await;
            assert_eq!(socket.writes, 3, "no frame came by the next heartbeat");
            let want = [PING, &[0x81, 1], b"1", PING].concat();
            assert_eq!(socket.bytes, want, "one ping, not two");
        });
    }

    #[test]
    fn the_own_queue_is_bounded() {
        let mut out = Outgoing::default();
        for _ in 0..OWN_FRAMES_CAPACITY {
            out.text("x").expect("room");
        }
        assert_eq!(out.text("x"), Err(OwnQueueFull));
    }
}
