//! The composition root: builds a node from its role, serves it, and shuts it down.
//!
//! One path for every role (`cluster.role`): the *world* is the simulation on a
//! standalone server or a sim node, and `cluster::gateway::RemoteSim` on a gateway
//! (which asks the sim node); everything after that (the broker, the sessions' shared
//! settings, the HTTP server) is built the same way from the config, once. [`run`] takes
//! the shutdown future and does the graceful part itself (tokio-rs/mini-redis
//! `server::run`): stop accepting, close every session with 1001, save the world, stop.

mod serve;
mod world;

use crate::broker::{self, Broker, BrokerSettings, SeqSource};
use crate::cluster;
use crate::config::{ClusterRole, Config, TokenConfig};
use crate::metrics::Metrics;
use crate::ports::{ReadSeries, RunCommand, TakeSnapshot};
use crate::protocol::Role;
use crate::session::auth::Tokens;
use crate::session::SessionShared;
use crate::sim::actor::Simulation;
use crate::{conn, http, presence, sim, tls};
use actix::prelude::*;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("listener: {0}")]
    Listener(std::io::Error),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// The data directory holds a world that cannot be read: nothing is started over
    /// it unless asked (`--fresh`).
    #[error("{0} (start with --fresh to move the old data aside and begin a new world)")]
    Persistence(#[from] crate::persistence::PersistenceError),
    /// `[server.tls]` names a certificate or key that cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("audit log: {0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("server: {0}")]
    Server(std::io::Error),
}

/// How long shutdown waits for sessions to take their close frame, and for the world's
/// last save.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
const SAVE_WAIT: Duration = Duration::from_secs(10);

/// Starts a node on `listener` and serves it until `shutdown` resolves (or the server
/// stops); then closes every session with 1001 and saves the world. Must be called
/// inside an actix `System`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    start(listener, config)?.serve_until(shutdown).await
}

/// A started node: [`Running::serve_until`] runs it; tests and benches also read its
/// address and its actors.
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
    pool: Arc<conn::Pool>,
    /// The simulation's, the broker's and the cluster's threads; stopped with the node.
    pub arbiters: Vec<Arbiter>,
    /// Whether the listener speaks TLS (`https://`, `wss://`).
    pub tls: bool,
    /// The data directory's lock: released when this is dropped.
    _data_lock: Option<std::fs::File>,
}

impl Running {
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
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

    /// Serves until `shutdown` resolves or the server stops by itself, then shuts down
    /// gracefully (`shut_down`) and stops the node's threads.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
        let Running {
            server,
            sim,
            broker,
            pool,
            arbiters,
            _data_lock,
            ..
        } = self;
        let handle = server.handle();
        // The server runs on a task of its own: it must be polled while the shutdown
        // below asks it to pause and stop.
        let mut served = actix::spawn(server);
        let result = tokio::select! {
            ended = &mut served => ended,
            () = shutdown => {
                log::info!("shutting down");
                shut_down(&handle, &broker, sim.as_ref(), &pool).await;
                served.await
            }
        };
        for arbiter in arbiters {
            arbiter.stop();
        }
        match result {
            Ok(served) => served.map_err(RunError::Server),
            Err(e) => Err(RunError::Server(std::io::Error::other(e))),
        }
    }
}

/// Stop accepting; close every session with 1001 (jammed ones get their socket shut
/// down); give the close frames a moment to leave; save the world; stop the server.
/// Bounded in time even with jammed clients.
async fn shut_down(
    server: &actix_web::dev::ServerHandle,
    broker: &Addr<Broker>,
    sim: Option<&Addr<Simulation>>,
    pool: &conn::Pool,
) {
    server.pause().await;
    match broker.send(broker::CloseAll).await {
        Ok(n) => log::info!("shutting down: closing {n} sessions"),
        Err(e) => log::warn!("shutting down: broker unavailable: {e}"),
    }
    let deadline = std::time::Instant::now() + CLOSE_WAIT;
    while pool.active() > 0 && std::time::Instant::now() < deadline {
        actix::clock::sleep(Duration::from_millis(20)).await;
    }
    if let Some(sim) = sim {
        match tokio::time::timeout(SAVE_WAIT, sim.send(sim::actor::SaveNow)).await {
            Ok(Ok(Ok(()))) => log::info!("world saved"),
            Ok(Ok(Err(e))) => log::error!("saving the world at shutdown failed: {e}"),
            Ok(Err(e)) => log::error!("saving the world at shutdown failed: {e}"),
            Err(_) => log::error!("saving the world at shutdown timed out; the journal has it"),
        }
    }
    server.stop(true).await;
}

