//! Warm spare kernels: a kernel launch finds an already warmed-up kernel of the same
//! user, program and environment, hands it the connection file, its working folder and
//! its standard streams, and stays behind as a thin proxy (signals forwarded, exits when
//! the spare does). Every launch then starts one spare for the next launch (a restart,
//! the next notebook), so that launch's first cell finds evcxr, rust-analyzer and tokio
//! ready; with `RUSTMETER_SPARE_START=login` only `rustmeter spares start` does (a class:
//! the learner's server at login).
//!
//! Owns the spare's identity (the key), its files under `<runtime base>/spares` and its
//! life cycle; the hand-over wire format is `handover`, the launcher side `proxy`, the
//! spare side `spare`. Knows the server only through [`crate::server::serve`].
//!
//! `RUSTMETER_SPARE=off` turns spares off; `RUSTMETER_SPARE_IDLE` (default `30m`) is how
//! long an unclaimed spare waits before it exits (all read through `crate::settings`).

mod handover;
pub mod pause;
mod proxy;
mod waiting;

pub use proxy::{claim, Claimed};
pub use waiting::run as run_spare;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const VAR: &str = crate::settings::SPARE.name;
pub const IDLE_VAR: &str = crate::settings::SPARE_IDLE.name;

/// Spares are on unless `RUSTMETER_SPARE` is off.
pub fn enabled() -> bool {
    crate::settings::switch(&crate::settings::SPARE)
}

/// Each launch starts a spare for the next one, unless `RUSTMETER_SPARE_START=login`
/// leaves that to `rustmeter spares start` (a class: one warm kernel per learner).
pub fn started_by_launches() -> bool {
    crate::settings::word(&crate::settings::SPARE_START) == "launch"
}

/// `rustmeter spares start`: a spare for a launch with this process's environment, unless
/// one already warms or waits for it. Returns false when spares are off.
pub fn start_for_this_environment() -> anyhow::Result<bool> {
    if !enabled() {
        return Ok(false);
    }
    note_launch_environment();
    ensure(&current_key()?);
    Ok(true)
}

/// How long an unclaimed spare lives; a bad value is reported and the default used.
pub fn idle_limit() -> Duration {
    use crate::settings::SPARE_IDLE;
    if let Err(e) = crate::settings::check(&SPARE_IDLE) {
        log(&e.report());
    }
    crate::settings::duration(&SPARE_IDLE)
}

/// Variables that differ between launches of the same kernel and must not keep a spare
/// from matching. Cells of a served spare see the values of the launch that started it.
fn volatile(name: &str) -> bool {
    name.starts_with("JPY_")
        || name == crate::launcher::KERNEL_PID_VARIABLE
        || matches!(name, "PWD" | "OLDPWD" | "SHLVL" | "_")
}

/// What a spare must share with a launch to serve it: this program (path, size, time),
/// the user and every non-volatile environment variable. A served spare therefore
/// behaves exactly as the launch's own kernel would have; the working folder is not part
/// of it (a notebook in any folder is served: the hand-over moves the spare there), but
/// its `evcxr.toml` is, since evcxr reads that file once, when it starts.
pub fn current_key() -> std::io::Result<String> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let exe = std::env::current_exe()?;
    let meta = std::fs::metadata(&exe)?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut feed = |bytes: &[u8]| {
        digest.update(bytes);
        digest.update(&[0]);
    };
    feed(exe.as_os_str().as_bytes());
    feed(format!("{} {} {}", meta.len(), meta.mtime(), meta.mtime_nsec()).as_bytes());
    feed(unsafe { libc::getuid() }.to_string().as_bytes());
    match std::fs::read("evcxr.toml") {
        Ok(config) => feed(&config),
        Err(_) => feed(b"no evcxr.toml"),
    }
    let mut vars: Vec<_> = std::env::vars_os()
        .filter(|(k, _)| !k.to_str().is_some_and(volatile))
        .collect();
    vars.sort();
    for (k, v) in vars {
        feed(k.as_bytes());
        feed(v.as_bytes());
    }
    let hash = digest.finish();
    Ok(hash.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// `<runtime base>/spares`, private to the user like the base.
pub fn dir() -> PathBuf {
    crate::workdir::base_dir().join("spares")
}

fn create_dir() -> std::io::Result<PathBuf> {
    let dir = dir();
    crate::private_dir::create(&dir).map_err(|refusal| std::io::Error::other(refusal.0))?;
    Ok(dir)
}

fn lock_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.lock"))
}

