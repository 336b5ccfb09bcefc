//! Code that runs inside evcxr's user-code child process (this same binary, launched by
//! evcxr with `EVCXR_IS_RUNTIME` set), before evcxr's own runtime loop starts.
//!
//! It owns two small relays on the child's file descriptors; it must not touch anything
//! evcxr's runtime depends on beyond passing its lines through unchanged:
//! - **stdin**: evcxr sends `LOAD_AND_RUN …` when compiled user code starts; the relay
//!   announces that moment on stdout ([`RUN_START`]) so the kernel can split compile
//!   time from run time, then forwards the line. Other lines are answers to input
//!   requests, forwarded unchanged.
//! - **stdout**: evcxr holds back `EVCXR_BEGIN_CONTENT` blocks until a cell ends. Blocks
//!   printed *during* a cell are rewritten into single-line [`DISPLAY`] markers that evcxr
//!   passes through like ordinary output, so they show live; blocks printed right before
//!   the end of the cell (the value of the final expression) stay evcxr's. At the end of
//!   a cell the relay asks the user-code std to flush its stdout ([`END_OF_CELL`]), so a
//!   `print!` without newline shows in the cell that printed it.
//!
//! - **the learner's stdin**: fd 0 carries evcxr's commands, but evcxr reads it only
//!   between cells, so while a cell's code runs fd 0 is the cell's. When the stdout relay
//!   finds a thread of the cell waiting on fd 0 ([`crate::stdin_wait`]), it flushes the
//!   cell's stdout, takes the text printed last without a newline as the prompt, and
//!   prints evcxr's own input-request line for it (the one `evcxr_input` uses, the prompt
//!   tagged [`STDIN_READ`]). evcxr asks the kernel, which asks the Jupyter client, and
//!   writes the answer to the child's stdin; the stdin relay passes it to fd 0, where the
//!   waiting read gets it with its newline, as from a terminal.
//!
//! Cells link their own copy of `libstd.so`, separate from this binary's std, so the
//! flush function and the panic hook are installed by the kernel's prelude cell (see
//! `engine::prelude`), which reports the flush function's address on stdout.

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::{fcntl_dupfd_cloexec, Errno};
use rustix::pipe::{pipe_with, PipeFlags};
use rustix::stdio;
use rustix::time::{clock_gettime, ClockId};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::markers::{
    escape_prompt, DISPLAY, END_OF_CELL, END_OF_CELL_FN, NO_EOL, RUN_END, RUN_START, STDIN_EOF,
    STDIN_READ,
};

const EVCXR_COMPLETE: &str = "EVCXR_EXECUTION_COMPLETE";
const EVCXR_BEGIN: &str = "EVCXR_BEGIN_CONTENT ";
const EVCXR_END: &str = "EVCXR_END_CONTENT";
const EVCXR_PANIC: &str = "EVCXR_PANIC_NOTIFICATION";
/// evcxr's input request (`evcxr_input::GET_CMD`); `…_PASSWORD:` starts the same way.
const EVCXR_INPUT_REQUEST: &str = "EVCXR_INPUT_REQUEST";
/// How often a running cell is checked for a read of stdin; two checks in a row must see
/// it, so the prompt appears 50–150 ms after the read starts.
const STDIN_CHECK_EVERY: Duration = Duration::from_millis(50);
/// A held content block becomes a live display after this long without the cell ending.
const HOLD_LIMIT: Duration = Duration::from_millis(150);
/// How long the end of a cell waits for the user-code stdout to be flushed.
const FLUSH_LIMIT: Duration = Duration::from_millis(500);

/// SIGINT must not kill the child (the kernel decides when to kill,
/// after the grace period), so the handler does nothing. `SA_RESTART`: a blocking call in
/// evcxr's runtime or our relays that met `EINTR` could end the process's loops; code that
/// wants the interrupt listens for SIGINT itself (`tokio::signal::ctrl_c()`) or checks
/// `rustmeter::interrupted()`.
fn ignore_sigint_in_child() {
    extern "C" fn on_sigint(_: libc::c_int) {}
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
}

/// Processes the user's code starts must not inherit the
/// cancel channel.
fn keep_channel_private_in_child() {
    let Some(fd) =
        crate::settings::text(&crate::settings::INTERRUPT_FD).and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
}

