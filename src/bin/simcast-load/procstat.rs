//! Sampling a process's RSS and CPU time from `/proc` (Linux).

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
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ')'.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(Reading {
        at: Instant::now(),
        cpu_s: (utime + stime) / clock_ticks(),
        rss_kib,
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    #[allow(unsafe_code)]
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
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
