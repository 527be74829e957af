//! The day-to-day commands that need no engine: logs, completions, man.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Env, Streaming};

/// A profile whose log file is in the test's directory.
fn env_with_log() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let log = env.root.join("logs/d.log");
    env.command_config(
        &["/bin/true"],
        &format!("log_file = {:?}", log.display().to_string()),
    );
    (env, log)
}

#[test]
fn logs_tail_spans_rotated_files() {
    let (env, log) = env_with_log();
    // dockhand's own rotating writer, rotating every few lines.
    let mut w = dockhand::logging::Rotating::open(&log, 64).unwrap();
    for i in 0..20 {
        writeln!(w, "old line {i:02}").unwrap();
    }
    assert!(
        env.root.join("logs/d.log.2").exists(),
        "no rotation happened"
    );
    let (code, out, err) = env.output(&["logs", "-n", "9"]);
    assert_eq!(code, 0, "{err}");
    let want: String = (11..20).map(|i| format!("old line {i:02}\n")).collect();
    assert_eq!(out, want);
}

#[test]
fn logs_without_a_log_says_where_it_looked() {
    let (env, log) = env_with_log();
    let (code, out, err) = env.output(&["logs"]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert!(err.contains(&log.display().to_string()), "{err}");
}

#[test]
fn logs_follow_continues_across_rotation() {
    let (env, log) = env_with_log();
    let mut w = dockhand::logging::Rotating::open(&log, 100).unwrap();
    writeln!(w, "before following").unwrap();
    let f = Streaming::spawn(env.cmd(&["logs", "-f", "-n", "1"]));
    f.wait_for("before following\n", Duration::from_secs(10));
    // Each line is waited for before the next: 40 lines of 20 bytes
    // rotate the 100-byte log several times while being followed.
    for i in 0..40 {
        let line = format!("followed line {i:03}");
        writeln!(w, "{line}").unwrap();
        f.wait_for(&format!("{line}\n"), Duration::from_secs(10));
    }
    assert!(env.root.join("logs/d.log.3").exists(), "never rotated");
    let text = f.text();
    let want: String = std::iter::once("before following\n".to_string())
        .chain((0..40).map(|i| format!("followed line {i:03}\n")))
        .collect();
    assert_eq!(text, want, "lines lost, doubled or out of order");
}

/// Issue 17: lines of a burst of `bytes` bytes, numbered from `from`.
fn burst(path: &std::path::Path, from: u32, bytes: usize) -> u32 {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    let mut text = String::with_capacity(bytes + 64);
    let mut i = from;
    while text.len() < bytes {
        text.push_str(&format!("burst line {i:08}\n"));
        i += 1;
    }
    f.write_all(text.as_bytes()).unwrap();
    i
}

/// `logs -f` while 3 MiB bursts go through `turn` (a rotation, a
/// copy-truncate, a deletion) between them: every line once, in order.
fn follow_bursts_through(turn: impl Fn(&std::path::Path)) {
    const BURST: usize = 3 << 20;
    let (env, log) = env_with_log();
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, "before following\n").unwrap();
    let f = Streaming::spawn(env.cmd(&["logs", "-f", "-n", "1"]));
    f.wait_for("before following\n", Duration::from_secs(10));
    let mid = burst(&log, 0, BURST);
    turn(&log);
    let end = burst(&log, mid, BURST);
    // One turn per poll of the follower at most: a second one waits
    // until the first burst's file was left behind.
    f.wait_for(
        &format!("burst line {:08}\n", end - 1),
        Duration::from_secs(60),
    );
    turn(&log);
    crate::harness::append(&log, "the end");
    let text = f.wait_for("the end\n", Duration::from_secs(60));
    let want = std::iter::once("before following".to_string())
        .chain((0..end).map(|i| format!("burst line {i:08}")))
        .chain(std::iter::once("the end".to_string()));
    let got: Vec<&str> = text.lines().collect();
    let mut n = 0;
    for (i, w) in want.enumerate() {
        assert_eq!(
            got.get(i).copied(),
            Some(w.as_str()),
            "line {i} of {} lines expected, {} printed: lost, doubled or out of order",
            end + 2,
            got.len()
        );
        n += 1;
    }
    assert_eq!(got.len(), n, "more lines printed than written");
}

#[test]
fn logs_follow_keeps_every_line_of_bursts_through_rotation() {
    follow_bursts_through(dockhand::logging::rotate_files);
}

#[test]
fn logs_follow_keeps_every_line_of_bursts_through_copy_truncate() {
    follow_bursts_through(|log| {
        let copy = std::path::PathBuf::from(format!("{}.1", log.display()));
        std::fs::copy(log, copy).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(log)
            .unwrap()
            .set_len(0)
            .unwrap();
    });
}

#[test]
fn logs_follow_keeps_every_line_of_bursts_through_deletion() {
    follow_bursts_through(|log| std::fs::remove_file(log).unwrap());
}

