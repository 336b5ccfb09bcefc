//! What Linux says about processes, and signals to them: the `/proc` readers (stat,
//! status, cmdline, environ, the process table), process signalling, and raising this
//! process's open-files limit, for every module that needs them (engine, spare, launcher,
//! telemetry, work folders, doctor, the cell process and the demo server).
//!
//! Leaf module: imports nothing else of this crate, knows nothing of kernels, cells or
//! Jupyter. Every reader answers "unknown" (`None`, empty) for a process that is gone.

use std::collections::{HashMap, HashSet};

/// The fields of `/proc/<pid>/stat` after the command name (field 3, the state, first):
/// the name is in parentheses and may itself hold spaces and parentheses.
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after) = stat.rsplit_once(')')?;
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// Alive and not a zombie (a killed process whose parent has not reaped it yet).
pub fn alive(pid: u32) -> bool {
    stat_fields(pid)
        .and_then(|fields| fields.first().cloned())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// The parent of `pid`, 0 when unknown.
pub fn parent_of(pid: u32) -> u32 {
    stat_fields(pid)
        .and_then(|fields| fields.get(1)?.parse().ok())
        .unwrap_or(0)
}

/// The arguments of `pid` (the program first); empty when unknown.
pub fn cmdline(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// The raw environment block of `pid` (`NAME=value\0…`); empty when unknown or not ours.
pub fn environ(pid: u32) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default()
}

/// The number on a line of `/proc/<pid>/status` (`Threads`, `VmRSS` in kB).
pub fn status_number(pid: u32, field: &str) -> Option<u64> {
    field_number(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        field,
    )
}

/// The first number after `field:` in a `Name: value` file (`status`, `meminfo`).
fn field_number(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    status_number(pid, field).map(|kib| kib * 1024)
}

/// Resets the kernel's peak-RSS counter of `pid` (`VmHWM`, through `clear_refs`).
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The machine's CPU time since boot by kind, in clock ticks: the first line of
/// `/proc/stat` (user, nice, system, idle, iowait, irq, softirq, steal; 0 where the
/// kernel reports fewer).
pub fn machine_cpu_ticks() -> Option<[u64; 8]> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut fields = stat.lines().next()?.split_whitespace();
    if fields.next() != Some("cpu") {
        return None;
    }
    let mut ticks = [0u64; 8];
    for (tick, field) in ticks.iter_mut().zip(fields) {
        *tick = field.parse().ok()?;
    }
    Some(ticks)
}

/// A number the kernel publishes under `/proc/sys` (`kernel/threads-max`).
pub fn kernel_setting(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A line of `/proc/meminfo` (`MemTotal`, `MemAvailable`), in KiB.
pub fn meminfo_kib(field: &str) -> Option<u64> {
    field_number(&std::fs::read_to_string("/proc/meminfo").ok()?, field)
}

/// How many threads of `pid` have one of `names` (`/proc/<pid>/task/*/comm`, the first 15
/// bytes of a thread's name); `None` when the process is gone or not ours. One read per
/// thread: callers count only when the thread number changed.
///
/// A thread names itself when it first runs; until then it carries its creator's name.
/// On a loaded machine a new thread can wait tens of ms for a core, or block on the
/// process's memory map while it sets up its stack (both seen in CI right after
/// `Runtime::new()`). So a thread that shares another thread's name and is younger than
/// `wait` (`stat`'s start time) is waited for, until it has a name of its own or is that
/// old. A thread whose creator never names it (`std::thread::spawn`) costs the rest of
/// `wait`, once.
pub fn threads_named(pid: u32, names: &[&str], wait: std::time::Duration) -> Option<u64> {
    let deadline = std::time::Instant::now() + wait;
    let comm = |task: &std::path::Path| {
        std::fs::read_to_string(task.join("comm"))
            .map(|comm| comm.trim_end_matches('\n').to_string())
            .ok()
    };
    // Threads named, or with a name of their own, or older than `wait`, are settled.
    let mut settled: HashMap<std::path::PathBuf, String> = HashMap::new();
    loop {
        let tasks: Vec<std::path::PathBuf> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
            .map(|task| task.path())
            .collect();
        let fresh: Vec<(&std::path::PathBuf, String)> = tasks
            .iter()
            .filter(|task| !settled.contains_key(*task))
            .filter_map(|task| Some((task, comm(task)?)))
            .collect();
        let mut sharing: HashMap<&str, usize> = HashMap::new();
        for name in settled.values().chain(fresh.iter().map(|(_, name)| name)) {
            *sharing.entry(name.as_str()).or_default() += 1;
        }
        let now = seconds_since_boot();
        let mut waiting = Vec::new();
        for (task, name) in &fresh {
            let unnamed_yet = !names.contains(&name.as_str())
                && sharing.get(name.as_str()).copied().unwrap_or(0) > 1
                && now
                    .zip(task_started(task))
                    .is_some_and(|(now, started)| now - started < wait.as_secs_f64());
            if unnamed_yet {
                waiting.push(*task);
            }
        }
        let has_time = std::time::Instant::now() < deadline;
        for (task, name) in fresh {
            if !(has_time && waiting.contains(&task)) {
                settled.insert(task.clone(), name);
            }
        }
        if !waiting.is_empty() && has_time {
            std::thread::sleep(std::time::Duration::from_millis(5));
            continue;
        }
        // Threads gone meanwhile are not counted.
        let count = tasks
            .iter()
            .filter(|task| {
                settled
                    .get(*task)
                    .is_some_and(|name| names.contains(&name.as_str()))
            })
            .filter(|task| task.exists())
            .count();
        return Some(count as u64);
    }
}

/// `/proc/uptime`'s first figure: seconds since boot, to 10 ms.
fn seconds_since_boot() -> Option<f64> {
    std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// When a thread (`/proc/<pid>/task/<tid>`) started, in seconds since boot (`stat`'s
/// 22nd field, in clock ticks).
fn task_started(task: &std::path::Path) -> Option<f64> {
    let stat = std::fs::read_to_string(task.join("stat")).ok()?;
    let (_, after) = stat.rsplit_once(')')?;
    let ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf reads a constant of the C library and has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks / hz)
}

/// The pids of every process this user owns.
pub fn own_processes() -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let uid = rustix::process::getuid().as_raw();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.metadata().is_ok_and(|m| m.uid() == uid))
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// `(pid, ppid, pgid)` of every process.
fn process_table() -> Vec<(u32, u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let fields = stat_fields(pid)?;
            Some((
                pid,
                fields.get(1)?.parse().ok()?,
                fields.get(2)?.parse().ok()?,
            ))
        })
        .collect()
}

