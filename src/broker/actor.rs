//! The broker actor: batching clock, history, fan-out, and eviction of jammed sessions.
//!
//! Mailbox: bounded at [`MAILBOX_CAPACITY`]. The simulation sends with `try_send` and,
//! when the broker is behind, keeps its items in its own outbox and defers ticks (so the
//! producer slows down instead of items being lost); sessions' `Leave` uses `do_send`, bounded by one per session, and
//! hubs' `Overflowed` too (each session is reported once).
//!
//! Every frame for a session goes through the hub of its worker thread (one message per
//! hub per delivery, see [`super::hub`]) into the session's bounded outbox
//! (`session.outbound_queue` frames). Slow-consumer policy, the same for every route
//! (live batches, snapshots, catch-ups, replies): a session whose outbox (or hub
//! mailbox) is full is evicted (its socket shut down, its slot freed); it may reconnect
//! and `resume` from history. Nobody is ever buffered without bound, and one slow client
//! never delays the others. Who is joined and where each stands is the [`Roster`]'s
//! (plain, unit-tested); this actor moves messages, keeps time and evicts.

use super::batcher::{Batch, Batcher};
use super::fanout::FanOut;
use super::history::History;
use super::hub::{Backlog, HubId, HubRoute, Overflowed};
use super::mailroom::{Mailroom, Posted, RETRY_EVERY};
use super::pacing::{Load, Pace, PacingTunables, StaggerGovernor};
use super::relay::{
    self, BatchSink, Ingest, IngestBatch, Outflow, RaiseSeq, ResyncEveryone, SeqSource,
};
use super::roster::{Books, Outlet, Roster, RESUME_WINDOW};
use super::stagger::{Undelivered, SLICES};
use super::tickets::Tickets;
use super::{
    CloseAll, CloseSession, Deliver, JoinSession, Leave, RequestSnapshot, ResumeFrom, SessionId,
    SetTopics, SnapshotRoute,
};
use crate::clock;
use crate::conn::ConnHandle;
use crate::metrics::Metrics;
use crate::ports::{Publish, SnapshotFor, SnapshotUnavailable, TakeSnapshot};
use crate::protocol::{Envelope, Reply, Snapshot, SnapshotEncoding};
use actix::prelude::*;
use bytestring::ByteString;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Broker mailbox bound: about 100 s of ticks at 10 Hz plus control messages. When full,
/// the simulation keeps its items in its outbox and defers ticks (see `sim::actor`).
pub(crate) const MAILBOX_CAPACITY: usize = 1024;

/// How long a resync (one member, or everyone) waits before its snapshot is asked for
/// again after the world could not give it.
const RESYNC_RETRY: Duration = Duration::from_secs(1);

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
    /// Who numbers batches: this broker, or (a gateway) the cluster stream.
    pub seq_source: SeqSource,
    /// Stagger deliveries while they keep the worker threads busy for most of a tick
    /// (`pacing`); `false`: every tick goes to everyone at its end.
    pub stagger_when_behind: bool,
}

