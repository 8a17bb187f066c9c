//! The presence actor: the roster of connected sessions, and the pushes that tell each
//! of them who is there.
//!
//! Every join or leave starts a round: each member's [`PresenceThrottle`] decides
//! whether it gets the current presence now, later (one timer, at the earliest
//! deadline, runs the next round) or not at all. The viewers' frame and the operators'
//! frame are each built at most once per round, and only when someone is to get it.
//!
//! In a cluster, another node's roster that arrives changed, or expires, starts a round
//! too: the counts are this node's plus every other node's, and operators' list merges
//! them (operators first, then viewers, each by `since`). A roster is dropped when it
//! is not renewed in time (checked every [`SWEEP_EVERY`]), so a node that dies leaves
//! everyone's counts.
//!
//! Queues and what happens when they are full:
//! - This actor's mailbox holds [`MAILBOX_CAPACITY`] messages. Sessions send
//!   `JoinPresence` with `try_send`: when the mailbox is full, that session is left out
//!   of presence (logged) and still works otherwise. `LeavePresence` is never dropped
//!   (a lost one would leave a ghost in everyone's counts): it is queued even past the
//!   capacity, and there is at most one per session the pool admitted. Another
//!   node's roster (`OtherNode`) also comes with `try_send`: a full mailbox drops it,
//!   and that node's next one (within a second) says the same or newer.
//! - Pushes go into each session's own bounded outbound queue with `try_send`. A full
//!   queue skips the push, and the member is asked again [`MIN_INTERVAL_MS`] later:
//!   presence is a state, so a slow client gets the latest one, never a backlog.

use super::throttle::{Decision, PresenceThrottle, MIN_INTERVAL_MS};
use super::WatchLocal;
use super::{JoinPresence, LeavePresence, LocalRoster, NodeRoster, OtherNode, PushPresence};
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

/// How often other nodes' rosters are checked for expiry.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// What a member has seen: the counts, and for operators the roster's version too
/// (their presence lists every session, so any join or leave is news to them).
type Key = (usize, usize, u64);

struct Member {
    info: PresenceSession,
    push: Recipient<PushPresence>,
    throttle: PresenceThrottle<Key>,
}

/// Another node's roster, and when it stops counting unless renewed (ms).
struct Remote {
    roster: NodeRoster,
    expires_ms: u64,
}

#[derive(Default)]
pub struct Presence {
    /// By session id, so the operators' list comes out in joining order.
    members: BTreeMap<SessionId, Member>,
    /// This node's own sessions of each role.
    viewers: usize,
    operators: usize,
    /// Bumped by every join and leave, here or in another node's roster.
    version: u64,
    /// The pending round: when it runs, and its handle.
    timer: Option<(u64, SpawnHandle)>,
    /// Other nodes' rosters, by node (cluster only).
    others: BTreeMap<u64, Remote>,
    /// Told whenever this node's own sessions change (cluster only).
    local_changes: Option<tokio::sync::watch::Sender<u64>>,
    /// Whether the expiry sweep runs (from the first other node's roster on).
    sweeping: bool,
}

impl Presence {
    fn key(&self, role: Role, totals: (usize, usize)) -> Key {
        let version = if role == Role::Operator {
            self.version
        } else {
            0
        };
        (totals.0, totals.1, version)
    }

    /// Viewers and operators on every node: this one's and every other node's.
    fn totals(&self) -> (usize, usize) {
        self.others
            .values()
            .fold((self.viewers, self.operators), |(v, o), r| {
                (v + r.roster.viewers, o + r.roster.operators)
            })
    }

    fn count(&mut self, role: Role, joined: bool) {
        let n = match role {
            Role::Viewer => &mut self.viewers,
            Role::Operator => &mut self.operators,
        };
        *n = if joined { *n + 1 } else { n.saturating_sub(1) };
        self.version += 1;
        if let Some(changes) = &self.local_changes {
            changes.send_replace(self.version);
        }
    }

    /// The `presence` object for a role.
    fn frame(&self, role: Role) -> ByteString {
        let sessions = (role == Role::Operator).then(|| self.listed());
        let (viewers, operators) = self.totals();
        let data = PresenceData {
            viewers,
            operators,
            sessions,
        };
        ByteString::from(Envelope::new("presence", data).to_json())
    }

    /// This node's first sessions as an operator sees them (see [`MAX_LISTED`]).
    fn listed_here(&self) -> impl Iterator<Item = &PresenceSession> {
        let of = |role| self.members.values().filter(move |m| m.info.role == role);
        of(Role::Operator)
            .chain(of(Role::Viewer))
            .take(MAX_LISTED)
            .map(|m| &m.info)
    }

    /// The sessions an operator is shown (see [`MAX_LISTED`]): with other nodes, every
    /// node's first ones merged, operators first, then viewers, each by `since`.
    fn listed(&self) -> Vec<PresenceSession> {
        if self.others.is_empty() {
            return self.listed_here().cloned().collect();
        }
        let theirs = self.others.values().flat_map(|r| r.roster.sessions.iter());
        let mut all: Vec<&PresenceSession> = self.listed_here().chain(theirs).collect();
        all.sort_by(|a, b| {
            let rank = |s: &PresenceSession| u8::from(s.role != Role::Operator);
            (rank(a).cmp(&rank(b)))
                .then(a.since.total_cmp(&b.since))
                .then(a.session_id.cmp(&b.session_id))
        });
        all.into_iter().take(MAX_LISTED).cloned().collect()
    }

