//! A connection's set of subscribed topics, and the matching of items against it.
//!
//! The broker groups sessions by equal `TopicSet`s and serializes each batch once per
//! group, so the set is a small, hashable value: kind topics as a bitmask, character
//! topics as an ordered set.

use crate::protocol::{Item, ItemKind, Topic};
use std::collections::BTreeSet;

/// Most `character:<id>` topics one connection may hold, so a client cannot make its
/// set (and the broker's grouping work) arbitrarily large.
pub const MAX_CHARACTER_TOPICS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TopicSet {
    kinds: u8,
    characters: BTreeSet<u64>,
}

fn bit(kind: ItemKind) -> u8 {
    match kind {
        ItemKind::StateChange => 1,
        ItemKind::EventNotification => 2,
        ItemKind::CharacterUpdate => 4,
    }
}

impl TopicSet {
    /// What a new connection starts with: `state_change` and `event_notification`.
    pub fn default_topics() -> Self {
        TopicSet {
            kinds: bit(ItemKind::StateChange) | bit(ItemKind::EventNotification),
            characters: BTreeSet::new(),
        }
    }

    /// Every kind topic: the set whose filtered batch is the whole batch.
    pub fn everything() -> Self {
        TopicSet {
            kinds: 7,
            characters: BTreeSet::new(),
        }
    }

    /// Adds topics; fails without changing anything if the character-topic cap would
    /// be exceeded.
    pub fn add(&mut self, topics: &[Topic]) -> Result<(), String> {
        let new_chars = topics
            .iter()
            .filter(|t| matches!(t, Topic::Character(id) if !self.characters.contains(id)))
            .count();
        if self.characters.len() + new_chars > MAX_CHARACTER_TOPICS {
            return Err(format!(
                "at most {MAX_CHARACTER_TOPICS} character topics per connection"
            ));
        }
        for t in topics {
            match t {
                Topic::Kind(k) => self.kinds |= bit(*k),
                Topic::Character(id) => {
                    self.characters.insert(*id);
                }
            }
        }
        Ok(())
    }

    pub fn remove(&mut self, topics: &[Topic]) {
        for t in topics {
            match t {
                Topic::Kind(k) => self.kinds &= !bit(*k),
                Topic::Character(id) => {
                    self.characters.remove(id);
                }
            }
        }
    }

    /// Whether every item passes (no filtering work needed).
    pub fn is_everything(&self) -> bool {
        self.kinds == 7
    }

    pub fn matches(&self, item: &Item) -> bool {
        if self.kinds & bit(item.kind()) != 0 {
            return true;
        }
        !self.characters.is_empty() && self.characters.iter().any(|id| item.concerns(*id))
    }

    /// The topics as strings, for replies.
    pub fn to_strings(&self) -> Vec<String> {
        let mut out: Vec<String> = [
            ItemKind::StateChange,
            ItemKind::EventNotification,
            ItemKind::CharacterUpdate,
        ]
        .into_iter()
        .filter(|k| self.kinds & bit(*k) != 0)
        .map(|k| k.as_str().to_owned())
        .collect();
        out.extend(self.characters.iter().map(|id| format!("character:{id}")));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CharState, CharacterUpdate, ItemData, Needs, StateChange};

    fn update(id: u64) -> Item {
        Item::new(
            ItemData::CharacterUpdate(CharacterUpdate {
                character_id: id,
                state: CharState::Idle,
                location: "park".into(),
                position: [0.0, 0.0],
                needs: Needs {
                    energy: 1.0,
                    hunger: 1.0,
                    social: 1.0,
                },
                tick: 1,
            }),
            0.0,
        )
    }

    fn change(id: u64) -> Item {
        Item::new(
            ItemData::StateChange(StateChange {
                character_id: id,
                name: "x".into(),
                old_state: CharState::Idle,
                new_state: CharState::Eating,
                location: "market".into(),
                tick: 1,
            }),
            0.0,
        )
    }

    #[test]
    fn default_topics_pass_changes_not_updates() {
        let set = TopicSet::default_topics();
        assert!(set.matches(&change(1)));
        assert!(!set.matches(&update(1)));
    }

    #[test]
    fn character_topic_passes_every_item_about_it() {
        let mut set = TopicSet::default();
        set.add(&[Topic::Character(7)]).expect("add");
        assert!(set.matches(&update(7)));
        assert!(set.matches(&change(7)));
        assert!(!set.matches(&update(8)));
        set.remove(&[Topic::Character(7)]);
        assert!(!set.matches(&update(7)));
    }

    #[test]
    fn unsubscribe_removes_kinds_and_equal_sets_hash_equal() {
        let mut a = TopicSet::default_topics();
        a.remove(&[Topic::Kind(ItemKind::StateChange)]);
        assert!(!a.matches(&change(1)));
        let mut b = TopicSet::default();
        b.add(&[Topic::Kind(ItemKind::EventNotification)])
            .expect("add");
        assert_eq!(a, b);
        assert_eq!(a.to_strings(), vec!["event_notification".to_string()]);
    }

    #[test]
    fn character_topics_are_capped() {
        let mut set = TopicSet::default();
        let many: Vec<Topic> = (0..=MAX_CHARACTER_TOPICS as u64)
            .map(Topic::Character)
            .collect();
        assert!(set.add(&many).is_err());
        assert!(set.to_strings().is_empty(), "nothing added on failure");
    }
}
