//! Bad configs are refused before anything starts: exit 2, naming the
//! file, line and column and what was expected.

use crate::harness::Env;

fn refused(env: &Env, text: &str, args: &[&str], expect: &[&str]) {
    env.write_config(text);
    for cmd in [vec!["config", "check"], vec!["run"]] {
        let mut a = cmd.clone();
        a.extend_from_slice(args);
        let (code, _, err) = env.output(&a);
        assert_eq!(code, 2, "{a:?} on {text:?}: {err}");
        for e in expect {
            let e = e.replace("{file}", env.config.to_str().unwrap());
            assert!(err.contains(&e), "{a:?}: {err:?} lacks {e:?}");
        }
        assert!(
            !env.state.exists(),
            "{a:?} created the state dir of a bad config"
        );
    }
}

#[test]
fn unknown_key() {
    let env = Env::new();
    refused(
        &env,
        "[profiles.default]\nengine = \"dockerd\"\nprobe_intervall = \"3s\"\n",
        &[],
        &[
            "{file}:3:1: ",
            "unknown field `probe_intervall`",
            "expected one of",
        ],
    );
}

#[test]
fn wrong_type() {
    let env = Env::new();
    refused(
        &env,
        "[profiles.default]\nengine = \"dockerd\"\n[profiles.default.dockerd]\nargs = \"--debug\"\n",
        &[],
        &[
            "{file}:4:8: ",
            "a list is written in brackets",
            "write [\"--debug\"]",
        ],
    );
}

#[test]
fn a_bare_number_for_a_duration_says_to_add_the_unit() {
    let env = Env::new();
    refused(
        &env,
        "[profiles.default]\nprobe_interval = 30\n",
        &[],
        &["{file}:2:18: ", "needs a unit and quotes: write \"30s\""],
    );
}

#[test]
fn a_bad_profile_name_names_its_table_line() {
    let env = Env::new();
    refused(
        &env,
        "# mine\n\n[profiles.\"my box\"]\nengine = \"dockerd\"\n",
        &[],
        &["{file}:3:1: ", "profile name \"my box\" may only contain"],
    );
}

#[test]
fn bad_duration() {
    let env = Env::new();
    refused(
        &env,
        "[profiles.default]\nstop_timeout = \"a minute\"\n",
        &[],
        &[
            "{file}:2:16: ",
            "invalid duration \"a minute\"",
            "such as \"30s\"",
        ],
    );
}

#[test]
fn engine_table_that_does_not_match_engine() {
    let env = Env::new();
    refused(
        &env,
        "[profiles.default]\nengine = \"dockerd\"\n\n[profiles.default.colima]\ncpu = 4\n",
        &[],
        &["{file}:4:1: ", "[colima] table but engine = \"dockerd\""],
    );
}

#[test]
fn unknown_engine() {
    let env = Env::new();
    refused(
        &env,
        "[profiles.default]\nengine = \"docker-desktop\"\n",
        &[],
        &[
            "{file}:2:10: ",
            "unknown variant `docker-desktop`",
            "`colima`, `dockerd`, `command`",
        ],
    );
}

#[test]
fn unknown_profile() {
    let env = Env::new();
    env.write_config("[profiles.work]\nengine = \"dockerd\"\n");
    let (code, _, err) = env.output(&["run", "--profile", "play"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown profile `play`"), "{err}");
    assert!(err.contains("known profiles are work"), "{err}");
}

#[test]
fn not_toml_at_all() {
    let env = Env::new();
    refused(
        &env,
        "[profiles.default\nengine = \"dockerd\"\n",
        &[],
        &["{file}:1:"],
    );
}

#[test]
fn a_missing_explicit_config_is_an_error() {
    let env = Env::new();
    let (code, _, err) = env.output(&["config", "check"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read config"), "{err}");
}

#[test]
fn show_prints_the_effective_profile() {
    let env = Env::new();
    env.write_config("[profiles.default]\nengine = \"dockerd\"\nprobe_interval = \"10s\"\n");
    let (code, out, err) = env.output(&["config", "show"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("probe_interval = \"10s\""), "{out}");
    assert!(out.contains("stop_timeout = \"1m\""), "{out}");
    assert!(
        out.contains("xdg-state/dockhand/default/docker.sock"),
        "{out}"
    );
}

/// `--config`, else `$DOCKHAND_CONFIG`, else `$XDG_CONFIG_HOME/dockhand/
/// config.toml`, else built-in defaults.
#[test]
fn the_config_is_found_where_the_readme_says() {
    let env = Env::new();
    let xdg = env.root.join("xdg-config");
    let show = |args: &[&str], dockhand_config: Option<&std::path::Path>| {
        let mut c = std::process::Command::new(crate::harness::BIN);
        c.args(args)
            .env("HOME", &env.home)
            .env("XDG_CONFIG_HOME", &xdg)
            .env("XDG_STATE_HOME", env.root.join("xdg-state"))
            .env_remove("DOCKHAND_CONFIG");
        if let Some(p) = dockhand_config {
            c.env("DOCKHAND_CONFIG", p);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let write = |path: &std::path::Path, interval: &str| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            path,
            format!("[profiles.default]\nengine = \"dockerd\"\nprobe_interval = \"{interval}\"\n"),
        )
        .unwrap();
    };
    // Nothing anywhere: built-in defaults.
    assert!(show(&["config", "show"], None).contains("probe_interval = \"30s\""));
    assert!(show(&["config", "check"], None).contains("built-in defaults"));
    // The default location.
    write(&xdg.join("dockhand/config.toml"), "7s");
    assert!(show(&["config", "show"], None).contains("probe_interval = \"7s\""));
    // $DOCKHAND_CONFIG beats it.
    let from_env = env.root.join("env.toml");
    write(&from_env, "8s");
    assert!(show(&["config", "show"], Some(&from_env)).contains("probe_interval = \"8s\""));
    // --config beats both.
    let from_flag = env.root.join("flag.toml");
    write(&from_flag, "9s");
    let flag = from_flag.to_str().unwrap();
    assert!(
        show(&["--config", flag, "config", "show"], Some(&from_env))
            .contains("probe_interval = \"9s\"")
    );
}

/// The ssh engine's `config_file`: one that does not exist or is a
/// directory is refused at its line (it used to pass `config check` and
/// fail at run time, without a line, or be retried as a network failure).
#[test]
fn an_ssh_config_file_that_is_not_a_file() {
    let env = Env::new();
    let text = |f: &std::path::Path| {
        format!(
            "[profiles.default]\nengine = \"ssh\"\nstate_dir = {:?}\n[profiles.default.ssh]\nhost = \"devbox\"\nconfig_file = {:?}\n",
            env.state.display().to_string(),
            f.display().to_string()
        )
    };
    let missing = env.root.join("missing.conf");
    refused(
        &env,
        &text(&missing),
        &[],
        &["{file}:6:15: config_file ", "missing.conf does not exist"],
    );
    refused(
        &env,
        &text(&env.home),
        &[],
        &["{file}:6:15: config_file ", "is a directory"],
    );
}

/// A path error about a default that lies under `state_dir` names the
/// state_dir line, not 1:1.
#[test]
fn a_state_dir_that_ssh_cannot_forward_from_names_its_line() {
    let env = Env::new();
    refused(
        &env,
        "[profiles.default]\nengine = \"ssh\"\nstate_dir = \"/tmp/a:b\"\n[profiles.default.ssh]\nhost = \"devbox\"\n",
        &[],
        &["{file}:3:13: socket /tmp/a:b/forward.sock contains ':'"],
    );
}