/// How to reach a joined session outside its frames, watch it, and evict it.
struct Contact {
    close: Recipient<CloseSession>,
    /// How its snapshots are encoded.
    encoding: SnapshotEncoding,
    conn: Option<ConnHandle>,
    last_seen: Arc<AtomicU64>,
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
    /// Who is joined, on which topics, and where each stands (plain rules).
    roster: Roster,
    contacts: BTreeMap<SessionId, Contact>,
    /// Scratch outcome of the last fan-out, kept so its vectors are reused.
    fan_out: FanOut,
    /// Every frame for a hub goes through here; they wait here while the hub's mailbox
    /// is full (bounded, see `mailroom`).
    mailroom: Mailroom,
    /// Batches issued (numbered, in the history) but not yet delivered to everyone:
    /// delivery waits for the end of the tick (or `max_batch_wait`), so a tick cut into
    /// several batches reaches each connection as one frame; while staggered, some
    /// slices of the members wait a tick or two more (`stagger`). Bounded by those
    /// ticks' items, or by `max_batch_wait` for commands' items.
    undelivered: Undelivered,
    /// The last seq handed to the cluster stream (`sink`), so a staggered tick goes
    /// there once.
    handed_on: u64,
    flush_timer: Option<SpawnHandle>,
    /// Whether a tick's delivery goes out at its end to everyone or staggered.
    governor: StaggerGovernor,
    /// How far behind each hub is, read at the end of every tick (one entry per worker
    /// thread that ever hosted a session: a handful).
    backlogs: BTreeMap<HubId, Backlog>,
    /// [`clock::now_us`] of the last delivery and of the last end of tick, for the governor.
    delivered_at: Option<u64>,
    tick_ended_at: Option<u64>,
    /// The world, asked for snapshots by ticket (`tickets` keeps where each goes).
    sim: Recipient<TakeSnapshot>,
    tickets: Tickets,
    metrics: Arc<Metrics>,
    /// Latest seq, readable by sessions for `welcome` without a round trip.
    latest_seq: Arc<AtomicU64>,
    /// Keeps a high-water mark of `seq` on disk so it rises across restarts.
    seq_mark: Option<crate::persistence::SeqMark>,
    /// The last join snapshot's identity and frame, per encoding (see `join_frame`).
    join_cache: [Option<(SnapshotKey, ByteString)>; 2],
    /// This actor's address for hubs' overflow reports (set when it starts).
    overflowed: Option<Recipient<Overflowed>>,
    /// A sim node's stream publisher: every delivered batch goes here too.
    sink: Option<BatchSink>,
    /// A gateway's last ingested seq (`None` before the first).
    ingested: Option<u64>,
    /// A gateway's snapshots whose seq it has not delivered yet, oldest first. Bounded by
    /// the snapshot requests in flight (joins, resyncs, `snapshot` commands), each of
    /// which a session waits for; routed as soon as delivery reaches their seq.
    parked: std::collections::VecDeque<(Snapshot, SnapshotRoute)>,
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
        sim: Recipient<TakeSnapshot>,
        metrics: Arc<Metrics>,
        latest_seq: Arc<AtomicU64>,
    ) -> Self {
        latest_seq.store(last_seq, Ordering::Release);
        let governor =
            StaggerGovernor::new(settings.stagger_when_behind, PacingTunables::default());
        Broker {
            batcher: Batcher::new(settings.max_batch_size, last_seq),
            history: History::new(settings.history_size, last_seq),
            settings,
            roster: Roster::new(),
            contacts: BTreeMap::new(),
            fan_out: FanOut::default(),
            mailroom: Mailroom::default(),
            undelivered: Undelivered::new(last_seq),
            handed_on: last_seq,
            flush_timer: None,
            governor,
            backlogs: BTreeMap::new(),
            delivered_at: None,
            tick_ended_at: None,
            sim,
            tickets: Tickets::default(),
            metrics,
            latest_seq,
            seq_mark: None,
            join_cache: [None, None],
            overflowed: None,
            sink: None,
            ingested: None,
            parked: std::collections::VecDeque::new(),
        }
    }

    /// A sim node: hands every delivered batch to `sink` as well (see [`super::relay`]).
    pub fn with_sink(mut self, sink: BatchSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Persists a `seq` high-water mark as batches are issued.
    pub fn with_seq_mark(mut self, mark: crate::persistence::SeqMark) -> Self {
        self.seq_mark = Some(mark);
        self
    }

    /// The end of a tick: its batches are issued and delivered now, to everyone or,
    /// while the hubs are behind, staggered to the slices that waited (see `pacing`;
    /// the completion timer, `PacingTunables::complete_after`, covers a next tick that
    /// does not come).
    fn end_tick(&mut self, ctx: &mut Context<Self>) {
        self.cut();
        let now = clock::now_us();
        let tick = self
            .tick_ended_at
            .replace(now)
            .map(|t| now.saturating_sub(t));
        let load = Load {
            busy_us: self.last_delivery_busy(now),
            tick_us: tick,
            age_us: self
                .delivered_at
                .map_or(u64::MAX, |at| now.saturating_sub(at)),
            woken: self.backlogs.values().map(Backlog::woken).sum(),
            members: self.roster.len(),
        };
        let pace = self.governor.end_of_tick(load);
        log::trace!(
            "end of tick: {pace:?}, {} undelivered",
            self.undelivered.batches().len()
        );
        match pace {
            Pace::Stagger { slices } if !self.undelivered.is_empty() => {
                self.metrics.deliveries_staggered.inc();
                self.deliver_to(slices);
                self.flush_after(self.governor.tunables().complete_after, ctx);
            }
            _ => self.flush(ctx),
        }
    }

    /// How long the last delivery kept the busiest hub busy, as of `now` (µs).
    fn last_delivery_busy(&self, now: u64) -> u64 {
        let Some(since) = self.delivered_at else {
            return 0;
        };
        let busy = self.backlogs.values().map(|b| b.busy_since(since, now));
        let busy = busy.max().unwrap_or(0);
        if log::log_enabled!(log::Level::Trace) {
            let woken: Vec<usize> = self.backlogs.values().map(Backlog::woken).collect();
            log::trace!("end of tick: last delivery busy {busy} µs, woken {woken:?}");
        }
        busy
    }

    /// (Re)arms the flush timer: what is pending and undelivered goes out after `wait`.
    fn flush_after(&mut self, wait: Duration, ctx: &mut Context<Self>) {
        if let Some(handle) = self.flush_timer.take() {
            ctx.cancel_future(handle);
        }
        self.flush_timer = Some(ctx.run_later(wait, |this, ctx| {
            this.flush_timer = None;
            this.flush(ctx);
        }));
    }

    /// Cuts what is pending into a batch and delivers everything undelivered.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.flush_timer.take() {
            ctx.cancel_future(handle);
        }
        self.cut();
        self.deliver();
    }

    /// Cuts what is pending into a batch and issues it (delivery comes later).
    fn cut(&mut self) {
        if let Some(batch) = self.batcher.flush() {
            self.issue(batch);
        }
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

    /// Fans the undelivered batches out to every live member, as one frame per member
    /// (while staggered, each slice gets what it lacks). Also the fence before what must
    /// reach everyone in order with the stream (a reset's snapshot, a topic change, a
    /// gateway's resync); joins, resumes and snapshot replies need none (see `Books`).
    fn deliver(&mut self) {
        if self.undelivered.is_empty() {
            return;
        }
        self.governor.delivered();
        self.deliver_to(SLICES);
    }

    /// One delivery, to every slice (`slices` = [`SLICES`]) or staggered, to the `slices`
    /// that waited longest (see `stagger`).
    fn deliver_to(&mut self, slices: usize) {
        self.delivered_at = Some(clock::now_us());
        self.hand_on();
        let mut out = std::mem::take(&mut self.fan_out);
        out.clear();
        let roster = &mut self.roster;
        self.undelivered.deliver(slices, |due, batches| {
            roster.fan_out_to(batches, due, &mut out)
        });
        self.dispatch(out);
    }

    /// Sends a fan-out's frames to the hubs and evicts whom it could not reach.
    fn dispatch(&mut self, mut out: FanOut) {
        if let Some(overflowed) = &self.overflowed {
            out.dispatch(&mut self.mailroom, overflowed);
        }
        self.metrics.messages_sent.inc_by(out.sent);
        for &id in &out.full {
            self.remove(id, Some(Eviction::Slow));
        }
        for &id in &out.closed {
            self.remove(id, None);
        }
        self.fan_out = out;
    }

    /// A sim node: the batches about to be delivered go to the stream publisher, the
    /// last one marked as the end of this delivery.
    fn hand_on(&mut self) {
        let Some(sink) = &self.sink else {
            return;
        };
        let batches = self.undelivered.batches();
        let fresh = &batches[batches.partition_point(|b| b.seq <= self.handed_on)..];
        self.handed_on = fresh.last().map_or(self.handed_on, |b| b.seq);
        let last = fresh.len().saturating_sub(1);
        for (i, batch) in fresh.iter().enumerate() {
            let flow = Outflow {
                batch: Arc::clone(batch),
                end_of_delivery: i == last,
            };
            if let Err(e) = sink.try_send(flow) {
                self.metrics.cluster_unpublished.inc();
                log::error!("batch {} not handed to the cluster stream: {e}", batch.seq);
            }
        }
    }

    /// Removes a member; with a reason, also shuts its socket down so that a frozen
    /// session (actix-web#2441) ends and frees its pool slot.
    fn remove(&mut self, id: SessionId, why: Option<Eviction>) {
        self.roster.remove(id);
        let Some(contact) = self.contacts.remove(&id) else {
            return;
        };
        if let Some(why) = why {
            let shut = contact.conn.is_some_and(|c| c.shutdown());
            log::info!(
                "session {id} evicted ({}); socket shut down: {shut}",
                why.label()
            );
            // A session that ended itself first (its own timeout) has counted its end.
            super::last_seen::count_eviction(&contact.last_seen, &self.metrics, why.label());
        }
    }

    /// Runs a roster step with this broker as its [`Outlet`], then evicts the members
    /// whose frames could not be queued.
    fn with_roster<R>(&mut self, step: impl FnOnce(&mut Roster, Books, &mut Hands) -> R) -> R {
        let mut hands = Hands {
            overflowed: self.overflowed.as_ref(),
            mailroom: &mut self.mailroom,
            sim: &self.sim,
            tickets: &mut self.tickets,
            metrics: &self.metrics,
            failed: Vec::new(),
        };
        let books = Books {
            history: &self.history,
            sent: &self.undelivered,
        };
        let result = step(&mut self.roster, books, &mut hands);
        for (id, why) in hands.failed {
            self.remove(id, why);
        }
        result
    }

    fn join(&mut self, join: JoinSession, frame: ByteString, seq: u64, ctx: &mut Context<Self>) {
        let JoinSession {
            session,
            route,
            close,
            conn,
            last_seen,
            topics,
            encoding,
        } = join;
        let contact = Contact {
            close,
            encoding,
            conn,
            last_seen,
        };
        self.contacts.insert(session, contact);
        self.backlogs
            .entry(route.id)
            .or_insert_with(|| route.backlog.clone());
        let now = tokio::time::Instant::now();
        self.with_roster(|r, h, out| r.join(session, route, topics, (frame, seq), now, h, out));
        ctx.run_later(RESUME_WINDOW, |this, _| this.end_resume_windows());
    }

    /// Ends the resume windows that are due: those members catch up and go live.
    fn end_resume_windows(&mut self) {
        let now = tokio::time::Instant::now();
        self.with_roster(|r, h, out| r.end_resume_windows(now, h, out));
    }

    fn send_snapshot(&mut self, id: SessionId, frames: Vec<Deliver>, seq: u64) {
        self.with_roster(|r, h, out| r.send_snapshot(id, frames, seq, h, out));
    }

    /// The join snapshot, serialized once per world state: clients joining in a burst
    /// (a reconnect storm, a load test) share one encoding instead of one each. The
    /// `timestamp` is that of the first encoding, at most the same world state old.
    fn join_frame(&mut self, snapshot: &Snapshot, encoding: SnapshotEncoding) -> ByteString {
        let key = SnapshotKey {
            seq: snapshot.seq,
            tick: snapshot.tick,
            paused: snapshot.paused,
            tick_rate_bits: snapshot.tick_rate.to_bits(),
            state_hash: snapshot.state_hash.clone(),
        };
        let slot = &mut self.join_cache[encoding as usize];
        if let Some((cached, frame)) = slot {
            if *cached == key {
                return frame.clone();
            }
        }
        let frame = ByteString::from(snapshot.to_frame(encoding, None));
        *slot = Some((key, frame.clone()));
        frame
    }

    /// How `session` wants its snapshots (objects for one that is not joined).
    fn encoding_of(&self, session: SessionId) -> SnapshotEncoding {
        self.contacts
            .get(&session)
            .map_or(SnapshotEncoding::Objects, |c| c.encoding)
    }

    fn route_snapshot(
        &mut self,
        mut snapshot: Snapshot,
        route: SnapshotRoute,
        ctx: &mut Context<Self>,
    ) {
        let seq = match self.settings.seq_source {
            SeqSource::Local => self.batcher.last_seq(),
            SeqSource::Stream => snapshot.seq,
        };
        snapshot.seq = seq;
        match route {
            SnapshotRoute::Join(join) => {
                let frame = self.join_frame(&snapshot, join.encoding);
                self.join(join, frame, seq, ctx);
            }
            SnapshotRoute::Reply { session, id } => {
                self.with_roster(|r, h, out| r.bring_up_to_date(session, h, out));
                let encoding = self.encoding_of(session);
                let reply = Reply::new(snapshot.to_value(encoding)).to_json(id.as_ref());
                let snap = snapshot.to_frame(encoding, id.as_ref());
                let frames = [(reply, None), (snap, Some(seq))]
                    .map(|(frame, seq)| Deliver {
                        frame: frame.into(),
                        seq,
                    })
                    .to_vec();
                self.send_snapshot(session, frames, seq);
            }
            SnapshotRoute::Resync { session } => {
                snapshot.resync = true;
                let frame = snapshot.to_frame(self.encoding_of(session), None).into();
                let frames = vec![Deliver {
                    frame,
                    seq: Some(seq),
                }];
                self.send_snapshot(session, frames, seq);
            }
            SnapshotRoute::Everyone => {
                // Everyone gets what came before the snapshot (the `control` item of the
                // reset or rewind among it) first.
                self.deliver();
                snapshot.resync = true;
                let frames = [SnapshotEncoding::Objects, SnapshotEncoding::Compact]
                    .map(|e| ByteString::from(snapshot.to_frame(e, None)));
                for id in self.roster.ids() {
                    // A member still in its resume window gets what came since first (the
                    // `control` item of the reset or rewind among it), then the snapshot.
                    self.with_roster(|r, h, out| r.go_live(id, h, out));
                    let frame = frames[self.encoding_of(id) as usize].clone();
                    let frames = vec![Deliver {
                        frame,
                        seq: Some(seq),
                    }];
                    self.send_snapshot(id, frames, seq);
                }
            }
            SnapshotRoute::Http { reply } => {
                let _ = reply.send(Envelope::new("snapshot", &snapshot).to_json());
            }
        }
    }

    /// Offers hubs the frames their full mailboxes did not take (a no-op when none).
    fn retry_waiting(&mut self) {
        let Some(overflowed) = &self.overflowed else {
            return;
        };
        if self.mailroom.is_empty() {
            return;
        }
        for posted in self.mailroom.retry(overflowed) {
            let (ids, why) = match posted {
                Posted::Sent | Posted::Waiting => continue,
                Posted::Closed(ids) => (ids, None),
                Posted::Jammed(ids) => (ids, Some(Eviction::Slow)),
            };
            for id in ids {
                self.remove(id, why);
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
            .contacts
            .iter()
            .filter(|(_, m)| super::last_seen::silent_for(&m.last_seen, now) > limit)
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
        ctx.run_interval(RETRY_EVERY, |this, _| this.retry_waiting());
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
                    self.end_tick(ctx);
                } else if waiting && self.flush_timer.is_none() {
                    self.flush_after(self.settings.max_batch_wait, ctx);
                }
            }
            Publish::Snapshot { snapshot, to } => {
                let Some(route) = self.route_for(to) else {
                    return;
                };
                if self.settings.seq_source == SeqSource::Stream {
                    return self.park(*snapshot, route, ctx);
                }
                // Items published before this snapshot are reflected in it: issue them so
                // that the snapshot's seq covers them. Their delivery keeps its time.
                self.cut();
                self.route_snapshot(*snapshot, route, ctx);
            }
        }
    }
}

