//! Fan-out: the batches of one delivery to every member, serialized once per topic set.
//!
//! Plain data plus hub addresses, no actor context: the broker actor owns a [`Groups`]
//! and calls [`Groups::fan_out`] then [`FanOut::dispatch`] per delivery;
//! `benches/broadcast.rs` calls the very same functions against real hubs and outboxes,
//! so what the bench measures is the delivery path the server runs.
//!
//! Each member carries the `from_seq` its next frame must have (protocol 1.1 ranges).
//! Members of a group almost always share it; one whose range starts earlier (its group's
//! last frame skipped it) gets the same bytes relabelled ([`RangeFrame::with_from`]). One
//! that is ahead of a delivery's first batch (its join snapshot or its own catch-up went
//! past what its slice had been sent, see [`super::roster`]) gets only the batches after
//! it, encoded once per distinct start. A group whose topics pass none of a delivery's
//! items sends nothing: its members' `from_seq` stays, and the skipped batches fold into
//! their next frame.
//!
//! Why this shape: a per-session actix `try_send` (one boxed envelope, one queue node,
//! one cross-thread wake) costs more than the write it carries (BENCHMARKS.md). So the
//! frames are sorted by the member's [`hub`](super::hub) (one per worker thread) and each
//! hub gets one message per delivery; the loop adds nothing per member beyond a
//! reference-count increment and a push into a vector that is sent whole: members of a
//! group are a contiguous `Vec` (not a tree), each group's frame is encoded once, failures
//! go into caller-owned vectors reused across batches, and counters are bumped once per
//! batch, not per delivery.

use super::batcher::{Batch, RangeFrame};
use super::hub::{HubRoute, Overflowed};
use super::mailroom::{Mailroom, Posted};
use super::stagger::{Slice, Slices};
use super::{Deliver, SessionId};
use crate::topics::TopicSet;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

/// One member of a group.
pub struct Slot {
    pub id: SessionId,
    /// The hub of the member's thread.
    pub route: HubRoute,
    /// The `from_seq` of the next frame this member gets.
    pub next_from: u64,
    /// In live delivery. Not yet after its join (in its resume window, then catching up
    /// from the history), nor while it awaits a resync snapshot, which covers everything
    /// it would have been sent.
    pub live: bool,
    /// Its slice of the connections, for staggered delivery (`stagger`); kept for life.
    pub slice: Slice,
}

impl Slot {
    /// Whether a delivery to `slices` is for this member.
    fn due(&self, slices: Slices) -> bool {
        self.live && slices.contains(self.slice)
    }
}

/// Sessions that receive the same filtered view of every batch.
#[derive(Default)]
struct Group {
    /// `swap_remove` keeps it dense.
    slots: Vec<Slot>,
    /// Session id → position in `slots`.
    index: HashMap<SessionId, usize>,
}

impl Group {
    fn insert(&mut self, slot: Slot) {
        if let Some(&at) = self.index.get(&slot.id) {
            let slice = self.slots[at].slice;
            self.slots[at] = Slot { slice, ..slot };
            return;
        }
        self.index.insert(slot.id, self.slots.len());
        self.slots.push(slot);
    }

    fn remove(&mut self, id: SessionId) -> Option<Slot> {
        let at = self.index.remove(&id)?;
        let slot = self.slots.swap_remove(at);
        if let Some(moved) = self.slots.get(at) {
            self.index.insert(moved.id, at);
        }
        Some(slot)
    }

