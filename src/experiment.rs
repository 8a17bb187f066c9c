//! Headless experiments (`simcast run`): worlds run faster than real time with no
//! server, one CSV row per tick (tick 0 included).
//!
//! `--model` picks what runs: `town` (the default; its rows are `sim::series`) or
//! `wolf_sheep` (`models::wolf_sheep`; rows `tick,sheep,wolf,grass`). `--set key=value`
//! fixes a parameter and `--sweep key=A..B` (or `key=a,b,c`) runs one world per value,
//! adding a `run` column (1, 2, … in the order of the values). The keys are `seed` and
//! the model's own params; any other key, or an unknown model, is refused with the list
//! of what exists. Runs are spread over every core and written in run order, and nothing
//! in the file depends on the clock, so the same arguments give a byte-identical file.

use crate::models::wolf_sheep::{self, WolfSheep};
use crate::sim::series::{columns, push_csv_row, Row};
use crate::sim::World;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

/// The models `simcast run --model` knows.
pub const MODELS: &[&str] = &["town", "wolf_sheep"];

/// The seed a run gets unless `--seed` or `--set seed=` says otherwise.
pub const DEFAULT_SEED: u64 = 42;

/// The town's population unless `--characters` or `--set characters=` says otherwise.
pub const DEFAULT_CHARACTERS: usize = 200;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExperimentError {
    #[error("unknown model `{0}` (known: {known})", known = MODELS.join(", "))]
    UnknownModel(String),
    #[error("--set/--sweep `{0}`: expected key=value")]
    NotKeyValue(String),
    #[error("unknown parameter `{key}` for model `{model}` (known: {known})")]
    UnknownKey {
        key: String,
        model: &'static str,
        known: String,
    },
    #[error("`{key}`: `{value}` is not a whole number")]
    NotANumber { key: String, value: String },
    #[error(transparent)]
    Param(wolf_sheep::ParamError),
    #[error("--sweep `{0}`: expected key=A..B (inclusive) or key=a,b,c")]
    BadSweep(String),
    #[error("--sweep `{0}` has more than 10 000 values")]
    SweepTooLong(String),
}

/// A model's own parameters (the seed is apart: every model has one).
#[derive(Debug, Clone, PartialEq)]
pub enum ModelParams {
    Town { characters: usize },
    WolfSheep(wolf_sheep::Params),
}

impl ModelParams {
    fn name(&self) -> &'static str {
        match self {
            ModelParams::Town { .. } => "town",
            ModelParams::WolfSheep(_) => "wolf_sheep",
        }
    }

    fn param_names(&self) -> Vec<&'static str> {
        let own: &[&str] = match self {
            ModelParams::Town { .. } => &["characters"],
            ModelParams::WolfSheep(_) => wolf_sheep::PARAM_NAMES,
        };
        std::iter::once("seed").chain(own.iter().copied()).collect()
    }

    /// The CSV header without the `run` column.
    fn header(&self) -> String {
        match self {
            ModelParams::Town { .. } => columns().join(","),
            ModelParams::WolfSheep(_) => "tick,sheep,wolf,grass".to_owned(),
        }
    }
}

/// One world's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub seed: u64,
    pub model: ModelParams,
}

impl Params {
    /// The defaults of the model called `model`: [`DEFAULT_SEED`], and the town's
    /// [`DEFAULT_CHARACTERS`] or Mesa's wolf–sheep defaults.
    pub fn defaults(model: &str) -> Result<Params, ExperimentError> {
        let model = match model {
            "town" => ModelParams::Town {
                characters: DEFAULT_CHARACTERS,
            },
            "wolf_sheep" => ModelParams::WolfSheep(wolf_sheep::Params::default()),
            other => return Err(ExperimentError::UnknownModel(other.to_owned())),
        };
        Ok(Params {
            seed: DEFAULT_SEED,
            model,
        })
    }

    /// Sets `key` to `value` (its text), refusing a key the model does not have.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ExperimentError> {
        let unknown = |model: &ModelParams| ExperimentError::UnknownKey {
            key: key.to_owned(),
            model: model.name(),
            known: model.param_names().join(", "),
        };
        match (&mut self.model, key) {
            (_, "seed") => self.seed = number(key, value)?,
            (ModelParams::Town { characters }, "characters") => {
                *characters = number(key, value)? as usize
            }
            (ModelParams::Town { .. }, _) => return Err(unknown(&self.model)),
            (ModelParams::WolfSheep(p), _) => match p.set(key, value) {
                Ok(()) => {}
                Err(wolf_sheep::ParamError::Unknown(_)) => return Err(unknown(&self.model)),
                Err(e) => return Err(ExperimentError::Param(e)),
            },
        }
        Ok(())
    }
}

