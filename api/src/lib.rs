//! `rustmeter` for notebook cells: the telemetry of earlier cells, notes attached to the
//! current one, and rich output, without any dependency (it works offline).
//!
//! ```no_run
//! let t = rustmeter::last().unwrap();          // the previous cell
//! assert!(t.threads_peak <= t.threads_start + 4, "use tasks, not threads");
//! rustmeter::note("N", 1000);                  // shown with this cell's telemetry
//! rustmeter::html("<b>done</b>");              // display_data, at once
//! ```
//!
//! The kernel writes each finished cell's figures to `$RUSTMETER_TELEMETRY_DIR/last.txt`
//! and labelled ones to `$RUSTMETER_LABELS_DIR/NAME.txt` (one `key value` per line); this
//! crate reads them. Output goes through marker lines on stdout that the kernel turns
//! into Jupyter messages.

use std::collections::BTreeMap;
use std::io::Write;

pub mod demo;
#[doc(hidden)]
pub mod markers;

use markers::{CLEAR as MARK_CLEAR, DISPLAY as MARK_DISPLAY, NOTE as MARK_NOTE};

/// The figures of one finished cell (see the footer for what each means).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Telemetry {
    pub status: String,
    pub label: Option<String>,
    pub run_ms: f64,
    pub compile_ms: f64,
    pub queue_ms: f64,
    pub wall_ms: f64,
    pub cpu_ms: f64,
    /// `None` when nothing ran.
    pub cpu_cores: Option<f64>,
    /// Cores other programs kept busy while the cell ran (`None` for runs under 0.1 s).
    /// On a busy machine, compare `cpu_cores` with [`Telemetry::cores_free`], not with
    /// the machine's core count.
    pub other_cores: Option<f64>,
    pub rss_start_bytes: u64,
    pub rss_end_bytes: u64,
    pub rss_peak_bytes: u64,
    pub threads_start: u64,
    pub threads_end: u64,
    pub threads_peak: u64,
    /// The process that ran the cell's code (0 when the kernel did not say).
    pub pid: u32,
    /// Notes the cell attached with [`note`].
    pub notes: BTreeMap<String, String>,
    /// The shared tokio runtime during the cell; `None` before tokio is declared.
    pub runtime: Option<Runtime>,
}

/// The shared tokio runtime during one cell (the footer's `tasks` field).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Runtime {
    pub workers: u64,
    pub tasks_start: u64,
    pub tasks_peak: u64,
    pub tasks_end: u64,
    /// Tasks spawned while the cell ran (`tokio::spawn`, `JoinSet`, `Handle::spawn`).
    pub tasks_spawned: u64,
    pub blocking_threads_peak: u64,
    /// `spawn_blocking` tasks (and tokio's own) that ended while the cell ran.
    pub blocking_tasks: u64,
    /// Share of the workers' time spent running tasks (0–1); `None` for short runs.
    pub workers_busy: Option<f64>,
    pub longest_poll_ms: f64,
    pub stalls: Vec<Stall>,
}

/// One poll that held a runtime worker longer than the stall threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stall {
    pub duration_ms: f64,
    /// The cell line of the `spawn` that made the task, when the same cell spawned it.
    pub spawned_at_line: Option<u32>,
}

impl Telemetry {
    /// Threads the cell started beyond those running before it (at most at once).
    pub fn threads_added(&self) -> u64 {
        self.threads_peak.saturating_sub(self.threads_start)
    }

