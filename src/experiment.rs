//! Headless experiments (`simcast run`): worlds run faster than real time with no
//! server, their time series (`sim::series`, one row per tick) written as CSV.
//!
//! `--set key=value` fixes a world parameter and `--sweep key=A..B` (or `key=a,b,c`)
//! runs one world per value, adding a `run` column (1, 2, … in the order of the
//! values). The keys are the world's own parameters: `seed` and `characters`. Runs are
//! spread over every core and written in run order, and nothing in the file depends on
//! the clock, so the same arguments give a byte-identical file.

use crate::sim::series::{columns, push_csv_row, Row};
use crate::sim::World;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExperimentError {
    #[error("--set/--sweep `{0}`: expected key=value")]
    NotKeyValue(String),
    #[error("unknown parameter `{0}` (known: seed, characters)")]
    UnknownKey(String),
    #[error("`{key}`: `{value}` is not a whole number")]
    NotANumber { key: String, value: String },
    #[error("--sweep `{0}`: expected key=A..B (inclusive) or key=a,b,c")]
    BadSweep(String),
    #[error("--sweep `{0}` has more than 10 000 values")]
    SweepTooLong(String),
}

/// One world's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub seed: u64,
    pub characters: usize,
}

impl Params {
    /// Sets `key` to `value`.
    pub fn set(&mut self, key: &str, value: u64) -> Result<(), ExperimentError> {
        match key {
            "seed" => self.seed = value,
            "characters" => self.characters = value as usize,
            other => return Err(ExperimentError::UnknownKey(other.to_owned())),
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

/// `key=value` as given to `--set`.
pub fn parse_set(arg: &str) -> Result<(String, u64), ExperimentError> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| ExperimentError::NotKeyValue(arg.to_owned()))?;
    let key = key.trim().to_owned();
    Params {
        seed: 0,
        characters: 0,
    }
    .set(&key, 0)?;
    let value = number(&key, value)?;
    Ok((key, value))
}

/// `key=A..B` or `key=a,b,c` as given to `--sweep`: the key and its values in order.
pub fn parse_sweep(arg: &str) -> Result<(String, Vec<u64>), ExperimentError> {
    let (key, spec) = arg
        .split_once('=')
        .ok_or_else(|| ExperimentError::BadSweep(arg.to_owned()))?;
    let key = key.trim().to_owned();
    Params {
        seed: 0,
        characters: 0,
    }
    .set(&key, 0)?;
    let values = match spec.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (number(&key, a)?, number(&key, b)?);
            if a > b {
                return Err(ExperimentError::BadSweep(arg.to_owned()));
            }
            if b - a >= 10_000 {
                return Err(ExperimentError::SweepTooLong(arg.to_owned()));
            }
            (a..=b).collect()
        }
        None => spec
            .split(',')
            .map(|v| number(&key, v))
            .collect::<Result<_, _>>()?,
    };
    Ok((key, values))
}

/// What to run: one world per entry of `runs`, each for `ticks` ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub runs: Vec<Params>,
    pub ticks: u64,
    /// Whether the file gets a `run` column (a sweep).
    pub numbered: bool,
}

/// One world's rows as CSV lines (no header), `run` first when numbered.
fn run_one(params: Params, ticks: u64, run: Option<usize>, done: &AtomicU64) -> String {
    let mut world = World::new(params.seed, params.characters);
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

/// Runs `plan` over `threads` threads and returns the whole CSV file. `progress` is
/// called about once a second with the fraction done, for runs that take longer.
pub fn run(plan: &Plan, threads: usize, progress: impl Fn(f64)) -> String {
    let done = AtomicU64::new(0);
    let total = (plan.ticks.max(1) * plan.runs.len() as u64).max(1);
    let next = AtomicU64::new(0);
    let mut parts: Vec<Option<String>> = vec![None; plan.runs.len()];
    let threads = threads.clamp(1, plan.runs.len().max(1));
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(params) = plan.runs.get(i) else {
                            return mine;
                        };
                        let run = plan.numbered.then_some(i + 1);
                        mine.push((i, run_one(*params, plan.ticks, run, &done)));
                    }
                })
            })
            .collect();
        let started = Instant::now();
        let mut last = started;
        while workers.iter().any(|w| !w.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            if last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                progress(done.load(Ordering::Relaxed) as f64 / total as f64);
            }
        }
        for worker in workers {
            for (i, text) in worker.join().unwrap_or_default() {
                parts[i] = Some(text);
            }
        }
    });
    let mut header = columns().join(",");
    if plan.numbered {
        header = format!("run,{header}");
    }
    let mut out = header;
    out.push('\n');
    for part in parts.into_iter().flatten() {
        out.push_str(&part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_sweeps_are_read_and_bad_ones_named() {
        assert_eq!(parse_set("seed=7"), Ok(("seed".into(), 7)));
        assert_eq!(parse_sweep("seed=1..3"), Ok(("seed".into(), vec![1, 2, 3])));
        assert_eq!(
            parse_sweep("characters=10,20"),
            Ok(("characters".into(), vec![10, 20]))
        );
        assert!(matches!(
            parse_set("speed=3"),
            Err(ExperimentError::UnknownKey(_))
        ));
        assert!(matches!(
            parse_set("seed"),
            Err(ExperimentError::NotKeyValue(_))
        ));
        assert!(matches!(
            parse_set("seed=x"),
            Err(ExperimentError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_sweep("seed=5..1"),
            Err(ExperimentError::BadSweep(_))
        ));
    }

    #[test]
    fn the_same_plan_gives_the_same_file_whatever_the_threads() {
        let runs = (1..=5)
            .map(|seed| Params {
                seed,
                characters: 20,
            })
            .collect();
        let plan = Plan {
            runs,
            ticks: 50,
            numbered: true,
        };
        let one = run(&plan, 1, |_| {});
        let many = run(&plan, 4, |_| {});
        assert_eq!(one, many);
        let mut lines = one.lines();
        assert!(lines.next().is_some_and(|h| h.starts_with("run,tick,day")));
        assert_eq!(lines.count(), 5 * 51);
        assert!(one.lines().nth(1).is_some_and(|l| l.starts_with("1,0,")));
        assert!(one.lines().last().is_some_and(|l| l.starts_with("5,50,")));
    }
}