fn number(key: &str, value: &str) -> Result<u64, ExperimentError> {
    value
        .trim()
        .parse()
        .map_err(|_| ExperimentError::NotANumber {
            key: key.to_owned(),
            value: value.to_owned(),
        })
}

/// `key=value` as given to `--set` (the value is checked by [`Params::set`]).
pub fn parse_set(arg: &str) -> Result<(String, String), ExperimentError> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| ExperimentError::NotKeyValue(arg.to_owned()))?;
    Ok((key.trim().to_owned(), value.trim().to_owned()))
}

/// `key=A..B` (whole numbers) or `key=a,b,c` as given to `--sweep`: the key and its
/// values in order (each value is checked by [`Params::set`]).
pub fn parse_sweep(arg: &str) -> Result<(String, Vec<String>), ExperimentError> {
    let (key, spec) = arg
        .split_once('=')
        .ok_or_else(|| ExperimentError::BadSweep(arg.to_owned()))?;
    let key = key.trim().to_owned();
    let values = match spec.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (number(&key, a)?, number(&key, b)?);
            if a > b {
                return Err(ExperimentError::BadSweep(arg.to_owned()));
            }
            if b - a >= 10_000 {
                return Err(ExperimentError::SweepTooLong(arg.to_owned()));
            }
            (a..=b).map(|v| v.to_string()).collect()
        }
        None => spec.split(',').map(|v| v.trim().to_owned()).collect(),
    };
    Ok((key, values))
}

/// What to run: one world per entry of `runs`, each for `ticks` ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub runs: Vec<Params>,
    pub ticks: u64,
    /// Whether the file gets a `run` column (a sweep).
    pub numbered: bool,
}

impl Plan {
    /// The plan `simcast run` asks for: `base` with each `--set` applied, then one run
    /// per `--sweep` value (or the one run).
    pub fn from_args(
        mut base: Params,
        ticks: u64,
        sets: &[String],
        sweep: Option<&str>,
    ) -> Result<Plan, ExperimentError> {
        for arg in sets {
            let (key, value) = parse_set(arg)?;
            base.set(&key, &value)?;
        }
        let Some(sweep) = sweep else {
            return Ok(Plan {
                runs: vec![base],
                ticks,
                numbered: false,
            });
        };
        let (key, values) = parse_sweep(sweep)?;
        let mut runs = Vec::with_capacity(values.len());
        for value in values {
            let mut params = base.clone();
            params.set(&key, &value)?;
            runs.push(params);
        }
        Ok(Plan {
            runs,
            ticks,
            numbered: true,
        })
    }
}

/// One world's rows as CSV lines (no header), `run` first when numbered.
fn run_one(
    params: &Params,
    ticks: u64,
    run: Option<usize>,
    done: &AtomicU64,
) -> Result<String, ExperimentError> {
    match &params.model {
        ModelParams::Town { characters } => {
            Ok(run_town(params.seed, *characters, ticks, run, done))
        }
        ModelParams::WolfSheep(p) => {
            let rng = ChaCha8Rng::seed_from_u64(params.seed);
            let world = WolfSheep::new(p.clone(), rng).map_err(ExperimentError::Param)?;
            Ok(run_wolf_sheep(world, ticks, run, done))
        }
    }
}

fn run_town(
    seed: u64,
    characters: usize,
    ticks: u64,
    run: Option<usize>,
    done: &AtomicU64,
) -> String {
    let mut world = World::new(seed, characters);
    let mut out = String::new();
    let mut items = Vec::new();
    let mut line = String::new();
    for t in 0..=ticks {
        if t > 0 {
            world.step(0.0, &mut items);
            items.clear();
        }
        line.clear();
        push_csv_row(&mut line, &Row::of(&world));
        if let Some(run) = run {
            out.push_str(&format!("{run},"));
        }
        out.push_str(&line);
        if t > 0 && t % 1000 == 0 {
            done.fetch_add(1000, Ordering::Relaxed);
        }
    }
    out
}

fn run_wolf_sheep(
    mut world: WolfSheep,
    ticks: u64,
    run: Option<usize>,
    done: &AtomicU64,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for t in 0..=ticks {
        if t > 0 {
            world.step();
        }
        let c = world.census();
        if let Some(run) = run {
            let _ = write!(out, "{run},");
        }
        let _ = writeln!(out, "{},{},{},{}", c.tick, c.sheep, c.wolf, c.grass);
        if t > 0 && t % 1000 == 0 {
            done.fetch_add(1000, Ordering::Relaxed);
        }
    }
    out
}

