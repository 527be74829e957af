//! No splice(2) here: callers copy through their buffer.

use std::io;

use super::super::sock::{ReadHalf, WriteHalf};

pub const AVAILABLE: bool = false;

pub async fn splice(_from: &ReadHalf, _to: &mut WriteHalf, _limit: Option<u64>) -> io::Result<u64> {
    Err(io::ErrorKind::Unsupported.into())
}
