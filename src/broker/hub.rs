//! Delivery hubs: the broker's frames cross to each HTTP worker thread once per
//! delivery, not once per session.
//!
//! One [`Hub`] actor runs on every thread that hosts sessions (started there on first
//! use, [`LocalHub::this_thread`]). The broker sends a hub one [`DeliverFrames`] per
//! delivery with every frame for that thread's sessions; the hub, on the sessions' own
//! thread, pushes each frame into its session's [`Outbox`] (a bounded queue the session
//! polls as a stream) and wakes it. Per session per delivery that is one reference-count
//! increment, one queue push and one same-thread wake: no allocation and no cross-thread
//! message (the measurements: BENCHMARKS.md, issue 8).
//!
//! Everything the broker sends a session (join snapshot, catch-up, replies, live
//! batches) takes this one path, so a session gets frames in the order the broker sent
//! them, and one slow-consumer policy covers them all.
//!
//! Bounds and overflow policy:
//! - a hub's mailbox holds [`HUB_MAILBOX`] deliveries; the broker `try_send`s through
//!   its [`super::mailroom`], where what a full mailbox does not take waits (in order),
//!   and evicts only once the frames waiting for a hub pass its bound (a jammed thread);
//! - an outbox holds `session.outbound_queue` frames. A full one means its session is not
//!   being polled (its socket does not drain): the hub drops that frame and every later
//!   one for it, and reports the session once in [`Overflowed`]; the broker evicts it.

use super::{Deliver, SessionId};
use actix::prelude::*;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

/// Deliveries a hub's mailbox holds (about 100 s of ticks at 10 Hz).
pub const HUB_MAILBOX: usize = 1024;

/// Identifies a hub within the process.
pub type HubId = u64;

static NEXT_HUB: AtomicU64 = AtomicU64::new(1);

/// Broker → hub: frames for sessions on the hub's thread, each session's in order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeliverFrames {
    pub frames: Vec<(SessionId, Deliver)>,
    /// Where the hub reports sessions whose outbox was full.
    pub overflowed: Recipient<Overflowed>,
}

/// Hub → broker: these sessions' outboxes were full; evict them as slow. Each session
/// is reported at most once (its outbox stays marked), which bounds these messages.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Overflowed {
    pub sessions: Vec<SessionId>,
}

/// What the broker keeps to reach a session: its hub (cheap to clone, `Send`).
#[derive(Clone)]
pub struct HubRoute {
    pub id: HubId,
    pub addr: Addr<Hub>,
    /// How far this hub's thread is behind, for the broker's pacing.
    pub backlog: Backlog,
}

/// How far one hub's thread is behind its deliveries: the sessions a push has woken
/// that have not been polled since, and when that last fell to none. So the broker
/// knows how long a delivery kept the thread busy (see [`super::pacing`]).
///
/// A session whose socket is full is not counted: its writer waits for the socket, not
/// for the outbox, so a push finds no waker and wakes nobody. A stalled client (its
/// frames pile up until it is evicted) therefore never makes the thread look busy.
/// The hub's thread writes the gauge; the broker only reads it, once per tick, so
/// relaxed ordering is enough: a reading a few microseconds stale changes nothing.
#[derive(Debug, Clone, Default)]
pub struct Backlog(Arc<Gauge>);

#[derive(Debug, Default)]
struct Gauge {
    woken: AtomicUsize,
    /// [`crate::clock::now_us`] when `woken` last fell to 0.
    caught_up_at: AtomicU64,
}

impl Backlog {
    /// Sessions woken by a push and not polled since.
    pub fn woken(&self) -> usize {
        self.0.woken.load(Ordering::Relaxed)
    }

    /// How long the thread took, from `since` (on [`crate::clock::now_us`]), until
    /// every session a push woke had been polled; or, at `now`, how long it has been
    /// at it so far.
    pub fn busy_since(&self, since: u64, now: u64) -> u64 {
        if self.woken() > 0 {
            now.saturating_sub(since)
        } else {
            let caught_up_at = self.0.caught_up_at.load(Ordering::Relaxed);
            caught_up_at.saturating_sub(since)
        }
    }

    fn woke_one(&self) {
        self.0.woken.fetch_add(1, Ordering::Relaxed);
    }

