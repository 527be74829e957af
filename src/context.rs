//! The docker context dockhand keeps for a profile with `listen`:
//! `dockhand` (default profile) or `dockhand-<profile>`, pointing at
//! `unix://<listen>`. Managed through the docker CLI (`docker context
//! create/update/use`, each argument its own argv entry, no shell), so
//! the CLI's own store and locking stay in charge.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::config::{DEFAULT_PROFILE, Profile};
use crate::error::{Error, Result};

/// The context's name for `profile`.
pub fn name(profile: &str) -> String {
    if profile == DEFAULT_PROFILE {
        "dockhand".into()
    } else {
        format!("dockhand-{profile}")
    }
}

pub fn host(listen: &Path) -> String {
    format!("unix://{}", listen.display())
}

/// What has to be done to the docker CLI's contexts.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    Nothing,
    Create,
    Update,
    /// A context of that name exists and dockhand did not make it (its
    /// host): left alone.
    Foreign(String),
}

/// A context whose description dockhand wrote (see [`description`]): the
/// mark of the contexts dockhand made, the only ones it changes (the
/// docker CLI keeps no other metadata a user can set).
pub fn is_ours(description: &str) -> bool {
    description.starts_with("dockhand profile ")
}

/// An existing context, from `docker context inspect <name>` (JSON).
#[derive(Debug, PartialEq, Eq)]
pub struct Existing {
    pub host: String,
    pub description: String,
}

