//! `view_at` over a long retained past (issue 12): the world of 200 characters after
//! 36 000 ticks with every tick retained (`history_ticks = 36 000`, a checkpoint every
//! 100), then `view_at` of ticks spread over the whole range. Criterion reports the
//! time per view (median and spread; BENCHMARKS.md gives the p95 from its samples);
//! the memory the checkpoints take is printed once, measured by serializing them.
//!
//! Run: `cargo bench --bench timeline`.

use criterion::{criterion_group, criterion_main, Criterion};
use simcast::sim::journal::JournalEntry;
use simcast::sim::timeline::Timeline;
use simcast::sim::SimState;
use std::hint::black_box;
use std::time::{Duration, Instant};

const TICKS: u64 = 36_000;
const EVERY: u64 = 100;

/// A world run for `TICKS` ticks, every tick recorded as the simulation actor does.
fn retained() -> (SimState, Timeline) {
    let mut live = SimState::new(42, 200, 10.0);
    let mut timeline = Timeline::new(&live, TICKS, EVERY);
    let mut out = Vec::new();
    for _ in 0..TICKS {
        live.step(1, 0.0, &mut out);
        out.clear();
        timeline.record(JournalEntry::Ticks { ticks: 1 }, &live);
    }
    (live, timeline)
}

fn view_at(c: &mut Criterion) {
    let (live, timeline) = retained();
    let per_checkpoint = serde_json::to_vec(&live).map(|v| v.len()).unwrap_or(0);
    eprintln!(
        "timeline: {} checkpoints of ~{} KiB each (serialized state), range {:?}",
        timeline.checkpoints(),
        per_checkpoint / 1024,
        timeline.range()
    );
    let mut group = c.benchmark_group("timeline");
    group.sample_size(60);
    // The worst case: the tick just before a checkpoint (99 ticks to replay).
    group.bench_function("view_at/worst_99_ticks_from_a_checkpoint", |b| {
        b.iter(|| timeline.view_at(TICKS - 1).map(|s| s.world.tick()))
    });
    // Spread over the whole range: a tick every 997 (varied offsets from a checkpoint).
    let ticks: Vec<u64> = (0..TICKS).step_by(997).collect();
    let mut i = 0;
    group.bench_function("view_at/spread_over_36000_ticks", |b| {
        b.iter(|| {
            i = (i + 1) % ticks.len();
            timeline.view_at(ticks[i]).map(|s| s.world.tick())
        })
    });
    group.finish();
}

/// The simulation's per-tick work at 200 characters (the step, and the census the time
/// series takes of it), alone and with 20 breakpoints that never hold evaluated on that
/// census (a mix of every kind), as the simulation does at each tick's end. Each steps
/// one world onward (warm, as the live simulation does), for many game days per run.
///
/// `evaluate_20` is the 20 conditions alone, on the censuses of 48 worlds spread over a
/// game day: the overhead without the step's run-to-run noise around it.
fn breakpoints(c: &mut Criterion) {
    use simcast::sim::breakpoint::{parse, Probe};
    use simcast::sim::World;
    let conditions: Vec<_> = (0..20)
        .map(|i| match i % 5 {
            0 => format!("character {} hunger < -1", i + 1),
            1 => format!("character {} state == sleeping and tick < 0", i + 1),
            2 => "count sleeping > 100000".to_owned(),
            3 => "any energy < -1".to_owned(),
            _ => "tick >= 100000000".to_owned(),
        })
        // Checked as the simulation checks them (`Cond::cheap_first`).
        .map(|s| parse(&s).expect("parses").cheap_first())
        .collect();
    let mut group = c.benchmark_group("breakpoints");
    let mut world = World::new(42, 200);
    let mut out = Vec::new();
    group.bench_function("tick_200_characters", |b| {
        b.iter(|| {
            world.step(0.0, &mut out);
            out.clear();
            world.census_full()
        })
    });
    // Paired: two copies of one world step in lockstep, in alternating blocks, one
    // also evaluating the 20 conditions. Criterion gets the copy with breakpoints; the
    // ratio of the two totals is printed. Machine drift (this is a shared 2-core VM)
    // falls on both alike, where two separate benches differed by ±30 % with no
    // conditions at all.
    let (mut with, mut without) = (World::new(42, 200), World::new(42, 200));
    let (mut t_with, mut t_without) = (Duration::ZERO, Duration::ZERO);
    let mut ticks = 0u64;
    group.bench_function("tick_200_characters_with_20_breakpoints", |b| {
        b.iter_custom(|iters| {
            let mut measured = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(64);
                left -= n;
                let start = Instant::now();
                for _ in 0..n {
                    with.step(0.0, &mut out);
                    out.clear();
                    let probe = Probe::with_census(&with, with.census_full());
                    black_box(conditions.iter().any(|c| c.holds(&probe)));
                }
                measured += start.elapsed();
                let start = Instant::now();
                for _ in 0..n {
                    without.step(0.0, &mut out);
                    out.clear();
                    black_box(without.census_full());
                }
                t_without += start.elapsed();
            }
            t_with += measured;
            ticks += iters;
            measured
        })
    });
    let per_tick = |t: Duration| t.as_secs_f64() * 1e6 / ticks.max(1) as f64;
    println!(
        "breakpoints: paired tick time with 20 breakpoints / without = {:.3} \
         ({:.3} / {:.3} µs a tick over {ticks} ticks each)",
        t_with.as_secs_f64() / t_without.as_secs_f64().max(1e-9),
        per_tick(t_with),
        per_tick(t_without)
    );
    let mut world = World::new(42, 200);
    let worlds: Vec<World> = (0..48)
        .map(|_| {
            for _ in 0..30 {
                world.step(0.0, &mut out);
            }
            out.clear();
            world.clone()
        })
        .collect();
    let probes: Vec<_> = worlds.iter().map(|w| (w, w.census_full())).collect();
    let mut i = 0;
    group.bench_function("evaluate_20", |b| {
        b.iter(|| {
            i = (i + 1) % probes.len();
            let (world, census) = probes[i];
            let probe = Probe::with_census(world, census);
            conditions.iter().any(|c| c.holds(&probe))
        })
    });
    group.finish();
}

criterion_group!(benches, view_at, breakpoints);
criterion_main!(benches);
