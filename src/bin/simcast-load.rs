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
//! Example: `simcast-load --url ws://127.0.0.1:8080/ws --token T --clients 5000 --duration 30`

#[path = "simcast_load/procstat.rs"]
mod procstat;
#[path = "simcast_load/scan.rs"]
mod scan;

use clap::Parser;

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
}

/// Counters shared by every client task.
struct Shared {
    measuring: AtomicBool,
    connected_now: AtomicU64,
    connects_ok: AtomicU64,
    connects_failed: AtomicU64,
    frames: AtomicU64,
    items: AtomicU64,
    bytes: AtomicU64,
    batches: AtomicU64,
    m_frames: AtomicU64,
    m_items: AtomicU64,
    m_bytes: AtomicU64,
    latest_seq: AtomicU64,
    close_codes: Mutex<BTreeMap<String, u64>>,
    connect_errors: Mutex<BTreeMap<String, u64>>,
    results: Mutex<Vec<ClientResult>>,
    /// Latency in microseconds over the measured phase.
    latency: Mutex<Histogram<u64>>,
    /// Latency over the last progress interval.
    interval: Mutex<Histogram<u64>>,
}

/// What one client saw, for the continuity figures.
#[derive(Debug, Clone, Default)]
struct ClientResult {
    batches: u64,
    first_seq: Option<u64>,
    last_seq: u64,
    gaps: u64,
    stalled: bool,
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

fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
        lim.rlim_cur
    }
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
        // SAFETY: setsockopt with a valid fd and a c_int option value.
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
async fn client(
    i: usize,
    args: Arc<Args>,
    url: Arc<String>,
    target: SocketAddr,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let sources = args.sources.max(1) as usize;
    let source = Ipv4Addr::new(127, 0, 0, 1 + (i % sources) as u8);
    let stalled = i >= args.clients;
    let mut result = ClientResult {
        stalled,
        ..ClientResult::default()
    };
    let connect = async {
        let stream = connect_from(source, target)
            .await
            .map_err(|e| format!("tcp: {}", e.kind()))?;
        let config = WebSocketConfig {
            write_buffer_size: 0,
            ..WebSocketConfig::default()
        };
        tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(config))
            .await
            .map_err(|e| format!("handshake: {e}"))
    };
    let ws = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(15), connect) => r,
        _ = stop.changed() => return,
    };
    let mut ws = match ws {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => {
            shared.connects_failed.fetch_add(1, Ordering::Relaxed);
            return bump(&shared.connect_errors, e);
        }
        Err(_) => {
            shared.connects_failed.fetch_add(1, Ordering::Relaxed);
            return bump(&shared.connect_errors, "timeout".into());
        }
    };
    shared.connects_ok.fetch_add(1, Ordering::Relaxed);
    shared.connected_now.fetch_add(1, Ordering::Relaxed);
    let mut info = scan::BatchInfo::default();
    let mut subscribed = args.subscribe.is_empty();
    let ended = loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.changed() => break None,
        };
        let msg = match msg {
            None => break Some("eof".to_string()),
            Some(Err(e)) => break Some(format!("error: {e}")),
            Some(Ok(m)) => m,
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(frame) => {
                break Some(
                    frame
                        .map(|f| u16::from(f.code).to_string())
                        .unwrap_or_else(|| "1005".into()),
                )
            }
            _ => continue,
        };
        let measuring = shared.measuring.load(Ordering::Relaxed);
        shared.frames.fetch_add(1, Ordering::Relaxed);
        shared.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
        if measuring {
            shared.m_frames.fetch_add(1, Ordering::Relaxed);
            shared
                .m_bytes
                .fetch_add(text.len() as u64, Ordering::Relaxed);
        }
        if stalled {
            // Authenticated (the server sent something): from now on never read again.
            let _ = stop.changed().await;
            break None;
        }
        if !subscribed && scan::kind(&text) == Some("snapshot") {
            subscribed = true;
            let sub = json!({"type": "subscribe", "topics": args.subscribe}).to_string();
            if ws.send(Message::Text(sub)).await.is_err() {
                break Some("send failed".into());
            }
        }
        if scan::batch(&text, &mut info).is_none() {
            continue;
        }
        let now = now_s();
        shared.batches.fetch_add(1, Ordering::Relaxed);
        shared.latest_seq.fetch_max(info.seq, Ordering::Relaxed);
        let n = info.item_timestamps.len() as u64;
        shared.items.fetch_add(n, Ordering::Relaxed);
        match result.first_seq {
            None => result.first_seq = Some(info.seq),
            Some(_) if info.seq != result.last_seq + 1 => result.gaps += 1,
            Some(_) => {}
        }
        result.last_seq = info.seq;
        result.batches += 1;
        if measuring && n > 0 {
            shared.m_items.fetch_add(n, Ordering::Relaxed);
            // Items of one tick share a timestamp: record runs with record_n.
            let mut total = shared.latency.lock();
            let mut interval = shared.interval.lock();
            let mut k = 0;
            let ts = &info.item_timestamps;
            while k < ts.len() {
                let mut run = 1;
                while k + run < ts.len() && ts[k + run] == ts[k] {
                    run += 1;
                }
                let us = ((now - ts[k]) * 1e6).max(1.0) as u64;
                let _ = total.record_n(us, run as u64);
                let _ = interval.record_n(us, run as u64);
                k += run;
            }
        }
    };
    shared.connected_now.fetch_sub(1, Ordering::Relaxed);
    if let Some(code) = ended {
        bump(&shared.close_codes, code);
    }
    shared.results.lock().push(result);
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

