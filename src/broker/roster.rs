//! The roster: who is joined, on which topics, and where each member stands in the seq
//! stream. The broker's join/resume state machine, as a plain type.
//!
//! A member is in one of three standings:
//! - **in its resume window**: it got its join snapshot (seq `s`) and waits up to
//!   [`RESUME_WINDOW`] for a `resume`, out of live delivery, so that the batches it
//!   missed and the live ones arrive as one ordered run. When the window ends it catches
//!   up from the history on what was issued since `s`, and goes live;
//! - **live**: it is in the fan-out; each frame starts where the last one ended;
//! - **awaiting a resync**: its `resume` seq is older than the history (or from the
//!   future). A snapshot with `resync: true` was asked for; it is out of live delivery
//!   until that snapshot arrives, since the snapshot covers everything it would be sent.
//!
//! Topics and resumes can arrive before the join (the join travels through the
//! simulation, they come directly): they are kept and applied at the join.
//!
//! Effects go through an [`Outlet`] (send a frame, ask for a resync), so the rules are
//! unit-tested on paused tokio time with a recording outlet. Slow-consumer policy, for
//! every route (snapshot, catch-up, reply, live): a frame that cannot be queued removes
//! the member here, and the outlet (the broker) evicts it.

use super::batcher::{fold, Batch};
use super::fanout::{FanOut, Groups, Slot};
use super::history::{History, Lookup};
use super::hub::HubRoute;
use super::stagger::{Slices, Undelivered};
use super::{Deliver, SessionId};
use crate::topics::TopicSet;
use bytestring::ByteString;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a newly joined session waits for a `resume` before live batches start.
/// A client that resumes sends it right after the snapshot; keeping it out of live
/// delivery that long lets the missed batches and the live ones arrive as one ordered
/// run. Nothing is lost by waiting: when it goes live, the batches since the snapshot
/// come from the history.
pub(crate) const RESUME_WINDOW: Duration = Duration::from_millis(100);

/// Items per frame at most when a member catches up from the history (a resume): the
/// catch-up is cut into chained frames rather than one frame the size of the history.
pub(crate) const CATCH_UP_ITEMS: usize = 1000;

/// What the roster reads to catch a member up: the batches kept for `resume`, and how
/// far live delivery has reached each slice of the members.
///
/// A catch-up (a join going live, a `resume`, a snapshot older than what was delivered)
/// runs to its member's slice's mark, or past it when the member already has more (its
/// join snapshot): never short of it, so that the slice's next delivery follows on.
/// This is what lets a join or a resume go ahead without first delivering everything
/// undelivered to everyone, which would undo a staggered tick (`stagger`).
#[derive(Clone, Copy)]
pub(crate) struct Books<'a> {
    pub history: &'a History,
    pub sent: &'a Undelivered,
}

/// What the roster needs done outside itself.
pub(crate) trait Outlet {
    /// Queues one frame of `session`'s own on its route. `false` when it could not be
    /// queued: the roster then drops the member, and the outlet evicts it.
    fn send(&mut self, route: &HubRoute, session: SessionId, frame: Deliver) -> bool;
    /// Asks for a resync snapshot for `session`; `false` when the request could not be
    /// queued (the member then stays live).
    fn request_resync(&mut self, session: SessionId) -> bool;
}

#[derive(Debug)]
struct Standing {
    topics: TopicSet,
    /// A resync snapshot has been asked for (see the module doc).
    awaiting_resync: bool,
}

/// Every joined session and its standing.
#[derive(Default)]
pub(crate) struct Roster {
    members: BTreeMap<SessionId, Standing>,
    /// Members grouped by equal topic sets, with their routes and next `from_seq`.
    groups: Groups,
    early_topics: BTreeMap<SessionId, TopicSet>,
    early_resume: BTreeMap<SessionId, u64>,
    /// Resume windows in the order they end (joins come in time order).
    resume_windows: VecDeque<(Instant, SessionId)>,
}

