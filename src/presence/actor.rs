//! The presence actor: the roster of connected sessions, and the pushes that tell each
//! of them who is there.
//!
//! Every join or leave starts a round: each member's [`PresenceThrottle`] decides
//! whether it gets the current presence now, later (one timer, at the earliest
//! deadline, runs the next round) or not at all. The viewers' frame and the operators'
//! frame are each built at most once per round, and only when someone is to get it.
//!
//! Queues and what happens when they are full:
//! - This actor's mailbox holds [`MAILBOX_CAPACITY`] messages. Sessions send
//!   `JoinPresence` with `try_send`: when the mailbox is full, that session is left out
//!   of presence (logged) and still works otherwise. `LeavePresence` is never dropped
//!   (a lost one would leave a ghost in everyone's counts): it is queued even past the
//!   capacity, and there is at most one per session the pool admitted.
//! - Pushes go into each session's own bounded outbound queue with `try_send`. A full
//!   queue skips the push, and the member is asked again [`MIN_INTERVAL_MS`] later:
//!   presence is a state, so a slow client gets the latest one, never a backlog.

use super::throttle::{Decision, PresenceThrottle, MIN_INTERVAL_MS};
use super::{JoinPresence, LeavePresence, PushPresence};
use crate::broker::SessionId;
use crate::clock;
use crate::protocol::{Envelope, Presence as PresenceData, PresenceSession, Role};
use actix::prelude::*;
use bytestring::ByteString;
use std::collections::BTreeMap;
use std::time::Duration;

/// Messages waiting for the presence actor (see the module doc for what overflows).
pub(crate) const MAILBOX_CAPACITY: usize = 4096;
/// Most sessions an operator's `sessions` lists: operators first, then viewers, each in
/// joining order. The counts stay exact. Without a cap, a thousand operators would each
/// get the whole roster (~100 KB) every second while people come and go: a megabyte per
/// connection per second, and slow readers evicted, whose leaving is news again.
pub(crate) const MAX_LISTED: usize = 100;

/// What a member has seen: the counts, and for operators the roster's version too
/// (their presence lists every session, so any join or leave is news to them).
type Key = (usize, usize, u64);

struct Member {
    info: PresenceSession,
    push: Recipient<PushPresence>,
    throttle: PresenceThrottle<Key>,
}

#[derive(Default)]
pub struct Presence {
    /// By session id, so the operators' list comes out in joining order.
    members: BTreeMap<SessionId, Member>,
    viewers: usize,
    operators: usize,
    /// Bumped by every join and leave.
    version: u64,
    /// The pending round: when it runs, and its handle.
    timer: Option<(u64, SpawnHandle)>,
}

impl Presence {
    fn key(&self, role: Role) -> Key {
        let version = if role == Role::Operator {
            self.version
        } else {
            0
        };
        (self.viewers, self.operators, version)
    }

    fn count(&mut self, role: Role, joined: bool) {
        let n = match role {
            Role::Viewer => &mut self.viewers,
            Role::Operator => &mut self.operators,
        };
        *n = if joined { *n + 1 } else { n.saturating_sub(1) };
        self.version += 1;
    }

    /// The `presence` object for a role.
    fn frame(&self, role: Role) -> ByteString {
        let sessions = (role == Role::Operator).then(|| self.listed());
        let data = PresenceData {
            viewers: self.viewers,
            operators: self.operators,
            sessions,
        };
        ByteString::from(Envelope::new("presence", data).to_json())
    }

    /// The sessions an operator is shown (see [`MAX_LISTED`]).
    fn listed(&self) -> Vec<PresenceSession> {
        let of = |role| self.members.values().filter(move |m| m.info.role == role);
        of(Role::Operator)
            .chain(of(Role::Viewer))
            .take(MAX_LISTED)
            .map(|m| m.info.clone())
            .collect()
    }

    /// Sends the current presence to every member that is due, and arranges the next
    /// round for those that must wait.
    fn round(&mut self, ctx: &mut Context<Self>) {
        let now = clock::now_ms();
        let mut due = Vec::new();
        let mut next: Option<u64> = None;
        for (id, m) in &self.members {
            let key = self.key(m.info.role);
            match m.throttle.decide(key, now) {
                Decision::Send => due.push((*id, m.info.role, key)),
                Decision::WaitUntil(at) => next = Some(next.map_or(at, |n| n.min(at))),
                Decision::UpToDate => {}
            }
        }
        let mut frames: [Option<ByteString>; 2] = [None, None];
        for (id, role, key) in due {
            let slot = &mut frames[usize::from(role == Role::Operator)];
            let frame = slot.get_or_insert_with(|| self.frame(role)).clone();
            let Some(m) = self.members.get_mut(&id) else {
                continue;
            };
            match m.push.try_send(PushPresence { frame }) {
                Ok(()) => m.throttle.sent(key, now),
                Err(SendError::Full(_)) => {
                    let at = now + MIN_INTERVAL_MS;
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
                // Gone: its LeavePresence is on the way.
                Err(SendError::Closed(_)) => {}
            }
        }
        if let Some(at) = next {
            self.round_at(at, now, ctx);
        }
    }

    /// Makes sure a round runs at `at` (ms) or earlier.
    fn round_at(&mut self, at: u64, now: u64, ctx: &mut Context<Self>) {
        if let Some((pending, handle)) = self.timer {
            if pending <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let handle = ctx.run_later(Duration::from_millis(at.saturating_sub(now)), |act, ctx| {
            act.timer = None;
            act.round(ctx);
        });
        self.timer = Some((at, handle));
    }
}

impl Actor for Presence {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Handler<JoinPresence> for Presence {
    type Result = ();

    fn handle(&mut self, msg: JoinPresence, ctx: &mut Self::Context) {
        let id = msg.session.session_id;
        if self.members.contains_key(&id) {
            return;
        }
        self.count(msg.session.role, true);
        let member = Member {
            info: msg.session,
            push: msg.push,
            throttle: PresenceThrottle::new(),
        };
        self.members.insert(id, member);
        self.round(ctx);
    }
}

impl Handler<LeavePresence> for Presence {
    type Result = ();

    fn handle(&mut self, msg: LeavePresence, ctx: &mut Self::Context) {
        if let Some(m) = self.members.remove(&msg.session) {
            self.count(m.info.role, false);
            self.round(ctx);
        }
    }
}
