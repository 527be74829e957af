//! `engine = "ssh"`: a remote engine's socket forwarded to a local one by
//! an OpenSSH client dockhand runs and supervises (`ssh -N -L
//! <socket>:<remote_socket> <host>`). The ssh process is the engine
//! process (own process group, `engine.json`, `engine.log`); its exit
//! status and its words in `engine.log` tell the failures apart:
//!
//! - host key / authentication / ssh configuration: fatal for the
//!   profile (the supervisor holds it `failed` until `dockhand up`);
//! - connection refused, timeouts, network errors: retried (backoff ≤ 30 s);
//! - `open failed` on a channel: the ssh connection is up, the server could
//!   not connect it to `remote_socket`: the remote engine is down (or the
//!   server forbids socket forwarding; the client can't tell which): ssh
//!   is kept and the forward probed at the capped pace.
//!
//! The messages matched are OpenSSH's own (openssh-portable, see
//! `classify`). Nothing runs on the remote host beyond the forward.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::Running;
use super::process::ProcessEngine;
use crate::config::{Profile, Ssh};
use crate::error::{Error, Result};
use crate::probe::{self, Ping};
use crate::sys;

/// What ssh said, sorted by what dockhand does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// The host key is unknown: the user must check and accept it.
    HostKey(String),
    /// The host key differs from the one known for the host: the user
    /// must find out why before replacing it. What OpenSSH printed with
    /// it, when it did: the new key's fingerprint and its "remove with"
    /// command (`ssh-keygen -f <known_hosts> -R <host>`).
    HostKeyChanged {
        line: String,
        fingerprint: Option<String>,
        remove: Option<String>,
    },
    /// No key the server accepts (BatchMode: nothing is asked).
    Auth(String),
    /// ssh rejects its own configuration or arguments.
    Config(String),
    /// The server could not connect a forwarded channel to the socket.
    ChannelRefused(String),
    /// Refused, timed out, reset, name lookup: worth retrying.
    Network(String),
    /// Nothing recognised.
    Other(String),
}

/// Sort one line of ssh's stderr. The phrases are OpenSSH's
/// (openssh-portable): sshconnect.c "Host key verification failed.",
/// "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!", "No %s host key is
/// known for %.200s and you have requested strict checking.";
/// sshconnect2.c fatal "%s@%s: Permission denied (%s).", "Too many
/// authentication failures"; readconf.c "Bad configuration option",
/// "command-line line %d", "Can't open user config file"; channels.c
/// `channel_input_open_failure` "channel %d: open failed: %s%s%s";
/// sshconnect.c "ssh: connect to host %s port %s: %s"; ssh.c "Could not
/// resolve hostname"; clientloop.c "Timeout, server %s not responding.";
/// packet.c "Connection closed by", "Connection reset by".
pub fn classify_line(line: &str) -> Option<Class> {
    let l = line.trim().to_string();
    let has = |s: &str| line.contains(s);
    if has("REMOTE HOST IDENTIFICATION HAS CHANGED") || has("Host key for") && has("has changed") {
        return Some(Class::HostKeyChanged {
            line: l,
            fingerprint: None,
            remove: None,
        });
    }
    if has("Host key verification failed")
        || (has("host key is known for") && has("strict checking"))
    {
        return Some(Class::HostKey(l));
    }
    if has("Permission denied (") || has("Too many authentication failures") {
        return Some(Class::Auth(l));
    }
    if has("Bad configuration option")
        || has("command-line line")
        || has("Can't open user config file")
        || has("garbage at end of line")
        || has("Bad owner or permissions on")
        || has("Unsupported option")
    {
        return Some(Class::Config(l));
    }
    if has(": open failed:") {
        return Some(Class::ChannelRefused(l));
    }
    let network = [
        "Connection refused",
        "Connection timed out",
        "Operation timed out",
        "timed out",
        "not responding",
        "No route to host",
        "Network is unreachable",
        "Could not resolve hostname",
        "Connection closed by",
        "Connection reset",
        "closed by remote host",
        "Broken pipe",
        "kex_exchange_identification",
        "Temporary failure in name resolution",
    ];
    if network.iter().any(|s| has(s)) {
        return Some(Class::Network(l));
    }
    None
}

