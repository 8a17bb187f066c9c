//! Who a delivery goes to, and what each member still lacks: the bookkeeping of
//! staggered delivery (`pacing` decides when to stagger, and to how many slices). Plain Rust.
//!
//! Every member belongs to one of [`SLICES`] slices for life; each hub's members take
//! them in turn as they join ([`super::fanout::Groups::next_slice`]), so every slice is
//! spread over every worker thread. A delivery goes to every slice, or, staggered, to
//! the `count` slices that have waited longest (`pacing` picks the count: as many as
//! the workers can write in a tick). Each due slice gets, in one frame per member
//! (protocol 1.1 ranges), every batch it lacks, the slices furthest behind first. With
//! half of the slices per tick, each tick reaches half of the connections with this
//! tick and the one before; with 11 of 24, most get two ticks and some three.
//!
//! Why slices and not one tick delayed for everyone (how pacing first worked,
//! BENCHMARKS.md, issue 8): for the same number of writes, a delayed tick reaches the
//! last connection of a sweep one tick plus the whole sweep late, a staggered one one
//! tick plus half a sweep late (a third with three ways, at two ticks). Why 24 of them: the count can then follow the
//! workers' capacity in steps of ~4 % of the connections, where halves and thirds left
//! a server that could write 90 % of the half lagging, or idling at a third.

use super::batcher::Batch;
use std::sync::Arc;

/// Slices of the membership. Divisible by 2 and 3, so that a half and a third of the
/// connections are whole slices; at most 32 ([`Slices`] is a bit set).
pub(crate) const SLICES: usize = 24;

/// One slice, kept by a member for life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Slice(u8);

impl Slice {
    /// The `n`th slice, counting round.
    pub fn nth(n: usize) -> Slice {
        Slice((n % SLICES) as u8)
    }

    /// The slice after this one.
    pub fn next(self) -> Slice {
        Slice::nth(self.0 as usize + 1)
    }
}

/// A set of slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slices(u32);

impl Slices {
    pub const ALL: Slices = Slices((1 << SLICES) - 1);

    pub fn contains(self, slice: Slice) -> bool {
        self.0 & (1 << slice.0) != 0
    }

    fn with(self, slice: usize) -> Slices {
        Slices(self.0 | 1 << slice)
    }
}

/// The batches some slice has not been sent yet, oldest first, and how far each slice
/// has been sent. Bounded by the ticks a slice may wait (at most three ticks' batches
/// while staggered, see `pacing`; or `max_batch_wait` for commands' items).
#[derive(Debug)]
pub(crate) struct Undelivered {
    batches: Vec<Arc<Batch>>,
    /// The last seq sent to each slice.
    sent: [u64; SLICES],
}

impl Undelivered {
    /// Nothing to deliver, every slice sent up to `last_seq`.
    pub(crate) fn new(last_seq: u64) -> Self {
        Undelivered {
            batches: Vec::new(),
            sent: [last_seq; SLICES],
        }
    }

    /// A batch just issued, which no slice has yet.
    pub(crate) fn push(&mut self, batch: Arc<Batch>) {
        self.batches.push(batch);
    }

    /// Every slice has been sent every batch.
    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The batches some slice lacks, oldest first.
    pub(crate) fn batches(&self) -> &[Arc<Batch>] {
        &self.batches
    }

    /// The last seq sent to `slice`: a member of it that catches up from the history
    /// stops here (or later), so that the slice's next delivery follows on.
    pub(crate) fn sent_to(&self, slice: Slice) -> u64 {
        self.sent[slice.0 as usize]
    }

    /// The last seq sent to every slice.
    pub(crate) fn everyone_has(&self) -> u64 {
        self.sent.iter().copied().min().unwrap_or(0)
    }

    /// Delivers to every slice (`count` = [`SLICES`]), or to the `count` slices that
    /// have waited longest: calls `send` once for each set of due slices that lack the
    /// same batches, with those batches (the set furthest behind first, so that the
    /// hubs write the oldest items first), then forgets what every slice has.
    pub(crate) fn deliver(&mut self, count: usize, mut send: impl FnMut(Slices, &[Arc<Batch>])) {
        let Some(last) = self.batches.last().map(|b| b.seq) else {
            return;
        };
        let due = self.due(count);
        let mut starts: Vec<u64> = due.iter().map(|&s| self.sent[s]).collect();
        starts.sort_unstable();
        starts.dedup();
        for start in starts {
            let set = due
                .iter()
                .filter(|&&s| self.sent[s] == start)
                .fold(Slices(0), |set, &s| set.with(s));
            let from = self.batches.partition_point(|b| b.seq <= start);
            if from < self.batches.len() {
                send(set, &self.batches[from..]);
            }
        }
        for &s in &due {
            self.sent[s] = last;
        }
        let everyone_has = self.everyone_has();
        self.batches.retain(|b| b.seq > everyone_has);
    }

    /// The `count` slices a delivery goes to: those sent the least so far, lowest first
    /// among equals, so that from an even start they take turns in order.
    fn due(&self, count: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..SLICES).collect();
        order.sort_by_key(|&s| (self.sent[s], s));
        order.truncate(count.clamp(1, SLICES));
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::testing::batch;

    const HALF: usize = SLICES / 2;
    const THIRD: usize = SLICES / 3;

