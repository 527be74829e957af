//! The on-demand proxy: dockhand serves the Docker API on `listen` and
//! forwards to the engine's `socket` request by request, starting the
//! engine when a request needs it (`on_demand`) and stopping it when idle
//! (`idle_stop`), through the supervisor's `control` seam.
//!
//! - `listen`: binding the socket safely (or taking it from launchd/systemd)
//! - `sock`: client and engine sockets that only wake dockhand to read
//! - `http`: framing; heads parsed, bodies copied in 256 KiB chunks
//! - `conn`: one client connection: classify, wait for the engine, forward
//! - `classify`: passive (polling) or active (work) requests
//! - `events`: `GET /events` kept open across an idle stop
//! - `idle`: what keeps the engine awake; the idle stop
//! - `cache`: the engine's last `/_ping` and `/version` answers
//! - `record`: read-only answers recorded on the way down, served while held
//! - `limits`: connection caps, head deadlines and budget

pub mod activation;
pub mod cache;
pub mod classify;
mod conn;
mod events;
pub mod http;
mod idle;
pub mod limits;
pub mod listen;
mod record;
mod sock;
mod zerocopy;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::Profile;
use crate::control::Control;
use crate::state::Phase;

/// What every connection task shares.
pub(crate) struct Shared {
    pub control: Control,
    /// The engine's socket.
    pub socket: PathBuf,
    pub start_timeout: Duration,
    pub profile: String,
    pub classifier: classify::Classifier,
    pub cache: cache::Cache,
    pub record: record::Record,
    pub idle: idle::Activity,
    /// Bumped whenever the engine stops answering (restarting, stopping,
    /// held): connections to the old engine are closed.
    pub epoch: watch::Sender<u64>,
    /// The engine is remote (`engine = "ssh"`): only `ready` is up (an
    /// unhealthy forward is reconnecting), and containers running there
    /// don't keep the connection open.
    pub remote: bool,
    /// Connections waiting for their next request (closed longest-idle
    /// first when every slot is taken and a client waits).
    pub idle_conns: limits::IdleConns,
}

/// Serve `listener` (already bound, see `listen::bind`) for the life of
/// the supervisor.
pub fn spawn(p: &Profile, control: Control, bound: listen::Bound) {
    activation::raise_nofile();
    let shared = Arc::new(Shared {
        control,
        socket: p.socket.clone(),
        start_timeout: p.start_timeout,
        profile: p.name.clone(),
        classifier: classify::Classifier::new(p.passive.as_deref()),
        cache: cache::Cache::load(&p.state_dir),
        record: record::Record::default(),
        idle: idle::Activity::new(),
        epoch: watch::channel(0).0,
        remote: p.engine == crate::config::EngineKind::Ssh,
        idle_conns: limits::IdleConns::default(),
    });
    tokio::spawn(follow_engine(shared.clone()));
    if let Some(after) = p.idle_stop {
        tokio::spawn(idle::run(shared.clone(), after));
    }
    tokio::spawn(accept(shared, bound));
}

/// Accept clients while fewer than the cap are served (`limits`): past
/// it, one accepted client waits for a slot while the connection idle
/// longest is closed to make room (connections in a request are never
/// closed for this); the rest wait in the socket's backlog.
async fn accept(shared: Arc<Shared>, bound: listen::Bound) {
    let cap = limits::proxy_connections();
    info!("serving at most {cap} client connections at once");
    let slots = Arc::new(tokio::sync::Semaphore::new(cap));
    loop {
        match bound.listener.accept().await {
            Ok((s, _)) => {
                let Some(slot) = slot_for_one_more(&shared, &slots).await else {
                    return;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    conn::serve(shared, s).await;
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of descriptors (ENFILE: the whole system) and the
                // like: back off a little rather than spin.
                warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A slot for a client that was accepted: a free one, else the one an
/// idle connection gives up when told to (tried again as idle ones age),
/// else the next one a finished connection frees.
async fn slot_for_one_more(
    shared: &Shared,
    slots: &Arc<tokio::sync::Semaphore>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    loop {
        match slots.clone().try_acquire_owned() {
            Ok(s) => return Some(s),
            Err(tokio::sync::TryAcquireError::Closed) => return None,
            Err(tokio::sync::TryAcquireError::NoPermits) => {}
        }
        shared.idle_conns.evict_oldest();
        let wait = tokio::time::timeout(limits::EVICTABLE_AFTER, slots.clone().acquire_owned());
        if let Ok(s) = wait.await {
            return s.ok();
        }
    }
}

/// Bump the epoch when the engine stops answering; record its `/_ping`
/// and `/version` answers when it becomes ready.
async fn follow_engine(shared: Arc<Shared>) {
    let mut rx = shared.control.subscribe();
    let mut up = false;
    loop {
        let now_up = {
            let s = rx.borrow_and_update();
            match shared.remote {
                true => s.phase == Phase::Ready,
                false => matches!(s.phase, Phase::Ready | Phase::Unhealthy),
            }
        };
        if up && !now_up {
            shared.epoch.send_modify(|e| *e += 1);
        }
        if now_up && !up {
            shared.record.forget();
            info!(
                "engine ready: serving {} on the proxy socket",
                shared.profile
            );
            for (key, target) in [("ping", "/_ping"), ("version", "/version")] {
                match http::get(&shared.socket, target, Duration::from_secs(5)).await {
                    Ok((head, body)) => shared.cache.record(key, &head, Some(&body)),
                    Err(e) => warn!("cannot record the engine's {target} answer: {e}"),
                }
            }
        }
        up = now_up;
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// `dockhand status` lines about the proxy: where clients connect, why a
/// stopped engine stays stopped, what keeps a running one awake.
pub fn status_lines(p: &Profile, st: &crate::state::State, supervised: bool) -> Vec<String> {
    let Some(listen) = &p.listen else {
        return Vec::new();
    };
    let mut out = vec![format!("listen {}: clients connect here", listen.display())];
    if !supervised {
        return out;
    }
    if let Some(held) = st.held {
        let how = match held {
            crate::state::Held::Down => "`dockhand up` starts it",
            crate::state::Held::Failed => "fix what the last error says, then `dockhand up`",
            _ => "the next docker command or active request starts it",
        };
        out.push(format!("engine {held}: {how}"));
    }
    if let Some(a) = &st.awake
        && st.phase == Phase::Ready
    {
        if let Some(why) = &a.never_idle_stopped {
            out.push(format!("awake: {why}"));
            return out;
        }
        let containers = match a.running_containers {
            Some(n) => format!("{n} running container(s)"),
            None if p.ssh.is_some() => "remote containers don't keep the connection".into(),
            None => "running containers unknown".into(),
        };
        let left = a
            .idle_stop_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .map(|t| {
                let left = t
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                format!(
                    "idle: stops in {}",
                    humantime::format_duration(Duration::from_secs(left.as_secs()))
                )
            })
            .unwrap_or_else(|| "kept awake".into());
        out.push(format!(
            "awake: {containers}, {} active request(s); {left}",
            a.active_requests
        ));
    }
    out
}
