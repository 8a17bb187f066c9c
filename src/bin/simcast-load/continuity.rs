//! Per-connection seq continuity: does this client get every batch?
//!
//! Protocol 1.1 batches carry a range: each batch's `from_seq` must be the previous
//! batch's `seq` + 1, and the first batch after a `snapshot` must start at the
//! snapshot's `seq` + 1. A v1 server sends no `from_seq` and every batch to every
//! connection, so there the rule is `seq` = previous + 1. Anything else counts as one
//! gap. Kept apart from the socket code so the rule can be tested on its own.

/// What one connection has seen so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Continuity {
    /// The `from_seq` (or, from a v1 server, the `seq`) the next batch must have;
    /// `None` until a snapshot or a batch says.
    expected: Option<u64>,
    pub batches: u64,
    pub first_seq: Option<u64>,
    pub last_seq: u64,
    pub gaps: u64,
}

impl Continuity {
    /// A `snapshot` reflecting every batch up to `seq`.
    pub(crate) fn snapshot(&mut self, seq: u64) {
        self.expected = Some(seq + 1);
    }

    /// A batch that carries no seq (the lean broadcaster): counted, not judged.
    pub(crate) fn unnumbered(&mut self) {
        self.batches += 1;
    }

    /// A batch covering `from_seq` (when given) through `seq`.
    pub(crate) fn batch(&mut self, from_seq: Option<u64>, seq: u64) {
        let start = from_seq.unwrap_or(seq);
        if self.expected.is_some_and(|e| e != start) {
            self.gaps += 1;
        }
        self.first_seq.get_or_insert(start);
        self.expected = Some(seq + 1);
        self.last_seq = seq;
        self.batches += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_each_other_and_the_snapshot() {
        let mut c = Continuity::default();
        c.snapshot(10);
        c.batch(Some(11), 13);
        c.batch(Some(14), 14);
        assert_eq!(
            (c.gaps, c.batches, c.first_seq, c.last_seq),
            (0, 2, Some(11), 14)
        );
        c.batch(Some(16), 17);
        assert_eq!(c.gaps, 1, "15 is missing");
        c.batch(Some(17), 18);
        assert_eq!(c.gaps, 2, "17 twice");
    }

    #[test]
    fn a_batch_not_following_the_snapshot_is_a_gap() {
        let mut c = Continuity::default();
        c.snapshot(10);
        c.batch(Some(12), 12);
        assert_eq!(c.gaps, 1);
    }

    #[test]
    fn v1_batches_without_from_seq_rise_by_one() {
        let mut c = Continuity::default();
        c.snapshot(4);
        c.batch(None, 5);
        c.batch(None, 6);
        assert_eq!(c.gaps, 0);
        c.batch(None, 8);
        assert_eq!(c.gaps, 1);
    }

    #[test]
    fn without_a_snapshot_the_first_batch_sets_the_start() {
        let mut c = Continuity::default();
        c.batch(Some(100), 101);
        c.batch(Some(102), 102);
        assert_eq!((c.gaps, c.first_seq), (0, Some(100)));
    }
}
