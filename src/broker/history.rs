//! The history ring: the last `history_size` batches, for `resume`.

use super::batcher::Batch;
use std::collections::VecDeque;
use std::sync::Arc;

/// What a `resume` from a given seq needs.
#[derive(Debug, PartialEq)]
pub(crate) enum Lookup {
    /// These batches, in order (possibly none: the client is up to date).
    Batches(Vec<Arc<Batch>>),
    /// The client's seq is older than the history (or from the future): it needs a
    /// fresh snapshot with `resync: true`.
    Resync,
}

/// Bounded ring of recent batches; the oldest is dropped when full.
#[derive(Debug)]
pub(crate) struct History {
    capacity: usize,
    batches: VecDeque<Arc<Batch>>,
    /// Seq of the newest batch ever pushed (kept when the ring is empty).
    last_seq: u64,
}

impl History {
    pub(crate) fn new(capacity: usize, last_seq: u64) -> Self {
        History {
            capacity: capacity.max(1),
            batches: VecDeque::with_capacity(capacity.max(1)),
            last_seq,
        }
    }

    pub(crate) fn push(&mut self, batch: Arc<Batch>) {
        if self.batches.len() == self.capacity {
            self.batches.pop_front();
        }
        self.last_seq = batch.seq;
        self.batches.push_back(batch);
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Oldest seq still kept, if any.
    pub(crate) fn oldest_seq(&self) -> Option<u64> {
        self.batches.front().map(|b| b.seq)
    }

    /// Batches with `after < seq <= upto`, or `Resync` when some of them are gone.
    pub(crate) fn range(&self, after: u64, upto: u64) -> Lookup {
        if after > self.last_seq {
            return Lookup::Resync;
        }
        let upto = upto.min(self.last_seq);
        if after >= upto {
            return Lookup::Batches(Vec::new());
        }
        match self.oldest_seq() {
            Some(oldest) if oldest <= after + 1 => Lookup::Batches(
                self.batches
                    .iter()
                    .filter(|b| b.seq > after && b.seq <= upto)
                    .cloned()
                    .collect(),
            ),
            _ => Lookup::Resync,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.batches.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(seq: u64) -> Arc<Batch> {
        Arc::new(Batch {
            seq,
            items: Vec::new(),
            timestamp: 0.0,
        })
    }

    fn seqs(l: Lookup) -> Vec<u64> {
        match l {
            Lookup::Batches(b) => b.iter().map(|b| b.seq).collect(),
            Lookup::Resync => panic!("expected batches"),
        }
    }

    #[test]
    fn keeps_the_last_capacity_batches() {
        let mut h = History::new(3, 0);
        for s in 1..=5 {
            h.push(batch(s));
        }
        assert_eq!(h.len(), 3);
        assert_eq!(h.oldest_seq(), Some(3));
        assert_eq!(h.last_seq(), 5);
    }

    #[test]
    fn range_without_gap_or_resync_when_too_old() {
        let mut h = History::new(3, 0);
        for s in 1..=5 {
            h.push(batch(s));
        }
        assert_eq!(seqs(h.range(2, 5)), vec![3, 4, 5]);
        assert_eq!(seqs(h.range(3, 4)), vec![4]);
        assert_eq!(seqs(h.range(5, 5)), Vec::<u64>::new());
        assert_eq!(h.range(1, 5), Lookup::Resync, "batch 2 is gone");
        assert_eq!(h.range(9, 9), Lookup::Resync, "seq from the future");
    }

    #[test]
    fn empty_history_is_up_to_date_at_its_seq() {
        let h = History::new(4, 7);
        assert_eq!(seqs(h.range(7, 7)), Vec::<u64>::new());
        assert_eq!(h.range(3, 7), Lookup::Resync);
    }
}
