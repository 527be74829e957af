//! The on-demand proxy's figures, side by side (run: `cargo bench --bench
//! proxy`, as root, with Debian's docker.io and socat installed):
//! - throughput of a 1 GiB stream (response body, then request body)
//!   against a raw stream server on a unix socket: direct, through
//!   dockhand, through `socat` with default options;
//! - added latency of `GET /_ping` on a keep-alive connection to a real
//!   dockerd, through dockhand vs direct, p50 and p99;
//! - the first answer on a stopped engine (on_demand) next to the engine's
//!   own cold start;
//! - the supervisor's CPU and RSS with the proxy idle, and with a client
//!   polling `/_ping` every 100 ms.
//!
//! Targets: ≥ 0.9× direct throughput and ≥ 3× socat's; ≤ 30 µs added at
//! p50; first answer ≤ cold start + 0.2 s; idle ≤ 10 ms CPU per minute and
//! RSS ≤ 10 MB. Printed, not asserted. `DOCKHAND_BENCH_IDLE_SECS` sets the
//! idle measurements' length (default 30), `DOCKHAND_BENCH_GIB` the stream
//! size (default 1); `DOCKHAND_BENCH_ONLY=throughput|latency` runs one part.

mod common;
#[path = "../tests/it/harness.rs"]
mod harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{cpu_ns, last_stamp, now, pct, rss_kb};
use harness::Env;

const CHUNK: usize = 256 * 1024;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("proxy bench: run with `cargo bench --bench proxy`");
        return;
    }
    if !harness::engine_available() {
        return;
    }
    let gib: u64 = env_num("DOCKHAND_BENCH_GIB", 1);
    let idle_secs = env_num("DOCKHAND_BENCH_IDLE_SECS", 30);
    let only = std::env::var("DOCKHAND_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "throughput" {
        throughput(gib << 30);
    }
    if only == "latency" {
        let (mut env, listen) = dockerd_env("");
        let sup = env.run();
        latency(&env, &listen);
        env.stop(sup, Duration::from_secs(30));
    }
    if !only.is_empty() {
        return;
    }
    println!("supervisor CPU and RSS over {idle_secs} s (targets idle: ≤ 10 ms/min, RSS ≤ 10 MB):");
    {
        // on_demand with a short idle_stop: first answers, a stopped engine.
        let (mut env, listen) = dockerd_env("on_demand = true\nidle_stop = \"2s\"");
        let sup = env.run();
        env.wait_until("held", Duration::from_secs(20), |v| {
            v["held"] == "on_demand"
        });
        let first = first_answer(&env, &listen);
        let pid = env.supervisor_pid(sup);
        env.wait_until("idle stop", Duration::from_secs(60), |v| {
            v["held"] == "idle"
        });
        measure(pid, idle_secs, "engine stopped (idle), proxy idle", None);
        measure(
            pid,
            idle_secs,
            "engine stopped (idle), /_ping every 100 ms",
            Some(&listen),
        );
        env.stop(sup, Duration::from_secs(30));
        print!("{first}");
    }
    {
        // A ready engine behind the proxy.
        let (mut env, listen) = dockerd_env("");
        let sup = env.run();
        env.wait_ready();
        let pid = env.supervisor_pid(sup);
        measure(pid, idle_secs, "engine ready, proxy idle", None);
        measure(
            pid,
            idle_secs,
            "engine ready, /_ping every 100 ms",
            Some(&listen),
        );
        latency(&env, &listen);
        env.stop(sup, Duration::from_secs(30));
    }
}

fn dockerd_env(extra: &str) -> (Env, PathBuf) {
    let env = Env::new();
    let listen = env.state.join("dh.sock");
    env.dockerd_config(&format!(
        "listen = {:?}\ndocker_context = false\nprobe_interval = \"30s\"\nprobe_timeout = \"5s\"\n{extra}",
        listen.display().to_string()
    ));
    (env, listen)
}

fn env_num(k: &str, default: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

// ------------------------------------------------------------ throughput

/// A raw stream server: `/_ping` answers OK; `GET /stream/N` sends N bytes;
/// `POST /upload` reads its body. Keep-alive, one thread per connection.
fn stream_server(path: &Path) {
    let l = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || serve_stream(c));
        }
    });
}

