//! The time series of the live world (protocol, "Time series"): one row per tick, with
//! the tick's clock, how many characters are in each state and the mean of each need,
//! kept for the same retained range as `view_at` (`sim.history_ticks`), and rendered
//! as CSV or JSON for `GET /api/timeseries`.
//!
//! A row is taken right after its tick is computed, so it describes the same world
//! `view_at` rebuilds for that tick. A `reset` starts the series over.

use super::World;
use crate::protocol::CharState;
use serde::Serialize;
use std::collections::VecDeque;
use std::fmt::Write;

/// One tick of the series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub tick: u64,
    pub day: u64,
    pub minute_of_day: u32,
    /// Characters in each state, in [`CharState::ALL`] order.
    #[serde(skip)]
    pub counts: [u32; 6],
    /// Mean energy, hunger and social (0–100); 0 without characters.
    #[serde(skip)]
    pub means: [f64; 3],
}

impl Row {
    /// The row of `world` as it is now.
    pub fn of(world: &World) -> Row {
        Self::with_census(world, &world.census_full())
    }

    /// The row of `world`, whose census is taken already.
    pub fn with_census(world: &World, census: &super::Census) -> Row {
        let clock = super::rules::clock_at(world.tick());
        Row {
            tick: world.tick(),
            day: clock.day,
            minute_of_day: clock.minute_of_day,
            counts: census.counts,
            means: census.means,
        }
    }
}

/// The retained rows, oldest first; bounded at `retain + 1` rows.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    retain: u64,
    rows: VecDeque<Row>,
}

impl Series {
    pub(crate) fn new(world: &World, retain: u64) -> Self {
        let mut series = Series {
            retain,
            rows: VecDeque::new(),
        };
        series.restart(world);
        series
    }

    /// Starts over at `world` (a reset).
    pub(crate) fn restart(&mut self, world: &World) {
        self.rows.clear();
        self.rows.push_back(Row::of(world));
    }

    /// Adds the row of the tick `world` just completed; drops rows past the range.
    #[cfg(test)]
    pub(crate) fn record(&mut self, world: &World) {
        self.record_with(world, &world.census_full());
    }

    /// [`Series::record`] with the census of the tick taken already.
    pub(crate) fn record_with(&mut self, world: &World, census: &super::Census) {
        self.rows.push_back(Row::with_census(world, census));
        while self.rows.len() as u64 > self.retain + 1 {
            self.rows.pop_front();
        }
    }

    /// Forgets the rows after `tick` (a rewind).
    pub(crate) fn truncate_after(&mut self, tick: u64) {
        while self.rows.back().is_some_and(|r| r.tick > tick) {
            self.rows.pop_back();
        }
    }

    /// Rows with `from <= tick <= to`, oldest first.
    pub(crate) fn rows(&self, from: u64, to: u64) -> Vec<Row> {
        let rows = self.rows.iter().filter(|r| r.tick >= from && r.tick <= to);
        rows.cloned().collect()
    }
}

/// The column names, in order: `tick`, `day`, `minute_of_day`, one per state, then
/// `mean_energy`, `mean_hunger`, `mean_social`.
pub(crate) fn columns() -> Vec<String> {
    let mut columns: Vec<String> = ["tick", "day", "minute_of_day"].map(String::from).to_vec();
    columns.extend(CharState::ALL.iter().map(|s| s.as_str().to_owned()));
    columns.extend(["mean_energy", "mean_hunger", "mean_social"].map(String::from));
    columns
}

/// The rows as the body of `GET /api/timeseries` in `format`.
pub(crate) fn render(rows: &[Row], format: crate::ports::SeriesFormat) -> String {
    match format {
        crate::ports::SeriesFormat::Csv => to_csv(rows),
        crate::ports::SeriesFormat::Json => to_json(rows).to_string(),
    }
}

/// The rows as CSV: a header row, then one line per tick (means to 2 decimals).
pub(crate) fn to_csv(rows: &[Row]) -> String {
    let mut out = columns().join(",");
    out.push('\n');
    for r in rows {
        push_csv_row(&mut out, r);
    }
    out
}

/// One CSV line of `r` (means to 2 decimals), appended to `out`.
pub(crate) fn push_csv_row(out: &mut String, r: &Row) {
    let _ = write!(out, "{},{},{}", r.tick, r.day, r.minute_of_day);
    for c in r.counts {
        let _ = write!(out, ",{c}");
    }
    for m in r.means {
        let _ = write!(out, ",{m:.2}");
    }
    out.push('\n');
}

/// The rows as JSON: `{"columns": [...], "rows": [{"tick":…, "sleeping":…, …}]}`.
pub(crate) fn to_json(rows: &[Row]) -> serde_json::Value {
    let names = columns();
    let objects: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut m = serde_json::Map::new();
            m.insert("tick".into(), r.tick.into());
            m.insert("day".into(), r.day.into());
            m.insert("minute_of_day".into(), r.minute_of_day.into());
            for (s, c) in CharState::ALL.iter().zip(r.counts) {
                m.insert(s.as_str().into(), c.into());
            }
            for (name, v) in names[names.len() - 3..].iter().zip(r.means) {
                m.insert(name.clone(), serde_json::json!((v * 100.0).round() / 100.0));
            }
            serde_json::Value::Object(m)
        })
        .collect();
    serde_json::json!({ "columns": names, "rows": objects })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_count_every_character_and_stay_in_range() {
        let mut world = World::new(4, 30);
        let mut series = Series::new(&world, 10);
        let mut out = Vec::new();
        for _ in 0..25 {
            world.step(0.0, &mut out);
            series.record(&world);
        }
        let rows = series.rows(0, u64::MAX);
        assert_eq!(rows.len(), 11, "retain + 1 rows");
        assert_eq!(rows.first().map(|r| r.tick), Some(15));
        assert_eq!(rows.last().map(|r| r.tick), Some(25));
        for r in &rows {
            assert_eq!(r.counts.iter().sum::<u32>(), 30, "{r:?}");
            assert!(r.means.iter().all(|m| (0.0..=100.0).contains(m)));
        }
        assert_eq!(series.rows(20, 21).len(), 2);
    }

    #[test]
    fn census_counts_follow_the_order_of_all_states() {
        for (i, s) in CharState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i, "{s:?}");
        }
    }

    #[test]
    fn csv_and_json_carry_the_same_columns() {
        let world = World::new(4, 5);
        let rows = vec![Row::of(&world)];
        let csv = to_csv(&rows);
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().expect("header").split(',').collect();
        assert_eq!(header, columns());
        assert_eq!(header.len(), 12);
        let values: Vec<&str> = lines.next().expect("row").split(',').collect();
        assert_eq!(values.len(), header.len());
        let json = to_json(&rows);
        let row = &json["rows"][0];
        for (name, value) in header.iter().zip(values) {
            let v = row[*name].as_f64().expect("number");
            assert_eq!(
                format!("{v}").parse::<f64>().ok(),
                value.parse::<f64>().ok(),
                "{name}"
            );
        }
    }
}
