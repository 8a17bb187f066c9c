//! Persistence: the world survives restarts and crashes, and any past tick can be rebuilt.
//!
//! On disk, in the data directory:
//! - `world.json`: the last snapshot — the whole world state (for the simulation's
//!   `SimState`: its RNG position, scheduled events, pause state and breakpoints
//!   included) and the id of the journal that continues it. Written atomically
//!   (temporary file, fsync, rename); the one before is kept as `world.prev.json`.
//! - `journal.jsonl`: everything that happened since that snapshot, in order — ticks
//!   and state-changing commands — one JSON object per line after a `{"journal": id}`
//!   header. The previous journal is kept as `journal.prev.jsonl`, so `world.prev.json`
//!   plus both journals rebuilds the latest state even if `world.json` is damaged.
//! - `seq`: a high-water mark above every batch `seq` ever issued (reserved in blocks),
//!   so `seq` keeps rising across restarts and no client mistakes new batches for ones
//!   it has seen.
//!
//! The journal is written with `write(2)` at every tick (by the writer thread, never by
//! the tick itself), so a killed process loses nothing; fsync happens at each snapshot,
//! so a machine crash loses at most the ticks since the last snapshot. Since the
//! simulation is deterministic, "what happened" is all it takes: replaying the journal
//! ([`Journaled::replay`]) rebuilds the exact state (same state hash).
//!
//! This module knows files, not worlds: it stores any [`Journaled`] state and its
//! journal entries, so the engine depends on it and never the other way round.

pub(crate) mod writer;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind};
use std::path::{Path, PathBuf};

/// Snapshot format version; a file with another version is refused, not guessed at.
pub const FORMAT: u32 = 1;
pub const SNAPSHOT: &str = "world.json";
pub const PREV_SNAPSHOT: &str = "world.prev.json";
pub const JOURNAL: &str = "journal.jsonl";
pub const PREV_JOURNAL: &str = "journal.prev.jsonl";
pub const SEQ: &str = "seq";
/// How far ahead the `seq` high-water mark is reserved: one small write per this many
/// batches (about 100 s at 10 ticks/s).
pub const SEQ_BLOCK: u64 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("encoding the world: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("{path} is unreadable: {problem}")]
    Corrupt { path: String, problem: String },
    #[error("data directory {0} is in use by another simcast server")]
    InUse(String),
}

pub(crate) fn io(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> PersistenceError {
    let path = path.display().to_string();
    move |source| PersistenceError::Io {
        action,
        path,
        source,
    }
}

/// A state that can be saved whole and rebuilt by replaying its journal on top.
pub trait Journaled: Serialize + DeserializeOwned + Send + 'static {
    /// One line of the journal: what happened since the snapshot.
    type Entry: Serialize + DeserializeOwned + Send + 'static;

    /// Applies `entries` in order, stopping at the end of tick `until` when given;
    /// `false` once it stopped there (later journals are then not replayed).
    fn replay(&mut self, entries: &[Self::Entry], until: Option<u64>) -> bool;
}

/// A snapshot file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "S: Journaled")]
pub struct SavedWorld<S> {
    pub format: u32,
    /// The journal that continues this snapshot.
    pub journal_id: u64,
    /// Unix seconds.
    pub saved_at: f64,
    pub state: S,
}

/// The state rebuilt at start.
#[derive(Debug)]
pub struct Restored<S> {
    pub state: S,
    /// Id for the next journal (above every journal seen).
    pub next_journal_id: u64,
    /// Journal entries replayed on top of the snapshot.
    pub replayed: usize,
    /// What the restore had to work around, for the log.
    pub notes: Vec<String>,
}

/// The data directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// A journal file: its id and entries.
struct Journal<E> {
    id: u64,
    entries: Vec<E>,
}

#[derive(Deserialize)]
struct JournalHeader {
    journal: u64,
}