fn serve_stream(c: UnixStream) {
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::with_capacity(CHUNK, c);
    let zeros = vec![0u8; CHUNK];
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0u64;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        if let Some(n) = line.strip_prefix("GET /stream/") {
            let mut n: u64 = n.split_whitespace().next().unwrap().parse().unwrap();
            write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").unwrap();
            while n > 0 {
                let k = n.min(CHUNK as u64) as usize;
                if w.write_all(&zeros[..k]).is_err() {
                    return;
                }
                n -= k as u64;
            }
        } else {
            // Read (and drop) a request body.
            let mut left = len;
            while left > 0 {
                let buf = r.fill_buf().unwrap();
                if buf.is_empty() {
                    return;
                }
                let k = buf.len().min(left as usize);
                r.consume(k);
                left -= k as u64;
            }
            w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                .unwrap();
        }
    }
}

/// Read the response head; return what was read past it.
fn read_head(s: &mut UnixStream, buf: &mut [u8]) -> usize {
    let mut n = 0;
    loop {
        let k = s.read(&mut buf[n..]).unwrap();
        assert!(k > 0, "connection closed before the head");
        n += k;
        if let Some(i) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            assert!(
                buf.starts_with(b"HTTP/1.1 200"),
                "{:?}",
                String::from_utf8_lossy(&buf[..n])
            );
            return n - (i + 4);
        }
    }
}

/// GB/s of an n-byte response body from `sock`.
fn download(sock: &Path, n: u64) -> f64 {
    let mut s = UnixStream::connect(sock).unwrap();
    let t = Instant::now();
    write!(s, "GET /stream/{n} HTTP/1.1\r\nHost: b\r\n\r\n").unwrap();
    let mut buf = vec![0u8; CHUNK];
    let mut got = read_head(&mut s, &mut buf) as u64;
    while got < n {
        let k = s.read(&mut buf).unwrap();
        assert!(k > 0, "stream ended at {got} of {n}");
        got += k as u64;
    }
    n as f64 / t.elapsed().as_secs_f64() / 1e9
}

