//! Wolf–sheep predation, following the rules of Mesa's own example
//! `mesa.examples.advanced.wolf_sheep` (Mesa 3.3; docs/models.md says where and why).
//!
//! A `width` × `height` torus of cells, each with a grass patch. Each tick every sheep
//! that was alive when the tick began acts, in a fresh random order, then every wolf
//! does likewise (Mesa's `shuffle_do` per type: sheep first). An animal moves to one of
//! its four neighbouring cells (a sheep: a cell with no wolf, preferring grown grass,
//! or stays put if every neighbour has a wolf; a wolf: preferring a cell with a sheep),
//! loses 1 energy, eats (a sheep: the grass of its cell if grown; a wolf: one random
//! sheep of its cell), then dies if its energy is below 0, or else with probability
//! `*_reproduce` splits its energy in half with a newborn in the same cell. Newborns act
//! from the next tick. Grass eaten at tick `t` is grown again from the census of tick
//! `t + grass_regrowth_time + 1` (Mesa's regrowth event runs after that tick's step).
//!
//! With `grass = 0` sheep neither eat nor lose energy (Mesa 2's rule; Mesa 3.3's
//! example cannot run without grass).
//!
//! Determinism: randomness comes only from the `ChaCha8Rng` given to [`WolfSheep::new`],
//! animals are kept in id order, ids are never reused.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The model's params, by name, in the order `--set` lists them.
pub(crate) const PARAM_NAMES: &[&str] = &[
    "width",
    "height",
    "initial_sheep",
    "initial_wolves",
    "sheep_reproduce",
    "wolf_reproduce",
    "wolf_gain_from_food",
    "grass",
    "grass_regrowth_time",
    "sheep_gain_from_food",
];

/// The largest grid side and initial population accepted (memory stays bounded).
const MAX_SIDE: u64 = 1_000;
const MAX_INITIAL: u64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown parameter `{0}` for model `wolf_sheep` (known: {known})", known = PARAM_NAMES.join(", "))]
    Unknown(String),
    #[error("`{name}`: `{value}` is not a number")]
    NotANumber { name: String, value: String },
    #[error("`{name}` = {value}: {rule}")]
    OutOfRange {
        name: &'static str,
        value: String,
        rule: &'static str,
    },
}

/// Mesa's `WolfSheep.__init__` parameters; `Default` is Mesa's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub width: u32,
    pub height: u32,
    pub initial_sheep: u32,
    pub initial_wolves: u32,
    pub sheep_reproduce: f64,
    pub wolf_reproduce: f64,
    pub wolf_gain_from_food: f64,
    pub grass: bool,
    pub grass_regrowth_time: u64,
    pub sheep_gain_from_food: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            width: 20,
            height: 20,
            initial_sheep: 100,
            initial_wolves: 50,
            sheep_reproduce: 0.04,
            wolf_reproduce: 0.05,
            wolf_gain_from_food: 20.0,
            grass: true,
            grass_regrowth_time: 30,
            sheep_gain_from_food: 4.0,
        }
    }
}

fn whole(name: &'static str, value: &str, min: u64, max: u64) -> Result<u64, ParamError> {
    let n: u64 = value.trim().parse().map_err(|_| ParamError::NotANumber {
        name: name.to_owned(),
        value: value.to_owned(),
    })?;
    if n < min || n > max {
        let rule = match (min, max) {
            (0, 1) => "must be 0 or 1",
            (3, MAX_SIDE) => "must be 3..=1000",
            (0, MAX_INITIAL) => "must be 0..=1000000",
            _ => "must be 1..=1000000",
        };
        return Err(ParamError::OutOfRange {
            name,
            value: value.to_owned(),
            rule,
        });
    }
    Ok(n)
}

fn real(name: &'static str, value: &str, max: f64) -> Result<f64, ParamError> {
    let x: f64 = value.trim().parse().map_err(|_| ParamError::NotANumber {
        name: name.to_owned(),
        value: value.to_owned(),
    })?;
    if !(0.0..=max).contains(&x) {
        let rule = if max == 1.0 {
            "a probability must be in 0..=1"
        } else {
            "must be in 0..=1000000"
        };
        return Err(ParamError::OutOfRange {
            name,
            value: value.to_owned(),
            rule,
        });
    }
    Ok(x)
}

