//! Checks of the Docker side: the profile's socket (present, ours, not
//! open to others, answering), the docker CLI's current context and
//! `DOCKER_HOST`, what tools that ignore contexts use
//! (`/var/run/docker.sock`), and `docker system df`.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Check, Fix, cmd};
use crate::config::Profile;
use crate::probe::{self, Ping};

const DOCKER_TIMEOUT: Duration = Duration::from_secs(10);

fn docker() -> Option<PathBuf> {
    crate::sys::which("docker")
}

fn docker_out(args: &[&str]) -> Option<cmd::Out> {
    docker_or_why(args).ok()
}

fn docker_or_why(args: &[&str]) -> Result<cmd::Out, String> {
    let docker = docker().ok_or("the docker CLI is not on PATH")?;
    cmd::run_or_why(&docker, args, &[], DOCKER_TIMEOUT)
}

fn host_of(socket: &Path) -> String {
    format!("unix://{}", socket.display())
}

/// The socket docker clients should use: `listen` (dockhand's on-demand
/// proxy) when set, else the engine's.
fn client_socket(p: &Profile) -> &Path {
    p.listen.as_deref().unwrap_or(&p.socket)
}

/// A docker host (`unix://<path>`) that names `sock`.
fn names_socket(host: &str, sock: &Path) -> bool {
    host.strip_prefix("unix://")
        .is_some_and(|x| same_path(Path::new(x), sock))
}

/// The same socket file, allowing for links and `/private/tmp`-style paths.
fn same_path(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    a == b || canon(a) == canon(b)
}

/// The engine's socket: present, a socket, yours, not open to others
/// (`mode`), answering.
pub fn socket(p: &Profile) -> Vec<Check> {
    let s = &p.socket;
    let Ok(md) = std::fs::symlink_metadata(s) else {
        return vec![missing(p)];
    };
    if !md.file_type().is_socket() {
        return vec![Check::fail(
            "socket",
            format!("{} exists but is not a socket", s.display()),
            "move it away, or set another socket path in the profile",
        )];
    }
    let uid = rustix::process::geteuid().as_raw();
    vec![
        owner(s, md.uid(), uid),
        mode(s, md.mode() & 0o7777, md.uid() == uid),
        ping(p),
    ]
}

/// No socket: a warning when the engine is held stopped on purpose
/// (`down`, idle_stop, on_demand), else a failure.
fn missing(p: &Profile) -> Check {
    let s = p.socket.display();
    let up = format!("dockhand up --profile {}", p.name);
    let held = crate::state::holder_pid(&p.lock_path())
        .and_then(|_| crate::control_socket::query_state(p, Duration::from_secs(2)))
        .and_then(|st| st.held);
    match held {
        Some(h) => Check::warn("socket", format!("no socket at {s}: engine {h}"), up),
        None => Check::fail(
            "socket",
            format!("no socket at {s} (the engine is not running)"),
            up,
        ),
    }
}

/// The socket belongs to the user running doctor (`uid`).
fn owner(s: &Path, owner: u32, uid: u32) -> Check {
    if owner == uid {
        return Check::pass("socket", format!("{} present, yours", s.display()));
    }
    Check::fail(
        "socket",
        format!(
            "{} belongs to uid {owner}, not to you (uid {uid})",
            s.display()
        ),
        "stop the other user's engine or set another socket path",
    )
}

/// The engine answers `/_ping` on the socket.
fn ping(p: &Profile) -> Check {
    let s = &p.socket;
    let ping = probe::ping_blocking(s, p.probe_timeout.min(Duration::from_secs(5)));
    if ping == Ping::Ok {
        return Check::pass("socket.ping", "answers /_ping");
    }
    Check::fail(
        "socket.ping",
        format!("{}: {ping}", s.display()),
        format!(
            "dockhand up --profile {} (see `dockhand logs` for why it isn't ready)",
            p.name
        ),
    )
}

/// Whoever may write to the Docker socket is root on the engine: 0600.
/// A group- or world-writable socket in a private directory (dockerd
/// makes its socket 0660 for the `docker` group) is still unreachable for
/// others, and passes.
fn mode(s: &Path, mode: u32, ours: bool) -> Check {
    let id = "socket.mode";
    if mode & 0o022 == 0 {
        return Check::pass(id, format!("mode {mode:04o}"));
    }
    let private_dir = s
        .parent()
        .and_then(|d| std::fs::metadata(d).ok())
        .is_some_and(|m| m.uid() == rustix::process::geteuid().as_raw() && m.mode() & 0o077 == 0);
    if private_dir {
        return Check::pass(
            id,
            format!("mode {mode:04o}, in a private (0700) directory: only you can reach it"),
        );
    }
    let c = Check::fail(
        id,
        format!("mode {mode:04o}: others can connect, and the Docker socket is root-equivalent"),
        format!("chmod 600 {}", s.display()),
    );
    if ours {
        c.repair(Fix::Mode(s.to_path_buf(), 0o600))
    } else {
        c
    }
}