    /// Cores the cell could have used: this machine's cores minus those other programs
    /// kept busy while it ran (at least 1).
    pub fn cores_free(&self) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        (cores - self.other_cores.unwrap_or(0.0)).max(1.0)
    }

    /// Whether the cell's code ran in this process: this kernel, since its last restart.
    /// Labelled figures are kept across kernels; a result from an earlier one is not this
    /// session's work.
    pub fn ran_here(&self) -> bool {
        self.pid != 0 && self.pid == std::process::id()
    }

    /// Memory the cell took at its peak, above where it started.
    pub fn peak_growth_bytes(&self) -> u64 {
        self.rss_peak_bytes.saturating_sub(self.rss_start_bytes)
    }

    /// Most tasks alive at once on the shared runtime (0 without one).
    pub fn tasks_peak(&self) -> u64 {
        self.runtime.as_ref().map_or(0, |r| r.tasks_peak)
    }

    /// Tasks spawned onto the shared runtime while the cell ran (0 without one).
    pub fn tasks_spawned(&self) -> u64 {
        self.runtime.as_ref().map_or(0, |r| r.tasks_spawned)
    }

    /// The longest single poll of any task while the cell ran, in ms (0 without a runtime).
    pub fn longest_poll_ms(&self) -> f64 {
        self.runtime.as_ref().map_or(0.0, |r| r.longest_poll_ms)
    }

    /// Polls that held a worker past the stall threshold (none without a runtime).
    pub fn stalls(&self) -> Vec<Stall> {
        self.runtime
            .as_ref()
            .map(|r| r.stalls.clone())
            .unwrap_or_default()
    }

    fn runtime_line(&mut self, key: &str, value: &str) {
        let r = self.runtime.get_or_insert_with(Runtime::default);
        let num = || value.trim().parse::<f64>().unwrap_or(0.0);
        match key {
            "workers" => r.workers = num() as u64,
            "tasks_start" => r.tasks_start = num() as u64,
            "tasks_peak" => r.tasks_peak = num() as u64,
            "tasks_end" => r.tasks_end = num() as u64,
            "tasks_spawned" => r.tasks_spawned = num() as u64,
            "blocking_threads_peak" => r.blocking_threads_peak = num() as u64,
            "blocking_tasks" => r.blocking_tasks = num() as u64,
            "workers_busy" => r.workers_busy = value.trim().parse().ok(),
            "longest_poll_ms" => r.longest_poll_ms = num(),
            "stall" => {
                let mut words = value.split_whitespace();
                let duration_ms = words.next().and_then(|w| w.parse().ok()).unwrap_or(0.0);
                let spawned_at_line = words.next().and_then(|w| w.parse().ok());
                r.stalls.push(Stall {
                    duration_ms,
                    spawned_at_line,
                });
            }
            _ => {}
        }
    }

    /// Parses the kernel's `key value` lines.
    pub fn parse(text: &str) -> Telemetry {
        let mut t = Telemetry::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(' ') else {
                continue;
            };
            let num = || value.trim().parse::<f64>().unwrap_or(0.0);
            match key {
                "status" => t.status = value.to_string(),
                "label" => t.label = Some(value.to_string()),
                "run_ms" => t.run_ms = num(),
                "compile_ms" => t.compile_ms = num(),
                "queue_ms" => t.queue_ms = num(),
                "wall_ms" => t.wall_ms = num(),
                "cpu_ms" => t.cpu_ms = num(),
                "cpu_cores" => t.cpu_cores = value.trim().parse().ok(),
                "other_cores" => t.other_cores = value.trim().parse().ok(),
                "rss_start_bytes" => t.rss_start_bytes = num() as u64,
                "rss_end_bytes" => t.rss_end_bytes = num() as u64,
                "rss_peak_bytes" => t.rss_peak_bytes = num() as u64,
                "threads_start" => t.threads_start = num() as u64,
                "threads_end" => t.threads_end = num() as u64,
                "threads_peak" => t.threads_peak = num() as u64,
                "pid" => t.pid = num() as u32,
                k if k.starts_with("runtime.") => t.runtime_line(&k["runtime.".len()..], value),
                k if k.starts_with("note.") => {
                    t.notes
                        .insert(k["note.".len()..].to_string(), value.to_string());
                }
                _ => {}
            }
        }
        t
    }
}