impl Params {
    /// Sets the param `name` from its text, checking its range.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ParamError> {
        let side = |n| whole(n, value, 3, MAX_SIDE).map(|v| v as u32);
        let count = |n| whole(n, value, 0, MAX_INITIAL).map(|v| v as u32);
        let gain = |n| real(n, value, MAX_INITIAL as f64);
        match name {
            "width" => self.width = side("width")?,
            "height" => self.height = side("height")?,
            "initial_sheep" => self.initial_sheep = count("initial_sheep")?,
            "initial_wolves" => self.initial_wolves = count("initial_wolves")?,
            "sheep_reproduce" => self.sheep_reproduce = real("sheep_reproduce", value, 1.0)?,
            "wolf_reproduce" => self.wolf_reproduce = real("wolf_reproduce", value, 1.0)?,
            "wolf_gain_from_food" => self.wolf_gain_from_food = gain("wolf_gain_from_food")?,
            "grass" => self.grass = whole("grass", value, 0, 1)? == 1,
            "grass_regrowth_time" => {
                self.grass_regrowth_time = whole("grass_regrowth_time", value, 1, MAX_INITIAL)?
            }
            "sheep_gain_from_food" => self.sheep_gain_from_food = gain("sheep_gain_from_food")?,
            other => return Err(ParamError::Unknown(other.to_owned())),
        }
        Ok(())
    }

    /// Checks every param as [`Params::set`] would (for params built in code).
    pub fn validate(&self) -> Result<(), ParamError> {
        let mut copy = Params::default();
        copy.set("width", &self.width.to_string())?;
        copy.set("height", &self.height.to_string())?;
        copy.set("initial_sheep", &self.initial_sheep.to_string())?;
        copy.set("initial_wolves", &self.initial_wolves.to_string())?;
        copy.set("sheep_reproduce", &self.sheep_reproduce.to_string())?;
        copy.set("wolf_reproduce", &self.wolf_reproduce.to_string())?;
        copy.set("wolf_gain_from_food", &self.wolf_gain_from_food.to_string())?;
        copy.set("grass_regrowth_time", &self.grass_regrowth_time.to_string())?;
        copy.set(
            "sheep_gain_from_food",
            &self.sheep_gain_from_food.to_string(),
        )?;
        Ok(())
    }
}

/// What a character is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sheep,
    Wolf,
}

/// One sheep or wolf.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Animal {
    pub id: u64,
    pub kind: Kind,
    /// Cell index: `y * width + x`.
    pub cell: u32,
    pub energy: f64,
}

/// The census after a tick: counts per state and the grass grown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Census {
    pub tick: u64,
    pub sheep: u32,
    pub wolf: u32,
    /// Cells whose grass is fully grown (0 with `grass = 0`).
    pub grass: u32,
}

/// The world of wolves, sheep and grass.
#[derive(Debug, Clone)]
pub(crate) struct WolfSheep {
    params: Params,
    rng: ChaCha8Rng,
    tick: u64,
    next_id: u64,
    /// The animals in id order (ids only grow, so this is also birth order); those
    /// that died this tick stay, marked in `alive`, until the tick ends.
    animals: Vec<Animal>,
    alive: Vec<bool>,
    grass_grown: Vec<bool>,
    /// For a cell without grown grass: the tick after whose step and census it is grown
    /// again (it is grown when the next tick starts).
    grass_regrows_at: Vec<u64>,
    /// Indexes in `animals` of the sheep in each cell.
    sheep_at: Vec<Vec<u32>>,
    wolves_at: Vec<u32>,
}

impl WolfSheep {
    /// A new world at tick 0, placed as Mesa does: sheep then wolves, each with energy
    /// uniform in `[0, 2 × gain)` on a uniformly random cell, then each grass patch
    /// grown with probability ½, or else regrowing after `0..grass_regrowth_time`
    /// ticks (0 meaning grown now).
    pub(crate) fn new(params: Params, rng: ChaCha8Rng) -> Result<Self, ParamError> {
        params.validate()?;
        let cells = params.width as usize * params.height as usize;
        let mut world = WolfSheep {
            rng,
            tick: 0,
            next_id: 1,
            animals: Vec::new(),
            alive: Vec::new(),
            grass_grown: vec![false; cells],
            grass_regrows_at: vec![0; cells],
            sheep_at: vec![Vec::new(); cells],
            wolves_at: vec![0; cells],
            params,
        };
        let kinds = [
            (
                Kind::Sheep,
                world.params.initial_sheep,
                world.params.sheep_gain_from_food,
            ),
            (
                Kind::Wolf,
                world.params.initial_wolves,
                world.params.wolf_gain_from_food,
            ),
        ];
        for (kind, count, gain) in kinds {
            for _ in 0..count {
                let energy = world.rng.gen::<f64>() * 2.0 * gain;
                let cell = world.rng.gen_range(0..cells as u32);
                world.add(kind, cell, energy);
            }
        }
        if world.params.grass {
            for cell in 0..cells {
                let countdown = if world.rng.gen::<bool>() {
                    0
                } else {
                    world.rng.gen_range(0..world.params.grass_regrowth_time)
                };
                world.grass_grown[cell] = countdown == 0;
                world.grass_regrows_at[cell] = countdown;
            }
        }
        Ok(world)
    }

