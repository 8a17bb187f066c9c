//! The simulation actor: owns the [`SimState`], runs the tick clock, answers commands,
//! journals what changes the state, and publishes everything it produces to the broker
//! in order. It is also where every operator command is written to the audit log
//! (`crate::audit`), because every transport's commands arrive here.
//!
//! The tick never blocks on I/O. Publishing is a `try_send` into the broker's bounded
//! mailbox, journaling a `try_send` to the persistence writer thread. When either is
//! behind, messages wait here in order (the outbox, the journal backlog) and ticks are
//! deferred until they drain: the simulation slows down rather than dropping anything
//! or letting the world run ahead of its journal.

use super::{JournalEntry, SimError, SimState};
use crate::audit::{self, AuditEntry, AuditLog};
use crate::metrics::Metrics;
use crate::persistence::writer::{WriteRequest, Writer};
use crate::persistence::{SavedWorld, FORMAT};
use crate::ports::{CommandError, Publish, ReadSeries, RunCommand, SnapshotFor, TakeSnapshot};
use crate::protocol::{now_ts, CharacterId, Command, ErrorCode, Item, Reply, Snapshot};
use actix::prelude::*;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most messages the outbox holds before commands that produce items are refused with
/// 1004; ticks stop long before (as soon as the outbox is not empty).
pub const OUTBOX_LIMIT: usize = 4096;

/// Shutdown → simulation: write a snapshot now and answer when it is on disk.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), String>")]
pub struct SaveNow;

impl From<SimError> for CommandError {
    fn from(e: SimError) -> Self {
        CommandError {
            code: ErrorCode::InvalidMessage,
            message: e.to_string(),
        }
    }
}

/// Where the simulation keeps its journal and snapshots.
pub struct Persistence {
    pub writer: Writer<SimState>,
    /// Id of the journal being written (the last snapshot's).
    pub journal_id: u64,
    /// A snapshot every this many ticks (0: only on `save` and at shutdown).
    pub snapshot_interval_ticks: u64,
}

pub struct Simulation {
    state: SimState,
    broker: Recipient<Publish>,
    metrics: Arc<Metrics>,
    outbox: VecDeque<Publish>,
    retry: Option<SpawnHandle>,
    next_tick: Option<SpawnHandle>,
    deadline: Instant,
    debug_log: bool,
    persistence: Option<Persistence>,
    /// Journal entries waiting for room in the writer's queue, in order.
    journal_backlog: VecDeque<WriteRequest<SimState>>,
    ticks_since_snapshot: u64,
    audit: AuditLog,
    /// A sim node's tick deferral flag (`cluster::sim_node`): set while the cluster
    /// stream cannot take batches; ticks are deferred meanwhile, as when the broker is
    /// behind.
    defer_ticks: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// The retained past (`view_at`, `timeline`).
    timeline: super::timeline::Timeline,
    /// One row per retained tick (`GET /api/timeseries`).
    series: super::series::Series,
    /// A breakpoint that fired in the ticks being run (the breakpoints themselves are
    /// in the state): its `unbreak` and `pause` are journaled after those ticks.
    fired_breakpoint: Option<u64>,
}

impl Simulation {
    pub fn new(
        state: SimState,
        broker: Recipient<Publish>,
        metrics: Arc<Metrics>,
        persistence: Option<Persistence>,
        audit: AuditLog,
    ) -> Self {
        Simulation {
            broker,
            metrics,
            outbox: VecDeque::new(),
            retry: None,
            next_tick: None,
            deadline: Instant::now(),
            debug_log: false,
            persistence,
            journal_backlog: VecDeque::new(),
            ticks_since_snapshot: 0,
            timeline: super::timeline::Timeline::new(&state, 1440, 100),
            series: super::series::Series::new(&state.world, 1440),
            fired_breakpoint: None,
            state,
            audit,
            defer_ticks: None,
        }
    }

