//! Batching: items in, numbered batches out, and frames that cover a range of batches.
//!
//! Plain data, no actix: the broker actor decides *when* to flush (size, wait, end of
//! tick) and when to deliver; the [`Batcher`] decides what a batch holds and stamps its
//! `seq`. A delivered `batch` frame (protocol 1.1) covers a *range* of broker batches,
//! `from_seq..=seq`, holding only the items a topic set passes: a connection never gets
//! an empty frame, and a tick cut into several broker batches still reaches it as one.

use crate::protocol::{now_ts, Item};
use crate::topics::TopicSet;
use bytestring::ByteString;
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;
use std::sync::Arc;

/// A numbered batch of items, shared (behind `Arc`) by the history and every delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub seq: u64,
    pub items: Vec<Item>,
    /// When the batch was flushed (Unix seconds).
    pub timestamp: f64,
}

/// The items of consecutive batches that pass a topic set, serialized lazily as one
/// JSON array.
struct Filtered<'a> {
    batches: &'a [Arc<Batch>],
    topics: &'a TopicSet,
}

impl Serialize for Filtered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        let items = self.batches.iter().flat_map(|b| b.items.iter());
        for item in items.filter(|i| self.topics.matches(i)) {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

/// Field order matters: `from_seq` comes first so [`RangeFrame::with_from`] can swap it
/// without re-serializing the rest.
#[derive(Serialize)]
struct BatchFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    from_seq: u64,
    seq: u64,
    data: Filtered<'a>,
    timestamp: f64,
}

/// The opening of every frame, up to the `from_seq` value.
const FRAME_PREFIX: &str = r#"{"type":"batch","from_seq":"#;

/// A serialized `batch` frame covering `from_seq..=seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeFrame {
    pub frame: ByteString,
    pub from_seq: u64,
    pub seq: u64,
    /// Byte offset just past the `from_seq` number.
    from_end: usize,
}

impl RangeFrame {
    /// The frame of `batches` (consecutive, oldest first) for `topics`, labelled as
    /// starting at `from_seq`; `None` when no item passes `topics`, since an empty frame
    /// is never sent (its range folds into the next one the connection gets).
    pub fn encode(batches: &[Arc<Batch>], from_seq: u64, topics: &TopicSet) -> Option<Self> {
        let last = batches.last()?;
        if !any_for(batches, topics) {
            return None;
        }
        let frame = BatchFrame {
            kind: "batch",
            from_seq,
            seq: last.seq,
            data: Filtered { batches, topics },
            timestamp: last.timestamp,
        };
        match serde_json::to_string(&frame) {
            Ok(s) => Some(RangeFrame {
                frame: ByteString::from(s),
                from_seq,
                seq: last.seq,
                from_end: FRAME_PREFIX.len() + decimal_len(from_seq),
            }),
            Err(e) => {
                // Unreachable with our types (no non-string map keys); never panic on
                // the broadcast path.
                log::error!("batch {} failed to serialize: {e}", last.seq);
                None
            }
        }
    }

    /// The same frame labelled with another `from_seq`: for a connection whose range
    /// starts elsewhere (it joined, resumed or was resynced since its group's last
    /// frame) but whose items are the same. A copy of the bytes, not a re-serialization.
    pub fn with_from(&self, from_seq: u64) -> ByteString {
        if from_seq == self.from_seq {
            return self.frame.clone();
        }
        let rest = &self.frame[self.from_end..];
        let mut s = String::with_capacity(self.frame.len() + 20);
        s.push_str(FRAME_PREFIX);
        s.push_str(&from_seq.to_string());
        s.push_str(rest);
        ByteString::from(s)
    }
}

fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Whether any item of `batches` passes `topics`: stops at the first, since this runs
/// once per group per delivery before the group's frame is serialized.
fn any_for(batches: &[Arc<Batch>], topics: &TopicSet) -> bool {
    let mut items = batches.iter().flat_map(|b| b.items.iter());
    items.any(|i| topics.matches(i))
}

/// Number of items of `batches` that `topics` passes.
pub fn count_for(batches: &[Arc<Batch>], topics: &TopicSet) -> usize {
    let items = batches.iter().map(|b| b.items.len());
    if topics.is_everything() {
        return items.sum();
    }
    batches
        .iter()
        .flat_map(|b| b.items.iter())
        .filter(|i| topics.matches(i))
        .count()
}

/// Folds consecutive `batches` (a resume or a join catching up from the history) into
/// frames of about `max_items` items each, chained so that each frame's `from_seq` is
/// the previous one's `seq + 1`, the first starting at `from_seq`. Returns the frames and
/// the `from_seq` the connection's next frame must carry.
pub fn fold(
    batches: &[Arc<Batch>],
    mut from_seq: u64,
    topics: &TopicSet,
    max_items: usize,
) -> (Vec<RangeFrame>, u64) {
    let mut frames = Vec::new();
    let (mut start, mut count) = (0, 0);
    for (i, b) in batches.iter().enumerate() {
        count += count_for(std::slice::from_ref(b), topics);
        let last = i + 1 == batches.len();
        if count > 0 && (count >= max_items || last) {
            if let Some(frame) = RangeFrame::encode(&batches[start..=i], from_seq, topics) {
                from_seq = frame.seq + 1;
                frames.push(frame);
            }
            (start, count) = (i + 1, 0);
        }
    }
    (frames, from_seq)
}

/// Accumulates items and cuts them into batches of at most `max_size`.
#[derive(Debug)]
pub struct Batcher {
    max_size: usize,
    pending: Vec<Item>,
    last_seq: u64,
}