async fn run(mut args: Args, target: SocketAddr) -> Value {
    if args.sources == 0 {
        args.sources = (args.clients + args.stalled).div_ceil(20_000).clamp(1, 254) as u8;
    }
    let mut url = args.url.clone();
    if let Some(t) = &args.token {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("token=");
        url.push_str(t);
    }
    let args = Arc::new(args);
    let url = Arc::new(url);
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        connected_now: AtomicU64::new(0),
        connects_ok: AtomicU64::new(0),
        connects_failed: AtomicU64::new(0),
        frames: AtomicU64::new(0),
        items: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        batches: AtomicU64::new(0),
        m_frames: AtomicU64::new(0),
        m_items: AtomicU64::new(0),
        m_bytes: AtomicU64::new(0),
        latest_seq: AtomicU64::new(0),
        close_codes: Mutex::new(BTreeMap::new()),
        connect_errors: Mutex::new(BTreeMap::new()),
        results: Mutex::new(Vec::new()),
        latency: Mutex::new(histogram()),
        interval: Mutex::new(histogram()),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration.max(0.1));
    let total = args.clients + args.stalled;

    // Connect at the requested rate, in a task of its own so progress keeps printing.
    let connector = {
        let (args, url, shared, stop_rx) = (
            Arc::clone(&args),
            Arc::clone(&url),
            Arc::clone(&shared),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            let rate = args.connect_rate.max(1) as f64;
            let mut handles = Vec::with_capacity(total);
            for i in 0..total {
                let due = started + Duration::from_secs_f64(i as f64 / rate);
                if due > deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                handles.push(tokio::spawn(client(
                    i,
                    Arc::clone(&args),
                    Arc::clone(&url),
                    target,
                    Arc::clone(&shared),
                    stop_rx.clone(),
                )));
            }
            handles
        })
    };

    let mut server = procstat::Track::default();
    let mut me = procstat::Track::default();
    let my_pid = std::process::id();
    if let Some(pid) = args.server_pid {
        if let Some(r) = procstat::read(pid) {
            server.push(r);
        }
    }
    let mut measure_started: Option<Instant> = None;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut last = (0u64, 0u64, 0u64, Instant::now());
    let mut all_attempted_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::time::sleep_until(deadline.into()) => break,
        }
        let attempted = shared.connects_ok.load(Ordering::Relaxed)
            + shared.connects_failed.load(Ordering::Relaxed);
        if all_attempted_at.is_none() && attempted >= total as u64 {
            all_attempted_at = Some(Instant::now());
        }
        let server_pct = args.server_pid.and_then(procstat::read).and_then(|r| {
            let p = server.push(r);
            if measure_started.is_some() && server.measure_start.is_none() {
                server.measure_start = Some(r);
            }
            p
        });
        if let Some(r) = procstat::read(my_pid) {
            me.push(r);
            if measure_started.is_some() && me.measure_start.is_none() {
                me.measure_start = Some(r);
            }
        }
        if measure_started.is_none() {
            if let Some(at) = all_attempted_at {
                if at.elapsed().as_secs_f64() >= args.warmup {
                    shared.measuring.store(true, Ordering::Relaxed);
                    measure_started = Some(Instant::now());
                }
            }
        }
        let (frames, items, bytes) = (
            shared.frames.load(Ordering::Relaxed),
            shared.items.load(Ordering::Relaxed),
            shared.bytes.load(Ordering::Relaxed),
        );
        let dt = last.3.elapsed().as_secs_f64().max(1e-3);
        let line = {
            let mut h = shared.interval.lock();
            let line = format!(
                "t={:5.1}s open={} ok={} failed={} frames/s={:.0} items/s={:.0} MB/s={:.2} p50={:.1}ms p99={:.1}ms max={:.1}ms{}{}",
                started.elapsed().as_secs_f64(),
                shared.connected_now.load(Ordering::Relaxed),
                shared.connects_ok.load(Ordering::Relaxed),
                shared.connects_failed.load(Ordering::Relaxed),
                (frames - last.0) as f64 / dt,
                (items - last.1) as f64 / dt,
                (bytes - last.2) as f64 / dt / 1e6,
                pct(&h, 0.5),
                pct(&h, 0.99),
                h.max() as f64 / 1000.0,
                server
                    .last
                    .map(|r| format!(" server_rss={}MiB", r.rss_kib / 1024))
                    .unwrap_or_default(),
                server_pct.map(|p| format!(" server_cpu={p:.0}%")).unwrap_or_default(),
            );
            h.reset();
            line
        };
        last = (frames, items, bytes, Instant::now());
        if !args.quiet {
            eprintln!("{line}");
        }
    }
    let measured_s = measure_started
        .map(|m| m.elapsed().as_secs_f64())
        .unwrap_or(0.0);
    shared.measuring.store(false, Ordering::Relaxed);
    if let Some(r) = args.server_pid.and_then(procstat::read) {
        server.push(r);
    }
    if let Some(r) = procstat::read(my_pid) {
        me.push(r);
    }
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

    summary(&args, &shared, started, measured_s, &server, &me, my_pid)
}

