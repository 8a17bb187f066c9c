//! A monotonic clock shared by sessions, hubs and the broker.
//!
//! Sessions store "last frame seen at" as milliseconds in an `AtomicU64` that the
//! broker reads when it sweeps for jammed clients, and hubs store when they caught up
//! with a delivery in microseconds for the broker's pacing; an `Instant` cannot live
//! in an atomic, so every side measures from one process-wide epoch.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the first call in this process (monotonic).
pub(crate) fn now_ms() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    epoch.elapsed().as_millis() as u64
}

/// Microseconds since the same epoch (monotonic), on tokio's clock: the monotonic clock,
/// except under paused tokio time, where a test of the broker's pacing moves it.
pub(crate) fn now_us() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    let now = tokio::time::Instant::now().into_std();
    now.saturating_duration_since(*epoch).as_micros() as u64
}