    /// Keeps `retain` ticks of the past with a checkpoint every `every` (`[sim]`).
    pub fn with_history(mut self, retain: u64, every: u64) -> Self {
        self.timeline = super::timeline::Timeline::new(&self.state, retain, every);
        self.series = super::series::Series::new(&self.state.world, retain);
        self
    }

    /// Defers ticks while `defer_ticks` is set (a sim node's stream publisher is behind).
    pub fn with_tick_deferral(mut self, defer_ticks: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.defer_ticks = Some(defer_ticks);
        self
    }

    fn ticks_deferred(&self) -> bool {
        let set = |flag: &Arc<std::sync::atomic::AtomicBool>| flag.load(Ordering::Acquire);
        self.defer_ticks.as_ref().is_some_and(set)
    }

    fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.state.tick_rate)
    }

    /// Schedules the next tick on a fixed-rate clock (no drift from tick duration).
    fn schedule_tick(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.next_tick.take() {
            ctx.cancel_future(h);
        }
        if self.state.paused {
            return;
        }
        let now = Instant::now();
        self.deadline += self.period();
        if self.deadline < now {
            // More than a period behind (a long step, a busy machine): do not burst.
            self.deadline = now;
        }
        let delay = self.deadline.saturating_duration_since(now);
        self.next_tick = Some(ctx.run_later(delay, |this, ctx| {
            this.next_tick = None;
            if !this.state.paused {
                this.drain_journal();
                if this.outbox.is_empty()
                    && this.journal_backlog.is_empty()
                    && !this.ticks_deferred()
                {
                    let (items, done) = this.advance(1);
                    this.publish(
                        ctx,
                        Publish::Items {
                            items,
                            end_of_tick: true,
                        },
                    );
                    this.after_ticks(done);
                } else {
                    this.metrics.ticks_deferred.inc();
                    this.drain(ctx);
                }
            }
            this.schedule_tick(ctx);
        }));
    }

    /// Runs up to `n` ticks and returns their items and how many ran: fewer when a
    /// breakpoint hits, which pauses the world at the end of that tick.
    fn advance(&mut self, n: u64) -> (Vec<Item>, u64) {
        let mut items = Vec::new();
        let mut done = 0;
        for _ in 0..n {
            done += 1;
            let started = Instant::now();
            self.state.world.step(now_ts(), &mut items);
            self.metrics
                .tick_duration
                .observe(started.elapsed().as_secs_f64());
            self.timeline
                .record(JournalEntry::Ticks { ticks: 1 }, &self.state);
            let census = self.state.world.census_full();
            self.series.record_with(&self.state.world, &census);
            if self.check_breakpoints(census, &mut items) {
                break;
            }
        }
        if self.debug_log {
            for item in &items {
                log::info!("sim: {}", serde_json::to_string(item).unwrap_or_default());
            }
        }
        self.metrics.tick.set(self.state.world.tick() as i64);
        self.metrics
            .characters
            .set(self.state.world.character_count() as i64);
        (items, done)
    }

    /// At the end of a tick: the first breakpoint whose condition holds is gone (an
    /// `unbreak`), the world pauses (a `pause`), both journaled after the tick by
    /// [`Simulation::after_ticks`], and `breakpoint_hit` joins the tick's items.
    fn check_breakpoints(&mut self, census: super::Census, items: &mut Vec<Item>) -> bool {
        if self.state.breakpoints.is_empty() {
            return false;
        }
        let probe = super::breakpoint::Probe::with_census(&self.state.world, census);
        let Some(hit) = self.state.breakpoints.first_holding(&probe) else {
            return false;
        };
        let (characters, tick) = (hit.characters, self.state.world.tick());
        let data = serde_json::json!({
            "breakpoint_id": hit.id,
            "when": hit.when,
            "tick": tick,
            "characters": characters,
        });
        let event = crate::protocol::EventNotification {
            event_type: "breakpoint_hit".into(),
            tick,
            data,
            event_id: None,
            characters,
        };
        let now = now_ts();
        items.push(Item::new(
            crate::protocol::ItemData::EventNotification(event),
            now,
        ));
        for command in hit_commands(hit.id) {
            if let Err(e) = self.state.apply(&command, now, &mut Vec::new()) {
                log::error!("breakpoint {}: {}: {e}", hit.id, command.name());
            }
        }
        self.fired_breakpoint = Some(hit.id);
        true
    }

    /// Journals what the breakpoint that fired did, after the ticks that led to it.
    fn journal_breakpoint_hit(&mut self) {
        let Some(id) = self.fired_breakpoint.take() else {
            return;
        };
        for command in hit_commands(id) {
            if let Some(entry) = JournalEntry::command(&command) {
                self.journal(entry);
            }
        }
    }

    /// Journals `n` ticks and takes a periodic snapshot when one is due.
    fn after_ticks(&mut self, n: u64) {
        self.journal(JournalEntry::Ticks { ticks: n });
        self.journal_breakpoint_hit();
        self.ticks_since_snapshot += n;
        let due = self.persistence.as_ref().is_some_and(|p| {
            p.snapshot_interval_ticks > 0 && self.ticks_since_snapshot >= p.snapshot_interval_ticks
        });
        if due {
            self.snapshot_to_disk(None);
        }
    }

    fn journal(&mut self, entry: JournalEntry) {
        // Ticks reach the timeline one at a time, from `advance`, so that a long `step`
        // gets its checkpoints too.
        if let JournalEntry::Command { cmd } = &entry {
            if let crate::sim::JournaledCommand::Reset { .. } = cmd {
                self.series.restart(&self.state.world);
            }
            self.timeline.record(entry.clone(), &self.state);
        }
        if self.persistence.is_some() {
            self.journal_backlog.push_back(WriteRequest::Entry(entry));
            self.drain_journal();
        }
    }

    fn drain_journal(&mut self) {
        let Some(p) = &self.persistence else {
            self.journal_backlog.clear();
            return;
        };
        while let Some(req) = self.journal_backlog.pop_front() {
            if let Err(req) = p.writer.try_send(req) {
                self.journal_backlog.push_front(req);
                return;
            }
        }
    }

    /// Queues a snapshot of the current state (serialized and written by the writer
    /// thread); `done` hears when it is on disk.
    fn snapshot_to_disk(&mut self, done: Option<crate::persistence::writer::SnapshotDone>) {
        let Some(p) = &mut self.persistence else {
            if let Some(done) = done {
                let _ = done.send(Err("persistence is not configured".into()));
            }
            return;
        };
        p.journal_id += 1;
        let saved = Box::new(SavedWorld {
            format: FORMAT,
            journal_id: p.journal_id,
            saved_at: now_ts(),
            state: self.state.clone(),
        });
        self.ticks_since_snapshot = 0;
        self.journal_backlog
            .push_back(WriteRequest::Snapshot { saved, done });
        self.drain_journal();
    }

    fn publish(&mut self, ctx: &mut Context<Self>, msg: Publish) {
        self.outbox.push_back(msg);
        self.drain(ctx);
    }

    /// Sends queued messages in order until the broker's mailbox is full.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        while let Some(msg) = self.outbox.pop_front() {
            match self.broker.try_send(msg) {
                Ok(()) => {}
                Err(SendError::Full(msg)) => {
                    self.outbox.push_front(msg);
                    if self.retry.is_none() {
                        self.retry = Some(ctx.run_later(Duration::from_millis(5), |this, ctx| {
                            this.retry = None;
                            this.drain(ctx);
                        }));
                    }
                    return;
                }
                Err(SendError::Closed(_)) => {
                    log::error!("broker is gone; dropping published items");
                    self.outbox.clear();
                    return;
                }
            }
        }
    }

    fn snapshot(&self, resync: bool) -> Snapshot {
        snapshot_of(&self.state, resync)
    }

    /// Runs a command (not `save`: see [`Simulation::save`]): answers it, publishes the
    /// items it made, then applies what it does to the tick clock.
    fn run(
        &mut self,
        command: Command,
        by: &str,
        ctx: &mut Context<Self>,
    ) -> Result<Reply, CommandError> {
        if self.outbox.len() >= OUTBOX_LIMIT {
            return Err(CommandError::server(
                "the broker is behind; try again shortly",
            ));
        }
        let mut items = Vec::new();
        let result = self.answer(&command, by, &mut items, ctx)?;
        // Before a reset's resync snapshot: the control item comes first.
        if !items.is_empty() {
            self.publish(
                ctx,
                Publish::Items {
                    items,
                    end_of_tick: false,
                },
            );
        }
        self.after_command(&command, ctx);
        Ok(Reply::new(result))
    }

    /// The answer to a command. A state-changing command adds its items (control item
    /// first) to `items`; `step` publishes its own, as it makes ticks.
    fn answer(
        &mut self,
        command: &Command,
        by: &str,
        items: &mut Vec<Item>,
        ctx: &mut Context<Self>,
    ) -> Result<Value, CommandError> {
        let now = now_ts();
        match command {
            Command::Inspect { character_id } => self.inspect(*character_id),
            Command::DebugLog { enabled } => {
                self.debug_log = *enabled;
                Ok(serde_json::json!({ "enabled": enabled }))
            }
            Command::Audit { limit } => {
                let entries = self.audit.recent(limit.unwrap_or(audit::DEFAULT_LIMIT));
                Ok(serde_json::json!({ "entries": entries }))
            }
            Command::ViewAt { tick } => self.view_at(*tick),
            Command::Rewind { tick } => self.rewind(command, *tick, by, items),
            Command::Breakpoints {} => {
                let breakpoints = self.state.breakpoints.iter();
                let list: Vec<Value> = breakpoints
                    .map(|b| serde_json::json!({ "breakpoint_id": b.id, "when": b.when }))
                    .collect();
                Ok(serde_json::json!({ "breakpoints": list }))
            }
            Command::Timeline {} => {
                let (oldest, newest) = self.timeline.range();
                Ok(serde_json::json!({ "oldest_tick": oldest, "newest_tick": newest }))
            }
            Command::Snapshot {} | Command::Metrics {} | Command::Save {} => Err(
                CommandError::server(format!("`{}` is not run by the simulation", command.name())),
            ),
            Command::Step { ticks } => Ok(self.step(command, *ticks, by, now, ctx)),
            state_changing => {
                let tick = self.state.world.tick();
                let value = self.state.apply(state_changing, now, items)?;
                items.splice(0..0, SimState::control_item(state_changing, by, tick, now));
                if let Some(entry) = JournalEntry::command(state_changing) {
                    self.journal(entry);
                }
                Ok(value)
            }
        }
    }

    /// `view_at`: the snapshot of the world at the end of `tick`, or 1001 naming the
    /// retained range. `seq` is 0: a view of the past is no position in the stream.
    fn view_at(&self, tick: u64) -> Result<Value, CommandError> {
        let state = self.timeline.view_at(tick).map_err(|e| CommandError {
            code: crate::protocol::ErrorCode::InvalidMessage,
            message: e.to_string(),
        })?;
        let snapshot = snapshot_of(&state, false);
        Ok(serde_json::to_value(&snapshot).unwrap_or(Value::Null))
    }

    /// `rewind`: the live world goes back to the end of `tick`, keeping the clock's
    /// settings (paused, tick rate) and the breakpoints as they are now (a breakpoint
    /// set after `tick` stays set; one that fired since stays gone). On disk the
    /// rewound world becomes the snapshot the journal continues from, so a restart
    /// restores this timeline.
    fn rewind(
        &mut self,
        command: &Command,
        tick: u64,
        by: &str,
        items: &mut Vec<Item>,
    ) -> Result<Value, CommandError> {
        let from_tick = self.state.world.tick();
        let mut state = self.timeline.rewind(tick).map_err(|e| CommandError {
            code: crate::protocol::ErrorCode::InvalidMessage,
            message: e.to_string(),
        })?;
        (state.paused, state.tick_rate) = (self.state.paused, self.state.tick_rate);
        // Breakpoints are the operator's, not the world's past: they stay as they are.
        state.breakpoints = std::mem::take(&mut self.state.breakpoints);
        self.state = state;
        self.series.truncate_after(tick);
        items.extend(SimState::control_item(command, by, from_tick, now_ts()));
        self.snapshot_to_disk(None);
        Ok(serde_json::json!({ "tick": tick, "from_tick": from_tick }))
    }

    /// `inspect`: the inspection, with the character also nested under `character`.
    fn inspect(&self, character_id: CharacterId) -> Result<Value, CommandError> {
        let inspection = self
            .state
            .world
            .inspect(character_id)
            .ok_or(SimError::UnknownCharacter(character_id))?;
        let mut value = serde_json::to_value(&inspection).unwrap_or(Value::Null);
        let character = serde_json::to_value(&inspection.character).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("character".into(), character);
        }
        Ok(value)
    }

    /// `step`: the control item, then `ticks` ticks, each published and journaled as
    /// the clock's own ticks are.
    fn step(
        &mut self,
        command: &Command,
        ticks: u64,
        by: &str,
        now: f64,
        ctx: &mut Context<Self>,
    ) -> Value {
        // The control item first: it is broadcast in order with what it caused.
        let tick = self.state.world.tick();
        let control = SimState::control_item(command, by, tick, now);
        self.publish(
            ctx,
            Publish::Items {
                items: control.into_iter().collect(),
                end_of_tick: false,
            },
        );
        let (stepped, done) = self.advance(ticks);
        self.publish(
            ctx,
            Publish::Items {
                items: stepped,
                end_of_tick: true,
            },
        );
        self.after_ticks(done);
        let w = &self.state.world;
        serde_json::json!({ "stepped": done, "tick": w.tick(), "paused": self.state.paused })
    }

    /// What a command that has been answered does to the tick clock, and after a reset
    /// the fresh snapshot for every client.
    fn after_command(&mut self, command: &Command, ctx: &mut Context<Self>) {
        match command {
            Command::Pause {} => {
                if let Some(h) = self.next_tick.take() {
                    ctx.cancel_future(h);
                }
            }
            Command::Resume {} | Command::SetSpeed { .. } => {
                self.deadline = Instant::now();
                self.schedule_tick(ctx);
            }
            Command::Reset { .. } | Command::Rewind { .. } => self.resync_everyone(ctx),
            _ => {}
        }
    }

    /// After a reset every client's picture of the world is stale: the metrics start
    /// over and everyone gets a fresh snapshot (through the broker, so its seq is right).
    fn resync_everyone(&mut self, ctx: &mut Context<Self>) {
        self.metrics.tick.set(self.state.world.tick() as i64);
        self.metrics
            .characters
            .set(self.state.world.character_count() as i64);
        let snapshot = Box::new(self.snapshot(true));
        self.publish(
            ctx,
            Publish::Snapshot {
                snapshot,
                to: SnapshotFor::Everyone,
            },
        );
    }

    /// `save`: a snapshot now; the reply waits until it is on disk.
    fn save(&mut self) -> ResponseFuture<Result<Value, CommandError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.snapshot_to_disk(Some(tx));
        let tick = self.state.world.tick();
        Box::pin(async move {
            match rx.await {
                Ok(Ok(path)) => Ok(serde_json::json!({
                    "path": path.display().to_string(),
                    "tick": tick,
                })),
                Ok(Err(e)) => Err(CommandError::server(format!("save failed: {e}"))),
                Err(_) => Err(CommandError::server("save failed: the writer stopped")),
            }
        })
    }
}

