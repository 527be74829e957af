use crate::config::Profile;
use crate::error::Result;
pub fn run(_p: &Profile, _json: bool) -> Result<u8> { Ok(0) }
