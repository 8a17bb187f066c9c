//! HTTP routes: `/ws`, `/events` (SSE), `/api/command`, `/api/snapshot`,
//! `/api/timeseries`, `/metrics`, `/healthz`, and the dashboard's static files.
//!
//! Every route except `/`, static files and `/healthz` needs a token (`?token=` or
//! `Authorization: Bearer`). Static files are embedded in the binary at build time, so
//! the server needs no files on disk and no build step to serve the dashboard.

use crate::broker::{RequestSnapshot, SnapshotRoute};
use crate::conn::ConnHandle;
use crate::ports::{ReadSeries, SeriesFormat};
use crate::protocol::Topic;
use crate::protocol::{ClientMessage, Envelope, ErrorCode, ErrorData, Reply};
use crate::session::auth::{token_from_request, Identity};
use crate::session::commands::{self, Dispatch, Failure};
use crate::session::reject::Reject;
use crate::session::sse::SseSession;
use crate::session::SessionShared;
use crate::topics::TopicSet;
use actix::Actor;
use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;
use std::sync::Arc;

/// State shared by all routes.
pub(crate) mod upgrade;

pub(crate) struct AppState {
    pub shared: Arc<SessionShared>,
    pub websocket_enabled: bool,
    pub allowed_origins: Vec<String>,
    pub max_message_bytes: usize,
    /// Where `GET /api/timeseries` reads the series: the simulation, or on a gateway
    /// the sim node's (through `cluster::gateway::RemoteSim`).
    pub series: actix::Recipient<ReadSeries>,
}

/// How long `GET /api/timeseries` waits for the world: on a gateway, the sim node's
/// request/reply bound plus the time the request may wait while NATS is being reached.
const SERIES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6);

/// The time series in `from..=to` as `format`, or why not (the message of the 503).
async fn read_series(
    series: &actix::Recipient<ReadSeries>,
    from: u64,
    to: u64,
    format: SeriesFormat,
) -> Result<String, String> {
    let read = series.send(ReadSeries { from, to, format });
    match tokio::time::timeout(SERIES_TIMEOUT, read).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => Err(format!("simulation unavailable: {e}")),
        Err(_) => Err(format!(
            "no answer from the simulation within {SERIES_TIMEOUT:?}"
        )),
    }
}

// `STATIC_FILES`: every file under `static/`, embedded by build.rs.
include!(concat!(env!("OUT_DIR"), "/static_files.rs"));

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(ws_route))
        .route("/events", web::get().to(events_route))
        .route("/api/command", web::post().to(command_route))
        .route("/api/snapshot", web::get().to(snapshot_route))
        .route("/api/timeseries", web::get().to(timeseries_route))
        .route("/metrics", web::get().to(metrics_route))
        .route(
            "/healthz",
            web::get().to(|| async { HttpResponse::Ok().body("ok") }),
        )
        .route("/", web::get().to(static_route))
        .route("/{file:.*}", web::get().to(static_route));
}

/// The HTTP service's `on_connect_ext` hook for every accepted TCP connection.
pub(crate) fn on_connect(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    if let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        if let Some(handle) = ConnHandle::from_stream(stream) {
            ext.insert(handle);
        }
    }
}

fn error_response(
    status: StatusCode,
    code: ErrorCode,
    message: &str,
    id: Option<&Value>,
) -> HttpResponse {
    let data = ErrorData {
        code: code.as_u16(),
        message: message.to_owned(),
    };
    HttpResponse::build(status)
        .content_type(ContentType::json())
        .body(Envelope::new("error", data).with_id(id).to_json())
}

/// A 400 with error 1001, counted.
fn bad_request(state: &AppState, message: &str, id: Option<&Value>) -> HttpResponse {
    state
        .shared
        .metrics
        .error(ErrorCode::InvalidMessage.as_u16());
    error_response(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidMessage,
        message,
        id,
    )
}