pub fn parse_inspect(json: &str) -> Option<Existing> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let c = v.as_array()?.first()?;
    Some(Existing {
        host: c["Endpoints"]["docker"]["Host"].as_str()?.to_string(),
        description: c["Metadata"]["Description"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

/// What to do, given the context of that name (if any), the host it
/// should point at and the description it should have (one of ours that
/// says something else, such as an earlier profile's, is updated).
pub fn plan(existing: Option<&Existing>, want: &str, described: &str) -> Plan {
    match existing {
        None => Plan::Create,
        Some(e) if !is_ours(&e.description) => Plan::Foreign(e.host.clone()),
        Some(e) if e.host.trim() == want && e.description == described => Plan::Nothing,
        Some(_) => Plan::Update,
    }
}

/// Why a context is left alone, and what the user can do by hand.
pub fn foreign_message(name: &str, host: &str, want: &str, p: &Profile) -> String {
    format!(
        "a docker context `{name}` exists (→ {host}) and dockhand did not make it, so it is left alone. To use it for dockhand, by hand: `docker context update {name} --description \"{}\" --docker host={want}`; or remove or rename yours",
        description(p)
    )
}

/// The context's description: what `docker context ls` shows, after the
/// mark `is_ours` looks for. Says what the profile does: "dockhand
/// profile work (dockerd, kept running)", "dockhand profile devbox (ssh to
/// devbox, connected on demand, closed after 15m idle)".
pub fn description(p: &Profile) -> String {
    if p.listen.is_none() {
        return format!("dockhand profile {}", p.name);
    }
    let (what, start, keep) = match &p.ssh {
        Some(s) => (format!("ssh to {}", s.host), "connected", "kept connected"),
        None => (p.engine.as_str().to_string(), "started", "kept running"),
    };
    let when = match (p.on_demand, p.idle_stop) {
        (_, Some(idle)) => format!(
            "{start} on demand, {} after {} idle",
            if p.ssh.is_some() { "closed" } else { "stopped" },
            humantime::format_duration(idle)
        ),
        (true, None) => format!("{start} on demand"),
        (false, _) => keep.to_string(),
    };
    format!("dockhand profile {} ({what}, {when})", p.name)
}

/// The docker CLI arguments that carry out `plan`: context `name`
/// pointing at `host`.
pub fn args(plan: &Plan, name: &str, p: &Profile, host: &str) -> Option<Vec<String>> {
    let verb = match plan {
        Plan::Nothing | Plan::Foreign(_) => return None,
        Plan::Create => "create",
        Plan::Update => "update",
    };
    Some(vec![
        "context".into(),
        verb.into(),
        name.into(),
        "--description".into(),
        description(p),
        "--docker".into(),
        format!("host={host}"),
    ])
}

/// One docker CLI call as the caller ran it (its own way: a deadline, the
/// reaper, ...).
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Create the context `name` pointing at `host`, or update it if it
/// points elsewhere and dockhand made it: `docker context inspect`, then
/// `create` or `update` as [`plan`] says (`Plan::Foreign`: nothing done,
/// the caller says so). `docker` runs the docker CLI with the arguments given
/// (no shell); a failed `create`/`update` becomes `failed(args, stderr)`.
pub fn write_with<E>(
    name: &str,
    host: &str,
    p: &Profile,
    mut docker: impl FnMut(&[String]) -> std::result::Result<Ran, E>,
    failed: impl FnOnce(&[String], &str) -> E,
) -> std::result::Result<Plan, E> {
    let o = docker(&inspect_args(name))?;
    let existing = o.ok.then(|| parse_inspect(&o.stdout)).flatten();
    let plan = plan(existing.as_ref(), host, &description(p));
    if let Some(a) = args(&plan, name, p, host) {
        let o = docker(&a)?;
        if !o.ok {
            return Err(failed(&a, o.stderr.trim()));
        }
    }
    Ok(plan)
}

pub fn inspect_args(name: &str) -> Vec<String> {
    vec!["context".into(), "inspect".into(), name.into()]
}

/// Create or update the context from inside the supervisor (children are
/// run through the reaper). Returns a note for the log.
pub async fn ensure(p: &Profile) -> Result<String, String> {
    use crate::sys::reaper;
    let Some(listen) = &p.listen else {
        return Ok(String::new());
    };
    let name = name(&p.name);
    let docker = crate::sys::which("docker").ok_or("the docker CLI is not on PATH")?;
    let limit = Duration::from_secs(20);
    let o = reaper::output(Command::new(&docker).args(inspect_args(&name)), limit)
        .await
        .map_err(|e| format!("docker context inspect: {e}"))?;
    let want = host(listen);
    let existing = o
        .status
        .success()
        .then(|| parse_inspect(&o.stdout))
        .flatten();
    let plan = plan(existing.as_ref(), &want, &description(p));
    if let Plan::Foreign(h) = &plan {
        return Err(foreign_message(&name, h, &want, p));
    }
    let Some(a) = args(&plan, &name, p, &want) else {
        return Ok(format!(
            "docker context {name} points at {}",
            listen.display()
        ));
    };
    let o = reaper::output(Command::new(&docker).args(&a), limit)
        .await
        .map_err(|e| format!("docker {}: {e}", a.join(" ")))?;
    if !o.status.success() {
        return Err(format!(
            "docker context {:?} {name}: {}",
            plan,
            o.stderr.trim()
        ));
    }
    Ok(format!(
        "docker context {name} {} for {} (`dockhand context --use` makes it current)",
        if plan == Plan::Create {
            "created"
        } else {
            "updated"
        },
        listen.display()
    ))
}

/// `dockhand context [--use] [--env]`.
pub fn run(p: &Profile, use_it: bool, env: bool) -> Result<u8> {
    let Some(listen) = &p.listen else {
        return Err(Error::Config(format!(
            "profile `{}` has no listen socket, so there is no dockhand context: set listen (and docker_context) in its config",
            p.name
        )));
    };
    if env {
        println!(
            "export DOCKER_HOST={}",
            crate::ui::shell_quote(&host(listen))
        );
        return Ok(0);
    }
    let name = name(&p.name);
    let run = |args: &[String]| -> Result<std::process::Output> {
        Command::new("docker")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::Command {
                command: format!("docker {}", args.join(" ")),
                detail: format!("{e} (is the docker CLI installed and on PATH?)"),
            })
    };
    let ran = |a: &[String]| {
        run(a).map(|o| Ran {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        })
    };
    let failed = |a: &[String], stderr: &str| Error::Command {
        command: format!("docker {}", a.join(" ")),
        detail: stderr.to_string(),
    };
    if let Plan::Foreign(h) = write_with(&name, &host(listen), p, ran, failed)? {
        let msg = foreign_message(&name, &h, &host(listen), p);
        return Err(Error::Config(msg));
    }
    let run_ok = |a: &[String]| -> Result<()> {
        let o = run(a)?;
        if o.status.success() {
            return Ok(());
        }
        Err(failed(a, String::from_utf8_lossy(&o.stderr).trim()))
    };
    if use_it {
        run_ok(&["context".to_string(), "use".into(), name.clone()])?;
        println!("docker context {name} is now current: docker commands go through dockhand");
        return Ok(0);
    }
    println!("docker context {name}: {}", host(listen));
    println!(
        "use it with `docker --context {name} ...`, make it current with `dockhand context --use`, or `eval \"$(dockhand context --env)\"` for tools that ignore contexts"
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_plans() {
        assert_eq!(name("default"), "dockhand");
        assert_eq!(name("work"), "dockhand-work");
        let want = "unix:///s/l.sock";
        let ctx = |host: &str, description: &str| Existing {
            host: host.into(),
            description: description.into(),
        };
        let ours = "dockhand profile default (dockerd, kept running)";
        assert_eq!(plan(None, want, ours), Plan::Create);
        assert_eq!(plan(Some(&ctx(want, ours)), want, ours), Plan::Nothing);
        assert_eq!(
            plan(Some(&ctx("unix:///other", ours)), want, ours),
            Plan::Update
        );
        // One of ours that says something else (an earlier text, the
        // profile changed) is brought up to date.
        let old = "dockhand profile default (engine started on demand)";
        assert_eq!(plan(Some(&ctx(want, old)), want, ours), Plan::Update);
        // Issue 17: a user's own context of that name is never rewritten.
        for d in ["", "my remote engine"] {
            assert_eq!(
                plan(Some(&ctx("tcp://10.0.0.5:2375", d)), want, ours),
                Plan::Foreign("tcp://10.0.0.5:2375".into())
            );
        }
    }

    #[test]
    fn inspect_output_of_the_docker_cli() {
        // docker 28.2 `docker context inspect mine`.
        let json = r#"[{"Name":"mine","Metadata":{"Description":"my remote"},"Endpoints":{"docker":{"Host":"tcp://10.9.9.9:2375","SkipTLSVerify":false}},"TLSMaterial":{},"Storage":{}}]"#;
        assert_eq!(
            parse_inspect(json),
            Some(Existing {
                host: "tcp://10.9.9.9:2375".into(),
                description: "my remote".into()
            })
        );
        let bare = r#"[{"Name":"x","Metadata":{},"Endpoints":{"docker":{"Host":"unix:///s"}}}]"#;
        assert_eq!(parse_inspect(bare).unwrap().description, "");
        assert_eq!(parse_inspect("[]"), None);
    }

    fn profile(listen: bool) -> Profile {
        profile_with(if listen {
            "listen = \"/s/l.sock\"\n"
        } else {
            ""
        })
    }

    fn profile_with(keys: &str) -> Profile {
        let mut text = "[profiles.default]\nsocket = \"/s/e.sock\"\n".to_string();
        text.push_str(keys);
        text.push_str("[profiles.default.command]\nargv = [\"/bin/true\"]\n");
        let env = crate::config::Env::bare("/home/u".into());
        let source = crate::config::Source::Explicit("/home/u/c.toml".into());
        let cfg = crate::config::Config::parse(source, env, text).unwrap();
        cfg.profile("default").unwrap()
    }

    /// A stand-in docker CLI: answers `inspect` as told, records the calls.
    fn write(
        p: &Profile,
        inspect: Option<&str>,
        create_ok: bool,
    ) -> (Result<Plan, String>, Vec<String>) {
        let mut calls = Vec::new();
        let r = write_with(
            "dockhand",
            "unix:///s/l.sock",
            p,
            |a: &[String]| {
                calls.push(a.join(" "));
                let ok = if a[1] == "inspect" {
                    inspect.is_some()
                } else {
                    create_ok
                };
                Ok(Ran {
                    ok,
                    stdout: inspect.unwrap_or_default().to_string(),
                    stderr: "refused\n".into(),
                })
            },
            |a, e| format!("docker {}: {e}", a[1]),
        );
        (r, calls)
    }

    #[test]
    fn written_once_created_updated_or_left() {
        let p = profile(true);
        let (r, calls) = write(&p, None, true);
        assert_eq!(r, Ok(Plan::Create));
        assert_eq!(
            calls,
            [
                "context inspect dockhand",
                "context create dockhand --description dockhand profile default (command, kept running) --docker host=unix:///s/l.sock"
            ]
        );
        let ours = |host: &str| {
            format!(
                r#"[{{"Metadata":{{"Description":"dockhand profile default (command, kept running)"}},"Endpoints":{{"docker":{{"Host":"{host}"}}}}}}]"#
            )
        };
        let (r, calls) = write(&p, Some(&ours("unix:///s/l.sock")), true);
        assert_eq!((r, calls.len()), (Ok(Plan::Nothing), 1));
        let (r, calls) = write(&profile(false), Some(&ours("unix:///elsewhere")), true);
        assert_eq!(r, Ok(Plan::Update));
        assert!(calls[1].starts_with(
            "context update dockhand --description dockhand profile default --docker"
        ));
        let (r, _) = write(&p, None, false);
        assert_eq!(r, Err("docker create: refused".into()));
        // A user's own: inspected, never written.
        let theirs = r#"[{"Metadata":{"Description":"mine"},"Endpoints":{"docker":{"Host":"tcp://h:2375"}}}]"#;
        let (r, calls) = write(&p, Some(theirs), true);
        assert_eq!(
            (r, calls.len()),
            (Ok(Plan::Foreign("tcp://h:2375".into())), 1)
        );
    }

    #[test]
    fn the_description_says_what_the_profile_does() {
        let d = |keys: &str| description(&profile_with(keys));
        let l = "listen = \"/s/l.sock\"\n";
        assert_eq!(d(l), "dockhand profile default (command, kept running)");
        assert_eq!(
            d(&format!("{l}on_demand = true\n")),
            "dockhand profile default (command, started on demand)"
        );
        assert_eq!(
            d(&format!("{l}on_demand = true\nidle_stop = \"15m\"\n")),
            "dockhand profile default (command, started on demand, stopped after 15m idle)"
        );
        assert_eq!(d(""), "dockhand profile default");
        let text =
            "[profiles.default]\nengine = \"ssh\"\n[profiles.default.ssh]\nhost = \"devbox\"\n";
        let env = crate::config::Env::bare("/home/u".into());
        let source = crate::config::Source::Explicit("/home/u/c.toml".into());
        let cfg = crate::config::Config::parse(source, env, text.into()).unwrap();
        assert_eq!(
            description(&cfg.profile("default").unwrap()),
            "dockhand profile default (ssh to devbox, kept connected)"
        );
        for keys in ["", l] {
            assert!(is_ours(&d(keys)));
        }
    }
}
