//! The kernel's own log: its standard error, which Jupyter servers keep as the kernel log
//! and `jupyter console` prints between the learner's prompts. Quiet by default, as
//! ipykernel's is: errors, refused connections and a one-line start. At
//! `RUSTMETER_LOG=debug` it also carries warm-up timings and cargo's per-crate lines.
//!
//! evcxr writes cargo's `Compiling …` lines straight to the process's stderr (it has no
//! callback for them), so [`quiet_tool_output`] puts a pipe in front of file descriptor 2
//! and drops those lines unless the log is at debug. The cell's own build log
//! (`:last_build_log`) is kept elsewhere and is not affected.
//!
//! A leaf beside `settings`: it reads its setting and touches no other module.

use crate::settings;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;

/// Whether debug lines are written.
pub fn debug_enabled() -> bool {
    settings::word(&settings::LOG) == "debug"
}

/// A line an operator needs (an error, a refusal, the start).
pub fn info(message: &str) {
    eprintln!("[rustmeter] {message}");
}

/// A line for whoever is debugging the kernel (timings, warm-ups).
pub fn debug(message: &str) {
    if debug_enabled() {
        eprintln!("[rustmeter] {message}");
    }
}

/// cargo's progress lines, which evcxr copies to stderr for every crate it builds.
fn is_cargo_progress(line: &str) -> bool {
    const VERBS: [&str; 12] = [
        "Compiling",
        "Checking",
        "Fresh",
        "Finished",
        "Downloaded",
        "Downloading",
        "Updating",
        "Locking",
        "Adding",
        "Blocking",
        "Building",
        "Running",
    ];
    let trimmed = line.trim_start();
    VERBS
        .iter()
        .any(|verb| trimmed.strip_prefix(verb).is_some_and(|rest| rest.starts_with(' ')))
}

/// The filter in front of stderr; dropping it puts stderr back and writes out what the
/// pipe still holds.
pub struct QuietStderr {
    original: Option<OwnedFd>,
    forwarder: Option<std::thread::JoinHandle<()>>,
}

/// Filters this process's stderr for the rest of its life (see the module docs). At
/// debug level, or when the pipe cannot be made, stderr stays as it is.
pub fn quiet_tool_output() -> QuietStderr {
    let untouched = QuietStderr {
        original: None,
        forwarder: None,
    };
    if debug_enabled() {
        return untouched;
    }
    let Ok(original) = rustix::io::dup(rustix::stdio::stderr()) else {
        return untouched;
    };
    let Ok((read, write)) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) else {
        return untouched;
    };
    let Ok(copy) = original.try_clone() else {
        return untouched;
    };
    let forwarder = std::thread::Builder::new()
        .name("stderr-filter".into())
        .spawn(move || forward(File::from(read), File::from(copy)));
    let Ok(forwarder) = forwarder else {
        return untouched;
    };
    if rustix::stdio::dup2_stderr(&write).is_err() {
        return untouched;
    }
    QuietStderr {
        original: Some(original),
        forwarder: Some(forwarder),
    }
}

fn forward(read: File, mut to: File) {
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    while let Ok(n) = reader.read_until(b'\n', &mut line) {
        if n == 0 {
            break;
        }
        if !is_cargo_progress(&String::from_utf8_lossy(&line)) {
            let _ = to.write_all(&line);
        }
        line.clear();
    }
}

impl Drop for QuietStderr {
    fn drop(&mut self) {
        let Some(original) = self.original.take() else {
            return;
        };
        // Closing the pipe's last writer (fd 2) ends the forwarder once it has written
        // what was left. Children that inherited fd 2 may hold it open: do not wait then.
        let _ = rustix::stdio::dup2_stderr(&original);
        if let Some(forwarder) = self.forwarder.take() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
            while !forwarder.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_progress_lines_are_recognised() {
        assert!(is_cargo_progress("   Compiling tokio v1.54.1\n"));
        assert!(is_cargo_progress("    Finished `dev` profile in 2.1s"));
        assert!(!is_cargo_progress("[rustmeter] cannot bind shell"));
        assert!(!is_cargo_progress("Compilingx"));
        assert!(!is_cargo_progress("thread 'main' panicked at src/main.rs"));
    }
}