    fn polled_one(&self) {
        if self.0.woken.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0
                .caught_up_at
                .store(crate::clock::now_us(), Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for HubRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HubRoute({})", self.id)
    }
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// The queue just became full: report the session (once).
    Overflowed,
    /// Already overflowed earlier: dropped silently.
    Dropped,
}

/// One session's bounded queue of frames, shared by the hub (pushes) and the session's
/// [`Outbox`] (pops). Plain data: the rules are unit-tested without actix.
#[derive(Debug)]
pub struct Queue {
    frames: VecDeque<Deliver>,
    capacity: usize,
    waker: Option<Waker>,
    overflowed: bool,
    /// The hub's gauge; `woken` says whether this queue counts in it (a push woke its
    /// reader, which has not popped since).
    backlog: Backlog,
    woken: bool,
}

impl Queue {
    pub fn new(capacity: usize, backlog: Backlog) -> Self {
        Queue {
            frames: VecDeque::new(),
            capacity: capacity.max(1),
            waker: None,
            overflowed: false,
            backlog,
            woken: false,
        }
    }

    /// Queues a frame and wakes the reader, unless the queue is (or was) full.
    pub fn push(&mut self, frame: Deliver) -> Push {
        if self.overflowed {
            return Push::Dropped;
        }
        if self.frames.len() >= self.capacity {
            self.overflowed = true;
            return Push::Overflowed;
        }
        self.frames.push_back(frame);
        if let Some(waker) = self.waker.take() {
            waker.wake();
            if !std::mem::replace(&mut self.woken, true) {
                self.backlog.woke_one();
            }
        }
        Push::Queued
    }

    /// The next frame, or registers `waker` to be woken by the next push.
    pub fn pop(&mut self, waker: &Waker) -> Option<Deliver> {
        if std::mem::take(&mut self.woken) {
            self.backlog.polled_one();
        }
        let frame = self.frames.pop_front();
        if frame.is_none() {
            self.register(waker);
        }
        frame
    }

    /// `waker` is woken by the next push.
    fn register(&mut self, waker: &Waker) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.waker = Some(waker.clone());
        }
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if self.woken {
            self.backlog.polled_one();
        }
    }
}

/// The queues of one thread's sessions.
type Queues = Rc<RefCell<HashMap<SessionId, Rc<RefCell<Queue>>>>>;

/// The hub actor: runs on its sessions' thread and fills their queues.
pub struct Hub {
    queues: Queues,
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(HUB_MAILBOX);
    }
}

impl Handler<DeliverFrames> for Hub {
    type Result = ();

    fn handle(&mut self, msg: DeliverFrames, _: &mut Self::Context) {
        let mut full = Vec::new();
        {
            let queues = self.queues.borrow();
            for (session, frame) in msg.frames {
                // A session not here has ended since the broker sent this: nobody to tell.
                let Some(queue) = queues.get(&session) else {
                    continue;
                };
                if queue.borrow_mut().push(frame) == Push::Overflowed {
                    full.push(session);
                }
            }
        }
        if !full.is_empty() {
            msg.overflowed.do_send(Overflowed { sessions: full });
        }
    }
}

/// A thread's hub as its sessions see it: where to open an outbox, and the route to give
/// the broker. Not `Send`: it lives on its thread.
#[derive(Clone)]
pub struct LocalHub {
    route: HubRoute,
    queues: Queues,
}

thread_local! {
    static THIS_THREAD: RefCell<Option<LocalHub>> = const { RefCell::new(None) };
}

impl LocalHub {
    /// Starts a new hub on the current arbiter (must run inside an actix system).
    pub fn start() -> LocalHub {
        let queues = Queues::default();
        let addr = Hub {
            queues: Rc::clone(&queues),
        }
        .start();
        let id = NEXT_HUB.fetch_add(1, Ordering::Relaxed);
        let backlog = Backlog::default();
        LocalHub {
            route: HubRoute { id, addr, backlog },
            queues,
        }
    }

    /// The calling thread's hub, started on first use (or again, when the system it ran
    /// in has stopped and a new one runs on this thread).
    pub fn this_thread() -> LocalHub {
        THIS_THREAD.with(|cell| {
            let mut cell = cell.borrow_mut();
            match cell.as_ref() {
                Some(hub) if hub.route.addr.connected() => hub.clone(),
                _ => cell.insert(LocalHub::start()).clone(),
            }
        })
    }