    /// The ticks stepped so far.
    #[cfg(test)]
    pub(crate) fn tick(&self) -> u64 {
        self.tick
    }

    /// The living animals in id order.
    #[cfg(test)]
    pub(crate) fn animals(&self) -> impl Iterator<Item = &Animal> {
        self.animals
            .iter()
            .zip(&self.alive)
            .filter_map(|(a, alive)| alive.then_some(a))
    }

    pub(crate) fn census(&self) -> Census {
        let sheep = self.sheep_at.iter().map(|s| s.len() as u32).sum();
        Census {
            tick: self.tick,
            sheep,
            wolf: self.wolves_at.iter().sum(),
            grass: self.grass_grown.iter().filter(|g| **g).count() as u32,
        }
    }

    /// One tick: grass due by the tick before regrows, then all sheep act, then all
    /// wolves. Grass due at tick `t` regrows at the start of `t + 1`, not at the end of
    /// `t`: Mesa runs the regrowth event after the step (and its census) of `t`.
    pub(crate) fn step(&mut self) {
        self.tick += 1;
        let now = self.tick;
        for (grown, at) in self.grass_grown.iter_mut().zip(&self.grass_regrows_at) {
            if !*grown && *at < now {
                *grown = true;
            }
        }
        for kind in [Kind::Sheep, Kind::Wolf] {
            let mut order: Vec<u32> = (0..self.animals.len() as u32)
                .filter(|i| self.alive[*i as usize] && self.animals[*i as usize].kind == kind)
                .collect();
            order.shuffle(&mut self.rng);
            for i in order {
                self.act(i);
            }
        }
        self.compact();
    }

    /// Drops the animals that died this tick and re-indexes the sheep by cell (each
    /// cell's list in id order).
    fn compact(&mut self) {
        if self.alive.iter().all(|a| *a) {
            return;
        }
        let alive = std::mem::take(&mut self.alive);
        let mut keep = alive.iter();
        self.animals
            .retain(|_| keep.next().copied().unwrap_or(false));
        self.alive = vec![true; self.animals.len()];
        self.sheep_at.iter_mut().for_each(Vec::clear);
        for (i, a) in self.animals.iter().enumerate() {
            if a.kind == Kind::Sheep {
                self.sheep_at[a.cell as usize].push(i as u32);
            }
        }
    }

    fn add(&mut self, kind: Kind, cell: u32, energy: f64) {
        let id = self.next_id;
        self.next_id += 1;
        let index = self.animals.len() as u32;
        match kind {
            Kind::Sheep => self.sheep_at[cell as usize].push(index),
            Kind::Wolf => self.wolves_at[cell as usize] += 1,
        }
        let animal = Animal {
            id,
            kind,
            cell,
            energy,
        };
        self.animals.push(animal);
        self.alive.push(true);
    }

    fn remove(&mut self, index: u32) {
        let i = index as usize;
        if !std::mem::replace(&mut self.alive[i], false) {
            return;
        }
        let cell = self.animals[i].cell as usize;
        match self.animals[i].kind {
            Kind::Sheep => self.sheep_at[cell].retain(|s| *s != index),
            Kind::Wolf => self.wolves_at[cell] -= 1,
        }
    }

    /// The four von Neumann neighbours of `cell` on the torus: up, down, left, right.
    fn neighbours(&self, cell: u32) -> [u32; 4] {
        let (w, h) = (self.params.width, self.params.height);
        let (x, y) = (cell % w, cell / w);
        [
            ((y + h - 1) % h) * w + x,
            ((y + 1) % h) * w + x,
            y * w + (x + w - 1) % w,
            y * w + (x + 1) % w,
        ]
    }