impl Actor for Simulation {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Commands come from every session; bound their queue (senders wait when full).
        ctx.set_mailbox_capacity(1024);
        self.metrics.tick.set(self.state.world.tick() as i64);
        self.metrics
            .characters
            .set(self.state.world.character_count() as i64);
        self.deadline = Instant::now();
        self.schedule_tick(ctx);
    }
}

impl Handler<RunCommand> for Simulation {
    type Result = ResponseFuture<Result<Reply, CommandError>>;

    fn handle(&mut self, msg: RunCommand, ctx: &mut Self::Context) -> Self::Result {
        let entry = audit::audited(&msg.command)
            .then(|| AuditEntry::begin(&msg.command, &msg.by, self.state.world.tick(), now_ts()));
        if let Command::Save {} = msg.command {
            let (saved, log) = (self.save(), self.audit.clone());
            return Box::pin(async move {
                let result = saved.await.map(Reply::new);
                record(&log, entry, &result);
                result
            });
        }
        let name = msg.command.name();
        let result = self.run(msg.command, &msg.by, ctx);
        if let Err(e) = &result {
            log::debug!("command {name} refused: {e}");
        }
        record(&self.audit, entry, &result);
        Box::pin(async move { result })
    }
}

/// The `snapshot` data of `state` (seq 0: the broker stamps it on the way out).
fn snapshot_of(state: &SimState, resync: bool) -> Snapshot {
    let world = &state.world;
    Snapshot {
        tick: world.tick(),
        clock: super::rules::clock_at(world.tick()),
        paused: state.paused,
        tick_rate: state.tick_rate,
        seed: world.seed(),
        state_hash: format!("{:016x}", world.state_hash()),
        characters: world.characters(),
        locations: world.locations(),
        seq: 0,
        resync,
    }
}