impl Store {
    pub fn new(dir: PathBuf) -> Self {
        Store { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read_snapshot<S: Journaled>(
        &self,
        name: &str,
    ) -> Result<Option<SavedWorld<S>>, PersistenceError> {
        let path = self.path(name);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading", &path)(e)),
        };
        let saved: SavedWorld<S> =
            serde_json::from_slice(&text).map_err(|e| PersistenceError::Corrupt {
                path: path.display().to_string(),
                problem: e.to_string(),
            })?;
        if saved.format != FORMAT {
            return Err(PersistenceError::Corrupt {
                path: path.display().to_string(),
                problem: format!("format {} is not {FORMAT}", saved.format),
            });
        }
        Ok(Some(saved))
    }

    /// Reads a journal. A torn last line (the process died mid-write) is dropped with a
    /// note; a bad line anywhere else means the file is damaged.
    fn read_journal<E: DeserializeOwned>(
        &self,
        name: &str,
        notes: &mut Vec<String>,
    ) -> Result<Option<Journal<E>>, PersistenceError> {
        let path = self.path(name);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading", &path)(e)),
        };
        let corrupt = |problem: String| PersistenceError::Corrupt {
            path: path.display().to_string(),
            problem,
        };
        let lines: Vec<String> = BufReader::new(file)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(io("reading", &path))?;
        let Some((header, rest)) = lines.split_first() else {
            return Ok(None); // created, header not yet written: nothing in it
        };
        let header: JournalHeader =
            serde_json::from_str(header).map_err(|e| corrupt(format!("header: {e}")))?;
        let mut entries = Vec::with_capacity(rest.len());
        for (i, line) in rest.iter().enumerate() {
            match serde_json::from_str::<E>(line) {
                Ok(e) => entries.push(e),
                Err(_) if i + 1 == rest.len() => {
                    notes.push(format!("{}: dropped a torn last line", path.display()));
                }
                Err(e) => return Err(corrupt(format!("line {}: {e}", i + 2))),
            }
        }
        Ok(Some(Journal {
            id: header.journal,
            entries,
        }))
    }

    /// Rebuilds the latest state (or the state at tick `until`); `None` when the
    /// directory holds no world yet. Errors say which file is damaged and how.
    pub fn restore<S: Journaled>(
        &self,
        until: Option<u64>,
    ) -> Result<Option<Restored<S>>, PersistenceError> {
        let mut notes = Vec::new();
        let latest = match self.read_snapshot(SNAPSHOT) {
            Ok(Some(saved)) => Ok(saved),
            Ok(None) if !self.path(PREV_SNAPSHOT).exists() && !self.path(JOURNAL).exists() => {
                return Ok(None);
            }
            // Missing while the rest is there: a crash between the two renames of a
            // snapshot rotation, or a deleted file. The fallback below covers both.
            Ok(None) => Err(PersistenceError::Corrupt {
                path: self.path(SNAPSHOT).display().to_string(),
                problem: "missing".into(),
            }),
            Err(e) => Err(e),
        };
        let (saved, journals) = match latest {
            Ok(saved) => (saved, vec![JOURNAL]),
            Err(latest) => match self.read_snapshot(PREV_SNAPSHOT) {
                Ok(Some(prev)) => {
                    notes.push(format!(
                        "{latest}; restored from {PREV_SNAPSHOT} and both journals instead"
                    ));
                    (prev, vec![PREV_JOURNAL, JOURNAL])
                }
                Ok(None) => return Err(latest),
                Err(prev) => {
                    return Err(PersistenceError::Corrupt {
                        path: self.dir.display().to_string(),
                        problem: format!("{latest}; and the fallback: {prev}"),
                    })
                }
            },
        };
        // Chain the journals that continue this snapshot: ids must follow on.
        let mut state: S = saved.state;
        let mut expected = saved.journal_id;
        let mut replayed = 0;
        let mut complete = true;
        for name in journals {
            let Some(journal) = self.read_journal::<S::Entry>(name, &mut notes)? else {
                continue;
            };
            if journal.id + 1 == expected {
                continue; // already folded into the snapshot (a crash mid-rotation)
            }
            if journal.id != expected {
                return Err(PersistenceError::Corrupt {
                    path: self.path(name).display().to_string(),
                    problem: format!(
                        "journal {} does not continue snapshot journal {expected}",
                        journal.id
                    ),
                });
            }
            if complete {
                complete = state.replay(&journal.entries, until);
                replayed += journal.entries.len();
            }
            expected += 1;
        }
        Ok(Some(Restored {
            state,
            next_journal_id: expected.max(saved.journal_id + 1),
            replayed,
            notes,
        }))
    }

