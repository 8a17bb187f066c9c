//! `simcast-load`: a loopback load generator for simcast.
//!
//! Opens N WebSocket clients (tokio-tungstenite) against a simcast server on
//! 127.0.0.0/8, spread over several source addresses (127.0.0.1..127.0.0.k, bound before
//! connect with `IP_BIND_ADDRESS_NO_PORT`) so more than ~28 000 ephemeral ports are
//! available, and measures: connections made and failed, close codes, frames/s,
//! items/s, bytes/s, per-client seq continuity (does every client get every batch?) and
//! the latency from each item's `timestamp` (set when the simulation made it) to its
//! receipt, with an HDR histogram. Progress goes to stderr each second; a JSON summary
//! goes to stdout at the end. With `--server-pid` it samples the server's RSS and CPU
//! from /proc every second. It stops by itself after `--duration` and refuses any host
//! outside 127.0.0.0/8.
//!
//! Continuity follows protocol 1.1 batch ranges (`continuity`): a batch's `from_seq`
//! must follow the previous batch's `seq`, or the join snapshot's; against a v1 server
//! (no `from_seq`) the rule is `seq` = previous + 1.
//!
//! `--mode lean` measures the lean baseline broadcaster (`shared/peers/lean-broadcaster`)
//! with the same code, so the two servers are compared by one instrument: its frames
//! carry no seq (continuity is not judged) and latency comes from each event's `ts`.
//! The summary's `per_client` block (events/s and mean event bytes per client) is what
//! the lean broadcaster's `--events` and `--size` are set from.
//!
//! Example: `simcast-load --url ws://127.0.0.1:8080/ws --token T --clients 5000 --duration 30`

mod continuity;
mod procstat;
mod scan;

use clap::{Parser, ValueEnum};

/// Same allocator as the server: thousands of client tasks allocate and free per frame.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "simcast-load",
    version,
    about = "Loopback WebSocket load generator for simcast"
)]
struct Args {
    /// WebSocket URL; the host must be in 127.0.0.0/8 (or `localhost`).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// Token, sent as `?token=` on the URL.
    #[arg(long)]
    token: Option<String>,
    /// Number of WebSocket clients.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// New connections per second.
    #[arg(long, default_value_t = 2000)]
    connect_rate: u32,
    /// Total run time in seconds, connecting included; the run stops by itself then.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds after the last connection attempt before rates and latency are recorded.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Topics to subscribe to after `welcome` (comma-separated, e.g.
    /// `character_update,character:7`); without it clients keep the default topics.
    #[arg(long, value_delimiter = ',')]
    subscribe: Vec<String>,
    /// Number of source addresses 127.0.0.1..127.0.0.k; 0 = one per 20 000 clients.
    #[arg(long, default_value_t = 0)]
    sources: u8,
    /// The server's PID: sample its RSS and CPU from /proc every second.
    #[arg(long)]
    server_pid: Option<u32>,
    /// This many extra clients that authenticate and then never read (slow consumers);
    /// they are left out of latency and continuity figures.
    #[arg(long, default_value_t = 0)]
    stalled: usize,
    /// Tokio worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Do not print progress lines.
    #[arg(long)]
    quiet: bool,
    /// Which server speaks on `--url`: simcast, or the lean baseline broadcaster.
    #[arg(long, value_enum, default_value_t = Mode::Simcast)]
    mode: Mode,
}

/// The frame shapes to expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// simcast: welcome, snapshot, then `batch` frames with `seq` (and `from_seq`).
    Simcast,
    /// The lean broadcaster: `{"type":"batch","ts":MS,"data":[...]}` only, no seq.
    Lean,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;
type Stop = tokio::sync::watch::Receiver<bool>;

