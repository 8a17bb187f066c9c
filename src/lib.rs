//! simcast: a live simulation of characters broadcast to many WebSocket clients.
//!
//! Module map:
//! - [`protocol`]: every wire type of protocol v1 and the client-message parser.
//! - [`config`]: the TOML configuration, its embedded default and its validation.
//! - [`sim`]: the world, its pure state-machine rules, and the simulation actor.
//! - [`topics`]: a connection's topic set and the matching of items (a leaf the broker
//!   and the sessions share, so the broker imports nothing of the sessions).
//! - [`broker`]: batching, `seq`, history, roster, fan-out through per-worker hubs.
//! - [`conn`]: the bounded connection pool and the handle that shuts a socket down.
//! - [`session`]: one actor per WebSocket: auth, heartbeat, rate limit, subscriptions.
//! - [`http`]: routes and static files.
//! - [`metrics`]: counters and the Prometheus exposition.
//! - [`persistence`]: atomic saves of the world.
//! - [`audit`]: the journal of operator commands (who, when, what, whether it worked).
//! - [`cli`]: the `watch` and `ctl` command-line clients.
//! - [`presence`]: who is connected, pushed to every connection (coalesced).
//! - [`clock`]: the monotonic millisecond clock sessions and the broker share.
//! - [`cluster`]: scale-out over NATS JetStream (issue 11): the NATS link, the stream
//!   of batches, request/reply and the batch codec; not wired in yet.
//!
//! [`run`] starts everything on an already-bound listener, so tests run the real server
//! on `127.0.0.1:0`.
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
