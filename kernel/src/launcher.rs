//! The process that launched this kernel, and what happens when it is gone.
//!
//! A Jupyter server, a notebook tool or a script starts a kernel and is expected to stop
//! it; when that process is killed (an out-of-memory kill, a crash, a `timeout`) nobody
//! will. As ipykernel does, a kernel watches its launcher — `JPY_PARENT_PID` when set
//! (jupyter_client, Jupyter servers), else its parent at start — and shuts down as on a
//! `shutdown_request` when it is gone. `RUSTMETER_WATCH_LAUNCHER=off` opts out, for a
//! kernel deliberately left running by a launcher that exits.
//!
//! Also finds what such launches left behind: kernels whose launcher is gone, and
//! processes cells started (they carry [`KERNEL_PID_VARIABLE`]) whose kernel is gone.
//!
//! A leaf: reads `/proc`, the environment and its switch (through `crate::settings`),
//! never the server, engine or spares; what "shut down" means is the caller's closure.

use crate::sys::{alive, environ, own_processes, parent_of};
use std::time::Duration;

/// The switch: on (default) or off.
pub const WATCH_VARIABLE: &str = crate::settings::WATCH_LAUNCHER.name;
/// Set in every kernel process to its own pid, so the user-code process and everything
/// cells start carry the pid of the kernel they belong to.
pub const KERNEL_PID_VARIABLE: &str = crate::settings::KERNEL_PID.name;
/// How often a launcher is checked where the kernel cannot be told of its exit.
const POLL: Duration = Duration::from_millis(250);

/// Whether kernels watch their launcher; a bad value means on (the first cell and
/// `rustmeter doctor` name it, see `crate::settings`).
pub fn watch_enabled() -> bool {
    crate::settings::switch(&crate::settings::WATCH_LAUNCHER)
}

