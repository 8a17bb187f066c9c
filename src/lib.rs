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
pub mod persistence;
mod presence;
pub mod protocol;
pub mod session;
pub mod sim;
mod tls;
pub mod topics;

use actix::prelude::*;
use broker::{Broker, BrokerSettings};
use config::{Config, TokenConfig};
use metrics::Metrics;
use protocol::Role;
use session::auth::Tokens;
use session::SessionShared;
use sim::actor::Simulation;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("listener: {0}")]
    Listener(std::io::Error),
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    /// The data directory holds a world that cannot be read: nothing is started over
    /// it unless asked (`--fresh`).
    #[error("{0} (start with --fresh to move the old data aside and begin a new world)")]
    Persistence(#[from] persistence::PersistenceError),
    /// `[server.tls]` names a certificate or key that cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("audit log: {0}")]
    Audit(#[from] audit::AuditError),
}

/// A started server: await `server` to run it; `handle` stops it.
pub struct Running {
    pub server: actix_web::dev::Server,
    pub addr: SocketAddr,
    /// The tokens in force at start (including a generated one).
    pub tokens: Vec<TokenConfig>,
    /// The live token list; `replace` it to reload tokens without a restart.
    pub token_list: Tokens,
    /// The simulation; `None` on a gateway, which has none (`cluster.role`).
    pub sim: Option<Addr<Simulation>>,
    pub broker: Addr<Broker>,
    pub pool: Arc<conn::Pool>,
    /// The simulation's and the broker's threads; stopped with the System.
    pub arbiters: Vec<Arbiter>,
    /// Whether the listener speaks TLS (`https://`, `wss://`).
    pub tls: bool,
    /// The data directory's lock: released when this is dropped.
    pub data_lock: Option<std::fs::File>,
}

impl Running {
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// What graceful shutdown needs, detachable from `Running` (whose `server` is
    /// being awaited).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            server: self.server.handle(),
            broker: self.broker.clone(),
            sim: self.sim.clone(),
            pool: Arc::clone(&self.pool),
        }
    }

    /// The dashboard URL with the first operator token.
    pub fn dashboard_url(&self) -> String {
        let token = self
            .tokens
            .iter()
            .find(|t| t.role == Role::Operator)
            .or(self.tokens.first())
            .map(|t| t.token.as_str())
            .unwrap_or("");
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/?token={}", self.addr, token)
    }
}

/// Graceful shutdown, bounded in time even with jammed clients.
pub struct ShutdownHandle {
    server: actix_web::dev::ServerHandle,
    broker: Addr<Broker>,
    sim: Option<Addr<Simulation>>,
    pool: Arc<conn::Pool>,
}

