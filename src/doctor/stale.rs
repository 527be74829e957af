//! Stale files an unclean stop leaves: pid files naming no live process of
//! the engine, sockets nobody serves, Lima's dangling disk locks. Removing
//! them is safe while no supervisor runs (nothing is signalled, and a
//! recycled pid's process is left alone); with one running, the
//! supervisor cleans up itself at its next start.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Check, Fix};
use crate::config::Profile;
use crate::probe::{self, Ping};

pub fn check(p: &Profile) -> Vec<Check> {
    let mut stale: Vec<(PathBuf, String)> = Vec::new();
    let mut pid_files: Vec<PathBuf> = vec![p.state_dir.join("dockerd.pid")];
    if let Some(d) = &p.dockerd {
        pid_files.push(d.exec_root.join("containerd/containerd.pid"));
    }
    // A supervisor killed with SIGKILL leaves its control socket behind.
    let mut sockets = vec![p.socket.clone(), crate::control_socket::path(p)];
    if let Some(c) = &p.colima {
        // lima pkg/limatype/filenames; colima config/files.go.
        let dir = c.instance_dir();
        for f in ["ha.pid", "qemu.pid", "vz.pid", "krunkit.pid"] {
            pid_files.push(dir.join(f));
        }
        sockets.push(dir.join("ha.sock"));
        disk_locks(&c.lima_home, &mut stale);
    }
    for f in pid_files {
        if let Some(why) = stale_pid_file(&f) {
            stale.push((f, why));
        }
    }
    for s in sockets {
        if std::fs::symlink_metadata(&s).is_ok_and(|m| m.file_type().is_socket())
            && probe::ping_blocking(&s, Duration::from_secs(2)) == Ping::Refused
        {
            stale.push((s, "nobody serves it".into()));
        }
    }
    let id = "stale";
    if stale.is_empty() {
        return vec![Check::pass(id, "no stale pid files, locks or sockets")];
    }
    let list: Vec<String> = stale
        .iter()
        .map(|(f, why)| format!("{} ({why})", f.display()))
        .collect();
    let running = crate::state::holder_pid(&p.lock_path()).is_some();
    let files: Vec<PathBuf> = stale.into_iter().map(|(f, _)| f).collect();
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let c = Check::fail(
        id,
        format!("left by an unclean stop: {}", list.join("; ")),
        if running {
            "the running supervisor removes them at its next start (`dockhand restart`)".to_string()
        } else {
            format!("rm {}", names.join(" "))
        },
    );
    vec![if running {
        c
    } else {
        c.repair(Fix::Remove(files))
    }]
}

/// Why the pid file at `f` is stale, or None when it names a live process
/// of its own (one whose command line mentions the file's directory, as
/// dockerd's `--pidfile`, Lima's host agent and qemu's do).
fn stale_pid_file(f: &Path) -> Option<String> {
    let dir = f.parent()?;
    let real = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let own = |i: &crate::sys::ProcInfo| {
        i.argv
            .iter()
            .any(|a| a.contains(&*dir.to_string_lossy()) || a.contains(&*real.to_string_lossy()))
    };
    crate::sys::file::stale_pid(f, own)
        .ok()?
        .map(|why| why.to_string())
}

/// `<LIMA_HOME>/_disks/<disk>/in_use_by`: a symlink to the instance using
/// the disk; a dangling one blocks the next start before Lima 2.1.1.
fn disk_locks(lima_home: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(disks) = std::fs::read_dir(lima_home.join("_disks")) else {
        return;
    };
    for d in disks.flatten().take(200) {
        let lock = d.path().join("in_use_by");
        if std::fs::symlink_metadata(&lock).is_ok_and(|m| m.file_type().is_symlink())
            && !lock.exists()
        {
            out.push((lock, "names an instance that no longer exists".into()));
        }
    }
}
