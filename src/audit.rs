//! The audit log: every operator command, who sent it, when, and whether it worked,
//! kept across restarts (protocol 1.1, `audit {limit?}`).
//!
//! The simulation records each operator command it is asked to run, because every
//! transport's commands (WebSocket, `POST /api/command`, and so `simcast ctl`) end up
//! there: one place, whatever the route. Recording is a push into an in-memory ring (a
//! short lock, no I/O) and a `try_send` to a writer thread that appends one JSON line
//! per entry to `audit.jsonl` in the data directory, so a command never waits for the
//! disk.
//!
//! Bounds: memory keeps the last [`MAX_ENTRIES`]; on disk `audit.jsonl` is moved to
//! `audit.prev.jsonl` every [`MAX_ENTRIES`] lines (replacing the one before), so the
//! directory holds at most twice that; `args` longer than [`MAX_ARGS_BYTES`] as JSON
//! are kept as `{"omitted_bytes": n}`. A start reads both files and keeps the newest
//! [`MAX_ENTRIES`]. `--fresh` leaves the audit alone: it is about the operators, not
//! the world.
//!
//! The writer flushes after every burst, so an entry reaches the kernel moments after
//! it is recorded; graceful shutdown also waits for it ([`AuditLog::synced`]).
//!
//! Entries carry the token's label (`auth::Identity`), never the token.

use crate::protocol::Command;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// The audit file in the data directory.
pub(crate) const FILE: &str = "audit.jsonl";
/// The audit file before the last rotation.
pub(crate) const PREV_FILE: &str = "audit.prev.jsonl";
/// Entries kept in memory, answered by `audit`, and written per file before rotation:
/// the most a client can ask for (the protocol's bound).
pub(crate) const MAX_ENTRIES: usize = crate::protocol::MAX_AUDIT_ENTRIES;
/// Entries `audit` returns when no `limit` is given.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// Longest `args` (as JSON) kept as is; `schedule`'s free `data` could otherwise make
/// one entry as big as a whole client message.
pub(crate) const MAX_ARGS_BYTES: usize = 4096;
/// Entries waiting for the writer thread. When it is full (the disk is stalled), an
/// entry is kept in memory, and so still answered by `audit`, but not written; it is
/// counted in `audit_unwritten_total` and logged.
pub(crate) const QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AuditError {
    let path = path.display().to_string();
    move |source| AuditError::Io {
        action,
        path,
        source,
    }
}

/// One journaled command, as stored and as `audit` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The world's tick when the command ran (for `step`, before it).
    pub tick: u64,
    /// When it ran, Unix seconds.
    pub timestamp: f64,
    /// The label of the token that sent it.
    pub by: String,
    pub command: String,
    /// The validated arguments, `{}` when there are none.
    pub args: Value,
    pub ok: bool,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AuditEntry {
    /// An entry for `command`, before its outcome is known (`ok: false` until
    /// [`AuditEntry::finish`]).
    pub fn begin(command: &Command, by: &str, tick: u64, timestamp: f64) -> Self {
        let mut args = command.wire_args();
        let bytes = args.to_string().len();
        if bytes > MAX_ARGS_BYTES {
            args = json!({ "omitted_bytes": bytes });
        }
        AuditEntry {
            tick,
            timestamp,
            by: by.to_owned(),
            command: command.name().to_owned(),
            args,
            ok: false,
            error: None,
        }
    }

    /// Sets the outcome.
    pub fn finish(mut self, outcome: Result<(), &str>) -> Self {
        self.ok = outcome.is_ok();
        self.error = outcome.err().map(str::to_owned);
        self
    }
}

/// Whether a command goes into the audit: every operator command except `audit`
/// itself, which only reads it.
pub(crate) fn audited(command: &Command) -> bool {
    command.requires_operator() && !matches!(command, Command::Audit { .. })
}

/// What the writer thread is asked to do.
enum WriteRequest {
    Append(AuditEntry),
    /// Flush everything before this, then answer.
    Sync(tokio::sync::oneshot::Sender<()>),
}