impl ShutdownHandle {
    /// Stop accepting; close every session with 1001 (jammed ones get their socket shut
    /// down); give the close frames a moment to leave; save the world; stop the server.
    pub async fn shutdown(self) {
        self.server.pause().await;
        match self.broker.send(broker::CloseAll).await {
            Ok(n) => log::info!("shutting down: closing {n} sessions"),
            Err(e) => log::warn!("shutting down: broker unavailable: {e}"),
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while self.pool.active() > 0 && std::time::Instant::now() < deadline {
            actix::clock::sleep(std::time::Duration::from_millis(20)).await;
        }
        let Some(sim) = self.sim else {
            return self.server.stop(true).await;
        };
        let save = sim.send(sim::actor::SaveNow);
        match tokio::time::timeout(std::time::Duration::from_secs(10), save).await {
            Ok(Ok(Ok(()))) => log::info!("world saved"),
            Ok(Ok(Err(e))) => log::error!("saving the world at shutdown failed: {e}"),
            Ok(Err(e)) => log::error!("saving the world at shutdown failed: {e}"),
            Err(_) => log::error!("saving the world at shutdown timed out; the journal has it"),
        }
        self.server.stop(true).await;
    }
}

/// `n` random bytes from the OS, in hex: tokens made at start, and `boot_id`.
fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random operator token for servers started without configured tokens.
fn generate_token() -> String {
    random_hex(16)
}

/// Restores the world from the data directory (or makes a new one), writes the base
/// snapshot and starts the journal. Returns the state, its persistence, and the seq to
/// continue from (above every seq issued before).
fn restore_world(config: &Config) -> Result<RestoredWorld, RunError> {
    let store = persistence::Store::new(config.data_dir());
    let lock = match store.lock() {
        Ok(lock) => lock,
        Err(persistence::PersistenceError::InUse(dir)) => {
            // Another server owns that world. Refusing to start would make a second
            // instance (a test, a demo) impossible without a config change; running
            // without persistence touches nobody's data. Said loudly, once.
            log::warn!(
                "data directory {dir} is in use by another simcast server: this one runs a new \
                 world WITHOUT persistence (set persistence.dir to keep it)"
            );
            return Ok(RestoredWorld {
                state: new_state(config),
                persistence: None,
                seq_base: 0,
                store: None,
                lock: None,
            });
        }
        Err(e) => return Err(e.into()),
    };
    if config.persistence.fresh {
        if let Some(aside) = store.discard()? {
            log::warn!("--fresh: previous data moved to {}", aside.display());
        }
    }
    let (state, journal_id) = load_or_create(&store, config)?;
    let seq_base = store.read_seq()?;
    let base = persistence::SavedWorld {
        format: persistence::FORMAT,
        journal_id,
        saved_at: protocol::now_ts(),
        state: state.clone(),
    };
    let writer = persistence::writer::Writer::start(store.dir(), &base)?;
    let persistence = sim::actor::Persistence {
        writer,
        journal_id,
        snapshot_interval_ticks: config.persistence.snapshot_interval_ticks,
    };
    Ok(RestoredWorld {
        state,
        persistence: Some(persistence),
        seq_base,
        store: Some(store),
        lock: Some(lock),
    })
}

/// A new world from the config's seed, size and tick rate.
fn new_state(config: &Config) -> sim::SimState {
    sim::SimState::new(config.sim.seed, config.sim.characters, config.sim.tick_rate)
}

/// The saved world (replaying its journal), or a new one; with the next journal id.
/// Names every value the restored world keeps that differs from the config or flags.
fn load_or_create(
    store: &persistence::Store,
    config: &Config,
) -> Result<(sim::SimState, u64), RunError> {
    Ok(match store.restore(None)? {
        Some(r) => {
            for note in &r.notes {
                log::warn!("restore: {note}");
            }
            log::info!(
                "restored the world from {} at tick {} ({} journal entries replayed{})",
                store.dir().display(),
                r.state.world.tick(),
                r.replayed,
                if r.state.paused { ", paused" } else { "" }
            );
            let sim = &config.sim;
            let kept = r.state.differences(sim.seed, sim.characters, sim.tick_rate);
            if !kept.is_empty() {
                log::warn!(
                    "the restored world keeps {}; start with --fresh to begin a new world \
                     with the asked values (the old data is moved aside, not deleted)",
                    kept.join(", ")
                );
            }
            (r.state, r.next_journal_id)
        }
        None => {
            log::info!(
                "new world (seed {}) in {}",
                config.sim.seed,
                store.dir().display()
            );
            (new_state(config), 1)
        }
    })
}

/// The audit log in the data directory (memory only when another server owns it).
fn open_audit(
    store: Option<&persistence::Store>,
    metrics: &Metrics,
) -> Result<audit::AuditLog, RunError> {
    let opened = audit::AuditLog::open(store.map(|s| s.dir()), metrics.audit_unwritten.clone())?;
    for line in &opened.skipped {
        log::warn!("audit log: skipped an unreadable entry at {line}");
    }
    Ok(opened.log)
}

/// What `restore_world` hands to `run`.
struct RestoredWorld {
    state: sim::SimState,
    /// `None` when the data directory belongs to another running server.
    persistence: Option<sim::actor::Persistence>,
    seq_base: u64,
    store: Option<persistence::Store>,
    /// The data directory's lock, held as long as the server runs.
    lock: Option<std::fs::File>,
}

/// Starts the simulation, the broker and the HTTP server on `listener`.
///
/// Must be called inside an actix `System`. The simulation and the broker each get an
/// arbiter (thread) of their own, so a long tick never delays a fan-out and vice versa;
/// sessions live on the HTTP workers.
pub fn run(listener: TcpListener, config: Config) -> Result<Running, RunError> {
    let addr = listener.local_addr().map_err(RunError::Listener)?;
    // Before anything starts: a bad certificate or key stops here, naming the file.
    let tls_config = if config.server.tls.enabled() {
        Some(tls::server_config(&config.server.tls)?)
    } else {
        None
    };
    let metrics = Arc::new(Metrics::new()?);
    let latest_seq = Arc::new(AtomicU64::new(0));
    let pool = conn::Pool::new(config.pool.max_connections);
    let tokens = tokens_or_generated(&config);
    let core = match config.cluster.role {
        config::ClusterRole::Gateway => start_gateway_core(&config, &metrics, &latest_seq),
        _ => start_core(&config, &metrics, &latest_seq)?,
    };
    let token_list = Tokens::new(tokens.clone());
    let id_base = cluster::presence::session_id_base(config.cluster.role);
    let shared = session_shared(
        &config,
        &core,
        token_list.clone(),
        metrics,
        latest_seq,
        &pool,
        id_base,
    );
    let mut arbiters = core.arbiters;
    arbiters.extend(cluster::presence::start(
        &config.cluster,
        shared.presence.clone(),
        id_base,
    ));
    let state = actix_web::web::Data::new(http::AppState {
        shared,
        websocket_enabled: config.server.websocket_enabled,
        allowed_origins: config.server.allowed_origins.clone(),
        max_message_bytes: config.server.max_message_bytes,
        series: core.series,
    });
    let tls = tls_config.is_some();
    let server = serve(&config, state, tls_config, listener)?;
    Ok(Running {
        server,
        addr,
        tokens,
        token_list,
        sim: core.sim,
        broker: core.broker,
        pool: Arc::clone(&pool),
        arbiters,
        data_lock: core.lock,
        tls,
    })
}

/// The configured tokens, or one generated operator token when there are none.
fn tokens_or_generated(config: &Config) -> Vec<TokenConfig> {
    let mut tokens = config.auth.tokens.clone();
    if tokens.is_empty() {
        tokens.push(TokenConfig {
            token: generate_token(),
            role: Role::Operator,
            name: None,
        });
        // Printed once, as part of the dashboard URL (`Running::dashboard_url`): that
        // is the only way to learn it.
        log::info!("no tokens configured; generated a random operator token");
    }
    tokens
}

/// The simulation (or, on a gateway, what stands for it) and the broker, started on
/// arbiters of their own.
struct Core {
    sim: Option<Addr<Simulation>>,
    /// Where commands and snapshot requests go: the simulation, or a gateway's
    /// `cluster::gateway::RemoteSim`.
    sim_commands: Recipient<sim::actor::RunCommand>,
    sim_snapshots: Recipient<broker::RequestSnapshot>,
    /// Where `GET /api/timeseries` reads: the simulation, or the sim node over NATS.
    series: http::SeriesSource,
    broker: Addr<Broker>,
    arbiters: Vec<Arbiter>,
    /// The data directory's lock, held as long as the server runs.
    lock: Option<std::fs::File>,
}

/// The broker's settings from the config.
fn broker_settings(config: &Config, seq_source: broker::SeqSource) -> BrokerSettings {
    BrokerSettings {
        max_batch_size: config.broker.max_batch_size,
        max_batch_wait: std::time::Duration::from_millis(config.broker.max_batch_wait_ms),
        history_size: config.broker.history_size,
        client_timeout: config.client_timeout(),
        seq_source,
        hold_when_behind: config.broker.hold_when_behind,
    }
}

/// Restores the world and starts the simulation and the broker (and, on a sim node,
/// the cluster publisher). Each needs the other's address: the broker's mailbox is
/// made first, then both start.
fn start_core(
    config: &Config,
    metrics: &Arc<Metrics>,
    latest_seq: &Arc<AtomicU64>,
) -> Result<Core, RunError> {
    let (broker_tx, broker_rx) =
        actix::dev::channel::channel::<Broker>(broker::actor::MAILBOX_CAPACITY);
    let broker_addr = Addr::new(broker_tx);
    let restored = restore_world(config)?;
    let audit = open_audit(restored.store.as_ref(), metrics)?;
    let cluster = (config.cluster.role == config::ClusterRole::Sim)
        .then(cluster::sim_node::SimNodeParts::new);
    let hold = cluster.as_ref().map(|c| Arc::clone(&c.hold));
    let history = (config.sim.history_ticks, config.sim.checkpoint_every);
    let sim_arbiter = Arbiter::new();
    let (sim_metrics, sim_broker) = (Arc::clone(metrics), broker_addr.clone().recipient());
    let (sim_state, sim_persistence) = (restored.state, restored.persistence);
    let sim_addr = Simulation::start_in_arbiter(&sim_arbiter.handle(), move |_| {
        let sim = Simulation::new(sim_state, sim_broker, sim_metrics, sim_persistence, audit)
            .with_history(history.0, history.1);
        match hold {
            Some(hold) => sim.with_hold(hold),
            None => sim,
        }
    });
    let mut broker = Broker::new(
        broker_settings(config, broker::SeqSource::Local),
        restored.seq_base,
        sim_addr.clone().recipient(),
        Arc::clone(metrics),
        Arc::clone(latest_seq),
    );
    if let Some(mark) = restored.store.map(|s| s.seq_mark(restored.seq_base)) {
        broker = broker.with_seq_mark(mark);
    }
    if let Some(parts) = &cluster {
        broker = broker.with_sink(parts.sink.clone());
    }
    let broker_arbiter = Arbiter::new();
    broker_arbiter.spawn_fn(move || {
        Context::with_receiver(broker_rx).run(broker);
    });
    let mut arbiters = vec![sim_arbiter, broker_arbiter];
    if let Some(parts) = cluster {
        let actors = cluster::sim_node::SimNodeActors {
            sim: sim_addr.clone(),
            broker: broker_addr.clone(),
            metrics: Arc::clone(metrics),
        };
        arbiters.push(start_sim_node(config, parts, actors));
    }
    Ok(Core {
        sim_commands: sim_addr.clone().recipient(),
        sim_snapshots: sim_addr.clone().recipient(),
        series: http::SeriesSource::Local(sim_addr.clone().recipient()),
        sim: Some(sim_addr),
        broker: broker_addr,
        arbiters,
        lock: restored.lock,
    })
}

/// A sim node's publisher and responders, on an arbiter of their own.
fn start_sim_node(
    config: &Config,
    parts: cluster::sim_node::SimNodeParts,
    actors: cluster::sim_node::SimNodeActors,
) -> Arbiter {
    let arbiter = Arbiter::new();
    let (cluster, history) = (config.cluster.clone(), config.broker.history_size);
    cluster::sim_node::start(&arbiter.handle(), cluster, history, parts, actors);
    arbiter
}

/// A gateway: no world, no persistence; a broker fed from the cluster stream, and the
/// sim node reached through `cluster::gateway::RemoteSim` (started once NATS is).
fn start_gateway_core(
    config: &Config,
    metrics: &Arc<Metrics>,
    latest_seq: &Arc<AtomicU64>,
) -> Core {
    use cluster::gateway::{RemoteSim, REMOTE_MAILBOX};
    let (broker_tx, broker_rx) =
        actix::dev::channel::channel::<Broker>(broker::actor::MAILBOX_CAPACITY);
    let broker_addr = Addr::new(broker_tx);
    let (remote_tx, remote_rx) = actix::dev::channel::channel::<RemoteSim>(REMOTE_MAILBOX);
    let remote = Addr::new(remote_tx);
    let broker = Broker::new(
        broker_settings(config, broker::SeqSource::Stream),
        0,
        remote.clone().recipient(),
        Arc::clone(metrics),
        Arc::clone(latest_seq),
    );
    let broker_arbiter = Arbiter::new();
    broker_arbiter.spawn_fn(move || {
        Context::with_receiver(broker_rx).run(broker);
    });
    let cluster_arbiter = Arbiter::new();
    cluster::gateway::start(
        &cluster_arbiter.handle(),
        config.cluster.clone(),
        config.broker.history_size,
        remote_rx,
        broker_addr.clone(),
        Arc::clone(metrics),
    );
    Core {
        sim: None,
        sim_commands: remote.clone().recipient(),
        sim_snapshots: remote.clone().recipient(),
        series: http::SeriesSource::Remote(remote.recipient()),
        broker: broker_addr,
        arbiters: vec![broker_arbiter, cluster_arbiter],
        lock: None,
    }
}

/// What every session shares: settings from the config and the core's addresses.
fn session_shared(
    config: &Config,
    core: &Core,
    tokens: Tokens,
    metrics: Arc<Metrics>,
    latest_seq: Arc<AtomicU64>,
    pool: &Arc<conn::Pool>,
    first_session_id: u64,
) -> Arc<SessionShared> {
    Arc::new(SessionShared {
        tokens,
        heartbeat_interval: config.heartbeat_interval(),
        client_timeout: config.client_timeout(),
        auth_timeout: config.auth_timeout(),
        rate_limit_messages: config.session.rate_limit_messages,
        rate_limit_window_ms: config.session.rate_limit_window_ms,
        outbound_queue: config.session.outbound_queue,
        max_message_bytes: config.server.max_message_bytes,
        broker: core.broker.clone(),
        sim_commands: core.sim_commands.clone(),
        sim_snapshots: core.sim_snapshots.clone(),
        metrics,
        latest_seq,
        pool: Arc::clone(pool),
        next_id: Arc::new(AtomicU64::new(first_session_id)),
        boot_id: random_hex(8),
        presence: presence::Presence::default().start(),
    })
}

/// actix-server's default cap on connections in flight per worker is 25 600; the pool
/// (`pool.max_connections`) is the limit that matters, so this only has to stay above
/// what one worker can be given. Upgraded WebSockets leave this count once handed over.
const MAX_CONNECTIONS_PER_WORKER: usize = 1 << 16;

/// The timeouts every worker's HTTP service applies.
#[derive(Clone, Copy)]
struct Timeouts {
    /// Slowloris guard: the request head must arrive within this time.
    request: std::time::Duration,
}

/// One worker's HTTP service over the stream type `$io`: the routes, the WebSocket
/// upgrade, the connection hook. A macro because the TCP and the TLS service differ only
/// in that type, which the builder's generics (and their bounds) cannot abstract cheaply.
macro_rules! http_service {
    ($state:expr, $timeouts:expr, $io:ty, $on_connect:path) => {{
        let app_state = $state.clone();
        let upgrade_state = $state.clone().into_inner();
        actix_http::HttpService::build()
            .client_request_timeout($timeouts.request)
            // No lingering after a response: actix-http otherwise waits up to this long
            // (default 1 s) for the client's EOF before closing TCP. Zero: write what is
            // left, then FIN at once.
            .client_disconnect_timeout(std::time::Duration::ZERO)
            // Frames are written as they come: with Nagle's algorithm a write waits for
            // the ACK of the one before, and the client's delayed ACK (40 ms on Linux)
            // put 40–80 ms on frames of the morning rush (measured: p50 83 ms at 1 000
            // clients, on 0.16 cores).
            .tcp_nodelay(true)
            .on_connect_ext(|io: &$io, ext: &mut actix_http::Extensions| {
                $on_connect(io as &dyn std::any::Any, ext)
            })
            .upgrade(actix_service::fn_factory(move || {
                let state = std::sync::Arc::clone(&upgrade_state);
                async move {
                    Ok::<_, ()>(actix_service::fn_service(
                        move |(req, framed): (
                            actix_http::Request,
                            actix_codec::Framed<$io, actix_http::h1::Codec>,
                        )| {
                            http::upgrade::accept(std::sync::Arc::clone(&state), req, framed)
                        },
                    ))
                }
            }))
            .finish(actix_service::map_config(
                actix_web::App::new()
                    .app_data(app_state)
                    .configure(http::configure),
                |_| actix_web::dev::AppConfig::default(),
            ))
    }};
}

/// The HTTP server on `listener` (TLS when configured), running.
///
/// Built from actix-http's `HttpService` rather than actix-web's `HttpServer` for one
/// thing `HttpServer` does not offer: an upgrade service. WebSocket handshakes go to
/// `http::upgrade::accept`, which hands the bare connection to the session; every other
/// request goes to the routes (`http::configure`) as before.
fn serve(
    config: &Config,
    state: actix_web::web::Data<http::AppState>,
    tls_config: Option<rustls::ServerConfig>,
    listener: TcpListener,
) -> Result<actix_web::dev::Server, RunError> {
    let timeouts = Timeouts {
        request: std::time::Duration::from_millis(config.server.client_request_timeout_ms),
    };
    let mut server = actix_server::Server::build()
        // Bounded shutdown: connections still open after this are dropped.
        .shutdown_timeout(3)
        .backlog(4096)
        .max_concurrent_connections(MAX_CONNECTIONS_PER_WORKER)
        .disable_signals();
    if config.server.workers > 0 {
        server = server.workers(config.server.workers);
    }
    let server = match tls_config {
        None => server.listen("simcast", listener, move || {
            http_service!(
                state,
                timeouts,
                actix_web::rt::net::TcpStream,
                http::on_connect
            )
            .tcp()
        }),
        Some(tls_config) => server.listen("simcast-tls", listener, move || {
            type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
            http_service!(state, timeouts, Tls, tls::on_connect).rustls_0_23(tls_config.clone())
        }),
    }
    .map_err(RunError::Listener)?;
    Ok(server.run())
}
