//! Checks of an `engine = "ssh"` profile: the host resolves (`ssh -G`),
//! the service sees an ssh agent (unless the ssh config says
//! `IdentityAgent none`), a BatchMode login with the forward works (a
//! short-lived forward of its own, in a private directory), the remote
//! socket answers through it (if not: the remote engine down told from a
//! server that forbids socket forwarding), and the docker CLI's API
//! version against the remote engine's.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Check, cmd};
use crate::config::{Profile, Ssh};
use crate::engine::ssh::{Class, changed_key_fix, classify, login_command};

pub fn checks(p: &Profile) -> Vec<Check> {
    let (Some(s), Some(ssh)) = (&p.ssh, crate::sys::which("ssh")) else {
        return Vec::new(); // binary.ssh says what is missing
    };
    let (host, resolved) = resolves(&ssh, s);
    let mut v = vec![host, agent(p, &resolved)];
    v.extend(forward(&ssh, p, s, &resolved));
    v
}

/// What `ssh -G <host>` printed: `key value` lines (empty if it failed).
#[derive(Debug, Default)]
struct Resolved(String);

impl Resolved {
    fn all<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a str> {
        let key = format!("{key} ");
        self.0
            .lines()
            .filter_map(move |l| l.strip_prefix(&key).map(str::trim))
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.all(key).next()
    }
}

/// `ssh -G <host>` with the profile's config file, shown to a person.
fn resolve_command(s: &Ssh) -> String {
    login_command(s).replacen("ssh ", "ssh -G ", 1)
}

fn config_args(s: &Ssh) -> Vec<String> {
    match &s.config_file {
        Some(f) => vec!["-F".into(), f.display().to_string()],
        None => Vec::new(),
    }
}

