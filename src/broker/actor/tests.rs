//! The broker actor on paused tokio time, with a real hub and real outboxes: deliveries
//! that keep the worker busy for most of a tick are staggered into slices, every member
//! still gets every batch once and in order, and delivery to everyone comes back when
//! the backlog is gone.
//!
//! The test plays the worker thread: after each tick it lets paused time run for as
//! long as writing the delivery would take (a fixed cost per slice reached), then polls
//! every outbox, which is when the hub's [`Backlog`] sees the sessions caught up.

use super::{Broker, BrokerSettings, CountMembers};
use crate::broker::hub::{Backlog, DeliverFrames, LocalHub, Outbox, Overflowed};
use crate::broker::pacing::PacingTunables;
use crate::broker::relay::SeqSource;
use crate::broker::stagger::SLICES;
use crate::broker::testing::{event, NoReports};
use crate::broker::{CloseSession, JoinSession, RequestSnapshot, ResumeFrom, SnapshotRoute};
use crate::metrics::Metrics;
use crate::ports::{Publish, SnapshotFor, TakeSnapshot};
use crate::protocol::{Clock, Snapshot, SnapshotEncoding};
use crate::topics::TopicSet;
use actix::prelude::*;
use serde_json::Value;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

/// Two members in every slice.
const MEMBERS: usize = 2 * SLICES;
const TICK: Duration = Duration::from_millis(100);

/// The world: answers every snapshot request with the same snapshot (at seq 0), and
/// takes close frames and does nothing with them.
#[derive(Default)]
struct Nobody {
    broker: Option<Addr<Broker>>,
}

impl Actor for Nobody {
    type Context = Context<Self>;
}

/// Test → the world: where to publish.
#[derive(Message)]
#[rtype(result = "()")]
struct PublishTo(Addr<Broker>);

impl Handler<PublishTo> for Nobody {
    type Result = ();
    fn handle(&mut self, msg: PublishTo, _: &mut Context<Self>) {
        self.broker = Some(msg.0);
    }
}

impl Handler<TakeSnapshot> for Nobody {
    type Result = ();
    fn handle(&mut self, msg: TakeSnapshot, _: &mut Context<Self>) {
        if let Some(broker) = &self.broker {
            broker.do_send(Publish::Snapshot {
                snapshot: Box::new(snapshot()),
                to: SnapshotFor::Request(msg.ticket),
            });
        }
    }
}

impl Handler<CloseSession> for Nobody {
    type Result = ();
    fn handle(&mut self, _: CloseSession, _: &mut Context<Self>) {}
}

/// What one member's client made of its frames.
#[derive(Default)]
struct Client {
    /// The `from_seq` its next batch frame must have.
    next_from: u64,
    /// The ticks (test's count) at which it got a batch frame.
    got_at: Vec<usize>,
}

impl Client {
    /// Checks one frame: a batch frame follows on from the last, with one item per
    /// batch in order (each batch's item is tagged with its seq).
    fn receive(&mut self, frame: &str, tick: usize) {
        let v: Value = serde_json::from_str(frame).expect("a frame is JSON");
        if v["type"] != "batch" {
            return;
        }
        let (from, seq) = (v["from_seq"].as_u64(), v["seq"].as_u64().unwrap_or(0));
        assert_eq!(from, Some(self.next_from), "chained, no gap: {v}");
        let items: Vec<u64> = v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["data"]["tick"].as_u64())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(items, (self.next_from..=seq).collect::<Vec<_>>(), "{v}");
        self.next_from = seq + 1;
        self.got_at.push(tick);
    }
}

/// The broker, one hub with every member's outbox, and the members' clients.
struct Rig {
    broker: Addr<Broker>,
    hub: LocalHub,
    reports: Recipient<Overflowed>,
    outboxes: Vec<Outbox>,
    clients: Vec<Client>,
    metrics: Arc<Metrics>,
    seq: u64,
    ticks: usize,
}

