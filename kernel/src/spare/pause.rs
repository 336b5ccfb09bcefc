//! Keeping spares' warm-up off the CPU while code runs: the tutorials measure how many
//! cores a cell used, and a spare warming up next to it (about 10 CPU-seconds) would take
//! one. While a cell's code runs, this user's other spares — warming or waiting — are
//! stopped (SIGSTOP, with every process under them) and continued when it ends. Only
//! while code *runs*: a spare stopped during a compile could hold a cargo lock that
//! compile waits for.
//!
//! Knows only processes; the launch hands [`while_code_runs`] to each engine it starts.

use std::sync::Mutex;

/// The processes this kernel stopped, so that exactly those are continued.
static STOPPED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// An engine's hook for "code started (true) or stopped (false) running".
pub fn while_code_runs(running: bool) {
    if running {
        stop_spares();
    } else {
        continue_spares();
    }
}

/// Stops the warm-up of every spare of this user but this process.
pub fn stop_spares() {
    let me = std::process::id();
    let roots: Vec<u32> = super::spare_pids(&super::dir())
        .into_iter()
        .map(|(_, pid)| pid)
        .filter(|pid| *pid != me && super::is_spare(*pid))
        .collect();
    if roots.is_empty() {
        return;
    }
    let mut stopped = STOPPED.lock().unwrap_or_else(|p| p.into_inner());
    for root in roots {
        stopped.extend(crate::sys::signal_tree(root, libc::SIGSTOP));
    }
}

/// Continues what [`stop_spares`] stopped.
pub fn continue_spares() {
    let stopped = std::mem::take(&mut *STOPPED.lock().unwrap_or_else(|p| p.into_inner()));
    for pid in stopped {
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    }
}