/// Starts the node on `listener` for its role: the world, the broker and the HTTP
/// server, each simulation and broker on an arbiter (thread) of its own, so a long tick
/// never delays a fan-out and vice versa; sessions live on the HTTP workers. Must be
/// called inside an actix `System`.
pub fn start(listener: TcpListener, config: Config) -> Result<Running, RunError> {
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
    let core = start_core(&config, &metrics, &latest_seq)?;
    let token_list = Tokens::new(tokens.clone());
    // Session ids are unique across a cluster's nodes (their presence is shared).
    let first_session_id = cluster::presence::session_id_base(config.cluster.role);
    let shared = session_shared(
        &config,
        &core,
        token_list.clone(),
        metrics,
        latest_seq,
        &pool,
        first_session_id,
    );
    let mut arbiters = core.arbiters;
    arbiters.extend(cluster::presence::start(
        &config.cluster,
        shared.presence.clone(),
        first_session_id,
    ));
    let state = actix_web::web::Data::new(http::AppState {
        shared,
        websocket_enabled: config.server.websocket_enabled,
        allowed_origins: config.server.allowed_origins.clone(),
        max_message_bytes: config.server.max_message_bytes,
        series: core.series,
    });
    let tls = tls_config.is_some();
    let server = serve::serve(&config, state, tls_config, listener)?;
    Ok(Running {
        server,
        addr,
        tokens,
        token_list,
        sim: core.sim,
        broker: core.broker,
        pool,
        arbiters,
        tls,
        _data_lock: core.lock,
    })
}

/// The configured tokens, or one generated operator token when there are none.
fn tokens_or_generated(config: &Config) -> Vec<TokenConfig> {
    let mut tokens = config.auth.tokens.clone();
    if tokens.is_empty() {
        tokens.push(TokenConfig {
            token: random_hex(16),
            role: Role::Operator,
            name: None,
        });
        // Printed once, as part of the dashboard URL (`Running::dashboard_url`): that
        // is the only way to learn it.
        log::info!("no tokens configured; generated a random operator token");
    }
    tokens
}

/// `n` random bytes from the OS, in hex: tokens made at start, and `boot_id`.
fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The world (the simulation, or on a gateway what stands for it) and the broker.
struct Core {
    /// The simulation; `None` on a gateway.
    sim: Option<Addr<Simulation>>,
    /// Where commands go: the simulation, or a gateway's `RemoteSim`.
    commands: Recipient<RunCommand>,
    /// Where `GET /api/timeseries` reads: the same.
    series: Recipient<ReadSeries>,
    broker: Addr<Broker>,
    arbiters: Vec<Arbiter>,
    /// The data directory's lock, held as long as the server runs.
    lock: Option<std::fs::File>,
}

/// What the broker is given by the world it serves.
struct WorldSide {
    sim: Option<Addr<Simulation>>,
    commands: Recipient<RunCommand>,
    series: Recipient<ReadSeries>,
    snapshots: Recipient<TakeSnapshot>,
    /// The seq to continue from, and who numbers batches.
    seq_base: u64,
    seq_source: SeqSource,
    seq_mark: Option<crate::persistence::SeqMark>,
    arbiters: Vec<Arbiter>,
    lock: Option<std::fs::File>,
}

/// Builds the node for `config.cluster.role`: its world, then the broker (the same for
/// every role), then the cluster's tasks when there is a cluster. The broker's mailbox
/// is made first, since the world and the cluster need its address before it starts.
fn start_core(
    config: &Config,
    metrics: &Arc<Metrics>,
    latest_seq: &Arc<AtomicU64>,
) -> Result<Core, RunError> {
    let (broker_tx, broker_rx) =
        actix::dev::channel::channel::<Broker>(broker::actor::MAILBOX_CAPACITY);
    let broker_addr = Addr::new(broker_tx);
    let role = config.cluster.role;
    let sim_node = (role == ClusterRole::Sim).then(cluster::sim_node::SimNodeParts::new);
    let world = match role {
        ClusterRole::Gateway => start_remote_world(config, metrics, &broker_addr),
        ClusterRole::Standalone | ClusterRole::Sim => {
            let hold = sim_node.as_ref().map(|parts| Arc::clone(&parts.hold));
            start_simulation(config, metrics, &broker_addr, hold)?
        }
    };
    let mut broker = Broker::new(
        broker_settings(config, world.seq_source),
        world.seq_base,
        world.snapshots,
        Arc::clone(metrics),
        Arc::clone(latest_seq),
    );
    if let Some(mark) = world.seq_mark {
        broker = broker.with_seq_mark(mark);
    }
    if let Some(parts) = &sim_node {
        broker = broker.with_sink(parts.sink.clone());
    }
    let broker_arbiter = Arbiter::new();
    broker_arbiter.spawn_fn(move || {
        Context::with_receiver(broker_rx).run(broker);
    });
    let mut arbiters = world.arbiters;
    arbiters.push(broker_arbiter);
    if let (Some(parts), Some(sim)) = (sim_node, &world.sim) {
        let actors = cluster::sim_node::SimNodeActors {
            sim: sim.clone(),
            broker: broker_addr.clone(),
            metrics: Arc::clone(metrics),
        };
        let arbiter = Arbiter::new();
        let (cluster, history) = (config.cluster.clone(), config.broker.history_size);
        cluster::sim_node::start(&arbiter.handle(), cluster, history, parts, actors);
        arbiters.push(arbiter);
    }
    Ok(Core {
        sim: world.sim,
        commands: world.commands,
        series: world.series,
        broker: broker_addr,
        arbiters,
        lock: world.lock,
    })
}

