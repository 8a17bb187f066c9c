//! Pacing: whether a tick's delivery goes out at its end to every connection, or
//! staggered, to one part of them, the rest getting it with a later tick's.
//!
//! Each delivery costs every connection one socket write, and on loopback most of that
//! cost is the kernel's per write (TCP send, the receiver's softirq, the wake-up), not
//! per byte. When deliveries keep a worker thread busy for most of a tick
//! ([`BUSY_SHARE`]: that long passed before every session the delivery woke had been
//! polled, [`super::hub::Backlog`]; a stalled client, waiting on its socket, does not
//! count) at [`BUSY_STREAK`] ends of tick in a row, the threads are at their limit, and
//! delivering every tick to everyone only lengthens the queues. The broker then
//! **staggers** two ways: each tick goes to the half of the connections that waited
//! (`stagger`), with the tick before it, in one frame per connection (protocol 1.1
//! ranges, `from_seq..=seq`). That halves the writes, for the server and for the
//! clients that read them, and keeps them even from tick to tick. If even then the
//! workers are still writing the last delivery when the next tick ends (more than
//! [`LAG_SHARE`] of the members woken and not yet polled), the machine is past its
//! limit: it staggers three ways, a third of the connections per tick with three ticks
//! each, for at least [`CALM_TICKS`] ticks, and the queues drain instead of growing.
//!
//! Bounds: every connection gets a frame at least every third tick, so no item waits
//! more than two ticks longer than it would have (one, two ways), and a server with
//! time to spare delivers every tick to everyone as before. Joins, `resume`s and
//! snapshot replies leave the stagger alone (each member catches up to its own slice,
//! see `roster::Books`); what must reach everyone in order (a topic change, a reset's
//! snapshot, a gateway's resync) delivers to everyone at once; a staggered delivery
//! whose next tick does not come soon (a slow or paused world) is completed for
//! everyone after [`HOLD_AT_MOST`].
//!
//! In a cluster the sim node paces (by its own hubs); gateways deliver every batch it
//! hands on, each to all their connections (`relay`).
//!
//! Plain rules, no actix: the broker actor reads the gauges and follows the answer.

/// A delivery keeps its hub busy "for most of a tick" when that is at least this share
/// (numerator, denominator) of the time between two ticks; a staggered delivery counts
/// its time times its ways (what a delivery to everyone would have taken). Measured on
/// 2 cores with the load generator on the same machine: one delivery at 5 000 clients
/// takes 30–60 ms of a 100 ms tick, at 10 000 clients 90–110 ms.
pub const BUSY_SHARE: (u64, u64) = (9, 10);

/// Ends of tick in a row that must find the last delivery busy for most of a tick
/// before deliveries are staggered: one slow delivery (a join burst, a rush tick) is
/// not yet a machine at its limit.
pub const BUSY_STREAK: u32 = 2;

/// Members woken by earlier deliveries and still not polled at the end of a tick, as a
/// share (numerator, denominator) of all members, above which two-way staggering is
/// not keeping up.
pub const LAG_SHARE: (usize, usize) = (1, 4);

/// Ticks of three-way staggering, at least, once it started (and since the last tick
/// that found the workers lagging): enough for the queues to drain.
pub const CALM_TICKS: u32 = 10;

/// A staggered delivery is completed for everyone this long after its tick at the
/// latest: the next tick is 100 ms away at the default 10 Hz, but may be seconds away
/// (slow or paused world).
pub const HOLD_AT_MOST: std::time::Duration = std::time::Duration::from_millis(250);

/// What to do with a tick's batches at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Deliver to every connection now, with anything a part of them still lacks.
    Deliver,
    /// Deliver to the `1 / ways` of the connections that have waited longest.
    Stagger { ways: usize },
}

/// Remembers how the last tick went out and how long the machine has been busy.
#[derive(Debug)]
pub struct Pacer {
    /// Off: every tick is delivered to everyone at its end (`[broker] hold_when_behind
    /// = false`).
    disabled: bool,
    /// The ways of the last delivery (1: to everyone).
    ways: usize,
    /// Ends of tick in a row that found the last delivery busy for most of a tick.
    busy_streak: u32,
    /// Ticks since three-way staggering last found the workers lagging.
    calm: u32,
}

impl Pacer {
    pub fn new(enabled: bool) -> Self {
        Pacer {
            disabled: !enabled,
            ways: 1,
            busy_streak: 0,
            calm: 0,
        }
    }

    /// The end of a tick: the last delivery kept the busiest hub busy for `busy_us`,
    /// the tick before ended `tick_us` ago (`None` for the first), and `lagging` says
    /// whether more than [`LAG_SHARE`] of the members are still waiting to be polled.
    pub fn end_of_tick(&mut self, busy_us: u64, tick_us: Option<u64>, lagging: bool) -> Pace {
        let (num, den) = BUSY_SHARE;
        let busy_us = busy_us.saturating_mul(self.ways as u64);
        let busy = tick_us.is_some_and(|t| busy_us.saturating_mul(den) >= t.saturating_mul(num));
        self.busy_streak = if busy { self.busy_streak + 1 } else { 0 };
        if self.disabled || self.busy_streak < BUSY_STREAK {
            self.ways = 1;
            return Pace::Deliver;
        }
        self.ways = if lagging && self.ways > 1 {
            self.calm = 0;
            3
        } else if self.ways == 3 && self.calm < CALM_TICKS {
            self.calm += 1;
            3
        } else {
            2
        };
        Pace::Stagger { ways: self.ways }
    }

