//! Pacing: whether a tick's delivery goes out at the end of that tick, or waits one
//! tick and goes out together with the next one.
//!
//! Each delivery costs every connection one socket write, and on loopback most of that
//! cost is the kernel's per write (TCP send, the receiver's softirq, the wake-up), not
//! per byte. When deliveries keep a worker thread busy for most of a tick
//! ([`BUSY_SHARE`]: that long passed before every session the delivery woke had been
//! polled, [`super::hub::Backlog`]; a stalled client, waiting on its socket, does not
//! count) at [`BUSY_STREAK`] ends of tick in a row, the threads are at their limit, and
//! delivering every tick only lengthens the queues. The broker then holds the next
//! tick's batches back for one tick, and the delivery after carries both ticks in one
//! frame per connection (protocol 1.1 ranges, `from_seq..=seq`). That halves the writes
//! while the threads are that busy: for the server, and for the clients that read them.
//!
//! Bounds: at most [`MAX_HELD_TICKS`] tick in a row is held, so no item waits more than
//! one tick longer than it would have, and a server with time to spare delivers every
//! tick as before. Anything that needs the stream fenced (a join's catch-up, `resume`,
//! a topic change, a snapshot) delivers what is held at once; a held delivery whose
//! next tick does not come soon (a slow or paused world) goes out after
//! [`HOLD_AT_MOST`].
//!
//! In a cluster the sim node paces (by its own hubs); gateways deliver as it did
//! (`relay`), so every gateway's frames follow the sim node's holds.
//!
//! Plain rules, no actix: the broker actor reads the gauges and follows the answer.

/// A delivery keeps its hub busy "for most of a tick" when that is at least this share
/// (numerator, denominator) of the time between two ticks. Measured on 2 cores with the
/// load generator on the same machine: one delivery at 5 000 clients takes 30–60 ms of
/// a 100 ms tick, at 10 000 clients 90–110 ms.
pub const BUSY_SHARE: (u64, u64) = (9, 10);

/// Ends of tick in a row that must find the last delivery busy for most of a tick
/// before a tick is held: one slow delivery (a join burst, a rush tick) is not yet a
/// machine at its limit.
pub const BUSY_STREAK: u32 = 2;

/// Ticks held in a row, at most (each adds one tick to its items' latency).
pub const MAX_HELD_TICKS: u32 = 1;

/// A held delivery goes out this long after its tick at the latest: the next tick is
/// 100 ms away at the default 10 Hz, but may be seconds away (slow or paused world).
pub const HOLD_AT_MOST: std::time::Duration = std::time::Duration::from_millis(250);

/// What to do with a tick's batches at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Deliver now, with anything held before.
    Deliver,
    /// Keep them (issued, numbered, in the history) for the next tick's delivery.
    Hold,
}

/// Remembers how many ticks in a row have been held.
#[derive(Debug, Default)]
pub struct Pacer {
    /// Off: every tick is delivered at its end (`[broker] hold_when_behind = false`).
    disabled: bool,
    held: u32,
    /// Ends of tick in a row that found the last delivery busy for most of a tick.
    busy_streak: u32,
}

impl Pacer {
    pub fn new(enabled: bool) -> Self {
        Pacer {
            disabled: !enabled,
            held: 0,
            busy_streak: 0,
        }
    }

    /// The end of a tick: the last delivery kept the busiest hub busy for `busy_us`,
    /// and the tick before ended `tick_us` ago (`None` for the first).
    pub fn end_of_tick(&mut self, busy_us: u64, tick_us: Option<u64>) -> Pace {
        let (num, den) = BUSY_SHARE;
        let busy = tick_us.is_some_and(|t| busy_us.saturating_mul(den) >= t.saturating_mul(num));
        self.busy_streak = if busy { self.busy_streak + 1 } else { 0 };
        if self.disabled || self.busy_streak < BUSY_STREAK || self.held >= MAX_HELD_TICKS {
            self.held = 0;
            return Pace::Deliver;
        }
        self.held += 1;
        Pace::Hold
    }

    /// Something delivered outside the end of a tick (a fence, the wait timer): the
    /// next tick starts a fresh count.
    pub fn delivered(&mut self) {
        self.held = 0;
    }

    /// Whether the last tick was held and not delivered since.
    pub fn holding(&self) -> bool {
        self.held > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Option<u64> = Some(100_000);
    const BUSY: u64 = 95_000;

    #[test]
    fn a_server_with_time_to_spare_delivers_every_tick() {
        let mut p = Pacer::new(true);
        for _ in 0..5 {
            assert_eq!(p.end_of_tick(0, TICK), Pace::Deliver);
            assert_eq!(p.end_of_tick(80_000, TICK), Pace::Deliver, "under 9/10");
        }
        assert!(!p.holding());
        assert_eq!(
            p.end_of_tick(900_000, None),
            Pace::Deliver,
            "the first tick"
        );
    }

    #[test]
    fn one_busy_delivery_is_not_enough() {
        let mut p = Pacer::new(true);
        for _ in 0..5 {
            assert_eq!(p.end_of_tick(BUSY, TICK), Pace::Deliver);
            assert_eq!(p.end_of_tick(10_000, TICK), Pace::Deliver);
        }
    }

    #[test]
    fn busy_twice_it_holds_one_tick_then_delivers_two_together() {
        let mut p = Pacer::new(true);
        assert_eq!(p.end_of_tick(BUSY, TICK), Pace::Deliver, "once");
        assert_eq!(p.end_of_tick(BUSY, TICK), Pace::Hold, "twice");
        assert!(p.holding());
        assert_eq!(
            p.end_of_tick(BUSY, TICK),
            Pace::Deliver,
            "never two in a row"
        );
        assert!(!p.holding());
        assert_eq!(p.end_of_tick(BUSY, TICK), Pace::Hold, "still busy: again");
        assert_eq!(p.end_of_tick(10_000, TICK), Pace::Deliver, "caught up");
        assert_eq!(p.end_of_tick(BUSY, TICK), Pace::Deliver, "a fresh streak");
    }

    #[test]
    fn a_fence_ends_the_hold_and_a_slow_world_has_a_longer_tick() {
        let mut p = Pacer::new(true);
        p.end_of_tick(BUSY, TICK);
        assert_eq!(p.end_of_tick(BUSY, TICK), Pace::Hold);
        p.delivered();
        assert!(!p.holding());
        assert_eq!(p.end_of_tick(BUSY, TICK), Pace::Hold, "busy still");
        let mut p = Pacer::new(true);
        p.end_of_tick(BUSY, Some(1_000_000));
        assert_eq!(p.end_of_tick(BUSY, Some(1_000_000)), Pace::Deliver, "1 Hz");
    }

    #[test]
    fn disabled_it_always_delivers() {
        let mut p = Pacer::new(false);
        for _ in 0..4 {
            assert_eq!(p.end_of_tick(100_000, TICK), Pace::Deliver);
        }
    }
}
