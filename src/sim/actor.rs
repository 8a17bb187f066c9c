//! The simulation actor: owns the [`World`], runs the tick clock, answers commands, and
//! publishes everything it produces to the broker in order.
//!
//! The tick never blocks on I/O: publishing is a `try_send` into the broker's bounded
//! mailbox. When the broker is behind, messages wait in this actor's [`Outbox`] (in
//! order) and the tick clock skips ticks until the outbox drains: the simulation slows
//! down rather than dropping anything.

use super::{SimError, World};
use crate::broker::{Publish, RequestSnapshot, SnapshotRoute};
use crate::metrics::Metrics;
use crate::protocol::{now_ts, Command, ErrorCode, Item, Snapshot};
use actix::prelude::*;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most messages the outbox holds before commands that produce items are refused with
/// 1004; ticks stop long before (as soon as the outbox is not empty).
pub const OUTBOX_LIMIT: usize = 4096;

/// Session/HTTP → simulation: run one command that is not `snapshot` or `metrics`
/// (those are served without the world's lock-step: see `session::actor`).
#[derive(Message, Debug)]
#[rtype(result = "Result<Value, CommandError>")]
pub struct RunCommand {
    pub command: Command,
}

/// A command the simulation refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    pub code: ErrorCode,
    pub message: String,
}

impl From<SimError> for CommandError {
    fn from(e: SimError) -> Self {
        CommandError {
            code: ErrorCode::InvalidMessage,
            message: e.to_string(),
        }
    }
}

/// Persistence hook for `save`: writes the snapshot somewhere durable.
pub trait Saver: Send {
    fn save(&self, snapshot: &Snapshot) -> Result<Value, String>;
}

/// Tunables from `[sim]`.
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub seed: u64,
    pub characters: usize,
    pub tick_rate: f64,
}

/// Ordered messages waiting for room in the broker's mailbox.
#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<Publish>,
}

pub struct Simulation {
    world: World,
    settings: SimSettings,
    paused: bool,
    tick_rate: f64,
    broker: Recipient<Publish>,
    metrics: Arc<Metrics>,
    outbox: Outbox,
    retry: Option<SpawnHandle>,
    next_tick: Option<SpawnHandle>,
    deadline: Instant,
    debug_log: bool,
    saver: Option<Box<dyn Saver>>,
}

impl Simulation {
    pub fn new(
        settings: SimSettings,
        broker: Recipient<Publish>,
        metrics: Arc<Metrics>,
        saver: Option<Box<dyn Saver>>,
    ) -> Self {
        let world = World::new(settings.seed, settings.characters);
        Simulation {
            world,
            tick_rate: settings.tick_rate,
            settings,
            paused: false,
            broker,
            metrics,
            outbox: Outbox::default(),
            retry: None,
            next_tick: None,
            deadline: Instant::now(),
            debug_log: false,
            saver,
        }
    }

    fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.tick_rate)
    }

    /// Schedules the next tick on a fixed-rate clock (no drift from tick duration).
    fn schedule_tick(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.next_tick.take() {
            ctx.cancel_future(h);
        }
        if self.paused {
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
            if !this.paused {
                if this.outbox.queue.is_empty() {
                    let items = this.advance(1);
                    this.publish(
                        ctx,
                        Publish::Items {
                            items,
                            end_of_tick: true,
                        },
                    );
                } else {
                    this.metrics.ticks_deferred.inc();
                    this.drain(ctx);
                }
            }
            this.schedule_tick(ctx);
        }));
    }

    /// Runs `n` ticks and returns their items.
    fn advance(&mut self, n: u64) -> Vec<Item> {
        let mut items = Vec::new();
        for _ in 0..n {
            let started = Instant::now();
            self.world.step(now_ts(), &mut items);
            self.metrics
                .tick_duration
                .observe(started.elapsed().as_secs_f64());
        }
        if self.debug_log {
            for item in &items {
                log::info!("sim: {}", serde_json::to_string(item).unwrap_or_default());
            }
        }
        self.metrics.tick.set(self.world.tick() as i64);
        self.metrics
            .characters
            .set(self.world.character_count() as i64);
        items
    }

    fn publish(&mut self, ctx: &mut Context<Self>, msg: Publish) {
        self.outbox.queue.push_back(msg);
        self.drain(ctx);
    }

    /// Sends queued messages in order until the broker's mailbox is full.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        while let Some(msg) = self.outbox.queue.pop_front() {
            match self.broker.try_send(msg) {
                Ok(()) => {}
                Err(SendError::Full(msg)) => {
                    self.outbox.queue.push_front(msg);
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
                    self.outbox.queue.clear();
                    return;
                }
            }
        }
    }

    fn snapshot(&self, resync: bool) -> Snapshot {
        Snapshot {
            tick: self.world.tick(),
            paused: self.paused,
            tick_rate: self.tick_rate,
            seed: self.world.seed(),
            characters: self.world.characters(),
            locations: self.world.locations(),
            seq: 0,
            resync,
        }
    }

    fn publish_items(&mut self, ctx: &mut Context<Self>, items: Vec<Item>, end_of_tick: bool) {
        if !items.is_empty() {
            self.publish(ctx, Publish::Items { items, end_of_tick });
        }
    }

    fn run(&mut self, command: Command, ctx: &mut Context<Self>) -> Result<Value, CommandError> {
        if self.outbox.queue.len() >= OUTBOX_LIMIT {
            return Err(CommandError {
                code: ErrorCode::ServerError,
                message: "the broker is behind; try again shortly".into(),
            });
        }
        let now = now_ts();
        let mut items = Vec::new();
        let result = match command {
            Command::Pause {} => {
                self.paused = true;
                if let Some(h) = self.next_tick.take() {
                    ctx.cancel_future(h);
                }
                json!({ "paused": true, "tick": self.world.tick() })
            }
            Command::Resume {} => {
                if self.paused {
                    self.paused = false;
                    self.deadline = Instant::now();
                    self.schedule_tick(ctx);
                }
                json!({ "paused": false, "tick": self.world.tick() })
            }
            Command::Step { ticks } => {
                let items = self.advance(ticks);
                self.publish(
                    ctx,
                    Publish::Items {
                        items,
                        end_of_tick: true,
                    },
                );
                json!({ "stepped": ticks, "tick": self.world.tick(), "paused": self.paused })
            }
            Command::SetSpeed { tick_rate } => {
                self.tick_rate = tick_rate;
                self.deadline = Instant::now();
                self.schedule_tick(ctx);
                json!({ "tick_rate": tick_rate })
            }
            Command::SetState {
                character_id,
                state,
            } => {
                self.world.set_state(character_id, state, now, &mut items)?;
                json!({ "character_id": character_id, "state": state })
            }
            Command::Spawn { name, location } => {
                let character = self
                    .world
                    .spawn(name, location.as_deref(), now, &mut items)?;
                json!({ "character_id": character.id, "character": character })
            }
            Command::Remove { character_id } => {
                self.world.remove(character_id, now, &mut items)?;
                json!({ "character_id": character_id })
            }
            Command::Schedule {
                event_type,
                in_ticks,
                data,
            } => {
                // The current tick is done: an event due "now" fires on the next step.
                let due_tick = self.world.tick() + in_ticks.max(1);
                let event_id =
                    self.world
                        .schedule(event_type, in_ticks, data.unwrap_or_else(|| json!({})));
                json!({ "event_id": event_id, "due_tick": due_tick })
            }
            Command::Cancel { event_id } => {
                self.world.cancel(event_id)?;
                json!({ "event_id": event_id, "cancelled": true })
            }
            Command::Reset { seed } => {
                let seed = seed.unwrap_or_else(|| self.world.seed());
                self.world = World::new(seed, self.settings.characters);
                self.metrics.tick.set(0);
                self.metrics
                    .characters
                    .set(self.world.character_count() as i64);
                // Every client's picture of the world is stale now: send them all a
                // fresh snapshot (through the broker, so its seq is right).
                let snapshot = Box::new(self.snapshot(true));
                self.publish(
                    ctx,
                    Publish::Snapshot {
                        snapshot,
                        route: SnapshotRoute::Everyone,
                    },
                );
                json!({ "seed": seed, "tick": 0 })
            }
            Command::Save {} => {
                let snapshot = self.snapshot(false);
                match &self.saver {
                    Some(saver) => saver.save(&snapshot).map_err(|message| CommandError {
                        code: ErrorCode::ServerError,
                        message,
                    })?,
                    None => {
                        return Err(CommandError {
                            code: ErrorCode::ServerError,
                            message: "persistence is not configured".into(),
                        })
                    }
                }
            }
            Command::DebugLog { enabled } => {
                self.debug_log = enabled;
                json!({ "enabled": enabled })
            }
            Command::Inspect { character_id } => {
                let inspection = self
                    .world
                    .inspect(character_id)
                    .ok_or_else(|| CommandError::from(SimError::UnknownCharacter(character_id)))?;
                let mut value = serde_json::to_value(&inspection).unwrap_or(Value::Null);
                let character = serde_json::to_value(&inspection.character).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut value {
                    map.insert("character".into(), character);
                }
                value
            }
            Command::Snapshot {} | Command::Metrics {} => {
                return Err(CommandError {
                    code: ErrorCode::ServerError,
                    message: "snapshot and metrics are not run by the simulation".into(),
                })
            }
        };
        self.publish_items(ctx, items, false);
        let mut result = result;
        if let Value::Object(map) = &mut result {
            map.insert("ok".into(), Value::Bool(true));
        }
        Ok(result)
    }
}

impl Actor for Simulation {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Commands come from every session; bound their queue (senders wait when full).
        ctx.set_mailbox_capacity(1024);
        self.metrics
            .characters
            .set(self.world.character_count() as i64);
        self.deadline = Instant::now();
        self.schedule_tick(ctx);
    }
}

impl Handler<RunCommand> for Simulation {
    type Result = Result<Value, CommandError>;

    fn handle(&mut self, msg: RunCommand, ctx: &mut Self::Context) -> Self::Result {
        let name = msg.command.name();
        let result = self.run(msg.command, ctx);
        if let Err(e) = &result {
            log::debug!("command {name} refused: {e}");
        }
        result
    }
}

impl Handler<RequestSnapshot> for Simulation {
    type Result = ();

    fn handle(&mut self, msg: RequestSnapshot, ctx: &mut Self::Context) {
        let resync = matches!(msg.route, SnapshotRoute::Resync { .. });
        let snapshot = Box::new(self.snapshot(resync));
        self.publish(
            ctx,
            Publish::Snapshot {
                snapshot,
                route: msg.route,
            },
        );
    }
}

/// Test hook: the world's state hash and tick.
#[derive(Message)]
#[rtype(result = "StateHash")]
pub struct GetStateHash;

/// The world's state hash at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, MessageResponse)]
pub struct StateHash {
    pub hash: u64,
    pub tick: u64,
}

impl Handler<GetStateHash> for Simulation {
    type Result = StateHash;

    fn handle(&mut self, _: GetStateHash, _: &mut Self::Context) -> StateHash {
        StateHash {
            hash: self.world.state_hash(),
            tick: self.world.tick(),
        }
    }
}
