//! Checks of the host and the service: config, binaries and versions,
//! the login service, the supervisor, competing agents, log, disk.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Check;
use super::cmd;
use crate::config::Context;
use crate::config::{EngineKind, Profile, Source};
use crate::service::{Definition, Job};

pub fn config(ctx: &Context, p: &Profile) -> Check {
    let what = match &ctx.config.source {
        Source::Defaults(path) => format!("no file at {} (built-in defaults)", path.display()),
        s => format!("{} is valid", s.path().display()),
    };
    Check::pass(
        "config",
        format!(
            "{what}; profile `{}`, engine {}",
            p.name,
            format!("{:?}", p.engine).to_lowercase()
        ),
    )
}

/// The oldest versions dockhand supports, and how to install each tool.
struct Tool {
    name: &'static str,
    version_args: &'static [&'static str],
    oldest: &'static [u64],
    install: &'static str,
    /// The engine can't run without it (else: a warning).
    required: bool,
}

fn tools(p: &Profile) -> Vec<Tool> {
    let docker = Tool {
        name: "docker",
        version_args: &["--version"],
        // The oldest CLI that negotiates the API version with dockerd 20.10.
        oldest: &[20, 10],
        install: "install the docker CLI (`brew install docker`, nixpkgs#docker, Debian `apt install docker.io`)",
        required: false,
    };
    match p.engine {
        EngineKind::Colima => vec![
            Tool {
                name: "colima",
                version_args: &["version"],
                // Colima 0.6.0 moved Lima's files to <colima home>/_lima,
                // where dockhand looks for them (colima config/files.go).
                oldest: &[0, 6, 0],
                install: "install it with `brew install colima` or nixpkgs#colima",
                required: true,
            },
            Tool {
                name: "limactl",
                version_args: &["--version"],
                // The Lima that Colima 0.6.0 requires.
                oldest: &[0, 18, 0],
                install: "install it with `brew install lima` (it comes with nixpkgs#colima)",
                required: true,
            },
            docker,
        ],
        EngineKind::Dockerd => vec![
            Tool {
                name: "dockerd",
                version_args: &["--version"],
                // The oldest engine tested (Debian's docker.io, API 1.41).
                oldest: &[20, 10],
                install: "install Docker's engine (Debian/Ubuntu `sudo apt install docker.io`)",
                required: true,
            },
            docker,
        ],
        EngineKind::Command => vec![docker],
        EngineKind::Ssh => vec![
            Tool {
                name: "ssh",
                version_args: &["-V"],
                // ExitOnForwardFailure for -L of a unix socket and
                // StreamLocalBindUnlink/Mask: OpenSSH 6.7.
                oldest: &[6, 7],
                install: "install the OpenSSH client (Debian/Ubuntu `sudo apt install openssh-client`)",
                required: true,
            },
            docker,
        ],
    }
}

fn binary_name(p: &Profile, t: &Tool) -> String {
    match (&p.dockerd, t.name) {
        (Some(d), "dockerd") => d.binary.clone(),
        _ => t.name.to_string(),
    }
}

/// The profile's own command, then each tool its engine needs.
pub fn binaries(p: &Profile) -> Vec<Check> {
    let command = p.command.as_ref().map(|c| command(&c.argv[0]));
    let tools = tools(p).into_iter().map(|t| tool(p, &t));
    command.into_iter().chain(tools).collect()
}

/// `engine = "command"`: its program is on PATH.
fn command(prog: &str) -> Check {
    let id = "binary.command";
    match crate::sys::which(prog) {
        Some(path) => Check::pass(id, format!("{prog} is {}", path.display())),
        None => Check::fail(
            id,
            format!("{prog} (the profile's command) not found on PATH"),
            "install it, or fix argv in the profile's [command] table",
        ),
    }
}

/// A tool is on PATH, and not older than dockhand supports.
fn tool(p: &Profile, t: &Tool) -> Check {
    let name = binary_name(p, t);
    let id = format!("binary.{}", t.name);
    let Some(path) = crate::sys::which(&name) else {
        let summary = format!("{name} not found on PATH");
        return if t.required {
            Check::fail(&id, summary, t.install)
        } else {
            Check::warn(&id, summary, t.install)
        };
    };
    let out = cmd::run_or_why(&path, t.version_args, &[], Duration::from_secs(10));
    let found = out
        .as_ref()
        .ok()
        .and_then(|o| cmd::version(&format!("{}{}", o.stdout, o.stderr)));
    let (at, oldest) = (path.display(), dotted(t.oldest));
    match found {
        Some(ver) if ver.as_slice() >= t.oldest => Check::pass(
            &id,
            format!("{at} {} (oldest supported {oldest})", dotted(&ver)),
        ),
        Some(ver) => Check::fail(
            &id,
            format!("{at} is {}, older than {oldest}", dotted(&ver)),
            format!("upgrade {name} to {oldest} or later"),
        ),
        None => Check::warn(
            &id,
            format!(
                "{at}: `{name} {}` {}",
                t.version_args.join(" "),
                out.err().unwrap_or_else(|| "printed no version".into())
            ),
            format!("check that {at} works"),
        ),
    }
}

