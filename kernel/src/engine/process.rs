//! Processes the engine starts and stops: the user-code child's command line (own
//! process group, killed when the kernel dies), the compile tree under the kernel, and
//! shell commands run from cells. Linux `/proc`; no evcxr, no Jupyter.

use std::collections::{HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes `command` start in its own process group and die with the thread that spawned
/// it, so an interrupt can kill its whole group and a killed kernel orphans nothing.
pub fn isolate(command: &mut Command) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Sends SIGKILL to a process group.
pub fn kill_group(pgid: u32) {
    if pgid > 1 {
        unsafe {
            libc::kill(-(pgid as i32), libc::SIGKILL);
        }
    }
}

/// Sends `signal` to one process.
pub fn signal(pid: u32, signal: i32) {
    if pid > 1 {
        unsafe {
            libc::kill(pid as i32, signal);
        }
    }
}

/// Sends `signal` to `root` and every process under it; returns the pids it reached.
pub fn signal_tree(root: u32, signal: i32) -> Vec<u32> {
    std::iter::once(root)
        .chain(descendants(root, &[]))
        .filter(|pid| *pid > 1 && unsafe { libc::kill(*pid as i32, signal) } == 0)
        .collect()
}

/// `(pid, ppid, pgid)` of every process, read from `/proc/*/stat`.
fn process_table() -> Vec<(u32, u32, u32)> {
    let mut table = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return table;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        let (Some(ppid), Some(pgid)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        if let (Ok(ppid), Ok(pgid)) = (ppid.parse(), pgid.parse()) {
            table.push((pid, ppid, pgid));
        }
    }
    table
}

/// All descendants of `root`, excluding whole process groups in `keep_groups`.
pub fn descendants(root: u32, keep_groups: &[u32]) -> Vec<u32> {
    let table = process_table();
    let mut children: HashMap<u32, Vec<(u32, u32)>> = HashMap::new();
    for (pid, ppid, pgid) in &table {
        children.entry(*ppid).or_default().push((*pid, *pgid));
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

/// Kills every descendant of this kernel except the user-code child's group: cargo,
/// rustc, the linker, build scripts. Returns how many were signalled.
pub fn kill_compile_tree(kernel_pid: u32, child_pgid: u32) -> usize {
    let victims = descendants(kernel_pid, &[child_pgid]);
    for pid in &victims {
        signal(*pid, libc::SIGKILL);
    }
    victims.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_kills_descendants() {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("sleep 30 & wait")
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let me = std::process::id();
        let found = descendants(me, &[]);
        assert!(found.contains(&child.id()));
        assert!(found.len() >= 2, "sh and its sleep: {found:?}");
        kill_compile_tree(me, 0);
        let status = child.wait().unwrap();
        assert!(!status.success());
    }
}
