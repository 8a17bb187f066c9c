//! Pacing: whether a tick's delivery goes out at its end to every connection, or
//! staggered, to as many slices of them as the workers can write in a tick, the rest
//! getting it with a later tick's.
//!
//! Each delivery costs every connection one socket write, and on loopback most of that
//! cost is the kernel's per write (TCP send, the receiver's softirq, the wake-up), not
//! per byte. When deliveries keep a worker thread busy for most of a tick
//! ([`PacingTunables::busy_share`]: that long passed before every session the delivery
//! woke had been polled, [`super::hub::Backlog`]; a stalled client, waiting on its
//! socket, does not count) at [`PacingTunables::busy_streak`] ends of tick in a row, the
//! threads are at their limit, and delivering every tick to everyone only lengthens the
//! queues. The broker then **staggers**: each tick goes to the slices of the connections
//! that waited longest (`stagger`), with the ticks they missed, in one frame per
//! connection (protocol 1.1 ranges, `from_seq..=seq`).
//!
//! **How many slices.** At every end of tick the [`StaggerGovernor`] works out what one
//! slice of the last delivery cost the busiest worker: its busy time, stretched by the
//! share of the sessions it woke that are still waiting to be polled (a delivery the
//! workers could not finish in the tick took longer than the tick). It sends the next
//! tick to as many slices as fit in [`PacingTunables::fit_share`] of a tick, between a
//! third ([`PacingTunables::fewest`]) and a half ([`PacingTunables::most`]) of them,
//! growing by at most [`PacingTunables::step_up`] slices a tick (so a quiet tick or two
//! does not overload the next), shrinking at once; when everyone fits, it delivers to
//! everyone again. A delivery too young to judge ([`PacingTunables::too_young`]: ticks
//! that bunch) leaves the pace as it was. Why counts between a half and a third: a half
//! is two ticks' wait at most, a third three; a machine that can write a bit less than
//! a half in a tick lags at halves, or idles part of each tick at thirds with every item
//! waiting two ticks. In between, only the slices a half would have left out wait the
//! extra tick (the measurements: BENCHMARKS.md, issue 8).
//!
//! Bounds: a staggered delivery goes to a third of the slices at least, so every
//! connection gets a frame at least every third tick and no item waits more than two
//! ticks longer than it would have; a server with time to spare delivers every tick to
//! everyone as before. Joins, `resume`s and snapshot replies leave the stagger alone
//! (each member catches up to its own slice, see `roster::Books`); what must reach
//! everyone in order (a topic change, a reset's snapshot, a gateway's resync) delivers
//! to everyone at once; a staggered delivery whose next tick does not come soon (a slow
//! or paused world) is completed for everyone after
//! [`PacingTunables::complete_after`].
//!
//! In a cluster the sim node paces (by its own hubs); gateways deliver every batch it
//! hands on, each to all their connections (`relay`).
//!
//! Plain rules, no actix: the broker actor reads the gauges and follows the answer.

use super::stagger::SLICES;
use std::time::Duration;

/// Every number pacing decides by, with its reason. [`Default`] is what the server runs
/// with; the count of slices itself is [`SLICES`] (a constant: it sizes arrays and a
/// bit set). Shares are (numerator, denominator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PacingTunables {
    /// A delivery keeps its hub busy "for most of a tick" when that is at least this
    /// share of the time between two ticks (9/10); a staggered delivery counts what a
    /// delivery to everyone would have taken. Below it the workers still have time.
    pub busy_share: (u64, u64),
    /// Ends of tick in a row that must find the last delivery busy for most of a tick
    /// before deliveries are staggered (2): one slow delivery (a join burst, a rush
    /// tick) is not yet a machine at its limit.
    pub busy_streak: u32,
    /// The share of a tick a staggered delivery is sized to keep the busiest worker busy
    /// (17/20, 85 %): the rest is headroom for reads, pongs, joins and a tick whose
    /// items are larger than the last one's.
    pub fit_share: (u64, u64),
    /// Slices a staggered delivery may go to beyond the last one's (2, ~8 % of the
    /// connections), so that probing for spare capacity costs at most that much lag.
    /// Shrinking has no such limit: a machine behind is relieved at once.
    pub step_up: usize,
    /// The most slices a staggered delivery goes to: a half (12 of 24). Between a half
    /// and everyone the count would only shorten some connections' wait, never the
    /// longest one (two ticks), and it costs writes.
    pub most: usize,
    /// The fewest slices a staggered delivery goes to: a third (8 of 24), so every
    /// connection gets a frame at least every third tick. A machine that cannot write
    /// even that in a tick falls behind, and each session's outbox merges what waits
    /// into one frame.
    pub fewest: usize,
    /// A delivery younger than this share of a typical tick at an end of tick (1/4)
    /// says nothing about the workers' speed: their hubs may not have started on it.
    /// That happens when ticks bunch (a late tick and the one that catches up come a few
    /// ms apart, seen under a CPU quota); judged anyway, it reads as an idle machine and
    /// sends the next tick to everyone in the middle of an overload. The pace stays.
    pub too_young: (u64, u64),
    /// The typical tick (for `too_young`) is a running average in which the newest tick
    /// counts for one part in this many (8): a single late or bunched tick moves it
    /// little.
    pub typical_tick_parts: u64,
    /// A delivery whose sessions are still mostly waiting to be polled is taken to have
    /// done at least one part in this many (8) of its sessions, so that its stretched
    /// cost stays finite: at most this many times its busy time.
    pub done_at_least_parts: u64,
    /// A staggered delivery is completed for everyone this long after its tick at the
    /// latest (250 ms): the next tick is 100 ms away at the default 10 Hz, but may be
    /// seconds away (a slow or paused world).
    pub complete_after: Duration,
}