fn socket_path(dir: &Path, key: &str, pid: u32) -> PathBuf {
    dir.join(format!("{key}-{pid}.sock"))
}

fn pid_path(dir: &Path, key: &str, pid: u32) -> PathBuf {
    dir.join(format!("{key}-{pid}.spare"))
}

/// The proxy file a launcher leaves while it serves through a spare: `proxy-<launcher
/// pid>` holding the spare's pid, for tools that measure the kernel's process tree.
pub fn proxy_file(launcher: u32) -> PathBuf {
    dir().join(format!("proxy-{launcher}"))
}

/// A Unix socket path is limited to 107 bytes, which a deep runtime folder exceeds: bind
/// and connect through `/proc/self/fd/<folder fd>/<name>` instead (about 50 bytes).
/// `folder` must stay open while the path is used.
fn socket_address(folder: &std::fs::File, name: &std::ffi::OsStr) -> PathBuf {
    crate::workdir::fd_path(folder).join(name)
}

/// An exclusive lock per key: held by the one spare that warms or waits for that key.
struct KeyLock {
    /// Open for as long as the lock is held: closing it releases the `flock`.
    _file: std::fs::File,
}

impl KeyLock {
    fn try_take(dir: &Path, key: &str) -> Option<KeyLock> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(dir, key))
            .ok()?;
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        taken.then_some(KeyLock { _file: file })
    }
}

/// `EVCXR_TMPDIR` as the launch had it, before the kernel pointed it at its own folder:
/// a spare must start from the launch's environment, or its key would differ.
static LAUNCH_EVCXR_TMPDIR: std::sync::OnceLock<Option<std::ffi::OsString>> =
    std::sync::OnceLock::new();

/// Remembers the launch's environment; call before the kernel changes any of it.
pub fn note_launch_environment() {
    let _ = LAUNCH_EVCXR_TMPDIR.set(std::env::var_os("EVCXR_TMPDIR"));
}

/// Starts a spare for this launch's key unless one already warms or waits, and stops the
/// user's spares for other keys. The spare is its own session (not in the launch's
/// process group) and is never waited for.
pub fn ensure(key: &str) {
    let Ok(dir) = create_dir() else { return };
    remove_stale_files(&dir);
    match KeyLock::try_take(&dir, key) {
        Some(lock) => drop(lock),
        None => return,
    }
    // One spare per user: a spare for other settings is most likely stale (the learner
    // moved on), and each holds about 0.5 GB.
    for (other, pid) in spare_pids(&dir) {
        if other != key && is_spare(pid) {
            terminate(pid);
        }
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let log_file = crate::private_dir::open_for_writing(&dir.join(format!("{key}.log")), false);
    let mut command = std::process::Command::new(exe);
    match LAUNCH_EVCXR_TMPDIR.get() {
        Some(Some(value)) => command.env("EVCXR_TMPDIR", value),
        Some(None) => command.env_remove("EVCXR_TMPDIR"),
        None => &mut command,
    };
    command
        .env_remove(crate::launcher::KERNEL_PID_VARIABLE) // a spare outlives this kernel
        .args(["spare", "--key", key])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    match log_file {
        Ok(file) => command.stderr(file),
        Err(_) => command.stderr(std::process::Stdio::null()),
    };
    // Double fork: the spare is re-parented at once, so no launcher keeps a zombie.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            match libc::fork() {
                -1 => Err(std::io::Error::last_os_error()),
                0 => Ok(()),
                _ => libc::_exit(0),
            }
        });
    }
    match command.spawn() {
        Ok(mut child) => {
            let _ = child.wait();
        }
        Err(e) => log(&format!("could not start a warm spare: {e}")),
    }
}