/// The docker CLI's current context (or DOCKER_HOST) points at the
/// profile's socket: the classic "Cannot connect to the Docker daemon at
/// unix:///var/run/docker.sock".
pub fn context(p: &Profile) -> Vec<Check> {
    let sock = client_socket(p);
    let want = host_of(sock);
    if let Some(h) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        return vec![docker_host(&h, sock, &want)];
    }
    if docker().is_none() {
        return vec![];
    }
    let (name, host) = match current_context() {
        Ok(c) => c,
        Err(why) => {
            return vec![Check::warn(
                "context",
                format!("`docker context inspect` {why}"),
                "check your docker CLI config (DOCKER_CONFIG, ~/.docker/config.json)",
            )];
        }
    };
    if names_socket(&host, sock) {
        return vec![Check::pass(
            "context",
            format!("docker context `{name}` → {host}"),
        )];
    }
    let now = format!(
        "docker context `{name}` → {host}, not this profile's socket {}",
        sock.display()
    );
    vec![switch_context(p, sock, want, now)]
}

/// The current context's name and host, or why they can't be read.
fn current_context() -> Result<(String, String), String> {
    // `context inspect` without a name is the current context; `context
    // show` only exists since docker 23.
    let o = docker_or_why(&[
        "context",
        "inspect",
        "--format",
        "{{.Name}}|{{.Endpoints.docker.Host}}",
    ])?;
    let parsed = o.ok.then(|| o.stdout.trim().split_once('|')).flatten();
    parsed
        .map(|(n, h)| (n.to_string(), h.to_string()))
        .ok_or_else(|| format!("failed: {}", o.stderr.trim()))
}

/// The current context (`now`) points elsewhere: the failure and its fix,
/// to use a context that already points at our socket (Colima makes one
/// named after the instance), else one of our own; one of our name that
/// dockhand did not make is the user's: never touched.
fn switch_context(p: &Profile, sock: &Path, want: String, now: String) -> Check {
    let (target, create) = match context_for(sock) {
        Some(n) => (n, false),
        None => (crate::context::name(&p.name), true),
    };
    if create && let Some(why) = foreign_context(p, &target, &want) {
        return Check::fail(
            "context",
            format!("{now}; {why}"),
            format!(
                "by hand: docker context create <another name> --docker host={want} && docker context use <another name>"
            ),
        );
    }
    let how = if create {
        format!(
            "docker context create {target} --docker host={want} (`update` if it exists) && docker context use {target}"
        )
    } else {
        format!("docker context use {target}")
    };
    Check::fail("context", now, how).repair(Fix::Context {
        name: target,
        host: want,
        create,
    })
}

/// Why context `name` can't be pointed at `want`: it exists, and dockhand
/// did not make it.
fn foreign_context(p: &Profile, name: &str, want: &str) -> Option<String> {
    let e = existing_context(name)?;
    let crate::context::Plan::Foreign(h) = crate::context::plan(Some(&e), want, "") else {
        return None;
    };
    Some(crate::context::foreign_message(name, &h, want, p))
}

/// The context named `name`, if the docker CLI has one.
fn existing_context(name: &str) -> Option<crate::context::Existing> {
    let args = crate::context::inspect_args(name);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = docker_out(&args).filter(|o| o.ok)?;
    crate::context::parse_inspect(&o.stdout)
}

/// `DOCKER_HOST` overrides every context: it must name `sock`.
fn docker_host(h: &str, sock: &Path, want: &str) -> Check {
    if names_socket(h, sock) {
        return Check::pass("context", format!("DOCKER_HOST={h}: this profile's socket"));
    }
    Check::fail(
        "context",
        format!("DOCKER_HOST={h} points elsewhere, and it overrides every context"),
        format!("export DOCKER_HOST={want} (or unset it and use a context) in your shell profile"),
    )
}

/// The name of a docker context that points at `sock`, if one does.
fn context_for(sock: &Path) -> Option<String> {
    let o = docker_out(&["context", "ls", "--format", "{{.Name}}|{{.DockerEndpoint}}"])
        .filter(|o| o.ok)?;
    o.stdout.lines().find_map(|l| {
        let (n, h) = l.split_once('|')?;
        names_socket(h, sock).then(|| n.trim().to_string())
    })
}

/// `--fix`: make context `name` current, first creating it (or updating
/// it, if dockhand made it) to point at `host` when `create`; a user's
/// context of that name is refused.
pub fn use_context(p: &Profile, name: &str, host: &str, create: bool) -> Result<(), String> {
    let ran = |args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match docker_out(&args) {
            Some(o) => Ok(crate::context::Ran {
                ok: o.ok,
                stdout: o.stdout,
                stderr: o.stderr,
            }),
            None => Err(format!("docker {}: did not run", args.join(" "))),
        }
    };
    if create {
        let failed = |args: &[String], e: &str| format!("docker {}: {e}", args.join(" "));
        if let crate::context::Plan::Foreign(h) =
            crate::context::write_with(name, host, p, ran, failed)?
        {
            return Err(crate::context::foreign_message(name, &h, host, p));
        }
    }
    let args = ["context".to_string(), "use".into(), name.into()];
    match ran(&args)? {
        o if o.ok => Ok(()),
        o => Err(format!("docker {}: {}", args.join(" "), o.stderr.trim())),
    }
}

