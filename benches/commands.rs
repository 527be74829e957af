//! Latency of the day-to-day commands against a real supervisor over a
//! real dockerd (run: `cargo bench --bench commands`, as root, with
//! Debian's docker.io installed):
//! - `dockhand status` (asks the supervisor over its control socket, then
//!   probes the socket itself): target ≤ 20 ms;
//! - `dockhand up` on an already-ready engine: target ≤ 50 ms.
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