    fn get_mut(&mut self, id: SessionId) -> Option<&mut Slot> {
        let at = *self.index.get(&id)?;
        self.slots.get_mut(at)
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Queues this delivery for the members due in `slices`. Each member gets the
    /// batches after those it already has: for most, all of `batches`, in one frame
    /// encoded once and labelled with the first one's `from_seq` (relabelled for a
    /// member whose range starts earlier, after batches with nothing for it). A member
    /// ahead of `batches` (its join snapshot, or a catch-up of its own, reached past its
    /// slice's last delivery) gets the rest, encoded once per distinct start. Moves each
    /// member's `next_from` past its frame. (A frame the hub cannot queue gets its
    /// session evicted, so no member goes on with a gap.)
    fn deliver(
        &mut self,
        batches: &[Arc<Batch>],
        topics: &TopicSet,
        slices: Slices,
        frames: &mut Vec<(u64, Option<RangeFrame>)>,
        out: &mut FanOut,
    ) {
        let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
            return;
        };
        frames.clear();
        for slot in self.slots.iter_mut().filter(|s| s.due(slices)) {
            let start = slot.next_from.max(first.seq);
            if start > last.seq {
                continue;
            }
            let at = match frames.iter().position(|(s, _)| *s == start) {
                Some(at) => at,
                None => {
                    let rest = &batches[batches.partition_point(|b| b.seq < start)..];
                    let frame = RangeFrame::encode(rest, slot.next_from, topics);
                    if let Some(f) = &frame {
                        out.encodings += 1;
                        out.encoded_bytes += f.frame.len() as u64;
                    }
                    frames.push((start, frame));
                    frames.len() - 1
                }
            };
            let Some(frame) = &frames[at].1 else {
                continue;
            };
            let deliver = Deliver {
                frame: frame.with_from(slot.next_from),
                seq: Some(frame.seq),
            };
            out.push(&slot.route, slot.id, deliver);
            out.sent += 1;
            slot.next_from = frame.seq + 1;
        }
    }
}

/// Every joined session, grouped by equal topic sets.
#[derive(Default)]
pub struct Groups {
    groups: HashMap<TopicSet, Group>,
    members: usize,
    /// The slice of the next member to join, per hub: each worker's sessions take the
    /// slices in turn.
    slices: HashMap<u64, Slice>,
}

/// The outcome of one [`Groups::fan_out`]; reuse one across batches (the vectors keep
/// their allocation).
#[derive(Debug, Default)]
pub struct FanOut {
    /// Frames handed to hubs.
    pub sent: u64,
    /// Sessions whose hub's mailbox was full: to evict as slow. (Full outboxes come back
    /// later, from the hub, as [`Overflowed`].)
    pub full: Vec<SessionId>,
    /// Sessions whose hub is gone (its worker stopped): to forget.
    pub closed: Vec<SessionId>,
    /// Frames gathered per hub, sent by [`FanOut::dispatch`].
    hubs: Vec<HubFrames>,
    /// Distinct serializations made (one per group with something to send).
    pub encodings: u64,
    /// Bytes serialized (not bytes delivered: each encoding counts once).
    pub encoded_bytes: u64,
    /// Scratch: one group's frames of a delivery, by the first seq they cover.
    frames: Vec<(u64, Option<RangeFrame>)>,
}

impl FanOut {
    pub fn clear(&mut self) {
        self.sent = 0;
        self.full.clear();
        self.closed.clear();
        self.encodings = 0;
        self.encoded_bytes = 0;
        self.hubs
            .retain(|h| !h.frames.is_empty() || h.route.addr.connected());
    }

    /// Queues a frame for `slot`'s session in its hub's message.
    fn push(&mut self, route: &HubRoute, session: SessionId, frame: Deliver) {
        let at = match self.hubs.iter().position(|h| h.route.id == route.id) {
            Some(at) => at,
            None => {
                self.hubs.push(HubFrames::new(route.clone()));
                self.hubs.len() - 1
            }
        };
        self.hubs[at].frames.push((session, frame));
    }

    /// Takes the frames queued so far, in order, instead of sending them (tests that
    /// follow what each member receives).
    #[cfg(test)]
    pub(crate) fn take_queued(&mut self) -> Vec<(SessionId, Deliver)> {
        self.hubs
            .iter_mut()
            .flat_map(|h| std::mem::take(&mut h.frames))
            .collect()
    }

