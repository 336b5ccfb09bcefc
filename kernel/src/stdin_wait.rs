//! Whether the user's code waits on standard input: some thread of this process (the
//! user-code child) sits in `read` on file descriptor 0 and nothing is there to read.
//!
//! A pipe does not tell its writer that someone waits on the other end, so this asks
//! Linux: `/proc/self/task/*/syscall` names the system call each sleeping thread is in
//! and its first argument. Only the child's stdout relay calls it, and only while a
//! cell's code runs: between cells evcxr's own loop waits on fd 0 for its next command.
//! Owns no state and must not touch the descriptors it looks at.

use std::os::fd::BorrowedFd;

/// True when a thread is blocked reading fd 0 and fd 0 holds no unread bytes.
pub fn waits_on_stdin() -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    let reading = tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("syscall")).is_ok_and(|line| reads_stdin(&line))
    });
    // SAFETY: fd 0 stays open for the life of the process (the relays own its pipe).
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    reading && rustix::io::ioctl_fionread(stdin).is_ok_and(|unread| unread == 0)
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
