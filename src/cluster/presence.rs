//! Cluster-wide presence: every node (the sim node and each gateway) publishes its own
//! roster on `<prefix>.presence` (core NATS: a state, not a history) and merges the
//! others' into its `presence` actor, so every client's counts and operators' lists
//! cover the whole cluster, paced per connection as on a standalone server.
//!
//! * **Publishing**: a node's roster (its counts and its first 100 sessions) goes out
//!   when its sessions change, at most once per [`MIN_GAP`], and every [`HEARTBEAT`]
//!   in any case.
//! * **Expiry**: a roster counts for [`ROSTER_TTL`] after it arrives. A node that dies
//!   or loses NATS stops renewing its roster and drops out of everyone's counts within
//!   that time; while NATS is away, each node counts its own sessions only.
//! * **Leaving**: a node that shuts down cleanly publishes an empty roster
//!   ([`Leave::announce`], from the node's graceful shutdown) and publishes no more, so
//!   its sessions leave everyone's counts at once rather than after [`ROSTER_TTL`].
//! * **Session ids** are unique across nodes: a cluster node numbers its sessions from
//!   a random base ([`session_id_base`]: 21 random bits above 32 bits of counter, so
//!   ids stay below 2^53 and exact in JavaScript). Two nodes draw the same base with a
//!   chance of about one in two million per pair; a node that sees its own base in
//!   another node's roster says so in its log.
//!
//! Its own NATS connection (`simcast-presence`), on an arbiter of its own: presence
//! never waits behind batches or snapshots, nor they behind it.

use super::wire::{RosterMessage, RosterSession};
use super::Subjects;
use crate::config::{ClusterConfig, ClusterRole};
use crate::presence::{LocalRoster, NodeRoster, OtherNode, Presence, WatchLocal};
use actix::prelude::*;
use bytes::Bytes;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Every node publishes its roster at least this often.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a roster counts without being renewed: three heartbeats.
pub(crate) const ROSTER_TTL: Duration = Duration::from_secs(3);
/// The shortest time between two publications of one node's roster: a join storm
/// publishes four rosters a second, not one per join.
pub(crate) const MIN_GAP: Duration = Duration::from_millis(250);

/// Bits of a cluster node's session counter; the random base sits above them.
const COUNTER_BITS: u32 = 32;
/// Bits of the random base: with the counter, 53 (JavaScript's exact integers).
const BASE_BITS: u32 = 21;

/// The first session id of this node, less one: 0 on a standalone server (ids 1, 2, 3,
/// …), a random multiple of 2^32 (never 0) on a cluster node (see the module doc).
pub(crate) fn session_id_base(role: ClusterRole) -> u64 {
    if role == ClusterRole::Standalone {
        return 0;
    }
    use rand::Rng;
    let base = rand::rngs::OsRng.gen_range(1..(1u64 << BASE_BITS));
    base << COUNTER_BITS
}

/// Asks the roster exchange to publish an empty roster and stop publishing: the
/// node's leave, sent by its graceful shutdown.
#[derive(Clone)]
pub(crate) struct Leave(mpsc::Sender<oneshot::Sender<()>>);

impl Leave {
    /// Publishes this node's leave and waits until it is flushed to NATS, or `within`
    /// (NATS away: the other nodes drop this one's roster when it expires).
    pub(crate) async fn announce(&self, within: Duration) {
        let (done, flushed) = oneshot::channel();
        let announced = async {
            self.0.send(done).await.ok()?;
            flushed.await.ok()
        };
        match tokio::time::timeout(within, announced).await {
            Ok(Some(())) => log::info!("cluster: announced this node's leave"),
            Ok(None) => log::debug!("cluster: presence already stopped; no leave sent"),
            Err(_) => log::warn!("cluster: announcing this node's leave timed out"),
        }
    }
}

/// Starts the roster exchange on an arbiter of its own (`None` on a standalone server),
/// with the handle that announces the node's leave.
pub(crate) fn start(
    config: &ClusterConfig,
    presence: Addr<Presence>,
    id_base: u64,
) -> Option<(Arbiter, Leave)> {
    if config.role == ClusterRole::Standalone {
        return None;
    }
    // One leave is ever asked for; the bound is only the rule's.
    let (leave, leaves) = mpsc::channel(1);
    let arbiter = Arbiter::new();
    let (url, subject) = (config.nats_url.clone(), Subjects::new(&config.subject));
    arbiter.spawn(async move {
        let link = super::connect_until_up(&url, "simcast-presence").await;
        let me = Me {
            node: rand::random(),
            id_base,
            subject: subject.presence,
        };
        receive(&link, &me, presence.clone()).await;
        publish(&link, &me, &presence, leaves).await;
    });
    Some((arbiter, Leave(leave)))
}

/// Who this node is on `<prefix>.presence`.
struct Me {
    node: u64,
    id_base: u64,
    subject: String,
}

