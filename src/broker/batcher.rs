//! Batching: items in, numbered batches out, and each batch serialized once per topic set.
//!
//! Plain data, no actix: the broker actor decides *when* to flush (size, wait, end of
//! tick); the [`Batcher`] decides what a batch holds and stamps its `seq`.

use crate::protocol::{now_ts, Item};
use crate::session::subscriptions::TopicSet;
use bytestring::ByteString;
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

/// A numbered batch of items, shared (behind `Arc`) by the history and every delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub seq: u64,
    pub items: Vec<Item>,
    /// When the batch was flushed (Unix seconds).
    pub timestamp: f64,
}

/// The items of a batch that pass a topic set, serialized lazily as a JSON array.
struct Filtered<'a> {
    items: &'a [Item],
    topics: &'a TopicSet,
}

impl Serialize for Filtered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for item in self.items.iter().filter(|i| self.topics.matches(i)) {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct BatchFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u64,
    data: Filtered<'a>,
    timestamp: f64,
}

impl Batch {
    /// The `batch` object as the given topic set sees it: every batch reaches every
    /// client (possibly with an empty `data`), so `seq` has no gaps on any connection and
    /// a gap always means loss.
    pub fn encode(&self, topics: &TopicSet) -> ByteString {
        let frame = BatchFrame {
            kind: "batch",
            seq: self.seq,
            data: Filtered {
                items: &self.items,
                topics,
            },
            timestamp: self.timestamp,
        };
        match serde_json::to_string(&frame) {
            Ok(s) => ByteString::from(s),
            Err(e) => {
                // Unreachable with our types (no non-string map keys); never panic on
                // the broadcast path.
                log::error!("batch {} failed to serialize: {e}", self.seq);
                ByteString::from_static("")
            }
        }
    }

    /// Number of items a topic set would receive.
    pub fn count_for(&self, topics: &TopicSet) -> usize {
        if topics.is_everything() {
            return self.items.len();
        }
        self.items.iter().filter(|i| topics.matches(i)).count()
    }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{EventNotification, ItemData, ItemKind, Topic};
    use serde_json::Value;

    fn event(n: u64) -> Item {
        Item::new(
            ItemData::EventNotification(EventNotification {
                event_type: "e".into(),
                tick: n,
                data: serde_json::json!({ "n": n }),
                event_id: None,
                characters: vec![n],
            }),
            1.0,
        )
    }

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

    #[test]
    fn encodes_filtered_batch_once_per_topic_set() {
        let batch = Batch {
            seq: 5,
            items: (0..4).map(event).collect(),
            timestamp: 2.0,
        };
        let all: Value =
            serde_json::from_str(&batch.encode(&TopicSet::default_topics())).expect("json");
        assert_eq!(all["type"], "batch");
        assert_eq!(all["seq"], 5);
        assert_eq!(all["data"].as_array().map(Vec::len), Some(4));
        assert_eq!(all["data"][0]["type"], "event_notification");

        let mut one = TopicSet::default();
        one.add(&[Topic::Character(2)]).expect("add");
        let v: Value = serde_json::from_str(&batch.encode(&one)).expect("json");
        assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
        assert_eq!(batch.count_for(&one), 1);

        let mut none = TopicSet::default();
        none.add(&[Topic::Kind(ItemKind::CharacterUpdate)])
            .expect("add");
        let v: Value = serde_json::from_str(&batch.encode(&none)).expect("json");
        assert_eq!(
            v["data"],
            serde_json::json!([]),
            "empty batches still carry seq"
        );
    }
}
