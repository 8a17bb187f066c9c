//! The persistence writer: one thread that owns the journal and writes snapshots, so the
//! simulation's tick never waits for the disk.
//!
//! Requests arrive in order over a bounded channel ([`QUEUE`] entries). The simulation
//! uses `try_send`; when the queue is full (the disk is stalled) it keeps entries in its
//! own backlog and stops ticking until they are written — the world never gets ahead
//! of its journal by more than that.

use super::{
    io, write_atomic, Journaled, PersistenceError, SavedWorld, JOURNAL, PREV_JOURNAL,
    PREV_SNAPSHOT, SNAPSHOT,
};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

/// Requests the writer may hold: about 13 minutes of ticks at 10 Hz.
pub(crate) const QUEUE: usize = 8192;

/// Result of a snapshot, for whoever asked (the `save` command, shutdown).
pub(crate) type SnapshotDone = tokio::sync::oneshot::Sender<Result<PathBuf, String>>;

pub enum WriteRequest<S: Journaled> {
    Entry(S::Entry),
    /// Write this snapshot, then start the journal it names.
    Snapshot {
        saved: Box<SavedWorld<S>>,
        done: Option<SnapshotDone>,
    },
}

/// The simulation's end of the writer.
pub struct Writer<S: Journaled> {
    tx: SyncSender<WriteRequest<S>>,
}

impl<S: Journaled> Writer<S> {
    /// Writes `first` as the base snapshot (synchronously: the server does not start
    /// without one), then starts the writer thread on a fresh journal.
    pub fn start(dir: &Path, first: &SavedWorld<S>) -> Result<Writer<S>, PersistenceError> {
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let mut thread = WriterThread {
            dir: dir.to_path_buf(),
            journal: None,
        };
        thread.snapshot(first)?;
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("simcast-persist".into())
            .spawn(move || thread.run(rx))
            .map_err(io("starting the writer for", dir))?;
        Ok(Writer { tx })
    }

    /// Queues a request; gives it back when the queue is full.
    pub fn try_send(&self, req: WriteRequest<S>) -> Result<(), WriteRequest<S>> {
        match self.tx.try_send(req) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(r)) => Err(r),
            Err(TrySendError::Disconnected(r)) => {
                log::error!("persistence writer is gone");
                Err(r)
            }
        }
    }
}

struct WriterThread {
    dir: PathBuf,
    journal: Option<BufWriter<File>>,
}

impl WriterThread {
    fn run<S: Journaled>(mut self, rx: Receiver<WriteRequest<S>>) {
        while let Ok(first) = rx.recv() {
            self.handle(first);
            // Take whatever else is queued, then hand it all to the kernel in one go:
            // after `flush` the entries survive the process being killed.
            while let Ok(next) = rx.try_recv() {
                self.handle(next);
            }
            if let Some(j) = self.journal.as_mut() {
                if let Err(e) = j.flush() {
                    log::error!("writing the journal: {e}");
                }
            }
        }
        if let Some(mut j) = self.journal.take() {
            let _ = j.flush();
            let _ = j.get_ref().sync_all();
        }
    }

    fn handle<S: Journaled>(&mut self, req: WriteRequest<S>) {
        match req {
            WriteRequest::Entry(entry) => {
                let Some(j) = self.journal.as_mut() else {
                    return;
                };
                let line = serde_json::to_string(&entry).unwrap_or_default();
                if let Err(e) = writeln!(j, "{line}") {
                    log::error!("writing the journal: {e}");
                }
            }
            WriteRequest::Snapshot { saved, done } => {
                let result = self
                    .snapshot(&saved)
                    .map(|()| self.dir.join(SNAPSHOT))
                    .map_err(|e| e.to_string());
                if let Err(e) = &result {
                    log::error!("saving the world: {e}");
                }
                if let Some(done) = done {
                    let _ = done.send(result);
                }
            }
        }
    }

    /// Snapshot, then journal rotation. Order matters for crash safety: the new
    /// snapshot names journal k+1; until journal k+1 exists, journal k is recognized
    /// (by its id) as already folded into the snapshot.
    fn snapshot<S: Journaled>(&mut self, saved: &SavedWorld<S>) -> Result<(), PersistenceError> {
        if let Some(mut j) = self.journal.take() {
            j.flush().map_err(io("writing", &self.dir.join(JOURNAL)))?;
            let _ = j.get_ref().sync_all();
        }
        let bytes = serde_json::to_vec(saved)?;
        let target = self.dir.join(SNAPSHOT);
        let tmp_target = self.dir.join("world.json.next");
        write_atomic(&tmp_target, &bytes, true)?;
        if target.exists() {
            let prev = self.dir.join(PREV_SNAPSHOT);
            fs::rename(&target, &prev).map_err(io("keeping", &prev))?;
        }
        fs::rename(&tmp_target, &target).map_err(io("renaming", &target))?;
        let journal = self.dir.join(JOURNAL);
        if journal.exists() {
            let prev = self.dir.join(PREV_JOURNAL);
            fs::rename(&journal, &prev).map_err(io("keeping", &prev))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&journal)
            .map_err(io("creating", &journal))?;
        writeln!(file, "{{\"journal\":{}}}", saved.journal_id).map_err(io("writing", &journal))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.journal = Some(BufWriter::new(file));
        Ok(())
    }
}