impl Broker {
    /// A gateway's snapshot: routed once delivery has reached its seq, parked until then.
    fn park(&mut self, snapshot: Snapshot, route: SnapshotRoute, ctx: &mut Context<Self>) {
        self.parked.push_back((snapshot, route));
        self.unpark(ctx);
    }

    /// Routes the parked snapshots whose seq delivery has reached.
    fn unpark(&mut self, ctx: &mut Context<Self>) {
        let delivered = self.undelivered.everyone_has();
        while self.parked.front().is_some_and(|(s, _)| s.seq <= delivered) {
            if let Some((snapshot, route)) = self.parked.pop_front() {
                self.route_snapshot(snapshot, route, ctx);
            }
        }
    }
}

impl Handler<IngestBatch> for Broker {
    type Result = ();

    fn handle(&mut self, msg: IngestBatch, ctx: &mut Self::Context) {
        let seq = msg.batch.seq;
        match relay::classify(self.ingested, seq) {
            Ingest::Duplicate => return,
            Ingest::Next => {}
            Ingest::Gap { expected } => {
                log::warn!(
                    "stream gap: batch {seq} after {} (expected {expected}); resyncing everyone",
                    expected - 1
                );
                self.deliver();
                self.resync_everyone();
            }
        }
        self.ingested = Some(seq);
        self.batcher.adopt(seq);
        self.issue(msg.batch);
        if msg.end_of_delivery {
            self.deliver();
            self.unpark(ctx);
        }
    }
}

