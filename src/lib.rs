//! simcast: a live simulation of characters broadcast to many WebSocket clients.
//!
//! Module map:
//! - [`protocol`]: every wire type of protocol v1 and the client-message parser.
//! - [`config`]: the TOML configuration, its embedded default and its validation.
//! - [`sim`]: the world, its pure state-machine rules, and the simulation actor.
//! - [`broker`]: batching, `seq`, history, fan-out, the bounded connection pool.
//! - [`session`]: one actor per WebSocket: auth, heartbeat, rate limit, subscriptions.
//! - [`http`]: routes and static files.
//! - [`metrics`]: counters and the Prometheus exposition.
//! - [`persistence`]: atomic saves of the world.
//! - [`cli`]: the `watch` and `ctl` command-line clients.
//! - [`clock`]: the monotonic millisecond clock sessions and the broker share.
//!
//! [`run`] starts everything on an already-bound listener, so tests run the real server
//! on `127.0.0.1:0`.

pub mod broker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod metrics;
pub mod persistence;
pub mod protocol;
pub mod session;
pub mod sim;

use actix::prelude::*;
use broker::{Broker, BrokerSettings};
use config::{Config, TokenConfig};
use metrics::Metrics;
use protocol::Role;
use session::auth::Tokens;
use session::SessionShared;
use sim::actor::{SimSettings, Simulation};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("listener: {0}")]
    Listener(std::io::Error),
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
}

/// A started server: await `server` to run it; `handle` stops it.
pub struct Running {
    pub server: actix_web::dev::Server,
    pub addr: SocketAddr,
    /// The tokens in force (including a generated one).
    pub tokens: Vec<TokenConfig>,
    pub sim: Addr<Simulation>,
    pub broker: Addr<Broker>,
    pub pool: Arc<broker::pool::Pool>,
    /// The simulation's and the broker's threads; stopped with the System.
    pub arbiters: Vec<Arbiter>,
}

impl Running {
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Graceful shutdown, bounded in time even with jammed clients: stop accepting,
    /// close every session with 1001 (jammed ones get their socket shut down), give the
    /// close frames a moment to leave, then stop the HTTP server.
    pub async fn shutdown(
        handle: actix_web::dev::ServerHandle,
        broker: Addr<Broker>,
        pool: Arc<broker::pool::Pool>,
    ) {
        handle.pause().await;
        match broker.send(broker::CloseAll).await {
            Ok(n) => log::info!("shutting down: closing {n} sessions"),
            Err(e) => log::warn!("shutting down: broker unavailable: {e}"),
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while pool.active() > 0 && std::time::Instant::now() < deadline {
            actix::clock::sleep(std::time::Duration::from_millis(20)).await;
        }
        handle.stop(true).await;
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
        format!("http://{}/?token={}", self.addr, token)
    }
}

/// A random operator token for servers started without configured tokens.
fn generate_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts the simulation, the broker and the HTTP server on `listener`.
///
/// Must be called inside an actix `System`. The simulation and the broker each get an
/// arbiter (thread) of their own, so a long tick never delays a fan-out and vice versa;
/// sessions live on the HTTP workers.
pub fn run(listener: TcpListener, config: Config) -> Result<Running, RunError> {
    let addr = listener.local_addr().map_err(RunError::Listener)?;
    let metrics = Arc::new(Metrics::new()?);
    let latest_seq = Arc::new(AtomicU64::new(0));
    let pool = broker::pool::Pool::new(config.pool.max_connections);

    let mut tokens = config.auth.tokens.clone();
    if tokens.is_empty() {
        tokens.push(TokenConfig {
            token: generate_token(),
            role: Role::Operator,
        });
        // Printed once, as part of the dashboard URL (`Running::dashboard_url`): that
        // is the only way to learn it.
        log::info!("no tokens configured; generated a random operator token");
    }

    // The simulation and the broker each need the other's address: make the broker's
    // mailbox first, then start both on their own arbiters.
    let (broker_tx, broker_rx) =
        actix::dev::channel::channel::<Broker>(broker::actor::MAILBOX_CAPACITY);
    let broker_addr = Addr::new(broker_tx);
    let sim_arbiter = Arbiter::new();
    let sim_settings = SimSettings {
        seed: config.sim.seed,
        characters: config.sim.characters,
        tick_rate: config.sim.tick_rate,
    };
    let saver: Box<dyn sim::actor::Saver> =
        Box::new(persistence::FileSaver::new(config.data_dir()));
    let sim_metrics = Arc::clone(&metrics);
    let sim_broker = broker_addr.clone().recipient();
    let sim_addr = Simulation::start_in_arbiter(&sim_arbiter.handle(), move |_| {
        Simulation::new(sim_settings, sim_broker, sim_metrics, Some(saver))
    });
    let broker_arbiter = Arbiter::new();
    let broker_settings = BrokerSettings {
        max_batch_size: config.broker.max_batch_size,
        max_batch_wait: std::time::Duration::from_millis(config.broker.max_batch_wait_ms),
        history_size: config.broker.history_size,
        client_timeout: config.client_timeout(),
    };
    let broker_metrics = Arc::clone(&metrics);
    let broker_seq = Arc::clone(&latest_seq);
    let broker_sim = sim_addr.clone().recipient();
    broker_arbiter.spawn_fn(move || {
        let broker = Broker::new(broker_settings, 0, broker_sim, broker_metrics, broker_seq);
        Context::with_receiver(broker_rx).run(broker);
    });

    let shared = Arc::new(SessionShared {
        tokens: Tokens::new(tokens.clone()),
        heartbeat_interval: config.heartbeat_interval(),
        client_timeout: config.client_timeout(),
        auth_timeout: config.auth_timeout(),
        rate_limit_messages: config.session.rate_limit_messages,
        rate_limit_window_ms: config.session.rate_limit_window_ms,
        outbound_queue: config.session.outbound_queue,
        broker: broker_addr.clone(),
        sim_commands: sim_addr.clone().recipient(),
        sim_snapshots: sim_addr.clone().recipient(),
        metrics: Arc::clone(&metrics),
        latest_seq,
        pool: Arc::clone(&pool),
        next_id: Arc::new(AtomicU64::new(0)),
    });
    let state = actix_web::web::Data::new(http::AppState {
        shared,
        websocket_enabled: config.server.websocket_enabled,
        allowed_origins: config.server.allowed_origins.clone(),
        max_message_bytes: config.server.max_message_bytes,
    });

    let mut server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .configure(http::configure)
    })
    .on_connect(http::on_connect)
    // Bounded shutdown: connections still open after this are dropped.
    .shutdown_timeout(3)
    .backlog(4096)
    .max_connection_rate(4096)
    .disable_signals();
    if config.server.workers > 0 {
        server = server.workers(config.server.workers);
    }
    let server = server.listen(listener).map_err(RunError::Listener)?.run();
    Ok(Running {
        server,
        addr,
        tokens,
        sim: sim_addr,
        broker: broker_addr,
        pool: Arc::clone(&pool),
        arbiters: vec![sim_arbiter, broker_arbiter],
    })
}