/// Installs the relays when this process is evcxr's user-code child; returns at once
/// otherwise.
pub fn hook() {
    if std::env::var_os("EVCXR_IS_RUNTIME").is_none() {
        return;
    }
    apply_env_file();
    crate::sys::raise_open_files_limit();
    ignore_sigint_in_child();
    keep_channel_private_in_child();
    if let Err(error) = install() {
        // Without the relays cells still run; they only lose live displays.
        eprintln!("rustmeter: could not set up output relay: {error}");
    }
}

/// Variables set with `:env`, applied now while this process has a single thread.
fn apply_env_file() {
    let Some(path) = crate::settings::path(&crate::settings::CHILD_ENV_FILE) else {
        return;
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            std::env::set_var(key, value);
        }
    }
}

fn install() -> std::io::Result<()> {
    // Copies of the real stdin and stdout above 2, kept by the relays; the pipes' ends
    // then take fds 0 and 1, where evcxr's runtime and user code read and write.
    let real_stdout = File::from(fcntl_dupfd_cloexec(stdio::stdout(), 3)?);
    let real_stdout = Arc::new(Mutex::new(real_stdout));
    let (out_read, out_write) = pipe_with(PipeFlags::CLOEXEC)?;
    let (in_read, in_write) = pipe_with(PipeFlags::CLOEXEC)?;
    let real_stdin = fcntl_dupfd_cloexec(stdio::stdin(), 3)?;
    stdio::dup2_stdout(&out_write)?;
    stdio::dup2_stdin(&in_read)?;
    // Fds 0 and 1 are now the only copies of these ends, so each relay notices when the
    // runtime's side closes.
    drop((out_write, in_read));
    let (flush_tx, flush_rx) = mpsc::channel::<usize>();
    std::thread::spawn(move || flusher(flush_rx));
    // Markers start once the kernel's prelude cell has run: evcxr's own warm-up cell
    // runs before anything drains its stdout channel, and would wait on them forever.
    let markers_on = Arc::new(AtomicBool::new(false));
    // The stdin relay wakes the stdout relay when a cell starts or an answer arrives, so
    // that it watches fd 0 even while the cell prints nothing.
    let (wake_read, wake_write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    let stdin = Arc::new(CellStdin {
        cells_started: AtomicU64::new(0),
        cells_completed: AtomicU64::new(0),
        request_open: AtomicBool::new(false),
        wake: wake_write,
    });
    let stdout_for_stdin = Arc::clone(&real_stdout);
    let markers_for_stdin = Arc::clone(&markers_on);
    let stdin_for_relay = Arc::clone(&stdin);
    std::thread::spawn(move || {
        relay_stdin(
            real_stdin,
            in_write,
            stdout_for_stdin,
            markers_for_stdin,
            stdin_for_relay,
        )
    });
    std::thread::spawn(move || {
        StdoutRelay::new(real_stdout, flush_tx, markers_on, stdin).run(out_read, wake_read)
    });
    Ok(())
}

/// Calls the prelude's flush function on its own thread: it takes the user-code stdout
/// lock, which a user thread may hold while it waits for the stdout relay to read.
fn flusher(requests: mpsc::Receiver<usize>) {
    while let Ok(address) = requests.recv() {
        // SAFETY: the address was printed by the prelude cell as `fn() as usize` for an
        // `extern "C" fn()`, and evcxr never unloads a cell's library.
        let function: extern "C" fn() = unsafe { std::mem::transmute(address) };
        function();
    }
}

/// What the two relays know of fd 0 while a cell runs.
struct CellStdin {
    /// Cells evcxr was told to run (counted by the stdin relay once the command is
    /// written) and cells it said completed (counted by the stdout relay). Counts, not a
    /// flag: on a busy machine a short cell can complete before the stdin relay gets to
    /// note that it started.
    cells_started: AtomicU64,
    cells_completed: AtomicU64,
    /// An input request is out and its answer has not come back.
    request_open: AtomicBool,
    /// Written to when a cell starts or an answer arrives: the stdout relay, which polls
    /// the other end, starts watching fd 0 again.
    wake: OwnedFd,
}

impl CellStdin {
    fn cell_running(&self) -> bool {
        self.cells_started.load(Ordering::SeqCst) > self.cells_completed.load(Ordering::SeqCst)
    }
}

fn relay_stdin(
    real_stdin: OwnedFd,
    to_runtime: OwnedFd,
    real_stdout: Arc<Mutex<File>>,
    markers_on: Arc<AtomicBool>,
    stdin: Arc<CellStdin>,
) {
    let mut input = File::from(real_stdin);
    let mut output = File::from(to_runtime);
    let mut lines = LineSplitter::default();
    let mut buf = [0u8; 8192];
    loop {
        let n = match std::io::Read::read(&mut input, &mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => return, // kernel closed our stdin: evcxr's loop ends too
            Ok(n) => n,
        };
        for line in lines.push(&buf[..n]) {
            // While a cell runs, every line is an answer, whatever it says.
            let runs_a_cell = !stdin.cell_running() && line.starts_with("LOAD_AND_RUN ");
            if runs_a_cell && markers_on.load(Ordering::SeqCst) {
                write_line(&real_stdout, &stamped(RUN_START));
            }
            if line == STDIN_EOF {
                match end_of_input() {
                    Ok(fresh) => output = fresh,
                    Err(_) => return,
                }
            } else if output.write_all(format!("{line}\n").as_bytes()).is_err() {
                return;
            }
            if runs_a_cell {
                stdin.cells_started.fetch_add(1, Ordering::SeqCst);
            } else {
                stdin.request_open.store(false, Ordering::SeqCst);
            }
            let _ = rustix::io::write(&stdin.wake, &[1]);
        }
    }
}

/// Gives the read waiting on fd 0 end of file: a fresh pipe takes fd 0 (for evcxr's next
/// command and the cell's later reads), and the old pipe's only writer, which the caller
/// drops when it takes the returned one, closes. The waiting read holds the old pipe and
/// returns 0.
fn end_of_input() -> std::io::Result<File> {
    let (read, write) = pipe_with(PipeFlags::CLOEXEC)?;
    stdio::dup2_stdin(&read)?;
    Ok(File::from(write))
}

/// Nanoseconds of `CLOCK_MONOTONIC`: one clock for every process of the machine, so the
/// moments the user-code process stamps are comparable with the kernel's own `Instant`s
/// (std's `Instant` reads the same clock on Linux). Run times are stamped here, where
/// they happen: the kernel reads the markers late when the machine is loaded (eight runs
/// of an 800 ms sleep read 791.9–805.7 ms when stamped on arrival, with three busy loops).
pub fn monotonic_ns() -> u64 {
    let now = clock_gettime(ClockId::Monotonic);
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// `marker` followed by the current [`monotonic_ns`].
fn stamped(marker: &str) -> String {
    format!("{marker} {}", monotonic_ns())
}

/// The moment a marker's stamp names, as an `Instant` of this process: `None` when the
/// text holds no stamp. A stamp from the future (impossible on one machine) reads as now.
pub fn stamp_instant(text: &str) -> Option<Instant> {
    let stamp: u64 = text.trim().parse().ok()?;
    // The clock first, then the `Instant`: the `Instant` is then never earlier than the
    // reading, so a stamp never reads back earlier than the moment it names.
    let now_ns = monotonic_ns();
    let now = Instant::now();
    let ago = Duration::from_nanos(now_ns.saturating_sub(stamp));
    Some(now.checked_sub(ago).unwrap_or(now))
}

fn write_line(out: &Mutex<File>, line: &str) {
    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
    let _ = out.write_all(format!("{line}\n").as_bytes());
}

/// Splits a byte stream into lines, keeping a trailing partial line for later.
#[derive(Default)]
struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        lines
    }
}

