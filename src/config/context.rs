//! The invocation every command works in: the loaded config and the
//! profile chosen with `--profile`.

use super::{Config, Profile};
use crate::error::Result;

/// What every command needs: the loaded config and the chosen profile name.
pub struct Context {
    pub config: Config,
    pub profile_name: String,
}

impl Context {
    pub fn profile(&self) -> Result<Profile> {
        self.config.profile(&self.profile_name)
    }
}