    /// Sends each hub its frames, one message per hub, through `mailroom` (where they
    /// wait while a hub's mailbox is full). A hub that is gone puts its sessions into
    /// `closed`, one jammed past the mailroom's bound into `full`.
    pub fn dispatch(&mut self, mailroom: &mut Mailroom, overflowed: &Recipient<Overflowed>) {
        for hub in &mut self.hubs {
            if hub.frames.is_empty() {
                continue;
            }
            let room = Vec::with_capacity(hub.frames.len());
            let frames = std::mem::replace(&mut hub.frames, room);
            let count = frames.len() as u64;
            let (failed, into) = match mailroom.post(&hub.route, frames, overflowed) {
                Posted::Sent | Posted::Waiting => continue,
                Posted::Closed(ids) => (ids, &mut self.closed),
                Posted::Jammed(ids) => (ids, &mut self.full),
            };
            self.sent = self.sent.saturating_sub(count);
            into.extend(failed);
        }
    }
}

/// The frames of one delivery for one hub.
#[derive(Debug)]
struct HubFrames {
    route: HubRoute,
    frames: Vec<(SessionId, Deliver)>,
}

impl HubFrames {
    fn new(route: HubRoute) -> Self {
        HubFrames {
            route,
            frames: Vec::new(),
        }
    }
}

impl Groups {
    pub fn new() -> Self {
        Groups::default()
    }

    /// The slice of a new member on `hub`: each hub's members take the slices in turn,
    /// so every part of a staggered delivery is spread over every worker thread.
    pub fn next_slice(&mut self, hub: u64) -> Slice {
        let next = self.slices.entry(hub).or_default();
        let slice = *next;
        *next = slice.next();
        slice
    }

    /// Adds (or replaces, keeping its slice) a member in the group of `topics`.
    pub fn insert(&mut self, topics: TopicSet, slot: Slot) {
        let group = self.groups.entry(topics).or_default();
        let before = group.slots.len();
        group.insert(slot);
        self.members += group.slots.len() - before;
    }

    /// Removes a member from the group of `topics`; drops the group when it empties.
    pub fn remove(&mut self, topics: &TopicSet, id: SessionId) -> Option<Slot> {
        let group = self.groups.get_mut(topics)?;
        let removed = group.remove(id);
        if removed.is_some() {
            self.members -= 1;
        }
        if group.is_empty() {
            self.groups.remove(topics);
        }
        removed
    }

    /// A member's slot, to read or change its `next_from` and `live`.
    pub fn get_mut(&mut self, topics: &TopicSet, id: SessionId) -> Option<&mut Slot> {
        self.groups.get_mut(topics)?.get_mut(id)
    }

    /// Sessions across all groups.
    pub fn len(&self) -> usize {
        self.members
    }

    pub fn is_empty(&self) -> bool {
        self.members == 0
    }