/// Files of processes that are gone: proxy files of killed launchers, the socket and pid
/// file of spares that were stopped by a signal (each removes its own when it can), and
/// the lock and log of keys that no spare holds.
fn remove_stale_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(key) = name.strip_suffix(".lock") {
            // A key nobody warms or waits for any more: its lock and log go too.
            if let Some(lock) = KeyLock::try_take(dir, key) {
                let _ = std::fs::remove_file(dir.join(format!("{key}.log")));
                let _ = std::fs::remove_file(entry.path());
                drop(lock);
            }
            continue;
        }
        let pid = match name.strip_prefix("proxy-") {
            Some(pid) => pid,
            None => match name.rsplit_once('-') {
                Some((_, rest)) if rest.ends_with(".sock") || rest.ends_with(".spare") => {
                    rest.split('.').next().unwrap_or("")
                }
                _ => continue,
            },
        };
        if let Ok(pid) = pid.parse::<i32>() {
            if unsafe { libc::kill(pid, 0) } != 0 {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Stops every spare of this user (after an upgrade, or before measuring without them).
/// Returns how many were signalled.
pub fn stop_all() -> usize {
    let mut stopped = 0;
    for (_, pid) in spare_pids(&dir()) {
        if is_spare(pid) && terminate(pid) {
            stopped += 1;
        }
    }
    stopped
}

/// SIGTERM to a spare, then SIGCONT to it and everything under it: a spare stopped while
/// code ran elsewhere (see `pause`) would otherwise keep the signal pending.
fn terminate(pid: u32) -> bool {
    let sent = unsafe { libc::kill(pid as i32, libc::SIGTERM) } == 0;
    crate::sys::signal_tree(pid, libc::SIGCONT);
    sent
}

/// `(pid, RSS in bytes)` of this user's live spares, for `rustmeter doctor`.
pub fn waiting() -> Vec<(u32, u64)> {
    spare_pids(&dir())
        .into_iter()
        .filter(|(_, pid)| is_spare(*pid))
        .map(|(_, pid)| (pid, crate::sys::status_bytes(pid, "VmRSS").unwrap_or(0)))
        .collect()
}

/// `(key, pid)` of every spare that announced itself.
fn spare_pids(dir: &Path) -> Vec<(String, u32)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".spare")?.to_string();
            let (key, pid) = name.rsplit_once('-')?;
            Some((key.to_string(), pid.parse().ok()?))
        })
        .collect()
}

fn is_spare(pid: u32) -> bool {
    crate::sys::cmdline(pid)
        .get(1)
        .is_some_and(|arg| arg == "spare")
}

fn log(message: &str) {
    crate::log::info(message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volatile_variables_are_only_the_launch_specific_ones() {
        assert!(volatile("JPY_PARENT_PID"));
        assert!(volatile("JPY_SESSION_NAME"));
        assert!(volatile("PWD"));
        assert!(!volatile("RUSTMETER_CELL_TIMEOUT"));
        assert!(!volatile("PATH"));
        assert!(!volatile("HOME"));
    }

    #[test]
    fn files_of_gone_processes_are_removed_and_live_ones_kept() {
        let dir = std::env::temp_dir().join(format!("rm-spares-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let me = std::process::id();
        let gone = 0x3fff_fff0u32; // above any pid_max
        let names = [
            format!("proxy-{gone}"),
            format!("abcd-{gone}.sock"),
            format!("abcd-{gone}.spare"),
            format!("proxy-{me}"),
            format!("abcd-{me}.sock"),
            "abcd.lock".to_string(),
            "abcd.log".to_string(),
        ];
        for name in &names {
            std::fs::write(dir.join(name), "").unwrap();
        }
        remove_stale_files(&dir);
        let left: Vec<bool> = names.iter().map(|n| dir.join(n).exists()).collect();
        // Nobody holds abcd's lock: its lock and log go too.
        assert_eq!(left, [false, false, false, true, true, false, false]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_key_is_stable_and_hex() {
        let a = current_key().unwrap();
        assert_eq!(a, current_key().unwrap());
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
