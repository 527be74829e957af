//! `engine.json`: our record of the engine process we started, so that a
//! later supervisor finds it again (and never mistakes a recycled pid).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sys;

/// Our record of the engine process we started: pid plus start time,
/// which together name one process (a recycled pid has another start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub pid: i32,
    pub start: u64,
}

impl Record {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("engine.json")
    }
    pub fn of(pid: i32) -> Option<Record> {
        sys::proc_info(pid).map(|p| Record {
            pid,
            start: p.start,
        })
    }
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).expect("record serializes");
        super::write_runtime(&Record::path(state_dir), &json, 0o600)
    }
    /// Our record, read only from the state directory this supervisor
    /// claimed and still holds (a regular file of ours, no link): never
    /// the word of a file in a directory someone could have swapped.
    pub fn load(state_dir: &Path) -> Option<Record> {
        let dir = claimed_dir(state_dir)?;
        if let Err(e) = dir.still_ours() {
            tracing::error!("{e}");
            return None;
        }
        let bytes = match dir.read("engine.json", 4096) {
            Ok(b) => b?,
            Err(e) => {
                tracing::warn!("{}: {e}: ignored", Record::path(state_dir).display());
                return None;
            }
        };
        serde_json::from_slice(&bytes).ok()
    }
    pub fn remove(state_dir: &Path) {
        match claimed_dir(state_dir) {
            Some(d) => d.remove("engine.json"),
            None => {
                let _ = std::fs::remove_file(Record::path(state_dir));
            }
        }
    }
}

/// The state dir this supervisor claimed, if `state_dir` is it.
fn claimed_dir(state_dir: &Path) -> Option<&'static super::Dir> {
    super::claimed().filter(|d| d.path() == state_dir)
}