    /// Where an animal in `cell` moves to (or `cell` for a sheep hemmed in by wolves).
    fn destination(&mut self, kind: Kind, cell: u32) -> u32 {
        let around = self.neighbours(cell);
        // The candidates, best class first: (cells, how many) on the stack.
        let pick = |keep: &dyn Fn(u32) -> bool| {
            let mut out = [0u32; 4];
            let mut n = 0;
            for c in around {
                if keep(c) {
                    out[n] = c;
                    n += 1;
                }
            }
            (out, n)
        };
        let (choices, n) = match kind {
            Kind::Sheep => {
                let safe = |c: u32| self.wolves_at[c as usize] == 0;
                let grassy = pick(&|c| safe(c) && self.grass_grown[c as usize]);
                if grassy.1 > 0 {
                    grassy
                } else {
                    pick(&safe)
                }
            }
            Kind::Wolf => {
                let prey = pick(&|c| !self.sheep_at[c as usize].is_empty());
                if prey.1 > 0 {
                    prey
                } else {
                    (around, 4)
                }
            }
        };
        if n == 0 {
            return cell;
        }
        choices[self.rng.gen_range(0..n)]
    }

    fn relocate(&mut self, index: u32, kind: Kind, from: u32, to: u32) {
        if from == to {
            return;
        }
        match kind {
            Kind::Sheep => {
                self.sheep_at[from as usize].retain(|s| *s != index);
                self.sheep_at[to as usize].push(index);
            }
            Kind::Wolf => {
                self.wolves_at[from as usize] -= 1;
                self.wolves_at[to as usize] += 1;
            }
        }
        self.animals[index as usize].cell = to;
    }

    /// What one animal does in its turn (nothing if it was eaten earlier this tick).
    fn act(&mut self, index: u32) {
        let i = index as usize;
        if !self.alive[i] {
            return;
        }
        let Animal { kind, cell, .. } = self.animals[i];
        let to = self.destination(kind, cell);
        self.relocate(index, kind, cell, to);
        let gain = self.feed(kind, to);
        let (p_reproduce, starves) = match kind {
            Kind::Sheep => (self.params.sheep_reproduce, self.params.grass),
            Kind::Wolf => (self.params.wolf_reproduce, true),
        };
        let a = &mut self.animals[i];
        if starves {
            a.energy -= 1.0;
        }
        a.energy += gain;
        let energy = a.energy;
        if energy < 0.0 {
            self.remove(index);
        } else if self.rng.gen::<f64>() < p_reproduce {
            let half = energy / 2.0;
            self.animals[i].energy = half;
            self.add(kind, to, half);
        }
    }