/// The class of a run's stderr: a changed host key anywhere wins (ssh
/// ends it with "Host key verification failed." too), then another fatal
/// class, then the last recognised line, else the last line.
pub fn classify(text: &str) -> Option<Class> {
    let classes: Vec<Class> = text.lines().filter_map(classify_line).collect();
    // The last line: "Host key for <host> has changed ...", after the banner.
    if let Some(Class::HostKeyChanged { line, .. }) = classes
        .iter()
        .rfind(|c| matches!(c, Class::HostKeyChanged { .. }))
    {
        return Some(Class::HostKeyChanged {
            line: line.clone(),
            fingerprint: after(text, |l| l.starts_with("The fingerprint for the")),
            remove: after(text, |l| l == "remove with:").filter(|c| c.starts_with("ssh-keygen ")),
        });
    }
    let fatal = classes
        .iter()
        .find(|c| matches!(c, Class::HostKey(_) | Class::Auth(_) | Class::Config(_)));
    if let Some(c) = fatal {
        return Some(c.clone());
    }
    if let Some(c) = classes
        .into_iter()
        .rev()
        .find(|c| !matches!(c, Class::ChannelRefused(_)))
    {
        return Some(c);
    }
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| Class::Other(l.to_string()))
}

/// The line after the first one `is` picks (trimmed): what OpenSSH prints
/// on a line of its own after a changed host key (sshconnect.c
/// `warn_changed_key`: "The fingerprint for the %s key sent by the remote
/// host is" then the fingerprint; `check_host_key`: "  remove with:" then
/// "  ssh-keygen -f \"%s\" -R \"%s\"").
fn after(text: &str, is: impl Fn(&str) -> bool) -> Option<String> {
    let mut lines = text.lines().map(str::trim);
    lines.find(|l| is(l))?;
    lines
        .next()
        .filter(|l| !l.is_empty() && !l.chars().any(char::is_control))
        .map(String::from)
}

/// The command that logs in to the profile's host as dockhand's ssh does
/// (with its `-F config_file`), for a person to run once in a terminal:
/// `ssh devbox`, `ssh -F '/my conf/ssh' devbox`. Shell-quoted, for display.
pub fn login_command(s: &Ssh) -> String {
    let mut words = vec!["ssh".to_string()];
    if let Some(f) = &s.config_file {
        words.push("-F".into());
        words.push(crate::ui::shell_quote(&f.to_string_lossy()));
    }
    words.push(crate::ui::shell_quote(&s.host));
    words.join(" ")
}

/// What to do about a changed host key (`Class::HostKeyChanged`'s
/// `fingerprint` and `remove`).
pub fn changed_key_fix(s: &Ssh, fingerprint: Option<&str>, remove: Option<&str>) -> String {
    let fallback = format!("ssh-keygen -R {}", crate::ui::shell_quote(&s.host));
    let remove = remove.unwrap_or(&fallback);
    format!(
        "a reinstalled server, or someone intercepting the connection: verify the new key{} with {}'s admin; only if it is right, remove the old one (`{remove}`) and run `{}` once in a terminal to accept the new one",
        fingerprint.map(|f| format!(" ({f})")).unwrap_or_default(),
        s.host,
        login_command(s)
    )
}

/// What `status` shows, kept in `<state_dir>/ssh.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub host: String,
    pub remote_socket: String,
    /// When the forward last answered after a (re)connect, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_disconnect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_disconnect_at: Option<String>,
    /// The connected ssh: pid and start time (one process, never a
    /// recycled pid), so that a reader can tell it still runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<crate::state::engine_record::Record>,
}

const RECORD: &str = "ssh.json";

impl Record {
    /// The profile's record: what `ssh.json` says, under the profile's
    /// host and socket.
    pub fn of(p: &Profile) -> Option<Record> {
        let ssh = p.ssh.as_ref()?;
        let mut rec = Record {
            host: ssh.host.clone(),
            remote_socket: ssh.remote_socket.clone(),
            ..Record::load(&p.state_dir).unwrap_or_default()
        };
        // Connected only while that ssh runs: a supervisor killed with it
        // (its watcher stops ssh) leaves the record as it was.
        let runs = rec
            .process
            .as_ref()
            .is_some_and(|r| crate::state::engine_record::Record::of(r.pid).as_ref() == Some(r));
        if !runs {
            rec.connected_since = None;
        }
        Some(rec)
    }