/// `ssh -G <host>`: what ssh makes of the host (user, address, port).
fn resolves(ssh: &Path, s: &Ssh) -> (Check, Resolved) {
    let mut args = vec!["-G".to_string()];
    args.extend(config_args(s));
    args.extend(["--".into(), s.host.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let id = "ssh.host";
    let out = match cmd::run_or_why(ssh, &args, &[], Duration::from_secs(10)) {
        Ok(out) => out,
        Err(why) => {
            let c = Check::fail(id, format!("`ssh -G`: {why}"), "check ~/.ssh/config");
            return (c, Resolved::default());
        }
    };
    if !out.ok {
        let why = out.stderr.lines().next().unwrap_or("").trim().to_string();
        let c = Check::fail(
            id,
            format!("ssh cannot read its configuration for {}: {why}", s.host),
            "fix ~/.ssh/config (or the profile's [ssh] config_file)",
        );
        return (c, Resolved::default());
    }
    let r = Resolved(out.stdout);
    let get = |k: &str| r.get(k).unwrap_or("?").to_string();
    let summary = format!(
        "{} is {}@{} port {}",
        s.host,
        get("user"),
        get("hostname"),
        get("port")
    );
    (Check::pass(id, summary), r)
}

const AGENT_FIX: &str = "keys in the agent need SSH_AUTH_SOCK in the service's environment: systemd `systemctl --user import-environment SSH_AUTH_SOCK` then `dockhand restart`; launchd agents see macOS's agent by themselves (README, \"The ssh engine\"); a key file without passphrase (IdentityFile) needs no agent";

/// The agent ssh will use: none (`IdentityAgent none`), the one the ssh
/// config names, else the service's SSH_AUTH_SOCK (Linux: the running
/// supervisor's environment), else this shell's.
fn agent(p: &Profile, r: &Resolved) -> Check {
    let id = "ssh.agent";
    match r.get("identityagent") {
        Some("none") => return without_agent(r),
        Some(a) if a.starts_with('/') => {
            return answers(id, a, "the ssh config's IdentityAgent");
        }
        _ => {}
    }
    let pid = crate::state::holder_pid(&p.lock_path());
    let (var, whose) = match pid.and_then(service_env) {
        Some(v) => (v, "the running supervisor"),
        None => (
            std::env::var_os("SSH_AUTH_SOCK").map(|v| v.to_string_lossy().into_owned()),
            "this shell (no supervisor runs)",
        ),
    };
    match var {
        None => Check::warn(id, format!("{whose} has no SSH_AUTH_SOCK"), AGENT_FIX),
        Some(sock) => answers(id, &sock, &format!("{whose}'s SSH_AUTH_SOCK")),
    }
}

/// Whether the agent at `sock` (`what`) accepts a connection.
fn answers(id: &str, sock: &str, what: &str) -> Check {
    match std::os::unix::net::UnixStream::connect(sock) {
        Ok(_) => Check::pass(id, format!("{what} is an agent that answers: {sock}")),
        Err(e) => Check::fail(
            id,
            format!("{what} is {sock}, which does not answer: {e}"),
            AGENT_FIX,
        ),
    }
}

/// `IdentityAgent none`: ssh uses key files only, so no agent is needed;
/// one of them must exist (a passphrase would fail BatchMode: ssh.login).
fn without_agent(r: &Resolved) -> Check {
    let id = "ssh.agent";
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let files: Vec<String> = r
        .all("identityfile")
        .map(|f| match (f.strip_prefix("~/"), &home) {
            (Some(rest), Some(h)) => h.join(rest),
            _ => PathBuf::from(f),
        })
        .filter(|f| f.is_file())
        .map(|f| f.display().to_string())
        .collect();
    if files.is_empty() {
        return Check::warn(
            id,
            "the ssh config says IdentityAgent none and names no key file that exists",
            "name a key file without passphrase with IdentityFile, or drop IdentityAgent none to use an agent",
        );
    }
    Check::pass(
        id,
        format!(
            "no agent (IdentityAgent none): ssh uses the key file {} without an agent (one with a passphrase fails the BatchMode login: see ssh.login)",
            files.join(", ")
        ),
    )
}

/// SSH_AUTH_SOCK in process `pid`'s environment (`None`: unset or not
/// readable; on macOS, always `None`).
fn service_env(pid: i32) -> Option<Option<String>> {
    let bytes =
        crate::sys::file::read_regular(Path::new(&format!("/proc/{pid}/environ")), 1 << 20, false)
            .ok()?;
    Some(
        bytes
            .split(|b| *b == 0)
            .find_map(|kv| kv.strip_prefix(b"SSH_AUTH_SOCK="))
            .map(|v| String::from_utf8_lossy(v).into_owned()),
    )
}

const SCRATCH_PREFIX: &str = "dockhand-doctor-";

/// The doctor's private directory and its ssh: both gone when this is
/// dropped (every return, and a panic). A signal that ends doctor skips
/// that: the ssh dies with doctor (`cmd::die_with_parent`) and the next
/// doctor removes the directory (`sweep`).
struct Scratch {
    dir: PathBuf,
    child: Option<Child>,
}

impl Scratch {
    /// A new private directory, `<tmp>/dockhand-doctor-<pid>`.
    fn new() -> Option<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        let tmp = std::env::temp_dir();
        sweep(&tmp);
        let dir = tmp.join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir).ok()?;
        Some(Scratch { dir, child: None })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Remove the private directories of doctors that are gone (killed
/// before they could): ours (same owner), named for a pid that no
/// longer runs.
fn sweep(tmp: &Path) {
    use std::os::unix::fs::MetadataExt;
    let uid = rustix::process::getuid().as_raw();
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH_PREFIX))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let ours = std::fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_dir() && m.uid() == uid);
        let gone = rustix::process::Pid::from_raw(pid)
            .is_some_and(|p| rustix::process::test_kill_process(p) == Err(rustix::io::Errno::SRCH));
        if ours && gone {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Log in with BatchMode and forward the remote socket for a moment:
/// the login, the remote engine's answer, and API version skew.
fn forward(ssh: &Path, p: &Profile, s: &Ssh, r: &Resolved) -> Vec<Check> {
    let Some(mut scratch) = Scratch::new() else {
        return vec![Check::warn(
            "ssh.login",
            "cannot make a private temp directory",
            "check TMPDIR",
        )];
    };
    let dir = scratch.dir.clone();
    let sock = dir.join("f.sock");
    let err = dir.join("ssh.err");
    let argv = crate::engine::ssh::argv(s, &sock);
    let child = std::fs::File::create(&err).ok().and_then(|f| {
        let mut c = Command::new(ssh);
        c.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f);
        cmd::die_with_parent(&mut c);
        c.spawn().ok()
    });
    let Some(child) = child else {
        return vec![Check::fail(
            "ssh.login",
            "cannot run ssh",
            "reinstall OpenSSH",
        )];
    };
    let child = scratch.child.insert(child);
    let up = wait_for_socket(child, &sock, Duration::from_secs(15));
    let version = up.then(|| get_version(&sock)).flatten();
    // A refused channel is logged before the client sees its EOF.
    let words = std::fs::read(&err)
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(16 * 1024)]).into_owned())
        .unwrap_or_default();
    let mut v = vec![login(p, s, r, up, &words)];
    if up {
        let refused = words.contains(": open failed:");
        let allowed = (version.is_none() && refused)
            .then(|| streamlocal_allowed(ssh, s, &dir))
            .flatten();
        v.push(remote(s, r, &version, refused, allowed));
        if let Some(ver) = &version {
            v.push(skew(&sock, ver));
        }
    }
    v
}

