//! The messages that cross between the world and delivery: the only types both halves
//! know (docs/architecture.md, "Dependencies").
//!
//! The engine (`sim`) runs a world and knows no sockets, sessions or broker; delivery
//! (`broker`, `session`, `http`) numbers and sends what a world produces and knows no
//! simulation. They meet here:
//! - [`Publish`]: world → broker, in order: items, and snapshots the broker asked for
//!   ([`TakeSnapshot`]) or that the world sends everyone on its own (a reset, a rewind);
//! - [`TakeSnapshot`]: broker → world. Whoever wants a snapshot (a joining session, a
//!   `snapshot` command, `GET /api/snapshot`, a resync) asks the broker, which keeps
//!   where it goes and hands the world only a ticket, so a socket's route never travels
//!   through the simulation;
//! - [`RunCommand`]: sessions and HTTP → world, answered with a [`Reply`] or a
//!   [`CommandError`];
//! - [`ReadSeries`]: HTTP → world, the time series rendered as CSV or JSON.
//!
//! On a cluster gateway the world is `cluster::gateway::RemoteSim`, which answers the
//! same messages over NATS request/reply.

use crate::protocol::{Command, ErrorCode, Item, Reply, Snapshot};
use actix::prelude::*;

/// Names one snapshot request the broker is waiting on; a counter, unique within the
/// broker's run.
pub type SnapshotTicket = u64;

/// World → broker, in order. Everything a world emits goes through here, so a snapshot
/// is stamped with a `seq` only after every item it reflects.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum Publish {
    /// Items of one tick (`end_of_tick`: flush now) or of one command.
    Items { items: Vec<Item>, end_of_tick: bool },
    /// A world snapshot to stamp with the current `seq` and send where `to` says.
    Snapshot {
        snapshot: Box<Snapshot>,
        to: SnapshotFor,
    },
}

/// Whom a published snapshot is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotFor {
    /// The request the broker handed out with this ticket ([`TakeSnapshot`]).
    Request(SnapshotTicket),
    /// Every joined session, with `resync: true` (the world changed under everyone:
    /// `reset`, `rewind`).
    Everyone,
}

/// Broker → world: build a snapshot now and publish it as
/// `SnapshotFor::Request(ticket)`. `resync`: the snapshot replaces a client's picture of
/// the world (its `resync` field is true).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct TakeSnapshot {
    pub ticket: SnapshotTicket,
    pub resync: bool,
}

/// World → broker: the snapshot for `ticket` cannot be had (a gateway that cannot reach
/// its sim node). The broker tells whoever waits for it.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SnapshotUnavailable {
    pub ticket: SnapshotTicket,
    pub why: String,
}

/// Sessions/HTTP → world: run one command that is not `snapshot` or `metrics` (those
/// are served by delivery: see `session::commands`).
#[derive(Message, Debug)]
#[rtype(result = "Result<Reply, CommandError>")]
pub struct RunCommand {
    pub command: Command,
    /// The label of the token that sent it (`auth::Identity::label`), shown to everyone
    /// in the `control` item a state-changing command is broadcast as.
    pub by: String,
}

/// HTTP → world: the time series rows with `from <= tick <= to`, rendered as `format`
/// (protocol, "Time series"); `Err` says why they cannot be had (the 503's message).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<String, String>")]
pub struct ReadSeries {
    pub from: u64,
    pub to: u64,
    pub format: SeriesFormat,
}

/// The body `GET /api/timeseries` answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesFormat {
    /// A header row, then one line per tick.
    Csv,
    /// `{"columns": [...], "rows": [{...}]}`.
    Json,
}

/// A command the world refused or could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    pub code: ErrorCode,
    pub message: String,
}

impl CommandError {
    /// 1004: the server failed to do what was asked.
    pub fn server(message: impl Into<String>) -> Self {
        CommandError {
            code: ErrorCode::ServerError,
            message: message.into(),
        }
    }
}