impl Rig {
    async fn start(stagger_when_behind: bool) -> Rig {
        let nobody = Nobody::default().start();
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let settings = BrokerSettings {
            max_batch_size: 1000,
            max_batch_wait: Duration::from_millis(50),
            history_size: 1024,
            client_timeout: Duration::from_secs(3600),
            seq_source: SeqSource::Local,
            stagger_when_behind,
        };
        let seq = Arc::new(AtomicU64::new(0));
        let sim = nobody.clone().recipient();
        let broker = Broker::new(settings, 0, sim, Arc::clone(&metrics), seq).start();
        nobody.send(PublishTo(broker.clone())).await.expect("world");
        let hub = LocalHub::start();
        let mut rig = Rig {
            broker,
            reports: NoReports.start().recipient(),
            outboxes: Vec::new(),
            clients: Vec::new(),
            metrics,
            seq: 0,
            ticks: 0,
            hub,
        };
        for session in 1..=MEMBERS as u64 {
            rig.join(session, nobody.clone().recipient()).await;
        }
        let members = rig.broker.send(CountMembers).await.expect("broker");
        assert_eq!(members, MEMBERS);
        rig.settle().await;
        rig
    }

    /// A member joins (its snapshot at seq 0) and resumes from 0, so it is live at once.
    async fn join(&mut self, session: u64, close: Recipient<CloseSession>) {
        self.outboxes.push(self.hub.open(session, 1024));
        self.clients.push(Client {
            next_from: 1,
            ..Client::default()
        });
        let join = JoinSession {
            session,
            route: self.hub.route(),
            close,
            conn: None,
            last_seen: Arc::new(AtomicU64::new(crate::clock::now_ms())),
            topics: TopicSet::default_topics(),
            encoding: SnapshotEncoding::Objects,
        };
        let route = SnapshotRoute::Join(join);
        self.broker
            .send(RequestSnapshot { route })
            .await
            .expect("broker");
        // The world answers the broker's ticket; the member is joined once it has.
        while self.broker.send(CountMembers).await.expect("broker") < session as usize {
            tokio::task::yield_now().await;
        }
        let resume = ResumeFrom {
            session,
            last_seq: 0,
        };
        self.broker.send(resume).await.expect("broker");
    }

    /// Waits until the hub has taken every delivery the broker sent it so far (its
    /// mailbox is in order: an empty delivery sent now is handled after them), then
    /// polls every outbox dry, as the sessions' writers would.
    async fn settle(&mut self) {
        let barrier = DeliverFrames {
            frames: Vec::new(),
            overflowed: self.reports.clone(),
        };
        self.hub.route().addr.send(barrier).await.expect("hub");
        for (outbox, client) in self.outboxes.iter_mut().zip(&mut self.clients) {
            while let Some(d) = outbox.poll_pop(Waker::noop()) {
                client.receive(&d.frame, self.ticks);
            }
        }
    }

    fn backlog(&self) -> Backlog {
        self.hub.route().backlog
    }

    /// One tick of one item, on a worker that writes one slice's frames in `per_slice`:
    /// it polls the sessions once that long has passed (or just before the next tick).
    /// Returns how many members the tick's delivery reached.
    async fn tick(&mut self, per_slice: Duration) -> usize {
        self.seq += 1;
        self.ticks += 1;
        let items = vec![event(self.seq)];
        let publish = Publish::Items {
            items,
            end_of_tick: true,
        };
        self.broker.send(publish).await.expect("broker");
        let barrier = DeliverFrames {
            frames: Vec::new(),
            overflowed: self.reports.clone(),
        };
        self.hub.route().addr.send(barrier).await.expect("hub");
        let reached = self.backlog().woken();
        let slices = (reached / (MEMBERS / SLICES)) as u32;
        let busy = (per_slice * slices).min(TICK - Duration::from_millis(1));
        tokio::time::advance(busy).await;
        self.settle().await;
        assert_eq!(self.backlog().woken(), 0, "every session polled");
        tokio::time::advance(TICK - busy).await;
        reached
    }

