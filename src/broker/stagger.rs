//! Who a delivery goes to, and what each member still lacks: the bookkeeping of
//! staggered delivery (`pacing` decides when to stagger, and how many ways). Plain Rust.
//!
//! Every member belongs to one of [`SLICES`] slices for life; each hub's members take
//! them in turn as they join ([`super::fanout::Groups::next_slice`]), so every slice is
//! spread over every worker thread. A delivery goes to every slice, or, staggered
//! `ways` ways, to the `SLICES / ways` slices that have waited longest. Each due slice
//! gets, in one frame per member (protocol 1.1 ranges), every batch it lacks. With two
//! ways each tick reaches half of the connections with this tick and the one before;
//! with three, a third with the last three ticks.
//!
//! Why slices and not one tick held back for everyone (BENCHMARKS.md, issue 8): for the
//! same number of writes, a held tick reaches the last connection of a sweep one tick
//! plus the whole sweep late, a staggered one one tick plus half a sweep late (a third
//! with three ways, at two ticks).

use super::batcher::Batch;
use std::sync::Arc;

/// Slices of the membership: divisible by every number of ways used (1, 2, 3).
pub const SLICES: usize = 6;

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
pub struct Slices(u8);

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
/// has been sent. Bounded by the ticks a slice may wait: at most `ways` ticks' batches
/// (or `max_batch_wait` for commands' items).
#[derive(Debug)]
pub struct Undelivered {
    batches: Vec<Arc<Batch>>,
    /// The last seq sent to each slice.
    sent: [u64; SLICES],
}

impl Undelivered {
    /// Nothing to deliver, every slice sent up to `last_seq`.
    pub fn new(last_seq: u64) -> Self {
        Undelivered {
            batches: Vec::new(),
            sent: [last_seq; SLICES],
        }
    }

    /// A batch just issued, which no slice has yet.
    pub fn push(&mut self, batch: Arc<Batch>) {
        self.batches.push(batch);
    }

    /// Every slice has been sent every batch.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The batches some slice lacks, oldest first.
    pub fn batches(&self) -> &[Arc<Batch>] {
        &self.batches
    }

    /// The last seq sent to `slice`: a member of it that catches up from the history
    /// stops here (or later), so that the slice's next delivery follows on.
    pub fn sent_to(&self, slice: Slice) -> u64 {
        self.sent[slice.0 as usize]
    }

    /// The last seq sent to every slice.
    pub fn everyone_has(&self) -> u64 {
        self.sent.iter().copied().min().unwrap_or(0)
    }

    /// Delivers to every slice (`ways` = 1), or to the `SLICES / ways` slices that have
    /// waited longest: calls `send` once for each set of due slices that lack the same
    /// batches, with those batches (the set furthest behind first), then forgets what
    /// every slice has.
    pub fn deliver(&mut self, ways: usize, mut send: impl FnMut(Slices, &[Arc<Batch>])) {
        let Some(last) = self.batches.last().map(|b| b.seq) else {
            return;
        };
        let due = self.due(ways);
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

    /// The slices a delivery `ways` ways goes to: those sent the least so far, lowest
    /// first among equals, so that from an even start they take turns in order.
    fn due(&self, ways: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..SLICES).collect();
        order.sort_by_key(|&s| (self.sent[s], s));
        order.truncate(SLICES / ways.clamp(1, SLICES));
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::testing::batch;

    /// Each call of `deliver`: (the due slices, the seqs they were sent).
    fn run(u: &mut Undelivered, ways: usize) -> Vec<(Vec<u8>, Vec<u64>)> {
        let mut got = Vec::new();
        u.deliver(ways, |set, batches| {
            let slices = (0..SLICES as u8)
                .filter(|&s| set.contains(Slice(s)))
                .collect();
            got.push((slices, batches.iter().map(|b| b.seq).collect()));
        });
        got
    }

    #[test]
    fn whole_deliveries_send_everything_to_everyone() {
        let mut u = Undelivered::new(4);
        assert!(run(&mut u, 1).is_empty(), "nothing to send");
        u.push(batch(5, vec![]));
        u.push(batch(6, vec![]));
        assert_eq!(run(&mut u, 1), vec![(vec![0, 1, 2, 3, 4, 5], vec![5, 6])]);
        assert!(u.is_empty());
    }

    #[test]
    fn two_ways_halves_take_turns_with_two_ticks_each() {
        let mut u = Undelivered::new(0);
        u.push(batch(1, vec![]));
        assert_eq!(run(&mut u, 2), vec![(vec![0, 1, 2], vec![1])]);
        u.push(batch(2, vec![]));
        assert_eq!(run(&mut u, 2), vec![(vec![3, 4, 5], vec![1, 2])]);
        assert_eq!(u.batches().len(), 1, "1 is everyone's now");
        u.push(batch(3, vec![]));
        assert_eq!(run(&mut u, 2), vec![(vec![0, 1, 2], vec![2, 3])]);
        u.push(batch(4, vec![]));
        u.push(batch(5, vec![]));
        assert_eq!(
            run(&mut u, 1),
            vec![(vec![3, 4, 5], vec![3, 4, 5]), (vec![0, 1, 2], vec![4, 5])],
            "a whole delivery completes each half, the one further behind first"
        );
        assert!(u.is_empty());
    }

    #[test]
    fn three_ways_and_back_to_two_never_skip_a_batch_or_send_one_twice() {
        let mut u = Undelivered::new(0);
        let mut got: Vec<Vec<u64>> = vec![Vec::new(); SLICES];
        let ways = [2, 2, 3, 3, 3, 3, 2, 3, 2, 2, 1];
        for (tick, &w) in ways.iter().enumerate() {
            u.push(batch(tick as u64 + 1, vec![]));
            for (slices, seqs) in run(&mut u, w) {
                for s in slices {
                    got[s as usize].extend(&seqs);
                }
            }
        }
        for (s, seqs) in got.iter().enumerate() {
            assert_eq!(
                *seqs,
                (1..=ways.len() as u64).collect::<Vec<_>>(),
                "slice {s}"
            );
        }
        assert!(u.is_empty());
    }

    #[test]
    fn three_ways_go_to_the_longest_waiting_third() {
        let mut u = Undelivered::new(0);
        u.push(batch(1, vec![]));
        assert_eq!(run(&mut u, 3), vec![(vec![0, 1], vec![1])]);
        u.push(batch(2, vec![]));
        assert_eq!(run(&mut u, 3), vec![(vec![2, 3], vec![1, 2])]);
        u.push(batch(3, vec![]));
        assert_eq!(run(&mut u, 3), vec![(vec![4, 5], vec![1, 2, 3])]);
        u.push(batch(4, vec![]));
        assert_eq!(run(&mut u, 3), vec![(vec![0, 1], vec![2, 3, 4])]);
        assert_eq!(
            u.batches().iter().map(|b| b.seq).collect::<Vec<_>>(),
            vec![3, 4],
            "2 reached slices 2 and 3 with the second delivery"
        );
    }

    #[test]
    fn slices_count_round() {
        assert_eq!(Slice::nth(7), Slice(1));
        assert_eq!(Slice::nth(5).next(), Slice(0));
        assert!(Slices::ALL.contains(Slice(5)));
        assert!(!Slices(0).with(2).contains(Slice(1)));
    }
}