impl Broker {
    /// Takes every member out of live delivery until one resync snapshot for everyone
    /// arrives.
    fn resync_everyone(&mut self) {
        self.metrics.cluster_resyncs.inc();
        self.roster.all_await_resync();
        if let Err(why) = self.ask_world_now(SnapshotRoute::Everyone) {
            log::error!("resync snapshot not requested: {why}");
        }
    }
}

impl Handler<RaiseSeq> for Broker {
    type Result = ();

    fn handle(&mut self, msg: RaiseSeq, ctx: &mut Self::Context) {
        self.flush(ctx);
        let last = self.batcher.last_seq();
        if last <= msg.above {
            log::info!(
                "cluster: the stream holds batches up to {}; continuing at {}",
                msg.above,
                msg.above + 2
            );
            self.batcher.adopt(msg.above + 1);
        }
    }
}

impl Handler<ResyncEveryone> for Broker {
    type Result = ();

    fn handle(&mut self, _: ResyncEveryone, _: &mut Self::Context) {
        self.deliver();
        self.resync_everyone();
    }
}

impl Handler<SetTopics> for Broker {
    type Result = ();

    /// New topics apply from the next batch issued: what was issued before is
    /// delivered under the old ones first, so a range spanning the change holds, for
    /// each batch, the items on the topics in force when it was issued.
    fn handle(&mut self, msg: SetTopics, _: &mut Self::Context) {
        if self.roster.contains(msg.session) {
            self.deliver();
        }
        self.roster.set_topics(msg.session, msg.topics);
    }
}

