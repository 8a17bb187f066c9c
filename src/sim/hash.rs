//! The state hash: a 64-bit FNV-1a over a canonical encoding of everything that
//! determines a world's future (see [`World::state_hash`](super::World::state_hash)).
//!
//! The encoding is written out here field by field, in a fixed order, and is part of
//! what the determinism and persistence tests compare: two runs, or a run and its saved
//! and reloaded world, agree exactly when their hashes do. Changing what is fed, or in
//! which order, changes every hash. FNV-1a is written out rather than taken from
//! `DefaultHasher`, whose algorithm is unspecified and may change between Rust releases,
//! so hashes can be compared across builds and machines.

use super::character::Character;
use super::schedule::Schedule;
use crate::protocol::CharacterId;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// What the state hash covers: a world's parts, borrowed.
pub(super) struct HashedState<'a> {
    /// Fixes the town, which is therefore not hashed itself.
    pub(super) seed: u64,
    pub(super) tick: u64,
    pub(super) rng: &'a ChaCha8Rng,
    pub(super) next_character_id: CharacterId,
    pub(super) characters: &'a BTreeMap<CharacterId, Character>,
    pub(super) schedule: &'a Schedule,
}

impl HashedState<'_> {
    /// The hash: the world's counters and RNG position, then every character in id
    /// order, then the schedule's counter and every pending event in firing order.
    pub(super) fn hash(&self) -> u64 {
        let mut h = Fnv1a::new();
        h.u64(self.seed);
        h.u64(self.tick);
        h.u128(self.rng.get_word_pos());
        h.u64(self.rng.get_stream());
        h.u64(self.next_character_id);
        h.u64(self.characters.len() as u64);
        for c in self.characters.values() {
            h.character(c);
        }
        h.u64(self.schedule.next_id());
        h.u64(self.schedule.len() as u64);
        for e in self.schedule.pending() {
            h.u64(e.id);
            h.u64(e.due_tick);
            h.str(&e.event_type);
            h.str(&e.data.to_string());
        }
        h.finish()
    }
}

/// 64-bit FNV-1a. Multi-byte values are fed little-endian and strings length-prefixed,
/// so the encoding is canonical ("ab"+"c" and "a"+"bc" hash differently).
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Fnv1a(Self::OFFSET)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    fn u128(&mut self, v: u128) {
        self.bytes(&v.to_le_bytes());
    }

    /// Hashes the exact bits, so any difference in a float, however small, shows.
    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }

    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.bytes(s.as_bytes());
    }

    /// Every field of a character except its transition history, which only `inspect`
    /// reads: it does not steer the rules.
    fn character(&mut self, c: &Character) {
        self.u64(c.id);
        self.str(&c.name);
        self.u64(c.state as u64);
        self.u64(c.location as u64);
        self.f64(c.position[0]);
        self.f64(c.position[1]);
        self.f64(c.needs.energy);
        self.f64(c.needs.hunger);
        self.f64(c.needs.social);
        self.u64(c.home as u64);
        self.u64(c.workplace as u64);
        self.u64(c.state_since);
        match c.plan {
            Some(p) => {
                self.u64(1);
                self.u64(p.to as u64);
                self.u64(p.then as u64);
            }
            None => self.u64(0),
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        let mut h = Fnv1a::new();
        assert_eq!(h.finish(), 0xcbf29ce484222325);
        h.bytes(b"a");
        assert_eq!(h.finish(), 0xaf63dc4c8601ec8c);
        let mut h = Fnv1a::new();
        h.bytes(b"foobar");
        assert_eq!(h.finish(), 0x85944171f73967e8);
    }
}
