//! Service definitions that nix installs, which dockhand never rewrites or
//! removes. nix-darwin copies user agents with `cp -f` (mode 0444, a
//! regular file: modules/system/launchd.nix), home-manager with
//! `install -Dm444` on macOS (modules/launchd/default.nix: "can't be
//! symlinked from the Nix store") and as symlinks into the store for
//! systemd units. Recognised: a symlink; a regular file nobody may write
//! (dockhand writes 0644); or a `--config` in `/nix/store` (dockhand's
//! own modules pass the generated config from the store).
//!
//! "Matches its generation": the file is byte for byte the copy in the
//! current nix-darwin system (`/run/current-system/user/Library/
//! LaunchAgents/`) or home-manager generation (`current-home/LaunchAgents/`,
//! `current-home/home-files/.config/systemd/user/`), or a symlink that
//! resolves. `DOCKHAND_TEST_SYSROOT` (tests only) prefixes the absolute
//! system paths.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// A definition nix manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NixOwned {
    /// "nix-darwin", "home-manager", or "nix-darwin/home-manager".
    pub manager: &'static str,
    /// What gave it away.
    pub why: String,
    /// Some(true): the same as its generation's copy; Some(false): differs
    /// (a switch is due); None: no generation copy found to compare.
    pub matches: Option<bool>,
}

const MAX_READ: u64 = 1 << 20;

/// An absolute system path, under `DOCKHAND_TEST_SYSROOT` in tests.
pub fn sysroot(abs: &str) -> PathBuf {
    match std::env::var_os("DOCKHAND_TEST_SYSROOT") {
        Some(r) if !r.is_empty() => Path::new(&r).join(abs.trim_start_matches('/')),
        _ => PathBuf::from(abs),
    }
}

fn read_bounded(path: &Path) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_READ)
        .read_to_end(&mut v)
        .ok()?;
    Some(v)
}

/// The `--config` argument of a plist's ProgramArguments or a unit's
/// ExecStart, roughly tokenised (quotes and XML tags are separators).
fn config_arg(text: &str) -> Option<&str> {
    let mut words = text
        .split(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '"')
        .filter(|w| !w.is_empty() && *w != "string" && *w != "/string");
    while let Some(w) = words.next() {
        if w == "--config" {
            return words.next();
        }
        if let Some(v) = w.strip_prefix("--config=") {
            return Some(v);
        }
    }
    None
}

/// Whether nix manages the definition at `path` (None: absent or ours).
pub fn recognise(path: &Path) -> Option<NixOwned> {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    recognise_in(path, &home)
}

fn recognise_in(path: &Path, home: &Path) -> Option<NixOwned> {
    let m = std::fs::symlink_metadata(path).ok()?;
    let name = path.file_name()?.to_string_lossy().into_owned();
    if m.file_type().is_symlink() {
        let target = std::fs::canonicalize(path).ok();
        return Some(NixOwned {
            manager: by_label(&name),
            why: match &target {
                Some(t) => format!("a symlink to {}", t.display()),
                None => "a dangling symlink".into(),
            },
            matches: Some(target.is_some()),
        });
    }
    if !m.is_file() {
        return None;
    }
    let bytes = read_bounded(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let why = if m.permissions().mode() & 0o222 == 0 {
        "a read-only copy, as nix installs agents (0444)".to_string()
    } else if let Some(c) = config_arg(&text).filter(|c| c.starts_with("/nix/store/")) {
        format!("its --config {c} is in the nix store")
    } else {
        return None;
    };
    let copies = generation_copies(home, &name);
    let found = copies.iter().find(|(_, p)| p.exists());
    let matches = found.map(|(_, p)| read_bounded(p).is_some_and(|g| g == bytes));
    let manager = found.map_or_else(|| by_label(&name), |(who, _)| *who);
    Some(NixOwned {
        manager,
        why,
        matches,
    })
}

fn by_label(file: &str) -> &'static str {
    if file.starts_with("org.nix-community.home.") {
        "home-manager"
    } else {
        "nix-darwin/home-manager"
    }
}

/// Where the current generations keep their copy of definition `file`.
fn generation_copies(home: &Path, file: &str) -> Vec<(&'static str, PathBuf)> {
    let user = std::env::var("USER").unwrap_or_default();
    let hm_roots = [
        home.join(".local/state/home-manager/gcroots/current-home"),
        sysroot(&format!(
            "/nix/var/nix/gcroots/per-user/{user}/current-home"
        )),
    ];
    let mut v = vec![
        (
            "nix-darwin",
            sysroot("/run/current-system/user/Library/LaunchAgents").join(file),
        ),
        (
            "nix-darwin",
            sysroot("/run/current-system/Library/LaunchAgents").join(file),
        ),
    ];
    for r in hm_roots {
        v.push(("home-manager", r.join("LaunchAgents").join(file)));
        v.push((
            "home-manager",
            r.join("home-files/.config/systemd/user").join(file),
        ));
    }
    v
}

impl NixOwned {
    /// The refusal of `install`/`uninstall`: exit 6, change nix instead.
    pub fn refusal(&self, path: &Path) -> Error {
        Error::UnsafePath(format!(
            "{} is managed by {} ({}): dockhand won't rewrite or remove it; change the service in your nix configuration (services.dockhand / virtualisation.docker-darwin) and switch (`darwin-rebuild switch` / `home-manager switch`)",
            path.display(),
            self.manager,
            self.why
        ))
    }

    /// For `status` and `doctor`.
    pub fn describe(&self) -> String {
        let generation = match self.matches {
            Some(true) => "matches its generation",
            Some(false) => "differs from its current generation: switch again",
            None => "no generation found to compare",
        };
        format!("managed by {}, {generation}", self.manager)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_in_the_store_from_plist_and_unit() {
        let plist = "<array>\n\t\t<string>/nix/store/a-dockhand/bin/dockhand</string>\n\t\t<string>run</string>\n\t\t<string>--config</string>\n\t\t<string>/nix/store/b-dockhand-default.toml</string>";
        assert_eq!(
            config_arg(plist),
            Some("/nix/store/b-dockhand-default.toml")
        );
        let unit = "ExecStart=/nix/store/a/bin/dockhand run --profile default --config \"/nix/store/c.toml\"\n";
        assert_eq!(config_arg(unit), Some("/nix/store/c.toml"));
        assert_eq!(config_arg("ExecStart=dockhand run"), None);
    }

    #[test]
    fn read_only_copies_and_their_generation() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("home");
        let agents = home.join("Library/LaunchAgents");
        std::fs::create_dir_all(&agents).unwrap();
        let ours = agents.join("local.docker.plist");
        std::fs::write(&ours, "mine").unwrap();
        assert_eq!(recognise_in(&ours, &home), None, "dockhand's own 0644 file");
        std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o444)).unwrap();
        let n = recognise_in(&ours, &home).unwrap();
        assert_eq!(n.matches, None);
        let generation = home.join(".local/state/home-manager/gcroots/current-home/LaunchAgents");
        std::fs::create_dir_all(&generation).unwrap();
        std::fs::write(generation.join("local.docker.plist"), "mine").unwrap();
        let n = recognise_in(&ours, &home).unwrap();
        assert_eq!((n.manager, n.matches), ("home-manager", Some(true)));
        assert!(n.describe().contains("managed by home-manager"));
        std::fs::write(generation.join("local.docker.plist"), "newer").unwrap();
        assert_eq!(recognise_in(&ours, &home).unwrap().matches, Some(false));
        assert_eq!(recognise_in(&agents.join("absent.plist"), &home), None);
    }
}
