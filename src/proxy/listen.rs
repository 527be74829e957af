//! The `listen` socket: bound by dockhand (0600, in a directory that is
//! ours and writable by nobody else), or received from the service
//! manager (socket activation, `activation`). A live socket someone else
//! serves is never taken over; a stale one is replaced; anything that is
//! not a socket is left alone.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use crate::error::{Error, IoContext, Result};

/// The bound socket; removed on drop if it is still the one we made.
pub struct Bound {
    pub listener: UnixListener,
    /// Set when we created the file (not when it came from launchd/systemd).
    owned: Option<(PathBuf, u64, u64)>,
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Some((path, dev, ino)) = &self.owned
            && let Ok(md) = std::fs::symlink_metadata(path)
            && md.dev() == *dev
            && md.ino() == *ino
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Bind `path` for clients (inside the runtime).
pub fn bind(path: &Path) -> Result<Bound> {
    if let Some(l) = super::activation::inherited(path)? {
        return Ok(Bound {
            listener: l,
            owned: None,
        });
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    crate::state::private_dir(dir, "the directory of listen")?;
    clear(path)?;
    let std_l = std::os::unix::net::UnixListener::bind(path)
        .ctx(|| format!("cannot bind listen socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .ctx(|| format!("cannot chmod 0600 {}", path.display()))?;
    std_l
        .set_nonblocking(true)
        .ctx(|| "cannot make the listen socket non-blocking".into())?;
    let md =
        std::fs::symlink_metadata(path).ctx(|| format!("cannot inspect {}", path.display()))?;
    let listener = UnixListener::from_std(std_l)
        .ctx(|| format!("cannot serve listen socket {}", path.display()))?;
    Ok(Bound {
        listener,
        owned: Some((path.to_path_buf(), md.dev(), md.ino())),
    })
}

/// Make way for our socket at `path`, or say why we can't.
fn clear(path: &Path) -> Result<()> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("cannot inspect {}", path.display()), e)),
    };
    if !md.file_type().is_socket() {
        return Err(Error::UnsafePath(format!(
            "listen {} exists and is not a socket: dockhand will not replace it; move it away or set another listen path",
            path.display()
        )));
    }
    let uid = rustix::process::geteuid().as_raw();
    if md.uid() != uid {
        return Err(Error::UnsafePath(format!(
            "listen {} is a socket of uid {}, not yours: dockhand will not replace it; set another listen path",
            path.display(),
            md.uid()
        )));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => {
            let who = crate::sys::socket_holder(path)
                .map(|p| format!(" (pid {}, {})", p.pid, p.program()))
                .unwrap_or_default();
            Err(Error::UnsafePath(format!(
                "listen {} is served by another running program{who}: dockhand will not take it over; stop that program or set another listen path",
                path.display()
            )))
        }
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            tracing::info!("replacing the stale socket {}", path.display());
            std::fs::remove_file(path).ctx(|| format!("cannot remove stale {}", path.display()))
        }
        Err(e) => Err(Error::UnsafePath(format!(
            "listen {} can't be checked ({e}): dockhand will not replace it; set another listen path",
            path.display()
        ))),
    }
}