struct StdoutRelay {
    out: Arc<Mutex<File>>,
    flush_requests: mpsc::Sender<usize>,
    flush_fn: Option<usize>,
    markers_on: Arc<AtomicBool>,
    /// Content blocks printed by the cell, not yet known to be live or final.
    held: Vec<(String, String)>,
    held_since: Option<Instant>,
    /// A block being read: (mime, lines so far).
    open_block: Option<(String, Vec<String>)>,
    /// evcxr's completion line, held while the user-code stdout is being flushed.
    completion: Option<(String, Instant)>,
    stdin: Arc<CellStdin>,
    /// When fd 0 was last checked, and the readers that check saw asleep on it.
    stdin_checked: Instant,
    stdin_readers: Vec<crate::stdin_wait::StdinReader>,
    /// The cell waits on stdin and its stdout is being flushed to find the prompt.
    prompt_flush: Option<Instant>,
}

impl StdoutRelay {
    fn new(
        out: Arc<Mutex<File>>,
        flush_requests: mpsc::Sender<usize>,
        markers_on: Arc<AtomicBool>,
        stdin: Arc<CellStdin>,
    ) -> Self {
        Self {
            out,
            flush_requests,
            flush_fn: None,
            markers_on,
            held: Vec::new(),
            held_since: None,
            open_block: None,
            completion: None,
            stdin,
            stdin_checked: Instant::now(),
            stdin_readers: Vec::new(),
            prompt_flush: None,
        }
    }

