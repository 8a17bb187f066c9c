//! The broker actor: batching clock, history, fan-out, and eviction of jammed sessions.
//!
//! Mailbox: bounded at [`MAILBOX_CAPACITY`]. The simulation sends with `try_send` and
//! holds its own outbox when the broker is behind (so the producer slows down instead of
//! items being lost); sessions' `Leave` uses `do_send`, bounded by one per session.
//!
//! Every frame for a session goes through the hub of its worker thread (one message per
//! hub per delivery, see [`super::hub`]) into the session's bounded outbox
//! (`session.outbound_queue` frames). Slow-consumer policy: a session whose outbox (or
//! hub mailbox) is full is evicted (its socket shut down, its slot freed); it may
//! reconnect and `resume` from history. Nobody is ever buffered without bound, and one
//! slow client never delays the others.

use super::batcher::{fold, Batch, Batcher};
use super::fanout::{FanOut, Groups, Slot};
use super::history::{History, Lookup};
use super::hub::{DeliverFrames, Overflowed};
use super::pool::ConnHandle;
use super::{
    CloseAll, CloseSession, Deliver, JoinSession, Leave, Publish, RequestSnapshot, ResumeFrom,
    SessionId, SetTopics, SnapshotRoute,
};
use crate::clock;
use crate::metrics::Metrics;
use crate::protocol::{Envelope, Snapshot};
use crate::session::subscriptions::TopicSet;
use actix::prelude::*;
use bytestring::ByteString;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Broker mailbox bound: about 100 s of ticks at 10 Hz plus control messages. When full,
/// the simulation holds its items in its outbox and pauses ticking (see `sim::actor`).
pub const MAILBOX_CAPACITY: usize = 1024;

/// How long a newly joined session waits for a `resume` before live batches start.
/// A client that resumes sends it right after the snapshot; holding live delivery that
/// long lets the missed batches and the live ones arrive as one ordered run. Nothing is
/// lost by holding: on release, the batches since the snapshot come from the history.
pub const JOIN_HOLD: Duration = Duration::from_millis(100);

/// Items per frame at most when a member catches up from the history (a resume): the
/// catch-up is cut into chained frames rather than one frame the size of the history.
const CATCH_UP_ITEMS: usize = 1000;

/// Longest grace, past `client_timeout`, before the sweep evicts a silent session.
const SWEEP_GRACE_MS: u64 = 500;

/// Tunables, from `[broker]` and `[session]`.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub max_batch_size: usize,
    pub max_batch_wait: Duration,
    pub history_size: usize,
    /// A joined session silent for longer than this is evicted by the sweep, even when
    /// its own actor is frozen behind a jammed socket.
    pub client_timeout: Duration,
}

struct Member {
    close: Recipient<CloseSession>,
    conn: Option<ConnHandle>,
    last_seen: Arc<AtomicU64>,
    topics: TopicSet,
    /// A resync snapshot has been asked for; the member is held (out of live delivery)
    /// until it arrives, since that snapshot covers everything it would have been sent.
    awaiting_resync: bool,
}

/// Why a session is removed by the broker (metric label).
#[derive(Debug, Clone, Copy)]
enum Eviction {
    /// Its mailbox was full: it does not keep up.
    Slow,
    /// Silent past `client_timeout` while its own heartbeat did not close it (its actor
    /// is frozen behind a jammed socket).
    Unresponsive,
}

impl Eviction {
    fn label(self) -> &'static str {
        match self {
            Eviction::Slow => "slow",
            Eviction::Unresponsive => "unresponsive",
        }
    }
}