impl Roster {
    pub(crate) fn new() -> Self {
        Roster::default()
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn contains(&self, id: SessionId) -> bool {
        self.members.contains_key(&id)
    }

    pub(crate) fn ids(&self) -> Vec<SessionId> {
        self.members.keys().copied().collect()
    }

    /// Prepares one live delivery of `batches` (see [`Groups::fan_out`]).
    #[cfg(test)]
    pub(crate) fn fan_out(&mut self, batches: &[Arc<Batch>], out: &mut FanOut) {
        self.groups.fan_out(batches, out);
    }

    /// Prepares a live delivery of `batches` to some slices only (see
    /// [`Groups::fan_out_to`]).
    pub(crate) fn fan_out_to(&mut self, batches: &[Arc<Batch>], slices: Slices, out: &mut FanOut) {
        self.groups.fan_out_to(batches, slices, out);
    }

    /// A new member that gets `snapshot` (which reflects every batch up to `seq`), then
    /// a resume window until `now + RESUME_WINDOW`, unless a `resume` came early.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn join(
        &mut self,
        id: SessionId,
        route: HubRoute,
        topics: TopicSet,
        snapshot: (ByteString, u64),
        now: Instant,
        books: Books<'_>,
        out: &mut impl Outlet,
    ) {
        let (frame, seq) = snapshot;
        let topics = self.early_topics.remove(&id).unwrap_or(topics);
        let slice = self.groups.next_slice(route.id);
        let slot = Slot {
            id,
            route,
            next_from: seq + 1,
            live: false,
            slice,
        };
        self.groups.insert(topics.clone(), slot);
        let standing = Standing {
            topics,
            awaiting_resync: false,
        };
        self.members.insert(id, standing);
        if !self.send(id, frame, Some(seq), out) {
            return;
        }
        match self.early_resume.remove(&id) {
            Some(last_seq) => self.resume(id, last_seq, books, out),
            None => self.resume_windows.push_back((now + RESUME_WINDOW, id)),
        }
    }

    /// Ends every resume window due by `now`: those members catch up and go live.
    pub(crate) fn end_resume_windows(
        &mut self,
        now: Instant,
        books: Books<'_>,
        out: &mut impl Outlet,
    ) {
        while let Some(&(due, id)) = self.resume_windows.front() {
            if due > now {
                break;
            }
            self.resume_windows.pop_front();
            self.go_live(id, books, out);
        }
    }

    /// `resume {last_seq}`: the next frame starts at `last_seq + 1`. Before the join it is
    /// kept for the join.
    pub(crate) fn resume(
        &mut self,
        id: SessionId,
        last_seq: u64,
        books: Books<'_>,
        out: &mut impl Outlet,
    ) {
        if !self.contains(id) {
            self.early_resume.insert(id, last_seq);
            return;
        }
        if last_seq > books.history.last_seq() {
            return self.request_resync(id, out);
        }
        self.catch_up(id, last_seq, 0, books, out);
    }

    /// A member's whole topic set. Returns whether anything changed (the caller delivers
    /// what is undelivered first, under the old topics). Before the join it is kept.
    pub(crate) fn set_topics(&mut self, id: SessionId, topics: TopicSet) -> bool {
        let Some(standing) = self.members.get_mut(&id) else {
            self.early_topics.insert(id, topics);
            return false;
        };
        if standing.topics == topics {
            return false;
        }
        let old = std::mem::replace(&mut standing.topics, topics.clone());
        if let Some(slot) = self.groups.remove(&old, id) {
            self.groups.insert(topics, slot);
        }
        true
    }

    /// Forgets a member (and anything it sent before its join). Returns whether it was one.
    pub(crate) fn remove(&mut self, id: SessionId) -> bool {
        self.early_topics.remove(&id);
        self.early_resume.remove(&id);
        let Some(standing) = self.members.remove(&id) else {
            return false;
        };
        self.groups.remove(&standing.topics, id);
        true
    }