/// What a breakpoint that fired does: it goes away, and the world pauses.
fn hit_commands(id: u64) -> [Command; 2] {
    [Command::Unbreak { breakpoint_id: id }, Command::Pause {}]
}

/// Writes a command's audit entry (if it has one) with its outcome.
fn record<T>(log: &AuditLog, entry: Option<AuditEntry>, result: &Result<T, CommandError>) {
    if let Some(entry) = entry {
        let outcome = result.as_ref().map(|_| ()).map_err(|e| e.message.as_str());
        log.record(entry.finish(outcome));
    }
}

impl Handler<SaveNow> for Simulation {
    type Result = ResponseFuture<Result<(), String>>;

    /// Also waits for the audit log's last entries to be written.
    fn handle(&mut self, _: SaveNow, _: &mut Self::Context) -> Self::Result {
        let reply = self.save();
        let audit = self.audit.synced();
        Box::pin(async move {
            let saved = reply.await.map(|_| ()).map_err(|e| e.message);
            audit.await;
            saved
        })
    }
}

impl Handler<TakeSnapshot> for Simulation {
    type Result = ();

    fn handle(&mut self, msg: TakeSnapshot, ctx: &mut Self::Context) {
        let snapshot = Box::new(self.snapshot(msg.resync));
        self.publish(
            ctx,
            Publish::Snapshot {
                snapshot,
                to: SnapshotFor::Request(msg.ticket),
            },
        );
    }
}

/// A sim node's responder → simulation: the retained rows with `from <= tick <= to`,
/// as they are (a gateway renders them as this node would).
#[derive(Message, Debug)]
#[rtype(result = "Vec<super::series::Row>")]
pub struct ReadRows {
    pub from: u64,
    pub to: u64,
}

impl Handler<ReadRows> for Simulation {
    type Result = MessageResult<ReadRows>;

    fn handle(&mut self, msg: ReadRows, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.series.rows(msg.from, msg.to))
    }
}

impl Handler<ReadSeries> for Simulation {
    type Result = Result<String, String>;

    fn handle(&mut self, msg: ReadSeries, _: &mut Self::Context) -> Self::Result {
        Ok(super::series::render(
            &self.series.rows(msg.from, msg.to),
            msg.format,
        ))
    }
}