/// Runs `plan` over `threads` threads and returns the whole CSV file. `progress` is
/// called about once a second with the fraction done, for runs that take longer.
pub fn run(plan: &Plan, threads: usize, progress: impl Fn(f64)) -> Result<String, ExperimentError> {
    let done = AtomicU64::new(0);
    let total = (plan.ticks.max(1) * plan.runs.len() as u64).max(1);
    let next = AtomicU64::new(0);
    let mut parts: Vec<Option<Result<String, ExperimentError>>> = vec![None; plan.runs.len()];
    let threads = threads.clamp(1, plan.runs.len().max(1));
    // Each worker holds a sender and drops it when it ends: the channel disconnects the
    // moment the last run is done (nothing is ever sent; capacity 0).
    let (alive_tx, alive_rx) = std::sync::mpsc::sync_channel::<()>(0);
    let (next, done) = (&next, &done);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let alive = alive_tx.clone();
                scope.spawn(move || {
                    let _alive = alive;
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(params) = plan.runs.get(i) else {
                            return mine;
                        };
                        let run = plan.numbered.then_some(i + 1);
                        mine.push((i, run_one(params, plan.ticks, run, done)));
                    }
                })
            })
            .collect();
        drop(alive_tx);
        while let Err(RecvTimeoutError::Timeout) = alive_rx.recv_timeout(Duration::from_secs(1)) {
            progress(done.load(Ordering::Relaxed) as f64 / total as f64);
        }
        for worker in workers {
            for (i, text) in worker.join().unwrap_or_default() {
                parts[i] = Some(text);
            }
        }
    });
    let mut header = plan
        .runs
        .first()
        .map_or_else(|| columns().join(","), |p| p.model.header());
    if plan.numbered {
        header = format!("run,{header}");
    }
    let mut out = header;
    out.push('\n');
    for part in parts.into_iter().flatten() {
        out.push_str(&part?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn sets_and_sweeps_are_read_and_bad_ones_named() {
        assert_eq!(parse_set("seed=7"), Ok(("seed".into(), "7".into())));
        assert_eq!(
            parse_sweep("seed=1..3"),
            Ok(("seed".into(), strings(&["1", "2", "3"])))
        );
        assert_eq!(
            parse_sweep("characters=10,20"),
            Ok(("characters".into(), strings(&["10", "20"])))
        );
        let mut town = Params::defaults("town").expect("town");
        let unknown = town.set("speed", "3").expect_err("refused").to_string();
        assert!(unknown.contains("unknown parameter `speed`"), "{unknown}");
        assert!(unknown.contains("seed, characters"), "{unknown}");
        assert!(matches!(
            parse_set("seed"),
            Err(ExperimentError::NotKeyValue(_))
        ));
        assert!(matches!(
            town.set("seed", "x"),
            Err(ExperimentError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_sweep("seed=5..1"),
            Err(ExperimentError::BadSweep(_))
        ));
    }

    #[test]
    fn models_and_their_params_are_refused_with_what_exists() {
        let err = Params::defaults("boids").expect_err("no such model");
        assert_eq!(
            err.to_string(),
            "unknown model `boids` (known: town, wolf_sheep)"
        );
        let mut ws = Params::defaults("wolf_sheep").expect("wolf_sheep");
        let err = ws
            .set("characters", "5")
            .expect_err("not a wolf_sheep param");
        let text = err.to_string();
        assert!(
            text.contains("`characters` for model `wolf_sheep`"),
            "{text}"
        );
        assert!(
            text.contains("seed, width, height, initial_sheep"),
            "{text}"
        );
        let range = ws
            .set("wolf_reproduce", "2")
            .expect_err("not a probability");
        assert!(range.to_string().contains("wolf_reproduce"));
        let plan = Plan::from_args(
            ws,
            3,
            &strings(&["initial_wolves=0"]),
            Some("sheep_reproduce=0.01,0.1"),
        )
        .expect("a plan");
        assert_eq!(plan.runs.len(), 2);
        let csv = run(&plan, 2, |_| {}).expect("runs");
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("run,tick,sheep,wolf,grass"));
        assert!(csv
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("1,0,100,0,")));
        assert_eq!(csv.lines().count(), 1 + 2 * 4);
    }

    #[test]
    fn the_same_plan_gives_the_same_file_whatever_the_threads() {
        for model in MODELS {
            let base = Params::defaults(model).expect("a model");
            let plan = Plan::from_args(base, 50, &[], Some("seed=1..5")).expect("a plan");
            let one = run(&plan, 1, |_| {}).expect("runs");
            let many = run(&plan, 4, |_| {}).expect("runs");
            assert_eq!(one, many);
            assert_eq!(one.lines().count(), 1 + 5 * 51);
            assert!(one.lines().nth(1).is_some_and(|l| l.starts_with("1,0,")));
            assert!(one.lines().last().is_some_and(|l| l.starts_with("5,50,")));
        }
        let town = Params::defaults("town").expect("town");
        let plan = Plan::from_args(town, 1, &[], None).expect("a plan");
        let csv = run(&plan, 1, |_| {}).expect("runs");
        assert!(csv.starts_with("tick,day"));
    }
}