    /// Distinct topic sets (= serializations per delivery at most).
    #[cfg(test)]
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Prepares the delivery of `batches` (consecutive, oldest first: everything issued
    /// since the last delivery) to every live member: one [`RangeFrame::encode`] per
    /// group with matching items, the shared frame queued in `out` for each member's hub.
    /// [`FanOut::dispatch`] then sends them.
    pub fn fan_out(&mut self, batches: &[Arc<Batch>], out: &mut FanOut) {
        self.fan_out_to(batches, Slices::ALL, out);
    }

    /// [`Groups::fan_out`] to the members of some `slices` only, for a staggered
    /// delivery: `batches` are then what those slices have not been sent yet.
    pub fn fan_out_to(&mut self, batches: &[Arc<Batch>], slices: Slices, out: &mut FanOut) {
        let mut frames = std::mem::take(&mut out.frames);
        for (topics, group) in &mut self.groups {
            group.deliver(batches, topics, slices, &mut frames, out);
        }
        frames.clear();
        out.frames = frames;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::hub::{LocalHub, Outbox};
    use crate::broker::testing::{batch, event, NoReports};
    use crate::protocol::{ItemKind, Topic};
    use futures_util::{FutureExt, StreamExt};
    use serde_json::Value;

    fn updates_only() -> TopicSet {
        let mut t = TopicSet::default();
        t.add(&[Topic::Kind(ItemKind::CharacterUpdate)])
            .expect("add");
        t
    }

    /// The `(from_seq, seq)` of every frame waiting in `outbox`.
    fn ranges(outbox: &mut Outbox) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        // The outbox yields after each frame (a poll in between): a bounded number of
        // polls drains it.
        for d in (0..64).filter_map(|_| outbox.next().now_or_never().flatten()) {
            let v: Value = serde_json::from_str(&d.frame).unwrap_or(Value::Null);
            out.push((
                v["from_seq"].as_u64().unwrap_or(0),
                v["seq"].as_u64().unwrap_or(0),
            ));
        }
        out
    }

    #[test]
    fn members_get_chained_ranges_and_never_an_empty_frame() {
        let sys = System::new();
        sys.block_on(async {
            let hub = LocalHub::start();
            let reports = NoReports.start().recipient();
            let (mut a, mut b, mut c) = (hub.open(1, 16), hub.open(2, 16), hub.open(3, 16));
            let slot = |id, next_from, live| Slot {
                id,
                route: hub.route(),
                next_from,
                live,
                slice: Slice::default(),
            };
            let mut g = Groups::new();
            g.insert(TopicSet::default_topics(), slot(1, 1, true));
            g.insert(updates_only(), slot(2, 1, true));
            g.insert(TopicSet::default_topics(), slot(3, 1, false));
            assert_eq!((g.len(), g.group_count()), (3, 2));
            let mut out = FanOut::default();
            g.fan_out(
                &[batch(1, vec![event(1)]), batch(2, vec![event(2)])],
                &mut out,
            );
            out.dispatch(&mut Mailroom::default(), &reports);
            assert_eq!(
                (out.sent, out.encodings),
                (1, 1),
                "the updates group had nothing"
            );
            g.fan_out(&[batch(3, vec![])], &mut out);
            // Member 3 goes live after catching up to seq 5 (say, from a snapshot).
            if let Some(s) = g.get_mut(&TopicSet::default_topics(), 3) {
                (s.live, s.next_from) = (true, 6);
            }
            out.clear();
            g.fan_out(&[batch(6, vec![event(6)])], &mut out);
            out.dispatch(&mut Mailroom::default(), &reports);
            assert_eq!(out.sent, 2);
            actix::clock::sleep(std::time::Duration::from_millis(20)).await;
            assert_eq!(
                ranges(&mut a),
                vec![(1, 2), (3, 6)],
                "3 folded into the next"
            );
            assert_eq!(
                ranges(&mut c),
                vec![(6, 6)],
                "relabelled from its own start"
            );
            assert!(ranges(&mut b).is_empty(), "no empty frames");
            assert!(g.remove(&updates_only(), 2).is_some());
            assert!(g.remove(&updates_only(), 2).is_none());
            assert_eq!((g.len(), g.group_count()), (2, 1));
        });
    }

    #[test]
    fn a_gone_hub_reports_its_sessions_closed() {
        let sys = System::new();
        sys.block_on(async {
            let arbiter = Arbiter::new();
            let (tx, rx) = tokio::sync::oneshot::channel();
            arbiter.spawn(async move {
                let _ = tx.send(LocalHub::start().route());
            });
            let route = rx.await.expect("hub started");
            arbiter.stop();
            let _ = arbiter.join();
            let mut g = Groups::new();
            g.insert(
                TopicSet::default_topics(),
                Slot {
                    id: 7,
                    route,
                    next_from: 1,
                    live: true,
                    slice: Slice::default(),
                },
            );
            let mut out = FanOut::default();
            g.fan_out(&[batch(1, vec![event(1)])], &mut out);
            out.dispatch(&mut Mailroom::default(), &NoReports.start().recipient());
            assert_eq!((out.sent, out.closed.clone()), (0, vec![7]));
        });
    }
}