    fn run(mut self, fd: OwnedFd, wake: OwnedFd) {
        let mut input = File::from(fd);
        let mut lines = LineSplitter::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let timeout = self.next_deadline();
            let readable = wait_readable_or_woken(&input, &wake, timeout);
            if !readable {
                // Only with the cell's output all read: evcxr's completion line may be
                // waiting in it, and after it evcxr itself waits on fd 0.
                if rustix::io::ioctl_fionread(&input).is_ok_and(|unread| unread == 0) {
                    self.watch_stdin();
                }
                self.on_timeout();
                continue;
            }
            let n = match std::io::Read::read(&mut input, &mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            for line in lines.push(&buf[..n]) {
                self.on_line(line);
            }
        }
    }

    fn next_deadline(&self) -> Option<Duration> {
        let hold = self
            .held_since
            .map(|t| HOLD_LIMIT.saturating_sub(t.elapsed()));
        let flush = self
            .completion
            .as_ref()
            .map(|(_, t)| FLUSH_LIMIT.saturating_sub(t.elapsed()));
        let stdin = self.watching_stdin().then_some(STDIN_CHECK_EVERY);
        [hold, flush, stdin].into_iter().flatten().min()
    }

    fn watching_stdin(&self) -> bool {
        self.markers_on.load(Ordering::SeqCst)
            && self.stdin.cell_running()
            && !self.stdin.request_open.load(Ordering::SeqCst)
    }

    /// While the cell runs, asks for input once the same thread has slept in a read of
    /// fd 0 through two checks 50 ms apart without running in between (a single sighting
    /// may be a read that was just given its bytes, on a busy machine).
    fn watch_stdin(&mut self) {
        if !self.watching_stdin() {
            self.stdin_readers.clear();
            return;
        }
        if let Some(since) = self.prompt_flush {
            if since.elapsed() >= FLUSH_LIMIT {
                self.prompt_flush = None;
                self.ask_for_input("");
            }
            return;
        }
        if self.stdin_checked.elapsed() < STDIN_CHECK_EVERY {
            return;
        }
        self.stdin_checked = Instant::now();
        let readers = crate::stdin_wait::stdin_readers();
        let still_waiting = readers.iter().any(|r| self.stdin_readers.contains(r));
        self.stdin_readers = readers;
        if !still_waiting {
            return;
        }
        self.stdin_readers.clear();
        // The prompt is in the cell's stdout buffer until flushed: the flush function
        // prints it followed by END_OF_CELL, and `on_line` asks then.
        match self.flush_fn {
            Some(address) if self.flush_requests.send(address).is_ok() => {
                self.prompt_flush = Some(Instant::now());
            }
            _ => self.ask_for_input(""),
        }
    }

    /// evcxr's own input-request line, for a read of fd 0 whose prompt is `prompt`.
    fn ask_for_input(&mut self, prompt: &str) {
        self.release_held_as_live();
        self.stdin.request_open.store(true, Ordering::SeqCst);
        self.emit(&format!(
            "{EVCXR_INPUT_REQUEST}:{STDIN_READ}{}",
            escape_prompt(prompt)
        ));
    }

