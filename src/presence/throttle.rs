//! The coalescing rule for presence, as plain data: one [`PresenceThrottle`] per
//! connection decides whether what it would be told now is news, and whether it may be
//! told yet.
//!
//! A connection gets its first presence at once, then a new one only when what it
//! would see changed ([`PresenceThrottle::decide`] compares a key: the counts for a
//! viewer, the roster's version for an operator), and never sooner than
//! [`MIN_INTERVAL_MS`] after the previous one. Changes inside that second are folded into one message carrying
//! the latest state; a change that is undone inside it sends nothing.

/// At most one presence per connection per this many milliseconds.
pub(crate) const MIN_INTERVAL_MS: u64 = 1000;

/// What to do for one connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send the current presence now.
    Send,
    /// There is news, but not before this time (ms): ask again then.
    WaitUntil(u64),
    /// The connection already has the current presence.
    UpToDate,
}

/// One connection's presence history: what it was last sent (by key) and when.
#[derive(Debug, Clone, Default)]
pub(crate) struct PresenceThrottle<K> {
    last: Option<(K, u64)>,
}

impl<K: PartialEq + Copy> PresenceThrottle<K> {
    pub(crate) fn new() -> Self {
        PresenceThrottle { last: None }
    }

    /// Whether to send `current` at `now_ms`.
    pub(crate) fn decide(&self, current: K, now_ms: u64) -> Decision {
        match self.last {
            None => Decision::Send,
            Some((sent, _)) if sent == current => Decision::UpToDate,
            Some((_, at)) if now_ms >= at + MIN_INTERVAL_MS => Decision::Send,
            Some((_, at)) => Decision::WaitUntil(at + MIN_INTERVAL_MS),
        }
    }

    /// Records that `key` was sent at `now_ms`.
    pub(crate) fn sent(&mut self, key: K, now_ms: u64) {
        self.last = Some((key, now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_at_once_then_changes_at_most_once_a_second() {
        let mut p = PresenceThrottle::new();
        assert_eq!(p.decide((1, 0), 5), Decision::Send);
        p.sent((1, 0), 5);
        assert_eq!(p.decide((1, 0), 6), Decision::UpToDate);
        // A join 100 ms later waits out the second; so does the next one.
        assert_eq!(p.decide((2, 0), 105), Decision::WaitUntil(1005));
        assert_eq!(p.decide((3, 0), 900), Decision::WaitUntil(1005));
        // At the deadline, the latest state goes out, once.
        assert_eq!(p.decide((3, 0), 1005), Decision::Send);
        p.sent((3, 0), 1005);
        assert_eq!(p.decide((3, 0), 3000), Decision::UpToDate);
        // Long after, a change goes out at once.
        assert_eq!(p.decide((4, 1), 3000), Decision::Send);
    }

    #[test]
    fn a_change_undone_inside_the_second_sends_nothing() {
        let mut p = PresenceThrottle::new();
        p.sent((2, 1), 0);
        assert_eq!(p.decide((3, 1), 200), Decision::WaitUntil(1000));
        assert_eq!(p.decide((2, 1), 1000), Decision::UpToDate);
    }
}