/// The forward's socket appears (true), or ssh exits, or `within` passes.
fn wait_for_socket(child: &mut Child, sock: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if sock.exists() {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn login(p: &Profile, s: &Ssh, r: &Resolved, up: bool, words: &str) -> Check {
    let id = "ssh.login";
    if up {
        return Check::pass(
            id,
            format!("BatchMode login to {} works and forwards a socket", s.host),
        );
    }
    let (what, fix) = login_failure(s, r, classify(words));
    Check::fail(
        id,
        format!("ssh to {}: {what}", s.host),
        format!("{fix}, then `dockhand up --profile {}`", p.name),
    )
}

/// What failed and its fix, by the runtime's own classification.
fn login_failure(s: &Ssh, r: &Resolved, class: Option<Class>) -> (String, String) {
    let login = login_command(s);
    let cfg = match &s.config_file {
        Some(f) => format!("{} (the profile's config_file)", f.display()),
        None => "~/.ssh/config".into(),
    };
    match class {
        Some(Class::HostKey(l)) => (
            format!("host key not accepted: {l}"),
            format!(
                "run `{login}` once in a terminal to check and accept the host key (dockhand never accepts one itself)"
            ),
        ),
        Some(Class::HostKeyChanged {
            line,
            fingerprint,
            remove,
        }) => (
            format!("the host key has CHANGED: {line}"),
            changed_key_fix(s, fingerprint.as_deref(), remove.as_deref()),
        ),
        Some(Class::Auth(l)) => (
            format!("login refused: {l}"),
            format!(
                "load your key into the agent (`ssh-add`) where the service sees it (ssh.agent), or name a key file without passphrase with IdentityFile in {cfg}; `{login}` in a terminal shows what ssh tries"
            ),
        ),
        Some(Class::Config(l)) => (format!("ssh configuration: {l}"), format!("fix {cfg}")),
        Some(Class::Network(l)) => {
            let get = |k: &str| r.get(k).unwrap_or("?").to_string();
            let (h, port) = (get("hostname"), get("port"));
            let fix = format!(
                "check that {h} is up and reachable from here and that its sshd listens on port {port} (`{}` shows the address and port ssh uses); dockhand itself retries network failures",
                resolve_command(s)
            );
            (format!("network: {l}"), fix)
        }
        Some(Class::Other(l) | Class::ChannelRefused(l)) => {
            (l, format!("run `{login}` in a terminal to see what fails"))
        }
        None => (
            "no forward within 15 s".into(),
            format!("run `{login}` in a terminal to see what fails"),
        ),
    }
}

/// Where the probe asks the server to listen: a path no server can bind
/// (`/dev/null` is not a directory), so nothing is made on the remote host.
const PROBE_LISTEN: &str = "/dev/null/dockhand-doctor.sock";

/// Whether the server lets this login forward unix sockets at all. The
/// server answers a refused `-L` channel exactly as one to a socket where
/// nothing listens (openssh-portable serverloop.c
/// `server_request_direct_streamlocal`: "open failed" either way), but a
/// remote forward request it forbids gets a debug message first
/// (`server_input_global_request`: "Server has disabled streamlocal
/// forwarding.", shown with `-v`) where an allowed one fails only to bind
/// `PROBE_LISTEN`. The same settings rule both (AllowStreamLocalForwarding,
/// DisableForwarding, restrict / no-port-forwarding), except
/// AllowStreamLocalForwarding local or remote, which allow one direction.
/// `None`: no answer (a login that failed this time, a timeout).
fn streamlocal_allowed(ssh: &Path, s: &Ssh, dir: &Path) -> Option<bool> {
    let mut argv = crate::engine::ssh::argv(s, &dir.join("f.sock"));
    let at = argv.iter().position(|a| a == "-L")?;
    argv[at] = "-R".into();
    argv[at + 1] = format!("{PROBE_LISTEN}:{}", dir.join("probe.sock").display());
    argv[0] = "-v".into(); // in place of argv[0], "ssh"
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = cmd::run_or_why(ssh, &args, &[], Duration::from_secs(15)).ok()?;
    if out.stderr.contains("Remote: Server has disabled") {
        return Some(false);
    }
    out.stderr
        .contains("remote port forwarding failed")
        .then_some(true)
}

/// The remote engine's answer through the forward; if none, why:
/// `refused` (the server refused the channel) told apart by `allowed`
/// (`streamlocal_allowed`).
fn remote(
    s: &Ssh,
    r: &Resolved,
    version: &Option<serde_json::Value>,
    refused: bool,
    allowed: Option<bool>,
) -> Check {
    let id = "ssh.remote_socket";
    let at = format!("{}:{}", s.host, s.remote_socket);
    if let Some(v) = version {
        let words: Vec<&str> = [&v["Platform"]["Name"], &v["Version"]]
            .into_iter()
            .filter_map(|w| w.as_str().map(str::trim).filter(|w| !w.is_empty()))
            .collect();
        let what = if words.is_empty() {
            "an engine".to_string()
        } else {
            words.join(" ")
        };
        return Check::pass(id, format!("{at} answers: {what}"));
    }
    let user = r.get("user").unwrap_or("the login user");
    match (refused, allowed) {
        (true, Some(false)) => Check::fail(
            id,
            format!(
                "{at}: the server forbids forwarding unix sockets for this login (it refused a test forward: \"Server has disabled streamlocal forwarding\")"
            ),
            format!(
                "on {}, allow it in sshd_config (AllowStreamLocalForwarding yes, and no DisableForwarding yes, in the Match block that applies to {user} too) and reload sshd; or drop restrict / no-port-forwarding from the key's line in authorized_keys",
                s.host
            ),
        ),
        (true, Some(true)) => Check::fail(
            id,
            format!(
                "{at} does not answer: the server allows socket forwarding, and nothing there accepts the connection (the remote engine is down, remote_socket is not its socket, or {user} may not open it)"
            ),
            format!(
                "start the engine on {} (such as `sudo systemctl start docker` there), check remote_socket in the profile, and that {user} may open it (the docker group)",
                s.host
            ),
        ),
        (true, None) => Check::fail(
            id,
            format!("{at} does not answer (the server refused the channel)"),
            "start the engine on the remote host, check remote_socket, and that its sshd allows socket forwarding (AllowStreamLocalForwarding, DisableForwarding, no-port-forwarding in authorized_keys)",
        ),
        (false, _) => Check::fail(
            id,
            format!("{at} does not answer GET /version as a docker engine"),
            "check that remote_socket is the engine's API socket",
        ),
    }
}

/// The docker CLI's API version against the remote engine's range.
fn skew(sock: &Path, v: &serde_json::Value) -> Check {
    let id = "ssh.api_version";
    let server = v["ApiVersion"].as_str().unwrap_or("?").to_string();
    let min = v["MinAPIVersion"].as_str().unwrap_or("1.12").to_string();
    let client = crate::sys::which("docker").and_then(|d| {
        let host = format!("unix://{}", sock.display());
        let args = ["-H", &host, "version", "--format", "{{.Client.APIVersion}}"];
        let out = cmd::run_or_why(&d, &args, &[], Duration::from_secs(10)).ok()?;
        out.stdout.lines().next().map(|l| l.trim().to_string())
    });
    let Some(client) = client.filter(|c| !c.is_empty()) else {
        return Check::warn(
            id,
            format!("remote engine API {server}; no docker CLI to compare"),
            "install the docker CLI",
        );
    };
    let n = |s: &str| cmd::version(s).unwrap_or_default();
    if n(&client) < n(&min) {
        return Check::fail(
            id,
            format!(
                "the docker CLI speaks API {client}, older than the remote engine accepts ({min})"
            ),
            "upgrade the docker CLI",
        );
    }
    if n(&client) > n(&server) {
        return Check::warn(
            id,
            format!(
                "the docker CLI speaks API {client}, the remote engine {server}: the CLI negotiates down (dockhand answers /_ping with the remote's version, also while reconnecting); clients that pin DOCKER_API_VERSION above {server} are refused"
            ),
            "nothing to do unless a tool pins the API version",
        );
    }
    Check::pass(
        id,
        format!("docker CLI API {client}, remote engine API {server}"),
    )
}

/// `GET /version` over the forward (bounded).
fn get_version(sock: &Path) -> Option<serde_json::Value> {
    let mut s = std::os::unix::net::UnixStream::connect(sock).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
        .ok()?;
    let mut buf = Vec::new();
    s.take(256 * 1024).read_to_end(&mut buf).ok()?;
    let at = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    if !buf.starts_with(b"HTTP/1.0 200") && !buf.starts_with(b"HTTP/1.1 200") {
        return None;
    }
    serde_json::from_slice(&buf[at + 4..]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn ssh(config_file: Option<&str>) -> Ssh {
        Ssh {
            host: "devbox".into(),
            remote_socket: "/var/run/docker.sock".into(),
            keepalive: Duration::from_secs(10),
            config_file: config_file.map(PathBuf::from),
        }
    }

    /// `ssh -G devbox` as OpenSSH prints it (the keys used here).
    fn resolved(extra: &str) -> Resolved {
        Resolved(format!(
            "user root\nhostname 10.1.2.3\nport 2222\nidentitiesonly yes\n{extra}"
        ))
    }

    #[test]
    fn login_fixes_follow_the_runtimes_classes() {
        let s = ssh(None);
        let r = resolved("");
        let refused = "ssh: connect to host 10.1.2.3 port 2222: Connection refused\n";
        let (what, fix) = login_failure(&s, &r, classify(refused));
        assert!(what.contains("Connection refused"), "{what}");
        for want in ["10.1.2.3 is up", "listens on port 2222", "`ssh -G devbox`"] {
            assert!(fix.contains(want), "{want:?} not in {fix}");
        }
        assert!(!fix.contains("host key") && !fix.contains("agent"), "{fix}");
        // The profile's config file is in every command shown.
        let s = ssh(Some("/home/u/my ssh/conf"));
        let (_, fix) = login_failure(&s, &r, classify(refused));
        assert!(
            fix.contains("`ssh -G -F '/home/u/my ssh/conf' devbox`"),
            "{fix}"
        );
        let unknown = "No ED25519 host key is known for [10.1.2.3]:2222 and you have requested strict checking.\nHost key verification failed.\n";
        let (_, fix) = login_failure(&s, &r, classify(unknown));
        assert!(
            fix.contains("run `ssh -F '/home/u/my ssh/conf' devbox` once"),
            "{fix}"
        );
        let denied = "root@10.1.2.3: Permission denied (publickey).\n";
        let (_, fix) = login_failure(&s, &r, classify(denied));
        assert!(
            fix.contains("`ssh -F '/home/u/my ssh/conf' devbox`"),
            "{fix}"
        );
        assert!(fix.contains("IdentityFile in /home/u/my ssh/conf"), "{fix}");
        let changed = "Host key for [10.1.2.3]:2222 has changed and you have requested strict checking.\nHost key verification failed.\n";
        let (what, fix) = login_failure(&s, &r, classify(changed));
        assert!(what.contains("CHANGED"), "{what}");
        assert!(
            fix.contains("verify the new key") && fix.contains("`ssh-keygen -R devbox`"),
            "{fix}"
        );
    }

    #[test]
    fn forwarding_forbidden_and_engine_down_are_told_apart() {
        let (s, r) = (ssh(None), resolved(""));
        let forbidden = remote(&s, &r, &None, true, Some(false));
        let down = remote(&s, &r, &None, true, Some(true));
        assert_eq!(
            (forbidden.status, down.status),
            (Status::Fail, Status::Fail)
        );
        assert!(
            forbidden
                .summary
                .contains("forbids forwarding unix sockets"),
            "{forbidden:?}"
        );
        let fix = forbidden.fix.unwrap();
        assert!(
            fix.contains("AllowStreamLocalForwarding yes") && fix.contains("DisableForwarding"),
            "{fix}"
        );
        assert!(!fix.contains("start the engine"), "{fix}");
        assert!(down.summary.contains("does not answer"), "{down:?}");
        let fix = down.fix.unwrap();
        assert!(
            fix.contains("start the engine on devbox") && fix.contains("remote_socket"),
            "{fix}"
        );
        assert!(!fix.contains("AllowStreamLocalForwarding"), "{fix}");
    }

    #[test]
    fn an_engine_without_a_platform_name_is_named_without_a_gap() {
        let (s, r) = (ssh(None), resolved(""));
        let v = serde_json::json!({"Platform": {"Name": ""}, "Version": "20.10.24+dfsg1"});
        let c = remote(&s, &r, &Some(v), false, None);
        assert_eq!(
            c.summary,
            "devbox:/var/run/docker.sock answers: 20.10.24+dfsg1"
        );
        let v = serde_json::json!({"Platform": {"Name": "Docker Engine - Community"}, "Version": "28.2.2"});
        let c = remote(&s, &r, &Some(v), false, None);
        assert!(
            c.summary
                .ends_with("answers: Docker Engine - Community 28.2.2"),
            "{}",
            c.summary
        );
    }

    #[test]
    fn identity_agent_none_with_a_key_file_needs_no_agent() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_test");
        std::fs::write(&key, "key").unwrap();
        let text = "[profiles.default]\nengine = \"ssh\"\nstate_dir = \"/nonexistent/dh\"\n[profiles.default.ssh]\nhost = \"devbox\"\n";
        let env = crate::config::Env::bare("/home/u".into());
        let source = crate::config::Source::Explicit("/home/u/c.toml".into());
        let cfg = crate::config::Config::parse(source, env, text.into()).unwrap();
        let p = cfg.profile("default").unwrap();
        let r = resolved(&format!(
            "identityagent none\nidentityfile {}\n",
            key.display()
        ));
        let c = agent(&p, &r);
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert!(
            c.summary.contains("without an agent") && c.summary.contains("id_test"),
            "{c:?}"
        );
        let r = resolved("identityagent none\nidentityfile /nonexistent/id_x\n");
        assert_eq!(agent(&p, &r).status, Status::Warn);
    }
}
