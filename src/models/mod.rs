//! Built-in simulation models other than the town, written to sit behind a model API.
//!
//! A model here is plain deterministic Rust: no actix, no I/O, no clock. Its only
//! randomness is the seeded `ChaCha8Rng` it is given, it iterates only ordered
//! collections, and its character ids are never reused. So the same params and seed
//! give the same trajectory on every machine, which is what a journal, a replay and a
//! headless sweep need. Today `simcast run --model NAME` runs these headless
//! (`crate::experiment`); the live server still runs only the town.
//!
//! - `wolf_sheep`: wolf–sheep predation after Mesa's own example (docs/models.md).

pub(crate) mod wolf_sheep;