/// Counters shared by every client task. `m_*` count only the measured phase.
struct Shared {
    measuring: AtomicBool,
    connected_now: AtomicU64,
    connects_ok: AtomicU64,
    connects_failed: AtomicU64,
    frames: AtomicU64,
    items: AtomicU64,
    item_bytes: AtomicU64,
    bytes: AtomicU64,
    batches: AtomicU64,
    m_frames: AtomicU64,
    m_items: AtomicU64,
    m_item_bytes: AtomicU64,
    m_bytes: AtomicU64,
    latest_seq: AtomicU64,
    close_codes: Mutex<BTreeMap<String, u64>>,
    connect_errors: Mutex<BTreeMap<String, u64>>,
    results: Mutex<Vec<ClientResult>>,
    /// Latency in microseconds over the measured phase.
    latency: Mutex<Histogram<u64>>,
    /// Latency over the last progress interval.
    interval: Mutex<Histogram<u64>>,
    /// simcast only: per item, from the frame's own timestamp (the broker's flush) to
    /// receipt, over the measured phase and over the last interval. Splits the latency
    /// into the server's side before the flush and delivery after it.
    after_flush: Mutex<Histogram<u64>>,
    after_flush_interval: Mutex<Histogram<u64>>,
}

impl Shared {
    fn new() -> Self {
        Shared {
            measuring: AtomicBool::new(false),
            connected_now: AtomicU64::new(0),
            connects_ok: AtomicU64::new(0),
            connects_failed: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            items: AtomicU64::new(0),
            item_bytes: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            m_frames: AtomicU64::new(0),
            m_items: AtomicU64::new(0),
            m_item_bytes: AtomicU64::new(0),
            m_bytes: AtomicU64::new(0),
            latest_seq: AtomicU64::new(0),
            close_codes: Mutex::new(BTreeMap::new()),
            connect_errors: Mutex::new(BTreeMap::new()),
            results: Mutex::new(Vec::new()),
            latency: Mutex::new(histogram()),
            interval: Mutex::new(histogram()),
            after_flush: Mutex::new(histogram()),
            after_flush_interval: Mutex::new(histogram()),
        }
    }

    /// Counts one received frame; returns whether the measured phase is on.
    fn count_frame(&self, len: usize) -> bool {
        let measuring = self.measuring.load(Ordering::Relaxed);
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        if measuring {
            self.m_frames.fetch_add(1, Ordering::Relaxed);
            self.m_bytes.fetch_add(len as u64, Ordering::Relaxed);
        }
        measuring
    }

    /// Counts one batch's items and, while measuring, their latency at `now`.
    fn record_batch(&self, info: &scan::BatchInfo, now: f64, measuring: bool) {
        let n = info.item_timestamps.len() as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(n, Ordering::Relaxed);
        self.item_bytes
            .fetch_add(info.item_bytes, Ordering::Relaxed);
        if !measuring || n == 0 {
            return;
        }
        self.m_items.fetch_add(n, Ordering::Relaxed);
        self.m_item_bytes
            .fetch_add(info.item_bytes, Ordering::Relaxed);
        self.record_latency(&info.item_timestamps, now);
        if let Some(flushed) = info.frame_timestamp {
            let us = ((now - flushed) * 1e6).max(1.0) as u64;
            let _ = self.after_flush.lock().record_n(us, n);
            let _ = self.after_flush_interval.lock().record_n(us, n);
        }
    }

    /// Items of one tick share a timestamp: runs of equal ones go in with `record_n`.
    fn record_latency(&self, ts: &[f64], now: f64) {
        let mut total = self.latency.lock();
        let mut interval = self.interval.lock();
        let mut k = 0;
        while k < ts.len() {
            let run = ts[k..].iter().take_while(|&&t| t == ts[k]).count();
            let us = ((now - ts[k]) * 1e6).max(1.0) as u64;
            let _ = total.record_n(us, run as u64);
            let _ = interval.record_n(us, run as u64);
            k += run;
        }
    }
}

/// What one client saw, for the continuity figures.
#[derive(Debug, Clone, Default)]
struct ClientResult {
    continuity: continuity::Continuity,
    stalled: bool,
}