    /// Every member has every batch issued so far.
    fn everyone_has_everything(&self) -> bool {
        self.clients.iter().all(|c| c.next_from == self.seq + 1)
    }
}

/// An empty world's snapshot (the broker stamps its seq).
fn snapshot() -> Snapshot {
    Snapshot {
        tick: 0,
        clock: Clock {
            day: 1,
            minute_of_day: 0,
        },
        paused: false,
        tick_rate: 10.0,
        seed: 1,
        state_hash: "0".into(),
        characters: Vec::new(),
        locations: Vec::new(),
        seq: 0,
        resync: false,
    }
}

/// Runs `body` on paused tokio time inside an actix system.
fn paused<F: std::future::Future<Output = ()>>(body: impl FnOnce() -> F) {
    // The pacing clock's epoch is set before the paused clock starts, so every reading
    // of it in the test is past the epoch and moves only with `advance`.
    crate::clock::now_us();
    System::new().block_on(async {
        tokio::time::pause();
        body().await;
    });
}

/// A worker that writes one slice's frames in 7.5 ms needs 180 ms for everyone, and a
/// tick is 100 ms: after two busy ticks the broker staggers, to a half, then to the 11
/// slices that fit in 85 % of a tick, and stays there; each member gets every batch,
/// chained, at least every third tick. A pause completes the staggered tick for
/// everyone, and with the backlog gone (1 ms a slice) every tick goes to everyone.
#[test]
fn a_busy_worker_gets_staggered_slices_and_everyone_catches_up() {
    paused(|| async {
        let mut rig = Rig::start(true).await;
        let reached: Vec<usize> = busy_ticks(&mut rig, 30).await;
        let pair = MEMBERS / SLICES;
        assert_eq!(reached[..4], [MEMBERS, MEMBERS, 12 * pair, 11 * pair]);
        assert!(reached[4..].iter().all(|&n| n == 11 * pair), "{reached:?}");
        let staggered = rig.metrics.deliveries_staggered.get();
        assert_eq!(staggered, 28, "every tick after the first two");
        for (i, client) in rig.clients.iter().enumerate() {
            let gaps = client.got_at.windows(2).map(|w| w[1] - w[0]);
            assert!(
                gaps.clone().all(|g| g <= 3),
                "member {i}: {:?}",
                client.got_at
            );
            assert!(gaps.clone().any(|g| g >= 2), "member {i} waited sometimes");
        }
        assert!(
            !rig.everyone_has_everything(),
            "the last tick went to some slices"
        );
        tokio::time::advance(PacingTunables::default().complete_after).await;
        rig.settle().await;
        assert!(rig.everyone_has_everything(), "completed after a pause");
        let mut reached = Vec::new();
        for _ in 0..6 {
            reached.push(rig.tick(Duration::from_millis(1)).await);
            assert!(rig.everyone_has_everything(), "tick {}", rig.ticks);
        }
        assert_eq!(reached, [MEMBERS; 6], "the backlog is gone");
        assert_eq!(rig.metrics.deliveries_staggered.get(), staggered);
    });
}

/// Switched off, the same busy worker gets every tick delivered to everyone.
#[test]
fn switched_off_every_tick_goes_to_everyone() {
    paused(|| async {
        let mut rig = Rig::start(false).await;
        let reached = busy_ticks(&mut rig, 8).await;
        assert_eq!(reached, [MEMBERS; 8]);
        assert!(rig.everyone_has_everything());
        assert_eq!(rig.metrics.deliveries_staggered.get(), 0);
    });
}

/// `ticks` ticks on a worker that needs 7.5 ms a slice: how many members each reached.
async fn busy_ticks(rig: &mut Rig, ticks: usize) -> Vec<usize> {
    let mut reached = Vec::new();
    for _ in 0..ticks {
        reached.push(rig.tick(Duration::from_micros(7_500)).await);
    }
    reached
}