    fn load(state_dir: &Path) -> Option<Record> {
        let bytes = sys::file::read_regular(&state_dir.join(RECORD), 64 * 1024, false).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
    /// Written at each connect and disconnect, in the restart path: not
    /// synced to disk (like `state.json`: it describes a connection, which
    /// a power loss ends anyway), two fsyncs less before the next answer.
    fn save(&self, state_dir: &Path) {
        let json = serde_json::to_vec(self).expect("record serializes");
        if let Err(e) = crate::state::write_runtime(&state_dir.join(RECORD), &json, 0o600) {
            tracing::warn!("{e}");
        }
    }
}

pub struct SshEngine {
    process: ProcessEngine,
    ssh: Ssh,
    profile: String,
    socket: PathBuf,
    state_dir: PathBuf,
    /// `engine.log`'s length when this ssh was started or adopted: what
    /// follows is its own.
    log_from: u64,
    /// How far the log was read for channel failures.
    log_seen: u64,
    record: Record,
    /// The last start found the forward up and the remote engine down.
    degraded: bool,
}

/// The ssh client's arguments (argv[0] = "ssh"). Never `-A`, never a
/// host key learnt without the user, never the user's ControlMaster.
pub fn argv(ssh: &Ssh, socket: &Path) -> Vec<String> {
    let mut v: Vec<String> = vec!["ssh".into(), "-N".into()];
    let opts = [
        "BatchMode=yes".to_string(),
        "ExitOnForwardFailure=yes".into(),
        "StreamLocalBindUnlink=yes".into(),
        "StreamLocalBindMask=0177".into(),
        format!("ServerAliveInterval={}", ssh.keepalive.as_secs().max(1)),
        "ServerAliveCountMax=3".into(),
        "ControlPath=none".into(),
        // Never a write to ~/.ssh: no host key learnt or updated (an
        // unknown one fails; the user accepts it with `ssh <host>`).
        "StrictHostKeyChecking=yes".into(),
        "UpdateHostKeys=no".into(),
        "ForwardAgent=no".into(),
        "ForwardX11=no".into(),
        "PermitLocalCommand=no".into(),
    ];
    for o in opts {
        v.push("-o".into());
        v.push(o);
    }
    if let Some(f) = &ssh.config_file {
        v.push("-F".into());
        v.push(f.display().to_string());
    }
    v.push("-L".into());
    v.push(format!("{}:{}", socket.display(), ssh.remote_socket));
    // Whatever the host is, ssh reads it as the destination.
    v.push("--".into());
    v.push(ssh.host.clone());
    v
}

impl SshEngine {
    pub fn new(p: &Profile) -> SshEngine {
        let ssh = p.ssh.clone().expect("engine = ssh has an [ssh] table");
        let argv = argv(&ssh, &p.socket);
        SshEngine {
            process: ProcessEngine::with_argv(p, "ssh", argv),
            record: Record::of(p).unwrap_or_default(),
            ssh,
            profile: p.name.clone(),
            socket: p.socket.clone(),
            state_dir: p.state_dir.clone(),
            log_from: 0,
            log_seen: 0,
            degraded: false,
        }
    }

    /// An ssh forward never recovers by itself after a sleep: no grace.
    pub fn resume_policy(&self) -> super::ResumePolicy {
        super::ResumePolicy::AT_ONCE
    }

    pub fn check(&self) -> Result<()> {
        // The forward's socket opens the remote engine to whoever reaches
        // it: in a private directory (created 0700 when missing), never
        // one others can write, where they could swap or squat it.
        if let Some(dir) = self.socket.parent() {
            crate::state::private_dir(dir, "the directory of the ssh forward's socket")?;
        }
        if sys::which("ssh").is_none() {
            return Err(Error::EngineMissing {
                what: "`ssh` (the OpenSSH client) not found on PATH".into(),
                hint: "install it (Debian/Ubuntu: `sudo apt install openssh-client`; macOS has it in /usr/bin), or put a wrapper named ssh on the service's PATH".into(),
            });
        }
        if let Some(f) = &self.ssh.config_file
            && let Err(e) = std::fs::metadata(f)
        {
            return Err(Error::EngineUnusable(format!(
                "[ssh] config_file {}: {e}: create it or remove the key",
                f.display()
            )));
        }
        Ok(())
    }