    pub fn route(&self) -> HubRoute {
        self.route.clone()
    }

    /// Opens the outbox of `session`, with room for `capacity` frames. The session
    /// polls it as a stream; dropping it closes it.
    pub fn open(&self, session: SessionId, capacity: usize) -> Outbox {
        let backlog = self.route.backlog.clone();
        let queue = Rc::new(RefCell::new(Queue::new(capacity, backlog)));
        self.queues.borrow_mut().insert(session, Rc::clone(&queue));
        Outbox {
            session,
            queue,
            queues: Rc::clone(&self.queues),
            gave: false,
        }
    }

    /// Sessions with an open outbox on this hub.
    #[cfg(test)]
    pub fn open_count(&self) -> usize {
        self.queues.borrow().len()
    }
}

/// A session's end of its queue: a stream of the frames the broker sent it, in order.
/// It never ends on its own; dropping it unregisters the session from its hub.
pub struct Outbox {
    session: SessionId,
    queue: Rc<RefCell<Queue>>,
    queues: Queues,
    /// The last poll gave a frame: this one yields (see `poll_next`).
    gave: bool,
}

impl Outbox {
    /// The next frame, or `None` after registering `waker` for the next push. For a
    /// writer that paces itself (the WebSocket session's own transport).
    pub fn poll_pop(&mut self, waker: &Waker) -> Option<Deliver> {
        self.queue.borrow_mut().pop(waker)
    }
}

impl futures_util::Stream for Outbox {
    type Item = Deliver;

