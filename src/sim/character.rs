//! One character: what it is (name, home, workplace, needs), where it is, what it is
//! doing and what it is planning, and the views of it that leave the simulation
//! (`character_update`, `state_change`, the snapshot's `CharacterView`, `inspect`).
//!
//! Nothing here decides anything: the rules decide (`rules`), the world steps every
//! character in id order and applies the decisions (`world`). A character only records
//! what happens to it, so that every transition is stored and emitted in one place
//! ([`Character::enter`]).

use super::town::{PlaceIdx, Town};
use crate::protocol::{
    CharState, CharacterId, CharacterUpdate, CharacterView, Item, ItemData, Needs, StateChange,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How many transitions `inspect` shows.
pub(crate) const RECENT_TRANSITIONS: usize = 16;

/// First names for characters, used in id order; when the list runs out a number is
/// appended ("Ada 2") so names stay unique.
const FIRST_NAMES: [&str; 40] = [
    "Ada", "Bram", "Cora", "Dev", "Elin", "Finn", "Greta", "Hugo", "Iris", "Jonas", "Kira", "Lars",
    "Mila", "Nils", "Olga", "Pim", "Quinn", "Rosa", "Sven", "Tilda", "Ugo", "Vera", "Wim", "Xena",
    "Yara", "Zeno", "Alma", "Boris", "Clara", "Dario", "Edda", "Felix", "Gina", "Henk", "Ines",
    "Jules", "Karin", "Leo", "Mara", "Otto",
];

/// The default name of character `id` (ids start at 1).
pub(crate) fn default_name(id: CharacterId) -> String {
    let n = FIRST_NAMES.len() as u64;
    let i = id.saturating_sub(1);
    let base = FIRST_NAMES[(i % n) as usize];
    match i / n {
        0 => base.to_owned(),
        round => format!("{base} {}", round + 1),
    }
}

/// One state transition as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub tick: u64,
    pub from: CharState,
    pub to: CharState,
    /// Where the character was when the transition happened.
    pub location: String,
}

/// The answer to `inspect`: the character plus what the rules are doing with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    #[serde(flatten)]
    pub character: CharacterView,
    pub ticks_in_state: u64,
    /// The last [`RECENT_TRANSITIONS`] transitions, oldest first.
    pub recent_transitions: Vec<Transition>,
    /// While traveling, what happens on arrival, e.g. "eating at market".
    pub pending_plan: Option<String>,
}

/// How a new character starts out. Each draws its state and needs from the world's RNG,
/// in a fixed order (part of the seed's meaning: changing it changes every world).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Start {
    /// One of the world's first characters: a morning start. About half are still
    /// asleep (and tired enough to stay so a while), the rest idle at home. Needs are
    /// spread so that characters do not all get hungry or lonely on the same tick.
    Morning,
    /// Spawned by a command: idle and well rested, fed and in company.
    Fresh,
}

impl Start {
    /// The state and needs of the new character.
    pub(super) fn draw(self, rng: &mut ChaCha8Rng) -> (CharState, Needs) {
        match self {
            Start::Morning => {
                let (state, energy) = if rng.gen_bool(0.5) {
                    (CharState::Sleeping, rng.gen_range(30.0..80.0))
                } else {
                    (CharState::Idle, rng.gen_range(60.0..100.0))
                };
                let needs = Needs {
                    energy,
                    hunger: rng.gen_range(35.0..100.0),
                    social: rng.gen_range(35.0..100.0),
                };
                (state, needs)
            }
            Start::Fresh => {
                let needs = Needs {
                    energy: rng.gen_range(60.0..100.0),
                    hunger: rng.gen_range(60.0..100.0),
                    social: rng.gen_range(60.0..100.0),
                };
                (CharState::Idle, needs)
            }
        }
    }
}

/// Where a traveling character is going and what it will do there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct Plan {
    pub(super) to: PlaceIdx,
    pub(super) then: CharState,
}

/// A transition as stored: a place index rather than a string, so recording one in the
/// tick loop does not allocate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct TransitionRecord {
    tick: u64,
    from: CharState,
    to: CharState,
    location: PlaceIdx,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Character {
    pub(super) id: CharacterId,
    pub(super) name: String,
    pub(super) state: CharState,
    /// The place the character is at; while traveling, the place it left.
    pub(super) location: PlaceIdx,
    pub(super) position: [f64; 2],
    pub(super) needs: Needs,
    pub(super) home: PlaceIdx,
    pub(super) workplace: PlaceIdx,
    pub(super) state_since: u64,
    /// Set exactly while traveling.
    pub(super) plan: Option<Plan>,
    recent: VecDeque<TransitionRecord>,
}

/// Who a new character is and where it starts: the fixed part of [`Character::new`].
pub(super) struct Identity {
    pub(super) id: CharacterId,
    pub(super) name: String,
    pub(super) home: PlaceIdx,
    pub(super) workplace: PlaceIdx,
}

impl Character {
    /// A character at `location`, in `state` since `tick`, with no plan and no history.
    pub(super) fn new(
        who: Identity,
        location: PlaceIdx,
        state: CharState,
        needs: Needs,
        town: &Town,
        tick: u64,
    ) -> Character {
        Character {
            id: who.id,
            name: who.name,
            state,
            location,
            position: town.position(location),
            needs,
            home: who.home,
            workplace: who.workplace,
            state_since: tick,
            plan: None,
            recent: VecDeque::new(),
        }
    }

    /// Enters `to`, records the transition and emits its `state_change`.
    pub(super) fn enter(
        &mut self,
        to: CharState,
        tick: u64,
        town: &Town,
        now: f64,
        out: &mut Vec<Item>,
    ) {
        let from = self.state;
        self.state = to;
        self.state_since = tick;
        if self.recent.len() == RECENT_TRANSITIONS {
            self.recent.pop_front();
        }
        self.recent.push_back(TransitionRecord {
            tick,
            from,
            to,
            location: self.location,
        });
        out.push(Item::new(
            ItemData::StateChange(StateChange {
                character_id: self.id,
                name: self.name.clone(),
                old_state: from,
                new_state: to,
                location: town.id_of(self.location).to_owned(),
                tick,
            }),
            now,
        ));
    }

    pub(super) fn update_item(&self, town: &Town, tick: u64, now: f64) -> Item {
        Item::new(
            ItemData::CharacterUpdate(CharacterUpdate {
                character_id: self.id,
                state: self.state,
                location: town.id_of(self.location).to_owned(),
                position: self.position,
                needs: self.needs,
                tick,
            }),
            now,
        )
    }

    pub(super) fn view(&self, town: &Town) -> CharacterView {
        CharacterView {
            id: self.id,
            name: self.name.clone(),
            state: self.state,
            location: town.id_of(self.location).to_owned(),
            position: self.position,
            needs: self.needs,
            destination: self.plan.map(|p| town.id_of(p.to).to_owned()),
            home: town.id_of(self.home).to_owned(),
            workplace: town.id_of(self.workplace).to_owned(),
            state_since: self.state_since,
        }
    }

    /// The character as `inspect` shows it at `tick`.
    pub(super) fn inspection(&self, town: &Town, tick: u64) -> Inspection {
        Inspection {
            character: self.view(town),
            ticks_in_state: tick.saturating_sub(self.state_since),
            recent_transitions: self
                .recent
                .iter()
                .map(|r| Transition {
                    tick: r.tick,
                    from: r.from,
                    to: r.to,
                    location: town.id_of(r.location).to_owned(),
                })
                .collect(),
            pending_plan: self
                .plan
                .map(|p| format!("{} at {}", p.then, town.id_of(p.to))),
        }
    }
}