fn summary(
    args: &Args,
    shared: &Shared,
    started: Instant,
    measured_s: f64,
    server: &procstat::Track,
    me: &procstat::Track,
    my_pid: u32,
) -> Value {
    let results = shared.results.lock();
    let readers: Vec<&ClientResult> = results.iter().filter(|r| !r.stalled).collect();
    let latest = shared.latest_seq.load(Ordering::Relaxed);
    let with_batches = readers.iter().filter(|r| r.batches > 0).count();
    let min_batches = readers.iter().map(|r| r.batches).min().unwrap_or(0);
    let max_batches = readers.iter().map(|r| r.batches).max().unwrap_or(0);
    let gaps: u64 = readers.iter().map(|r| r.gaps).sum();
    let with_gaps = readers.iter().filter(|r| r.gaps > 0).count();
    // How far each reader's last batch is behind the newest anyone saw when the run
    // stopped: a tick's batches in flight at that moment are normal, more means lag.
    let mut lag: Vec<u64> = readers
        .iter()
        .filter(|r| r.batches > 0)
        .map(|r| latest.saturating_sub(r.last_seq))
        .collect();
    lag.sort_unstable();
    let lag_at = |q: f64| {
        lag.get(((lag.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    let h = shared.latency.lock();
    let m = measured_s.max(1e-9);
    let mut out = json!({
        "url": args.url,
        "clients": args.clients,
        "stalled_clients": args.stalled,
        "source_addresses": args.sources,
        "subscribe": args.subscribe,
        "duration_s": started.elapsed().as_secs_f64(),
        "measured_s": measured_s,
        "connections": {
            "ok": shared.connects_ok.load(Ordering::Relaxed),
            "failed": shared.connects_failed.load(Ordering::Relaxed),
            "errors": *shared.connect_errors.lock(),
            "ended_early": *shared.close_codes.lock(),
        },
        "totals": {
            "frames": shared.frames.load(Ordering::Relaxed),
            "items": shared.items.load(Ordering::Relaxed),
            "batches": shared.batches.load(Ordering::Relaxed),
            "bytes": shared.bytes.load(Ordering::Relaxed),
        },
        "rates": {
            "frames_per_s": shared.m_frames.load(Ordering::Relaxed) as f64 / m,
            "items_per_s": shared.m_items.load(Ordering::Relaxed) as f64 / m,
            "bytes_per_s": shared.m_bytes.load(Ordering::Relaxed) as f64 / m,
        },
        "latency_ms": {
            "count": h.len(),
            "p50": pct(&h, 0.5),
            "p90": pct(&h, 0.9),
            "p99": pct(&h, 0.99),
            "p999": pct(&h, 0.999),
            "max": h.max() as f64 / 1000.0,
        },
        "continuity": {
            "readers": readers.len(),
            "readers_with_batches": with_batches,
            "readers_without_batches": readers.len() - with_batches,
            "min_batches_per_reader": min_batches,
            "max_batches_per_reader": max_batches,
            "seq_gaps": gaps,
            "readers_with_gaps": with_gaps,
            "lag_at_end_batches": {"p50": lag_at(0.5), "p99": lag_at(0.99), "max": lag.last()},
            "latest_seq": latest,
        },
        "load_generator": me.json(my_pid),
    });
    if let Some(pid) = args.server_pid {
        out["server"] = server.json(pid);
    }
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
