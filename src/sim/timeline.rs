//! The retained past of the live world, for `view_at` and `timeline` (protocol,
//! "Time travel and breakpoints").
//!
//! The world is deterministic and every change to it is a journal entry
//! ([`JournalEntry`]: ticks and state-changing commands), so the past is kept as
//! checkpoints — a copy of the whole [`SimState`] at the end of a tick, one every
//! `every` ticks — each with the entries recorded after it. Any retained tick is rebuilt
//! exactly by replaying from the checkpoint at or before it ([`SimState::replay`], the
//! same function the journal on disk is replayed with). Memory is bounded: checkpoints
//! older than `retain` ticks behind the newest are dropped, so at most
//! `retain / every + 2` copies of the state are held.
//!
//! "The world at the end of tick T" is the state right after tick T was computed,
//! before any command issued while T was current: what a snapshot taken just after the
//! tick shows, and what a replay with `until = T` gives. A `reset` starts a new world at
//! tick 0, and a new timeline with it.

use super::journal::{JournalEntry, JournaledCommand};
use super::SimState;
use std::collections::VecDeque;

/// A tick outside the retained range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tick {tick} is not retained: the retained range is {oldest}..={newest}")]
pub struct OutOfRange {
    pub tick: u64,
    pub oldest: u64,
    pub newest: u64,
}

/// A checkpoint and what happened after it, up to the next one.
#[derive(Debug, Clone)]
struct Segment {
    base: SimState,
    entries: Vec<JournalEntry>,
}