fn read(dir_var: &str, file: &str) -> Option<Telemetry> {
    let dir = std::env::var_os(dir_var)?;
    let text = std::fs::read_to_string(std::path::Path::new(&dir).join(file)).ok()?;
    Some(Telemetry::parse(&text))
}

/// The telemetry of the cell that ran before this one.
pub fn last() -> Option<Telemetry> {
    read("RUSTMETER_TELEMETRY_DIR", "last.txt")
}

/// The telemetry of the last cell labelled `name` (`:label NAME`), in this or an
/// earlier notebook.
pub fn cell(name: &str) -> Option<Telemetry> {
    if name.is_empty() || name.contains(['/', '\\', '\0']) || name.starts_with('.') {
        return None;
    }
    read("RUSTMETER_LABELS_DIR", &format!("{name}.txt"))
}

/// The telemetry of the last cell labelled `name` that ran in this kernel (since its last
/// restart): what a self-check grades, so that a result kept from an earlier kernel
/// never passes for this session's work.
pub fn labelled_here(name: &str) -> Option<Telemetry> {
    cell(name).filter(Telemetry::ran_here)
}

/// A self-check line for exercises: prints `✓ measured` when `passed`, else
/// `✗ measured` and the hint. Returns `passed`. It never panics, so "Run All" goes on.
///
/// ```no_run
/// let t = rustmeter::last().unwrap();
/// rustmeter::check(t.run_ms < 600.0, format!("run {:.0} ms (needed < 600 ms)", t.run_ms),
///                  "each request waited for the one before: start them all, then await");
/// ```
pub fn check(passed: bool, measured: impl std::fmt::Display, hint: impl std::fmt::Display) -> bool {
    if passed {
        println!("✓ {measured}");
    } else {
        println!("✗ {measured}\n  hint: {hint}");
    }
    passed
}

/// Attaches a parameter to the current cell's telemetry (shown by `:compare`).
pub fn note(key: &str, value: impl std::fmt::Display) {
    let line = format!(
        "{MARK_NOTE}{{\"key\":{},\"value\":{}}}",
        json_string(key),
        json_string(&value.to_string())
    );
    emit(&line);
}

/// Shows `content` of MIME type `mime` now, while the cell runs.
pub fn display(mime: &str, content: &str) {
    emit(&format!(
        "{MARK_DISPLAY}{{\"data\":{{{}:{}}}}}",
        json_string(mime),
        json_string(content)
    ));
}

/// Shows HTML now.
pub fn html(content: &str) {
    display("text/html", content)
}

/// Shows `content` under `id`; a later call with the same id and `update = true`
/// replaces it in place.
pub fn display_with_id(id: &str, mime: &str, content: &str, update: bool) {
    emit(&format!(
        "{MARK_DISPLAY}{{\"data\":{{{}:{}}},\"display_id\":{},\"update\":{update}}}",
        json_string(mime),
        json_string(content),
        json_string(id)
    ));
}

/// Clears this cell's output; with `wait`, only when the next output arrives.
pub fn clear_output(wait: bool) {
    emit(&format!("{MARK_CLEAR}{{\"wait\":{wait}}}"));
}