    fn on_timeout(&mut self) {
        if let Some((_, since)) = &self.completion {
            if since.elapsed() >= FLUSH_LIMIT {
                self.finish_cell();
                return;
            }
        }
        if self.completion.is_none() && self.held_since.is_some_and(|t| t.elapsed() >= HOLD_LIMIT) {
            self.release_held_as_live();
        }
    }

    fn on_line(&mut self, line: String) {
        if let Some((mime, lines)) = &mut self.open_block {
            if line == EVCXR_END {
                let content = lines.join("\n");
                let mime = std::mem::take(mime);
                self.open_block = None;
                self.held.push((mime, content));
                self.held_since.get_or_insert_with(Instant::now);
            } else if line == EVCXR_PANIC {
                // evcxr ends the block on a panic; let it see the same.
                let (mime, lines) = self.open_block.take().unwrap_or_default();
                self.emit(&format!("{EVCXR_BEGIN}{mime}"));
                for l in lines {
                    self.emit(&l);
                }
                self.emit(&line);
            } else {
                lines.push(line);
            }
            return;
        }
        // evcxr finds its marker anywhere in a line: a `print!` without newline before a
        // content block would be swallowed, so split it off as partial output.
        if let Some(at) = line.find(EVCXR_BEGIN).filter(|at| *at > 0) {
            self.release_held_as_live();
            self.emit(&format!("{}{NO_EOL}", &line[..at]));
            return self.on_line(line[at..].to_string());
        }
        // The same for an input request after a `print!` without newline.
        if let Some(at) = line.find(EVCXR_INPUT_REQUEST).filter(|at| *at > 0) {
            self.release_held_as_live();
            self.emit(&format!("{}{NO_EOL}", &line[..at]));
            return self.on_line(line[at..].to_string());
        }
        if let Some(mime) = line.strip_prefix(EVCXR_BEGIN) {
            self.open_block = Some((mime.trim().to_string(), Vec::new()));
            return;
        }
        if let Some(address) = line.strip_prefix(END_OF_CELL_FN) {
            self.flush_fn = address.trim().parse().ok();
            self.markers_on.store(true, Ordering::SeqCst);
            return;
        }
        if let Some(partial) = line.strip_suffix(END_OF_CELL) {
            if self.prompt_flush.take().is_some() {
                return self.ask_for_input(partial);
            }
            if !partial.is_empty() {
                self.release_held_as_live();
                self.emit(&format!("{partial}{NO_EOL}"));
            }
            if self.completion.is_some() {
                self.finish_cell();
            }
            return;
        }
        if line.starts_with(EVCXR_INPUT_REQUEST) {
            // `evcxr_input` or `rustmeter::read_password` asks by itself.
            self.stdin.request_open.store(true, Ordering::SeqCst);
        }
        if line == EVCXR_COMPLETE {
            self.stdin.cells_completed.fetch_add(1, Ordering::SeqCst);
            self.stdin.request_open.store(false, Ordering::SeqCst);
            self.prompt_flush = None;
            if self.markers_on.load(Ordering::SeqCst) {
                self.emit(&stamped(RUN_END));
            }
            match self.flush_fn {
                Some(address) if self.flush_requests.send(address).is_ok() => {
                    self.completion = Some((line, Instant::now()));
                }
                _ => {
                    self.completion = Some((line, Instant::now()));
                    self.finish_cell();
                }
            }
            return;
        }
        self.release_held_as_live();
        self.emit(&line);
    }

    /// The cell ended: blocks still held are its final value, evcxr's to report.
    fn finish_cell(&mut self) {
        for (mime, content) in std::mem::take(&mut self.held) {
            self.emit(&format!("{EVCXR_BEGIN}{mime}"));
            for l in content.split('\n') {
                self.emit(l);
            }
            self.emit(EVCXR_END);
        }
        self.held_since = None;
        if let Some((line, _)) = self.completion.take() {
            self.emit(&line);
        }
    }

