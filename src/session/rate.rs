//! The per-connection rate limiter: a fixed window of `budget` messages.
//!
//! Over the budget a message is refused (error 1003, not executed); past twice the
//! budget within one window the client is flooding and is disconnected (close 1008).
//! A fixed window is enough here: the budget is per connection and coarse (100 per
//! minute by default); it needs no timers, just the time of each message.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    /// Over budget: answer 1003 and drop the message.
    Refuse,
    /// Over twice the budget: close with 1008.
    Disconnect,
}

#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    budget: u32,
    window_ms: u64,
    window_start: u64,
    count: u32,
}

impl RateLimiter {
    pub(crate) fn new(budget: u32, window_ms: u64) -> Self {
        RateLimiter {
            budget,
            window_ms,
            window_start: 0,
            count: 0,
        }
    }

    /// Counts one message arriving at `now_ms` and judges it.
    pub(crate) fn check(&mut self, now_ms: u64) -> Verdict {
        if self.count == 0 || now_ms.saturating_sub(self.window_start) >= self.window_ms {
            self.window_start = now_ms;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        if self.count <= self.budget {
            Verdict::Allow
        } else if self.count <= self.budget.saturating_mul(2) {
            Verdict::Refuse
        } else {
            Verdict::Disconnect
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_budget_then_refuses_then_disconnects() {
        let mut r = RateLimiter::new(3, 1000);
        let verdicts: Vec<Verdict> = (0..7).map(|i| r.check(100 + i)).collect();
        assert_eq!(
            verdicts,
            vec![
                Verdict::Allow,
                Verdict::Allow,
                Verdict::Allow,
                Verdict::Refuse,
                Verdict::Refuse,
                Verdict::Refuse,
                Verdict::Disconnect
            ]
        );
    }

    #[test]
    fn new_window_restores_the_budget() {
        let mut r = RateLimiter::new(2, 1000);
        assert_eq!(r.check(0), Verdict::Allow);
        assert_eq!(r.check(10), Verdict::Allow);
        assert_eq!(r.check(20), Verdict::Refuse);
        assert_eq!(r.check(1000), Verdict::Allow, "window starting at 0 ended");
        assert_eq!(r.check(1500), Verdict::Allow);
        assert_eq!(r.check(1999), Verdict::Refuse);
    }
}