pub struct Broker {
    settings: BrokerSettings,
    batcher: Batcher,
    history: History,
    members: BTreeMap<SessionId, Member>,
    /// Sessions grouped by equal topic sets: one serialization per group per batch.
    groups: Groups,
    /// Scratch outcome of the last fan-out, kept so its vectors are reused.
    fan_out: FanOut,
    /// Batches issued (numbered, in the history) but not yet delivered: delivery waits
    /// for the end of the tick (or `max_batch_wait`), so a tick cut into several batches
    /// reaches each connection as one frame. Bounded by one tick's items, or by
    /// `max_batch_wait` for commands' items.
    undelivered: Vec<Arc<Batch>>,
    /// Topics or resume requests that arrived before the session's join was processed
    /// (the join travels through the simulation, the others come directly).
    early_topics: BTreeMap<SessionId, TopicSet>,
    early_resume: BTreeMap<SessionId, u64>,
    flush_timer: Option<SpawnHandle>,
    sim: Recipient<RequestSnapshot>,
    metrics: Arc<Metrics>,
    /// Latest seq, readable by sessions for `welcome` without a round trip.
    latest_seq: Arc<AtomicU64>,
    /// Keeps a high-water mark of `seq` on disk so it rises across restarts.
    seq_mark: Option<crate::persistence::SeqMark>,
    /// The last join snapshot's identity and encoding (see `join_frame`).
    join_cache: Option<(SnapshotKey, ByteString)>,
    /// This actor's address for hubs' overflow reports (set when it starts).
    overflowed: Option<Recipient<Overflowed>>,
}

/// What makes two snapshots the same world state.
#[derive(Debug, PartialEq, Eq)]
struct SnapshotKey {
    seq: u64,
    tick: u64,
    paused: bool,
    tick_rate_bits: u64,
    state_hash: String,
}

impl Broker {
    pub fn new(
        settings: BrokerSettings,
        last_seq: u64,
        sim: Recipient<RequestSnapshot>,
        metrics: Arc<Metrics>,
        latest_seq: Arc<AtomicU64>,
    ) -> Self {
        latest_seq.store(last_seq, Ordering::Release);
        Broker {
            batcher: Batcher::new(settings.max_batch_size, last_seq),
            history: History::new(settings.history_size, last_seq),
            settings,
            members: BTreeMap::new(),
            groups: Groups::new(),
            fan_out: FanOut::default(),
            undelivered: Vec::new(),
            early_topics: BTreeMap::new(),
            early_resume: BTreeMap::new(),
            flush_timer: None,
            sim,
            metrics,
            latest_seq,
            seq_mark: None,
            join_cache: None,
            overflowed: None,
        }
    }

    /// Persists a `seq` high-water mark as batches are issued.
    pub fn with_seq_mark(mut self, mark: crate::persistence::SeqMark) -> Self {
        self.seq_mark = Some(mark);
        self
    }