    /// Drops the rosters of nodes that stopped renewing them.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let now = clock::now_ms();
        let mut changed = false;
        self.others.retain(|_, r| {
            let live = r.expires_ms > now;
            changed |= !live && r.roster != NodeRoster::default();
            live
        });
        if changed {
            self.version += 1;
            self.round(ctx);
        }
    }

    /// Sends the current presence to every member that is due, and arranges the next
    /// round for those that must wait.
    fn round(&mut self, ctx: &mut Context<Self>) {
        let now = clock::now_ms();
        let totals = self.totals();
        let mut due = Vec::new();
        let mut next: Option<u64> = None;
        for (id, m) in &self.members {
            let key = self.key(m.info.role, totals);
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

impl Handler<OtherNode> for Presence {
    type Result = ();

    fn handle(&mut self, msg: OtherNode, ctx: &mut Self::Context) {
        let expires_ms = clock::now_ms() + msg.expires_in.as_millis() as u64;
        let changed = match self.others.get_mut(&msg.node) {
            Some(known) => {
                known.expires_ms = expires_ms;
                let changed = known.roster != msg.roster;
                known.roster = msg.roster;
                changed
            }
            None => {
                // A node with nobody on it changes nothing anyone is shown.
                let changed = msg.roster != NodeRoster::default();
                let remote = Remote {
                    roster: msg.roster,
                    expires_ms,
                };
                self.others.insert(msg.node, remote);
                changed
            }
        };
        if !self.sweeping {
            self.sweeping = true;
            ctx.run_interval(SWEEP_EVERY, |act, ctx| act.sweep(ctx));
        }
        if changed {
            self.version += 1;
            self.round(ctx);
        }
    }
}

impl Handler<LocalRoster> for Presence {
    type Result = MessageResult<LocalRoster>;

    fn handle(&mut self, _: LocalRoster, _: &mut Self::Context) -> Self::Result {
        MessageResult(NodeRoster {
            viewers: self.viewers,
            operators: self.operators,
            sessions: self.listed_here().cloned().collect(),
        })
    }
}

impl Handler<WatchLocal> for Presence {
    type Result = ();

    fn handle(&mut self, msg: WatchLocal, _: &mut Self::Context) {
        self.local_changes = Some(msg.changes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::TransportKind;
    use serde_json::Value;

    /// Stands for a session: hands every presence it is pushed to the test.
    struct Collector(tokio::sync::mpsc::UnboundedSender<Value>);

    impl Actor for Collector {
        type Context = Context<Self>;
    }

    impl Handler<PushPresence> for Collector {
        type Result = ();

        fn handle(&mut self, msg: PushPresence, _: &mut Self::Context) {
            let v: Value = serde_json::from_str(&msg.frame).expect("presence is JSON");
            let _sent = self.0.send(v["data"].clone());
        }
    }

    fn session(session_id: u64, role: Role, since: f64) -> PresenceSession {
        PresenceSession {
            session_id,
            role,
            name: format!("s{session_id}"),
            transport: TransportKind::Ws,
            since,
        }
    }

    /// The next presence pushed, within 5 s.
    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>) -> Value {
        let wait = tokio::time::timeout(Duration::from_secs(5), rx.recv());
        wait.await
            .expect("a presence in time")
            .expect("collector alive")
    }

    fn ids(d: &Value) -> Vec<u64> {
        let sessions = d["sessions"].as_array().expect("an operator's list");
        sessions
            .iter()
            .filter_map(|s| s["session_id"].as_u64())
            .collect()
    }

    #[test]
    fn another_nodes_roster_counts_and_lists_until_it_expires() {
        actix::System::new().block_on(async {
            let presence = Presence::default().start();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let push = Collector(tx).start().recipient();
            let me = session(1, Role::Operator, 10.0);
            let join = JoinPresence { session: me, push };
            presence.send(join).await.expect("presence alive");
            let first = next(&mut rx).await;
            assert_eq!(
                (first["viewers"].as_u64(), first["operators"].as_u64()),
                (Some(0), Some(1))
            );
            let base = 7 << 32;
            let roster = NodeRoster {
                viewers: 1,
                operators: 1,
                sessions: vec![
                    session(base + 2, Role::Operator, 11.0),
                    session(base + 1, Role::Viewer, 5.0),
                ],
            };
            let expires_in = Duration::from_millis(1500);
            let other = OtherNode {
                node: 9,
                roster,
                expires_in,
            };
            presence.send(other).await.expect("presence alive");
            let merged = next(&mut rx).await;
            assert_eq!(merged["viewers"], 1, "{merged}");
            assert_eq!(merged["operators"], 2, "{merged}");
            // Operators first, then viewers, each by `since`.
            assert_eq!(ids(&merged), [1, base + 2, base + 1], "{merged}");
            let alone = next(&mut rx).await;
            assert_eq!(
                (alone["viewers"].as_u64(), alone["operators"].as_u64()),
                (Some(0), Some(1))
            );
            assert_eq!(ids(&alone), [1], "the roster expired: {alone}");
        });
    }
}