/// What every client task shares: the run's arguments, the URL with its token, the
/// target address and the counters.
struct Ctx {
    args: Args,
    url: String,
    target: SocketAddr,
    shared: Shared,
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 10 min at 3 significant figures.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The server address, refusing anything outside 127.0.0.0/8.
fn loopback_target(url: &str) -> Result<SocketAddr, String> {
    let uri: Uri = url.parse().map_err(|e| format!("bad --url {url}: {e}"))?;
    match uri.scheme_str() {
        Some("ws") => {}
        other => return Err(format!("--url must be ws:// (got {other:?})")),
    }
    let host = uri.host().ok_or("--url has no host")?;
    let ip: Ipv4Addr = if host == "localhost" {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse()
            .map_err(|_| format!("--url host {host} is not an IPv4 loopback address"))?
    };
    if !ip.is_loopback() {
        return Err(format!(
            "refusing {ip}: simcast-load only talks to 127.0.0.0/8"
        ));
    }
    Ok(SocketAddr::V4(SocketAddrV4::new(
        ip,
        uri.port_u16().unwrap_or(80),
    )))
}

/// Raises the open-file soft limit to the hard one; returns the limit now in force.
fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft))
        .unwrap_or(0)
}

/// A TCP connection from `source` (port chosen at connect time, so each source
/// address has its own ~28 000 ports per destination).
async fn connect_from(
    source: Ipv4Addr,
    target: SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4()?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a valid fd and a c_int option value (socket2 has no
        // setter for IP_BIND_ADDRESS_NO_PORT).
        #[allow(unsafe_code)]
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    socket.set_nodelay(true)?;
    socket.connect(target).await
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: String) {
    *map.lock().entry(key).or_insert(0) += 1;
}

/// One client: connect, read until stopped, record what it saw.
async fn client(i: usize, ctx: Arc<Ctx>, mut stop: Stop) {
    let Some(ws) = open(i, &ctx, &mut stop).await else {
        return;
    };
    let shared = &ctx.shared;
    shared.connects_ok.fetch_add(1, Ordering::Relaxed);
    shared.connected_now.fetch_add(1, Ordering::Relaxed);
    let mut result = ClientResult {
        stalled: i >= ctx.args.clients,
        ..ClientResult::default()
    };
    let ended = read_loop(ws, &ctx, &mut stop, &mut result).await;
    shared.connected_now.fetch_sub(1, Ordering::Relaxed);
    if let Some(code) = ended {
        bump(&shared.close_codes, code);
    }
    shared.results.lock().push(result);
}

/// Connects client `i` from its source address; a failure is counted, not returned.
async fn open(i: usize, ctx: &Ctx, stop: &mut Stop) -> Option<Ws> {
    let sources = ctx.args.sources.max(1) as usize;
    let source = Ipv4Addr::new(127, 0, 0, 1 + (i % sources) as u8);
    let attempt = tokio::time::timeout(Duration::from_secs(15), handshake(source, ctx));
    let outcome = tokio::select! {
        r = attempt => r,
        _ = stop.changed() => return None,
    };
    let error = match outcome {
        Ok(Ok(ws)) => return Some(ws),
        Ok(Err(e)) => e,
        Err(_) => "timeout".to_string(),
    };
    ctx.shared.connects_failed.fetch_add(1, Ordering::Relaxed);
    bump(&ctx.shared.connect_errors, error);
    None
}

async fn handshake(source: Ipv4Addr, ctx: &Ctx) -> Result<Ws, String> {
    let stream = connect_from(source, ctx.target)
        .await
        .map_err(|e| format!("tcp: {}", e.kind()))?;
    let config = WebSocketConfig {
        write_buffer_size: 0,
        ..WebSocketConfig::default()
    };
    tokio_tungstenite::client_async_with_config(ctx.url.as_str(), stream, Some(config))
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| format!("handshake: {e}"))
}

/// Reads frames until the run stops (`None`) or the connection ends (how it ended:
/// the close code, `eof` or the error).
async fn read_loop(
    mut ws: Ws,
    ctx: &Ctx,
    stop: &mut Stop,
    result: &mut ClientResult,
) -> Option<String> {
    let mut reader = Reader {
        info: scan::BatchInfo::default(),
        subscribed: ctx.args.subscribe.is_empty() || ctx.args.mode == Mode::Lean,
    };
    // One stop future for the whole loop: making (and dropping) a fresh `changed()`
    // per frame was ~4 % of the load generator's CPU at 100 000 frames/s.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = &mut stopped => return None,
        };
        let text = match msg {
            None => return Some("eof".to_string()),
            Some(Err(e)) => return Some(format!("error: {e}")),
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(frame))) => {
                return Some(
                    frame
                        .map(|f| u16::from(f.code).to_string())
                        .unwrap_or_else(|| "1005".into()),
                )
            }
            Some(Ok(_)) => continue,
        };
        let measuring = ctx.shared.count_frame(text.len());
        if result.stalled {
            // Authenticated (the server sent something): from now on never read again.
            let _ = (&mut stopped).await;
            return None;
        }
        if let Some(reply) = reader.on_text(&text, ctx, result, measuring) {
            if ws.send(Message::Text(reply)).await.is_err() {
                return Some("send failed".into());
            }
        }
    }
}