    pub async fn adopt(&mut self) -> Option<Running> {
        let r = self.process.adopt().await?;
        self.mark_log();
        Some(r)
    }

    pub async fn clean_stale(&mut self) -> Result<Vec<String>> {
        self.process.clean_stale().await
    }

    pub fn spawn(&mut self) -> Result<Running> {
        self.mark_log();
        self.process.spawn()
    }

    /// The forward answers `/_ping`; or ssh exits (its words say why); or
    /// the server refuses the channel (the remote engine is down): then
    /// at once, ssh left running.
    pub async fn wait_ready(&mut self, r: &mut Running, deadline: Instant) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let last = probe::ping(&self.socket, Duration::from_millis(500)).await;
                return Err(format!(
                    "ssh to {} did not forward {} in time ({last}){}",
                    self.ssh.host,
                    self.ssh.remote_socket,
                    super::last_words(&self.state_dir, self.log_from)
                ));
            }
            let ping = probe::ping(&self.socket, left.min(Duration::from_secs(2))).await;
            if ping == Ping::Ok {
                self.connected(r.pid);
                return Ok(());
            }
            // ssh refuses a channel only on a connection made to the
            // forward: before it listens there is nothing to read.
            let listens = !matches!(ping, Ping::NoSocket | Ping::Refused);
            if listens && let Some(why) = self.remote_down() {
                // ssh is connected; what it forwards to is down.
                self.connected(r.pid);
                self.degraded = true;
                return Err(why);
            }
            tokio::select! {
                why = r.exited() => return Err(self.exit_reason(&why)),
                _ = tokio::time::sleep(poll_step(started.elapsed())) => {}
            }
        }
    }

    pub async fn stop(&mut self, mut r: Running, timeout: Duration) -> bool {
        let status = r.child.as_mut().and_then(|c| c.try_status());
        let why = match status {
            Some(st) => self.exit_reason(&super::describe(st)),
            None if r.watched.as_ref().is_some_and(|p| !p.alive()) => self.exit_reason("exited"),
            None => "closed by dockhand".into(),
        };
        let ok = self.process.stop(r, timeout).await;
        self.disconnected(&why);
        ok
    }

    pub async fn remove_runtime_files(&mut self) {
        self.process.remove_runtime_files().await;
    }

    pub fn started_degraded(&self) -> bool {
        self.degraded
    }

    fn mark_log(&mut self) {
        self.degraded = false;
        self.log_from = self.log_len();
        self.log_seen = self.log_from;
    }

    fn log_len(&self) -> u64 {
        super::claimed_dir(&self.state_dir)
            .and_then(|d| d.open_rw(super::log::ENGINE_LOG).ok())
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len())
    }

    /// What this ssh wrote from `from` on (its last 16 KiB at most; all of
    /// the log if it was cut meanwhile).
    fn words_since(&self, from: u64) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let Some(mut f) = super::claimed_dir(&self.state_dir)
            .and_then(|d| d.open_rw(super::log::ENGINE_LOG).ok())
        else {
            return String::new();
        };
        let len = f.metadata().map_or(0, |m| m.len());
        let from = if from > len { 0 } else { from };
        let start = from.max(len.saturating_sub(16 * 1024));
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(start)).is_ok() {
            let _ = f.take(16 * 1024).read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The failure ssh's words describe since it started.
    fn class(&self) -> Option<Class> {
        classify(&self.words_since(self.log_from))
    }

    /// The reason for messages: the exit and what ssh said.
    fn exit_reason(&self, how: &str) -> String {
        let host = &self.ssh.host;
        match self.class() {
            Some(Class::Network(l)) => format!("ssh to {host}: {how}: network: {l}"),
            Some(Class::Other(l)) => format!("ssh to {host}: {how}: {l}"),
            Some(c) => self
                .fatal_message(&c)
                .unwrap_or_else(|| format!("ssh to {host}: {how}")),
            None => format!("ssh to {host}: {how}"),
        }
    }

    /// Whether a client request should bring the next attempt forward:
    /// after a network failure (the network may be back; an attempt
    /// costs a TCP connect), not after a full login that failed otherwise.
    pub fn retry_on_request(&self) -> bool {
        matches!(self.class(), None | Some(Class::Network(_)))
    }

    /// A failure retrying can't fix (host key, authentication, ssh's
    /// configuration), with its fix: the profile is held `failed`.
    pub fn fatal(&self) -> Option<String> {
        self.fatal_message(&self.class()?)
    }

    fn fatal_message(&self, c: &Class) -> Option<String> {
        let (host, p) = (&self.ssh.host, &self.profile);
        let then = format!("then run `dockhand up --profile {p}`");
        let login = login_command(&self.ssh);
        Some(match c {
            Class::HostKey(l) => format!(
                "ssh to {host} failed its host key check ({l:?}): run `{login}` once in a terminal to check and accept the host key (dockhand never accepts one itself), {then}"
            ),
            Class::HostKeyChanged {
                line,
                fingerprint,
                remove,
            } => format!(
                "ssh to {host}: the host key has CHANGED ({line:?}): {}, {then}",
                changed_key_fix(&self.ssh, fingerprint.as_deref(), remove.as_deref())
            ),
            Class::Auth(l) => format!(
                "ssh could not log in to {host} ({l:?}): load your key into the agent (`ssh-add`) and make sure dockhand's service sees SSH_AUTH_SOCK (README, \"The ssh engine\"), or set IdentityFile for {host} in {}; `{login}` in a terminal tries it; dockhand never asks for a password or passphrase; {then}",
                self.ssh
                    .config_file
                    .as_ref()
                    .map_or("~/.ssh/config".into(), |f| f.display().to_string())
            ),
            Class::Config(l) => format!(
                "ssh refused its configuration ({l:?}): fix ~/.ssh/config{}, {then}",
                self.ssh
                    .config_file
                    .as_ref()
                    .map(|f| format!(" or {}", f.display()))
                    .unwrap_or_default()
            ),
            _ => return None,
        })
    }

    /// The server refused a channel to `remote_socket` since the last
    /// look (ssh still connected): why, for `status` and clients.
    pub fn remote_down(&mut self) -> Option<String> {
        let seen = self.log_seen;
        let text = self.words_since(seen);
        self.log_seen = self.log_len().max(seen);
        let refused = text
            .lines()
            .any(|l| matches!(classify_line(l), Some(Class::ChannelRefused(_))));
        if !refused {
            return None;
        }
        let (host, sock) = (&self.ssh.host, &self.ssh.remote_socket);
        Some(format!(
            "remote engine down at {host}:{sock} (the ssh connection is up; the server could not connect it to the socket: no engine listens there, or the server forbids socket forwarding: AllowStreamLocalForwarding no / DisableForwarding yes in its sshd_config, or restrict / no-port-forwarding in authorized_keys; a server setting applies to new logins: `dockhand restart` after changing it)"
        ))
    }

    fn connected(&mut self, pid: Option<i32>) {
        self.degraded = false;
        self.record.connected_since = Some(crate::state::now_rfc3339());
        self.record.process = pid.and_then(crate::state::engine_record::Record::of);
        self.record.save(&self.state_dir);
    }

    fn disconnected(&mut self, why: &str) {
        self.record.connected_since = None;
        self.record.process = None;
        self.record.last_disconnect = Some(crate::state::bounded(why));
        self.record.last_disconnect_at = Some(crate::state::now_rfc3339());
        self.record.save(&self.state_dir);
    }
}

