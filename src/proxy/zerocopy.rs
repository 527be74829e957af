//! Moving large bodies and raw streams between two sockets without
//! copying them through dockhand's memory, the platform seam for it:
//! splice(2) through a pipe on Linux (socket → pipe → socket: the kernel
//! moves page references); elsewhere `AVAILABLE` is false and callers use
//! the buffered copy.

#[cfg(target_os = "linux")]
#[path = "zerocopy/linux.rs"]
mod imp;
#[cfg(not(target_os = "linux"))]
#[path = "zerocopy/other.rs"]
mod imp;

pub use imp::{AVAILABLE, splice};

/// Transfers smaller than this go through the buffer: a pipe costs three
/// system calls to set up.
pub const MIN: u64 = 256 * 1024;
