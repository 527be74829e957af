//! Linux: /proc for identity, pidfd for exit, PR_SET_CHILD_SUBREAPER.

use super::ProcInfo;

pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ... starttime(22nd field) ...": comm may hold
    // spaces and parentheses, so split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = *fields.first()?;
    let start = fields.get(19)?.parse().ok()?;
    let argv = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Some(ProcInfo {
        pid,
        argv,
        start,
        zombie: state == "Z" || state == "X",
    })
}

/// Orphans of the engine (containerd after dockerd dies) are re-parented
/// to us and reaped at once, instead of lingering as zombies that look
/// alive to the next engine.
pub fn become_subreaper() {
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
}

/// A pidfd: readable once the process has exited.
pub fn exit_fd(pid: i32) -> std::io::Result<std::os::fd::OwnedFd> {
    let p = super::rpid(pid).ok_or(std::io::ErrorKind::InvalidInput)?;
    Ok(rustix::process::pidfd_open(
        p,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Signal through the pidfd: it names exactly one process.
pub fn signal_via(fd: &std::os::fd::OwnedFd, sig: super::Signal) -> Option<std::io::Result<()>> {
    Some(rustix::process::pidfd_send_signal(fd, sig).map_err(Into::into))
}

/// Live children of this process (zombies excluded). The candidates come
/// from the kernel's own lists (`/proc/self/task/<tid>/children`,
/// CONFIG_PROC_CHILDREN: on in Debian's, Ubuntu's, Fedora's and Arch's
/// kernels): a read per thread, where walking all of /proc costs a read
/// per process on the machine (tens of ms on a busy desktop, in the
/// restart path). Without those lists, every process is looked at. Each
/// candidate is then checked in its own `stat`, as before.
pub fn children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let candidates = listed_children(me).unwrap_or_else(all_pids);
    candidates
        .into_iter()
        .filter(|pid| live_child_of(*pid, me))
        .collect()
}

/// Our threads' children lists; None when the kernel has none.
///
/// A list read while a child is reaped may skip an entry (the kernel
/// walks it by position): only the runtime thread reaps, and it is the
/// one reading. A thread that exits hands its children to the main
/// thread (`find_alive_thread` in kernel/exit.c), whose list is read
/// last so none is missed in between.
fn listed_children(me: i32) -> Option<Vec<i32>> {
    let read = |tid: i32| std::fs::read_to_string(format!("/proc/self/task/{tid}/children"));
    let mut tids: Vec<i32> = std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|t| *t != me)
        .collect();
    tids.push(me);
    let mut out = Vec::new();
    for tid in tids {
        match read(tid) {
            Ok(list) => out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            ),
            Err(_) if tid == me => return None,
            // A thread that ended meanwhile: its children went to ours.
            Err(_) => {}
        }
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// Every process on the machine.
fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// `pid` is alive (not a zombie) and its parent is `me`.
fn live_child_of(pid: i32, me: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return false;
    };
    let mut f = rest.split_whitespace();
    let state = f.next().unwrap_or("");
    let ppid: i32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    ppid == me && state != "Z" && state != "X"
}

/// The pid of the process that listens on the other end of a connected
/// unix socket (SO_PEERCRED: its credentials at `listen()` time).
pub fn peer_pid(fd: std::os::fd::BorrowedFd<'_>) -> Option<i32> {
    use std::os::fd::AsRawFd;
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0 && cred.pid > 0).then_some(cred.pid)
}

/// macOS's major version; None here.
pub fn os_major() -> Option<u32> {
    None
}

#[cfg(test)]
mod children_tests {
    use super::*;

    /// The kernel's lists name the live children a walk of all of /proc
    /// finds: a spawned child and its orphaned grandchild (we are its
    /// subreaper), and no zombie. (Other tests run alongside: only these
    /// three are compared.)
    #[test]
    fn the_kernel_lists_match_a_walk_of_proc() {
        // A subreaper is one for the whole process: this runs in a test
        // binary of its own, so the other tests' orphans go to init as usual.
        const ALONE: &str = "DOCKHAND_TEST_CHILDREN_ALONE";
        if std::env::var_os(ALONE).is_none() {
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "sys::imp::children_tests::the_kernel_lists_match_a_walk_of_proc",
                ])
                .env(ALONE, "1")
                .status()
                .unwrap();
            assert!(status.success());
            return;
        }
        become_subreaper();
        let me = std::process::id() as i32;
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // sh forks a sleeper and exits: the sleeper comes to us.
        let out = std::process::Command::new("sh")
            .args(["-c", "sleep 30 >/dev/null 2>&1 & echo $!"])
            .output()
            .unwrap();
        let orphan: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let zombie = std::process::Command::new("true").spawn().unwrap();
        let zpid = zombie.id() as i32;
        // `true` is done once its stat says so (a zombie: never waited).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while live_child_of(zpid, me) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let ours = [sleeper.id() as i32, orphan, zpid];
        let pick = |v: Vec<i32>| -> Vec<i32> {
            let mut v: Vec<i32> = v.into_iter().filter(|p| ours.contains(p)).collect();
            v.sort_unstable();
            v
        };
        let listed = listed_children(me).expect("CONFIG_PROC_CHILDREN");
        assert!(listed.contains(&zpid), "the lists hold zombies too");
        let walked: Vec<i32> = all_pids()
            .into_iter()
            .filter(|p| live_child_of(*p, me))
            .collect();
        let found = pick(children());
        let mut want = vec![sleeper.id() as i32, orphan];
        want.sort_unstable();
        assert_eq!(found, want, "the child and the orphan, not the zombie");
        assert_eq!(found, pick(walked));
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        crate::sys::signal(orphan, crate::sys::Signal::KILL);
        drop(zombie);
    }
}