/// GB/s of an n-byte request body to `sock`.
fn upload(sock: &Path, n: u64) -> f64 {
    let mut s = UnixStream::connect(sock).unwrap();
    let t = Instant::now();
    write!(
        s,
        "POST /upload HTTP/1.1\r\nHost: b\r\nContent-Length: {n}\r\n\r\n"
    )
    .unwrap();
    let zeros = vec![0u8; CHUNK];
    let mut left = n;
    while left > 0 {
        let k = left.min(CHUNK as u64) as usize;
        s.write_all(&zeros[..k]).unwrap();
        left -= k as u64;
    }
    let mut buf = vec![0u8; 1024];
    read_head(&mut s, &mut buf);
    n as f64 / t.elapsed().as_secs_f64() / 1e9
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn throughput(n: u64) {
    let mut env = Env::new();
    std::fs::create_dir_all(&env.state).unwrap();
    let raw = env.root.join("raw.sock");
    if let Ok(p) = std::env::var("DOCKHAND_BENCH_DIRFILE") {
        std::fs::write(p, env.root.display().to_string()).unwrap();
    }
    stream_server(&raw);
    // dockhand in front of it: a command engine whose socket already
    // answers is adopted as it is.
    let listen = env.state.join("dh.sock");
    env.write_config(&format!(
        "[profiles.default]\nengine = \"command\"\nsocket = {:?}\nstate_dir = {:?}\nlisten = {:?}\ndocker_context = false\n[profiles.default.command]\nargv = [\"sleep\", \"100000\"]\n",
        raw.display().to_string(),
        env.state.display().to_string(),
        listen.display().to_string()
    ));
    let sup = env.run();
    env.wait_ready();
    let via_socat = env.root.join("socat.sock");
    let _socat = socat(&via_socat, &raw);
    println!("throughput of a {} MiB stream (GB/s; best of 3):", n >> 20);
    println!("  direction  direct  dockhand  socat   dockhand/direct  dockhand/socat");
    for (name, f) in [
        ("download", download as fn(&Path, u64) -> f64),
        ("upload", upload),
    ] {
        let best = |p: &PathBuf| (0..3).map(|_| f(p, n)).fold(0.0, f64::max);
        let d = best(&raw);
        let h = best(&listen);
        let s = if _socat.is_some() {
            best(&via_socat)
        } else {
            f64::NAN
        };
        println!(
            "  {name:<9}  {d:>6.2}  {h:>8.2}  {s:>5.2}   {:>15.2}  {:>14.2}",
            h / d,
            h / s
        );
    }
    println!("  targets: dockhand/direct ≥ 0.9, dockhand/socat ≥ 3");
    env.stop(sup, Duration::from_secs(30));
}

fn socat(at: &Path, to: &Path) -> Option<Killed> {
    if harness::which("socat").is_none() {
        println!("  (socat not installed: apt-get install socat)");
        return None;
    }
    let c = Command::new("socat")
        .arg(format!("UNIX-LISTEN:{},fork", at.display()))
        .arg(format!("UNIX-CONNECT:{}", to.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !at.exists() {
        assert!(Instant::now() < deadline, "socat did not listen");
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(Killed(c))
}

// ---------------------------------------------------- first answer, ping

/// One request on a new connection, answered in full.
fn request(sock: &Path, head: &str) -> Vec<u8> {
    let mut s = UnixStream::connect(sock).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// The figures as text (printed after the idle ones, which come first).
fn first_answer(env: &Env, listen: &Path) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "first answer on a stopped engine (docker CLI's GET /version), 3 rounds:"
    );
    let _ = writeln!(
        o,
        "  round  first_answer_ms  engine_cold_start_ms  overhead_ms"
    );
    for round in 1..=3 {
        env.wait_until("held", Duration::from_secs(60), |v| v["phase"] == "stopped");
        let t0 = now();
        let out = request(
            listen,
            "GET /v1.41/version HTTP/1.1\r\nHost: d\r\nUser-Agent: Docker-Client/20.10\r\nConnection: close\r\n\r\n",
        );
        let answer = (now() - t0) * 1e3;
        assert!(out.starts_with(b"HTTP/1.1 200"));
        let log = env.log();
        let cold =
            (last_stamp(&log, "INFO ready:") - last_stamp(&log, "INFO started dockerd")) * 1e3;
        let _ = writeln!(
            o,
            "  {round:>5}  {answer:>15.1}  {cold:>20.1}  {:>11.1}",
            answer - cold
        );
    }
    let _ = writeln!(o, "  target: overhead ≤ 200 ms");
    o
}

/// Per-request times (µs) of `n` `GET /_ping` on one keep-alive connection.
fn ping_times(sock: &Path, n: usize) -> Vec<f64> {
    let mut s = UnixStream::connect(sock).unwrap();
    let mut buf = [0u8; 4096];
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\nUser-Agent: bench\r\n\r\n")
            .unwrap();
        // dockerd answers /_ping with a small head and "OK".
        let mut got = 0;
        loop {
            let k = s.read(&mut buf[got..]).unwrap();
            assert!(k > 0);
            got += k;
            if buf[..got].ends_with(b"\r\n\r\nOK") {
                break;
            }
        }
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times
}

fn latency(env: &Env, listen: &Path) {
    let n = 5000;
    env.wait_ready();
    let _ = ping_times(listen, 200); // warm up
    let direct = ping_times(&env.socket(), n);
    let proxied = ping_times(listen, n);
    println!("GET /_ping on a keep-alive connection to dockerd ({n} requests, µs):");
    println!("            p50      p99");
    println!(
        "  direct    {:>6.1}  {:>7.1}",
        pct(&direct, 0.5),
        pct(&direct, 0.99)
    );
    println!(
        "  dockhand  {:>6.1}  {:>7.1}",
        pct(&proxied, 0.5),
        pct(&proxied, 0.99)
    );
    println!(
        "  added     {:>6.1}  {:>7.1}   (target ≤ 30 µs at p50)",
        pct(&proxied, 0.5) - pct(&direct, 0.5),
        pct(&proxied, 0.99) - pct(&direct, 0.99)
    );
}

// ------------------------------------------------------------------ idle

fn measure(pid: i32, secs: u64, what: &str, poll: Option<&Path>) {
    let before = cpu_ns(pid);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut polls = 0;
    while Instant::now() < end {
        match poll {
            Some(sock) => {
                let out = request(
                    sock,
                    "GET /_ping HTTP/1.1\r\nHost: d\r\nUser-Agent: ide/1\r\nConnection: close\r\n\r\n",
                );
                assert!(out.starts_with(b"HTTP/1.1 200"));
                polls += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            None => std::thread::sleep(end - Instant::now()),
        }
    }
    let cpu_ms = (cpu_ns(pid) - before) as f64 / 1e6;
    println!(
        "  {what:<44} {:>8.2} ms/min  RSS {:>5.1} MB{}",
        cpu_ms * 60.0 / secs as f64,
        rss_kb(pid) as f64 / 1024.0,
        if poll.is_some() {
            format!("  ({polls} polls)")
        } else {
            String::new()
        }
    );
}