impl Batcher {
    /// `last_seq` is the seq of the last batch already issued (0 on a fresh world).
    pub fn new(max_size: usize, last_seq: u64) -> Self {
        Batcher {
            max_size: max_size.max(1),
            pending: Vec::new(),
            last_seq,
        }
    }

    /// Adds items; returns every batch that reached `max_size`.
    pub fn push(&mut self, items: Vec<Item>) -> Vec<Batch> {
        let mut full = Vec::new();
        for item in items {
            self.pending.push(item);
            if self.pending.len() >= self.max_size {
                full.extend(self.flush());
            }
        }
        full
    }

    /// Cuts whatever is pending into a batch (none when nothing is pending).
    pub fn flush(&mut self) -> Option<Batch> {
        if self.pending.is_empty() {
            return None;
        }
        self.last_seq += 1;
        let items = std::mem::replace(&mut self.pending, Vec::with_capacity(self.max_size));
        Some(Batch {
            seq: self.last_seq,
            items,
            timestamp: now_ts(),
        })
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Takes `seq` as the last issued: a gateway's batches are numbered by the sim node.
    pub fn adopt(&mut self, seq: u64) {
        self.last_seq = seq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::testing::{batch, event};
    use crate::protocol::{ItemData, ItemKind, Topic};
    use serde_json::Value;

    #[test]
    fn cuts_at_max_size_and_numbers_strictly() {
        let mut b = Batcher::new(3, 10);
        let full = b.push((0..7).map(event).collect());
        assert_eq!(full.len(), 2);
        assert_eq!(full[0].seq, 11);
        assert_eq!(full[1].seq, 12);
        assert!(full.iter().all(|f| f.items.len() == 3));
        assert_eq!(b.pending(), 1);
        let rest = b.flush().expect("one pending");
        assert_eq!((rest.seq, rest.items.len()), (13, 1));
        assert!(b.flush().is_none(), "nothing pending, no empty batch");
        assert_eq!(b.last_seq(), 13);
    }

    #[test]
    fn keeps_item_order_across_batches() {
        let mut b = Batcher::new(2, 0);
        let mut all = b.push((0..5).map(event).collect());
        all.extend(b.flush());
        let ticks: Vec<u64> = all
            .iter()
            .flat_map(|b| b.items.iter())
            .map(|i| match &i.data {
                ItemData::EventNotification(e) => e.tick,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(ticks, vec![0, 1, 2, 3, 4]);
    }

    fn only(kind: ItemKind) -> TopicSet {
        let mut t = TopicSet::default();
        t.add(&[Topic::Kind(kind)]).expect("add");
        t
    }

    #[test]
    fn a_range_frame_holds_every_matching_item_of_its_batches() {
        let batches = vec![
            batch(5, (0..4).map(event).collect()),
            batch(6, vec![event(9)]),
        ];
        let f = RangeFrame::encode(&batches, 3, &TopicSet::default_topics()).expect("items");
        let v: Value = serde_json::from_str(&f.frame).expect("json");
        assert_eq!(v["type"], "batch");
        assert_eq!(
            (v["from_seq"].as_u64(), v["seq"].as_u64()),
            (Some(3), Some(6))
        );
        assert_eq!(v["data"].as_array().map(Vec::len), Some(5));
        assert_eq!(v["data"][0]["type"], "event_notification");
        assert_eq!(v["timestamp"], 6.0);

        let mut one = TopicSet::default();
        one.add(&[Topic::Character(2)]).expect("add");
        let v: Value =
            serde_json::from_str(&RangeFrame::encode(&batches, 5, &one).expect("one").frame)
                .expect("json");
        assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
        assert_eq!(count_for(&batches, &one), 1);
    }

    #[test]
    fn no_frame_when_nothing_matches() {
        let batches = vec![batch(5, (0..4).map(event).collect())];
        assert_eq!(
            RangeFrame::encode(&batches, 5, &only(ItemKind::CharacterUpdate)),
            None
        );
        assert_eq!(RangeFrame::encode(&[], 5, &TopicSet::everything()), None);
    }

    #[test]
    fn with_from_relabels_without_changing_the_rest() {
        let batches = vec![batch(99, vec![event(1)])];
        let f = RangeFrame::encode(&batches, 99, &TopicSet::everything()).expect("items");
        for from in [7, 10, 98, 1_000_000] {
            let v: Value = serde_json::from_str(&f.with_from(from)).expect("json");
            let mut expected: Value = serde_json::from_str(&f.frame).expect("json");
            expected["from_seq"] = from.into();
            assert_eq!(v, expected);
        }
        assert_eq!(f.with_from(99), f.frame);
    }

    #[test]
    fn fold_chains_frames_and_skips_empty_stretches() {
        let cu = only(ItemKind::EventNotification);
        let batches = vec![
            batch(11, vec![event(1), event(2)]),
            batch(12, vec![]),
            batch(13, vec![event(3)]),
            batch(14, vec![event(4), event(5), event(6)]),
            batch(15, vec![]),
        ];
        let (frames, next) = fold(&batches, 11, &cu, 3);
        let ranges: Vec<(u64, u64)> = frames.iter().map(|f| (f.from_seq, f.seq)).collect();
        assert_eq!(ranges, vec![(11, 13), (14, 14)]);
        assert_eq!(
            next, 15,
            "batch 15 had nothing: it folds into the next frame"
        );

        let (frames, next) = fold(&batches, 11, &only(ItemKind::CharacterUpdate), 3);
        assert!(frames.is_empty());
        assert_eq!(next, 11);
    }
}
