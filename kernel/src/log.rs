//! The kernel's own log: its standard error, which Jupyter servers keep as the kernel log
//! and `jupyter console` prints between the learner's prompts. Quiet by default, as
//! ipykernel's is: errors, refused connections and a one-line start. At
//! `RUSTMETER_LOG=debug` it also carries warm-up timings and cargo's per-crate lines.
//!
//! evcxr writes cargo's `Compiling …` lines straight to the process's stderr (it has no
//! callback for them), so [`quiet_tool_output`] puts a pipe in front of file descriptor 2
//! and keeps the most recent of them (the last 2,000) for `:last_build_log`, which shows
//! the ones written during the cell's build, unless the log is at debug.
//!
//! A leaf beside `settings`: it reads its setting and touches no other module.

use crate::settings;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

/// cargo's lines held back from stderr, newest last, each with its sequence number.
static HELD_BACK: Mutex<HeldBack> = Mutex::new(HeldBack {
    next: 0,
    lines: VecDeque::new(),
});
/// A `:dep` of a large crate tree writes a few hundred lines; this keeps several builds.
const HELD_BACK_MAX: usize = 2_000;

struct HeldBack {
    next: u64,
    lines: VecDeque<(u64, String)>,
}

/// Where the held-back lines stand now: pass it to [`tool_lines_since`] after a build.
pub fn tool_lines_mark() -> u64 {
    HELD_BACK.lock().map(|held| held.next).unwrap_or(0)
}

/// cargo's lines held back from stderr since `mark` (oldest first), or `None` when
/// stderr is not filtered (the lines are then in the kernel's log).
pub fn tool_lines_since(mark: u64) -> Option<Vec<String>> {
    if debug_enabled() {
        return None;
    }
    let held = HELD_BACK.lock().ok()?;
    Some(
        held.lines
            .iter()
            .filter(|(seq, _)| *seq >= mark)
            .map(|(_, line)| line.clone())
            .collect(),
    )
}

fn hold_back(line: &str) {
    if let Ok(mut held) = HELD_BACK.lock() {
        let seq = held.next;
        held.next += 1;
        held.lines.push_back((seq, line.trim_end().to_string()));
        while held.lines.len() > HELD_BACK_MAX {
            held.lines.pop_front();
        }
    }
}

/// Whether debug lines are written.
pub fn debug_enabled() -> bool {
    settings::word(&settings::LOG) == "debug"
}

/// The real stderr while the filter is in front of fd 2: the kernel's own lines go
/// straight there, in order and at once, whatever the filter's thread is doing.
static OWN_LINES: Mutex<Option<File>> = Mutex::new(None);

/// A line an operator needs (an error, a refusal, the start).
pub fn info(message: &str) {
    let line = format!("[rustmeter] {message}\n");
    let mut own = OWN_LINES.lock().unwrap_or_else(|p| p.into_inner());
    match own.as_mut() {
        Some(stderr) => {
            let _ = stderr.write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

/// A line for whoever is debugging the kernel (timings, warm-ups).
pub fn debug(message: &str) {
    if debug_enabled() {
        info(message);
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
    VERBS.iter().any(|verb| {
        trimmed
            .strip_prefix(verb)
            .is_some_and(|rest| rest.starts_with(' '))
    })
}

/// The filter in front of stderr; dropping it puts stderr back and writes out what the
/// pipe still holds.
pub struct QuietStderr {
    original: Option<OwnedFd>,
    forwarder: Option<std::thread::JoinHandle<()>>,
}

/// The filter pipe's ends while it is in place: the write end (what fd 2 is a copy of)
/// and the read end's number, to see whether lines are still in flight.
static FILTER: Mutex<Option<(OwnedFd, i32)>> = Mutex::new(None);

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
    // Close-on-exec copies only: cargo, rustc and the user-code process must not hold the
    // real stderr open (a reader of it would never see end of file).
    let Ok(original) = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stderr(), 3) else {
        return untouched;
    };
    let Ok((read, write)) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) else {
        return untouched;
    };
    let (Ok(own), Ok(filter_input)) = (original.try_clone(), write.try_clone()) else {
        return untouched;
    };
    let read_fd = read.as_raw_fd();
    let forwarder = std::thread::Builder::new()
        .name("stderr-filter".into())
        .spawn(move || forward(File::from(read)));
    let Ok(forwarder) = forwarder else {
        return untouched;
    };
    *OWN_LINES.lock().unwrap_or_else(|p| p.into_inner()) = Some(File::from(own));
    if rustix::stdio::dup2_stderr(&write).is_err() {
        *OWN_LINES.lock().unwrap_or_else(|p| p.into_inner()) = None;
        return untouched;
    }
    *FILTER.lock().unwrap_or_else(|p| p.into_inner()) = Some((filter_input, read_fd));
    QuietStderr {
        original: Some(original),
        forwarder: Some(forwarder),
    }
}

/// The real stderr (a new descriptor): the filter's destination while it is in place,
/// else fd 2. What a launcher hands to the spare that serves it.
pub fn real_stderr() -> std::io::Result<OwnedFd> {
    let own = OWN_LINES.lock().unwrap_or_else(|p| p.into_inner());
    match own.as_ref() {
        Some(file) => Ok(rustix::io::fcntl_dupfd_cloexec(file, 3)?),
        None => Ok(rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stderr(), 3)?),
    }
}