/// The role of the request's token, or the 401 response to send.
fn authorize(req: &HttpRequest, state: &AppState) -> Result<Identity, Box<HttpResponse>> {
    token_from_request(req.head())
        .and_then(|t| state.shared.tokens.identify(&t))
        .ok_or_else(|| {
            state.shared.metrics.error(ErrorCode::AuthFailed.as_u16());
            Box::new(error_response(
                StatusCode::UNAUTHORIZED,
                ErrorCode::AuthFailed,
                Reject::InvalidToken.reason(),
                None,
            ))
        })
}

/// `GET /ws` without an upgrade: a real handshake never reaches the routes (actix-http
/// hands it to [`upgrade::accept`]); this answers what that would have refused.
async fn ws_route(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match upgrade::admit(&state, req.head()) {
        Err(refusal) => refusal.response(),
        // Unreachable in practice: a request that passes the handshake checks is an
        // upgrade request, which the dispatcher never routes here.
        Ok(_) => HttpResponse::BadRequest().body("WebSocket handshake required"),
    }
}

#[derive(serde::Deserialize)]
struct EventsQuery {
    topics: Option<String>,
    /// `objects` (the default) or `compact` (see `protocol::SnapshotEncoding`).
    snapshot: Option<crate::protocol::SnapshotEncoding>,
    last_event_id: Option<u64>,
}

/// `GET /events`: the SSE fallback (see `session::sse`).
async fn events_route(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let who = match authorize(&req, &state) {
        Ok(who) => who,
        Err(resp) => return *resp,
    };
    let bad = |message: String| bad_request(&state, &message, None);
    let query = match web::Query::<EventsQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(e) => return bad(format!("bad query: {e}")),
    };
    let mut topics = TopicSet::default_topics();
    if let Some(list) = &query.topics {
        let parsed: Result<Vec<Topic>, String> = list
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::parse)
            .collect();
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => return bad(e),
        };
        topics = TopicSet::default();
        if let Err(e) = topics.add(&parsed) {
            return bad(e);
        }
    }
    let header_id = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let resume_from = header_id.or(query.last_event_id);
    let Some(permit) = state.shared.pool.try_acquire() else {
        Reject::PoolFull.count(&state.shared.metrics);
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerError,
            Reject::PoolFull.reason(),
            None,
        );
    };
    let conn = req.conn_data::<ConnHandle>().cloned();
    let (session, rx) = SseSession::new(
        Arc::clone(&state.shared),
        permit,
        who,
        topics,
        resume_from,
        conn,
        query.snapshot.unwrap_or_default(),
    );
    session.start();
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, actix_web::Error>(chunk), rx))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// A `reply` as the response body.
fn reply_response(reply: &Reply, id: Option<&Value>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(reply.to_json(id))
}

/// A failure the dispatch has counted already, with the status its kind calls for.
fn failure_response(failure: &Failure, id: Option<&Value>) -> HttpResponse {
    let status = match failure.code {
        _ if failure.unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::AuthFailed => StatusCode::FORBIDDEN,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    error_response(status, failure.code, &failure.message, id)
}

/// `POST /api/command`: the WebSocket `command` object (with or without
/// `"type":"command"`), dispatched as on a WebSocket (`session::commands`).
async fn command_route(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let who = match authorize(&req, &state) {
        Ok(who) => who,
        Err(resp) => return *resp,
    };
    let shared = &state.shared;
    shared.metrics.messages_received.inc();
    let bad = |message: String| bad_request(&state, &message, None);
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t,
        Err(_) => return bad("body must be UTF-8 JSON".into()),
    };
    let mut value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return bad(format!("invalid JSON: {e}")),
    };
    if let Value::Object(map) = &mut value {
        map.entry("type")
            .or_insert_with(|| Value::String("command".into()));
    }
    let (id, command) = match crate::protocol::parse_client_message(&value.to_string()) {
        Ok(ClientMessage::Command { id, command }) => (id, command),
        Ok(_) => return bad("the body must be a `command` object".into()),
        Err(e) => {
            let failure = commands::refuse(shared, who.role, &e);
            return failure_response(&failure, e.id.as_ref());
        }
    };
    let id = id.as_ref();
    match commands::dispatch(shared, who.role, who.label, command) {
        Err(failure) => failure_response(&failure, id),
        Ok(Dispatch::Reply(reply)) => reply_response(&reply, id),
        Ok(Dispatch::Snapshot) => match fetch_snapshot(&state).await {
            // The reply's result is the snapshot's data.
            Ok(text) => {
                let data = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|mut v| v.get_mut("data").map(Value::take))
                    .unwrap_or(Value::Null);
                reply_response(&Reply::new(data), id)
            }
            Err(resp) => resp,
        },
        Ok(Dispatch::Pending(answer)) => match answer.await {
            Ok(reply) => reply_response(&reply, id),
            Err(failure) => failure_response(&failure, id),
        },
    }
}

