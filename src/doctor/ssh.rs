//! Checks of an `engine = "ssh"` profile: the host resolves (`ssh -G`),
//! the service sees an ssh agent, a BatchMode login with the forward works
//! (a short-lived forward of its own, in a private directory), the remote
//! socket answers through it, and the docker CLI's API version against
//! the remote engine's.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Check, cmd};
use crate::config::{Profile, Ssh};
use crate::engine::ssh::{Class, classify};

pub fn checks(p: &Profile) -> Vec<Check> {
    let (Some(s), Some(ssh)) = (&p.ssh, crate::sys::which("ssh")) else {
        return Vec::new(); // binary.ssh says what is missing
    };
    let mut v = vec![resolves(&ssh, s), agent(p)];
    v.extend(forward(&ssh, p, s));
    v
}

fn config_args(s: &Ssh) -> Vec<String> {
    match &s.config_file {
        Some(f) => vec!["-F".into(), f.display().to_string()],
        None => Vec::new(),
    }
}

/// `ssh -G <host>`: what ssh makes of the host (user, address, port).
fn resolves(ssh: &Path, s: &Ssh) -> Check {
    let mut args = vec!["-G".to_string()];
    args.extend(config_args(s));
    args.extend(["--".into(), s.host.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let id = "ssh.host";
    let out = match cmd::run_or_why(ssh, &args, &[], Duration::from_secs(10)) {
        Ok(out) => out,
        Err(why) => return Check::fail(id, format!("`ssh -G`: {why}"), "check ~/.ssh/config"),
    };
    if !out.ok {
        let why = out.stderr.lines().next().unwrap_or("").trim().to_string();
        return Check::fail(
            id,
            format!("ssh cannot read its configuration for {}: {why}", s.host),
            "fix ~/.ssh/config (or the profile's [ssh] config_file)",
        );
    }
    let get = |k: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .unwrap_or("?")
            .to_string()
    };
    Check::pass(
        id,
        format!(
            "{} is {}@{} port {}",
            s.host,
            get("user"),
            get("hostname"),
            get("port")
        ),
    )
}

/// The agent the service sees: the running supervisor's SSH_AUTH_SOCK
/// (Linux: its environment), else this shell's.
fn agent(p: &Profile) -> Check {
    let id = "ssh.agent";
    let pid = crate::state::holder_pid(&p.lock_path());
    let (var, whose) = match pid.and_then(service_env) {
        Some(v) => (v, "the running supervisor"),
        None => (
            std::env::var_os("SSH_AUTH_SOCK").map(|v| v.to_string_lossy().into_owned()),
            "this shell (no supervisor runs)",
        ),
    };
    let fix = "keys in the agent need SSH_AUTH_SOCK in the service's environment: systemd `systemctl --user import-environment SSH_AUTH_SOCK` then `dockhand restart`; launchd agents see macOS's agent by themselves (README, \"The ssh engine\"); a key file without passphrase (IdentityFile) needs no agent";
    match var {
        None => Check::warn(id, format!("{whose} has no SSH_AUTH_SOCK"), fix),
        Some(sock) => match std::os::unix::net::UnixStream::connect(&sock) {
            Ok(_) => Check::pass(id, format!("{whose} sees the agent at {sock}")),
            Err(e) => Check::fail(
                id,
                format!("{whose} has SSH_AUTH_SOCK={sock}, which does not answer: {e}"),
                fix,
            ),
        },
    }
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

/// A private directory for the doctor's own forward.
fn private_dir() -> Option<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let d = std::env::temp_dir().join(format!("dockhand-doctor-{}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&d).ok()?;
    Some(d)
}

/// Log in with BatchMode and forward the remote socket for a moment:
/// the login, the remote engine's answer, and API version skew.
fn forward(ssh: &Path, p: &Profile, s: &Ssh) -> Vec<Check> {
    let Some(dir) = private_dir() else {
        return vec![Check::warn(
            "ssh.login",
            "cannot make a private temp directory",
            "check TMPDIR",
        )];
    };
    let sock = dir.join("f.sock");
    let argv = crate::engine::ssh::argv(s, &sock);
    let err = dir.join("ssh.err");
    let child = std::fs::File::create(&err).ok().and_then(|f| {
        Command::new(ssh)
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .ok()
    });
    let Some(mut child) = child else {
        let _ = std::fs::remove_dir_all(&dir);
        return vec![Check::fail(
            "ssh.login",
            "cannot run ssh",
            "reinstall OpenSSH",
        )];
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut up = false;
    while Instant::now() < deadline {
        if sock.exists() {
            up = true;
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let version = up.then(|| get_version(&sock)).flatten();
    // A refused channel is logged before the client sees its EOF.
    let words = std::fs::read(&err)
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(16 * 1024)]).into_owned())
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let mut v = vec![login(p, s, up, &words)];
    if up {
        v.push(remote(s, &version, &words));
        if let Some(ver) = &version {
            v.push(skew(&sock, ver));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    v
}

fn login(p: &Profile, s: &Ssh, up: bool, words: &str) -> Check {
    let id = "ssh.login";
    if up {
        return Check::pass(
            id,
            format!("BatchMode login to {} works and forwards a socket", s.host),
        );
    }
    let fix = format!(
        "run `ssh {}` once in a terminal (host key, key, agent), then `dockhand up --profile {}`",
        s.host, p.name
    );
    let what = match classify(words) {
        Some(Class::HostKey(l)) => format!("host key not accepted: {l}"),
        Some(Class::Auth(l)) => format!("login refused: {l}"),
        Some(Class::Config(l)) => format!("ssh configuration: {l}"),
        Some(Class::Network(l) | Class::Other(l) | Class::ChannelRefused(l)) => l,
        None => "no forward within 15 s".into(),
    };
    Check::fail(id, format!("ssh to {}: {what}", s.host), fix)
}

fn remote(s: &Ssh, version: &Option<serde_json::Value>, words: &str) -> Check {
    let id = "ssh.remote_socket";
    match version {
        Some(v) => Check::pass(
            id,
            format!(
                "{}:{} answers: {} {}",
                s.host,
                s.remote_socket,
                v["Platform"]["Name"].as_str().unwrap_or("engine"),
                v["Version"].as_str().unwrap_or("?")
            ),
        ),
        None => {
            let refused = words.contains(": open failed:");
            Check::fail(
                id,
                format!(
                    "{}:{} does not answer{}",
                    s.host,
                    s.remote_socket,
                    if refused {
                        " (the server refused the channel)"
                    } else {
                        ""
                    }
                ),
                "start the engine on the remote host, check remote_socket, and that its sshd allows socket forwarding (AllowStreamLocalForwarding, DisableForwarding, no-port-forwarding in authorized_keys)",
            )
        }
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
