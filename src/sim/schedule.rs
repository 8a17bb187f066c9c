//! Events scheduled by operators to fire at a future tick.
//!
//! Events are kept in a `BTreeMap` keyed by `(due_tick, id)`: that key is exactly the
//! firing order (due order, then id order), so taking the due events is a range split
//! rather than a sort, and iteration order never depends on hashing.

use crate::protocol::EventId;
use serde_json::Value;
use std::collections::BTreeMap;

/// One scheduled event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ScheduledEvent {
    pub id: EventId,
    pub event_type: String,
    pub due_tick: u64,
    pub data: Value,
}

/// The pending events of one world.
/// Serialized as its id counter and the pending events in due order (JSON maps cannot
/// have tuple keys); the indexes are rebuilt on load.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(into = "SavedSchedule", from = "SavedSchedule")]
pub(crate) struct Schedule {
    /// Next id to hand out. Ids start at 1 and are never reused, so a client holding a
    /// stale id can never cancel someone else's newer event.
    next_id: EventId,
    queue: BTreeMap<(u64, EventId), ScheduledEvent>,
    /// id → due tick, so `cancel` by id is a lookup rather than a scan.
    due_of: BTreeMap<EventId, u64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedSchedule {
    next_id: EventId,
    pending: Vec<ScheduledEvent>,
}

impl From<Schedule> for SavedSchedule {
    fn from(s: Schedule) -> Self {
        SavedSchedule {
            next_id: s.next_id,
            pending: s.queue.into_values().collect(),
        }
    }
}

impl From<SavedSchedule> for Schedule {
    fn from(saved: SavedSchedule) -> Self {
        let mut s = Schedule::new();
        s.next_id = saved.next_id;
        for e in saved.pending {
            s.due_of.insert(e.id, e.due_tick);
            s.queue.insert((e.due_tick, e.id), e);
        }
        s
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::new()
    }
}

impl Schedule {
    pub(crate) fn new() -> Schedule {
        Schedule {
            next_id: 1,
            queue: BTreeMap::new(),
            due_of: BTreeMap::new(),
        }
    }

    /// Schedules an event for `due_tick` and returns its id.
    pub(crate) fn schedule(&mut self, event_type: String, due_tick: u64, data: Value) -> EventId {
        let id = self.next_id;
        self.next_id += 1;
        self.due_of.insert(id, due_tick);
        self.queue.insert(
            (due_tick, id),
            ScheduledEvent {
                id,
                event_type,
                due_tick,
                data,
            },
        );
        id
    }

    /// Cancels a pending event. False if the id is unknown or the event already fired.
    pub(crate) fn cancel(&mut self, id: EventId) -> bool {
        match self.due_of.remove(&id) {
            Some(due) => self.queue.remove(&(due, id)).is_some(),
            None => false,
        }
    }

    /// Removes and returns every event due at or before `tick`, in due order then id
    /// order. Events due earlier than `tick` (which the world never creates, but a caller
    /// skipping ticks might) fire late rather than never.
    pub(crate) fn take_due(&mut self, tick: u64) -> Vec<ScheduledEvent> {
        match self.queue.first_key_value() {
            Some((&(due, _), _)) if due <= tick => {}
            // The common case, every tick: nothing due, nothing allocated.
            _ => return Vec::new(),
        }
        let later = match tick.checked_add(1) {
            Some(next) => self.queue.split_off(&(next, 0)),
            None => BTreeMap::new(),
        };
        let due = std::mem::replace(&mut self.queue, later);
        due.into_values()
            .inspect(|e| {
                self.due_of.remove(&e.id);
            })
            .collect()
    }

    /// Pending events in firing order.
    pub(crate) fn pending(&self) -> impl Iterator<Item = &ScheduledEvent> + '_ {
        self.queue.values()
    }

    /// Number of pending events.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// The id the next `schedule` will return (part of the world's state hash).
    pub(crate) fn next_id(&self) -> EventId {
        self.next_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_count_from_one_and_are_not_reused() {
        let mut s = Schedule::new();
        assert_eq!(s.schedule("a".into(), 5, json!({})), 1);
        assert_eq!(s.schedule("b".into(), 5, json!({})), 2);
        assert!(s.cancel(2));
        assert_eq!(s.schedule("c".into(), 5, json!({})), 3);
        assert_eq!(s.next_id(), 4);
    }

    #[test]
    fn take_due_in_due_then_id_order() {
        let mut s = Schedule::new();
        let late = s.schedule("late".into(), 10, json!(1));
        let early_a = s.schedule("early".into(), 3, json!(2));
        let early_b = s.schedule("early".into(), 3, json!(3));
        let mid = s.schedule("mid".into(), 7, json!(4));
        assert!(s.take_due(2).is_empty());
        let due: Vec<_> = s.take_due(3).into_iter().map(|e| e.id).collect();
        assert_eq!(due, vec![early_a, early_b]);
        assert!(s.take_due(3).is_empty(), "fired events fire once");
        // Skipping ticks: everything due up to the tick comes out in order.
        let due: Vec<_> = s.take_due(10).into_iter().map(|e| e.id).collect();
        assert_eq!(due, vec![mid, late]);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn taken_events_carry_their_data() {
        let mut s = Schedule::new();
        let id = s.schedule("festival".into(), 1, json!({"x": 1}));
        let fired = s.take_due(1);
        assert_eq!(
            fired,
            vec![ScheduledEvent {
                id,
                event_type: "festival".into(),
                due_tick: 1,
                data: json!({"x": 1})
            }]
        );
    }

    #[test]
    fn cancel_unknown_fired_or_twice_is_false() {
        let mut s = Schedule::new();
        assert!(!s.cancel(1));
        let a = s.schedule("a".into(), 1, json!(null));
        let b = s.schedule("b".into(), 2, json!(null));
        assert!(s.cancel(b));
        assert!(!s.cancel(b));
        assert_eq!(s.take_due(5).len(), 1);
        assert!(!s.cancel(a), "already fired");
    }

    #[test]
    fn pending_lists_in_firing_order() {
        let mut s = Schedule::new();
        s.schedule("b".into(), 9, json!(null));
        s.schedule("a".into(), 4, json!(null));
        let types: Vec<_> = s.pending().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["a", "b"]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn take_due_at_max_tick() {
        let mut s = Schedule::new();
        s.schedule("end".into(), u64::MAX, json!(null));
        assert_eq!(s.take_due(u64::MAX).len(), 1);
    }
}