/// Subscribes (trying again until NATS answers), then hands every other node's roster
/// to `presence`, on a task of its own.
async fn receive(link: &super::link::Link, me: &Me, presence: Addr<Presence>) {
    let client = link.client().clone();
    let mut rosters = loop {
        match client.subscribe(me.subject.clone()).await {
            Ok(subscriber) => break subscriber,
            Err(e) => {
                log::warn!("cluster: subscribing to {}: {e}; retrying", me.subject);
                actix::clock::sleep(super::START_RETRY).await;
            }
        }
    };
    let (node, id_base) = (me.node, me.id_base);
    actix::spawn(async move {
        while let Some(message) = rosters.next().await {
            let roster = match serde_json::from_slice::<RosterMessage>(&message.payload) {
                Ok(r) if r.node == node => continue,
                Ok(r) => r,
                Err(e) => {
                    log::warn!("cluster: an unreadable presence roster: {e}");
                    continue;
                }
            };
            if roster.id_base == id_base {
                log::error!(
                    "cluster: node {:x} numbers its sessions from this node's base {id_base}: \
                     session ids may repeat in presence until one of them restarts",
                    roster.node
                );
            }
            // A full mailbox drops this one; the node's next heartbeat repeats it.
            if let Err(e) = presence.try_send(other_node(roster)) {
                log::debug!("cluster: a presence roster not taken: {e}");
            }
        }
    });
}

/// Another node's roster, for the presence actor.
fn other_node(message: RosterMessage) -> OtherNode {
    OtherNode {
        node: message.node,
        roster: NodeRoster {
            viewers: message.viewers,
            operators: message.operators,
            sessions: message.sessions.into_iter().map(Into::into).collect(),
        },
        expires_in: ROSTER_TTL,
    }
}

/// Publishes this node's roster on every change (at most once per [`MIN_GAP`]) and
/// every [`HEARTBEAT`], until the presence actor is gone or the node leaves.
async fn publish(
    link: &super::link::Link,
    me: &Me,
    presence: &Addr<Presence>,
    leaves: mpsc::Receiver<oneshot::Sender<()>>,
) {
    let (changes, mut changed) = tokio::sync::watch::channel(0u64);
    if presence.send(WatchLocal { changes }).await.is_err() {
        return;
    }
    let mut leaves = Some(leaves);
    loop {
        let Ok(roster) = presence.send(LocalRoster).await else {
            return;
        };
        let message = RosterMessage {
            node: me.node,
            id_base: me.id_base,
            viewers: roster.viewers,
            operators: roster.operators,
            sessions: roster.sessions.iter().map(RosterSession::from).collect(),
        };
        send_roster(link, me, &message).await;
        let wait = async {
            actix::clock::sleep(MIN_GAP).await;
            tokio::time::timeout(HEARTBEAT - MIN_GAP, changed.changed()).await
        };
        tokio::select! {
            next = wait => if let Ok(Err(_)) = next {
                // The presence actor is gone (the server is stopping).
                return;
            },
            done = next_leave(&mut leaves) => {
                let empty = RosterMessage { viewers: 0, operators: 0, sessions: Vec::new(), ..message };
                send_roster(link, me, &empty).await;
                if let Err(e) = link.client().flush().await {
                    log::warn!("cluster: flushing this node's leave: {e}");
                }
                // The shutdown may have stopped waiting; nothing to tell it then.
                let _ = done.send(());
                return;
            }
        }
    }
}

/// The next leave asked for; never, once every [`Leave`] handle is dropped.
async fn next_leave(
    leaves: &mut Option<mpsc::Receiver<oneshot::Sender<()>>>,
) -> oneshot::Sender<()> {
    if let Some(receiver) = leaves {
        if let Some(done) = receiver.recv().await {
            return done;
        }
    }
    *leaves = None;
    std::future::pending().await
}

/// Publishes `message` on the presence subject (core NATS: lost while NATS is away).
async fn send_roster(link: &super::link::Link, me: &Me, message: &RosterMessage) {
    match serde_json::to_vec(message) {
        Ok(bytes) => {
            let sent = link
                .client()
                .publish(me.subject.clone(), Bytes::from(bytes));
            if let Err(e) = sent.await {
                log::warn!("cluster: publishing this node's presence: {e}");
            }
        }
        Err(e) => log::error!("cluster: encoding this node's presence: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_number_sessions_from_a_random_base_below_2_pow_53() {
        assert_eq!(session_id_base(ClusterRole::Standalone), 0);
        for role in [ClusterRole::Sim, ClusterRole::Gateway] {
            let base = session_id_base(role);
            assert!(base >= 1 << COUNTER_BITS, "{base}");
            assert_eq!(base % (1 << COUNTER_BITS), 0);
            assert!(base + u64::from(u32::MAX) < 1 << 53, "{base}");
        }
        let draws: std::collections::HashSet<u64> = (0..8)
            .map(|_| session_id_base(ClusterRole::Gateway))
            .collect();
        assert!(draws.len() > 1, "the base is random");
    }

    #[test]
    fn a_published_roster_becomes_another_nodes_roster() {
        let message = RosterMessage {
            node: 5,
            id_base: 1 << COUNTER_BITS,
            viewers: 2,
            operators: 1,
            sessions: Vec::new(),
        };
        let other = other_node(message);
        assert_eq!((other.node, other.expires_in), (5, ROSTER_TTL));
        assert_eq!((other.roster.viewers, other.roster.operators), (2, 1));
    }
}
