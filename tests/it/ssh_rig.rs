//! A private OpenSSH server on 127.0.0.1 and a private dockerd behind it
//! (the "remote" engine), everything under one directory: its own
//! sshd_config, host key, AuthorizedKeysFile, known_hosts and client
//! config (`ssh -F`). Never the system's sshd or `/etc/ssh`. Used by the
//! ssh engine's tests and its bench.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";

pub struct Rig {
    pub dir: PathBuf,
    pub port: u16,
    pub remote_sock: PathBuf,
    pub client_config: PathBuf,
    sshd: Option<Child>,
    remote: Option<Child>,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path));
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// sshd and ssh-keygen are here (Debian: openssh-server).
pub fn available() -> bool {
    Path::new(SSHD).exists()
        && Command::new("ssh-keygen").arg("-?").output().is_ok()
        && Command::new("ssh").arg("-V").output().is_ok()
}

fn until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Rig {
    pub fn new(root: &Path) -> Rig {
        let dir = root.join("ssh");
        std::fs::create_dir_all(&dir).unwrap();
        for k in ["host_key", "user_key", "other_key"] {
            keygen(&dir.join(k));
        }
        let rig = Rig {
            port: free_port(),
            remote_sock: dir.join("r.sock"),
            client_config: dir.join("ssh_config"),
            dir,
            sshd: None,
            remote: None,
        };
        rig.authorize("user_key");
        rig.trust_host_key(true);
        std::fs::write(
            &rig.client_config,
            format!(
                "Host devbox\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {d}/user_key\n  IdentitiesOnly yes\n  IdentityAgent none\n  UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  ConnectTimeout 5\n",
                rig.port,
                d = rig.dir.display()
            ),
        )
        .unwrap();
        rig
    }

    /// Only `key`'s public half may log in.
    pub fn authorize(&self, key: &str) {
        let pubkey = std::fs::read_to_string(self.dir.join(format!("{key}.pub"))).unwrap();
        std::fs::write(self.dir.join("authorized_keys"), pubkey).unwrap();
    }

    /// The client knows the server's host key (or knows none).
    pub fn trust_host_key(&self, yes: bool) {
        let line = match yes {
            true => {
                let k = std::fs::read_to_string(self.dir.join("host_key.pub")).unwrap();
                format!("[127.0.0.1]:{} {k}", self.port)
            }
            false => String::new(),
        };
        std::fs::write(self.dir.join("known_hosts"), line).unwrap();
    }

    /// The client knows another key of the same type for the server: to
    /// ssh, the server's key has changed.
    pub fn trust_wrong_host_key(&self) {
        let k = std::fs::read_to_string(self.dir.join("other_key.pub")).unwrap();
        let line = format!("[127.0.0.1]:{} {k}", self.port);
        std::fs::write(self.dir.join("known_hosts"), line).unwrap();
    }

    /// Start sshd (foreground, logging to `sshd.log`) with `extra`
    /// sshd_config lines; returns once it accepts connections.
    pub fn start_sshd(&mut self, extra: &str) {
        // sshd's privilege separation directory (Debian's init script
        // makes it too).
        let _ = std::fs::create_dir_all("/run/sshd");
        let d = self.dir.display();
        let cfg = self.dir.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "Port {}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\n{extra}\n",
                self.port
            ),
        )
        .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("sshd.log"))
            .unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.sshd = Some(child);
        let port = self.port;
        until("sshd to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    pub fn sshd_pid(&self) -> Option<i32> {
        self.sshd.as_ref().map(|c| c.id() as i32)
    }

    /// The per-connection sshd processes (descendants of the listener).
    pub fn sessions(&self) -> Vec<i32> {
        let Some(root) = self.sshd_pid() else {
            return Vec::new();
        };
        descendants(root)
    }

    /// Stop sshd and every connection it serves.
    pub fn stop_sshd(&mut self) {
        let sessions = self.sessions();
        if let Some(mut c) = self.sshd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in sessions {
            signal(pid, rustix::process::Signal::KILL);
        }
    }

    /// Successful logins so far.
    pub fn logins(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }

    /// TCP connections the server has seen so far.
    pub fn connections(&self) -> usize {
        self.log().matches("Connection from 127.0.0.1").count()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Established TCP connections to the server's port, from /proc.
    pub fn established(&self) -> usize {
        let port = format!(":{:04X}", self.port);
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[3] == "01" && (f[1].ends_with(&port) || f[2].ends_with(&port))
            })
            .count()
    }

    /// Start the remote dockerd on `remote_sock`; returns once it answers.
    pub fn start_remote(&mut self) {
        let d = &self.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("remote.log"))
            .unwrap();
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{}", self.remote_sock.display()))
            .arg("--pidfile")
            .arg(d.join("r.pid"))
            .arg("--data-root")
            .arg(d.join("rdata"))
            .arg("--exec-root")
            .arg(d.join("rx"))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.remote = Some(child);
        let sock = self.remote_sock.clone();
        until("the remote dockerd", Duration::from_secs(60), || {
            docker(&sock, &["version"]).0
        });
    }

    /// SIGTERM the remote dockerd and wait for it (and its containerd).
    pub fn stop_remote(&mut self) {
        if let Some(mut c) = self.remote.take() {
            let pid = c.id() as i32;
            let kids = descendants(pid);
            signal(pid, rustix::process::Signal::TERM);
            let _ = c.wait();
            until(
                "the remote's helpers to go",
                Duration::from_secs(20),
                || kids.iter().all(|k| !alive(*k)),
            );
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop_sshd();
        if let Some(mut c) = self.remote.take() {
            let kids = descendants(c.id() as i32);
            let _ = c.kill();
            let _ = c.wait();
            for k in kids {
                signal(k, rustix::process::Signal::KILL);
            }
        }
    }
}

/// `docker -H unix://<sock> args...`: success and stdout + stderr.
pub fn docker(sock: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

pub fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .is_some_and(|i| !s[i + 1..].trim_start().starts_with('Z'))
    })
}

fn ppid(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every live descendant of `root`.
pub fn descendants(root: i32) -> Vec<i32> {
    let all: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
                .filter_map(|p| Some((p, ppid(p)?)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (c, pp) in &all {
            if *pp == p && alive(*c) {
                out.push(*c);
                frontier.push(*c);
            }
        }
    }
    out
}