    /// Cuts what is pending into a batch and delivers everything undelivered.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.flush_timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(batch) = self.batcher.flush() {
            self.issue(batch);
        }
        self.deliver();
    }

    /// Numbers are final once a batch is issued: it goes into the history (so `resume`
    /// finds it) and waits in `undelivered` for the next delivery.
    fn issue(&mut self, batch: Batch) {
        let batch = Arc::new(batch);
        self.metrics.batches.inc();
        self.metrics.items.inc_by(batch.items.len() as u64);
        if let Some(mark) = self.seq_mark.as_mut() {
            mark.observe(batch.seq);
        }
        self.latest_seq.store(batch.seq, Ordering::Release);
        self.metrics.seq.set(batch.seq as i64);
        self.history.push(Arc::clone(&batch));
        self.undelivered.push(batch);
    }

    /// Fans the undelivered batches out to every live member, as one frame per member.
    /// Also the fence before anything that sends a member frames of its own (snapshots,
    /// catch-ups), so those always come after every frame it was due.
    fn deliver(&mut self) {
        if self.undelivered.is_empty() {
            return;
        }
        let mut out = std::mem::take(&mut self.fan_out);
        out.clear();
        self.groups.fan_out(&self.undelivered, &mut out);
        if let Some(overflowed) = &self.overflowed {
            out.dispatch(overflowed);
        }
        self.undelivered.clear();
        self.metrics.messages_sent.inc_by(out.sent);
        for &id in &out.full {
            self.remove(id, Some(Eviction::Slow));
        }
        for &id in &out.closed {
            self.remove(id, None);
        }
        self.fan_out = out;
    }

    /// Removes a member; with a reason, also shuts its socket down so that a frozen
    /// session (actix-web#2441) ends and frees its pool slot.
    fn remove(&mut self, id: SessionId, why: Option<Eviction>) {
        self.early_topics.remove(&id);
        self.early_resume.remove(&id);
        let Some(member) = self.members.remove(&id) else {
            return;
        };
        self.groups.remove(&member.topics, id);
        if let Some(why) = why {
            let shut = member.conn.map(|c| c.shutdown()).unwrap_or(false);
            log::info!(
                "session {id} evicted ({}); socket shut down: {shut}",
                why.label()
            );
            self.metrics
                .evictions
                .with_label_values(&[why.label()])
                .inc();
        }
    }

    /// A member's delivery slot.
    fn slot(&mut self, id: SessionId) -> Option<&mut Slot> {
        let topics = &self.members.get(&id)?.topics;
        self.groups.get_mut(topics, id)
    }

    /// Sends one frame of the member's own (snapshot, catch-up, reply) through its hub; a
    /// full hub evicts it as slow, like a full hub in the fan-out (a full outbox is
    /// reported back by the hub, as for any frame).
    fn send_to(&mut self, id: SessionId, frame: ByteString, seq: Option<u64>) -> bool {
        let Some(overflowed) = self.overflowed.clone() else {
            return false;
        };
        let Some(slot) = self.slot(id) else {
            return false;
        };
        let msg = DeliverFrames {
            frames: vec![(id, Deliver { frame, seq })],
            overflowed,
        };
        match slot.route.addr.try_send(msg) {
            Ok(()) => {
                self.metrics.messages_sent.inc();
                true
            }
            Err(SendError::Full(_)) => {
                self.remove(id, Some(Eviction::Slow));
                false
            }
            Err(SendError::Closed(_)) => {
                self.remove(id, None);
                false
            }
        }
    }

    /// Sends a snapshot that reflects every batch up to `seq`: the member's next frame
    /// starts at `seq + 1`, and it is live from here on.
    fn send_snapshot(&mut self, id: SessionId, frame: ByteString, seq: u64) {
        if self.send_to(id, frame, Some(seq)) {
            self.set_live(id, seq + 1);
        }
    }

    fn set_live(&mut self, id: SessionId, next_from: u64) {
        if let Some(member) = self.members.get_mut(&id) {
            member.awaiting_resync = false;
        }
        if let Some(slot) = self.slot(id) {
            (slot.next_from, slot.held) = (next_from, false);
        }
    }

    fn join(
        &mut self,
        join: JoinSession,
        snapshot_frame: ByteString,
        seq: u64,
        ctx: &mut Context<Self>,
    ) {
        let JoinSession {
            session,
            route,
            close,
            conn,
            last_seen,
            topics,
        } = join;
        let topics = self.early_topics.remove(&session).unwrap_or(topics);
        let slot = Slot {
            id: session,
            route,
            next_from: seq + 1,
            held: true,
        };
        self.groups.insert(topics.clone(), slot);
        let member = Member {
            close,
            conn,
            last_seen,
            topics,
            awaiting_resync: false,
        };
        self.members.insert(session, member);
        if !self.send_to(session, snapshot_frame, Some(seq)) {
            return;
        }
        if let Some(last_seq) = self.early_resume.remove(&session) {
            self.resume(session, last_seq);
        } else {
            ctx.run_later(JOIN_HOLD, move |this, _| this.release(session));
        }
    }

    /// Ends a session's join hold (unless it waits for a resync): it catches up from the
    /// history on what was issued since its snapshot, then follows live.
    fn release(&mut self, id: SessionId) {
        if self.members.get(&id).is_none_or(|m| m.awaiting_resync) {
            return;
        }
        if let Some(slot) = self.slot(id).filter(|s| s.held) {
            let after = slot.next_from - 1;
            self.catch_up(id, after);
        }
    }

    /// Sends the member everything after `after` from the history, folded into chained
    /// frames, and makes it live; or, when some of it is gone, asks for a resync.
    fn catch_up(&mut self, id: SessionId, after: u64) {
        self.deliver();
        let latest = self.history.last_seq();
        let batches = match self.history.range(after, latest) {
            Lookup::Batches(batches) => batches,
            Lookup::Resync => return self.request_resync(id),
        };
        let Some(topics) = self.members.get(&id).map(|m| m.topics.clone()) else {
            return;
        };
        // A member still held at its join snapshot (seq `joined`) resuming from before
        // it gets the batches up to `joined` (already in its snapshot) in frames of their
        // own, so no frame mixes items it has with items it has not.
        let joined = self.slot(id).filter(|s| s.held).map(|s| s.next_from - 1);
        let (old, new) = match joined {
            Some(joined) => batches.split_at(batches.partition_point(|b| b.seq <= joined)),
            None => (&batches[..0], &batches[..]),
        };
        let (mut frames, next_from) = fold(old, after + 1, &topics, CATCH_UP_ITEMS);
        let (more, next_from) = fold(new, next_from, &topics, CATCH_UP_ITEMS);
        frames.extend(more);
        for frame in frames {
            if !self.send_to(id, frame.frame, Some(frame.seq)) {
                return;
            }
        }
        self.set_live(id, next_from);
    }

    /// Holds the member out of live delivery and asks the simulation for a snapshot with
    /// `resync: true`; if the request cannot be queued, the member stays live instead.
    fn request_resync(&mut self, id: SessionId) {
        let route = SnapshotRoute::Resync { session: id };
        if let Err(e) = self.sim.try_send(RequestSnapshot { route }) {
            log::warn!("resync for session {id} not requested: {e}");
            return;
        }
        if let Some(member) = self.members.get_mut(&id) {
            member.awaiting_resync = true;
        }
        if let Some(slot) = self.slot(id) {
            slot.held = true;
        }
    }

    /// `resume {last_seq}`: the next frame starts at `last_seq + 1`.
    fn resume(&mut self, id: SessionId, last_seq: u64) {
        if last_seq > self.history.last_seq() {
            return self.request_resync(id);
        }
        self.catch_up(id, last_seq);
    }

    /// The join snapshot, serialized once per world state: clients joining in a burst
    /// (a reconnect storm, a load test) share one encoding instead of one each. The
    /// `timestamp` is that of the first encoding, at most the same world state old.
    fn join_frame(&mut self, snapshot: &Snapshot) -> ByteString {
        let key = SnapshotKey {
            seq: snapshot.seq,
            tick: snapshot.tick,
            paused: snapshot.paused,
            tick_rate_bits: snapshot.tick_rate.to_bits(),
            state_hash: snapshot.state_hash.clone(),
        };
        if let Some((cached, frame)) = &self.join_cache {
            if *cached == key {
                return frame.clone();
            }
        }
        let frame = Self::encode_snapshot(snapshot);
        self.join_cache = Some((key, frame.clone()));
        frame
    }

    fn encode_snapshot(snapshot: &Snapshot) -> ByteString {
        ByteString::from(Envelope::new("snapshot", snapshot).to_json())
    }

    fn route_snapshot(
        &mut self,
        mut snapshot: Snapshot,
        route: SnapshotRoute,
        ctx: &mut Context<Self>,
    ) {
        let seq = self.batcher.last_seq();
        snapshot.seq = seq;
        match route {
            SnapshotRoute::Join(join) => {
                let frame = self.join_frame(&snapshot);
                self.join(join, frame, seq, ctx);
            }
            SnapshotRoute::Reply { session, id } => {
                self.release(session);
                let mut result = serde_json::to_value(&snapshot).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut result {
                    map.insert("ok".into(), json!(true));
                }
                let reply = Envelope::new("reply", result)
                    .with_id(id.as_ref())
                    .to_json();
                let snap = Envelope::new("snapshot", &snapshot)
                    .with_id(id.as_ref())
                    .to_json();
                for (frame, seq) in [(reply, None), (snap, Some(seq))] {
                    if !self.send_to(session, frame.into(), seq) {
                        return;
                    }
                }
                self.set_live(session, seq + 1);
            }
            SnapshotRoute::Resync { session } => {
                snapshot.resync = true;
                let frame = Self::encode_snapshot(&snapshot);
                self.send_snapshot(session, frame, seq);
            }
            SnapshotRoute::Everyone => {
                snapshot.resync = true;
                let frame = Self::encode_snapshot(&snapshot);
                let ids: Vec<SessionId> = self.members.keys().copied().collect();
                for id in ids {
                    self.send_snapshot(id, frame.clone(), seq);
                }
            }
            SnapshotRoute::Http { reply } => {
                let _ = reply.send(Envelope::new("snapshot", &snapshot).to_json());
            }
        }
    }

    /// Evicts joined sessions silent past `client_timeout`. This runs in the broker, not
    /// in the session, because a session behind a jammed socket is not polled at all.
    fn sweep(&mut self) {
        let now = clock::now_ms();
        // A grace period past client_timeout: a session that is still polled closes
        // itself at client_timeout, with a close frame; only frozen ones are left here.
        let timeout = self.settings.client_timeout.as_millis() as u64;
        let limit = timeout + (timeout / 4).min(SWEEP_GRACE_MS);
        let stale: Vec<SessionId> = self
            .members
            .iter()
            .filter(|(_, m)| now.saturating_sub(m.last_seen.load(Ordering::Acquire)) > limit)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.remove(id, Some(Eviction::Unresponsive));
        }
    }
}