    /// `--fresh`: moves every data file aside (never deletes) and returns where.
    pub fn discard(&self) -> Result<Option<PathBuf>, PersistenceError> {
        let names = [SNAPSHOT, PREV_SNAPSHOT, JOURNAL, PREV_JOURNAL, SEQ];
        if !names.iter().any(|n| self.path(n).exists()) {
            return Ok(None);
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let aside = self.dir.join(format!("discarded-{stamp}"));
        fs::create_dir_all(&aside).map_err(io("creating", &aside))?;
        for n in names {
            let from = self.path(n);
            if from.exists() {
                fs::rename(&from, aside.join(n)).map_err(io("moving aside", &from))?;
            }
        }
        Ok(Some(aside))
    }

    /// Takes the directory's lock (`flock` on `lock`), so that two servers never write
    /// one world. The lock is held while the returned file stays open.
    pub fn lock(&self) -> Result<fs::File, PersistenceError> {
        fs::create_dir_all(&self.dir).map_err(io("creating", &self.dir))?;
        let path = self.path("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        // std's exclusive, non-blocking file lock (flock on Unix), released on close.
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(fs::TryLockError::WouldBlock) => {
                Err(PersistenceError::InUse(self.dir.display().to_string()))
            }
            Err(fs::TryLockError::Error(e)) => Err(io("locking", &path)(e)),
        }
    }

    /// The `seq` high-water mark (0 when none was written).
    pub fn read_seq(&self) -> Result<u64, PersistenceError> {
        let path = self.path(SEQ);
        match fs::read_to_string(&path) {
            Ok(t) => t.trim().parse().map_err(|e| PersistenceError::Corrupt {
                path: path.display().to_string(),
                problem: format!("{e}"),
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io("reading", &path)(e)),
        }
    }

    /// A [`SeqMark`] that keeps the high-water mark above every seq issued from `seq`.
    pub fn seq_mark(&self, seq: u64) -> SeqMark {
        SeqMark {
            path: self.path(SEQ),
            reserved: seq,
        }
    }
}

/// Keeps `seq` on disk ahead of every issued batch, one small atomic write per
/// [`SEQ_BLOCK`] batches. Used by the broker after each flush.
#[derive(Debug)]
pub struct SeqMark {
    path: PathBuf,
    reserved: u64,
}

impl SeqMark {
    pub fn observe(&mut self, seq: u64) {
        if seq < self.reserved {
            return;
        }
        let next = seq + SEQ_BLOCK;
        match write_atomic(&self.path, next.to_string().as_bytes(), false) {
            Ok(()) => self.reserved = next,
            Err(e) => log::error!("cannot record the seq high-water mark: {e}"),
        }
    }
}

/// Writes a file atomically: temporary file in the same directory, optional fsync,
/// rename over the target.
pub fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> Result<(), PersistenceError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut file = fs::File::create(&tmp).map_err(io("creating", &tmp))?;
        file.write_all(bytes).map_err(io("writing", &tmp))?;
        if sync {
            file.sync_all().map_err(io("syncing", &tmp))?;
        }
    }
    fs::rename(&tmp, path).map_err(io("renaming", path))
}

#[cfg(test)]
mod tests {
    //! With the simulation's state as the stored world: the one the server keeps.
    use super::*;
    use crate::protocol::Command;
    use crate::sim::{JournalEntry, SimState};

