//! Server CPU time, for CPU per operation: everything a server's process
//! tree runs (threads, forked children, children already gone), read
//! before and after a workload.
//!
//! Where the machine lets this program make a cgroup, each server gets one
//! of its own at start and its children are born into it: cgroup v1's
//! `cpuacct.usage` (nanoseconds) or cgroup v2's `cpu.stat` `usage_usec`.
//! Elsewhere /proc: utime + stime of the server and its live descendants,
//! plus cutime + cstime (the children it has reaped), in clock ticks —
//! enough only with thousands of operations per reading.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a server's CPU time is read.
#[derive(Debug)]
pub struct CpuMeter {
    source: Source,
}

#[derive(Debug)]
enum Source {
    /// A cgroup v1 cpuacct group.
    Cpuacct(PathBuf),
    /// A cgroup v2 group.
    Unified(PathBuf),
    /// The server's pid, read through /proc.
    Proc(u32),
}

/// Where cgroup hierarchies may be, in the order tried: a v2-only system,
/// then v1's cpuacct (precise to the nanosecond), then the v2 hierarchy of
/// a hybrid system.
const HIERARCHIES: [(&str, bool); 3] = [
    ("/sys/fs/cgroup", true),
    ("/sys/fs/cgroup/cpuacct", false),
    ("/sys/fs/cgroup/unified", true),
];

impl CpuMeter {
    /// A meter for the process `pid` (just started, so it has no children
    /// yet): moves it into a cgroup named `name` if it can.
    pub fn attach(pid: u32, name: &str) -> CpuMeter {
        for (root, unified) in HIERARCHIES {
            let root = Path::new(root);
            // a v2 root has cgroup.controllers; a v1 cpuacct root, cpuacct.usage
            let marker = if unified {
                "cgroup.controllers"
            } else {
                "cpuacct.usage"
            };
            if !root.join(marker).exists() {
                continue;
            }
            let group = root.join(format!("rpycd-bench-{name}-{pid}"));
            if fs::create_dir(&group).is_err() {
                continue;
            }
            if fs::write(group.join("cgroup.procs"), pid.to_string()).is_err() {
                let _ = fs::remove_dir(&group);
                continue;
            }
            let source = if unified {
                Source::Unified(group)
            } else {
                Source::Cpuacct(group)
            };
            let meter = CpuMeter { source };
            if meter.read().is_some() {
                return meter;
            }
        }
        CpuMeter {
            source: Source::Proc(pid),
        }
    }

    /// The CPU time the server's tree has used since it started.
    pub fn read(&self) -> Option<Duration> {
        match &self.source {
            Source::Cpuacct(group) => {
                let ns = fs::read_to_string(group.join("cpuacct.usage")).ok()?;
                Some(Duration::from_nanos(ns.trim().parse().ok()?))
            }
            Source::Unified(group) => {
                let stat = fs::read_to_string(group.join("cpu.stat")).ok()?;
                let usec = stat
                    .lines()
                    .find_map(|line| line.strip_prefix("usage_usec "))?
                    .trim()
                    .parse()
                    .ok()?;
                Some(Duration::from_micros(usec))
            }
            Source::Proc(pid) => proc_tree_cpu(*pid),
        }
    }

    /// How the figures are read, for the results file.
    pub fn method(&self) -> &'static str {
        match self.source {
            Source::Cpuacct(_) => "cgroup v1 cpuacct.usage (ns)",
            Source::Unified(_) => "cgroup v2 cpu.stat usage_usec",
            Source::Proc(_) => "/proc utime+stime+cutime+cstime (clock ticks)",
        }
    }
}

impl Drop for CpuMeter {
    /// Removes the cgroup once its processes are gone (the server is
    /// stopped before its meter goes); any left are moved out first.
    fn drop(&mut self) {
        let (Source::Cpuacct(group) | Source::Unified(group)) = &self.source else {
            return;
        };
        if let (Some(parent), Ok(procs)) = (
            group.parent(),
            fs::read_to_string(group.join("cgroup.procs")),
        ) {
            for pid in procs.split_whitespace() {
                let _ = fs::write(parent.join("cgroup.procs"), pid);
            }
        }
        let _ = fs::remove_dir(group);
    }
}

/// CPU time of `pid`, the children it reaped, and its live descendants.
fn proc_tree_cpu(pid: u32) -> Option<Duration> {
    // SAFETY: sysconf has no preconditions
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0)?;
    let mut total = stat_ticks(pid, true)?;
    for descendant in super::servers::process_tree(pid).into_iter().skip(1) {
        total += stat_ticks(descendant, false).unwrap_or(0);
    }
    Some(Duration::from_secs_f64(total as f64 / ticks as f64))
}

/// utime + stime of a process, and with `reaped` cutime + cstime too.
fn stat_ticks(pid: u32, reaped: bool) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_ticks(&stat, reaped)
}

fn parse_stat_ticks(stat: &str, reaped: bool) -> Option<u64> {
    // the command name may hold spaces and parentheses: fields follow the last ')'
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // after the name: state is field 3, utime 14, stime 15, cutime 16, cstime 17
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let own = field(14)? + field(15)?;
    Some(if reaped {
        own + field(16)? + field(17)?
    } else {
        own
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 11 13 20 0 1 0 5 0 0";
        assert_eq!(parse_stat_ticks(stat, false), Some(10));
        assert_eq!(parse_stat_ticks(stat, true), Some(34));
        assert_eq!(parse_stat_ticks("42 (x) S 1", true), None);
    }

    #[test]
    fn this_process_uses_cpu_time() {
        let meter = CpuMeter {
            source: Source::Proc(std::process::id()),
        };
        let before = meter.read().expect("a reading");
        let until = std::time::Instant::now() + Duration::from_millis(60);
        let mut spin = 0u64;
        while std::time::Instant::now() < until {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        let after = meter.read().expect("a reading");
        assert!(after > before, "{before:?} then {after:?}");
    }
}