/// All descendants of `root`, excluding whole process groups in `keep_groups`.
pub fn descendants(root: u32, keep_groups: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<(u32, u32)>> = HashMap::new();
    for (pid, ppid, pgid) in process_table() {
        children.entry(ppid).or_default().push((pid, pgid));
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(parent) = stack.pop() {
        for (pid, pgid) in children.get(&parent).cloned().unwrap_or_default() {
            if keep_groups.contains(&pgid) || !seen.insert(pid) {
                continue;
            }
            out.push(pid);
            stack.push(pid);
        }
    }
    out
}

/// Sends `signal` to one process; false when it could not (gone, not ours, pid ≤ 1).
pub fn signal(pid: u32, signal: i32) -> bool {
    pid > 1 && unsafe { libc::kill(pid as i32, signal) } == 0
}

/// Sends SIGKILL to a process group.
pub fn kill_group(pgid: u32) {
    if pgid > 1 {
        unsafe {
            libc::kill(-(pgid as i32), libc::SIGKILL);
        }
    }
}

/// Sends `signal` to `root` and every process under it; returns the pids it reached.
pub fn signal_tree(root: u32, sig: i32) -> Vec<u32> {
    std::iter::once(root)
        .chain(descendants(root, &[]))
        .filter(|pid| signal(*pid, sig))
        .collect()
}

/// Raises this process's soft open-files limit to its hard limit, as Go's and Java's
/// runtimes do at start-up. Each open connection is a file descriptor, and the usual soft
/// limit (1,024 from a shell, 4,096 under Jupyter) would refuse the tutorials' thousands
/// of connections although the hard limit (often 524,288) allows them.
pub fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        // Refused only where the hard limit is above the system's own maximum
        // (fs.nr_open); the process then keeps the limit it had.
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn reads_this_process_and_its_children() {
        let me = std::process::id();
        assert!(alive(me));
        assert_eq!(parent_of(me), std::os::unix::process::parent_id());
        assert!(!cmdline(me).is_empty());
        assert!(status_bytes(me, "VmRSS").is_some_and(|rss| rss > 0));
        assert!(status_number(me, "Threads").is_some_and(|n| n >= 1));
        assert!(machine_cpu_ticks().is_some_and(|t| t.iter().sum::<u64>() > 0));
        assert!(own_processes().contains(&me));
        assert!(kernel_setting("kernel/pid_max").is_some_and(|n| n > 1));
        assert!(meminfo_kib("MemTotal").is_some_and(|kib| kib > 0));

        let mut child = Command::new("sh")
            .arg("-c")
            .arg("sleep 30 & wait")
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let found = descendants(me, &[]);
        assert!(found.contains(&child.id()));
        assert!(found.len() >= 2, "sh and its sleep: {found:?}");
        let reached = signal_tree(child.id(), libc::SIGKILL);
        assert!(reached.len() >= 2, "{reached:?}");
        assert!(!child.wait().unwrap().success());
        assert!(!alive(child.id()));
        assert_eq!(parent_of(u32::MAX), 0);
    }

    const NO_WAIT: std::time::Duration = std::time::Duration::ZERO;

    #[test]
    fn counts_threads_by_name() {
        let me = std::process::id();
        let name = "sys-named-test"; // unique in this test binary
        assert_eq!(threads_named(me, &[name], NO_WAIT), Some(0));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(name.to_string())
                    .spawn(move || {
                        let _ = rx.lock().map(|r| r.recv());
                    })
                    .unwrap()
            })
            .collect();
        // Each thread names itself as it starts.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while threads_named(me, &[name], NO_WAIT) != Some(3) && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(threads_named(me, &[name, "no-such-name"], NO_WAIT), Some(3));
        drop(tx);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(threads_named(me, &[name], NO_WAIT), Some(0));
        assert_eq!(threads_named(u32::MAX, &[name], NO_WAIT), None);
    }

    #[test]
    fn waits_for_new_threads_to_name_themselves() {
        let me = std::process::id();
        let name = "sys-wait-test"; // unique in this test binary
        for round in 0..20 {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let rx = rx.clone();
                    std::thread::Builder::new()
                        .name(name.to_string())
                        .spawn(move || {
                            let _ = rx.lock().map(|r| r.recv());
                        })
                        .unwrap()
                })
                .collect();
            // Asked right after the spawns, before the threads surely ran.
            let seen = threads_named(me, &[name], std::time::Duration::from_secs(5));
            assert_eq!(seen, Some(3), "round {round}");
            drop(tx);
            for t in threads {
                t.join().unwrap();
            }
            // A joined thread may stay listed a moment: the next round starts from none.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while threads_named(me, &[name], NO_WAIT) != Some(0)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}
