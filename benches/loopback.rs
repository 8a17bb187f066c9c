//! Delivery over real loopback sockets: the whole server (`simcast::run` on 127.0.0.1:0)
//! and N WebSocket clients (tokio-tungstenite) in one process.
//!
//! One iteration schedules an event for the next tick, steps the paused world by that
//! one tick, and waits until every client has read the frame carrying it. So it measures
//! what a live broadcast does per tick: simulation → broker (range frame, fan-out) →
//! sessions → sockets → clients, at 1, 100 and 1 000 receivers. Throughput is in
//! deliveries (one frame to one client). The clients share the machine's two cores with
//! the server, as in the load runs, so compare widths and commits, not absolute speed.

use actix::Addr;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::StreamExt;
use simcast::config::{Config, TokenConfig};
use simcast::ports::RunCommand;
use simcast::protocol::{Command, Role};
use simcast::sim::actor::Simulation;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "bench-op";
const WIDTHS: [usize; 3] = [1, 100, 1_000];

/// A server started on its own thread; stopped (and its data directory removed) on drop.
struct Server {
    addr: SocketAddr,
    sim: Addr<Simulation>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: std::path::PathBuf,
}

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.auth.tokens = vec![TokenConfig {
        token: TOKEN.into(),
        role: Role::Operator,
        name: None,
    }];
    c.pool.max_connections = 2_000;
    c.sim.characters = 200;
    c.persistence.dir = dir.display().to_string();
    c
}

impl Server {
    fn start() -> Server {
        let dir = std::env::temp_dir().join(format!("simcast-bench-{}", std::process::id()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let config = config(&dir);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix::System::new();
            system.block_on(async move {
                let mut running = simcast::start(listener, config).expect("server starts");
                let arbiters = std::mem::take(&mut running.arbiters);
                let started = (running.addr, running.sim.clone(), running.handle());
                tx.send(started).expect("report address");
                let _ = running.server.await;
                for a in arbiters {
                    a.stop();
                }
            });
        });
        let (addr, sim, handle) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server started");
        Server {
            addr,
            sim: sim.expect("a standalone server has a simulation"),
            handle,
            thread: Some(thread),
            dir,
        }
    }

    fn command(&self, rt: &tokio::runtime::Runtime, command: Command) {
        let by = "bench".to_owned();
        let reply = rt.block_on(self.sim.send(RunCommand { command, by }));
        assert!(matches!(reply, Ok(Ok(_))), "command failed: {reply:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let _ = std::thread::spawn(move || futures_executor(handle.stop(false))).join();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a future to completion on a throwaway runtime (the server handle's `stop`).
fn futures_executor<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Counts, across every client, the snapshots and the batch frames read.
#[derive(Default)]
struct Counts {
    snapshots: AtomicU64,
    batches: AtomicU64,
}

/// One client: reads everything, counting snapshots and batches, until the socket ends.
async fn client(url: String, counts: Arc<Counts>) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(text) = msg {
            if text.starts_with(r#"{"type":"batch""#) {
                counts.batches.fetch_add(1, Ordering::Relaxed);
            } else if text.contains(r#""type":"snapshot""#) {
                counts.snapshots.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// This process's soft open-file limit (`/proc/self/limits`); clients and server share it.
fn open_file_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn wait_until(counter: &AtomicU64, target: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter.load(Ordering::Relaxed) < target {
        assert!(Instant::now() < deadline, "clients stalled");
        std::thread::yield_now();
    }
}

/// One tick with an item for every client: returns once all `n` have read its frame.
fn tick_to_all(server: &Server, rt: &tokio::runtime::Runtime, counts: &Counts, n: u64) {
    let before = counts.batches.load(Ordering::Relaxed);
    server.command(
        rt,
        Command::Schedule {
            event_type: "bench".into(),
            in_ticks: 1,
            data: None,
        },
    );
    server.command(rt, Command::Step { ticks: 1 });
    wait_until(&counts.batches, before + n);
}

fn loopback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    let server = Server::start();
    server.command(&rt, Command::Pause {});
    let url = format!("ws://{}/ws?token={TOKEN}", server.addr);
    let mut g = c.benchmark_group("loopback_delivery");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let counts = Arc::new(Counts::default());
    let mut clients = 0usize;
    for &n in &WIDTHS {
        if 2 * n as u64 + 200 > open_file_limit() {
            eprintln!("skipping {n} receivers: the open-file limit is too low for 2 × {n} sockets");
            continue;
        }
        // Grow the audience to n and let every join settle (snapshot, resume window).
        for _ in clients..n {
            rt.spawn(client(url.clone(), Arc::clone(&counts)));
        }
        clients = n;
        wait_until(&counts.snapshots, n as u64);
        std::thread::sleep(Duration::from_millis(300));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("tick_to_all", n), &n, |b, _| {
            b.iter(|| tick_to_all(&server, &rt, &counts, n as u64))
        });
    }
    g.finish();
    drop(server);
    rt.shutdown_timeout(Duration::from_secs(5));
}

criterion_group!(benches, loopback);
criterion_main!(benches);
