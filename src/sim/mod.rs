//! The simulation: a small town and its characters, advanced tick by tick.
//!
//! Everything here except `actor` is plain deterministic Rust: the same seed and the
//! same commands give the same world, tick for tick (see `World::state_hash`). The actor
//! only moves messages: it owns a `World`, runs the tick timer, answers commands and
//! hands each tick's items to the broker.

pub mod actor;
pub mod breakpoint;
pub(crate) mod character;
mod hash;
pub mod journal;
pub mod rules;
pub(crate) mod schedule;
pub(crate) mod series;
pub(crate) mod state;
pub mod timeline;
pub mod town;
pub(crate) mod world;

pub use character::Inspection;
pub use journal::{JournalEntry, JournaledCommand};
pub use state::SimState;
pub use world::{Census, SimError, World};
