//! Stop requests by signal, seen from the first instant of `run`: SIGTERM,
//! SIGINT and SIGHUP are blocked until handlers are in place (then any
//! that came meanwhile is delivered), and a flag set in the handler itself
//! lets every decision ("start an engine now?") see a request the async
//! runtime has not yet processed.

use std::sync::atomic::{AtomicBool, Ordering};

use libc::c_int;

/// The signals that ask dockhand to stop.
pub const STOP: [c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// A stop signal has arrived (set in the signal handler).
pub fn stop_requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// The stop signals, blocked on this thread until dropped (pending ones
/// are then delivered). Children never inherit the mask: std resets it
/// before exec.
pub struct Blocked {
    old: libc::sigset_t,
}

fn set_of(sigs: &[c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise a plain sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

pub fn block() -> Blocked {
    let set = set_of(&STOP);
    // SAFETY: pthread_sigmask with valid sets; `old` receives the mask.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        Blocked { old }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `block`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}

/// Set the flag on every stop signal (beside tokio's own handlers, which
/// the same registry chains).
pub fn install_flag() -> std::io::Result<()> {
    for sig in STOP {
        // SAFETY: the action only stores to an atomic: async-signal-safe.
        unsafe {
            signal_hook_registry::register(sig, || REQUESTED.store(true, Ordering::SeqCst))?;
        }
    }
    Ok(())
}