fn dotted(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// Installed, and pointing at this binary and config (what `service
/// install` would write now is what is there), and loaded.
pub fn service(ctx: &Context, p: &Profile) -> Vec<Check> {
    let install = format!("dockhand service install --profile {}", p.name);
    let view = match crate::service::view(ctx, p) {
        Ok(v) => v,
        Err(e) => {
            return vec![Check::warn(
                "service",
                format!("cannot tell: {e}"),
                "see `dockhand service status`",
            )];
        }
    };
    let installed = definition(&view.path, view.definition, &install);
    if view.definition == Definition::Missing {
        return vec![installed];
    }
    vec![installed, loaded(p, view.job, install)]
}

/// The service's definition file (plist or unit) against what `service
/// install` would write now.
fn definition(path: &Path, d: Definition, install: &str) -> Check {
    let id = "service";
    match d {
        Definition::Missing => Check::warn(
            id,
            format!(
                "not installed ({} does not exist): the engine won't start at login",
                path.display()
            ),
            install,
        ),
        Definition::Current => Check::pass(
            id,
            format!("{} installed, for this binary and config", path.display()),
        ),
        Definition::Stale => Check::fail(
            id,
            format!(
                "{} differs from what this binary and config would install (moved binary, changed config?)",
                path.display()
            ),
            install,
        ),
        Definition::Foreign => foreign(path),
    }
}

/// A definition dockhand doesn't manage: one nix installed (compared with
/// its generation), or another symlink or special file.
fn foreign(path: &Path) -> Check {
    let id = "service";
    match crate::service::nix_owned::recognise(path) {
        Some(n) if n.matches == Some(false) => Check::fail(
            id,
            format!("{} ({})", path.display(), n.describe()),
            format!(
                "activate your nix configuration again (`darwin-rebuild switch` / `home-manager switch`): {} is {}",
                path.display(),
                n.why
            ),
        ),
        Some(n) => Check::pass(id, format!("{} ({})", path.display(), n.describe())),
        None => Check::pass(
            id,
            format!(
                "{} is not dockhand's to manage (a symlink or special file)",
                path.display()
            ),
        ),
    }
}

/// The service manager has the job loaded, and it runs.
fn loaded(p: &Profile, job: crate::error::Result<Job>, install: String) -> Check {
    let id = "service.loaded";
    match job {
        Ok(v) if v.known && v.running => Check::pass(id, "loaded and running"),
        Ok(v) if v.known => Check::fail(
            id,
            "loaded but not running",
            format!("dockhand up --profile {}", p.name),
        ),
        Ok(_) => Check::fail(id, "installed but not loaded", install),
        Err(e) => Check::warn(
            id,
            format!("cannot tell: {e}"),
            "see `dockhand service status`",
        ),
    }
}

/// A supervisor holds the profile's lock and answers on its control
/// socket (one that holds it silently, stopped or hung, fails: its engine
/// is unsupervised meanwhile).
pub fn supervisor(p: &Profile) -> Check {
    use crate::reach::{PATIENCE, Reach, reach};
    let reached = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(reach(p, PATIENCE)));
    match reached {
        Ok(Reach::Answers(_, st)) => Check::pass(
            "supervisor",
            format!("running and answering (pid {})", st.supervisor_pid),
        ),
        Ok(Reach::Silent(s)) => Check::fail("supervisor", s.summary(p), s.fix()),
        Err(e) => Check::warn("supervisor", format!("cannot ask it: {e}"), "try again"),
        Ok(Reach::Nobody) => Check::fail(
            "supervisor",
            "not running",
            format!(
                "dockhand up --profile {} (or `dockhand run` in a terminal)",
                p.name
            ),
        ),
    }
}

