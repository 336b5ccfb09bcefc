//! Processes the engine starts and stops: the user-code child's command line (own
//! process group, killed when the kernel dies), the compile tree under the kernel, and
//! shell commands run from cells. The `/proc` readers and signals are `crate::sys`'s; no
//! evcxr, no Jupyter.

pub use crate::sys::{kill_group, signal};
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

/// Kills every descendant of this kernel except the user-code child's group: cargo,
/// rustc, the linker, build scripts. Returns how many were signalled.
pub fn kill_compile_tree(kernel_pid: u32, child_pgid: u32) -> usize {
    let victims = crate::sys::descendants(kernel_pid, &[child_pgid]);
    for pid in &victims {
        signal(*pid, libc::SIGKILL);
    }
    victims.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The "kernel" is a shell here, so that tests running beside this one keep their
    /// own children.
    #[test]
    fn the_compile_tree_under_a_kernel_is_killed() {
        let mut kernel = Command::new("sh")
            .arg("-c")
            .arg("sleep 30 & sleep 30 & wait")
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(kill_compile_tree(kernel.id(), 0), 2, "both sleeps");
        assert!(
            kernel.wait().unwrap().success(),
            "the kernel itself lives on"
        );
    }
}