/// A standalone server's or sim node's world: restored from the data directory (or
/// new), run by the simulation actor on an arbiter of its own. `hold`: a sim node's
/// switch that holds ticks while the cluster stream is away.
fn start_simulation(
    config: &Config,
    metrics: &Arc<Metrics>,
    broker: &Addr<Broker>,
    hold: Option<Arc<std::sync::atomic::AtomicBool>>,
) -> Result<WorldSide, RunError> {
    let restored = world::restore_world(config)?;
    let audit = world::open_audit(restored.store.as_ref(), metrics)?;
    let history = (config.sim.history_ticks, config.sim.checkpoint_every);
    let arbiter = Arbiter::new();
    let (sim_metrics, sim_broker) = (Arc::clone(metrics), broker.clone().recipient());
    let (state, persistence) = (restored.state, restored.persistence);
    let sim = Simulation::start_in_arbiter(&arbiter.handle(), move |_| {
        let sim = Simulation::new(state, sim_broker, sim_metrics, persistence, audit)
            .with_history(history.0, history.1);
        match hold {
            Some(hold) => sim.with_hold(hold),
            None => sim,
        }
    });
    Ok(WorldSide {
        commands: sim.clone().recipient(),
        series: sim.clone().recipient(),
        snapshots: sim.clone().recipient(),
        sim: Some(sim),
        seq_base: restored.seq_base,
        seq_source: SeqSource::Local,
        seq_mark: restored.store.map(|s| s.seq_mark(restored.seq_base)),
        arbiters: vec![arbiter],
        lock: restored.lock,
    })
}

/// A gateway's world: no simulation and no persistence; `cluster::gateway::RemoteSim`
/// reaches the sim node, and the broker is fed from the cluster stream (both started
/// once NATS is).
fn start_remote_world(config: &Config, metrics: &Arc<Metrics>, broker: &Addr<Broker>) -> WorldSide {
    use cluster::gateway::{RemoteSim, REMOTE_MAILBOX};
    let (remote_tx, remote_rx) = actix::dev::channel::channel::<RemoteSim>(REMOTE_MAILBOX);
    let remote = Addr::new(remote_tx);
    let arbiter = Arbiter::new();
    cluster::gateway::start(
        &arbiter.handle(),
        config.cluster.clone(),
        config.broker.history_size,
        remote_rx,
        broker.clone(),
        Arc::clone(metrics),
    );
    WorldSide {
        sim: None,
        commands: remote.clone().recipient(),
        series: remote.clone().recipient(),
        snapshots: remote.recipient(),
        seq_base: 0,
        seq_source: SeqSource::Stream,
        seq_mark: None,
        arbiters: vec![arbiter],
        lock: None,
    }
}

/// The broker's settings from the config.
fn broker_settings(config: &Config, seq_source: SeqSource) -> BrokerSettings {
    BrokerSettings {
        max_batch_size: config.broker.max_batch_size,
        max_batch_wait: Duration::from_millis(config.broker.max_batch_wait_ms),
        history_size: config.broker.history_size,
        client_timeout: config.client_timeout(),
        seq_source,
        stagger_when_behind: config.broker.stagger_when_behind,
    }
}

/// What every session shares: settings from the config and the core's addresses; ids
/// counted from `first_session_id`.
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
        town_size: sim::town::TOWN_SIZE,
        broker: core.broker.clone(),
        sim_commands: core.commands.clone(),
        metrics,
        latest_seq,
        pool: Arc::clone(pool),
        next_id: Arc::new(AtomicU64::new(first_session_id)),
        boot_id: random_hex(8),
        presence: presence::Presence::default().start(),
    })
}