/// True once the learner pressed interrupt (■) while this cell runs. Blocking code that
/// checks it in its loops can stop by itself, and the kernel then keeps every variable;
/// code that never checks is killed after a short grace period, losing them.
///
/// ```no_run
/// let mut n = 0u64;
/// while !rustmeter::interrupted() { n += 1; }
/// ```
///
/// The kernel passes a pipe (`RUSTMETER_INTERRUPT_FD`) that it writes to on interrupt and
/// empties before the next cell; this only polls it, so every check sees the interrupt.
/// Outside the kernel it is always false. Each call is one `poll` system call (well under
/// a microsecond): in a very hot loop, check every few thousand iterations.
pub fn interrupted() -> bool {
    #[repr(C)]
    struct PollFd {
        fd: std::ffi::c_int,
        events: std::ffi::c_short,
        revents: std::ffi::c_short,
    }
    extern "C" {
        fn poll(
            fds: *mut PollFd,
            nfds: std::ffi::c_ulong,
            timeout: std::ffi::c_int,
        ) -> std::ffi::c_int;
    }
    const POLLIN: std::ffi::c_short = 0x1;
    static FD: std::sync::OnceLock<Option<std::ffi::c_int>> = std::sync::OnceLock::new();
    let Some(fd) = *FD.get_or_init(|| std::env::var("RUSTMETER_INTERRUPT_FD").ok()?.parse().ok())
    else {
        return false;
    };
    let mut entry = PollFd {
        fd,
        events: POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting; poll only writes `revents`.
    unsafe { poll(&mut entry, 1, 0) > 0 && entry.revents & POLLIN != 0 }
}

/// Asks for a secret: in the kernel, the client's input box hides what is typed (an
/// `input_request` with `password: true`); the line read is returned without its line
/// end. Outside the kernel it reads a line from stdin, shown as typed.
///
/// Ordinary reads of stdin (`std::io::stdin().read_line`) need nothing from this crate:
/// the kernel asks the client whenever the cell's code waits on stdin.
///
/// ```no_run
/// let token = rustmeter::read_password("token: ").unwrap();
/// ```
pub fn read_password(prompt: &str) -> std::io::Result<String> {
    if std::env::var_os("EVCXR_IS_RUNTIME").is_some() {
        emit(&format!(
            "EVCXR_INPUT_REQUEST_PASSWORD:{}{}",
            markers::STDIN_READ,
            markers::escape_prompt(prompt)
        ));
    } else {
        print!("{prompt}");
        std::io::stdout().flush()?;
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let end = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(end);
    Ok(line)
}

fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_lines() {
        let t = Telemetry::parse("status ok\nrun_ms 210.5\ncpu_cores 1.9\nthreads_start 4\nthreads_peak 104\nnote.N 100\nlabel tasks\n");
        assert_eq!(t.status, "ok");
        assert_eq!(t.run_ms, 210.5);
        assert_eq!(t.cpu_cores, Some(1.9));
        assert_eq!(t.threads_added(), 100);
        assert_eq!(t.notes["N"], "100");
        assert_eq!(t.label.as_deref(), Some("tasks"));
        assert_eq!(Telemetry::parse("cpu_cores null").cpu_cores, None);
        let busy = Telemetry::parse("other_cores 0.75\n");
        assert_eq!(busy.other_cores, Some(0.75));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert_eq!(busy.cores_free(), (cores - 0.75).max(1.0));
        assert_eq!(t.other_cores, None);
        let mine = Telemetry::parse(&format!("pid {}\n", std::process::id()));
        assert!(mine.ran_here());
        assert!(!Telemetry::parse("pid 1\n").ran_here() && !t.ran_here());
        assert_eq!(t.runtime, None);
        assert_eq!(t.tasks_peak(), 0);
        let t = Telemetry::parse(
            "runtime.tasks_peak 2000\nruntime.tasks_spawned 2000\nruntime.longest_poll_ms 801.5\n\
             runtime.stall 801.5 3\nruntime.stall 120 -\nruntime.workers_busy null\n",
        );
        assert_eq!((t.tasks_peak(), t.tasks_spawned()), (2000, 2000));
        assert_eq!(t.longest_poll_ms(), 801.5);
        assert_eq!(
            t.stalls(),
            vec![
                Stall {
                    duration_ms: 801.5,
                    spawned_at_line: Some(3)
                },
                Stall {
                    duration_ms: 120.0,
                    spawned_at_line: None
                }
            ]
        );
    }

    #[test]
    fn not_interrupted_outside_the_kernel() {
        assert!(!interrupted());
    }

    #[test]
    fn json_strings_escape() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    #[test]
    fn unsafe_label_names_are_refused() {
        assert!(cell("../etc/passwd").is_none());
        assert!(cell("").is_none());
    }
}
