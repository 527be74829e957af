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

/// The same socket file, allowing for links and `/private/tmp`-style paths.
fn same_path(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    a == b || canon(a) == canon(b)
}

pub fn socket(p: &Profile) -> Vec<Check> {
    let s = &p.socket;
    let md = match std::fs::symlink_metadata(s) {
        Ok(m) => m,
        Err(_) => {
            let up = format!("dockhand up --profile {}", p.name);
            // Held stopped on purpose (`down`, idle_stop, on_demand): not a fault.
            let held = crate::state::holder_pid(&p.lock_path())
                .and_then(|_| crate::control_socket::query_state(p, Duration::from_secs(2)))
                .and_then(|st| st.held);
            return vec![match held {
                Some(h) => Check::warn(
                    "socket",
                    format!("no socket at {}: engine {h}", s.display()),
                    up,
                ),
                None => Check::fail(
                    "socket",
                    format!("no socket at {} (the engine is not running)", s.display()),
                    up,
                ),
            }];
        }
    };
    if !md.file_type().is_socket() {
        return vec![Check::fail(
            "socket",
            format!("{} exists but is not a socket", s.display()),
            "move it away, or set another socket path in the profile",
        )];
    }
    let uid = rustix::process::geteuid().as_raw();
    let mut v = vec![if md.uid() == uid {
        Check::pass("socket", format!("{} present, yours", s.display()))
    } else {
        Check::fail(
            "socket",
            format!(
                "{} belongs to uid {}, not to you (uid {uid})",
                s.display(),
                md.uid()
            ),
            "stop the other user's engine or set another socket path",
        )
    }];
    v.push(mode(s, md.mode() & 0o7777, md.uid() == uid));
    let ping = probe::ping_blocking(s, p.probe_timeout.min(Duration::from_secs(5)));
    v.push(if ping == Ping::Ok {
        Check::pass("socket.ping", "answers /_ping")
    } else {
        Check::fail(
            "socket.ping",
            format!("{}: {ping}", s.display()),
            format!(
                "dockhand up --profile {} (see `dockhand logs` for why it isn't ready)",
                p.name
            ),
        )
    });
    v
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
    // `context inspect` without a name is the current context; `context
    // show` only exists since docker 23.
    let current = docker_or_why(&[
        "context",
        "inspect",
        "--format",
        "{{.Name}}|{{.Endpoints.docker.Host}}",
    ]);
    let parsed = current.as_ref().ok().filter(|o| o.ok).and_then(|o| {
        let (n, h) = o.stdout.trim().split_once('|')?;
        Some((n.to_string(), h.to_string()))
    });
    let Some((name, host)) = parsed else {
        let why = match current {
            Err(e) => e,
            Ok(o) => format!("failed: {}", o.stderr.trim()),
        };
        return vec![Check::warn(
            "context",
            format!("`docker context inspect` {why}"),
            "check your docker CLI config (DOCKER_CONFIG, ~/.docker/config.json)",
        )];
    };
    if host
        .strip_prefix("unix://")
        .is_some_and(|x| same_path(Path::new(x), sock))
    {
        return vec![Check::pass(
            "context",
            format!("docker context `{name}` → {host}"),
        )];
    }
    // A context that already points at our socket (Colima makes one named
    // after the instance), else one of our own; one of our name that
    // dockhand did not make is the user's: never touched.
    let (target, create) = match context_for(sock) {
        Some(n) => (n, false),
        None => (crate::context::name(&p.name), true),
    };
    let now = format!(
        "docker context `{name}` → {host}, not this profile's socket {}",
        sock.display()
    );
    if create && let Some(e) = existing_context(&target) {
        use crate::context::Plan;
        if let Plan::Foreign(h) = crate::context::plan(Some(&e), &want) {
            let why = crate::context::foreign_message(&target, &h, &want, p);
            return vec![Check::fail(
                "context",
                format!("{now}; {why}"),
                format!(
                    "by hand: docker context create <another name> --docker host={want} && docker context use <another name>"
                ),
            )];
        }
    }
    let how = if create {
        format!(
            "docker context create {target} --docker host={want} (`update` if it exists) && docker context use {target}"
        )
    } else {
        format!("docker context use {target}")
    };
    vec![Check::fail("context", now, how).repair(Fix::Context {
        name: target,
        host: want,
        create,
    })]
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
    if h.strip_prefix("unix://")
        .is_some_and(|x| same_path(Path::new(x), sock))
    {
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
        let path = h.strip_prefix("unix://")?;
        same_path(Path::new(path), sock).then(|| n.trim().to_string())
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
    let id = "socket.default";
    let var = Path::new("/var/run/docker.sock");
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
        Ok(_) => Check::warn(
            id,
            format!(
                "/var/run/docker.sock is another engine's ({}): tools that ignore docker contexts use that one",
                probe::ping_blocking(var, Duration::from_secs(2))
            ),
            fix,
        ),
    }
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