    /// Blocks followed by more output were displays made while the cell ran.
    fn release_held_as_live(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.held_since = None;
        for group in group_displays(held) {
            let data: serde_json::Map<String, serde_json::Value> = group
                .into_iter()
                .map(|(mime, content)| (mime, mime_value(content)))
                .collect();
            let json = serde_json::json!({ "data": data });
            self.emit(&format!("{DISPLAY}{json}"));
        }
    }

    fn emit(&self, line: &str) {
        write_line(&self.out, line);
    }
}

/// Consecutive blocks of distinct MIME types are one display (evcxr prints text/plain and
/// text/html of one value back to back); a repeated type starts the next display.
fn group_displays(blocks: Vec<(String, String)>) -> Vec<Vec<(String, String)>> {
    let mut groups: Vec<Vec<(String, String)>> = Vec::new();
    for (mime, content) in blocks {
        match groups.last_mut() {
            Some(group) if !group.iter().any(|(m, _)| *m == mime) => group.push((mime, content)),
            _ => groups.push(vec![(mime, content)]),
        }
    }
    groups
}

fn mime_value(content: String) -> serde_json::Value {
    serde_json::Value::String(content)
}

/// Whether `fd` has something to read before `timeout` (`None`: wait as long as it takes).
/// Waits until `fd` is readable (data or end of file), `wake` is written to (what was
/// written there is read and dropped) or `timeout` passes; true when `fd` is readable.
fn wait_readable_or_woken(fd: impl AsFd, wake: &OwnedFd, timeout: Option<Duration>) -> bool {
    let mut fds = [
        PollFd::new(&fd, PollFlags::IN),
        PollFd::new(wake, PollFlags::IN),
    ];
    // A timeout too long for a timespec waits without one: the same in practice.
    let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
    loop {
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) => break,
            Err(Errno::INTR) => continue,
            Err(_) => return true, // let read() report the error
        }
    }
    if !fds[1].revents().is_empty() {
        let mut drained = [0u8; 64];
        while rustix::io::read(wake, &mut drained).is_ok_and(|n| n > 0) {}
    }
    !fds[0].revents().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_read_back_as_the_moment_they_were_taken() {
        let before = Instant::now();
        let line = stamped(RUN_START);
        std::thread::sleep(Duration::from_millis(30));
        let stamp = line.strip_prefix(RUN_START).unwrap();
        let at = stamp_instant(stamp).expect("a stamp");
        assert!(at >= before, "stamp read back before it was taken");
        assert!(
            at.elapsed() >= Duration::from_millis(30),
            "stamp read back as the moment of reading"
        );
        assert_eq!(stamp_instant(""), None);
        assert_eq!(stamp_instant("soon"), None);
    }

    #[test]
    fn a_pipe_is_readable_once_written_or_closed_and_a_wake_ends_the_wait() {
        let (wake_read, wake_write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).unwrap();
        let wait = |fd: &OwnedFd, timeout| wait_readable_or_woken(fd, &wake_read, timeout);
        let (read, write) = pipe_with(PipeFlags::CLOEXEC).unwrap();
        let short = Some(Duration::from_millis(20));
        assert!(!wait(&read, short), "an empty pipe is not readable");
        rustix::io::write(&wake_write, &[1, 1]).unwrap();
        let started = Instant::now();
        assert!(!wait(&read, None), "a wake is not data");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the wake ended the wait"
        );
        assert!(!wait(&read, short), "the wake was drained");
        let mut write = File::from(write);
        write.write_all(b"x").unwrap();
        assert!(wait(&read, short), "a written pipe is readable");
        assert!(wait(&read, None), "no timeout waits until readable");
        let (read, write) = pipe_with(PipeFlags::CLOEXEC).unwrap();
        drop(write);
        assert!(wait(&read, short), "end-of-file is readable");
    }

    #[test]
    fn splitter_keeps_partial_lines() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"ab\ncd"), vec!["ab".to_string()]);
        assert_eq!(s.push(b"e\n"), vec!["cde".to_string()]);
        assert!(s.push(b"").is_empty());
    }

    #[test]
    fn groups_split_on_repeated_mime() {
        let blocks = vec![
            ("text/plain".into(), "a".into()),
            ("text/html".into(), "<b>a</b>".into()),
            ("text/plain".into(), "b".into()),
        ];
        let groups = group_displays(blocks);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].len(), 2);
    }
}