/// Per-connection reading state.
struct Reader {
    info: scan::BatchInfo,
    subscribed: bool,
}

impl Reader {
    /// Handles one text frame; returns what to send back (the `subscribe` that follows
    /// the join snapshot when `--subscribe` was given).
    fn on_text(
        &mut self,
        text: &str,
        ctx: &Ctx,
        result: &mut ClientResult,
        measuring: bool,
    ) -> Option<String> {
        if ctx.args.mode == Mode::Lean {
            if scan::lean_batch(text, &mut self.info).is_some() {
                result.continuity.unnumbered();
                ctx.shared.record_batch(&self.info, now_s(), measuring);
            }
            return None;
        }
        if scan::batch(text, &mut self.info).is_some() {
            let seq = self.info.seq.unwrap_or(0);
            result.continuity.batch(self.info.from_seq, seq);
            ctx.shared.latest_seq.fetch_max(seq, Ordering::Relaxed);
            ctx.shared.record_batch(&self.info, now_s(), measuring);
            return None;
        }
        if scan::kind(text) != Some("snapshot") {
            return None;
        }
        if let Some(seq) = scan::snapshot_seq(text) {
            result.continuity.snapshot(seq);
        }
        if self.subscribed {
            return None;
        }
        self.subscribed = true;
        Some(json!({"type": "subscribe", "topics": ctx.args.subscribe}).to_string())
    }
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

fn main() -> ExitCode {
    let args = Args::parse();
    let target = match loopback_target(&args.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("simcast-load: {e}");
            return ExitCode::from(2);
        }
    };
    let nofile = raise_nofile();
    let total = args.clients + args.stalled;
    if (total as u64) + 64 > nofile {
        eprintln!(
            "simcast-load: {total} clients need more than the open-file limit {nofile}; \
             run several processes"
        );
        return ExitCode::from(2);
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        builder.worker_threads(args.threads);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("simcast-load: runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let summary = rt.block_on(run(args, target));
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    // Dropping thousands of sockets is the kernel's job; do not wait for the runtime.
    std::process::exit(0);
}

/// `url` with `?token=` (or `&token=`) appended when a token was given.
fn token_url(args: &Args) -> String {
    let mut url = args.url.clone();
    if let Some(t) = &args.token {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("token=");
        url.push_str(t);
    }
    url
}

async fn run(mut args: Args, target: SocketAddr) -> Value {
    if args.sources == 0 {
        args.sources = (args.clients + args.stalled).div_ceil(20_000).clamp(1, 254) as u8;
    }
    let ctx = Arc::new(Ctx {
        url: token_url(&args),
        args,
        target,
        shared: Shared::new(),
    });
    // The server's first reading is taken before any connection: the RSS baseline.
    let mut monitor = Monitor::new(ctx.args.server_pid);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(ctx.args.duration.max(0.1));
    // Connect at the requested rate, in a task of its own so progress keeps printing.
    let connector = tokio::spawn(connect_all(Arc::clone(&ctx), started, deadline, stop_rx));
    monitor.watch_until(&ctx, started, deadline).await;
    let measured_s = monitor.end_measuring(&ctx.shared);
    let _ = stop_tx.send(true);
    let handles = match tokio::time::timeout(Duration::from_secs(5), connector).await {
        Ok(Ok(h)) => h,
        _ => Vec::new(),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::future::join_all(handles),
    )
    .await;
    summary(&ctx, started, measured_s, &monitor)
}

/// Starts every client at `--connect-rate`, none after `deadline`.
async fn connect_all(
    ctx: Arc<Ctx>,
    started: Instant,
    deadline: Instant,
    stop: Stop,
) -> Vec<tokio::task::JoinHandle<()>> {
    let rate = ctx.args.connect_rate.max(1) as f64;
    let total = ctx.args.clients + ctx.args.stalled;
    let mut handles = Vec::with_capacity(total);
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        if due > deadline {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        handles.push(tokio::spawn(client(i, Arc::clone(&ctx), stop.clone())));
    }
    handles
}

/// The once-a-second side of a run: /proc samples, the start of the measured phase,
/// progress lines.
struct Monitor {
    server_pid: Option<u32>,
    my_pid: u32,
    server: procstat::Track,
    me: procstat::Track,
    measure_started: Option<Instant>,
    all_attempted_at: Option<Instant>,
    /// Frames, items, bytes and time at the previous progress line.
    last: (u64, u64, u64, Instant),
}

impl Monitor {
    fn new(server_pid: Option<u32>) -> Self {
        let mut server = procstat::Track::default();
        if let Some(r) = server_pid.and_then(procstat::read) {
            server.push(r);
        }
        Monitor {
            server_pid,
            my_pid: std::process::id(),
            server,
            me: procstat::Track::default(),
            measure_started: None,
            all_attempted_at: None,
            last: (0, 0, 0, Instant::now()),
        }
    }

    async fn watch_until(&mut self, ctx: &Ctx, started: Instant, deadline: Instant) {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.tick().await;
        while Instant::now() < deadline {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = tokio::time::sleep_until(deadline.into()) => break,
            }
            self.second(ctx, started);
        }
    }

    fn second(&mut self, ctx: &Ctx, started: Instant) {
        let shared = &ctx.shared;
        let attempted = shared.connects_ok.load(Ordering::Relaxed)
            + shared.connects_failed.load(Ordering::Relaxed);
        let total = (ctx.args.clients + ctx.args.stalled) as u64;
        if self.all_attempted_at.is_none() && attempted >= total {
            self.all_attempted_at = Some(Instant::now());
        }
        let server_pct = self.sample();
        self.maybe_start_measuring(shared, ctx.args.warmup);
        let line = self.progress_line(shared, started, server_pct);
        if !ctx.args.quiet {
            eprintln!("{line}");
        }
    }

    /// Reads /proc for the server and for this process; the server's CPU % since the
    /// previous reading.
    fn sample(&mut self) -> Option<f64> {
        let measuring = self.measure_started.is_some();
        let server_pct = self.server_pid.and_then(procstat::read).and_then(|r| {
            if measuring && self.server.measure_start.is_none() {
                self.server.measure_start = Some(r);
            }
            self.server.push(r)
        });
        if let Some(r) = procstat::read(self.my_pid) {
            if measuring && self.me.measure_start.is_none() {
                self.me.measure_start = Some(r);
            }
            self.me.push(r);
        }
        server_pct
    }

    fn maybe_start_measuring(&mut self, shared: &Shared, warmup: f64) {
        let warm = self
            .all_attempted_at
            .is_some_and(|at| at.elapsed().as_secs_f64() >= warmup);
        if self.measure_started.is_none() && warm {
            shared.measuring.store(true, Ordering::Relaxed);
            self.measure_started = Some(Instant::now());
        }
    }

    fn progress_line(
        &mut self,
        shared: &Shared,
        started: Instant,
        server_pct: Option<f64>,
    ) -> String {
        let (frames, items, bytes) = (
            shared.frames.load(Ordering::Relaxed),
            shared.items.load(Ordering::Relaxed),
            shared.bytes.load(Ordering::Relaxed),
        );
        let dt = self.last.3.elapsed().as_secs_f64().max(1e-3);
        let mut h = shared.interval.lock();
        let line = format!(
            "t={:5.1}s open={} ok={} failed={} frames/s={:.0} items/s={:.0} MB/s={:.2} p50={:.1}ms p99={:.1}ms max={:.1}ms{}{}",
            started.elapsed().as_secs_f64(),
            shared.connected_now.load(Ordering::Relaxed),
            shared.connects_ok.load(Ordering::Relaxed),
            shared.connects_failed.load(Ordering::Relaxed),
            (frames - self.last.0) as f64 / dt,
            (items - self.last.1) as f64 / dt,
            (bytes - self.last.2) as f64 / dt / 1e6,
            pct(&h, 0.5),
            pct(&h, 0.99),
            h.max() as f64 / 1000.0,
            self.server
                .last
                .map(|r| format!(" server_rss={}MiB", r.rss_kib / 1024))
                .unwrap_or_default(),
            server_pct.map(|p| format!(" server_cpu={p:.0}%")).unwrap_or_default(),
        );
        h.reset();
        let mut flush = shared.after_flush_interval.lock();
        let line = if flush.is_empty() {
            line
        } else {
            format!("{line} after_flush_p99={:.1}ms", pct(&flush, 0.99))
        };
        flush.reset();
        self.last = (frames, items, bytes, Instant::now());
        line
    }

    /// Ends the measured phase with a last /proc reading; its length in seconds.
    fn end_measuring(&mut self, shared: &Shared) -> f64 {
        let measured_s = self
            .measure_started
            .map(|m| m.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        shared.measuring.store(false, Ordering::Relaxed);
        if let Some(r) = self.server_pid.and_then(procstat::read) {
            self.server.push(r);
        }
        if let Some(r) = procstat::read(self.my_pid) {
            self.me.push(r);
        }
        measured_s
    }
}

/// The JSON summary printed at the end of a run.
fn summary(ctx: &Ctx, started: Instant, measured_s: f64, monitor: &Monitor) -> Value {
    let (args, shared) = (&ctx.args, &ctx.shared);
    let results = shared.results.lock();
    let readers: Vec<&ClientResult> = results.iter().filter(|r| !r.stalled).collect();
    let m = measured_s.max(1e-9);
    let mut out = json!({
        "url": args.url,
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "clients": args.clients,
        "stalled_clients": args.stalled,
        "source_addresses": args.sources,
        "subscribe": args.subscribe,
        "duration_s": started.elapsed().as_secs_f64(),
        "measured_s": measured_s,
        "connections": connections_json(args, shared),
        "totals": {
            "frames": shared.frames.load(Ordering::Relaxed),
            "items": shared.items.load(Ordering::Relaxed),
            "batches": shared.batches.load(Ordering::Relaxed),
            "bytes": shared.bytes.load(Ordering::Relaxed),
            "frames_measured": shared.m_frames.load(Ordering::Relaxed),
            "items_measured": shared.m_items.load(Ordering::Relaxed),
        },
        "rates": {
            "frames_per_s": shared.m_frames.load(Ordering::Relaxed) as f64 / m,
            "items_per_s": shared.m_items.load(Ordering::Relaxed) as f64 / m,
            "bytes_per_s": shared.m_bytes.load(Ordering::Relaxed) as f64 / m,
        },
        "per_client": per_client_json(shared, m, readers.len()),
        "latency_ms": latency_json(&shared.latency.lock()),
        "after_flush_ms": latency_json(&shared.after_flush.lock()),
        "continuity": continuity_json(&readers, shared, args.mode),
        "load_generator": monitor.me.json(monitor.my_pid),
    });
    if let Some(pid) = args.server_pid {
        let sockets = shared.connects_ok.load(Ordering::Relaxed);
        out["server"] = server_json(&monitor.server, pid, sockets);
    }
    out
}

fn connections_json(args: &Args, shared: &Shared) -> Value {
    let ok = shared.connects_ok.load(Ordering::Relaxed);
    json!({
        "ok": ok,
        "failed": shared.connects_failed.load(Ordering::Relaxed),
        // Failed, timed out, or not even attempted before the run ended.
        "never_connected": ((args.clients + args.stalled) as u64).saturating_sub(ok),
        "errors": *shared.connect_errors.lock(),
        "ended_early": *shared.close_codes.lock(),
    })
}

/// Rates per connected reader over the measured phase, and the mean event size: what
/// the lean broadcaster's `--events` and `--size` are set from.
fn per_client_json(shared: &Shared, measured_s: f64, readers: usize) -> Value {
    let per = |v: u64| v as f64 / measured_s / readers.max(1) as f64;
    let (items, item_bytes) = match shared.m_items.load(Ordering::Relaxed) {
        0 => (
            shared.items.load(Ordering::Relaxed),
            shared.item_bytes.load(Ordering::Relaxed),
        ),
        n => (n, shared.m_item_bytes.load(Ordering::Relaxed)),
    };
    json!({
        "readers": readers,
        "frames_per_s": per(shared.m_frames.load(Ordering::Relaxed)),
        "events_per_s": per(shared.m_items.load(Ordering::Relaxed)),
        "bytes_per_s": per(shared.m_bytes.load(Ordering::Relaxed)),
        "event_bytes_mean": if items == 0 { 0.0 } else { item_bytes as f64 / items as f64 },
    })
}

fn latency_json(h: &Histogram<u64>) -> Value {
    json!({
        "count": h.len(),
        "p50": pct(h, 0.5),
        "p90": pct(h, 0.9),
        "p99": pct(h, 0.99),
        "p999": pct(h, 0.999),
        "max": h.max() as f64 / 1000.0,
    })
}

fn continuity_json(readers: &[&ClientResult], shared: &Shared, mode: Mode) -> Value {
    let counts = || readers.iter().map(|r| r.continuity.batches);
    let with_batches = counts().filter(|&b| b > 0).count();
    let mut out = json!({
        "readers": readers.len(),
        "readers_with_batches": with_batches,
        "readers_without_batches": readers.len() - with_batches,
        "min_batches_per_reader": counts().min().unwrap_or(0),
        "max_batches_per_reader": counts().max().unwrap_or(0),
        // The lean broadcaster numbers nothing: continuity cannot be judged there.
        "seq_gaps": Value::Null,
        "readers_with_gaps": Value::Null,
    });
    if mode == Mode::Simcast {
        let latest = shared.latest_seq.load(Ordering::Relaxed);
        out["seq_gaps"] = json!(readers.iter().map(|r| r.continuity.gaps).sum::<u64>());
        out["readers_with_gaps"] = json!(readers.iter().filter(|r| r.continuity.gaps > 0).count());
        out["lag_at_end_batches"] = lag_json(readers, latest);
        out["latest_seq"] = json!(latest);
    }
    out
}

/// How far each reader's last batch is behind the newest anyone saw when the run
/// stopped: a tick's batches in flight at that moment are normal, more means lag.
fn lag_json(readers: &[&ClientResult], latest: u64) -> Value {
    let mut lag: Vec<u64> = readers
        .iter()
        .filter(|r| r.continuity.batches > 0)
        .map(|r| latest.saturating_sub(r.continuity.last_seq))
        .collect();
    lag.sort_unstable();
    let at = |q: f64| {
        lag.get(((lag.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    json!({"p50": at(0.5), "p99": at(0.99), "max": lag.last()})
}

/// The server's /proc figures, plus cores used and RSS per connected socket (peak RSS
/// over sockets, and the growth from the pre-connection baseline over sockets).
fn server_json(track: &procstat::Track, pid: u32, sockets: u64) -> Value {
    let mut out = track.json(pid);
    let per = |kib: u64| kib as f64 / sockets.max(1) as f64;
    out["sockets"] = json!(sockets);
    out["cores_used_measured"] = json!(track.cpu_avg_measured().map(|p| p / 100.0));
    out["cores_used_max"] = json!(track.cpu_max_pct / 100.0);
    out["rss_kib_per_socket_peak"] = json!(per(track.rss_max_kib));
    out["rss_kib_per_socket_added"] = json!(track
        .first
        .map(|f| per(track.rss_max_kib.saturating_sub(f.rss_kib))));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        assert!(loopback_target("ws://127.0.0.1:8080/ws").is_ok());
        assert!(loopback_target("ws://127.0.0.5:1/ws").is_ok());
        assert!(loopback_target("ws://localhost:9/ws").is_ok());
        assert!(loopback_target("ws://10.0.0.1:8080/ws").is_err());
        assert!(loopback_target("ws://example.com/ws").is_err());
        assert!(loopback_target("wss://127.0.0.1/ws").is_err());
    }
}
