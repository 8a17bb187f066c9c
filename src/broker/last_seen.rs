//! A session's `last_seen`, shared by the session and the broker: the milliseconds
//! (see [`crate::clock`]) of its last inbound frame (an SSE session: its last push),
//! and one bit that says its end has been counted.
//!
//! Two parties can end a session: the session itself (its client timeout, the rate
//! limit, a message too big, replies it does not read) and the broker (a full mailbox,
//! the sweep of sessions silent past the timeout). Both can fire for one session: a
//! session closes itself at `client_timeout` but its close frame cannot leave a full
//! socket, and the sweep finds it still joined a grace period later. The rule: the
//! first to end a session [`claim_end`]s it and counts it in
//! `simcast_evictions_total` with its reason; the other still does what it must (the
//! broker shuts the socket down) but counts nothing. One end, one count, the reason
//! that ended it.

use crate::metrics::Metrics;
use std::sync::atomic::{AtomicU64, Ordering};

/// Set once the session's end has been counted; timestamps stay far below it.
const END_CLAIMED: u64 = 1 << 63;

/// Records activity at `now_ms`. Never moves back, and keeps a claimed end claimed.
pub fn touch(last_seen: &AtomicU64, now_ms: u64) {
    last_seen.fetch_max(now_ms, Ordering::AcqRel);
}

/// Milliseconds since the last activity, at `now_ms`.
pub fn silent_for(last_seen: &AtomicU64, now_ms: u64) -> u64 {
    now_ms.saturating_sub(last_seen.load(Ordering::Acquire) & !END_CLAIMED)
}

/// Claims the session's end: `true` for the first caller only, who counts it.
pub fn claim_end(last_seen: &AtomicU64) -> bool {
    last_seen.fetch_or(END_CLAIMED, Ordering::AcqRel) & END_CLAIMED == 0
}

/// Counts the session's end as an eviction for `reason`, unless it was counted already.
pub(crate) fn count_eviction(last_seen: &AtomicU64, metrics: &Metrics, reason: &str) {
    if claim_end(last_seen) {
        metrics.evictions.with_label_values(&[reason]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sessions_end_is_claimed_once() {
        let seen = AtomicU64::new(1_000);
        assert!(claim_end(&seen), "the first to end it counts it");
        assert!(!claim_end(&seen), "the second does not");
        touch(&seen, 5_000);
        assert!(!claim_end(&seen), "activity after the end keeps it claimed");
    }

    #[test]
    fn silence_is_measured_from_the_last_activity_claimed_or_not() {
        let seen = AtomicU64::new(1_000);
        touch(&seen, 3_000);
        touch(&seen, 2_000);
        assert_eq!(silent_for(&seen, 4_000), 1_000, "never moves back");
        claim_end(&seen);
        assert_eq!(
            silent_for(&seen, 4_000),
            1_000,
            "the claim is not a timestamp"
        );
        assert_eq!(silent_for(&seen, 500), 0);
    }
}