/// Issue 17: `logs -n 5` when the last line is 50 MiB long reads a
/// bounded part of it, in bounded memory, and shows its end marked as
/// cut (the time is in `benches/commands.rs`).
#[test]
fn logs_tail_after_a_huge_line_is_bounded() {
    let (env, log) = env_with_log();
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(&log).unwrap();
    f.write_all(b"short one\nshort two\n").unwrap();
    let out_path = env.root.join("tail.out");
    let err_path = env.root.join("time.err");
    let logs = || env.cmd(&["logs", "-n", "5"]);
    let out = || std::fs::File::create(&out_path).unwrap();
    // The same command on the short log: what the binary itself takes
    // (a debug build maps tens of MiB of code and data).
    let (status, base_kb) = run_measured(logs(), out(), &err_path);
    assert!(status.success());
    // Written in pieces: the test's own memory stays small.
    let piece = vec![b'x'; 1 << 20];
    for _ in 0..50 {
        f.write_all(&piece).unwrap();
    }
    f.write_all(b"y\n").unwrap();
    drop((f, piece));
    let (status, max_rss_kb) = run_measured(logs(), out(), &err_path);
    assert!(status.success());
    let out = std::fs::read(&out_path).unwrap();
    assert!(out.starts_with("[… cut".as_bytes()), "no cut marker");
    assert!(out.ends_with(b"xxxy\n"), "not the line's end");
    assert!(
        out.len() <= (33 << 20),
        "read past the budget: {}",
        out.len()
    );
    assert!(
        max_rss_kb - base_kb < 12 * 1024,
        "`logs -n 5` held {max_rss_kb} KiB against {base_kb} KiB on a short log: \
         memory must not grow with the line (it reads up to 32 MiB of it)"
    );
}

/// Run `cmd` with stdout to `out` and return its status and peak RSS in
/// KiB, measured by busybox's `time -v`. A child's peak RSS counts the
/// image it was forked from (with vfork, the parent's whole peak), so the
/// command is started from busybox's small fresh image, not from this
/// test process, whose size depends on the tests running beside it.
fn run_measured(
    cmd: Command,
    out: std::fs::File,
    err: &std::path::Path,
) -> (std::process::ExitStatus, i64) {
    let mut c = Command::new("/bin/busybox");
    c.args(["time", "-v"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let status = c
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(std::fs::File::create(err).unwrap())
        .status()
        .unwrap();
    let report = std::fs::read_to_string(err).unwrap();
    let kb = report
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .unwrap_or_else(|| panic!("no peak RSS in busybox time's report:\n{report}"));
    (status, kb.parse().unwrap())
}

#[test]
fn logs_engine_shows_colima_host_agent_logs() {
    let env = Env::new();
    let lima = env.root.join("lima");
    std::fs::create_dir_all(lima.join("colima")).unwrap();
    std::fs::write(
        lima.join("colima/ha.stderr.log"),
        "level=info msg=\"Waiting for ssh\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(&env.state).unwrap();
    std::fs::write(env.state.join("engine.log"), "colima start output\n").unwrap();
    env.write_config(&format!(
        "[profiles.default]\nengine = \"colima\"\nstate_dir = {:?}\n",
        env.state.display().to_string()
    ));
    let mut c = env.cmd(&["logs", "--engine"]);
    c.env("COLIMA_HOME", env.root.join("colima"))
        .env("LIMA_HOME", &lima);
    let o = c.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains(&format!(
            "==> {} <==\ncolima start output\n",
            env.state.join("engine.log").display()
        )),
        "{out}"
    );
    assert!(
        out.contains("ha.stderr.log <==\nlevel=info msg=\"Waiting for ssh\"\n"),
        "{out}"
    );
}

#[test]
fn bash_completion_completes_commands_and_flags() {
    if crate::harness::which("bash").is_none() {
        eprintln!("SKIP: no bash on PATH");
        return;
    }
    let env = Env::new();
    let (code, script, _) = env.output(&["completions", "bash"]);
    assert_eq!(code, 0);
    let f = env.root.join("dockhand.bash");
    std::fs::write(&f, script).unwrap();
    let complete = |words: &str, cword: u32| {
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; _dockhand dockhand; echo \"${{COMPREPLY[@]}}\"",
                f.display()
            ))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(
        complete("dockhand lo", 1)
            .split_whitespace()
            .any(|w| w == "logs")
    );
    let flags = complete("dockhand logs --", 2);
    for f in ["--follow", "--lines", "--engine"] {
        assert!(
            flags.split_whitespace().any(|w| w == f),
            "{f} not in {flags}"
        );
    }
}

#[test]
fn completions_for_zsh_and_fish_name_every_command() {
    let env = Env::new();
    for shell in ["zsh", "fish"] {
        let (code, out, err) = env.output(&["completions", shell]);
        assert_eq!(code, 0, "{err}");
        for c in ["run", "status", "logs", "service", "completions", "man"] {
            assert!(out.contains(c), "{shell} completion lacks {c}");
        }
    }
    let (code, _, err) = env.output(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error");
    assert!(err.contains("bash, zsh, fish"), "{err}");
}

#[test]
fn man_pages_render_with_man() {
    let env = Env::new();
    let dir = env.root.join("man1");
    let (code, _, err) = env.output(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for page in [
        "dockhand.1",
        "dockhand-logs.1",
        "dockhand-service-install.1",
    ] {
        assert!(dir.join(page).is_file(), "{page} missing");
    }
    // Works without a config file, even a broken one.
    env.write_config("this is not toml [");
    let (code, roff, err) = env.output(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(roff.starts_with(".ie \\n(.g"), "not roff: {roff}");
    // The nix build sandbox has no `man`: the pages were written, and
    // rendering them is checked where man exists.
    if crate::harness::which("man").is_none() {
        eprintln!("SKIP: no `man` on PATH to render the page");
        return;
    }
    let page = env.root.join("dockhand.1");
    std::fs::write(&page, roff).unwrap();
    let o = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("Keeps a Docker engine ready"), "{text}");
    assert!(text.contains("logs"), "{text}");
}