/// Tools that ignore docker contexts (and DOCKER_HOST-less scripts) use
/// /var/run/docker.sock.
pub fn contextless(p: &Profile) -> Check {
    contextless_at(p, Path::new("/var/run/docker.sock"))
}

fn contextless_at(p: &Profile, var: &Path) -> Check {
    let id = "socket.default";
    let sock = client_socket(p);
    if same_path(var, sock) {
        return Check::pass(id, "/var/run/docker.sock is this profile's socket");
    }
    let fix = if cfg!(target_os = "macos") {
        format!("sudo ln -sf {} /var/run/docker.sock", sock.display())
    } else {
        format!("point such tools at DOCKER_HOST=unix://{}", sock.display())
    };
    match std::fs::symlink_metadata(var) {
        Err(_) => Check::warn(
            id,
            "no /var/run/docker.sock: tools that ignore docker contexts find no engine",
            fix,
        ),
        Ok(_) => {
            let ping = probe::ping_blocking(var, Duration::from_secs(2));
            if ping.is_ok() && shares_the_default_bridge(p) {
                return Check::warn(
                    id,
                    "/var/run/docker.sock is another dockerd's (the system's docker.service?): \
                     it and this profile's dockerd share the default bridge docker0 and its \
                     addresses, so their containers can get the same IP",
                    "let this profile's be the only one: `sudo systemctl disable --now \
                     docker.service docker.socket`; or give the profile a bridge of its own \
                     ([profiles.<p>.dockerd] args = [\"--bridge=none\"], or a bridge you made)",
                );
            }
            Check::warn(
                id,
                format!(
                    "/var/run/docker.sock is another engine's ({ping}): tools that ignore docker contexts use that one"
                ),
                fix,
            )
        }
    }
}

/// A dockerd profile without a bridge of its own uses `docker0`, as the
/// system's dockerd does (dockerd's `-b`/`--bridge`).
fn shares_the_default_bridge(p: &Profile) -> bool {
    let Some(d) = &p.dockerd else {
        return false;
    };
    !d.args
        .iter()
        .any(|a| a == "-b" || a == "--bridge" || a.starts_with("--bridge=") || a.starts_with("-b="))
}

/// `docker system df`: what could be reclaimed (only when docker answers).
pub fn system_df(p: &Profile) -> Option<Check> {
    let sock = host_of(&p.socket);
    if !probe::ping_blocking(&p.socket, Duration::from_secs(2)).is_ok() {
        return None;
    }
    let out = docker_out(&["-H", &sock, "system", "df", "--format", "{{json .}}"])?;
    if !out.ok {
        return Some(Check::warn(
            "docker.df",
            format!("docker system df failed: {}", out.stderr.trim()),
            "see `docker system df`",
        ));
    }
    let parts: Vec<String> = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            format!(
                "{} {} ({} reclaimable)",
                v["Type"].as_str().unwrap_or("?").to_lowercase(),
                v["Size"].as_str().unwrap_or("?"),
                v["Reclaimable"].as_str().unwrap_or("?")
            )
        })
        .collect();
    Some(Check::pass("docker.df", parts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn profile(engine_table: &str) -> Profile {
        let text = format!("[profiles.default]\n{engine_table}\n");
        let env = crate::config::Env::bare("/home/u".into());
        let source = crate::config::Source::Explicit("/home/u/c.toml".into());
        let cfg = crate::config::Config::parse(source, env, text).unwrap();
        cfg.profile("default").unwrap()
    }

    /// A socket that answers every connection's request with 200 OK.
    fn system_engine(dir: &Path) -> std::path::PathBuf {
        use std::io::{Read, Write};
        let path = dir.join("docker.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let _ = c.read(&mut [0u8; 1024]);
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
            }
        });
        path
    }

    #[test]
    fn a_second_dockerd_on_the_default_bridge_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let var = system_engine(dir.path());
        let c = contextless_at(&profile("[profiles.default.dockerd]"), &var);
        assert_eq!(c.status, Status::Warn);
        assert!(c.summary.contains("docker0"), "{}", c.summary);
        let fix = c.fix.unwrap();
        assert!(
            fix.contains("systemctl disable --now docker.service"),
            "{fix}"
        );
        assert!(fix.contains("--bridge=none"), "{fix}");
    }

    #[test]
    fn a_dockerd_with_a_bridge_of_its_own_or_another_kind_is_not_warned_of_the_bridge() {
        let dir = tempfile::tempdir().unwrap();
        let var = system_engine(dir.path());
        for table in [
            "[profiles.default.dockerd]\nargs = [\"--bridge=none\"]",
            "[profiles.default.dockerd]\nargs = [\"-b\", \"br-dh\"]",
            "socket = \"/s/e.sock\"\n[profiles.default.command]\nargv = [\"/bin/true\"]",
        ] {
            let c = contextless_at(&profile(table), &var);
            assert_eq!(c.status, Status::Warn, "{table}");
            assert!(
                c.summary.contains("another engine's (answers"),
                "{table}: {}",
                c.summary
            );
        }
    }
}
