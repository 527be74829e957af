//! `dockhand doctor`: checks each thing that commonly breaks, prints ✓/✗
//! (and ! for a warning) with a one-line fix for each, and with `--fix`
//! applies the fixes that are safe: those that touch only what is ours
//! and lose nothing (a socket's mode, stale pid files and dead sockets of
//! a stopped engine, the docker CLI's current context).
//!
//! Exit 0 when no check fails (warnings don't fail), 1 otherwise.

mod agents;
mod checks;
mod cmd;
mod docker;
mod ssh;
mod stale;

use agents::competing_agents;

use std::path::PathBuf;

use serde::Serialize;

use crate::config::Context;
use crate::config::{Config, Env, Profile};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

/// A repair `--fix` may apply: only what is ours and loses nothing.
#[derive(Debug, Clone)]
pub enum Fix {
    /// chmod a file of ours.
    Mode(PathBuf, u32),
    /// Remove stale files (pid files naming no live process of ours,
    /// sockets nobody serves, dangling disk locks).
    Remove(Vec<PathBuf>),
    /// Make a docker context current, creating it first if needed.
    Context {
        name: String,
        host: String,
        create: bool,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable identifier (`config`, `binary.docker`, `socket.mode`, ...).
    pub id: String,
    pub status: Status,
    /// What was found, one line.
    pub summary: String,
    /// What to do about it, one line (None when nothing to do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// `--fix` can apply `fix` by itself.
    pub fixable: bool,
    /// `--fix` applied it (and the check passed afterwards).
    pub fixed: bool,
    #[serde(skip)]
    pub repair: Option<Fix>,
}

impl Check {
    pub fn pass(id: &str, summary: impl Into<String>) -> Check {
        Check {
            id: id.into(),
            status: Status::Pass,
            summary: summary.into(),
            fix: None,
            fixable: false,
            fixed: false,
            repair: None,
        }
    }
    pub fn fail(id: &str, summary: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            status: Status::Fail,
            fix: Some(fix.into()),
            ..Check::pass(id, summary)
        }
    }
    pub fn warn(id: &str, summary: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            status: Status::Warn,
            ..Check::fail(id, summary, fix)
        }
    }
    /// `--fix` may apply `repair`.
    pub fn repair(mut self, r: Fix) -> Check {
        self.fixable = true;
        self.repair = Some(r);
        self
    }
}

/// The JSON document of `doctor --json`.
#[derive(Serialize)]
struct Report<'a> {
    profile: &'a str,
    ok: bool,
    checks: &'a [Check],
}

pub fn run(explicit: Option<&std::path::Path>, profile: &str, json: bool, fix: bool) -> Result<u8> {
    let loaded = Env::from_process()
        .and_then(|env| Config::load(explicit, env))
        .and_then(|config| {
            let ctx = Context {
                config,
                profile_name: profile.to_string(),
            };
            ctx.profile().map(|p| (ctx, p))
        });
    let checks = match loaded {
        Err(e) => vec![Check::fail(
            "config",
            e.to_string(),
            "correct the config at the place named (`dockhand config check` to re-check)",
        )],
        Ok((ctx, mut p)) => {
            // Colima's directory (and what it can do) follow its release.
            let release = crate::engine::colima_version::adapt(&mut p).err();
            let mut v = all_checks(&ctx, &p);
            v.extend(release.map(|e| {
                Check::fail(
                    "binary.colima.release",
                    e.to_string(),
                    "upgrade Colima or change the profile as the message says",
                )
            }));
            if fix {
                for c in v.iter_mut() {
                    apply(c, &ctx, &p);
                }
            }
            v
        }
    };
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    if json {
        crate::ui::print_json(&Report {
            profile,
            ok,
            checks: &checks,
        });
    } else {
        print(&checks, fix);
    }
    Ok(if ok { 0 } else { 1 })
}

fn all_checks(ctx: &Context, p: &Profile) -> Vec<Check> {
    let mut v = vec![checks::config(ctx, p)];
    v.extend(checks::binaries(p));
    v.extend(ssh::checks(p));
    v.extend(checks::service(ctx, p));
    v.push(checks::supervisor(p));
    v.extend(checks::competitors(ctx, p));
    v.extend(docker::socket(p));
    v.extend(docker::context(p));
    v.push(docker::contextless(p));
    v.extend(stale::check(p));
    v.push(checks::log(p));
    v.push(checks::disk(p));
    v.extend(docker::system_df(p));
    v
}

/// Apply a fixable check's repair, then check again.
fn apply(c: &mut Check, ctx: &Context, p: &Profile) {
    if c.status == Status::Pass {
        return;
    }
    let Some(r) = c.repair.clone() else { return };
    let done = match &r {
        Fix::Mode(path, mode) => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
                .map_err(|e| e.to_string())
        }
        Fix::Remove(paths) => paths
            .iter()
            .try_for_each(|f| match std::fs::remove_file(f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("{}: {e}", f.display()))
                }
                _ => Ok(()),
            }),
        Fix::Context { name, host, create } => docker::use_context(p, name, host, *create),
    };
    if let Err(e) = done {
        c.summary = format!("{} (fix failed: {e})", c.summary);
        return;
    }
    // Check again: a fix counts only when the check now passes.
    let again = all_checks(ctx, p).into_iter().find(|n| n.id == c.id);
    match again {
        Some(n) if n.status != Status::Fail => {
            *c = n;
            c.fixed = true;
        }
        Some(n) => *c = n,
        None => c.fixed = true,
    }
}

fn print(checks: &[Check], fixing: bool) {
    let color = crate::ui::color();
    for c in checks {
        let mark = match c.status {
            Status::Pass => crate::ui::paint("✓", 32, color),
            Status::Warn => crate::ui::paint("!", 33, color),
            Status::Fail => crate::ui::paint("✗", 31, color),
        };
        let fixed = if c.fixed { " (fixed)" } else { "" };
        println!("{mark} {}: {}{fixed}", c.id, c.summary);
        if let Some(f) = &c.fix
            && c.status != Status::Pass
        {
            let auto = if c.fixable && !fixing {
                " (`dockhand doctor --fix` does this)"
            } else {
                ""
            };
            println!("    fix: {f}{auto}");
        }
    }
}
