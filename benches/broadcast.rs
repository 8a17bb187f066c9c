//! Broadcast benches: broker fan-out, batch serialization, topic filtering, and the
//! simulation tick, with a naive per-client/per-item variant alongside for the ratio.
//!
//! Fan-out measures the server's real delivery path: `Groups::fan_out` and
//! `FanOut::dispatch` (the functions the broker actor calls) send one message per
//! delivery to the hub of an arbiter thread (as sessions run on HTTP worker threads),
//! which pushes each frame into the bounded outbox (capacity 256, the default
//! `session.outbound_queue`) of a receiving actor on that thread. A delivery counts once
//! the receiving actor has handled it: every measured iteration waits until all its
//! deliveries were handled (with up to `IN_FLIGHT` batches pipelined), so nothing is left
//! in queues.
//!
//! Run: `cargo bench --bench broadcast` (or `scripts/bench.sh`); numbers in BENCHMARKS.md.

use actix::prelude::*;

/// The same allocator as the server binary (src/main.rs), so the bench measures what runs;
/// `--features system-alloc` measures glibc's malloc instead (the before/after ratio).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use simcast::broker::batcher::{Batch, Batcher, RangeFrame};
use simcast::broker::fanout::{FanOut, Groups, Slot};
use simcast::broker::hub::{DeliverFrames, HubRoute, LocalHub, Overflowed};
use simcast::broker::{Deliver, SessionId};
use simcast::protocol::{Envelope, Item, Topic};
use simcast::sim::World;
use simcast::topics::TopicSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Outbox bound of each receiver, as the server's default `session.outbound_queue`.
const MAILBOX: usize = 256;
/// Batches in flight before the producer waits for receivers (< MAILBOX: no drops).
const IN_FLIGHT: u64 = 64;
const WIDTHS: [usize; 4] = [10, 100, 1_000, 10_000];

/// Stands in for a session: handles each `Deliver` from its outbox (the session writes
/// the frame to its socket; here we only touch its length) and counts it.
struct Sink {
    handled: Arc<AtomicU64>,
    bytes: u64,
}

impl Actor for Sink {
    type Context = Context<Self>;
}

