//! Pinning a child process to a set of CPUs, so that a server and its load generator do not
//! take turns on the same cores.
//!
//! On a machine with many cores, a measurement of "the server's throughput" is only honest when
//! the server gets the cores it is said to get and the generator keeps off them: otherwise the
//! scheduler moves both around, and a run measures where they landed. `taskset -c 0-1 PROGRAM`
//! does this from a shell; here the child's affinity is set between `fork` and `exec`
//! ([`CommandExt::pre_exec`]), so every thread the program starts later inherits it, which is
//! what a multi-threaded server needs (setting it on a running process pins only its main
//! thread). `std::thread::available_parallelism` honours the mask, so a server or generator that
//! sizes its thread pool by the cores it may use sizes it by the set.
//!
//! A set is written the way `taskset -c` and `/proc/PID/status` (`Cpus_allowed_list`) write one:
//! `0-1`, `2-15`, `0,2,4-7`.

use std::fmt;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// A set of CPU numbers, in ascending order, no repeats, never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSet(Vec<usize>);

impl CpuSet {
    /// Parses `0-1`, `2-15`, `0,2,4-7`: CPU numbers and ranges, separated by commas.
    pub fn parse(text: &str) -> Result<CpuSet, String> {
        let bad =
            |why: &str| format!("CPU list `{text}`: {why} (write it like `0-1` or `0,2,4-7`)");
        let mut cpus = Vec::new();
        for part in text.split(',').map(str::trim) {
            let number = |s: &str| s.trim().parse::<usize>().map_err(|_| bad("not a number"));
            let (first, last) = match part.split_once('-') {
                Some((first, last)) => (number(first)?, number(last)?),
                None => (number(part)?, number(part)?),
            };
            if first > last {
                return Err(bad("a range runs backwards"));
            }
            if last >= libc::CPU_SETSIZE as usize {
                return Err(bad(&format!("CPU {last} is past the kernel's CPU_SETSIZE")));
            }
            cpus.extend(first..=last);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuSet(cpus))
    }

    /// The CPUs this process may run on now (its own affinity): what a set must fit in.
    pub fn available() -> io::Result<CpuSet> {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; the kernel fills it in.
        let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `mask` is a valid cpu_set_t of the size given; pid 0 is this thread.
        let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&mask), &mut mask) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let cpus = (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `cpu` is below CPU_SETSIZE.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &mask) })
            .collect();
        Ok(CpuSet(cpus))
    }

    /// Checks that every CPU of the set is one this process may use (a set naming CPUs the
    /// machine does not have would fail only when a child starts, with `EINVAL`).
    pub fn check_available(&self) -> Result<(), String> {
        let available = CpuSet::available().map_err(|e| format!("sched_getaffinity: {e}"))?;
        let missing: Vec<String> = self
            .0
            .iter()
            .filter(|cpu| !available.0.contains(cpu))
            .map(usize::to_string)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(format!(
            "CPU list {self}: CPU {} not available here (this process may use {available})",
            missing.join(", ")
        ))
    }

    /// The set each thread of process `pid` may run on, as the kernel reports it
    /// (`Cpus_allowed_list` in `/proc/PID/task/TID/status`): how a test or a report sees that a
    /// pinned server's every thread stayed pinned.
    pub fn of_threads(pid: u32) -> io::Result<Vec<CpuSet>> {
        let mut sets = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let status = match std::fs::read_to_string(task?.path().join("status")) {
                Ok(status) => status,
                // A thread that ended since the folder was listed has nothing to say.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => continue,
                Err(e) => return Err(e),
            };
            let list = status
                .lines()
                .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
                .ok_or_else(|| io::Error::other("no Cpus_allowed_list in a task's status"))?;
            sets.push(CpuSet::parse(list).map_err(io::Error::other)?);
        }
        Ok(sets)
    }

    /// The CPU numbers.
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }

    /// Whether the two sets share a CPU.
    pub fn overlaps(&self, other: &CpuSet) -> bool {
        self.0.iter().any(|cpu| other.0.contains(cpu))
    }

    /// Makes `command`'s child run only on these CPUs, from its first instruction on.
    pub fn pin(&self, command: &mut Command) {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET on numbers below
        // CPU_SETSIZE (checked by `parse`) stays inside it.
        let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &cpu in &self.0 {
            unsafe { libc::CPU_SET(cpu, &mut mask) };
        }
        // SAFETY: sched_setaffinity is a plain system call, async-signal-safe as pre_exec
        // requires, and `mask` is moved into the closure (no allocation after the fork).
        unsafe {
            command.pre_exec(move || {
                if libc::sched_setaffinity(0, std::mem::size_of_val(&mask), &mask) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// `0-1`, `0,2,4-7`: ranges where the numbers run on, as `taskset -c` takes them.
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut i = 0;
        while i < self.0.len() {
            let first = self.0[i];
            let mut last = first;
            while i + 1 < self.0.len() && self.0[i + 1] == last + 1 {
                i += 1;
                last = self.0[i];
            }
            parts.push(if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            });
            i += 1;
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_print_as_taskset_writes_them() {
        let set = CpuSet::parse("4-7, 0,2,3").expect("a list");
        assert_eq!(set.cpus(), [0, 2, 3, 4, 5, 6, 7]);
        assert_eq!(set.to_string(), "0,2-7");
        assert_eq!(CpuSet::parse("1").expect("one").to_string(), "1");
        assert_eq!(CpuSet::parse("0-1,1").expect("repeats").cpus(), [0, 1]);
        for bad in ["", "a", "3-1", "0-", "1,,2", "99999"] {
            let why = CpuSet::parse(bad).expect_err(bad);
            assert!(why.contains(&format!("`{bad}`")), "{why}");
        }
    }

    #[test]
    fn overlap_and_availability() {
        let two = CpuSet::parse("0-1").expect("a list");
        assert!(two.overlaps(&CpuSet::parse("1-3").expect("a list")));
        assert!(!two.overlaps(&CpuSet::parse("2-3").expect("a list")));
        let available = CpuSet::available().expect("sched_getaffinity");
        assert!(!available.cpus().is_empty());
        assert_eq!(available.check_available(), Ok(()));
        let far = CpuSet::parse("1000").expect("a list");
        let why = far.check_available().expect_err("no CPU 1000 here");
        assert!(why.contains("CPU 1000 not available"), "{why}");
    }

    /// A pinned child runs only on its set: the kernel's own account of it says so, while this
    /// process keeps the set it had.
    #[test]
    fn a_pinned_child_runs_on_its_set() {
        let available = CpuSet::available().expect("sched_getaffinity");
        let set = CpuSet(vec![*available.cpus().last().expect("a CPU")]);
        let mut command = Command::new("sleep");
        command.arg("10");
        set.pin(&mut command);
        let mut child = command.spawn().expect("start sleep");
        let sets = CpuSet::of_threads(child.id());
        child.kill().expect("kill sleep");
        child.wait().expect("wait for sleep");
        assert_eq!(sets.expect("/proc/PID/task"), [set]);
        assert_eq!(CpuSet::available().expect("sched_getaffinity"), available);
    }
}
