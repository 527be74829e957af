//! Which Colima is installed (`colima version`, asked once per start with
//! a deadline and a read cap), refused below the supported range or when
//! it can't run the profile (exit 4), and applied: Colima's directory and
//! the default socket under it follow the release
//! (`config::colima_release` holds the rules).

use std::io::{BufRead, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub use crate::config::colima_release::{MINIMUM, NEWEST_CHECKED, Version, colima_home, installed};
use crate::config::{self, Env, Profile};
use crate::error::{Error, Result};

/// How long `colima version` may take, and how much of it is read.
const ASK_TIMEOUT: Duration = Duration::from_secs(15);
const READ_CAP: u64 = 4096;

/// Ask `colima version`: the first line that names a version, within
/// ASK_TIMEOUT and READ_CAP bytes. (Later lines may ask the running VM
/// over ssh: colima `cmd/version.go`; they are not waited for.)
pub fn ask(colima: &Path) -> std::result::Result<String, String> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(colima)
        .arg("version")
        .env_remove("COLIMA_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", colima.display()))?;
    let out = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        for line in std::io::BufReader::new(out.take(READ_CAP)).lines() {
            let Ok(line) = line else { break };
            if line.contains("version") {
                first = line;
                break;
            }
        }
        let _ = tx.send(first);
    });
    let line = rx.recv_timeout(ASK_TIMEOUT);
    // Our own child and its group, not yet waited for: done with them.
    if !matches!(child.try_wait(), Ok(Some(_))) {
        let _ = rustix::process::kill_process_group(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::KILL,
        );
    }
    let _ = child.wait();
    match line {
        Ok(l) if !l.is_empty() => Ok(l),
        Ok(_) => Err("`colima version` printed no version".into()),
        Err(_) => Err(format!(
            "`colima version` did not answer within {}s",
            ASK_TIMEOUT.as_secs()
        )),
    }
}

/// Below MINIMUM: exit 4 with both versions and how to upgrade.
pub fn supported(v: Version) -> Result<()> {
    if v >= MINIMUM {
        return Ok(());
    }
    Err(Error::EngineUnusable(format!(
        "Colima {v} is installed; dockhand needs Colima {MINIMUM} or later: upgrade it (`brew upgrade colima`, or a newer nixpkgs#colima) and run dockhand again"
    )))
}

/// `vm_type = "krunkit"` needs Colima 0.10.0 and macOS on Apple Silicon
/// (v0.10.3 configmanager.go: "only available on macOS with Apple Silicon").
pub fn vm_type_usable(vm_type: Option<&str>, v: Version, apple_silicon: bool) -> Result<()> {
    if vm_type != Some("krunkit") {
        return Ok(());
    }
    if !v.krunkit() {
        return Err(Error::EngineUnusable(format!(
            "vm_type = \"krunkit\" needs Colima 0.10.0 or later (installed: {v}): upgrade Colima (`brew upgrade colima`) or set vm_type = \"vz\" in the profile's [colima] table"
        )));
    }
    if !apple_silicon {
        return Err(Error::EngineUnusable(
            "vm_type = \"krunkit\" is only available on macOS with Apple Silicon: set vm_type = \"vz\" or \"qemu\" in the profile's [colima] table".into(),
        ));
    }
    Ok(())
}

fn apple_silicon() -> bool {
    cfg!(all(target_os = "macos", target_arch = "aarch64"))
}

/// Once per start, for a Colima profile: ask the installed release,
/// refuse what it can't do (exit 4), and move Colima's directory (and the
/// default socket under it) to where that release keeps it. Returns notes
/// for the log. Without a usable answer the newest behaviour is assumed.
pub fn adapt(p: &mut Profile) -> Result<Vec<String>> {
    let (Some(c), Some(bin)) = (p.colima.as_mut(), crate::sys::which("colima")) else {
        return Ok(Vec::new());
    };
    let mut notes = Vec::new();
    let v = match ask(&bin).map(|l| (Version::parse(&l), l)) {
        Ok((Some(v), _)) => v,
        Ok((None, line)) => {
            notes.push(format!(
                "{line:?}: not a release number; assuming Colima {NEWEST_CHECKED}'s behaviour"
            ));
            NEWEST_CHECKED
        }
        Err(e) => {
            notes.push(format!("{e}; assuming Colima {NEWEST_CHECKED}'s behaviour"));
            NEWEST_CHECKED
        }
    };
    supported(v)?;
    vm_type_usable(c.vm_type.as_deref(), v, apple_silicon())?;
    crate::config::colima_release::set_installed(v);
    notes.push(format!("Colima {v}"));
    let env = Env::from_process()?;
    if env.colima_home.is_some() && !v.reads_colima_home() {
        notes.push(format!(
            "Colima {v} ignores COLIMA_HOME (read since 0.6.10): using its default directory"
        ));
    }
    let home = colima_home(&env, v);
    if home != c.home {
        let short = config::short_profile(&c.profile).to_string();
        if p.socket == c.home.join(&short).join("docker.sock") {
            p.socket = home.join(&short).join("docker.sock");
        }
        if env.lima_home.is_none() {
            c.lima_home = home.join("_lima");
        }
        notes.push(format!(
            "Colima {v} keeps its files in {} (not {})",
            home.display(),
            c.home.display()
        ));
        c.home = home;
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_minimum_is_refused_with_both_versions() {
        let e = supported(Version(0, 5, 6)).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        let m = e.to_string();
        assert!(m.contains("0.5.6") && m.contains("0.6.0") && m.contains("brew upgrade"));
        assert!(supported(MINIMUM).is_ok());
    }

    #[test]
    fn krunkit_needs_0_10_and_apple_silicon() {
        let old = vm_type_usable(Some("krunkit"), Version(0, 9, 1), true).unwrap_err();
        assert_eq!(old.exit_code(), 4);
        assert!(old.to_string().contains("0.9.1"));
        let intel = vm_type_usable(Some("krunkit"), Version(0, 10, 3), false).unwrap_err();
        assert!(intel.to_string().contains("Apple Silicon"));
        assert!(vm_type_usable(Some("krunkit"), Version(0, 10, 0), true).is_ok());
        assert!(vm_type_usable(Some("vz"), Version(0, 6, 0), false).is_ok());
    }
}