/// The audit log's handle: clones share one log.
#[derive(Clone)]
pub struct AuditLog {
    recent: Arc<parking_lot::Mutex<VecDeque<AuditEntry>>>,
    /// `None` without a data directory (another server owns it): memory only.
    writer: Option<SyncSender<WriteRequest>>,
    unwritten: prometheus::IntCounter,
}

/// What opening the log found: the log and, for the server's log, the lines it could
/// not read.
pub struct Opened {
    pub log: AuditLog,
    pub skipped: Vec<String>,
}

impl AuditLog {
    /// Reads the entries kept in `dir` (if any) and starts the writer thread there.
    /// `dir: None` keeps the log in memory only. `unwritten` counts entries the writer
    /// had no room for.
    pub fn open(
        dir: Option<&Path>,
        unwritten: prometheus::IntCounter,
    ) -> Result<Opened, AuditError> {
        let Some(dir) = dir else {
            return Ok(Opened {
                log: AuditLog::in_memory(VecDeque::new(), None, unwritten),
                skipped: Vec::new(),
            });
        };
        let mut skipped = Vec::new();
        let mut entries = read_entries(&dir.join(PREV_FILE), &mut skipped)?;
        let current = read_entries(&dir.join(FILE), &mut skipped)?;
        let lines = current.len();
        entries.extend(current);
        while entries.len() > MAX_ENTRIES {
            entries.pop_front();
        }
        let writer = AuditWriter::open(dir, lines)?;
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("simcast-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(io("starting the audit writer for", dir))?;
        Ok(Opened {
            log: AuditLog::in_memory(entries, Some(tx), unwritten),
            skipped,
        })
    }

    fn in_memory(
        recent: VecDeque<AuditEntry>,
        writer: Option<SyncSender<WriteRequest>>,
        unwritten: prometheus::IntCounter,
    ) -> Self {
        AuditLog {
            recent: Arc::new(parking_lot::Mutex::new(recent)),
            writer,
            unwritten,
        }
    }

    /// Keeps `entry` and queues it for the disk; never blocks on I/O.
    pub fn record(&self, entry: AuditEntry) {
        {
            let mut recent = self.recent.lock();
            if recent.len() == MAX_ENTRIES {
                recent.pop_front();
            }
            recent.push_back(entry.clone());
        }
        let Some(tx) = &self.writer else { return };
        if let Err(e) = tx.try_send(WriteRequest::Append(entry)) {
            self.unwritten.inc();
            let why = match e {
                TrySendError::Full(_) => "is behind",
                TrySendError::Disconnected(_) => "is gone",
            };
            log::warn!("audit writer {why}: an entry was not written");
        }
    }

    /// Resolves once everything recorded before the call is written (at once when the
    /// log is memory-only or the writer has no room to be asked).
    pub fn synced(&self) -> impl std::future::Future<Output = ()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let asked = self
            .writer
            .as_ref()
            .is_some_and(|w| w.try_send(WriteRequest::Sync(tx)).is_ok());
        async move {
            if asked {
                let _ = rx.await;
            }
        }
    }

    /// The newest `limit` entries, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<AuditEntry> {
        let recent = self.recent.lock();
        let skip = recent.len().saturating_sub(limit);
        recent.iter().skip(skip).cloned().collect()
    }
}

/// Reads one audit file; a missing file is empty, an unreadable line is skipped and
/// named in `skipped`.
fn read_entries(
    path: &Path,
    skipped: &mut Vec<String>,
) -> Result<VecDeque<AuditEntry>, AuditError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(VecDeque::new()),
        Err(e) => return Err(io("opening", path)(e)),
    };
    let mut entries = VecDeque::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io("reading", path))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<AuditEntry>(&line) {
            Ok(entry) => entries.push_back(entry),
            // A line cut short by a crash, most likely: the rest is still good.
            Err(e) => skipped.push(format!("{}:{}: {e}", path.display(), n + 1)),
        }
        if entries.len() > MAX_ENTRIES {
            entries.pop_front();
        }
    }
    Ok(entries)
}