impl Default for PacingTunables {
    fn default() -> Self {
        PacingTunables {
            busy_share: (9, 10),
            busy_streak: 2,
            fit_share: (17, 20),
            step_up: 2,
            most: SLICES / 2,
            fewest: SLICES / 3,
            too_young: (1, 4),
            typical_tick_parts: 8,
            done_at_least_parts: 8,
            complete_after: Duration::from_millis(250),
        }
    }
}

/// What to do with a tick's batches at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    /// Deliver to every connection now, with anything a part of them still lacks.
    Deliver,
    /// Deliver to the `slices` (of [`SLICES`]) that have waited longest.
    Stagger { slices: usize },
}

/// What the hubs say at the end of a tick about the last delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    /// How long it kept the busiest hub busy (µs): until every session it woke had
    /// been polled, or until now if some are still waiting.
    pub busy_us: u64,
    /// Since the end of the tick before (µs); `None` at the first.
    pub tick_us: Option<u64>,
    /// Since the last delivery began (µs).
    pub age_us: u64,
    /// Sessions woken and not polled yet, over all hubs.
    pub woken: usize,
    /// Live members.
    pub members: usize,
}

impl Load {
    /// How long the last delivery, to `slices` of the slices, needs in all (µs): its
    /// busy time, stretched by the share of its sessions still waiting (taken to have
    /// done at least one part in `done_at_least_parts`).
    fn needed_us(&self, slices: usize, done_at_least_parts: u64) -> u64 {
        if self.woken == 0 {
            return self.busy_us;
        }
        let delivered = (self.members * slices / SLICES).max(1) as u64;
        let done = delivered.saturating_sub(self.woken as u64);
        let done = done.max(delivered / done_at_least_parts.max(1)).max(1);
        self.busy_us.saturating_mul(delivered) / done
    }
}

/// Decides, at every end of tick, whether the tick goes to everyone or staggered and
/// to how many slices; remembers how the last tick went out and how long the machine
/// has been busy.
#[derive(Debug)]
pub(crate) struct StaggerGovernor {
    tunables: PacingTunables,
    /// Off: every tick is delivered to everyone at its end (`[broker]
    /// stagger_when_behind = false`).
    disabled: bool,
    /// The slices the last delivery went to ([`SLICES`]: to everyone).
    slices: usize,
    /// Ends of tick in a row that found the last delivery busy for most of a tick.
    busy_streak: u32,
    /// A running average of the time between ends of tick (µs), for
    /// [`PacingTunables::too_young`].
    typical_tick_us: Option<u64>,
}

impl StaggerGovernor {
    pub(crate) fn new(enabled: bool, tunables: PacingTunables) -> Self {
        StaggerGovernor {
            tunables,
            disabled: !enabled,
            slices: SLICES,
            busy_streak: 0,
            typical_tick_us: None,
        }
    }

    /// The numbers it decides by.
    pub(crate) fn tunables(&self) -> &PacingTunables {
        &self.tunables
    }

    /// The end of a tick: how to deliver it, given what the last delivery cost.
    pub(crate) fn end_of_tick(&mut self, load: Load) -> Pace {
        let Some(tick_us) = load.tick_us else {
            return self.deliver();
        };
        if self.too_young(load.age_us, tick_us) {
            return self.again();
        }
        let t = self.tunables;
        let needed_us = load.needed_us(self.slices, t.done_at_least_parts);
        let per_slice = (needed_us / self.slices as u64).max(1);
        let (num, den) = t.busy_share;
        let whole_us = per_slice.saturating_mul(SLICES as u64);
        let busy = whole_us.saturating_mul(den) >= tick_us.saturating_mul(num);
        self.busy_streak = if busy { self.busy_streak + 1 } else { 0 };
        let starting = self.slices == SLICES && self.busy_streak < t.busy_streak;
        if self.disabled || starting {
            return self.deliver();
        }
        let (num, den) = t.fit_share;
        let fit = tick_us.saturating_mul(num) / den / per_slice;
        let fit = usize::try_from(fit).unwrap_or(usize::MAX);
        if fit >= SLICES {
            return self.deliver();
        }
        let next = fit.min(self.slices + t.step_up).clamp(t.fewest, t.most);
        self.slices = next;
        Pace::Stagger { slices: next }
    }