    /// At most one frame per poll of the session: the SSE session's way of reading its
    /// outbox (a WebSocket session pops it from its own writer, `poll_pop`). actix polls
    /// a stream in a loop (up to 16 items), and an SSE body goes through the HTTP/1
    /// dispatcher's write buffer: yielding after each frame lets the dispatcher flush
    /// (and stop asking while the socket is full), so a lagging stream holds one frame,
    /// not sixteen, and each session on the thread gets its turn.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Deliver>> {
        let this = &mut *self;
        let mut queue = this.queue.borrow_mut();
        if std::mem::take(&mut this.gave) {
            if queue.is_empty() {
                queue.register(cx.waker());
            } else {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        let frame = queue.pop(cx.waker());
        this.gave = frame.is_some();
        match frame {
            Some(frame) => Poll::Ready(Some(frame)),
            None => Poll::Pending,
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        // The hub never holds this borrow across a yield, so it is free here.
        if let Ok(mut queues) = self.queues.try_borrow_mut() {
            queues.remove(&self.session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::testing::frame;
    use futures_util::StreamExt;
    use std::task::Wake;

    struct Count(AtomicU64);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_queue_wakes_its_reader_and_overflows_once() {
        let count = Arc::new(Count(AtomicU64::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let backlog = Backlog::default();
        let mut q = Queue::new(2, backlog.clone());
        assert!(q.pop(&waker).is_none(), "empty: registers the waker");
        assert_eq!(q.push(frame(1)), Push::Queued);
        assert_eq!(count.0.load(Ordering::Relaxed), 1, "woken by the push");
        assert_eq!(q.push(frame(2)), Push::Queued);
        assert_eq!(q.push(frame(3)), Push::Overflowed);
        assert_eq!(q.push(frame(4)), Push::Dropped, "reported once");
        assert_eq!(q.pop(&waker).and_then(|d| d.seq), Some(1));
        assert_eq!(q.pop(&waker).and_then(|d| d.seq), Some(2));
        assert_eq!(q.push(frame(5)), Push::Dropped, "stays overflowed");
        assert!(q.is_empty());
        assert_eq!(backlog.woken(), 0, "woken once, polled since");
    }

    #[test]
    fn the_backlog_counts_woken_readers_until_they_pop_and_never_a_stalled_one() {
        let waker = Waker::noop();
        let backlog = Backlog::default();
        let mut a = Queue::new(8, backlog.clone());
        let mut b = Queue::new(8, backlog.clone());
        let mut stalled = Queue::new(8, backlog.clone());
        assert!(
            a.pop(waker).is_none() && b.pop(waker).is_none(),
            "both wait"
        );
        a.push(frame(1));
        a.push(frame(2));
        b.push(frame(1));
        assert_eq!(backlog.woken(), 2, "one each, however many frames");
        stalled.push(frame(1));
        stalled.push(frame(2));
        assert_eq!(
            backlog.woken(),
            2,
            "nobody waits on the stalled one: not counted"
        );
        a.pop(waker);
        assert_eq!(backlog.woken(), 1, "polled once is enough");
        drop(b);
        assert_eq!(backlog.woken(), 0, "a dropped queue leaves the count");
    }

    #[test]
    fn busy_since_is_the_time_to_poll_every_woken_reader_or_the_time_so_far() {
        let waker = Waker::noop();
        let backlog = Backlog::default();
        let mut q = Queue::new(8, backlog.clone());
        q.pop(waker);
        let since = crate::clock::now_us();
        q.push(frame(1));
        let far = since + 60_000_000;
        assert_eq!(backlog.busy_since(since, far), 60_000_000, "still waiting");
        std::thread::sleep(std::time::Duration::from_millis(2));
        q.pop(waker);
        let busy = backlog.busy_since(since, far);
        assert!(
            (2_000..60_000_000).contains(&busy),
            "caught up after {busy} µs"
        );
        assert_eq!(
            backlog.busy_since(far, far + 5),
            0,
            "caught up before `since`"
        );
    }

    #[test]
    fn an_outbox_gives_one_frame_per_poll_and_wakes_itself_for_the_rest() {
        use futures_util::Stream;
        System::new().block_on(async {
            let hub = LocalHub::start();
            let mut outbox = hub.open(1, 8);
            let count = Arc::new(Count(AtomicU64::new(0)));
            let waker = Waker::from(Arc::clone(&count));
            let mut cx = TaskContext::from_waker(&waker);
            let mut poll = |o: &mut Outbox| match Pin::new(o).poll_next(&mut cx) {
                Poll::Ready(d) => d.and_then(|d| d.seq),
                Poll::Pending => None,
            };
            let queue = Rc::clone(&outbox.queue);
            queue.borrow_mut().push(frame(1));
            queue.borrow_mut().push(frame(2));
            let woken = |c: &Count| c.0.load(Ordering::Relaxed);
            assert_eq!(poll(&mut outbox), Some(1));
            assert_eq!(
                (poll(&mut outbox), woken(&count)),
                (None, 1),
                "yields, wakes"
            );
            assert_eq!(poll(&mut outbox), Some(2));
            assert_eq!(
                (poll(&mut outbox), woken(&count)),
                (None, 1),
                "nothing left"
            );
            queue.borrow_mut().push(frame(3));
            assert_eq!(woken(&count), 2, "the push wakes it");
            assert_eq!(poll(&mut outbox), Some(3));
        });
    }

    #[test]
    fn the_hub_fills_outboxes_in_order_and_reports_full_ones() {
        struct Reports(Rc<RefCell<Vec<SessionId>>>);
        impl Actor for Reports {
            type Context = Context<Self>;
        }
        impl Handler<Overflowed> for Reports {
            type Result = ();
            fn handle(&mut self, msg: Overflowed, _: &mut Context<Self>) {
                self.0.borrow_mut().extend(msg.sessions);
            }
        }
        let sys = System::new();
        sys.block_on(async {
            let hub = LocalHub::start();
            let mut a = hub.open(1, 8);
            let b = hub.open(2, 1);
            let reports = Rc::new(RefCell::new(Vec::new()));
            let overflowed = Reports(Rc::clone(&reports)).start().recipient();
            let frames = vec![(1, frame(1)), (2, frame(1)), (1, frame(2)), (2, frame(2))];
            let route = hub.route();
            route.addr.do_send(DeliverFrames { frames, overflowed });
            assert_eq!(a.next().await.and_then(|d| d.seq), Some(1));
            assert_eq!(a.next().await.and_then(|d| d.seq), Some(2));
            actix::clock::sleep(std::time::Duration::from_millis(10)).await;
            assert_eq!(*reports.borrow(), vec![2], "b holds one frame");
            assert_eq!(b.queue.borrow().len(), 1);
            drop(b);
            assert_eq!(hub.open_count(), 1, "a dropped outbox leaves its hub");
            assert!(LocalHub::this_thread().route().addr.connected());
        });
    }
}
