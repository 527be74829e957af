//! Figures under a real `systemd --user` (tests/systemd-user/rig.sh; run:
//! `cargo bench --bench service`, as root, with scripts/test's
//! prerequisites), with dockerd under root's user manager:
//! - `dockhand service install` until it returns (the engine ready);
//! - `dockhand service restart`: a new supervisor adopting the engine;
//! - `dockhand service restart --engine`: the engine restarted too.
//!
//! Target: a restart that keeps the engine ≤ 0.5 s. Printed, not asserted.

#[path = "../tests/it/harness.rs"]
mod harness;
#[path = "../tests/it/systemd_user.rs"]
mod systemd_user;

use std::time::Instant;

use systemd_user::{Rig, Round, UNIT, ok};

const ROUNDS: usize = 3;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("service bench: run with `cargo bench --bench service`");
        return;
    }
    if !systemd_user::available(true) {
        return;
    }
    let rig = Rig::up(Round::Dockerd);
    rig.write_config("start_timeout = \"60s\"", &[]);
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    ok(&rig.dockhand(&["service", "install"]), "install");
    println!("service install → ready: {:.0} ms", ms(t));
    let engine = rig.engine_pid();
    println!("  round  restart_ms (engine kept)  restart_engine_ms");
    for round in 1..=ROUNDS {
        let t = Instant::now();
        ok(&rig.dockhand(&["service", "restart"]), "restart");
        let keep = ms(t);
        assert_eq!(rig.state()["adopted"], true);
        // Back-to-back starts would reach systemd's start limit (5 per 10 s).
        rig.systemctl(&["reset-failed", UNIT]);
        let t = Instant::now();
        ok(
            &rig.dockhand(&["service", "restart", "--engine"]),
            "restart --engine",
        );
        let fresh = ms(t);
        rig.systemctl(&["reset-failed", UNIT]);
        println!("  {round:5}  {keep:24.0}  {fresh:17.0}");
    }
    assert_ne!(rig.engine_pid(), engine);
    ok(&rig.dockhand(&["service", "uninstall"]), "uninstall");
}