    /// Eats in `cell`: the energy gained (0 if there was nothing to eat).
    fn feed(&mut self, kind: Kind, cell: u32) -> f64 {
        let c = cell as usize;
        match kind {
            Kind::Sheep if self.params.grass && self.grass_grown[c] => {
                self.grass_grown[c] = false;
                self.grass_regrows_at[c] = self.tick + self.params.grass_regrowth_time;
                self.params.sheep_gain_from_food
            }
            Kind::Sheep => 0.0,
            Kind::Wolf => {
                let Some(&prey) = self.sheep_at[c].choose(&mut self.rng) else {
                    return 0.0;
                };
                self.remove(prey);
                self.params.wolf_gain_from_food
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    fn world(seed: u64, params: Params) -> WolfSheep {
        WolfSheep::new(params, ChaCha8Rng::seed_from_u64(seed)).expect("valid params")
    }

    fn trajectory(seed: u64, ticks: u64) -> Vec<Census> {
        let mut w = world(seed, Params::default());
        let mut out = vec![w.census()];
        for _ in 0..ticks {
            w.step();
            out.push(w.census());
        }
        out
    }

    #[test]
    fn the_same_seed_gives_the_same_trajectory_and_another_seed_another() {
        let a = trajectory(7, 200);
        assert_eq!(a, trajectory(7, 200));
        assert_ne!(a, trajectory(8, 200));
        assert_eq!(a[0].sheep, 100);
        assert_eq!(a[0].wolf, 50);
        assert!(a.iter().any(|c| c.sheep != 100), "the world moves");
    }

    #[test]
    fn a_sheep_on_grass_eats_it_and_gains_sheep_gain_from_food() {
        let params = Params {
            initial_sheep: 1,
            initial_wolves: 0,
            sheep_reproduce: 0.0,
            ..Params::default()
        };
        let mut w = world(3, params);
        w.grass_grown.iter_mut().for_each(|g| *g = true);
        let before = w.animals().next().cloned().expect("one sheep");
        w.step();
        let after = w.animals().next().cloned().expect("still one sheep");
        assert_eq!(after.id, before.id);
        assert!(
            w.neighbours(before.cell).contains(&after.cell),
            "moved next door"
        );
        assert_eq!(after.energy, before.energy - 1.0 + 4.0);
        let census = w.census();
        assert_eq!((census.sheep, census.wolf, census.grass), (1, 0, 399));
        assert!(!w.grass_grown[after.cell as usize]);
        assert_eq!(w.grass_regrows_at[after.cell as usize], 1 + 30);
    }

    #[test]
    fn eaten_grass_is_grown_again_after_grass_regrowth_time_ticks() {
        let params = Params {
            initial_sheep: 0,
            initial_wolves: 0,
            ..Params::default()
        };
        let mut w = world(1, params);
        w.grass_grown.iter_mut().for_each(|g| *g = true);
        w.grass_grown[5] = false;
        w.grass_regrows_at[5] = 3;
        for _ in 0..3 {
            w.step();
            assert_eq!(w.census().grass, 399, "tick {}", w.tick());
        }
        w.step();
        assert_eq!(
            w.census().grass,
            400,
            "due at 3: grown from the census of 4"
        );
    }

    #[test]
    fn a_wolf_eats_the_sheep_it_finds_and_gains_wolf_gain_from_food() {
        let params = Params {
            initial_sheep: 0,
            initial_wolves: 0,
            wolf_reproduce: 0.0,
            ..Params::default()
        };
        let mut w = world(5, params);
        // A sheep at (5, 5) hemmed in by four wolves stays put; the first wolf to act
        // steps onto it (the only neighbouring cell with a sheep) and eats it.
        w.add(Kind::Sheep, 105, 3.0);
        for cell in [85, 125, 104, 106] {
            w.add(Kind::Wolf, cell, 10.0);
        }
        w.step();
        let census = w.census();
        assert_eq!((census.sheep, census.wolf), (0, 4));
        let mut energies: Vec<f64> = w.animals().map(|a| a.energy).collect();
        energies.sort_by(f64::total_cmp);
        assert_eq!(energies, vec![9.0, 9.0, 9.0, 10.0 - 1.0 + 20.0]);
        assert!(
            w.animals().any(|a| a.cell == 105),
            "the eater stands where the sheep was"
        );
    }

    #[test]
    fn births_and_deaths_keep_ids_unique_and_never_reused() {
        let mut w = world(11, Params::default());
        let mut seen = BTreeSet::new();
        let mut alive_before: BTreeSet<u64> = BTreeSet::new();
        let (mut births, mut deaths) = (0, 0);
        for _ in 0..150 {
            let alive: BTreeSet<u64> = w.animals().map(|a| a.id).collect();
            assert_eq!(alive.len(), w.animals.len());
            for id in alive.difference(&alive_before) {
                assert!(seen.insert(*id), "id {id} reused");
                births += 1;
            }
            deaths += alive_before.difference(&alive).count();
            alive_before = alive;
            w.step();
        }
        assert!(
            births > 150 && deaths > 0,
            "{births} births, {deaths} deaths"
        );
    }

    #[test]
    fn bad_params_are_refused_naming_the_param() {
        let mut p = Params::default();
        let err = |r: Result<(), ParamError>| r.expect_err("refused").to_string();
        assert!(err(p.set("sheep_reproduce", "1.5")).contains("sheep_reproduce"));
        assert!(err(p.set("width", "0")).contains("width"));
        assert!(err(p.set("grass", "2")).contains("grass"));
        assert!(err(p.set("grass_regrowth_time", "0")).contains("grass_regrowth_time"));
        assert!(err(p.set("initial_wolves", "many")).contains("initial_wolves"));
        let unknown = err(p.set("speed", "3"));
        assert!(unknown.contains("`speed`") && unknown.contains("initial_sheep"));
        assert_eq!(p, Params::default(), "nothing changed");
        p.set("wolf_reproduce", "0.1").expect("a probability");
        assert_eq!(p.wolf_reproduce, 0.1);
        let bad = Params {
            height: 2,
            ..Params::default()
        };
        let refused = WolfSheep::new(bad, ChaCha8Rng::seed_from_u64(1)).map(|_| ());
        assert!(err(refused).contains("height"));
    }
}
