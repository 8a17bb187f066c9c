//! Items, batches, frames and an overflow sink for the broker's unit tests (one copy
//! for the batcher, fan-out, hub, mailroom and roster tests).

use super::batcher::Batch;
use super::hub::Overflowed;
use super::Deliver;
use crate::protocol::{EventNotification, Item, ItemData};
use actix::prelude::*;
use std::sync::Arc;

/// A frame whose text and seq are `n`.
pub(crate) fn frame(n: u64) -> Deliver {
    Deliver {
        frame: n.to_string().into(),
        seq: Some(n),
    }
}

/// Takes no overflow reports: a test where a hub reports one fails.
pub(crate) struct NoReports;

impl Actor for NoReports {
    type Context = Context<Self>;
}

impl Handler<Overflowed> for NoReports {
    type Result = ();
    fn handle(&mut self, msg: Overflowed, _: &mut Context<Self>) {
        panic!("unexpected overflow: {msg:?}");
    }
}

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