/// Other launchd agents that start the same Colima instance: they fight
/// dockhand over the VM (one stops what the other starts).
pub fn competitors(ctx: &Context, p: &Profile) -> Vec<Check> {
    let Some(c) = &p.colima else { return vec![] };
    let agents = super::competing_agents(p, &ctx.config.env.home);
    let id = "service.competitors";
    if agents.is_empty() {
        return vec![Check::pass(
            id,
            format!(
                "no other launchd agent manages Colima instance `{}`",
                c.instance()
            ),
        )];
    }
    agents
        .into_iter()
        .map(|a| {
            let at = a
                .path
                .map_or_else(|| "loaded".to_string(), |p| p.display().to_string());
            Check::fail(
                id,
                format!(
                    "agent `{}` also manages instance `{}` ({at})",
                    a.label,
                    c.instance()
                ),
                a.fix,
            )
        })
        .collect()
}

/// A competing agent: its label, plist and how to turn it off.
pub struct Agent {
    pub label: String,
    pub path: Option<PathBuf>,
    pub fix: String,
}

/// The log file can be written (or created), and how big it and its
/// rotated copies are.
pub fn log(p: &Profile) -> Check {
    let f = &p.log_file;
    match std::fs::metadata(f) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => log_creatable(f),
        Err(e) => Check::fail(
            "log",
            format!("{}: {e}", f.display()),
            "choose another log_file",
        ),
        Ok(m) => {
            let rotated: u64 = (1..=crate::logging::KEEP)
                .filter_map(|n| std::fs::metadata(format!("{}.{n}", f.display())).ok())
                .map(|m| m.len())
                .sum();
            let size = format!("{} (+{} rotated)", bytes(m.len()), bytes(rotated));
            log_writable(f, &size)
        }
    }
}

/// No log file yet: its directory, or the first one on the way that
/// exists, is writable.
fn log_creatable(f: &Path) -> Check {
    let dir = f.parent().unwrap_or(Path::new("/"));
    let existing = dir
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("/"));
    if rustix::fs::access(existing, rustix::fs::Access::WRITE_OK).is_ok() {
        return Check::pass(
            "log",
            format!(
                "{} not written yet; its directory can be created",
                f.display()
            ),
        );
    }
    Check::fail(
        "log",
        format!(
            "{} can't be created: {} is not writable",
            f.display(),
            existing.display()
        ),
        "choose a log_file in a directory of yours",
    )
}

/// The log file opens for appending (not through a symlink).
fn log_writable(f: &Path, size: &str) -> Check {
    use std::os::unix::fs::OpenOptionsExt;
    let open = std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(f);
    match open {
        Ok(_) => Check::pass("log", format!("{} writable, {size}", f.display())),
        Err(e) => Check::fail(
            "log",
            format!("{} is not writable: {e}", f.display()),
            format!(
                "remove it (dockhand recreates it) or `chmod u+w {}`",
                f.display()
            ),
        ),
    }
}

pub fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// Where the engine keeps its data: Colima's disk images grow there, and a
/// full host disk freezes the machine.
fn data_dir(p: &Profile) -> PathBuf {
    if let Some(c) = &p.colima {
        return c.lima_home.clone();
    }
    if let Some(d) = &p.dockerd {
        return d.data_root.clone();
    }
    p.state_dir.clone()
}

/// Below this much free space the check fails; below WARN_FREE it warns.
const MIN_FREE: u64 = 2 << 30;
const WARN_FREE: u64 = 10 << 30;

pub fn disk(p: &Profile) -> Check {
    let id = "disk";
    let dir = data_dir(p);
    let Some(existing) = dir.ancestors().find(|d| d.exists()) else {
        return Check::warn(
            id,
            format!("{}: nothing exists on the way", dir.display()),
            "check the path",
        );
    };
    let st = match rustix::fs::statvfs(existing) {
        Ok(s) => s,
        Err(e) => {
            return Check::warn(
                id,
                format!("cannot statvfs {}: {e}", existing.display()),
                "check the path",
            );
        }
    };
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    let total = st.f_blocks.saturating_mul(st.f_frsize).max(1);
    let summary = format!(
        "{} free of {} on the filesystem of {}",
        bytes(free),
        bytes(total),
        dir.display()
    );
    let fix = "free space on the host (`docker system prune`, Colima: `colima prune`, delete old VMs with `colima delete <profile>`)";
    if free < MIN_FREE || free * 20 < total {
        Check::fail(id, summary, fix)
    } else if free < WARN_FREE {
        Check::warn(id, summary, fix)
    } else {
        Check::pass(id, summary)
    }
}
