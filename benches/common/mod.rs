//! What the benches share: wall-clock stamps from dockhand's log lines and
//! a process's CPU time and memory from /proc.
#![allow(dead_code)] // each bench uses a part

use std::time::SystemTime;

/// Seconds since the epoch, now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Seconds since the epoch of the first log line containing `needle`.
pub fn stamp(log: &str, needle: &str) -> f64 {
    line_time(log.lines().find(|l| l.contains(needle)), log, needle)
}

/// Seconds since the epoch of the last log line containing `needle`.
pub fn last_stamp(log: &str, needle: &str) -> f64 {
    line_time(log.lines().rev().find(|l| l.contains(needle)), log, needle)
}

fn line_time(line: Option<&str>, log: &str, needle: &str) -> f64 {
    let line = line.unwrap_or_else(|| panic!("no {needle:?} in\n{log}"));
    humantime::parse_rfc3339(line.split_whitespace().next().unwrap())
        .unwrap()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// CPU time of all threads, in ns (schedstat: nanosecond resolution,
/// unlike the 10 ms ticks of /proc/<pid>/stat).
pub fn cpu_ns(pid: i32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

pub fn rss_kb(pid: i32) -> u64 {
    status_kb(pid, "VmRSS:")
}

/// A `kB` figure of /proc/<pid>/status (`VmRSS:`, `VmHWM:`).
pub fn status_kb(pid: i32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// The `p` quantile (0..=1) of sorted figures.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
