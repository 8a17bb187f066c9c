//! The one way the broker's frames enter hubs' mailboxes, and what happens when a
//! mailbox is full: the frames wait here instead of costing the thread's sessions.
//!
//! Why: a hub's mailbox counts messages, and joins come as one-frame messages (a join
//! snapshot each), so a worker thread busy with a connect burst falls behind by
//! messages, and the next tick's delivery can find its hub's mailbox full. A full
//! mailbox says the *thread* is behind, not that any one of its sessions stopped
//! reading; evicting the whole delivery would cost every session on the thread
//! (BENCHMARKS.md). A session that stops reading is caught by its own outbox bound.
//!
//! Bounds and overflow policy: what a full mailbox does not take waits here, merged
//! into one message per hub in the order it was posted. It goes first the next time
//! anything is posted to that hub, and the broker retries every [`RETRY_EVERY`], so
//! nothing overtakes it and every session still gets its frames in order. At most
//! [`MAX_WAITING_FRAMES`] frames wait here for one hub; past that its thread is jammed
//! (at 10 000 sessions a thread, ~10 s of ticks) and the sessions of the waiting frames
//! are evicted as slow.

use super::hub::{DeliverFrames, HubId, HubRoute, Overflowed};
use super::{Deliver, SessionId};
use actix::prelude::*;
use std::time::Duration;

/// Frames waiting for one hub at most (each a session id and a shared frame).
pub const MAX_WAITING_FRAMES: usize = 1 << 20;

/// How often the broker offers waiting frames again while any wait.
pub const RETRY_EVERY: Duration = Duration::from_millis(10);

/// What became of a post.
#[derive(Debug, PartialEq, Eq)]
pub enum Posted {
    /// In the hub's mailbox, with whatever waited for it before.
    Sent,
    /// Waits here until the mailbox has room.
    Waiting,
    /// The hub is gone (its thread stopped): these sessions ended with it.
    Closed(Vec<SessionId>),
    /// Over [`MAX_WAITING_FRAMES`]: evict these sessions as slow.
    Jammed(Vec<SessionId>),
}

/// Frames waiting for hubs whose mailboxes were full.
#[derive(Default)]
pub struct Mailroom {
    /// One entry per hub with waiting frames (there is one hub per worker thread).
    waiting: Vec<(HubRoute, Vec<(SessionId, Deliver)>)>,
}

impl Mailroom {
    /// Posts `frames` to `route`'s hub, after whatever waits for it.
    pub fn post(
        &mut self,
        route: &HubRoute,
        mut frames: Vec<(SessionId, Deliver)>,
        overflowed: &Recipient<Overflowed>,
    ) -> Posted {
        if let Some(at) = self.position(route.id) {
            let (_, mut waiting) = self.waiting.swap_remove(at);
            waiting.append(&mut frames);
            frames = waiting;
        }
        match send(route, frames, overflowed) {
            Ok(posted) => posted,
            Err(frames) => {
                self.waiting.push((route.clone(), frames));
                Posted::Waiting
            }
        }
    }

    /// Offers every hub its waiting frames again.
    pub fn retry(&mut self, overflowed: &Recipient<Overflowed>) -> Vec<Posted> {
        let mut outcomes = Vec::new();
        for (route, frames) in std::mem::take(&mut self.waiting) {
            match send(&route, frames, overflowed) {
                Ok(posted) => outcomes.push(posted),
                Err(frames) => self.waiting.push((route, frames)),
            }
        }
        outcomes
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Frames waiting for all hubs.
    #[cfg(test)]
    pub fn waiting_frames(&self) -> usize {
        self.waiting.iter().map(|(_, f)| f.len()).sum()
    }

    fn position(&self, hub: HubId) -> Option<usize> {
        self.waiting.iter().position(|(r, _)| r.id == hub)
    }
}

/// Tries `route`'s mailbox; `Err` gives the frames back to wait. The address is the
/// caller's own, not a clone: actix lets every new sender past a full mailbox once, so
/// a fresh clone per send would never see it full.
fn send(
    route: &HubRoute,
    frames: Vec<(SessionId, Deliver)>,
    overflowed: &Recipient<Overflowed>,
) -> Result<Posted, Vec<(SessionId, Deliver)>> {
    let msg = DeliverFrames {
        frames,
        overflowed: overflowed.clone(),
    };
    match route.addr.try_send(msg) {
        Ok(()) => Ok(Posted::Sent),
        Err(SendError::Closed(m)) => Ok(Posted::Closed(sessions(&m.frames))),
        Err(SendError::Full(m)) if m.frames.len() > MAX_WAITING_FRAMES => {
            Ok(Posted::Jammed(sessions(&m.frames)))
        }
        Err(SendError::Full(m)) => Err(m.frames),
    }
}

/// The distinct sessions of `frames`.
fn sessions(frames: &[(SessionId, Deliver)]) -> Vec<SessionId> {
    let mut ids: Vec<SessionId> = frames.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::hub::{LocalHub, HUB_MAILBOX};
    use crate::broker::testing::{frame, NoReports};
    use futures_util::StreamExt;

    /// Frames a full mailbox does not take wait here, in order, and they reach the
    /// session once the hub has caught up: nothing lost, nobody evicted.
    #[test]
    fn frames_a_full_mailbox_does_not_take_wait_in_order_until_there_is_room() {
        System::new().block_on(async {
            let hub = LocalHub::start();
            let route = hub.route();
            let mut outbox = hub.open(1, 4 * HUB_MAILBOX);
            let overflowed = NoReports.start().recipient();
            let mut room = Mailroom::default();
            // Let the hub start (it sets its mailbox capacity then).
            actix::clock::sleep(Duration::from_millis(5)).await;
            // The hub does not run while this block does not yield: fill its mailbox.
            let mut n = 0;
            loop {
                n += 1;
                match room.post(&route, vec![(1, frame(n))], &overflowed) {
                    Posted::Sent => {}
                    Posted::Waiting => break,
                    other => panic!("{other:?}"),
                }
            }
            assert!(n as usize > HUB_MAILBOX / 2, "the mailbox took {n}");
            let waiting_from = n;
            assert_eq!(
                room.post(&route, vec![(1, frame(n + 1))], &overflowed),
                Posted::Waiting,
                "later frames join the waiting ones"
            );
            assert_eq!(room.waiting_frames(), 2);
            let mut seen = Vec::new();
            while seen.len() < waiting_from as usize - 1 {
                seen.push(outbox.next().await.and_then(|d| d.seq).expect("frame"));
            }
            assert_eq!(room.retry(&overflowed), vec![Posted::Sent]);
            assert!(room.is_empty());
            for _ in 0..2 {
                seen.push(outbox.next().await.and_then(|d| d.seq).expect("frame"));
            }
            let want: Vec<u64> = (1..=n + 1).collect();
            assert_eq!(seen, want, "every frame, in order");
        });
    }
}