impl Handler<ResumeFrom> for Broker {
    type Result = ();

    fn handle(&mut self, msg: ResumeFrom, _: &mut Self::Context) {
        let ResumeFrom { session, last_seq } = msg;
        self.with_roster(|r, h, out| r.resume(session, last_seq, h, out));
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
        for contact in self.contacts.values() {
            if contact.close.try_send(close.clone()).is_err() {
                // Jammed or gone: it cannot take a close frame; end the socket.
                if let Some(conn) = &contact.conn {
                    conn.shutdown();
                }
            }
        }
        self.contacts.len()
    }
}

/// Test hook: how many sessions the broker delivers to.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountMembers;

#[cfg(test)]
impl Handler<CountMembers> for Broker {
    type Result = usize;

    fn handle(&mut self, _: CountMembers, _: &mut Self::Context) -> usize {
        self.roster.len()
    }
}

/// The broker's side of the roster's effects: frames go to hubs (one-frame messages),
/// resyncs to the simulation; what fails is evicted after the step.
struct Hands<'a> {
    overflowed: Option<&'a Recipient<Overflowed>>,
    mailroom: &'a mut Mailroom,
    sim: &'a Recipient<TakeSnapshot>,
    tickets: &'a mut Tickets,
    metrics: &'a Metrics,
    failed: Vec<(SessionId, Option<Eviction>)>,
}

