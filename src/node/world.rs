//! Restoring a standalone or sim node's world at start: the data directory's saved
//! world (or a new one from the config), its journal writer and its audit log.

use super::RunError;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::{audit, persistence, protocol, sim};

/// Restores the world from the data directory (or makes a new one), writes the base
/// snapshot and starts the journal. Returns the state, its persistence, and the seq to
/// continue from (above every seq issued before).
pub(super) fn restore_world(config: &Config) -> Result<RestoredWorld, RunError> {
    let store = persistence::Store::new(config.data_dir());
    let lock = match store.lock() {
        Ok(lock) => lock,
        Err(persistence::PersistenceError::InUse(dir)) => {
            // Another server owns that world. Refusing to start would make a second
            // instance (a test, a demo) impossible without a config change; running
            // without persistence touches nobody's data. Said loudly, once.
            log::warn!(
                "data directory {dir} is in use by another simcast server: this one runs a new \
                 world WITHOUT persistence (set persistence.dir to keep it)"
            );
            return Ok(RestoredWorld {
                state: new_state(config),
                persistence: None,
                seq_base: 0,
                store: None,
                lock: None,
            });
        }
        Err(e) => return Err(e.into()),
    };
    if config.persistence.fresh {
        if let Some(aside) = store.discard()? {
            log::warn!("--fresh: previous data moved to {}", aside.display());
        }
    }
    let (state, journal_id) = load_or_create(&store, config)?;
    let seq_base = store.read_seq()?;
    let base = persistence::SavedWorld {
        format: persistence::FORMAT,
        journal_id,
        saved_at: protocol::now_ts(),
        state: state.clone(),
    };
    let writer = persistence::writer::Writer::start(store.dir(), &base)?;
    let persistence = sim::actor::Persistence {
        writer,
        journal_id,
        snapshot_interval_ticks: config.persistence.snapshot_interval_ticks,
    };
    Ok(RestoredWorld {
        state,
        persistence: Some(persistence),
        seq_base,
        store: Some(store),
        lock: Some(lock),
    })
}

/// A new world from the config's seed, size and tick rate.
fn new_state(config: &Config) -> sim::SimState {
    sim::SimState::new(config.sim.seed, config.sim.characters, config.sim.tick_rate)
}

/// The saved world (replaying its journal), or a new one; with the next journal id.
/// Names every value the restored world keeps that differs from the config or flags.
fn load_or_create(
    store: &persistence::Store,
    config: &Config,
) -> Result<(sim::SimState, u64), RunError> {
    Ok(match store.restore::<sim::SimState>(None)? {
        Some(r) => {
            for note in &r.notes {
                log::warn!("restore: {note}");
            }
            log::info!(
                "restored the world from {} at tick {} ({} journal entries replayed{})",
                store.dir().display(),
                r.state.world.tick(),
                r.replayed,
                if r.state.paused { ", paused" } else { "" }
            );
            let sim = &config.sim;
            let kept = r.state.differences(sim.seed, sim.characters, sim.tick_rate);
            if !kept.is_empty() {
                log::warn!(
                    "the restored world keeps {}; start with --fresh to begin a new world \
                     with the asked values (the old data is moved aside, not deleted)",
                    kept.join(", ")
                );
            }
            (r.state, r.next_journal_id)
        }
        None => {
            log::info!(
                "new world (seed {}) in {}",
                config.sim.seed,
                store.dir().display()
            );
            (new_state(config), 1)
        }
    })
}

/// The audit log in the data directory (memory only when another server owns it).
pub(super) fn open_audit(
    store: Option<&persistence::Store>,
    metrics: &Metrics,
) -> Result<audit::AuditLog, RunError> {
    let opened = audit::AuditLog::open(store.map(|s| s.dir()), metrics.audit_unwritten.clone())?;
    for line in &opened.skipped {
        log::warn!("audit log: skipped an unreadable entry at {line}");
    }
    Ok(opened.log)
}

/// What `restore_world` hands to `run`.
pub(super) struct RestoredWorld {
    pub(super) state: sim::SimState,
    /// `None` when the data directory belongs to another running server.
    pub(super) persistence: Option<sim::actor::Persistence>,
    pub(super) seq_base: u64,
    pub(super) store: Option<persistence::Store>,
    /// The data directory's lock, held as long as the server runs.
    pub(super) lock: Option<std::fs::File>,
}