/// The process to watch: `JPY_PARENT_PID` when it names a live ancestor of this process
/// (a value inherited from some other launch is not trusted), else the parent. `None`
/// when the switch is off or the launcher is init (pid 1 is never gone, only replaced).
pub fn launcher() -> Option<u32> {
    if !watch_enabled() {
        return None;
    }
    let parent = std::os::unix::process::parent_id();
    let named = std::env::var("JPY_PARENT_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .filter(|pid| ancestors(std::process::id()).contains(pid));
    Some(named.unwrap_or(parent)).filter(|pid| *pid > 1)
}

/// Calls `on_gone` on a thread of its own once `launcher` has exited (at once when it
/// already has). The thread sleeps in the kernel's `poll` on a pidfd where Linux has
/// them (5.3 and later), else checks every 250 ms.
pub fn watch(launcher: u32, on_gone: impl FnOnce() + Send + 'static) {
    let watching_parent = launcher == std::os::unix::process::parent_id();
    let spawned = std::thread::Builder::new()
        .name("launcher-watch".into())
        .spawn(move || {
            if let Some(fd) = pidfd(launcher) {
                wait_readable(fd);
                // SAFETY: our own descriptor, closed once.
                unsafe { libc::close(fd) };
            }
            // Also the check after the pidfd: a poll that ended for another reason (an
            // error) falls back to checking, never to a shutdown.
            while alive(launcher)
                && (!watching_parent || std::os::unix::process::parent_id() == launcher)
            {
                std::thread::sleep(POLL);
            }
            on_gone();
        });
    if let Err(e) = spawned {
        crate::log::info(&format!(
            "cannot watch the launching process {launcher}: {e}"
        ));
    }
}

/// Records this process as a kernel for everything it starts (see [`KERNEL_PID_VARIABLE`]).
/// Call while the process has one thread.
pub fn mark_kernel_process() {
    std::env::set_var(KERNEL_PID_VARIABLE, std::process::id().to_string());
}

/// A process of this user left behind by a launch that is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub pid: u32,
    /// The process's command line, spaces between arguments.
    pub command: String,
    pub kind: OrphanKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanKind {
    /// A kernel whose launcher is gone (started with the watch off, or by an older build).
    Kernel { launcher: u32 },
    /// A process a cell started whose kernel is gone.
    CellProcess { kernel: u32 },
}

/// This user's kernels whose launcher is gone and cell processes whose kernel is gone.
pub fn orphans() -> Vec<Orphan> {
    let me = std::process::id();
    let mut found = Vec::new();
    for pid in own_processes() {
        if pid == me {
            continue;
        }
        let environ = environ(pid);
        let command = cmdline(pid);
        if let Some(kernel) = env_pid(&environ, KERNEL_PID_VARIABLE).filter(|k| *k != pid) {
            if !is_kernel(kernel) {
                found.push(Orphan {
                    pid,
                    command,
                    kind: OrphanKind::CellProcess { kernel },
                });
            }
            continue;
        }
        if command.split(' ').nth(1) == Some("kernel") && is_rustmeter(&command) {
            let launcher = env_pid(&environ, "JPY_PARENT_PID").unwrap_or_else(|| parent_of(pid));
            if launcher <= 1 || !alive(launcher) {
                found.push(Orphan {
                    pid,
                    command,
                    kind: OrphanKind::Kernel { launcher },
                });
            }
        }
    }
    found
}

/// Stops every process of this user that a cell of kernel `kernel` started, wherever it
/// went (its own session, re-parented, outside the kernel's process groups): what carries
/// `RUSTMETER_KERNEL_PID=kernel`. Returns how many were signalled.
pub fn stop_cell_processes_of(kernel: u32) -> usize {
    own_processes()
        .into_iter()
        .filter(|pid| {
            *pid != kernel && env_pid(&environ(*pid), KERNEL_PID_VARIABLE) == Some(kernel)
        })
        .filter(|pid| unsafe { libc::kill(*pid as i32, libc::SIGKILL) } == 0)
        .count()
}

/// Stops this user's cell processes whose kernel is gone (a kernel killed with SIGKILL
/// had no chance to); returns how many. Kernels are left to their owners.
pub fn stop_orphaned_cell_processes() -> usize {
    let mut stopped = 0;
    for orphan in orphans() {
        if let OrphanKind::CellProcess { .. } = orphan.kind {
            if unsafe { libc::kill(orphan.pid as i32, libc::SIGKILL) } == 0 {
                stopped += 1;
            }
        }
    }
    stopped
}

fn is_rustmeter(command: &str) -> bool {
    command
        .split(' ')
        .next()
        .and_then(|exe| exe.rsplit('/').next())
        .is_some_and(|name| name.starts_with("rustmeter"))
}

/// A live rustmeter process (by its command line: `/proc/<pid>/environ` shows a process's
/// environment as it started, not the variable a kernel sets on itself).
fn is_kernel(pid: u32) -> bool {
    alive(pid) && is_rustmeter(&cmdline(pid))
}

fn pidfd(pid: u32) -> Option<i32> {
    // SAFETY: a plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    (fd >= 0).then_some(fd as i32)
}

fn wait_readable(fd: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; retried on EINTR only.
    while unsafe { libc::poll(&mut pfd, 1, -1) } < 0
        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
    {}
}

fn ancestors(pid: u32) -> Vec<u32> {
    let mut chain = Vec::new();
    let mut at = parent_of(pid);
    while at > 1 && !chain.contains(&at) && chain.len() < 64 {
        chain.push(at);
        at = parent_of(at);
    }
    chain
}

fn env_pid(environ: &[u8], name: &str) -> Option<u32> {
    environ
        .split(|b| *b == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .find_map(|entry| entry.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.trim().parse().ok())
}

fn cmdline(pid: u32) -> String {
    crate::sys::cmdline(pid).join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_entries_are_read_by_exact_name() {
        let environ = b"RUSTMETER_KERNEL_PIDX=1\0RUSTMETER_KERNEL_PID=42\0JPY_PARENT_PID=7\0";
        assert_eq!(env_pid(environ, KERNEL_PID_VARIABLE), Some(42));
        assert_eq!(env_pid(environ, "JPY_PARENT_PID"), Some(7));
        assert_eq!(env_pid(environ, "JPY"), None);
    }

    #[test]
    fn this_process_is_alive_and_its_parent_is_an_ancestor() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX - 1));
        let parent = std::os::unix::process::parent_id();
        if parent > 1 {
            assert_eq!(ancestors(std::process::id()).first(), Some(&parent));
        }
    }

    #[test]
    fn the_watch_fires_when_the_watched_process_exits() {
        // Started through a shell that exits at once, so the sleep is not a descendant of
        // this test process (another unit test kills all of those).
        let out = std::process::Command::new("sh")
            .args(["-c", "sleep 60 >/dev/null 2>&1 & echo $!"])
            .output()
            .expect("start sleep");
        let pid: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("its pid");
        let (tx, rx) = std::sync::mpsc::channel();
        watch(pid, move || {
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "fired while the process ran"
        );
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        rx.recv_timeout(Duration::from_secs(10))
            .expect("no call after the process exited");
    }
}