impl Actor for Broker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        self.overflowed = Some(ctx.address().recipient());
        let every = (self.settings.client_timeout / 8)
            .clamp(Duration::from_millis(50), Duration::from_millis(1000));
        ctx.run_interval(every, |this, _| this.sweep());
    }
}

impl Handler<Publish> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) {
        match msg {
            Publish::Items { items, end_of_tick } => {
                for batch in self.batcher.push(items) {
                    self.issue(batch);
                }
                let waiting = self.batcher.pending() > 0 || !self.undelivered.is_empty();
                if end_of_tick {
                    self.flush(ctx);
                } else if waiting && self.flush_timer.is_none() {
                    let wait = self.settings.max_batch_wait;
                    self.flush_timer = Some(ctx.run_later(wait, |this, ctx| {
                        this.flush_timer = None;
                        this.flush(ctx);
                    }));
                }
            }
            Publish::Snapshot { snapshot, route } => {
                // Items published before this snapshot are reflected in it: flush them so
                // that the snapshot's seq covers them.
                self.flush(ctx);
                self.route_snapshot(*snapshot, route, ctx);
            }
        }
    }
}

impl Handler<SetTopics> for Broker {
    type Result = ();

    /// New topics apply from the next batch issued: what was issued before is
    /// delivered under the old ones first, so a range spanning the change holds, for
    /// each batch, the items on the topics in force when it was issued.
    fn handle(&mut self, msg: SetTopics, _: &mut Self::Context) {
        if !self.members.contains_key(&msg.session) {
            self.early_topics.insert(msg.session, msg.topics);
            return;
        }
        self.deliver();
        let Some(member) = self.members.get_mut(&msg.session) else {
            return; // evicted by that delivery
        };
        if member.topics == msg.topics {
            return;
        }
        let old = std::mem::replace(&mut member.topics, msg.topics.clone());
        if let Some(slot) = self.groups.remove(&old, msg.session) {
            self.groups.insert(msg.topics, slot);
        }
    }
}

