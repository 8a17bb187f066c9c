//! simcast: a live simulation of characters broadcast to many WebSocket and SSE clients.
//!
//! Module map, by layer (docs/architecture.md, "Dependencies"; `tests/structure.rs`
//! checks it): a module imports its own layer and the layers its heading names, and
//! nothing imports composition. Names are plain, not links: most modules are private.
//!
//! Foundation (imports only foundation):
//! - `protocol`: every wire type of protocol v1 and the client-message parser.
//! - `ports`: the messages the world and delivery share (`Publish`, `TakeSnapshot`,
//!   `RunCommand`, `ReadSeries`, ...), the only types both halves know.
//! - `topics`: a connection's topic set and the matching of items against it.
//! - `config`: the TOML configuration, its embedded default, its validation and the
//!   default data directory.
//! - `clock`: the monotonic millisecond clock sessions, hubs and the broker share.
//! - `conn`: the bounded connection pool and the handle that shuts a socket down.
//! - `metrics`: counters and gauges and the Prometheus exposition.
//! - `frame_guard`: caps what a single WebSocket frame can make the server buffer.
//! - `persistence`: atomic saves and the journal of any journaled state, restore and
//!   replay; knows files, not worlds.
//! - `audit`: the journal of operator commands (who, when, what, whether it worked).
//!
//! Engine (imports foundation):
//! - `sim`: the world, its pure state-machine rules, time travel, and the simulation
//!   actor.
//! - `experiment`: headless runs of worlds (`simcast run`).
//! - `models`: built-in models beside the town (wolf–sheep), run headless for now.
//!
//! Delivery (imports foundation):
//! - `broker`: batching, `seq`, history, roster, pacing, snapshot tickets, fan-out
//!   through per-worker hubs.
//! - `presence`: who is connected, pushed to every connection (throttled).
//! - `session`: one actor per WebSocket or SSE stream: auth, heartbeat, rate limit,
//!   subscriptions, the owned socket.
//! - `http`: routes, static files and the WebSocket upgrade.
//!
//! Composition (imports anything; nothing imports it):
//! - `node`: the composition root: builds a node from its role, serves it, and on
//!   shutdown closes every session and saves the world.
//! - `cluster`: scale-out over NATS JetStream (docs/cluster.md): the sim node's
//!   publisher and responders, the gateway's stream feed and `RemoteSim`, cluster-wide
//!   presence.
//! - `tls`: rustls configuration for the server and the CLI.
//! - `cli`: the `watch` and `ctl` command-line clients.
//!
//! [`run`] starts a node on an already-bound listener and serves it until the shutdown
//! future resolves, so tests run the real server on `127.0.0.1:0`.
//!
//! Visibility: the `pub` modules are what `main.rs`, the load generator, the tests and
//! the benches use; the rest are private, and inside them `unreachable_pub` (on in
//! Cargo.toml) keeps items `pub(crate)`, so dead code warns.

mod audit;
pub mod broker;
pub mod cli;
mod clock;
pub mod cluster;
pub mod config;
mod conn;
pub mod experiment;
mod frame_guard;
mod http;
mod metrics;
mod models;
mod node;
pub mod persistence;
pub mod ports;
mod presence;
pub mod protocol;
pub mod session;
pub mod sim;
mod tls;
pub mod topics;

pub use node::{run, start, RunError, Running};