    /// Sends frames that end with a snapshot reflecting every batch up to `seq` (a
    /// resync, or a `snapshot` reply: its `reply` then its `snapshot`), then what its
    /// slice was delivered after `seq` (nothing on a standalone server, where a snapshot
    /// is stamped with the last seq; a gateway's snapshot can be older than what it
    /// delivered), and it is live from there on.
    pub(crate) fn send_snapshot(
        &mut self,
        id: SessionId,
        frames: Vec<Deliver>,
        seq: u64,
        books: Books<'_>,
        out: &mut impl Outlet,
    ) {
        for frame in frames {
            if !self.send(id, frame.frame, frame.seq, out) {
                return;
            }
        }
        if self
            .slot(id)
            .is_some_and(|s| seq >= books.sent.sent_to(s.slice))
        {
            return self.set_live(id, seq + 1);
        }
        if let Some(standing) = self.members.get_mut(&id) {
            standing.awaiting_resync = false;
        }
        if let Some(slot) = self.slot(id) {
            (slot.next_from, slot.live) = (seq + 1, false);
        }
        self.catch_up(id, seq, 0, books, out);
    }

    /// One frame of the member's own (an error the broker answers for it).
    pub(crate) fn send_own(&mut self, id: SessionId, frame: ByteString, out: &mut impl Outlet) {
        self.send(id, frame, None, out);
    }

    /// Takes every member out of live delivery until its resync snapshot arrives (a
    /// gateway whose stream lost batches asks for one snapshot for everyone).
    pub(crate) fn all_await_resync(&mut self) {
        for standing in self.members.values_mut() {
            standing.awaiting_resync = true;
        }
        let ids = self.ids();
        for id in ids {
            if let Some(slot) = self.slot(id) {
                slot.live = false;
            }
        }
    }

    /// Ends a member's resume window now (unless it awaits a resync): it catches up to
    /// what its slice was delivered, and goes live.
    pub(crate) fn go_live(&mut self, id: SessionId, books: Books<'_>, out: &mut impl Outlet) {
        if self.members.get(&id).is_none_or(|m| m.awaiting_resync) {
            return;
        }
        if let Some(slot) = self.slot(id).filter(|s| !s.live) {
            let after = slot.next_from - 1;
            self.catch_up(id, after, 0, books, out);
        }
    }

    /// Sends a member (in its resume window or live, not awaiting a resync) every batch
    /// issued so far that it lacks, even those its slice has not been delivered yet:
    /// before a `snapshot` reply, so that every item published before the snapshot
    /// reaches it first (a fence clients rely on).
    pub(crate) fn bring_up_to_date(
        &mut self,
        id: SessionId,
        books: Books<'_>,
        out: &mut impl Outlet,
    ) {
        if self.members.get(&id).is_none_or(|m| m.awaiting_resync) {
            return;
        }
        if let Some(slot) = self.slot(id) {
            let after = slot.next_from - 1;
            self.catch_up(id, after, books.history.last_seq(), books, out);
        }
    }

    /// Sends the member everything after `after` from the history, up to the latest of
    /// its slice's mark, its join snapshot and `floor` (see [`Books`]), folded into
    /// chained frames, and makes it live; or, when some of it is gone, asks for a resync.
    fn catch_up(
        &mut self,
        id: SessionId,
        after: u64,
        floor: u64,
        books: Books<'_>,
        out: &mut impl Outlet,
    ) {
        let Some(slot) = self.slot(id) else {
            return;
        };
        // A member still in its resume window after its join snapshot (seq `joined`)
        // resuming from before it gets the batches up to `joined` (already in its snapshot) in frames of their
        // own, so no frame mixes items it has with items it has not.
        let joined = (!slot.live).then(|| slot.next_from - 1);
        let upto = books
            .sent
            .sent_to(slot.slice)
            .max(joined.unwrap_or(0))
            .max(floor);
        let batches = match books.history.range(after, upto) {
            Lookup::Batches(batches) => batches,
            Lookup::Resync => return self.request_resync(id, out),
        };
        let Some(topics) = self.members.get(&id).map(|m| m.topics.clone()) else {
            return;
        };
        let (old, new) = match joined {
            Some(joined) => batches.split_at(batches.partition_point(|b| b.seq <= joined)),
            None => (&batches[..0], &batches[..]),
        };
        let (mut frames, next_from) = fold(old, after + 1, &topics, CATCH_UP_ITEMS);
        let (more, next_from) = fold(new, next_from, &topics, CATCH_UP_ITEMS);
        frames.extend(more);
        for frame in frames {
            if !self.send(id, frame.frame, Some(frame.seq), out) {
                return;
            }
        }
        self.set_live(id, next_from);
    }

