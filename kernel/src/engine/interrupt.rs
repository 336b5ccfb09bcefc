//! Stopping a running cell, gently first: the cancel channel (a pipe whose read end the
//! user-code child inherits), SIGINT, and only after a grace period SIGKILL of the child's
//! process group (evcxr then starts a new child and earlier variables are lost).
//!
//! Owns the kernel's ends of the pipe and the escalation; must not know evcxr or Jupyter.
//! The child side is the tokio shim's `__rustmeter` module (awaits) and
//! `rustmeter::interrupted()` (blocking code that checks a flag).

use super::{process, Control, Phase};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a cell has to stop by itself (an await returning early, a loop checking
/// `rustmeter::interrupted()`) before its process is killed.
pub const GRACE: Duration = Duration::from_millis(750);

/// The variable that tells the child which descriptor is the cancel channel.
pub const FD_VAR: &str = crate::settings::INTERRUPT_FD.name;

/// A pipe: the kernel writes a byte to interrupt; the child only polls the read end
/// (never reads), so every await of the cell sees the interrupt; the kernel empties it
/// before the next cell.
pub struct CancelChannel {
    read: i32,
    write: i32,
}

impl CancelChannel {
    pub fn new() -> std::io::Result<CancelChannel> {
        let mut fds = [0; 2];
        // Close-on-exec: only the user-code child gets the read end (see `inherit`), not
        // cargo, rustc or shell commands. Non-blocking: draining and signalling never wait.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(CancelChannel {
            read: fds[0],
            write: fds[1],
        })
    }

    /// Makes `command`'s process inherit the read end under the same number.
    pub fn inherit(&self, command: &mut Command) {
        let fd = self.read;
        command.env(FD_VAR, fd.to_string());
        // SAFETY: fcntl is async-signal-safe; it changes only the forked copy's table.
        unsafe {
            command.pre_exec(move || {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    pub fn signal(&self) {
        let byte = 1u8;
        // A full pipe already says "interrupted".
        unsafe {
            libc::write(self.write, (&byte as *const u8).cast(), 1);
        }
    }

    /// Forgets earlier interrupts, so they never stop the next cell.
    pub fn drain(&self) {
        let mut buffer = [0u8; 256];
        while unsafe { libc::read(self.read, buffer.as_mut_ptr().cast(), buffer.len()) } > 0 {}
    }
}

impl Drop for CancelChannel {
    fn drop(&mut self) {
        unsafe {
            libc::close(self.read);
            libc::close(self.write);
        }
    }
}

/// Stops what runs now: a shell command, the compiler tree, or the cell's code. Does
/// nothing while idle (clients interrupt before every restart).
pub fn stop_cell(control: &Arc<Control>) {
    let phase = control.phase();
    if !matches!(phase, Phase::Compiling | Phase::Running) {
        return;
    }
    control.interrupted.store(true, Ordering::SeqCst);
    control.interrupts.notify_waiters();
    let shell = control.shell_pgid.load(Ordering::SeqCst);
    if shell != 0 {
        process::kill_group(shell);
        return;
    }
    let serial = control.cell_serial.load(Ordering::SeqCst);
    let control = Arc::clone(control);
    std::thread::spawn(move || {
        // evcxr retries failed builds (a second cargo, a `cargo check`): keep stopping the
        // compiler tree until the engine gives the cell up. The pump sees the user's code
        // start a moment after it does: if it starts, stop the code instead.
        let deadline = Instant::now() + Duration::from_secs(30);
        while same_cell(&control, serial) && Instant::now() < deadline {
            match control.phase() {
                Phase::Compiling => {
                    let child = control.child_pid.load(Ordering::SeqCst);
                    process::kill_compile_tree(control.kernel_pid, child);
                }
                Phase::Running => return stop_code(&control, serial),
                _ => return,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

fn same_cell(control: &Control, serial: u64) -> bool {
    control.interrupted.load(Ordering::SeqCst)
        && control.cell_serial.load(Ordering::SeqCst) == serial
}

/// The cell's code runs: ask it to stop (cancel channel, SIGINT), then kill its process
/// group if it is still running after [`GRACE`].
fn stop_code(control: &Control, serial: u64) {
    let child = control.child_pid.load(Ordering::SeqCst);
    if let Some(channel) = &control.cancel {
        channel.signal();
    }
    // The child ignores SIGINT itself (child_runtime); code that listens for it
    // (`tokio::signal::ctrl_c()`) hears it.
    process::signal(child, libc::SIGINT);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if !same_cell(control, serial) || control.phase() != Phase::Running {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if same_cell(control, serial) && control.phase() == Phase::Running {
        process::kill_group(child);
    }
}
