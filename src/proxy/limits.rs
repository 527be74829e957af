//! What keeps dockhand standing under any number of clients: caps on
//! connections to `listen` and `control.sock` well below the open-files
//! limit, with descriptors kept for the supervisor's own work (probes,
//! state files, logs, starting the engine); deadlines for request heads
//! and a budget for the memory heads in progress may hold.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Descriptors no client connection may take: the supervisor's own work.
pub const RESERVED_FDS: u64 = 128;
/// Connections to `control.sock` served at once (one descriptor each);
/// more wait to be accepted.
pub const CONTROL_CONNECTIONS: usize = 64;
/// The most descriptors one proxied connection holds: client and engine
/// sockets, a writable registration for each, two splice pipes.
pub const FDS_PER_CONNECTION: u64 = 8;
/// The time a client has to send a request head once it has begun one
/// (against slowloris, as HTTP servers do).
pub const HEAD_DEADLINE: Duration = Duration::from_secs(30);
/// An idle keep-alive connection (no byte of a next request) is closed
/// after this; longer than clients keep idle connections (Go's transport:
/// 90 s), so they normally close first.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Memory all request heads in progress may hold beyond each
/// connection's first small buffer; a head that needs more than is left
/// is refused (503, the client may retry).
pub const HEADS_BUDGET: usize = 16 << 20;

/// Connections to `listen` served at once; more wait to be accepted.
pub fn proxy_connections() -> usize {
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(65536);
    let spare = nofile.saturating_sub(RESERVED_FDS + CONTROL_CONNECTIONS as u64);
    (spare / FDS_PER_CONNECTION).max(1) as usize
}

static HEADS: AtomicUsize = AtomicUsize::new(0);

/// Take `n` bytes of the heads budget; false when not that much is left.
pub fn charge_head(n: usize) -> bool {
    HEADS
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
            (used + n <= HEADS_BUDGET).then_some(used + n)
        })
        .is_ok()
}

/// Give `n` bytes back to the heads budget.
pub fn release_head(n: usize) {
    if n > 0 {
        HEADS.fetch_sub(n, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heads_budget_is_shared_and_given_back() {
        assert!(charge_head(HEADS_BUDGET / 2));
        assert!(!charge_head(HEADS_BUDGET), "over the budget");
        release_head(HEADS_BUDGET / 2);
        assert!(charge_head(HEADS_BUDGET / 2));
        release_head(HEADS_BUDGET / 2);
    }

    #[test]
    fn connections_leave_the_reserve() {
        let n = proxy_connections() as u64;
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(65536);
        assert!(
            n * FDS_PER_CONNECTION + RESERVED_FDS + CONTROL_CONNECTIONS as u64 <= nofile.max(1024)
        );
    }
}
