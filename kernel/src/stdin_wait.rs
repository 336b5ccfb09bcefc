//! Whether the user's code waits on standard input: some thread of this process (the
//! user-code child) sleeps in `read` on file descriptor 0 and nothing is there to read.
//!
//! A pipe does not tell its writer that someone waits on the other end, so this asks
//! Linux: `/proc/self/task/*/syscall` names the system call each sleeping thread is in
//! and its first argument. Only the child's stdout relay calls it, and only while a
//! cell's code runs: between cells evcxr's own loop waits on fd 0 for its next command.
//! Owns no state and must not touch the descriptors it looks at.

use std::os::fd::BorrowedFd;

/// A thread seen asleep in `read` on fd 0: its id and its context-switch count. The same
/// value seen twice means the thread did not run in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StdinReader {
    pub tid: u32,
    pub switches: u64,
}

/// The threads asleep in `read` on fd 0 while fd 0 holds no unread bytes. A thread that
/// was given bytes but has not run yet still shows the call: it is runnable (`R`), not
/// asleep, and its switch count moves once it runs.
pub fn stdin_readers() -> Vec<StdinReader> {
    // SAFETY: fd 0 stays open for the life of the process (the relays own its pipe).
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    if !rustix::io::ioctl_fionread(stdin).is_ok_and(|unread| unread == 0) {
        return Vec::new();
    }
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let syscall = std::fs::read_to_string(task.path().join("syscall")).ok()?;
            if !reads_stdin(&syscall) {
                return None;
            }
            let status = std::fs::read_to_string(task.path().join("status")).ok()?;
            let (asleep, switches) = sleep_and_switches(&status)?;
            asleep.then_some(StdinReader { tid, switches })
        })
        .collect()
}

/// From `/proc/<pid>/task/<tid>/status`: whether the thread sleeps (`State: S`) and its
/// voluntary plus involuntary context switches.
fn sleep_and_switches(status: &str) -> Option<(bool, u64)> {
    let mut asleep = None;
    let mut switches = 0u64;
    let mut seen = 0;
    for line in status.lines() {
        if let Some(state) = line.strip_prefix("State:") {
            asleep = Some(state.trim_start().starts_with('S'));
        } else if let Some(count) = line
            .strip_prefix("voluntary_ctxt_switches:")
            .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
        {
            switches += count.trim().parse::<u64>().ok()?;
            seen += 1;
        }
    }
    (seen == 2).then_some((asleep?, switches))
}

/// One `/proc/<pid>/task/<tid>/syscall` line: `NR ARG1 …` while the thread sleeps in a
/// system call, `running` or `-1 …` otherwise.
fn reads_stdin(line: &str) -> bool {
    let mut fields = line.split_whitespace();
    let (Some(number), Some(first_argument)) = (fields.next(), fields.next()) else {
        return false;
    };
    let Ok(number) = number.parse::<libc::c_long>() else {
        return false;
    };
    (number == libc::SYS_read || number == libc::SYS_readv) && first_argument == "0x0"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_of_fd_0_is_recognised_from_its_syscall_line() {
        let read = format!(
            "{} 0x0 0x7ffd2c4a1000 0x2000 0x0 0x0 0x0 0x7ffd 0x7f12",
            libc::SYS_read
        );
        assert!(reads_stdin(&read));
        let other_fd = format!(
            "{} 0x3 0x7ffd2c4a1000 0x2000 0x0 0x0 0x0 0x7ffd 0x7f12",
            libc::SYS_read
        );
        assert!(!reads_stdin(&other_fd));
        assert!(!reads_stdin("running"));
        assert!(!reads_stdin("-1 0x7ffd 0x7f12"));
    }

    #[test]
    fn state_and_switches_come_from_the_status_file() {
        let status = "Name:\tx\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t2\n";
        assert_eq!(sleep_and_switches(status), Some((true, 9)));
        let running = status.replace("S (sleeping)", "R (running)");
        assert_eq!(sleep_and_switches(&running), Some((false, 9)));
        assert_eq!(sleep_and_switches("State:\tS (sleeping)\n"), None);
    }

    #[test]
    fn a_thread_blocked_on_a_pipe_at_fd_0_is_seen_only_by_fd() {
        // This test's own process: its fd 0 is whatever cargo gave it, so only the
        // negative holds everywhere; the positive case runs in the kernel's tests.
        let (read, _write) = rustix::pipe::pipe().unwrap();
        let reader = std::thread::spawn(move || {
            let mut byte = [0u8; 1];
            let _ = rustix::io::read(&read, &mut byte);
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        let lines: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("syscall")).ok())
            .collect();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{} ", libc::SYS_read))),
            "{lines:?}"
        );
        assert!(!lines.iter().any(|l| reads_stdin(l)), "{lines:?}");
        drop(_write);
        reader.join().unwrap();
    }
}