    /// Each call of `deliver` to `count` slices: (the due slices, the seqs they were sent).
    fn run(u: &mut Undelivered, count: usize) -> Vec<(Vec<u8>, Vec<u64>)> {
        let mut got = Vec::new();
        u.deliver(count, |set, batches| {
            let slices = (0..SLICES as u8)
                .filter(|&s| set.contains(Slice(s)))
                .collect();
            got.push((slices, batches.iter().map(|b| b.seq).collect()));
        });
        got
    }

    /// Slices `from..to`.
    fn span(from: usize, to: usize) -> Vec<u8> {
        (from as u8..to as u8).collect()
    }

    #[test]
    fn whole_deliveries_send_everything_to_everyone() {
        let mut u = Undelivered::new(4);
        assert!(run(&mut u, SLICES).is_empty(), "nothing to send");
        u.push(batch(5, vec![]));
        u.push(batch(6, vec![]));
        assert_eq!(run(&mut u, SLICES), vec![(span(0, SLICES), vec![5, 6])]);
        assert!(u.is_empty());
    }

    #[test]
    fn halves_take_turns_with_two_ticks_each() {
        let mut u = Undelivered::new(0);
        u.push(batch(1, vec![]));
        assert_eq!(run(&mut u, HALF), vec![(span(0, HALF), vec![1])]);
        u.push(batch(2, vec![]));
        assert_eq!(run(&mut u, HALF), vec![(span(HALF, SLICES), vec![1, 2])]);
        assert_eq!(u.batches().len(), 1, "1 is everyone's now");
        u.push(batch(3, vec![]));
        assert_eq!(run(&mut u, HALF), vec![(span(0, HALF), vec![2, 3])]);
        u.push(batch(4, vec![]));
        u.push(batch(5, vec![]));
        assert_eq!(
            run(&mut u, SLICES),
            vec![
                (span(HALF, SLICES), vec![3, 4, 5]),
                (span(0, HALF), vec![4, 5])
            ],
            "a whole delivery completes each half, the one further behind first"
        );
        assert!(u.is_empty());
    }

    #[test]
    fn any_counts_in_any_order_never_skip_a_batch_or_send_one_twice() {
        let mut u = Undelivered::new(0);
        let mut got: Vec<Vec<u64>> = vec![Vec::new(); SLICES];
        let counts = [12, 11, 8, 9, 10, 8, 13, 7, 11, 1, 24, 11, 11, 10, SLICES];
        for (tick, &count) in counts.iter().enumerate() {
            u.push(batch(tick as u64 + 1, vec![]));
            for (slices, seqs) in run(&mut u, count) {
                for s in slices {
                    got[s as usize].extend(&seqs);
                }
            }
        }
        for (s, seqs) in got.iter().enumerate() {
            assert_eq!(
                *seqs,
                (1..=counts.len() as u64).collect::<Vec<_>>(),
                "slice {s}"
            );
        }
        assert!(u.is_empty());
    }

    #[test]
    fn thirds_go_to_the_longest_waiting_third() {
        let mut u = Undelivered::new(0);
        u.push(batch(1, vec![]));
        assert_eq!(run(&mut u, THIRD), vec![(span(0, THIRD), vec![1])]);
        u.push(batch(2, vec![]));
        assert_eq!(
            run(&mut u, THIRD),
            vec![(span(THIRD, 2 * THIRD), vec![1, 2])]
        );
        u.push(batch(3, vec![]));
        assert_eq!(
            run(&mut u, THIRD),
            vec![(span(2 * THIRD, SLICES), vec![1, 2, 3])]
        );
        u.push(batch(4, vec![]));
        assert_eq!(run(&mut u, THIRD), vec![(span(0, THIRD), vec![2, 3, 4])]);
        assert_eq!(
            u.batches().iter().map(|b| b.seq).collect::<Vec<_>>(),
            vec![3, 4],
            "2 reached the second third with the second delivery"
        );
    }

    #[test]
    fn between_a_half_and_a_third_the_slices_furthest_behind_go_first() {
        let mut u = Undelivered::new(0);
        let mut intervals = vec![Vec::new(); SLICES];
        let mut last = [0u64; SLICES];
        for tick in 1..=48u64 {
            u.push(batch(tick, vec![]));
            let sends = run(&mut u, 10);
            let starts: Vec<u64> = sends.iter().map(|(_, seqs)| seqs[0]).collect();
            let mut sorted = starts.clone();
            sorted.sort_unstable();
            assert_eq!(starts, sorted, "tick {tick}: oldest first");
            for (slices, _) in sends {
                for s in slices {
                    intervals[s as usize].push(tick - last[s as usize]);
                    last[s as usize] = tick;
                }
            }
        }
        for (s, gaps) in intervals.iter().enumerate() {
            assert!(
                gaps.iter().skip(1).all(|g| (2..=3).contains(g)),
                "slice {s}: every second or third tick, got {gaps:?}"
            );
        }
    }

    #[test]
    fn slices_count_round() {
        assert_eq!(Slice::nth(SLICES + 1), Slice(1));
        assert_eq!(Slice::nth(SLICES - 1).next(), Slice(0));
        assert!(Slices::ALL.contains(Slice(SLICES as u8 - 1)));
        assert!(!Slices(0).with(2).contains(Slice(1)));
    }
}