impl Segment {
    fn tick(&self) -> u64 {
        self.base.world.tick()
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Timeline {
    every: u64,
    retain: u64,
    segments: VecDeque<Segment>,
    /// The live world's tick (the newest retained).
    newest: u64,
}

impl Timeline {
    /// A timeline starting at `state` (its current tick), keeping at least `retain`
    /// ticks with a checkpoint every `every`.
    pub fn new(state: &SimState, retain: u64, every: u64) -> Self {
        let mut timeline = Timeline {
            every: every.max(1),
            retain,
            segments: VecDeque::new(),
            newest: 0,
        };
        timeline.restart(state);
        timeline
    }

    /// Forgets the past: `state` is where the timeline begins (a reset, a rewind that
    /// could not be kept, a restored world).
    pub fn restart(&mut self, state: &SimState) {
        self.segments.clear();
        self.newest = state.world.tick();
        self.segments.push_back(Segment {
            base: state.clone(),
            entries: Vec::new(),
        });
    }

    /// Records `entry`, just applied to the live world, which is now `after`.
    pub fn record(&mut self, entry: JournalEntry, after: &SimState) {
        if let JournalEntry::Command {
            cmd: JournaledCommand::Reset { .. },
        } = entry
        {
            return self.restart(after);
        }
        let ticked = matches!(entry, JournalEntry::Ticks { .. });
        self.newest = after.world.tick();
        let Some(last) = self.segments.back_mut() else {
            return self.restart(after);
        };
        last.entries.push(entry);
        if ticked && self.newest >= last.tick() + self.every {
            self.segments.push_back(Segment {
                base: after.clone(),
                entries: Vec::new(),
            });
            self.trim();
        }
    }

    /// Drops checkpoints no retained tick needs.
    fn trim(&mut self) {
        let keep_from = self.newest.saturating_sub(self.retain);
        while self.segments.get(1).is_some_and(|s| s.tick() <= keep_from) {
            self.segments.pop_front();
        }
    }

    /// `(oldest, newest)`: every tick in between can be rebuilt.
    pub fn range(&self) -> (u64, u64) {
        let oldest = self.segments.front().map_or(self.newest, Segment::tick);
        (oldest, self.newest)
    }

    /// The world as it was at the end of `tick`.
    pub fn view_at(&self, tick: u64) -> Result<SimState, OutOfRange> {
        let (oldest, newest) = self.range();
        let out_of_range = OutOfRange {
            tick,
            oldest,
            newest,
        };
        if tick < oldest || tick > newest {
            return Err(out_of_range);
        }
        let segment = self
            .segments
            .iter()
            .rev()
            .find(|s| s.tick() <= tick)
            .ok_or_else(|| out_of_range.clone())?;
        let mut state = segment.base.clone();
        state.replay(&segment.entries, Some(tick));
        if state.world.tick() != tick {
            return Err(out_of_range);
        }
        Ok(state)
    }

    /// The live world goes back to the end of `tick`: returns that state, and forgets
    /// everything after it (the timeline goes on from there, a new branch).
    pub fn rewind(&mut self, tick: u64) -> Result<SimState, OutOfRange> {
        let state = self.view_at(tick)?;
        self.segments.retain(|s| s.tick() <= tick);
        if let Some(last) = self.segments.back_mut() {
            let mut replayed = last.base.clone();
            let kept = replayed.replay_count(&last.entries, tick);
            last.entries.truncate(kept);
        }
        self.newest = tick;
        Ok(state)
    }

    /// Checkpoints held now (for the memory figure).
    pub fn checkpoints(&self) -> usize {
        self.segments.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CharState, Command};

    /// Runs `ticks` ticks on `live`, recording them one at a time as the actor does.
    fn tick(live: &mut SimState, timeline: &mut Timeline, ticks: u64) {
        let mut out = Vec::new();
        for _ in 0..ticks {
            live.step(1, 0.0, &mut out);
            timeline.record(JournalEntry::Ticks { ticks: 1 }, live);
        }
    }

    fn command(live: &mut SimState, timeline: &mut Timeline, cmd: Command) {
        live.apply(&cmd, 0.0, &mut Vec::new()).expect("applies");
        let entry = JournalEntry::command(&cmd).expect("state-changing");
        timeline.record(entry, live);
    }

    #[test]
    fn every_retained_tick_is_rebuilt_exactly() {
        let mut live = SimState::new(11, 40, 10.0);
        let mut timeline = Timeline::new(&live, 1000, 25);
        let mut hashes = vec![live.world.state_hash()];
        for t in 1..=130u64 {
            tick(&mut live, &mut timeline, 1);
            hashes.push(live.world.state_hash());
            if t % 17 == 0 {
                // A command while tick t is current comes after "the end of tick t".
                let cmd = Command::SetState {
                    character_id: 3,
                    state: CharState::Sleeping,
                };
                command(&mut live, &mut timeline, cmd);
            }
        }
        for (t, hash) in hashes.iter().enumerate() {
            let view = timeline.view_at(t as u64).expect("retained");
            assert_eq!(view.world.tick(), t as u64);
            assert_eq!(view.world.state_hash(), *hash, "tick {t}");
        }
        assert_eq!(timeline.range(), (0, 130));
    }

    #[test]
    fn old_checkpoints_are_dropped_and_their_ticks_refused() {
        let mut live = SimState::new(2, 20, 10.0);
        let mut timeline = Timeline::new(&live, 100, 10);
        tick(&mut live, &mut timeline, 500);
        let (oldest, newest) = timeline.range();
        assert_eq!(newest, 500);
        assert!((390..=400).contains(&oldest), "{oldest}");
        assert!(timeline.checkpoints() <= 100 / 10 + 2);
        let err = timeline.view_at(oldest - 1).expect_err("dropped");
        assert_eq!(err.oldest, oldest);
        assert!(timeline.view_at(501).is_err(), "the future is not retained");
        assert!(timeline.view_at(oldest).is_ok());
    }

    #[test]
    fn a_rewind_goes_back_and_the_same_commands_reach_the_same_states() {
        let mut live = SimState::new(9, 30, 10.0);
        let mut timeline = Timeline::new(&live, 1000, 10);
        tick(&mut live, &mut timeline, 40);
        let sleep = Command::SetState {
            character_id: 5,
            state: CharState::Sleeping,
        };
        command(&mut live, &mut timeline, sleep.clone());
        tick(&mut live, &mut timeline, 25);
        let first = live.world.state_hash();
        let mut rewound = timeline.rewind(40).expect("retained");
        assert_eq!(timeline.range(), (0, 40));
        command(&mut rewound, &mut timeline, sleep);
        tick(&mut rewound, &mut timeline, 25);
        assert_eq!(rewound.world.state_hash(), first, "the same run again");
        assert!(timeline.view_at(65).is_ok(), "the new branch is retained");
    }

    #[test]
    fn a_reset_starts_a_new_timeline() {
        let mut live = SimState::new(2, 20, 10.0);
        let mut timeline = Timeline::new(&live, 100, 10);
        tick(&mut live, &mut timeline, 50);
        command(&mut live, &mut timeline, Command::Reset { seed: Some(5) });
        assert_eq!(timeline.range(), (0, 0));
        tick(&mut live, &mut timeline, 3);
        let view = timeline.view_at(3).expect("after the reset");
        assert_eq!(view.world.state_hash(), live.world.state_hash());
        assert_eq!(view.world.seed(), 5);
    }
}