impl Outlet for Hands<'_> {
    fn send(&mut self, route: &HubRoute, session: SessionId, frame: Deliver) -> bool {
        let Some(overflowed) = self.overflowed else {
            return false;
        };
        let failed = match self
            .mailroom
            .post(route, vec![(session, frame)], overflowed)
        {
            Posted::Sent | Posted::Waiting => {
                self.metrics.messages_sent.inc();
                return true;
            }
            Posted::Closed(ids) => (ids, None),
            Posted::Jammed(ids) => (ids, Some(Eviction::Slow)),
        };
        let (ids, why) = failed;
        self.failed.extend(ids.into_iter().map(|id| (id, why)));
        // Whether this session's frame is on its way (waiting or jammed frames of other
        // sessions may have failed with it).
        !self.failed.iter().any(|(id, _)| *id == session)
    }

    fn request_resync(&mut self, session: SessionId) -> bool {
        let route = SnapshotRoute::Resync { session };
        match ask_now(self.sim, self.tickets, route) {
            Ok(()) => true,
            Err(why) => {
                log::warn!("resync for session {session} not requested: {why}");
                false
            }
        }
    }
}

/// Asks the world for `route`'s snapshot without waiting: a full or closed mailbox (or
/// too many waiting) is an error, and the route is forgotten.
fn ask_now(
    sim: &Recipient<TakeSnapshot>,
    tickets: &mut Tickets,
    route: SnapshotRoute,
) -> Result<(), String> {
    let take = tickets
        .issue(route)
        .map_err(|_| "too many snapshot requests waiting".to_owned())?;
    sim.try_send(take).map_err(|e| {
        tickets.take(take.ticket);
        e.to_string()
    })
}

