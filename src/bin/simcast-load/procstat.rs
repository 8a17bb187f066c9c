//! Sampling a process's RSS and CPU time from `/proc` (Linux), through `procfs`.

use std::time::Instant;

/// One reading of `/proc/PID/{stat,status}`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    pub at: Instant,
    /// User + system CPU time, seconds.
    pub cpu_s: f64,
    pub rss_kib: u64,
}

pub(crate) fn read(pid: u32) -> Option<Reading> {
    let process = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?;
    let stat = process.stat().ok()?;
    let rss_kib = process.status().ok()?.vmrss?;
    let ticks = procfs::ticks_per_second().max(1) as f64;
    Some(Reading {
        at: Instant::now(),
        cpu_s: (stat.utime + stat.stime) as f64 / ticks,
        rss_kib,
    })
}

/// CPU use between two readings, in percent of one core.
pub(crate) fn cpu_pct(a: &Reading, b: &Reading) -> f64 {
    let wall = b.at.duration_since(a.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    100.0 * (b.cpu_s - a.cpu_s) / wall
}

/// Running summary of a process's readings.
#[derive(Debug, Default, Clone)]
pub(crate) struct Track {
    pub first: Option<Reading>,
    pub last: Option<Reading>,
    pub rss_max_kib: u64,
    pub cpu_max_pct: f64,
    /// Readings from when the measured phase started (for its average CPU).
    pub measure_start: Option<Reading>,
}

impl Track {
    pub(crate) fn push(&mut self, r: Reading) -> Option<f64> {
        let pct = self.last.map(|l| cpu_pct(&l, &r));
        if let Some(p) = pct {
            self.cpu_max_pct = self.cpu_max_pct.max(p);
        }
        self.first.get_or_insert(r);
        self.rss_max_kib = self.rss_max_kib.max(r.rss_kib);
        self.last = Some(r);
        pct
    }

    /// Average CPU % (of one core) from `a` to the last reading.
    fn avg_since(&self, a: Option<Reading>) -> Option<f64> {
        match (a, self.last) {
            (Some(a), Some(b)) => Some(cpu_pct(&a, &b)),
            _ => None,
        }
    }

    /// Average CPU % (of one core) over the measured phase.
    pub(crate) fn cpu_avg_measured(&self) -> Option<f64> {
        self.avg_since(self.measure_start)
    }

    pub(crate) fn json(&self, pid: u32) -> serde_json::Value {
        let avg = |a: Option<Reading>| self.avg_since(a);
        serde_json::json!({
            "pid": pid,
            "rss_kib_start": self.first.map(|r| r.rss_kib),
            "rss_kib_end": self.last.map(|r| r.rss_kib),
            "rss_kib_max": self.rss_max_kib,
            "cpu_pct_avg": avg(self.first),
            "cpu_pct_avg_measured": avg(self.measure_start),
            "cpu_pct_max": self.cpu_max_pct,
        })
    }
}
