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

criterion_group!(benches, view_at);
criterion_main!(benches);
