//! Latency of the day-to-day commands against a real supervisor over a
//! real dockerd (run: `cargo bench --bench commands`, as root, with
//! Debian's docker.io installed):
//! - `dockhand status` (asks the supervisor over its control socket, then
//!   probes the socket itself): target ≤ 20 ms;
//! - `dockhand up` on an already-ready engine: target ≤ 50 ms;
//! - `dockhand logs -n 5` when the last line is 50 MiB long (no engine
//!   needed): target < 500 ms (issue 17; it was 4.8 s).
//!
//! Each is the whole process, spawn to exit, of the release build.
//! Printed, not asserted.

#[path = "../tests/it/harness.rs"]
mod harness;

use std::time::Instant;

use harness::Env;

const RUNS: usize = 50;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("commands bench: run with `cargo bench --bench commands`");
        return;
    }
    logs_after_a_huge_line();
    if !harness::engine_available() {
        return;
    }
    let mut env = Env::new();
    env.dockerd_config("probe_interval = \"30s\"\nprobe_timeout = \"5s\"");
    env.run();
    env.wait_ready();
    println!("command latency, spawn to exit ({RUNS} runs each; ready engine):");
    println!("  command              median_ms  p90_ms  max_ms  target_ms");
    for (args, target) in [
        (&["status"][..], 20.0),
        (&["status", "--json"][..], 20.0),
        (&["up"][..], 50.0),
        (&["up", "--json"][..], 50.0),
    ] {
        let mut ms: Vec<f64> = (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                let o = env.cmd(args).output().unwrap();
                let d = t.elapsed();
                assert!(
                    o.status.success(),
                    "{args:?} failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                d.as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "  {:<20} {:>9.1}  {:>6.1}  {:>6.1}  {target:>9.0}",
            args.join(" "),
            ms[RUNS / 2],
            ms[RUNS * 9 / 10],
            ms[RUNS - 1]
        );
    }
}

/// `logs -n 5` over a log whose last line is 50 MiB: median and max of 5.
fn logs_after_a_huge_line() {
    use std::io::Write;
    let env = Env::new();
    let log = env.root.join("logs/d.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    env.command_config(
        &["/bin/true"],
        &format!("log_file = {:?}", log.display().to_string()),
    );
    let mut f = std::fs::File::create(&log).unwrap();
    f.write_all(b"short one\nshort two\n").unwrap();
    let piece = vec![b'x'; 1 << 20];
    for _ in 0..50 {
        f.write_all(&piece).unwrap();
    }
    f.write_all(b"y\n").unwrap();
    let mut ms: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let o = env
                .cmd(&["logs", "-n", "5"])
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(o.success());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "logs -n 5 after a 50 MiB line (5 runs): median {:.1} ms, max {:.1} ms (target < 500)",
        ms[2], ms[4]
    );
}
