//! Fan-out: one batch to every member, serialized once per distinct topic set.
//!
//! Plain data plus actix `Recipient`s, no actor context: the broker actor owns a
//! [`Groups`] and calls [`Groups::fan_out`] per batch; `benches/broadcast.rs` calls the
//! very same function against real receiving actors, so what the bench measures is the
//! delivery path the server runs.
//!
//! Why this shape (measured, see BENCHMARKS.md): the cost of a delivery is dominated by
//! actix's `try_send` (one boxed envelope, one queue node, one wake of the receiving
//! task), so the loop around it must add nothing per delivery: members of a group are a
//! contiguous `Vec` (not a tree), each group's frame is encoded once and shared by
//! reference count, failures go into caller-owned vectors reused across batches, and
//! counters are bumped once per batch, not per delivery.

use super::batcher::Batch;
use super::{Deliver, SessionId};
use crate::session::subscriptions::TopicSet;
use actix::prelude::*;
use bytestring::ByteString;
use std::collections::HashMap;

/// Sessions that receive the same filtered view of every batch.
#[derive(Default)]
struct Group {
    /// Parallel to `ids`; `swap_remove` keeps both dense.
    recipients: Vec<Recipient<Deliver>>,
    ids: Vec<SessionId>,
    /// Session id → position in `ids`/`recipients`.
    index: HashMap<SessionId, usize>,
}

impl Group {
    fn insert(&mut self, id: SessionId, deliver: Recipient<Deliver>) {
        if let Some(&at) = self.index.get(&id) {
            self.recipients[at] = deliver;
            return;
        }
        self.index.insert(id, self.ids.len());
        self.ids.push(id);
        self.recipients.push(deliver);
    }

    fn remove(&mut self, id: SessionId) -> bool {
        let Some(at) = self.index.remove(&id) else {
            return false;
        };
        self.ids.swap_remove(at);
        self.recipients.swap_remove(at);
        if let Some(&moved) = self.ids.get(at) {
            self.index.insert(moved, at);
        }
        true
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Every joined session, grouped by equal topic sets.
#[derive(Default)]
pub struct Groups {
    groups: HashMap<TopicSet, Group>,
    members: usize,
}

/// The outcome of one [`Groups::fan_out`]; reuse one across batches (the vectors keep
/// their allocation).
#[derive(Debug, Default)]
pub struct FanOut {
    /// Frames accepted by a session mailbox.
    pub sent: u64,
    /// Sessions whose mailbox (outbound queue) was full: to evict as slow.
    pub full: Vec<SessionId>,
    /// Sessions whose actor is gone: to forget.
    pub closed: Vec<SessionId>,
    /// Distinct serializations made (one per non-empty group).
    pub encodings: u64,
    /// Bytes serialized (not bytes delivered: each encoding counts once).
    pub encoded_bytes: u64,
}

impl FanOut {
    pub fn clear(&mut self) {
        self.sent = 0;
        self.full.clear();
        self.closed.clear();
        self.encodings = 0;
        self.encoded_bytes = 0;
    }
}

impl Groups {
    pub fn new() -> Self {
        Groups::default()
    }

    /// Adds (or replaces) a session in the group of `topics`.
    pub fn insert(&mut self, topics: TopicSet, id: SessionId, deliver: Recipient<Deliver>) {
        let group = self.groups.entry(topics).or_default();
        let before = group.ids.len();
        group.insert(id, deliver);
        self.members += group.ids.len() - before;
    }

    /// Removes a session from the group of `topics`; drops the group when it empties.
    pub fn remove(&mut self, topics: &TopicSet, id: SessionId) -> bool {
        let Some(group) = self.groups.get_mut(topics) else {
            return false;
        };
        let removed = group.remove(id);
        if removed {
            self.members -= 1;
        }
        if group.is_empty() {
            self.groups.remove(topics);
        }
        removed
    }

    /// Sessions across all groups.
    pub fn len(&self) -> usize {
        self.members
    }

    pub fn is_empty(&self) -> bool {
        self.members == 0
    }

    /// Distinct topic sets (= serializations per batch).
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Delivers `batch` to every session: one [`Batch::encode`] per group, then a
    /// `try_send` of the shared frame to each member's bounded mailbox. Never blocks and
    /// never queues beyond a mailbox bound (`do_send` would): a full mailbox is
    /// reported in `out.full` for the caller's slow-consumer policy.
    pub fn fan_out(&self, batch: &Batch, out: &mut FanOut) {
        for (topics, group) in &self.groups {
            let frame = batch.encode(topics);
            out.encodings += 1;
            out.encoded_bytes += frame.len() as u64;
            deliver_all(&group.recipients, &group.ids, &frame, Some(batch.seq), out);
        }
    }
}

/// `try_send`s one frame to each recipient (`ids[i]` names `recipients[i]`), recording
/// the outcome in `out`.
pub fn deliver_all(
    recipients: &[Recipient<Deliver>],
    ids: &[SessionId],
    frame: &ByteString,
    seq: Option<u64>,
    out: &mut FanOut,
) {
    let mut sent = 0u64;
    for (deliver, id) in recipients.iter().zip(ids) {
        match deliver.try_send(Deliver {
            frame: frame.clone(),
            seq,
        }) {
            Ok(()) => sent += 1,
            Err(SendError::Full(_)) => out.full.push(*id),
            Err(SendError::Closed(_)) => out.closed.push(*id),
        }
    }
    out.sent += sent;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ItemKind, Topic};

    #[test]
    fn groups_count_members_and_drop_empty_groups() {
        // Recipients need an actor; a System with a trivial sink is enough.
        struct Sink;
        impl Actor for Sink {
            type Context = Context<Self>;
        }
        impl Handler<Deliver> for Sink {
            type Result = ();
            fn handle(&mut self, _: Deliver, _: &mut Context<Self>) {}
        }
        let sys = System::new();
        sys.block_on(async {
            let r = Sink.start().recipient::<Deliver>();
            let mut g = Groups::new();
            let mut other = TopicSet::default();
            other
                .add(&[Topic::Kind(ItemKind::CharacterUpdate)])
                .expect("add");
            g.insert(TopicSet::default_topics(), 1, r.clone());
            g.insert(TopicSet::default_topics(), 2, r.clone());
            g.insert(TopicSet::default_topics(), 2, r.clone());
            g.insert(other.clone(), 3, r.clone());
            assert_eq!((g.len(), g.group_count()), (3, 2));
            assert!(g.remove(&TopicSet::default_topics(), 1));
            assert!(!g.remove(&TopicSet::default_topics(), 1));
            assert!(g.remove(&other, 3));
            assert_eq!((g.len(), g.group_count()), (1, 1));
            let batch = Batch {
                seq: 1,
                items: Vec::new(),
                timestamp: 0.0,
            };
            let mut out = FanOut::default();
            g.fan_out(&batch, &mut out);
            assert_eq!((out.sent, out.encodings), (1, 1));
            assert!(out.full.is_empty() && out.closed.is_empty());
        });
    }
}
