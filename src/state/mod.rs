//! The profile's state directory: claimed by one supervisor for its life
//! (`dir`: the `flock`, the lock file naming the holder, the check that
//! it is still ours), reached by a safe walk from `/` (`private_dir`:
//! 0700, ours, no link swapped in), written atomically (`atomic`), and
//! the records kept in it (`records`: `state.json`; `engine_record`:
//! `engine.json`).

mod atomic;
mod dir;
pub mod engine_record;
mod private_dir;
mod records;

pub use atomic::{write_atomic, write_runtime};
pub use dir::{Dir, claim, claimed, holder_pid, supervisor};
pub use private_dir::{open_private_dir, private_dir};
pub use records::{
    Awake, Held, Phase, QUOTE_MAX_BYTES, QUOTE_MAX_LINES, STATE_MAX, State, bounded, now_rfc3339,
    read, write,
};
