//! Snapshot requests the broker is waiting on: where each snapshot goes once the world
//! (`ports::TakeSnapshot`) publishes it.
//!
//! Whoever wants a snapshot asks the broker with a [`SnapshotRoute`]; the broker keeps
//! the route here under a ticket and hands the world only the ticket. So a socket's
//! route (its hub, its close recipient, its connection handle) never travels through
//! the simulation, and the engine knows nothing of delivery (docs/architecture.md).
//!
//! Bounded at [`WAITING_LIMIT`]: each waiting route is a session that waits for its
//! snapshot (it asks at most once at a time), an HTTP request, or a resync. Past the
//! bound a request is refused at once, as when the world cannot be reached.

use super::SnapshotRoute;
use crate::ports::{SnapshotTicket, TakeSnapshot};
use std::collections::BTreeMap;

/// Most routes waiting for their snapshot at once (a join storm of 65 536 sessions).
pub(crate) const WAITING_LIMIT: usize = 65_536;

/// Routes by ticket (plain, unit-tested).
#[derive(Debug, Default)]
pub(crate) struct Tickets {
    next: SnapshotTicket,
    waiting: BTreeMap<SnapshotTicket, SnapshotRoute>,
}

impl Tickets {
    /// Keeps `route` and returns what to ask the world for, or the route back when
    /// [`WAITING_LIMIT`] routes already wait.
    /// (Boxed: a join's route is large, and this is the rare path.)
    pub(crate) fn issue(
        &mut self,
        route: SnapshotRoute,
    ) -> Result<TakeSnapshot, Box<SnapshotRoute>> {
        if self.waiting.len() >= WAITING_LIMIT {
            return Err(Box::new(route));
        }
        self.next += 1;
        let resync = route.is_resync();
        self.waiting.insert(self.next, route);
        Ok(TakeSnapshot {
            ticket: self.next,
            resync,
        })
    }

    /// The route of `ticket`, which is no longer waiting (`None`: unknown or answered).
    pub(crate) fn take(&mut self, ticket: SnapshotTicket) -> Option<SnapshotRoute> {
        self.waiting.remove(&ticket)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_gets_its_own_ticket_and_is_taken_once() {
        let mut tickets = Tickets::default();
        let a = tickets
            .issue(SnapshotRoute::Resync { session: 1 })
            .expect("room");
        let b = tickets.issue(SnapshotRoute::Everyone).expect("room");
        let c = tickets
            .issue(SnapshotRoute::Reply {
                session: 2,
                id: None,
            })
            .expect("room");
        assert_ne!(a.ticket, b.ticket);
        assert!(a.resync && b.resync && !c.resync);
        assert!(matches!(
            tickets.take(a.ticket),
            Some(SnapshotRoute::Resync { session: 1 })
        ));
        assert!(tickets.take(a.ticket).is_none(), "answered once");
        assert_eq!(tickets.len(), 2);
    }

    #[test]
    fn past_the_limit_the_route_comes_back() {
        let mut tickets = Tickets::default();
        for session in 0..WAITING_LIMIT as u64 {
            tickets
                .issue(SnapshotRoute::Resync { session })
                .expect("room");
        }
        let refused = tickets.issue(SnapshotRoute::Resync { session: 0 });
        assert!(matches!(
            refused.map_err(|r| *r),
            Err(SnapshotRoute::Resync { .. })
        ));
        tickets.take(1);
        assert!(tickets.issue(SnapshotRoute::Everyone).is_ok());
    }
}
