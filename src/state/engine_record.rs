//! `engine.json`: our record of the engine process we started, so that a
//! later supervisor finds it again (and never mistakes a recycled pid).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sys;

/// Our record of the engine process we started: pid plus start time,
/// which together name one process (a recycled pid has another start);
/// on Linux, where the start time counts from boot, plus the boot's id
/// (after a reboot the same pid and start could name another process).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub pid: i32,
    pub start: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
}

impl Record {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("engine.json")
    }
    pub fn of(pid: i32) -> Option<Record> {
        sys::proc_info(pid).map(|p| Record {
            pid,
            start: p.start,
            boot: boot_id(),
        })
    }

    /// Made during this boot (a record from before boot ids were kept
    /// counts as this boot's: pid and start time are still checked).
    pub fn this_boot(&self) -> bool {
        self.boot.is_none() || self.boot == boot_id()
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

/// This boot's id (Linux: `/proc/sys/kernel/random/boot_id`); None where
/// start times are absolute (macOS) or it can't be read.
pub fn boot_id() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let bytes =
        sys::file::read_regular(Path::new("/proc/sys/kernel/random/boot_id"), 64, false).ok()?;
    Some(String::from_utf8_lossy(&bytes).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_of_another_boot_is_not_this_boots() {
        let me = Record::of(std::process::id() as i32).unwrap();
        assert!(me.this_boot());
        #[cfg(target_os = "linux")]
        assert_eq!(me.boot.as_deref().map(str::len), Some(36), "{me:?}");
        let legacy = Record {
            boot: None,
            ..me.clone()
        };
        assert!(
            legacy.this_boot(),
            "a record without a boot id is trusted as before"
        );
        let other = Record {
            boot: Some("00000000-0000-0000-0000-000000000000".into()),
            ..me
        };
        assert!(!other.this_boot());
    }
}