/// Whether a non-empty file's last byte is not a newline.
fn ends_mid_line(path: &Path) -> Result<bool, AuditError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).map_err(io("opening", path))?;
    let len = file.metadata().map_err(io("reading", path))?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))
        .and_then(|_| file.read_exact(&mut last))
        .map_err(io("reading", path))?;
    Ok(last[0] != b'\n')
}

/// The writer thread's state: the open file and how many lines it holds.
struct AuditWriter {
    dir: PathBuf,
    file: BufWriter<File>,
    lines: usize,
}

impl AuditWriter {
    fn open(dir: &Path, lines: usize) -> Result<Self, AuditError> {
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let path = dir.join(FILE);
        let mut file = Self::append_to(&path)?;
        if ends_mid_line(&path)? {
            // A line torn by a crash: the next entry must not join it.
            writeln!(file).map_err(io("writing", &path))?;
        }
        Ok(AuditWriter {
            dir: dir.to_path_buf(),
            file,
            lines,
        })
    }

    fn append_to(path: &Path) -> Result<BufWriter<File>, AuditError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io("opening", path))?;
        Ok(BufWriter::new(file))
    }

    /// Writes what arrives; after each burst, flushes (so a killed process loses
    /// nothing it was told about before the burst).
    fn run(mut self, rx: Receiver<WriteRequest>) {
        while let Ok(first) = rx.recv() {
            let mut waiting = Vec::new();
            for req in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                match req {
                    WriteRequest::Append(entry) => self.log_error(|w| w.append(&entry)),
                    WriteRequest::Sync(done) => waiting.push(done),
                }
            }
            self.log_error(|w| w.flush());
            for done in waiting {
                let _ = done.send(());
            }
        }
        self.log_error(|w| w.flush());
    }

    fn log_error(&mut self, f: impl FnOnce(&mut Self) -> Result<(), AuditError>) {
        if let Err(e) = f(self) {
            log::error!("audit: {e}");
        }
    }

    fn flush(&mut self) -> Result<(), AuditError> {
        let path = self.dir.join(FILE);
        self.file.flush().map_err(io("writing", &path))
    }

    fn append(&mut self, entry: &AuditEntry) -> Result<(), AuditError> {
        if self.lines >= MAX_ENTRIES {
            self.rotate()?;
        }
        let path = self.dir.join(FILE);
        let line = serde_json::to_string(entry).unwrap_or_default();
        writeln!(self.file, "{line}").map_err(io("writing", &path))?;
        self.lines += 1;
        Ok(())
    }

    /// `audit.jsonl` becomes `audit.prev.jsonl`; a new, empty `audit.jsonl` follows.
    fn rotate(&mut self) -> Result<(), AuditError> {
        self.flush()?;
        let (current, prev) = (self.dir.join(FILE), self.dir.join(PREV_FILE));
        fs::rename(&current, &prev).map_err(io("rotating", &current))?;
        self.file = Self::append_to(&current)?;
        self.lines = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> prometheus::IntCounter {
        prometheus::IntCounter::new("unwritten", "test").expect("counter")
    }

    /// A fresh directory, removed when the guard drops (at the end of the test).
    fn temp_dir(tag: &str) -> (tempfile::TempDir, PathBuf) {
        let guard = tempfile::Builder::new()
            .prefix(&format!("simcast-audit-{tag}-"))
            .tempdir()
            .expect("dir");
        let path = guard.path().to_path_buf();
        (guard, path)
    }

    fn entry(n: u64) -> AuditEntry {
        AuditEntry::begin(&Command::Step { ticks: n }, "alice", n, 1.5).finish(Ok(()))
    }

    /// Lines in `dir/name` (0 when it does not exist).
    fn lines(dir: &Path, name: &str) -> usize {
        fs::read_to_string(dir.join(name))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// Waits until the writer thread has left `prev` and `current` lines.
    fn wait_for(dir: &Path, prev: usize, current: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while (lines(dir, PREV_FILE), lines(dir, FILE)) != (prev, current) {
            assert!(std::time::Instant::now() < deadline, "writer too slow");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn entries_carry_args_and_outcome() {
        let e = AuditEntry::begin(&Command::SetSpeed { tick_rate: 5.0 }, "bob", 7, 2.0)
            .finish(Err("nope"));
        let v = serde_json::to_value(&e).expect("json");
        assert_eq!(
            v,
            json!({"tick": 7, "timestamp": 2.0, "by": "bob", "command": "set_speed",
                   "args": {"tick_rate": 5.0}, "ok": false, "error": "nope"})
        );
        let ok = serde_json::to_value(entry(3)).expect("json");
        assert!(ok.get("error").is_none(), "{ok}");
        let big = Command::Schedule {
            event_type: "x".into(),
            in_ticks: 1,
            data: Some(json!("y".repeat(MAX_ARGS_BYTES))),
        };
        let e = AuditEntry::begin(&big, "bob", 0, 0.0);
        assert!(e.args["omitted_bytes"]
            .as_u64()
            .is_some_and(|n| n > MAX_ARGS_BYTES as u64));
        assert!(!audited(&Command::Audit { limit: None }));
        assert!(audited(&Command::Save {}) && !audited(&Command::Metrics {}));
    }

    #[test]
    fn memory_only_keeps_the_newest_oldest_first() {
        let log = AuditLog::open(None, counter()).expect("open").log;
        for n in 0..(MAX_ENTRIES as u64 + 5) {
            log.record(entry(n));
        }
        let all = log.recent(usize::MAX);
        assert_eq!(all.len(), MAX_ENTRIES);
        assert_eq!(all[0].tick, 5);
        let last: Vec<u64> = log.recent(2).iter().map(|e| e.tick).collect();
        assert_eq!(last, vec![MAX_ENTRIES as u64 + 3, MAX_ENTRIES as u64 + 4]);
    }

    #[test]
    fn survives_reopening_rotates_and_skips_a_torn_line() {
        let (_tmp, dir) = temp_dir("reopen");
        let total = 2 * MAX_ENTRIES + 10;
        {
            let unwritten = counter();
            let log = AuditLog::open(Some(&dir), unwritten.clone())
                .expect("open")
                .log;
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            // In pieces smaller than the queue, each waited for: the test is about
            // files, not about a writer that falls behind.
            for chunk in (0..total as u64).collect::<Vec<_>>().chunks(QUEUE / 2) {
                chunk.iter().for_each(|&n| log.record(entry(n)));
                rt.block_on(log.synced());
            }
            assert_eq!(unwritten.get(), 0);
            // Two rotations: the second replaced the first's prev file.
            wait_for(&dir, MAX_ENTRIES, 10);
        }
        // A last line torn by a crash.
        let path = dir.join(FILE);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        write!(f, "{{\"tick\":").expect("write");
        let prev = fs::read_to_string(dir.join(PREV_FILE)).expect("prev");
        assert_eq!(
            prev.lines().count(),
            MAX_ENTRIES,
            "rotated at MAX_ENTRIES lines"
        );

        let opened = AuditLog::open(Some(&dir), counter()).expect("reopen");
        assert_eq!(opened.skipped.len(), 1, "{:?}", opened.skipped);
        let all = opened.log.recent(usize::MAX);
        assert_eq!(all.len(), MAX_ENTRIES);
        assert_eq!(all.last().map(|e| e.tick), Some(total as u64 - 1));
        assert_eq!(all[0].tick, (total - MAX_ENTRIES) as u64);
        // New entries start on a line of their own, after the torn one.
        opened.log.record(entry(7777));
        wait_for(&dir, MAX_ENTRIES, 12);
        let reread = AuditLog::open(Some(&dir), counter()).expect("again");
        assert_eq!(reread.log.recent(1)[0].tick, 7777);
        assert_eq!(reread.skipped.len(), 1);
        let _ = fs::remove_dir_all(&dir);
    }
}