    /// Something was delivered to everyone outside the end of a tick (a fence, the
    /// completion timer).
    pub(crate) fn delivered(&mut self) {
        self.slices = SLICES;
    }

    fn deliver(&mut self) -> Pace {
        self.slices = SLICES;
        Pace::Deliver
    }

    /// The same pace as the last tick's.
    fn again(&self) -> Pace {
        match self.slices {
            SLICES => Pace::Deliver,
            slices => Pace::Stagger { slices },
        }
    }

    /// Whether a delivery `age_us` old is too young to judge
    /// ([`PacingTunables::too_young`]); keeps the running average of ticks.
    fn too_young(&mut self, age_us: u64, tick_us: u64) -> bool {
        let parts = self.tunables.typical_tick_parts.max(1);
        let typical = self.typical_tick_us.unwrap_or(tick_us);
        self.typical_tick_us = Some(typical - typical / parts + tick_us / parts);
        let (num, den) = self.tunables.too_young;
        age_us.saturating_mul(den) < typical.saturating_mul(num)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: u64 = 100_000;
    const MEMBERS: usize = 19_000;

    fn governor(enabled: bool) -> StaggerGovernor {
        StaggerGovernor::new(enabled, PacingTunables::default())
    }

    fn most() -> usize {
        PacingTunables::default().most
    }

    fn fewest() -> usize {
        PacingTunables::default().fewest
    }

    /// The last delivery kept the busiest hub busy `busy_us`, and everyone was polled.
    fn done(busy_us: u64) -> Load {
        Load {
            busy_us,
            tick_us: Some(TICK),
            age_us: TICK,
            woken: 0,
            members: MEMBERS,
        }
    }

    fn stagger(slices: usize) -> Pace {
        Pace::Stagger { slices }
    }

    /// A machine whose workers write one slice's frames in `slice_us`: what they say at
    /// the end of the tick after a delivery to `slices`.
    fn machine(slice_us: u64, slices: usize) -> Load {
        let needed = slice_us * slices as u64;
        if needed <= TICK {
            return done(needed);
        }
        let delivered = (MEMBERS * slices / SLICES) as u64;
        let left = delivered * (needed - TICK) / needed;
        Load {
            busy_us: TICK,
            woken: left as usize,
            ..done(0)
        }
    }

    /// Runs the pacer against `machine(slice_us)` for `ticks` ends of tick.
    fn run(p: &mut StaggerGovernor, slice_us: u64, ticks: usize) -> Vec<Pace> {
        let mut slices = p.slices;
        let mut paces = Vec::new();
        for _ in 0..ticks {
            let pace = p.end_of_tick(machine(slice_us, slices));
            slices = match pace {
                Pace::Deliver => SLICES,
                Pace::Stagger { slices } => slices,
            };
            paces.push(pace);
        }
        paces
    }

    #[test]
    fn the_default_tunables_are_the_numbers_the_docs_give() {
        let t = PacingTunables::default();
        assert_eq!(
            (t.busy_share, t.busy_streak, t.fit_share),
            ((9, 10), 2, (17, 20))
        );
        assert_eq!((t.step_up, t.most, t.fewest), (2, 12, 8), "of {SLICES}");
        assert_eq!((t.too_young, t.typical_tick_parts), ((1, 4), 8));
        assert_eq!(t.done_at_least_parts, 8);
        assert_eq!(t.complete_after, Duration::from_millis(250));
    }

    #[test]
    fn a_server_with_time_to_spare_delivers_every_tick() {
        let mut p = governor(true);
        for _ in 0..5 {
            assert_eq!(p.end_of_tick(done(0)), Pace::Deliver);
            assert_eq!(p.end_of_tick(done(80_000)), Pace::Deliver, "under 9/10");
        }
        let first = Load {
            tick_us: None,
            ..done(900_000)
        };
        assert_eq!(p.end_of_tick(first), Pace::Deliver, "the first tick");
    }

    #[test]
    fn one_busy_delivery_is_not_enough() {
        let mut p = governor(true);
        for _ in 0..5 {
            assert_eq!(p.end_of_tick(done(95_000)), Pace::Deliver);
            assert_eq!(p.end_of_tick(done(10_000)), Pace::Deliver);
        }
    }

    #[test]
    fn busy_twice_it_staggers_to_a_half_at_most() {
        let mut p = governor(true);
        assert_eq!(p.end_of_tick(done(96_000)), Pace::Deliver, "once");
        assert_eq!(
            p.end_of_tick(done(96_000)),
            stagger(most()),
            "4 ms a slice: 21 fit in 85 ms, but a half is the most"
        );
        assert_eq!(
            p.end_of_tick(done(48_000)),
            stagger(most()),
            "a half in 48 ms: 4 ms a slice still"
        );
        assert_eq!(
            p.end_of_tick(done(40_000)),
            Pace::Deliver,
            "3.3 ms a slice: everyone fits"
        );
    }

    #[test]
    fn it_settles_where_the_machine_keeps_up() {
        let mut p = governor(true);
        let paces = run(&mut p, 7_500, 60);
        assert_eq!(paces[..2], [Pace::Deliver, stagger(11)]);
        assert!(
            paces[2..].iter().all(|&pace| pace == stagger(11)),
            "7.5 ms a slice: 11 fit in 85 ms: {paces:?}"
        );
    }

    #[test]
    fn a_machine_far_behind_goes_to_a_third_and_no_fewer() {
        let mut p = governor(true);
        let paces = run(&mut p, 20_000, 12);
        assert_eq!(paces[0], Pace::Deliver, "one busy tick");
        assert!(
            paces[1..].iter().all(|&pace| pace == stagger(fewest())),
            "{paces:?}"
        );
        assert_eq!(
            run(&mut p, 4_000, 4),
            [stagger(10), stagger(12), stagger(12), stagger(12)],
            "back up two slices a tick, to a half"
        );
        assert_eq!(run(&mut p, 2_000, 1), [Pace::Deliver], "everyone fits");
    }

    #[test]
    fn sessions_still_waiting_count_against_the_delivery() {
        let mut p = governor(true);
        p.end_of_tick(done(96_000));
        assert_eq!(p.end_of_tick(done(96_000)), stagger(most()));
        let half_left = Load {
            busy_us: TICK,
            woken: MEMBERS * most() / SLICES / 2,
            ..done(0)
        };
        assert_eq!(
            p.end_of_tick(half_left),
            stagger(fewest()),
            "half of them unpolled after a whole tick: a half needs 200 ms"
        );
        let a_tenth_left = Load {
            woken: MEMBERS * fewest() / SLICES / 10,
            ..half_left
        };
        assert_eq!(
            p.end_of_tick(a_tenth_left),
            stagger(fewest()),
            "a third needs 111 ms"
        );
    }

    #[test]
    fn a_fence_counts_as_a_whole_delivery_and_a_slow_world_has_a_longer_tick() {
        let mut p = governor(true);
        p.end_of_tick(done(96_000));
        assert_eq!(p.end_of_tick(done(96_000)), stagger(most()));
        p.delivered();
        assert_eq!(
            p.end_of_tick(done(48_000)),
            Pace::Deliver,
            "48 ms for everyone is not busy"
        );
        let mut p = governor(true);
        let slow = Load {
            tick_us: Some(1_000_000),
            age_us: 1_000_000,
            ..done(96_000)
        };
        p.end_of_tick(slow);
        assert_eq!(p.end_of_tick(slow), Pace::Deliver, "1 Hz");
    }

    #[test]
    fn a_delivery_too_young_to_judge_keeps_the_pace() {
        let mut p = governor(true);
        run(&mut p, 20_000, 4);
        let bunched = Load {
            tick_us: Some(2_000),
            age_us: 2_000,
            ..done(0)
        };
        assert_eq!(
            p.end_of_tick(bunched),
            stagger(fewest()),
            "2 ms after the last delivery, nothing polled yet: not an idle machine"
        );
        let backlog = Load {
            woken: 6_000,
            ..bunched
        };
        assert_eq!(p.end_of_tick(backlog), stagger(fewest()));
        assert_eq!(p.end_of_tick(done(0)), Pace::Deliver, "a whole tick: idle");
        let mut p = governor(true);
        p.end_of_tick(done(96_000));
        assert_eq!(
            p.end_of_tick(Load {
                age_us: 20_000,
                ..done(96_000)
            }),
            Pace::Deliver,
            "not judged: the streak stays at one"
        );
        assert_eq!(p.end_of_tick(done(96_000)), stagger(most()));
    }

    #[test]
    fn disabled_it_always_delivers() {
        let mut p = governor(false);
        for _ in 0..4 {
            assert_eq!(p.end_of_tick(machine(20_000, SLICES)), Pace::Deliver);
        }
    }
}
