//! The launcher's side: find a warm spare for this launch and hand it the connection
//! file, then stay as a proxy — forward the signals a client sends to "the kernel" and
//! exit when the spare does, so clients that watch or kill the launched process keep
//! working.
//!
//! Owns nothing but that process; a failed hand-over of any kind means the launch
//! starts its own kernel, never an error.

use super::handover::{self, Request};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A spare that took over this launch.
pub struct Claimed {
    link: UnixStream,
    spare_pid: u32,
}

/// Tries the ready spares of `key`; `None` when there is none or none accepted.
pub fn claim(key: &str, connection_file: &Path) -> Option<Claimed> {
    let connection_file = std::path::absolute(connection_file).ok()?;
    let dir = super::dir();
    let entries = std::fs::read_dir(&dir).ok()?;
    let prefix = format!("{key}-");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(&prefix) && name.ends_with(".sock")) {
            continue;
        }
        // A spare stopped while another kernel's code runs (see `pause`) must answer now.
        let pid = name.trim_end_matches(".sock").rsplit('-').next();
        if let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) {
            crate::sys::signal_tree(pid, libc::SIGCONT);
        }
        let Ok(folder) = std::fs::File::open(&dir) else {
            return None;
        };
        let Ok(link) = UnixStream::connect(super::socket_address(&folder, &entry.file_name()))
        else {
            continue;
        };
        if handover::peer_uid(&link) != Some(unsafe { libc::getuid() }) {
            continue;
        }
        let _ = link.set_read_timeout(Some(Duration::from_secs(10)));
        let request = Request {
            connection_file: connection_file.clone(),
            launcher_pid: std::process::id(),
            cwd: std::env::current_dir().ok(),
        };
        if handover::send(&link, &request).is_err() {
            continue;
        }
        match handover::read_reply(&link) {
            Ok(Ok(spare_pid)) => {
                let _ = link.set_read_timeout(None);
                return Some(Claimed { link, spare_pid });
            }
            Ok(Err(why)) => super::log(&format!("a warm spare declined: {why}")),
            Err(_) => {}
        }
    }
    None
}

impl Claimed {
    /// Becomes the proxy of the spare: forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1
    /// and SIGUSR2, and exits when the link closes (the spare exited).
    pub fn serve_as_proxy(self) -> ! {
        let proxy_file = super::proxy_file(std::process::id());
        let _ = std::fs::write(&proxy_file, self.spare_pid.to_string());
        let signals = [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ];
        let spare = self.spare_pid as i32;
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in signals {
                libc::sigaddset(&mut set, s);
            }
            // Blocked here, before the forwarding thread starts, so every thread of the
            // process inherits the mask and only `sigwait` receives them.
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let watched = set;
            let forwarding_file = proxy_file.clone();
            std::thread::spawn(move || loop {
                let mut signal = 0;
                if libc::sigwait(&watched, &mut signal) == 0 {
                    libc::kill(spare, signal);
                    if matches!(signal, libc::SIGTERM | libc::SIGQUIT | libc::SIGHUP) {
                        // The spare may be wedged; the proxy must still end when asked.
                        std::thread::sleep(Duration::from_secs(5));
                        let _ = std::fs::remove_file(&forwarding_file);
                        libc::kill(spare, libc::SIGKILL);
                        libc::_exit(1);
                    }
                }
            });
        }
        let mut link = self.link;
        let mut buffer = [0u8; 256];
        while matches!(link.read(&mut buffer), Ok(n) if n > 0) {}
        let _ = std::fs::remove_file(&proxy_file);
        crate::log::exit(0)
    }
}
