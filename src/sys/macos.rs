//! macOS: libproc and sysctl(KERN_PROCARGS2) for identity, kqueue
//! EVFILT_PROC/NOTE_EXIT for exit. No subreaper exists on macOS.

use super::ProcInfo;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    // SAFETY: proc_pidinfo writes at most `size` bytes into `info`.
    let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            &mut info as *mut _ as *mut libc::c_void,
            size,
        )
    };
    if n != size {
        return None;
    }
    const SZOMB: u32 = 5;
    Some(ProcInfo {
        pid,
        argv: procargs(pid).unwrap_or_default(),
        start: info.pbi_start_tvsec * 1_000_000 + info.pbi_start_tvusec,
        zombie: info.pbi_status == SZOMB,
    })
}

/// argv via sysctl KERN_PROCARGS2: argc (i32), the exec path, NULs, then
/// argc NUL-terminated arguments.
fn procargs(pid: i32) -> Option<Vec<String>> {
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid];
    let mut size: libc::size_t = 0;
    // SAFETY: first call asks for the size; second fills a buffer of it.
    unsafe {
        if libc::sysctl(
            mib.as_mut_ptr(),
            3,
            std::ptr::null_mut(),
            &mut size,
            std::ptr::null_mut(),
            0,
        ) != 0
        {
            return None;
        }
    }
    let mut buf = vec![0u8; size];
    unsafe {
        if libc::sysctl(
            mib.as_mut_ptr(),
            3,
            buf.as_mut_ptr() as *mut libc::c_void,
            &mut size,
            std::ptr::null_mut(),
            0,
        ) != 0
        {
            return None;
        }
    }
    buf.truncate(size);
    if buf.len() < 4 {
        return None;
    }
    let argc = i32::from_ne_bytes(buf[..4].try_into().ok()?) as usize;
    let mut rest = &buf[4..];
    // Skip the exec path and its NUL padding.
    let end = rest.iter().position(|b| *b == 0)?;
    rest = &rest[end..];
    let start = rest.iter().position(|b| *b != 0)?;
    rest = &rest[start..];
    Some(
        rest.split(|b| *b == 0)
            .take(argc)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

pub fn become_subreaper() {}

/// A kqueue with EVFILT_PROC/NOTE_EXIT for `pid`: readable once it exits.
pub fn exit_fd(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain kqueue/kevent calls on a descriptor we own.
    let kq = unsafe { libc::kqueue() };
    if kq < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let kq = unsafe { OwnedFd::from_raw_fd(kq) };
    let mut ev: libc::kevent = unsafe { std::mem::zeroed() };
    ev.ident = pid as libc::uintptr_t;
    ev.filter = libc::EVFILT_PROC;
    ev.flags = libc::EV_ADD | libc::EV_ONESHOT;
    ev.fflags = libc::NOTE_EXIT;
    let r = unsafe {
        libc::kevent(
            kq.as_raw_fd(),
            &ev,
            1,
            std::ptr::null_mut(),
            0,
            std::ptr::null(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(kq)
}

/// macOS has no process descriptors to signal through.
pub fn signal_via(_fd: &OwnedFd, _sig: super::Signal) -> Option<std::io::Result<()>> {
    None
}

/// Live children of this process. Without a subreaper on macOS, an
/// engine's background processes never come back to dockhand: none to
/// find here.
pub fn children() -> Vec<i32> {
    Vec::new()
}

/// The pid of the process that listens on the other end of a connected
/// unix socket (LOCAL_PEERPID).
pub fn peer_pid(fd: std::os::fd::BorrowedFd<'_>) -> Option<i32> {
    let mut pid: libc::pid_t = 0;
    let mut len = std::mem::size_of::<libc::pid_t>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `pid`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_LOCAL,
            libc::LOCAL_PEERPID,
            &mut pid as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0 && pid > 0).then_some(pid)
}

/// The macOS major version (`kern.osproductversion`, "14.5" → 14).
pub fn os_major() -> Option<u32> {
    let mut buf = [0u8; 32];
    let mut len = buf.len();
    // SAFETY: sysctlbyname writes at most `len` bytes into `buf`.
    let r = unsafe {
        libc::sysctlbyname(
            c"kern.osproductversion".as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_void,
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if r != 0 {
        return None;
    }
    let s = std::str::from_utf8(&buf[..len.min(buf.len())]).ok()?;
    s.trim_end_matches('\0').split('.').next()?.parse().ok()
}