    /// Something was delivered to everyone outside the end of a tick (a fence, the
    /// wait timer).
    pub fn delivered(&mut self) {
        self.ways = 1;
    }
}

/// Whether `woken` members still waiting to be polled, out of `members`, is more than
/// [`LAG_SHARE`] of them.
pub fn lagging(woken: usize, members: usize) -> bool {
    let (num, den) = LAG_SHARE;
    woken.saturating_mul(den) > members.saturating_mul(num)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Option<u64> = Some(100_000);
    const BUSY: u64 = 95_000;
    const TWO: Pace = Pace::Stagger { ways: 2 };
    const THREE: Pace = Pace::Stagger { ways: 3 };

    #[test]
    fn a_server_with_time_to_spare_delivers_every_tick() {
        let mut p = Pacer::new(true);
        for _ in 0..5 {
            assert_eq!(p.end_of_tick(0, TICK, false), Pace::Deliver);
            assert_eq!(
                p.end_of_tick(80_000, TICK, true),
                Pace::Deliver,
                "under 9/10"
            );
        }
        assert_eq!(
            p.end_of_tick(900_000, None, false),
            Pace::Deliver,
            "the first tick"
        );
    }

    #[test]
    fn one_busy_delivery_is_not_enough() {
        let mut p = Pacer::new(true);
        for _ in 0..5 {
            assert_eq!(p.end_of_tick(BUSY, TICK, false), Pace::Deliver);
            assert_eq!(p.end_of_tick(10_000, TICK, false), Pace::Deliver);
        }
    }

    #[test]
    fn busy_twice_it_staggers_while_half_deliveries_take_half_a_tick() {
        let mut p = Pacer::new(true);
        assert_eq!(p.end_of_tick(BUSY, TICK, false), Pace::Deliver, "once");
        assert_eq!(p.end_of_tick(BUSY, TICK, false), TWO, "twice");
        assert_eq!(
            p.end_of_tick(50_000, TICK, false),
            TWO,
            "half the sessions in half a tick: everyone would take the whole tick"
        );
        assert_eq!(p.end_of_tick(48_000, TICK, false), TWO);
        assert_eq!(
            p.end_of_tick(30_000, TICK, false),
            Pace::Deliver,
            "caught up"
        );
        assert_eq!(
            p.end_of_tick(BUSY, TICK, false),
            Pace::Deliver,
            "a fresh streak"
        );
        assert_eq!(p.end_of_tick(BUSY, TICK, false), TWO);
    }

    #[test]
    fn lagging_while_staggered_goes_three_ways_until_calm() {
        let mut p = Pacer::new(true);
        assert_eq!(p.end_of_tick(BUSY, TICK, true), Pace::Deliver);
        assert_eq!(
            p.end_of_tick(BUSY, TICK, true),
            TWO,
            "lagging behind deliveries to everyone: two ways first"
        );
        assert_eq!(p.end_of_tick(BUSY, TICK, true), THREE, "still lagging");
        for _ in 0..CALM_TICKS {
            assert_eq!(p.end_of_tick(40_000, TICK, false), THREE, "draining");
        }
        assert_eq!(
            p.end_of_tick(40_000, TICK, false),
            TWO,
            "calm: two ways again"
        );
        assert_eq!(
            p.end_of_tick(20_000, TICK, false),
            Pace::Deliver,
            "caught up"
        );
    }

    #[test]
    fn a_fence_counts_as_a_whole_delivery_and_a_slow_world_has_a_longer_tick() {
        let mut p = Pacer::new(true);
        p.end_of_tick(BUSY, TICK, false);
        assert_eq!(p.end_of_tick(BUSY, TICK, false), TWO);
        p.delivered();
        assert_eq!(
            p.end_of_tick(48_000, TICK, false),
            Pace::Deliver,
            "48 ms for everyone is not busy"
        );
        let mut p = Pacer::new(true);
        p.end_of_tick(BUSY, Some(1_000_000), false);
        assert_eq!(
            p.end_of_tick(BUSY, Some(1_000_000), false),
            Pace::Deliver,
            "1 Hz"
        );
    }

    #[test]
    fn disabled_it_always_delivers() {
        let mut p = Pacer::new(false);
        for _ in 0..4 {
            assert_eq!(p.end_of_tick(100_000, TICK, true), Pace::Deliver);
        }
    }

    #[test]
    fn lagging_is_over_a_quarter_of_the_members() {
        assert!(!lagging(0, 0));
        assert!(!lagging(250, 1000));
        assert!(lagging(251, 1000));
    }
}
