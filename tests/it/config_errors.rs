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
            "invalid type: string \"--debug\", expected a sequence",
        ],
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
