//! Items and batches for the broker's unit tests (one copy for batcher, fan-out and
//! roster tests).

use super::batcher::Batch;
use crate::protocol::{EventNotification, Item, ItemData};
use std::sync::Arc;

/// An `event_notification` at tick `n` about character `n`.
pub(crate) fn event(n: u64) -> Item {
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

/// A shared batch numbered `seq`.
pub(crate) fn batch(seq: u64, items: Vec<Item>) -> Arc<Batch> {
    Arc::new(Batch {
        seq,
        items,
        timestamp: seq as f64,
    })
}