impl Handler<ResumeFrom> for Broker {
    type Result = ();

    fn handle(&mut self, msg: ResumeFrom, _: &mut Self::Context) {
        if self.members.contains_key(&msg.session) {
            self.resume(msg.session, msg.last_seq);
        } else {
            self.early_resume.insert(msg.session, msg.last_seq);
        }
    }
}

impl Handler<Leave> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Self::Context) {
        self.remove(msg.session, None);
    }
}

impl Handler<Overflowed> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Overflowed, _: &mut Self::Context) {
        for id in msg.sessions {
            self.remove(id, Some(Eviction::Slow));
        }
    }
}

impl Handler<CloseAll> for Broker {
    type Result = usize;

    fn handle(&mut self, _: CloseAll, _: &mut Self::Context) -> usize {
        let close = CloseSession {
            code: crate::protocol::close::GOING_AWAY,
            reason: crate::protocol::close::REASON_SHUTDOWN,
        };
        let ids: Vec<SessionId> = self.members.keys().copied().collect();
        for id in &ids {
            let Some(member) = self.members.get(id) else {
                continue;
            };
            if member.close.try_send(close.clone()).is_err() {
                // Jammed or gone: it cannot take a close frame; end the socket.
                if let Some(conn) = member.conn {
                    conn.shutdown();
                }
            }
        }
        ids.len()
    }
}

/// Test and metrics hook: how many sessions the broker delivers to.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountMembers;

impl Handler<CountMembers> for Broker {
    type Result = usize;

    fn handle(&mut self, _: CountMembers, _: &mut Self::Context) -> usize {
        self.members.len()
    }
}
