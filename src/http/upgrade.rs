//! The WebSocket handshake on the raw connection.
//!
//! actix-http's HTTP/1 dispatcher hands every request that asks for an upgrade to this
//! service, with the connection itself (`Framed<T, h1::Codec>`), instead of routing it.
//! [`accept`] checks the request as `/ws` requires ([`admit`]: path, the server's
//! WebSocket switch, `Origin`, RFC 6455's handshake headers), answers `101`, and hands
//! the bare stream, with whatever the client sent past its request, to a new
//! [`Session`], which owns it from then on (`session::transport`). The token, the pool
//! slot and the socket handle are read here; refusing them is the session's job, with a
//! close frame, as the protocol asks.

use super::AppState;
use crate::conn::ConnHandle;
use crate::protocol::SnapshotEncoding;
use crate::session::auth::token_from_request;
use crate::session::reject::Reject;
use crate::session::{transport, Handshake, Session};
use actix::Actor;
use actix_codec::{AsyncRead, AsyncWrite, Framed};
use actix_http::body::BodySize;
use actix_http::h1;
use actix_http::ws;
use actix_http::{Request, RequestHead};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use futures_util::SinkExt;
use std::sync::Arc;

/// The connection failed during the handshake (the client went away, mostly).
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpgradeError {
    #[error("writing the handshake response: {0}")]
    Io(#[from] std::io::Error),
    #[error("building the handshake response: {0}")]
    Http(#[from] actix_http::Error),
}

/// What the dispatcher would answer with; it only logs it, the connection is gone.
impl From<UpgradeError> for actix_http::Response<actix_http::body::BoxBody> {
    fn from(_: UpgradeError) -> Self {
        actix_http::Response::internal_server_error()
    }
}

/// Why an upgrade request is answered with an HTTP error instead of `101`.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Upgrades are served on `/ws` only.
    NotWs,
    /// `server.websocket_enabled = false`.
    Disabled,
    /// The `Origin` header is not in `server.allowed_origins`.
    Origin,
    /// Not a valid RFC 6455 handshake.
    Handshake(ws::HandshakeError),
    /// A query parameter with a value it cannot have.
    Query(String),
}

impl Refusal {
    fn status_and_body(&self) -> (StatusCode, String) {
        match self {
            Refusal::NotWs => (
                StatusCode::NOT_FOUND,
                "WebSocket upgrades are served on /ws".into(),
            ),
            Refusal::Disabled => (
                StatusCode::SERVICE_UNAVAILABLE,
                "WebSocket is disabled on this server; use /events (SSE)".into(),
            ),
            Refusal::Origin => (StatusCode::FORBIDDEN, "origin not allowed".into()),
            Refusal::Handshake(e) => (StatusCode::BAD_REQUEST, e.to_string()),
            Refusal::Query(e) => (StatusCode::BAD_REQUEST, format!("bad query: {e}")),
        }
    }

    /// The refusal as a routed response.
    pub(crate) fn response(&self) -> HttpResponse {
        let (status, body) = self.status_and_body();
        HttpResponse::build(status).body(body)
    }
}

/// Whether `head` may become a session on `/ws`, and the snapshot encoding it asks for;
/// counts an origin refusal.
pub(crate) fn admit(state: &AppState, head: &RequestHead) -> Result<SnapshotEncoding, Refusal> {
    if head.uri.path() != "/ws" {
        return Err(Refusal::NotWs);
    }
    if !state.websocket_enabled {
        return Err(Refusal::Disabled);
    }
    if !state.allowed_origins.is_empty() {
        if let Some(origin) = head.headers().get(header::ORIGIN) {
            let allowed = origin
                .to_str()
                .map(|o| state.allowed_origins.iter().any(|a| a == o))
                .unwrap_or(false);
            if !allowed {
                Reject::Origin.count(&state.shared.metrics);
                return Err(Refusal::Origin);
            }
        }
    }
    ws::verify_handshake(head).map_err(Refusal::Handshake)?;
    let query = head.uri.query().unwrap_or("");
    match actix_web::web::Query::<ConnectQuery>::from_query(query) {
        Ok(q) => Ok(q.into_inner().snapshot.unwrap_or_default()),
        Err(e) => Err(Refusal::Query(e.to_string())),
    }
}

/// The handshake's own query parameters (`token` is read by `token_from_request`).
#[derive(serde::Deserialize)]
pub(crate) struct ConnectQuery {
    /// `objects` (the default) or `compact`.
    pub snapshot: Option<SnapshotEncoding>,
}

/// The upgrade service: answers the handshake and starts the session on this worker.
pub(crate) async fn accept<T>(
    state: Arc<AppState>,
    req: Request,
    mut framed: Framed<T, h1::Codec>,
) -> Result<(), UpgradeError>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let snapshot_encoding = match admit(&state, req.head()) {
        Ok(encoding) => encoding,
        Err(refusal) => return refuse(framed, &refusal).await,
    };
    let response = ws::handshake_response(req.head()).message_body(())?;
    framed.send((response, BodySize::None).into()).await?;
    let parts = framed.into_parts();
    let transport = transport::split(Box::new(parts.io), parts.read_buf, state.max_message_bytes);
    let handshake = Handshake {
        token: token_from_request(req.head()),
        conn: req.conn_data::<ConnHandle>().cloned(),
        snapshot_encoding,
    };
    let shared = Arc::clone(&state.shared);
    Session::new(
        shared,
        state.shared.pool.try_acquire(),
        handshake,
        transport,
    )
    .start();
    Ok(())
}

/// Answers `refusal` as a plain HTTP response and ends the connection.
async fn refuse<T>(mut framed: Framed<T, h1::Codec>, refusal: &Refusal) -> Result<(), UpgradeError>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (status, body) = refusal.status_and_body();
    let mut response = actix_http::Response::build(status);
    response.insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"));
    response.insert_header((header::CONNECTION, "close"));
    let response = response.message_body(())?;
    let size = BodySize::Sized(body.len() as u64);
    framed.send((response, size).into()).await?;
    framed.send(h1::Message::Chunk(Some(body.into()))).await?;
    framed.send(h1::Message::Chunk(None)).await?;
    Ok(())
}