impl Broker {
    /// The route a published snapshot goes along (`None`: nobody waits for it any more).
    fn route_for(&mut self, to: SnapshotFor) -> Option<SnapshotRoute> {
        match to {
            SnapshotFor::Everyone => Some(SnapshotRoute::Everyone),
            SnapshotFor::Request(ticket) => {
                let route = self.tickets.take(ticket);
                if route.is_none() {
                    log::warn!("snapshot for unknown ticket {ticket} dropped");
                }
                route
            }
        }
    }

    /// [`ask_now`] with this broker's world and tickets.
    fn ask_world_now(&mut self, route: SnapshotRoute) -> Result<(), String> {
        ask_now(&self.sim, &mut self.tickets, route)
    }

    /// Asks the world for `route`'s snapshot; a full mailbox is waited on (as sessions
    /// used to wait for the simulation's), a closed one fails the route.
    fn ask_world(&mut self, route: SnapshotRoute, ctx: &mut Context<Self>) {
        let take = match self.tickets.issue(route) {
            Ok(take) => take,
            Err(route) => {
                return self.fail_route(*route, "too many snapshot requests waiting", ctx)
            }
        };
        match self.sim.try_send(take) {
            Ok(()) => {}
            Err(SendError::Full(take)) => {
                let sent = self.sim.send(take);
                ctx.spawn(sent.into_actor(self).map(move |res, act, ctx| {
                    if let Err(e) = res {
                        act.fail_ticket(take.ticket, &e.to_string(), ctx);
                    }
                }));
            }
            Err(SendError::Closed(take)) => {
                self.fail_ticket(take.ticket, "the simulation is gone", ctx)
            }
        }
    }

    fn fail_ticket(&mut self, ticket: u64, why: &str, ctx: &mut Context<Self>) {
        if let Some(route) = self.tickets.take(ticket) {
            self.fail_route(route, why, ctx);
        }
    }

    /// No snapshot: a join is closed (try again), a `snapshot` command gets 1004, a
    /// resync is asked for again shortly (its members stay held), HTTP gets a 503 (its
    /// answer is dropped).
    fn fail_route(&mut self, route: SnapshotRoute, why: &str, ctx: &mut Context<Self>) {
        log::warn!("no snapshot from the simulation: {why}");
        match route {
            SnapshotRoute::Join(join) => join.close.do_send(CloseSession {
                code: crate::protocol::close::TRY_AGAIN,
                reason: "Simulation unavailable",
            }),
            SnapshotRoute::Reply { session, id } => {
                self.reply_unavailable(session, id, format!("simulation unavailable: {why}"))
            }
            route @ (SnapshotRoute::Resync { .. } | SnapshotRoute::Everyone) => {
                ctx.run_later(RESYNC_RETRY, move |act, ctx| act.ask_world(route, ctx));
            }
            SnapshotRoute::Http { .. } => {}
        }
    }

    /// A `snapshot` command that cannot be answered: error 1004 with its `id`.
    fn reply_unavailable(
        &mut self,
        session: SessionId,
        id: Option<serde_json::Value>,
        message: String,
    ) {
        let error = crate::protocol::ErrorData {
            code: crate::protocol::ErrorCode::ServerError.as_u16(),
            message,
        };
        self.metrics.error(error.code);
        let frame = Envelope::new("error", error).with_id(id.as_ref()).to_json();
        self.with_roster(|r, h, out| {
            r.go_live(session, h, out);
            r.send_own(session, frame.into(), out);
        });
    }
}

impl Handler<RequestSnapshot> for Broker {
    type Result = ();

    fn handle(&mut self, msg: RequestSnapshot, ctx: &mut Self::Context) {
        self.ask_world(msg.route, ctx);
    }
}

impl Handler<SnapshotUnavailable> for Broker {
    type Result = ();

    fn handle(&mut self, msg: SnapshotUnavailable, ctx: &mut Self::Context) {
        self.fail_ticket(msg.ticket, &msg.why, ctx);
    }
}

#[cfg(test)]
mod tests;
