//! Saving the world to disk for the `save` command.
//!
//! A save writes the snapshot as JSON to `<dir>/world.json` atomically: a temporary file
//! in the same directory, fsync, then rename over the old one (kept as
//! `world.prev.json`), so a crash mid-save never leaves a torn file.

use crate::protocol::Snapshot;
use crate::sim::actor::Saver;
use serde_json::{json, Value};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("encoding snapshot: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The default data directory: `$XDG_DATA_HOME/simcast`, else
/// `$HOME/.local/share/simcast`, else `simcast-data` under the system temp dir.
pub fn default_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("simcast");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/simcast");
    }
    std::env::temp_dir().join("simcast-data")
}

#[derive(Debug, Clone)]
pub struct FileSaver {
    dir: PathBuf,
}

impl FileSaver {
    pub fn new(dir: PathBuf) -> Self {
        FileSaver { dir }
    }

    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PersistenceError {
        let path = path.display().to_string();
        move |source| PersistenceError::Io {
            action,
            path,
            source,
        }
    }

    pub fn write(&self, snapshot: &Snapshot) -> Result<PathBuf, PersistenceError> {
        fs::create_dir_all(&self.dir).map_err(Self::io("creating", &self.dir))?;
        let target = self.dir.join("world.json");
        let tmp = self.dir.join("world.json.tmp");
        let bytes = serde_json::to_vec(snapshot)?;
        {
            let mut file = fs::File::create(&tmp).map_err(Self::io("creating", &tmp))?;
            file.write_all(&bytes).map_err(Self::io("writing", &tmp))?;
            file.sync_all().map_err(Self::io("syncing", &tmp))?;
        }
        if target.exists() {
            let prev = self.dir.join("world.prev.json");
            fs::rename(&target, &prev).map_err(Self::io("keeping previous", &prev))?;
        }
        fs::rename(&tmp, &target).map_err(Self::io("renaming", &target))?;
        if let Ok(dir) = fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(target)
    }
}

impl Saver for FileSaver {
    fn save(&self, snapshot: &Snapshot) -> Result<Value, String> {
        let path = self.write(snapshot).map_err(|e| e.to_string())?;
        log::info!(
            "world saved at tick {} to {}",
            snapshot.tick,
            path.display()
        );
        Ok(json!({ "path": path.display().to_string(), "tick": snapshot.tick }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_and_keeps_previous() {
        let dir = std::env::temp_dir().join(format!("simcast-save-{}", std::process::id()));
        let saver = FileSaver::new(dir.clone());
        let mut snap = Snapshot {
            tick: 1,
            paused: false,
            tick_rate: 10.0,
            seed: 1,
            characters: vec![],
            locations: vec![],
            seq: 0,
            resync: false,
        };
        saver.write(&snap).expect("first save");
        snap.tick = 2;
        saver.write(&snap).expect("second save");
        let now: Value =
            serde_json::from_slice(&fs::read(dir.join("world.json")).expect("read")).expect("json");
        let prev: Value =
            serde_json::from_slice(&fs::read(dir.join("world.prev.json")).expect("read"))
                .expect("json");
        assert_eq!(
            (now["tick"].as_u64(), prev["tick"].as_u64()),
            (Some(2), Some(1))
        );
        assert!(!dir.join("world.json.tmp").exists());
        let _ = fs::remove_dir_all(dir);
    }
}