impl StreamHandler<Deliver> for Sink {
    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        self.bytes += msg.frame.len() as u64;
        self.handled.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts outboxes that overflowed (the bench asserts none did).
struct Reports(Arc<AtomicU64>);

impl Actor for Reports {
    type Context = Context<Self>;
}

impl Handler<Overflowed> for Reports {
    type Result = ();
    fn handle(&mut self, msg: Overflowed, _: &mut Context<Self>) {
        self.0
            .fetch_add(msg.sessions.len() as u64, Ordering::Relaxed);
    }
}

struct Receivers {
    route: HubRoute,
    n: usize,
    handled: Arc<AtomicU64>,
    overflows: Arc<AtomicU64>,
    overflowed: Recipient<Overflowed>,
    _arbiter: Arbiter,
}

/// A hub and `n` receiving actors on one arbiter thread (the second core; the bench
/// thread is the broker).
fn receivers(n: usize) -> Receivers {
    let arbiter = Arbiter::new();
    let handled = Arc::new(AtomicU64::new(0));
    let overflows = Arc::new(AtomicU64::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let (h, o) = (Arc::clone(&handled), Arc::clone(&overflows));
    arbiter.spawn(async move {
        let hub = LocalHub::start();
        for i in 0..n {
            let outbox = hub.open(i as SessionId, MAILBOX);
            let handled = Arc::clone(&h);
            Sink::create(move |ctx| {
                ctx.add_stream(outbox);
                Sink { handled, bytes: 0 }
            });
        }
        let _ = tx.send((hub.route(), Reports(o).start().recipient()));
    });
    let (route, overflowed) = rx.recv().expect("receivers started");
    Receivers {
        route,
        n,
        handled,
        overflows,
        overflowed,
        _arbiter: arbiter,
    }
}

fn wait_until(counter: &AtomicU64, target: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter.load(Ordering::Relaxed) < target {
        assert!(Instant::now() < deadline, "receivers stalled");
        std::thread::yield_now();
    }
}

/// One tick's worth of real items: a 1 000-character world after warm-up, cut into
/// batches the way the broker does (`max_batch_size` 100, flushed at end of tick).
fn sample_batch(characters: usize) -> Batch {
    let mut world = World::new(42, characters);
    let mut items = Vec::new();
    for _ in 0..120 {
        items.clear();
        world.step(1.0, &mut items);
    }
    let mut batcher = Batcher::new(100, 0);
    let mut batches = batcher.push(items);
    batches.extend(batcher.flush());
    batches.into_iter().next().expect("a tick produces items")
}

/// A live member of a fan-out group whose next frame starts at seq 1.
fn slot(i: usize, rx: &Receivers) -> Slot {
    Slot {
        id: i as SessionId,
        route: rx.route.clone(),
        next_from: 1,
        live: true,
        slice: Default::default(),
    }
}

/// Bytes of `batch`'s frame for `topics` (0 when nothing passes).
fn encode_len(batch: &Batch, topics: &TopicSet) -> usize {
    RangeFrame::encode(&[Arc::new(batch.clone())], batch.seq, topics).map_or(0, |f| f.frame.len())
}

/// Runs `fan_out` over `groups` `iters` times; returns the time until every delivery
/// was handled.
/// Each iteration is the next batch (its seq one higher), as in the server, so every
/// member takes the shared frame rather than a relabelled copy.
/// `seq` is the last seq delivered to `groups` (kept across criterion's calls: members
/// skip a batch they already have).
fn run_fan_out(
    groups: &mut Groups,
    batch: &Batch,
    seq: &mut u64,
    rx: &Receivers,
    iters: u64,
) -> Duration {
    let handled = &*rx.handled;
    let base = handled.load(Ordering::Relaxed);
    let mut out = FanOut::default();
    let mut mailroom = simcast::broker::mailroom::Mailroom::default();
    let mut batch = Arc::new(Batch {
        seq: *seq,
        ..batch.clone()
    });
    // Deliveries made so far, per iteration: members whose topics pass nothing of the
    // batch get no frame at all (frames are never empty).
    let mut sent = std::collections::VecDeque::new();
    let mut total = 0;
    let start = Instant::now();
    for _ in 0..iters {
        if sent.len() as u64 >= IN_FLIGHT {
            let due = sent.pop_front().unwrap_or(0);
            wait_until(handled, base + due);
        }
        out.clear();
        if let Some(b) = Arc::get_mut(&mut batch) {
            b.seq += 1;
            *seq = b.seq;
        }
        groups.fan_out(std::slice::from_ref(&batch), &mut out);
        out.dispatch(&mut mailroom, &rx.overflowed);
        assert!(
            out.full.is_empty() && out.closed.is_empty() && mailroom.is_empty(),
            "a delivery failed or waited for a full mailbox"
        );
        total += out.sent;
        sent.push_back(total);
    }
    assert!(
        total > 0,
        "the fan-out delivered nothing: a bench that measures no work"
    );
    wait_until(handled, base + total);
    let elapsed = start.elapsed();
    assert_eq!(
        rx.overflows.load(Ordering::Relaxed),
        0,
        "an outbox overflowed"
    );
    elapsed
}

fn fan_out(c: &mut Criterion) {
    let _system = System::new();
    let batch = sample_batch(1_000);
    let topics = TopicSet::default_topics();
    eprintln!(
        "sample batch: {} items, {} bytes for the default topics, {} bytes for all",
        batch.items.len(),
        encode_len(&batch, &topics),
        encode_len(&batch, &TopicSet::everything())
    );
    let mut g = c.benchmark_group("fan_out");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for &n in &WIDTHS {
        let rx = receivers(n);
        let mut groups = Groups::new();
        for i in 0..rx.n {
            groups.insert(topics.clone(), slot(i, &rx));
        }
        g.throughput(Throughput::Elements(n as u64));
        // Criterion calls the routine more than once (warm-up, samples) on the same
        // groups: the seq must keep rising across calls.
        let mut seq = 0;
        g.bench_with_input(BenchmarkId::new("batched", n), &n, |b, _| {
            b.iter_custom(|iters| run_fan_out(&mut groups, &batch, &mut seq, &rx, iters))
        });
    }
    g.finish();

    // Naive: no batching and no shared serialization. Every item is its own frame,
    // serialized for every client. Same receivers, same hub and outboxes; an element is
    // still one batch's content reaching one client, so the ratio is like for like.
    let mut g = c.benchmark_group("fan_out");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for &n in &WIDTHS {
        let rx = receivers(n);
        g.throughput(Throughput::Elements(n as u64));
        let items: Vec<&Item> = batch.items.iter().filter(|i| topics.matches(i)).collect();
        let per_client = items.len() as u64;
        g.bench_with_input(BenchmarkId::new("naive", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let base = rx.handled.load(Ordering::Relaxed);
                let per_batch = n as u64 * per_client;
                // Keep within the mailbox: at most MAILBOX/2 frames in flight per client.
                let window = ((MAILBOX as u64 / 2) / per_client.max(1)).max(1);
                let start = Instant::now();
                for i in 0..iters {
                    if i >= window {
                        wait_until(&rx.handled, base + (i - window) * per_batch);
                    }
                    let mut frames = Vec::new();
                    for r in 0..rx.n {
                        for item in &items {
                            let frame = Envelope::new("item", item).with_seq(batch.seq).to_json();
                            let deliver = Deliver {
                                frame: frame.into(),
                                seq: Some(batch.seq),
                            };
                            frames.push((r as SessionId, deliver));
                        }
                    }
                    let msg = DeliverFrames {
                        frames,
                        overflowed: rx.overflowed.clone(),
                    };
                    assert!(rx.route.addr.try_send(msg).is_ok(), "a delivery failed");
                }
                wait_until(&rx.handled, base + iters * per_batch);
                start.elapsed()
            })
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let batch = sample_batch(1_000);
    let mut g = c.benchmark_group("encode");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut one_char = TopicSet::default();
    one_char.add(&[Topic::Character(7)]).expect("add");
    for (name, topics) in [
        ("default_topics", TopicSet::default_topics()),
        ("everything", TopicSet::everything()),
        ("one_character", one_char),
    ] {
        let bytes = encode_len(&batch, &topics) as u64;
        let batches = [Arc::new(batch.clone())];
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(BenchmarkId::new("batch", name), |b| {
            b.iter(|| RangeFrame::encode(&batches, 1, std::hint::black_box(&topics)))
        });
    }
    // Naive: one envelope per item (what a per-item design serializes per client).
    g.throughput(Throughput::Bytes(
        batch
            .items
            .iter()
            .map(|i| Envelope::new("item", i).to_json().len() as u64)
            .sum(),
    ));
    g.bench_function("per_item_envelopes", |b| {
        b.iter(|| {
            batch
                .items
                .iter()
                .map(|i| Envelope::new("item", i).to_json().len())
                .sum::<usize>()
        })
    });
    g.finish();
}

/// 1 000 receivers spread over k distinct topic sets: k serializations per batch.
fn topic_filtering(c: &mut Criterion) {
    let _system = System::new();
    let batch = sample_batch(1_000);
    let n = 1_000usize;
    let rx = receivers(n);
    let mut g = c.benchmark_group("topic_filtering");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for k in [1usize, 4, 16, 64] {
        let sets: Vec<TopicSet> = (0..k)
            .map(|j| match j {
                0 => TopicSet::default_topics(),
                1 => TopicSet::everything(),
                _ => {
                    let mut t = TopicSet::default();
                    t.add(&[Topic::Character(j as u64), Topic::Character(j as u64 + 500)])
                        .expect("add");
                    t
                }
            })
            .collect();
        let mut groups = Groups::new();
        for i in 0..rx.n {
            groups.insert(sets[i % k].clone(), slot(i, &rx));
        }
        g.throughput(Throughput::Elements(n as u64));
        // Criterion calls the routine more than once (warm-up, samples) on the same
        // groups: the seq must keep rising across calls.
        let mut seq = 0;
        g.bench_with_input(BenchmarkId::new("topic_sets", k), &k, |b, _| {
            b.iter_custom(|iters| run_fan_out(&mut groups, &batch, &mut seq, &rx, iters))
        });
    }
    g.finish();
}

fn tick(c: &mut Criterion) {
    let mut g = c.benchmark_group("world_step");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for n in [1_000usize, 10_000] {
        let mut world = World::new(42, n);
        let mut items = Vec::new();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("characters", n), &n, |b, _| {
            b.iter(|| {
                items.clear();
                world.step(1.0, &mut items);
                items.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, fan_out, encode, topic_filtering, tick);
criterion_main!(benches);
