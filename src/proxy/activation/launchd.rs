//! launchd socket activation: the plist's `Sockets` entry is bound by
//! launchd; `launch_activate_socket(name)` hands its descriptors over
//! (launch(3), <launch.h>: returns 0 and a malloc'd array, ESRCH when not
//! run by launchd, ENOENT when the name isn't in the plist).

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::error::Result;

unsafe extern "C" {
    fn launch_activate_socket(
        name: *const libc::c_char,
        fds: *mut *mut libc::c_int,
        cnt: *mut libc::size_t,
    ) -> libc::c_int;
}

pub fn activation_fds() -> Result<Vec<OwnedFd>> {
    let name = CString::new(super::LAUNCHD_SOCKET_NAME).expect("no NUL");
    let mut fds: *mut libc::c_int = std::ptr::null_mut();
    let mut cnt: libc::size_t = 0;
    // SAFETY: valid pointers; on success launchd allocates `fds` (freed below).
    let rc = unsafe { launch_activate_socket(name.as_ptr(), &mut fds, &mut cnt) };
    if rc != 0 || fds.is_null() {
        return Ok(Vec::new());
    }
    // SAFETY: launchd returned `cnt` descriptors in a malloc'd array.
    let raw = unsafe { std::slice::from_raw_parts(fds, cnt) }.to_vec();
    // SAFETY: the array is ours to free.
    unsafe { libc::free(fds.cast()) };
    // SAFETY: each descriptor was handed to us to own.
    Ok(raw
        .into_iter()
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect())
}