    /// A fresh directory, removed when the guard drops (at the end of the test).
    fn temp_dir(tag: &str) -> (tempfile::TempDir, PathBuf) {
        let guard = tempfile::Builder::new()
            .prefix(&format!("simcast-store-{tag}-"))
            .tempdir()
            .expect("dir");
        let path = guard.path().to_path_buf();
        (guard, path)
    }

    fn write_journal(dir: &Path, name: &str, id: u64, entries: &[JournalEntry]) {
        let mut text = format!("{{\"journal\":{id}}}\n");
        for e in entries {
            text.push_str(&serde_json::to_string(e).expect("json"));
            text.push('\n');
        }
        fs::write(dir.join(name), text).expect("write");
    }

    fn save(dir: &Path, name: &str, state: &SimState, journal_id: u64) {
        let saved = SavedWorld {
            format: FORMAT,
            journal_id,
            saved_at: 0.0,
            state: state.clone(),
        };
        fs::write(dir.join(name), serde_json::to_vec(&saved).expect("json")).expect("write");
    }

    #[test]
    fn empty_dir_restores_nothing() {
        let (_tmp, dir) = temp_dir("empty");
        assert!(Store::new(dir)
            .restore::<SimState>(None)
            .expect("ok")
            .is_none());
    }

    #[test]
    fn snapshot_plus_journal_and_fallback_to_previous() {
        let (_tmp, dir) = temp_dir("chain");
        let mut live = SimState::new(1, 20, 10.0);
        let first = live.clone();
        let e1 = vec![
            JournalEntry::Ticks { ticks: 30 },
            JournalEntry::command(&Command::Pause {}).expect("state-changing"),
        ];
        live.replay(&e1, None);
        let second = live.clone();
        let e2 = vec![JournalEntry::Ticks { ticks: 12 }];
        live.replay(&e2, None);

        save(&dir, PREV_SNAPSHOT, &first, 1);
        write_journal(&dir, PREV_JOURNAL, 1, &e1);
        save(&dir, SNAPSHOT, &second, 2);
        write_journal(&dir, JOURNAL, 2, &e2);
        // A torn last line is dropped.
        let mut j = fs::read_to_string(dir.join(JOURNAL)).expect("read");
        j.push_str("{\"tic");
        fs::write(dir.join(JOURNAL), j).expect("write");

        let store = Store::new(dir.clone());
        let r = store.restore::<SimState>(None).expect("ok").expect("some");
        assert_eq!(r.state.world.state_hash(), live.world.state_hash());
        assert!(r.state.paused);
        assert_eq!(r.notes.len(), 1);

        // world.json damaged: the previous snapshot and both journals rebuild it all.
        fs::write(dir.join(SNAPSHOT), b"{ not json").expect("write");
        let r = store.restore::<SimState>(None).expect("ok").expect("some");
        assert_eq!(r.state.world.state_hash(), live.world.state_hash());
        assert!(r.notes.iter().any(|n| n.contains("world.json")));

        // Both damaged: a clear error, nothing started over.
        fs::write(dir.join(PREV_SNAPSHOT), b"junk").expect("write");
        let err = store
            .restore::<SimState>(None)
            .expect_err("refuses")
            .to_string();
        assert!(
            err.contains("world.json") && err.contains("world.prev.json"),
            "{err}"
        );

        // --fresh moves the files aside.
        let aside = store.discard().expect("ok").expect("moved");
        assert!(aside.join(SNAPSHOT).exists());
        assert!(store.restore::<SimState>(None).expect("ok").is_none());
    }

    #[test]
    fn seq_mark_reserves_ahead() {
        let (_tmp, dir) = temp_dir("seq");
        let store = Store::new(dir);
        assert_eq!(store.read_seq().expect("ok"), 0);
        let mut mark = store.seq_mark(0);
        mark.observe(1);
        assert_eq!(store.read_seq().expect("ok"), 1 + SEQ_BLOCK);
        mark.observe(5);
        assert_eq!(store.read_seq().expect("ok"), 1 + SEQ_BLOCK);
    }
}