/// How long `wait_ready` waits between looks at the forward, `since` ssh
/// was started. ssh binds the forward's socket once it has logged in; a
/// connect to a socket not there yet costs microseconds, while every ms
/// between the bind and the look is added to each reconnect (and to the
/// request waiting for it): look every 2 ms for the first seconds (a
/// login takes 0.1 to a few s), then at a gentler pace (a slow link, a
/// ProxyJump chain, a server that takes its time).
fn poll_step(since: Duration) -> Duration {
    const TIGHT_FOR: Duration = Duration::from_secs(5);
    match since < TIGHT_FOR {
        true => Duration::from_millis(2),
        false => Duration::from_millis(20),
    }
}

/// "ssh to devbox", for progress lines.
pub fn summary(p: &Profile) -> String {
    p.ssh
        .as_ref()
        .map(|s| format!("ssh to {}", s.host))
        .unwrap_or_else(|| "ssh".into())
}

/// `status` lines of an ssh profile.
pub fn status_lines(p: &Profile) -> Vec<String> {
    let (Some(ssh), Some(rec)) = (&p.ssh, Record::of(p)) else {
        return Vec::new();
    };
    let mut out = vec![format!(
        "ssh: {}:{} forwarded to {}",
        ssh.host,
        ssh.remote_socket,
        p.socket.display()
    )];
    match &rec.connected_since {
        Some(t) => out.push(format!("connected since {t}")),
        None => out.push("not connected".into()),
    }
    if let (Some(why), Some(at)) = (&rec.last_disconnect, &rec.last_disconnect_at) {
        out.push(format!("last disconnect {at}: {why}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `status` says connected only while the ssh that connected runs:
    /// the record names it by pid and start time.
    #[test]
    fn connected_only_while_the_recorded_ssh_runs() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[profiles.d]\nengine = \"ssh\"\nstate_dir = {:?}\n[profiles.d.ssh]\nhost = \"h\"\n",
            dir.path().display().to_string()
        );
        let env = crate::config::Env::bare("/home/u".into());
        let source = crate::config::Source::Explicit("/home/u/c.toml".into());
        let p = crate::config::Config::parse(source, env, text)
            .unwrap()
            .profile("d")
            .unwrap();
        let me = crate::state::engine_record::Record::of(std::process::id() as i32).unwrap();
        let save = |process| {
            Record {
                connected_since: Some("2026-12-06T00:00:00Z".into()),
                process,
                ..Record::default()
            }
            .save(dir.path())
        };
        save(Some(me.clone()));
        assert!(Record::of(&p).unwrap().connected_since.is_some());
        let recycled = crate::state::engine_record::Record {
            start: me.start + 1,
            ..me
        };
        save(Some(recycled));
        assert_eq!(Record::of(&p).unwrap().connected_since, None);
        save(None);
        assert_eq!(Record::of(&p).unwrap().connected_since, None);
    }

    #[test]
    fn openssh_messages_are_sorted() {
        let c = |s: &str| classify(s);
        assert!(matches!(
            c("Host key verification failed.\r\n"),
            Some(Class::HostKey(_))
        ));
        assert!(matches!(
            c(
                "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed.\n"
            ),
            Some(Class::HostKey(_))
        ));
        assert!(matches!(
            c("root@127.0.0.1: Permission denied (publickey)."),
            Some(Class::Auth(_))
        ));
        assert!(matches!(
            c("/tmp/c:3: Bad configuration option: frobnicate"),
            Some(Class::Config(_))
        ));
        assert!(matches!(
            c("ssh: connect to host 127.0.0.1 port 1: Connection refused"),
            Some(Class::Network(_))
        ));
        assert!(matches!(
            c("Timeout, server 127.0.0.1 not responding."),
            Some(Class::Network(_))
        ));
        assert!(matches!(
            c("ssh: Could not resolve hostname nohost: Name or service not known"),
            Some(Class::Network(_))
        ));
        assert!(matches!(
            classify_line("channel 1: open failed: connect failed: open failed"),
            Some(Class::ChannelRefused(_))
        ));
        // A fatal class outlasts what follows it; channel failures alone
        // leave the last line.
        assert!(matches!(
            c("Permission denied (publickey).\nConnection closed by 1.2.3.4 port 22"),
            Some(Class::Auth(_))
        ));
        assert_eq!(c("weird\n\n"), Some(Class::Other("weird".into())));
        assert_eq!(c(""), None);
    }

    /// OpenSSH 9.2's words for a known host whose key changed.
    const CHANGED: &str = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\nIT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\nSomeone could be eavesdropping on you right now (man-in-the-middle attack)!\nIt is also possible that a host key has just been changed.\nThe fingerprint for the ED25519 key sent by the remote host is\nSHA256:T0Dmib+KVuttZZ+HbuIsCdZDS4/1S1blp6II02PQNSk.\nPlease contact your system administrator.\nAdd correct host key in /tmp/k/known_hosts to get rid of this message.\nOffending ED25519 key in /tmp/k/known_hosts:1\n  remove with:\n  ssh-keygen -f \"/tmp/k/known_hosts\" -R \"[127.0.0.1]:2222\"\nHost key for [127.0.0.1]:2222 has changed and you have requested strict checking.\nHost key verification failed.\n";

    /// An engine for `[profiles.default.ssh]` holding `table`.
    fn engine(table: &str) -> SshEngine {
        let text = format!("[profiles.default]\nengine = \"ssh\"\n[profiles.default.ssh]\n{table}");
        let env = crate::config::Env::bare("/home/u".into());
        let source = crate::config::Source::Explicit("/home/u/c.toml".into());
        let cfg = crate::config::Config::parse(source, env, text).unwrap();
        SshEngine::new(&cfg.profile("default").unwrap())
    }

    #[test]
    fn a_changed_host_key_is_told_from_an_unknown_one() {
        let c = classify(CHANGED).unwrap();
        assert_eq!(
            c,
            Class::HostKeyChanged {
                line: "Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.".into(),
                fingerprint: Some("SHA256:T0Dmib+KVuttZZ+HbuIsCdZDS4/1S1blp6II02PQNSk.".into()),
                remove: Some("ssh-keygen -f \"/tmp/k/known_hosts\" -R \"[127.0.0.1]:2222\"".into()),
            }
        );
        let m = engine("host = \"devbox\"\n").fatal_message(&c).unwrap();
        for want in [
            "host key has CHANGED",
            "verify the new key (SHA256:T0Dmib",
            "`ssh-keygen -f \"/tmp/k/known_hosts\" -R \"[127.0.0.1]:2222\"`",
            "run `ssh devbox` once",
        ] {
            assert!(m.contains(want), "{want:?} not in {m}");
        }
        assert!(!m.contains("check and accept the host key"), "{m}");
        // Without OpenSSH's own command: ssh-keygen -R <host>.
        let bare = "Host key for devbox has changed and you have requested strict checking.\nHost key verification failed.\n";
        let m = engine("host = \"devbox\"\n")
            .fatal_message(&classify(bare).unwrap())
            .unwrap();
        assert!(m.contains("`ssh-keygen -R devbox`"), "{m}");
    }

    #[test]
    fn fixes_log_in_with_the_profiles_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("my ssh.conf");
        std::fs::write(&f, "").unwrap();
        let table = format!(
            "host = \"devbox\"\nconfig_file = {:?}\n",
            f.display().to_string()
        );
        let want = format!("`ssh -F '{}' devbox`", f.display());
        let e = engine(&table);
        let unknown = Class::HostKey("Host key verification failed.".into());
        let auth = Class::Auth("root@h: Permission denied (publickey).".into());
        for c in [&unknown, &auth, &classify(CHANGED).unwrap()] {
            let m = e.fatal_message(c).unwrap();
            assert!(m.contains(&want), "{want} not in {m}");
        }
        let m = engine("host = \"devbox\"\n")
            .fatal_message(&unknown)
            .unwrap();
        assert!(m.contains("run `ssh devbox` once"), "{m}");
    }

    #[test]
    fn argv_is_the_supervised_forward() {
        let ssh = Ssh {
            host: "devbox".into(),
            remote_socket: "/var/run/docker.sock".into(),
            keepalive: Duration::from_secs(10),
            config_file: Some("/c/ssh_config".into()),
        };
        let a = argv(&ssh, Path::new("/st/forward.sock")).join(" ");
        assert_eq!(
            a,
            "ssh -N -o BatchMode=yes -o ExitOnForwardFailure=yes -o StreamLocalBindUnlink=yes -o StreamLocalBindMask=0177 -o ServerAliveInterval=10 -o ServerAliveCountMax=3 -o ControlPath=none -o StrictHostKeyChecking=yes -o UpdateHostKeys=no -o ForwardAgent=no -o ForwardX11=no -o PermitLocalCommand=no -F /c/ssh_config -L /st/forward.sock:/var/run/docker.sock -- devbox"
        );
        assert!(!a.contains(" -A"));
        assert!(!a.contains("StrictHostKeyChecking=no") && !a.contains("accept-new"));
    }
}
