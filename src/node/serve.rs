//! The HTTP server of a node: actix-http's `HttpService` on the listener (TLS when
//! configured), with the routes (`http::configure`) and the WebSocket upgrade
//! (`http::upgrade::accept`).

use super::RunError;
use crate::config::Config;
use crate::{http, tls};
use std::net::TcpListener;

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
pub(super) fn serve(
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
