//! `dockhand completions <shell>` and `dockhand man`: generated from the
//! same clap definitions as the parser, so they can't drift from it.

use std::path::Path;

use super::args::{Shell, command};
use crate::error::{IoContext, Result};

pub fn completions(shell: Shell) -> Result<u8> {
    let mut cmd = command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "dockhand", &mut std::io::stdout());
    Ok(0)
}

/// `dockhand.1` on stdout, or with `dir` one page per command there
/// (`dockhand.1`, `dockhand-up.1`, `dockhand-service-install.1`, ...).
pub fn man(dir: Option<&Path>) -> Result<u8> {
    let cmd = command();
    match dir {
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .ctx(|| "cannot write the man page".into())?,
        Some(d) => {
            std::fs::create_dir_all(d).ctx(|| format!("cannot create {}", d.display()))?;
            clap_mangen::generate_to(cmd, d)
                .ctx(|| format!("cannot write man pages to {}", d.display()))?;
        }
    }
    Ok(0)
}