async fn fetch_snapshot(state: &AppState) -> Result<String, HttpResponse> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let unavailable = |e: String| {
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerError,
            &format!("snapshot unavailable: {e}"),
            None,
        )
    };
    state
        .shared
        .broker
        .send(RequestSnapshot {
            route: SnapshotRoute::Http { reply: tx },
        })
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    rx.await.map_err(|e| unavailable(e.to_string()))
}

async fn snapshot_route(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(resp) = authorize(&req, &state) {
        return *resp;
    }
    match fetch_snapshot(&state).await {
        Ok(text) => HttpResponse::Ok()
            .content_type(ContentType::json())
            .body(text),
        Err(resp) => resp,
    }
}

#[derive(serde::Deserialize)]
struct SeriesQuery {
    from_tick: Option<u64>,
    to_tick: Option<u64>,
    format: Option<String>,
}

/// `GET /api/timeseries?from_tick=A&to_tick=B&format=csv|json`: one row per retained
/// tick in the range, rendered by the world; JSON unless `format=csv`. On a gateway the rows
/// come from the sim node ([`SeriesSource`]); when it cannot be reached, a 503 says why.
async fn timeseries_route(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(resp) = authorize(&req, &state) {
        return *resp;
    }
    let query = match web::Query::<SeriesQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(e) => return bad_request(&state, &format!("bad query: {e}"), None),
    };
    let (from, to) = (
        query.from_tick.unwrap_or(0),
        query.to_tick.unwrap_or(u64::MAX),
    );
    if from > to {
        return bad_request(&state, "from_tick must not be after to_tick", None);
    }
    let format = match query.format.as_deref() {
        None | Some("json") => SeriesFormat::Json,
        Some("csv") => SeriesFormat::Csv,
        Some(other) => {
            return bad_request(
                &state,
                &format!("format must be csv or json, not {other}"),
                None,
            )
        }
    };
    let body = match read_series(&state.series, from, to, format).await {
        Ok(body) => body,
        Err(message) => {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServerError,
                &message,
                None,
            )
        }
    };
    let content_type = match format {
        SeriesFormat::Csv => "text/csv; charset=utf-8",
        SeriesFormat::Json => "application/json",
    };
    HttpResponse::Ok().content_type(content_type).body(body)
}

async fn metrics_route(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(resp) = authorize(&req, &state) {
        return *resp;
    }
    match state.shared.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ServerError,
            &e.to_string(),
            None,
        ),
    }
}

async fn static_route(req: HttpRequest) -> HttpResponse {
    let name = req.match_info().get("file").unwrap_or("index.html");
    let name = if name.is_empty() { "index.html" } else { name };
    match STATIC_FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, mime, body)) => HttpResponse::Ok()
            .content_type(*mime)
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(&body[..]),
        None => HttpResponse::NotFound().body("not found"),
    }
}