    /// Takes the member out of live delivery until its resync snapshot arrives; if the
    /// request cannot be queued, the member stays live instead.
    fn request_resync(&mut self, id: SessionId, out: &mut impl Outlet) {
        if !out.request_resync(id) {
            return;
        }
        if let Some(standing) = self.members.get_mut(&id) {
            standing.awaiting_resync = true;
        }
        if let Some(slot) = self.slot(id) {
            slot.live = false;
        }
    }

    fn set_live(&mut self, id: SessionId, next_from: u64) {
        if let Some(standing) = self.members.get_mut(&id) {
            standing.awaiting_resync = false;
        }
        if let Some(slot) = self.slot(id) {
            (slot.next_from, slot.live) = (next_from, true);
        }
    }

    /// Sends one frame of the member's own; one that cannot be queued drops the member.
    fn send(
        &mut self,
        id: SessionId,
        frame: ByteString,
        seq: Option<u64>,
        out: &mut impl Outlet,
    ) -> bool {
        let Some(route) = self.slot(id).map(|s| s.route.clone()) else {
            return false;
        };
        if out.send(&route, id, Deliver { frame, seq }) {
            return true;
        }
        self.remove(id);
        false
    }

    fn slot(&mut self, id: SessionId) -> Option<&mut Slot> {
        let topics = &self.members.get(&id)?.topics;
        self.groups.get_mut(topics, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::hub::LocalHub;
    use crate::broker::stagger::SLICES;
    use crate::broker::testing::{batch, event};
    use actix::System;
    use serde_json::Value;

    /// Records what the roster asked for.
    #[derive(Default)]
    struct Record {
        frames: Vec<(SessionId, Value)>,
        resyncs: Vec<SessionId>,
        /// Sessions whose frames "cannot be queued".
        jammed: Vec<SessionId>,
    }

    impl Outlet for Record {
        fn send(&mut self, _: &HubRoute, session: SessionId, frame: Deliver) -> bool {
            if self.jammed.contains(&session) {
                return false;
            }
            let v = serde_json::from_str(&frame.frame).unwrap_or(Value::Null);
            self.frames.push((session, v));
            true
        }
        fn request_resync(&mut self, session: SessionId) -> bool {
            self.resyncs.push(session);
            true
        }
    }

    impl Record {
        /// `(from_seq, seq)` of each batch frame, `(0, seq)` for a snapshot.
        fn ranges(&self, id: SessionId) -> Vec<(u64, u64)> {
            let seq = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
            self.frames
                .iter()
                .filter(|(s, _)| *s == id)
                .map(|(_, v)| (seq(v, "from_seq"), seq(v, "seq")))
                .collect()
        }
    }

    /// A history holding batches 1..=n, one event each.
    fn history(n: u64) -> History {
        let mut h = History::new(100, 0);
        for seq in 1..=n {
            h.push(batch(seq, vec![event(seq)]));
        }
        h
    }

    /// Every slice sent up to `seq`.
    fn sent(seq: u64) -> Undelivered {
        Undelivered::new(seq)
    }

    fn snapshot(seq: u64) -> (ByteString, u64) {
        (format!(r#"{{"type":"snapshot","seq":{seq}}}"#).into(), seq)
    }

    /// Runs `body` on paused tokio time inside an actix system (for a hub route).
    fn paused<F: std::future::Future<Output = ()>>(body: impl FnOnce(HubRoute) -> F) {
        System::new().block_on(async {
            tokio::time::pause();
            body(LocalHub::start().route()).await;
        });
    }

    #[test]
    fn a_join_waits_out_its_resume_window_then_catches_up_on_what_came_since_its_snapshot() {
        paused(|route| async move {
            let (mut r, mut out) = (Roster::new(), Record::default());
            let (h, u) = (history(5), sent(5));
            let b = Books {
                history: &h,
                sent: &u,
            };
            r.join(
                1,
                route,
                TopicSet::default_topics(),
                snapshot(3),
                Instant::now(),
                b,
                &mut out,
            );
            assert_eq!(out.ranges(1), vec![(0, 3)], "the snapshot only");
            tokio::time::advance(RESUME_WINDOW / 2).await;
            r.end_resume_windows(Instant::now(), b, &mut out);
            assert_eq!(out.ranges(1).len(), 1, "still in its resume window");
            tokio::time::advance(RESUME_WINDOW / 2).await;
            r.end_resume_windows(Instant::now(), b, &mut out);
            assert_eq!(
                out.ranges(1),
                vec![(0, 3), (4, 5)],
                "4..=5 from the history"
            );
        });
    }

    #[test]
    fn an_early_resume_and_topics_apply_at_the_join() {
        paused(|route| async move {
            let (mut r, mut out) = (Roster::new(), Record::default());
            let (h, u) = (history(6), sent(6));
            let b = Books {
                history: &h,
                sent: &u,
            };
            r.resume(1, 2, b, &mut out);
            assert!(
                !r.set_topics(1, TopicSet::everything()),
                "kept for the join"
            );
            assert!(out.frames.is_empty());
            r.join(
                1,
                route,
                TopicSet::default_topics(),
                snapshot(4),
                Instant::now(),
                b,
                &mut out,
            );
            // 3..=4 are in its snapshot already: a frame of their own, then 5..=6.
            assert_eq!(out.ranges(1), vec![(0, 4), (3, 4), (5, 6)]);
            tokio::time::advance(RESUME_WINDOW).await;
            r.end_resume_windows(Instant::now(), b, &mut out);
            assert_eq!(out.ranges(1).len(), 3, "no resume window after a resume");
            assert!(
                !r.set_topics(1, TopicSet::everything()),
                "already those topics"
            );
        });
    }

    #[test]
    fn a_resume_older_than_the_history_waits_for_a_resync() {
        paused(|route| async move {
            let (mut r, mut out) = (Roster::new(), Record::default());
            let mut h = History::new(2, 0);
            for seq in 1..=5 {
                h.push(batch(seq, vec![event(seq)]));
            }
            let u = sent(5);
            let b = Books {
                history: &h,
                sent: &u,
            };
            r.join(
                1,
                route,
                TopicSet::default_topics(),
                snapshot(5),
                Instant::now(),
                b,
                &mut out,
            );
            r.resume(1, 1, b, &mut out);
            assert_eq!(out.resyncs, vec![1]);
            // Awaiting a resync: the end of its resume window does not make it live, live
            // batches skip it.
            tokio::time::advance(RESUME_WINDOW).await;
            r.end_resume_windows(Instant::now(), b, &mut out);
            let mut fan = FanOut::default();
            r.fan_out(&[batch(6, vec![event(6)])], &mut fan);
            assert_eq!(fan.sent, 0);
            let resync = Deliver {
                frame: snapshot(6).0,
                seq: Some(6),
            };
            r.send_snapshot(1, vec![resync], 6, b, &mut out);
            r.fan_out(&[batch(7, vec![event(7)])], &mut fan);
            assert_eq!(fan.sent, 1, "live after its resync snapshot");
        });
    }

    #[test]
    fn a_member_whose_frame_cannot_be_queued_is_dropped() {
        paused(|route| async move {
            let (mut r, mut out) = (Roster::new(), Record::default());
            out.jammed.push(2);
            let (h, u) = (history(1), sent(1));
            let b = Books {
                history: &h,
                sent: &u,
            };
            r.join(
                1,
                route.clone(),
                TopicSet::default_topics(),
                snapshot(1),
                Instant::now(),
                b,
                &mut out,
            );
            r.join(
                2,
                route,
                TopicSet::default_topics(),
                snapshot(1),
                Instant::now(),
                b,
                &mut out,
            );
            assert_eq!((r.len(), r.contains(2)), (1, false));
            assert!(r.remove(1) && !r.remove(1) && r.len() == 0);
        });
    }

    #[test]
    fn a_snapshot_older_than_what_was_delivered_catches_up_from_the_history() {
        paused(|route| async move {
            let (mut r, mut out) = (Roster::new(), Record::default());
            let mut h = history(5);
            let u = sent(5);
            let b = Books {
                history: &h,
                sent: &u,
            };
            r.join(
                1,
                route,
                TopicSet::default_topics(),
                snapshot(5),
                Instant::now(),
                b,
                &mut out,
            );
            tokio::time::advance(RESUME_WINDOW).await;
            r.end_resume_windows(Instant::now(), b, &mut out);
            h.push(batch(6, vec![event(6)]));
            // Batch 7 is in the history but not delivered yet: the next fan-out brings it.
            h.push(batch(7, vec![event(7)]));
            let u = sent(6);
            let b = Books {
                history: &h,
                sent: &u,
            };
            let resync = Deliver {
                frame: snapshot(4).0,
                seq: Some(4),
            };
            r.send_snapshot(1, vec![resync], 4, b, &mut out);
            assert_eq!(
                out.ranges(1),
                vec![(0, 5), (0, 4), (5, 6)],
                "5..=6 after it"
            );
            let mut fan = FanOut::default();
            r.fan_out(&[batch(7, vec![event(7)])], &mut fan);
            assert_eq!(fan.sent, 1, "live from 7");
        });
    }

    #[test]
    fn all_await_resync_keeps_everyone_out_of_live_delivery_until_its_snapshot() {
        paused(|route| async move {
            let (mut r, mut out) = (Roster::new(), Record::default());
            let (h, u) = (history(3), sent(3));
            let b = Books {
                history: &h,
                sent: &u,
            };
            for id in [1, 2] {
                let topics = TopicSet::default_topics();
                r.join(
                    id,
                    route.clone(),
                    topics,
                    snapshot(3),
                    Instant::now(),
                    b,
                    &mut out,
                );
            }
            tokio::time::advance(RESUME_WINDOW).await;
            r.end_resume_windows(Instant::now(), b, &mut out);
            r.all_await_resync();
            let mut fan = FanOut::default();
            r.fan_out(&[batch(9, vec![event(9)])], &mut fan);
            assert_eq!(fan.sent, 0, "nobody gets a frame across the gap");
            let resync = Deliver {
                frame: snapshot(9).0,
                seq: Some(9),
            };
            r.send_snapshot(1, vec![resync], 9, b, &mut out);
            let mut fan = FanOut::default();
            r.fan_out(&[batch(10, vec![event(10)])], &mut fan);
            assert_eq!(fan.sent, 1, "only the one that got its snapshot");
        });
    }

    /// What a client checks on every frame (protocol 1.1): each batch starts where the
    /// last frame ended, a snapshot restarts the chain, and no item comes twice.
    #[derive(Default)]
    struct Client {
        /// The `from_seq` the next batch must carry.
        next_from: u64,
        /// The seqs (= ticks, see `event`) of the items received, in order.
        items: Vec<u64>,
        /// The seq of the join snapshot (later ones, `snapshot` replies, do not
        /// change it: every item up to theirs came before them).
        joined: Option<u64>,
    }

    impl Client {
        fn receive(&mut self, v: &Value) {
            let seq = v["seq"].as_u64().unwrap_or(0);
            if v["type"] == "snapshot" {
                self.next_from = seq + 1;
                self.joined.get_or_insert(seq);
                return;
            }
            assert_eq!(v["from_seq"].as_u64(), Some(self.next_from), "chained: {v}");
            let data = v["data"].as_array().map(Vec::as_slice).unwrap_or_default();
            assert!(!data.is_empty(), "never empty: {v}");
            for item in data {
                let tick = item["data"]["tick"].as_u64().unwrap_or(0);
                assert!(tick >= self.next_from && tick <= seq, "in range: {v}");
                assert!(self.items.last().is_none_or(|&t| t < tick), "once: {v}");
                self.items.push(tick);
            }
            self.next_from = seq + 1;
        }
    }

    /// A roster with its books and every frame it sent, driven step by step as the
    /// broker actor drives it, for the random runs below.
    struct Model {
        r: Roster,
        out: Record,
        h: History,
        u: Undelivered,
        fan: FanOut,
        route: HubRoute,
        seq: u64,
        ids: Vec<SessionId>,
        /// The seqs of the batches with an item on the default topics.
        with_items: Vec<u64>,
    }

    impl Model {
        fn new(route: HubRoute) -> Self {
            Model {
                r: Roster::new(),
                out: Record::default(),
                h: History::new(1000, 0),
                u: Undelivered::new(0),
                fan: FanOut::default(),
                route,
                seq: 0,
                ids: Vec::new(),
                with_items: Vec::new(),
            }
        }

        fn issue(&mut self, empty: bool) {
            self.seq += 1;
            let items = if empty { vec![] } else { vec![event(self.seq)] };
            if !empty {
                self.with_items.push(self.seq);
            }
            self.h.push(batch(self.seq, items.clone()));
            self.u.push(batch(self.seq, items));
        }

        fn deliver(&mut self, count: usize) {
            let (roster, fan) = (&mut self.r, &mut self.fan);
            self.u.deliver(count, |slices, batches| {
                roster.fan_out_to(batches, slices, fan)
            });
            for (id, d) in self.fan.take_queued() {
                let v = serde_json::from_str(&d.frame).unwrap_or(Value::Null);
                self.out.frames.push((id, v));
            }
        }

        fn join(&mut self) {
            let id = self.ids.len() as SessionId + 1;
            self.ids.push(id);
            let b = Books {
                history: &self.h,
                sent: &self.u,
            };
            let (route, topics) = (self.route.clone(), TopicSet::default_topics());
            let now = Instant::now();
            (self.r).join(id, route, topics, snapshot(self.seq), now, b, &mut self.out);
        }

        async fn go_live_after(&mut self, wait: Duration) {
            tokio::time::advance(wait).await;
            let b = Books {
                history: &self.h,
                sent: &self.u,
            };
            self.r.end_resume_windows(Instant::now(), b, &mut self.out);
        }

        /// A `snapshot` command's reply.
        fn snapshot_reply(&mut self, id: SessionId) {
            let b = Books {
                history: &self.h,
                sent: &self.u,
            };
            self.r.bring_up_to_date(id, b, &mut self.out);
            let (frame, seq) = snapshot(self.seq);
            let frames = vec![Deliver {
                frame,
                seq: Some(seq),
            }];
            self.r.send_snapshot(id, frames, seq, b, &mut self.out);
        }

        /// A resume from the last seq the client saw.
        fn resume(&mut self, id: SessionId) {
            let last_seen = self.client(id).next_from - 1;
            let b = Books {
                history: &self.h,
                sent: &self.u,
            };
            self.r.resume(id, last_seen, b, &mut self.out);
        }

        /// What member `id`'s client made of its frames (checking each on the way).
        fn client(&self, id: SessionId) -> Client {
            let mut client = Client::default();
            for (_, v) in self.out.frames.iter().filter(|(s, _)| *s == id) {
                client.receive(v);
            }
            client
        }
    }

    /// Random runs of issued batches (some with nothing on the default topics),
    /// deliveries to any number of the slices, joins, ends of resume windows, resumes and `snapshot`
    /// replies, with no delivery to everyone before any of them: every member gets, after its join
    /// snapshot, every item once, in order, in chained frames (those before a `snapshot`
    /// reply before it).
    #[test]
    fn staggered_deliveries_with_joins_and_resumes_never_skip_or_repeat_an_item() {
        use rand::{Rng, SeedableRng};
        for seed in 0..24 {
            paused(|route| async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let mut m = Model::new(route);
                for _ in 0..300 {
                    match rng.gen_range(0..11) {
                        0..=4 => m.issue(rng.gen_bool(0.2)),
                        5..=6 => m.deliver(rng.gen_range(1..=SLICES)),
                        7 => m.join(),
                        8 => m.go_live_after(RESUME_WINDOW / 2).await,
                        9 if !m.ids.is_empty() => m.resume(m.ids[rng.gen_range(0..m.ids.len())]),
                        10 if !m.ids.is_empty() => {
                            m.snapshot_reply(m.ids[rng.gen_range(0..m.ids.len())])
                        }
                        _ => {}
                    }
                }
                m.go_live_after(RESUME_WINDOW).await;
                m.deliver(SLICES);
                assert!(m.u.is_empty(), "seed {seed}: everything delivered");
                assert!(m.ids.len() > 10, "seed {seed}: a run with joins");
                for &id in &m.ids {
                    let client = m.client(id);
                    let joined = client.joined.unwrap_or(0);
                    let due = m.with_items.iter().filter(|&&s| s > joined);
                    let due: Vec<u64> = due.copied().collect();
                    assert_eq!(client.items, due, "seed {seed}, member {id}");
                }
            });
        }
    }
}
