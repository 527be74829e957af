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

/// How long a connection must have been idle (waiting for a request,
/// none begun) before it may be closed to make room for a new client.
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

/// The connections waiting for their next request (none begun): when
/// every slot is taken and a new client waits, the one idle longest is
/// closed to make room, as HTTP servers close idle keep-alive connections
/// under pressure. Idle connections can't lock clients out; connections
/// in the middle of a request are never closed for this.
#[derive(Default)]
pub struct IdleConns {
    next: AtomicUsize,
    waiting: std::sync::Mutex<std::collections::BTreeMap<usize, IdleEntry>>,
}

struct IdleEntry {
    since: tokio::time::Instant,
    close: std::sync::Arc<tokio::sync::Notify>,
}

/// A connection's place among the idle ones; leaves when dropped.
pub struct IdleTicket<'a> {
    conns: &'a IdleConns,
    id: usize,
    pub close: std::sync::Arc<tokio::sync::Notify>,
}

impl IdleConns {
    /// Enter the idle connections (while waiting for a request).
    pub fn enter(&self) -> IdleTicket<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = std::sync::Arc::new(tokio::sync::Notify::new());
        let entry = IdleEntry {
            since: tokio::time::Instant::now(),
            close: close.clone(),
        };
        self.waiting.lock().unwrap().insert(id, entry);
        IdleTicket {
            conns: self,
            id,
            close,
        }
    }

    /// Close the connection idle longest, if it has been idle at least
    /// `EVICTABLE_AFTER`; true when one was told to close.
    pub fn evict_oldest(&self) -> bool {
        let mut w = self.waiting.lock().unwrap();
        let Some((&id, e)) = w.first_key_value() else {
            return false;
        };
        if e.since.elapsed() < EVICTABLE_AFTER {
            return false;
        }
        let e = w.remove(&id).expect("just seen");
        e.close.notify_one();
        true
    }
}

impl Drop for IdleTicket<'_> {
    fn drop(&mut self) {
        self.conns.waiting.lock().unwrap().remove(&self.id);
    }
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

    #[tokio::test(start_paused = true)]
    async fn the_longest_idle_connection_is_closed_first_and_only_after_a_while() {
        let conns = IdleConns::default();
        let old = conns.enter();
        tokio::time::advance(EVICTABLE_AFTER).await;
        let young = conns.enter();
        assert!(conns.evict_oldest(), "the old one");
        // Told to close: its next wait ends at once.
        tokio::time::timeout(Duration::from_millis(1), old.close.notified())
            .await
            .expect("the oldest was told to close");
        assert!(
            !conns.evict_oldest(),
            "the young one is not idle long enough"
        );
        tokio::time::advance(EVICTABLE_AFTER).await;
        drop(young);
        assert!(
            !conns.evict_oldest(),
            "a ticket dropped leaves the idle ones"
        );
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