/// Makes `stderr` this process's stderr: behind the filter when it is in place (a spare
/// taking over a launch keeps its filter and writes to the launcher's stderr), else as
/// fd 2 itself.
pub fn adopt_stderr(stderr: OwnedFd) -> std::io::Result<()> {
    let filter = FILTER.lock().unwrap_or_else(|p| p.into_inner());
    match filter.as_ref() {
        Some((filter_input, _)) => {
            let copy = rustix::io::fcntl_dupfd_cloexec(&stderr, 3)?;
            *OWN_LINES.lock().unwrap_or_else(|p| p.into_inner()) = Some(File::from(copy));
            rustix::stdio::dup2_stderr(filter_input)?;
        }
        None => rustix::stdio::dup2_stderr(&stderr)?,
    }
    Ok(())
}

/// Waits (up to 200 ms) until the filter has written out what is in its pipe: for a
/// process about to exit, so its last lines (a panic, the reason) reach the log.
pub fn flush() {
    let read_fd = match FILTER.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        Some((_, read_fd)) => *read_fd,
        None => return,
    };
    // SAFETY: the forwarder owns the read end for the life of the process.
    let read = unsafe { std::os::fd::BorrowedFd::borrow_raw(read_fd) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
    while rustix::io::ioctl_fionread(read).is_ok_and(|n| n > 0)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // The forwarder may hold the last line it read; it writes it at once.
    std::thread::sleep(std::time::Duration::from_millis(5));
}

/// Exits the process after [`flush`].
pub fn exit(code: i32) -> ! {
    flush();
    std::process::exit(code)
}

fn forward(read: File) {
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    while let Ok(n) = reader.read_until(b'\n', &mut line) {
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        if is_cargo_progress(&text) {
            hold_back(&text);
        } else {
            let mut own = OWN_LINES.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(to) = own.as_mut() {
                let _ = to.write_all(&line);
            }
        }
        line.clear();
    }
}

impl Drop for QuietStderr {
    fn drop(&mut self) {
        if self.original.take().is_none() {
            return;
        }
        // fd 2 back to the real stderr (the adopted one, if a spare took over), and the
        // filter's own copy of the pipe closed: the forwarder ends once it has written
        // what was left. Children that inherited fd 2 may hold it open: do not wait then.
        if let Some(real) = OWN_LINES.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = rustix::stdio::dup2_stderr(real);
        }
        *FILTER.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some(forwarder) = self.forwarder.take() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
            while !forwarder.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        *OWN_LINES.lock().unwrap_or_else(|p| p.into_inner()) = None;
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

    #[test]
    fn held_back_lines_are_read_from_a_mark() {
        let mark = tool_lines_mark();
        hold_back("   Compiling itoa v1.0.15\n");
        hold_back("    Finished `dev` profile\n");
        let since = tool_lines_since(mark).expect("not at debug in unit tests");
        assert_eq!(
            since,
            ["   Compiling itoa v1.0.15", "    Finished `dev` profile"]
        );
        assert!(tool_lines_since(tool_lines_mark()).unwrap().is_empty());
    }
}
