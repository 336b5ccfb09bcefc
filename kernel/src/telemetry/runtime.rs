//! The shared tokio runtime of the user-code process, as its runtime page shows it.
//!
//! The tokio shim's task hooks keep counters in `<telemetry dir>/runtime.<pid>` (layout:
//! `kernel/shim/runtime_page.rs`, compiled here and into the shim). This module reads that
//! page with `pread` — never a mapping, so a page the cell's own code truncates or
//! scribbles on gives wrong figures or none, never a fault in the kernel — and turns two
//! readings into one cell's [`RuntimeFigures`]. It knows nothing of Jupyter or of how the
//! figures are shown.

#[path = "../../shim/runtime_page.rs"]
#[allow(dead_code)]
mod page;

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Where one process's page is, and the file once it exists (the shim makes it when the
/// runtime is built, inside the cell that declares tokio).
pub struct RuntimePage {
    path: PathBuf,
    pid: u32,
    file: Option<File>,
    /// The cell sequence number the kernel saw at the end of an earlier cell of this
    /// process: a reading at this cell's start can come late, after the cell began.
    seen_seq: Option<u64>,
}

/// One reading of the page: every slot.
#[derive(Debug, Clone)]
pub struct PageReading {
    slots: Vec<u64>,
}

/// One poll that held a worker past the stall threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    pub duration_ms: f64,
    /// The cell line of the `spawn` that made the task, when this cell spawned it from its
    /// own code.
    pub spawned_at_line: Option<u32>,
    /// The task was spawned by an earlier cell (its line is not this cell's).
    pub spawned_by_earlier_cell: bool,
}

/// The runtime during one cell. Tasks are the runtime's (`tokio::spawn`, `JoinSet`,
/// `Handle::spawn`); blocking tasks are `spawn_blocking`'s and tokio's own (files, DNS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeFigures {
    pub workers: u64,
    pub tasks_start: u64,
    pub tasks_peak: u64,
    pub tasks_end: u64,
    pub tasks_spawned: u64,
    pub blocking_threads_start: u64,
    pub blocking_threads_peak: u64,
    pub blocking_threads_end: u64,
    pub blocking_tasks: u64,
    /// Share of the workers' time spent polling tasks while the cell ran (0–1); null for
    /// runs too short to tell.
    pub workers_busy: Option<f64>,
    pub longest_poll_ms: f64,
    pub stall_threshold_ms: f64,
    pub stalls: Vec<Stall>,
    /// More stalls happened than the page keeps (the oldest are not listed).
    pub stalls_not_listed: u64,
    /// The runtime was built during this cell (its workers are new threads).
    pub started_in_cell: bool,
    /// The runtime's number for this cell (not shown: what the next cell counts from).
    #[serde(skip)]
    pub cell_seq: u64,
}

impl RuntimePage {
    pub fn new(telemetry_dir: &Path, pid: u32) -> RuntimePage {
        RuntimePage {
            path: telemetry_dir.join(format!("runtime.{pid}")),
            pid,
            file: None,
            seen_seq: None,
        }
    }

    /// With the sequence number seen at an earlier cell's end (see `seen_seq`).
    pub fn with_seen(mut self, seq: Option<u64>) -> RuntimePage {
        self.seen_seq = seq;
        self
    }

    pub fn seen_seq(&self) -> Option<u64> {
        self.seen_seq
    }

    /// The page now; `None` before the runtime exists, or when the page is not this
    /// process's or not whole.
    pub fn read(&mut self) -> Option<PageReading> {
        if self.file.is_none() {
            self.file = open_private(&self.path);
        }
        let file = self.file.as_ref()?;
        let mut bytes = vec![0u8; page::BYTES];
        file.read_exact_at(&mut bytes, 0).ok()?;
        let slots: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let whole = slots[page::MAGIC] == page::MAGIC_VALUE
            && slots[page::PID] == u64::from(self.pid)
            && slots[page::WORKERS] > 0;
        whole.then_some(PageReading { slots })
    }
}

/// Opens the page without following a link and only when this user owns it: the
/// telemetry folder is private, but a page is data the kernel trusts for numbers only.
fn open_private(path: &Path) -> Option<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    let mine = meta.uid() == unsafe { libc::geteuid() };
    (mine && meta.is_file()).then_some(file)
}

impl PageReading {
    fn get(&self, slot: usize) -> u64 {
        self.slots[slot]
    }

    pub fn cell_seq(&self) -> u64 {
        self.get(page::CELL_SEQ)
    }

    pub fn workers(&self) -> u64 {
        self.get(page::WORKERS)
    }

    /// Tasks alive now.
    pub fn tasks_alive(&self) -> u64 {
        self.get(page::SPAWNED)
            .saturating_sub(self.get(page::ENDED))
    }

    pub fn busy_ns(&self) -> u64 {
        self.get(page::BUSY_NS)
    }

    pub fn blocking_threads(&self) -> u64 {
        self.get(page::THREADS_ALIVE)
            .saturating_sub(self.get(page::WORKERS))
    }

    /// Threads the runtime has now: workers and the blocking pool.
    pub fn threads(&self) -> u64 {
        self.get(page::THREADS_ALIVE)
    }

    fn stall(&self, n: u64) -> Option<Stall> {
        let entry = page::STALL_BASE + (n as usize % page::STALL_RING) * page::STALL_WORDS;
        let duration_ns = self.get(entry + page::STALL_DURATION_NS);
        let seq = self.get(entry + page::STALL_SPAWN_SEQ);
        let line = self.get(entry + page::STALL_SPAWN_LINE);
        let this_cell = seq == self.cell_seq();
        let whole = self.get(entry + page::STALL_TAG) == n + 1;
        (whole && duration_ns > 0).then(|| Stall {
            duration_ms: duration_ns as f64 / 1e6,
            spawned_at_line: (this_cell && line > 0).then(|| line.min(u64::from(u32::MAX)) as u32),
            spawned_by_earlier_cell: seq != 0 && !this_cell,
        })
    }

    /// The figures of the cell that ran after the runtime's cell number `prior_seq` (as
    /// the kernel saw it before this cell; `None` when the runtime did not exist yet) up
    /// to this reading; `None` when no cell ran through the runtime in between (nothing
    /// of the cell's ran on it).
    pub fn cell_figures(&self, prior_seq: Option<u64>, run_ms: f64) -> Option<RuntimeFigures> {
        if prior_seq.is_some_and(|seq| seq >= self.cell_seq()) || self.cell_seq() == 0 {
            return None;
        }
        let g = |slot| self.get(slot);
        let workers = g(page::WORKERS);
        let busy_ns = g(page::BUSY_NS).saturating_sub(g(page::CELL_BUSY_NS0));
        let workers_busy = (run_ms >= 50.0 && workers > 0)
            .then(|| (busy_ns as f64 / 1e6 / (run_ms * workers as f64)).clamp(0.0, 1.0));
        let stalls_total = g(page::STALLS);
        let first = g(page::CELL_STALLS0);
        let listed_from = first.max(stalls_total.saturating_sub(page::STALL_RING as u64));
        let tasks_start = g(page::CELL_SPAWNED0).saturating_sub(g(page::CELL_ENDED0));
        let tasks_end = self.tasks_alive();
        Some(RuntimeFigures {
            workers,
            tasks_start,
            tasks_peak: g(page::CELL_TASKS_PEAK).max(tasks_start).max(tasks_end),
            tasks_end,
            tasks_spawned: g(page::SPAWNED).saturating_sub(g(page::CELL_SPAWNED0)),
            blocking_threads_start: g(page::CELL_BLOCKING_THREADS0),
            blocking_threads_peak: g(page::CELL_BLOCKING_THREADS_PEAK).max(self.blocking_threads()),
            blocking_threads_end: self.blocking_threads(),
            blocking_tasks: g(page::BLOCKING_ENDED).saturating_sub(g(page::CELL_BLOCKING_ENDED0)),
            workers_busy,
            longest_poll_ms: g(page::CELL_LONGEST_POLL_NS) as f64 / 1e6,
            stall_threshold_ms: g(page::STALL_NS) as f64 / 1e6,
            stalls: (listed_from..stalls_total)
                .filter_map(|n| self.stall(n))
                .collect(),
            stalls_not_listed: listed_from - first,
            started_in_cell: g(page::STARTED_IN_SEQ) == self.cell_seq(),
            cell_seq: self.cell_seq(),
        })
    }
}

impl RuntimeFigures {
    /// `runtime.key value` lines for the `rustmeter` crate's `last()` (see `to_lines`).
    pub fn to_lines(&self) -> String {
        let mut out = String::new();
        let numbers = [
            ("workers", self.workers as f64),
            ("tasks_start", self.tasks_start as f64),
            ("tasks_peak", self.tasks_peak as f64),
            ("tasks_end", self.tasks_end as f64),
            ("tasks_spawned", self.tasks_spawned as f64),
            ("blocking_threads_peak", self.blocking_threads_peak as f64),
            ("blocking_tasks", self.blocking_tasks as f64),
            ("longest_poll_ms", self.longest_poll_ms),
        ];
        for (key, value) in numbers {
            out.push_str(&format!("runtime.{key} {value}\n"));
        }
        match self.workers_busy {
            Some(b) => out.push_str(&format!("runtime.workers_busy {b}\n")),
            None => out.push_str("runtime.workers_busy null\n"),
        }
        for stall in &self.stalls {
            let line = stall
                .spawned_at_line
                .map_or("-".to_string(), |l| l.to_string());
            out.push_str(&format!("runtime.stall {} {line}\n", stall.duration_ms));
        }
        out
    }

    /// Stalls carry the line of the cell's generated crate that spawned their task;
    /// `cell_line` makes it the cell's own line (or `None` when it is not one of them).
    pub fn map_spawn_lines(&mut self, cell_line: impl Fn(u32) -> Option<u32>) {
        for stall in &mut self.stalls {
            stall.spawned_at_line = stall.spawned_at_line.and_then(&cell_line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(set: &[(usize, u64)]) -> PageReading {
        let mut slots = vec![0u64; page::SLOTS];
        slots[page::MAGIC] = page::MAGIC_VALUE;
        slots[page::WORKERS] = 2;
        for (slot, value) in set {
            slots[*slot] = *value;
        }
        PageReading { slots }
    }

    #[test]
    fn a_cell_that_did_not_run_on_the_runtime_has_no_figures() {
        let before = reading(&[(page::CELL_SEQ, 3)]);
        let after = reading(&[(page::CELL_SEQ, 3)]);
        assert!(after.cell_figures(Some(before.cell_seq()), 100.0).is_none());
        let after = reading(&[(page::CELL_SEQ, 4)]);
        assert!(after.cell_figures(Some(before.cell_seq()), 100.0).is_some());
    }

    #[test]
    fn figures_count_from_the_cell_start_and_name_this_cells_stalls() {
        let entry = page::STALL_BASE + page::STALL_WORDS;
        let after = reading(&[
            (page::CELL_SEQ, 5),
            (page::SPAWNED, 2_010),
            (page::ENDED, 2_009),
            (page::CELL_SPAWNED0, 10),
            (page::CELL_ENDED0, 9),
            (page::CELL_TASKS_PEAK, 2_001),
            (page::BUSY_NS, 300_000_000),
            (page::CELL_BUSY_NS0, 100_000_000),
            (page::STALLS, 2),
            (page::CELL_STALLS0, 1),
            (entry + page::STALL_DURATION_NS, 800_000_000),
            (entry + page::STALL_SPAWN_SEQ, 5),
            (entry + page::STALL_SPAWN_LINE, 3),
            (entry + page::STALL_TAG, 2),
        ]);
        let f = after.cell_figures(None, 1_000.0).unwrap();
        assert_eq!((f.tasks_start, f.tasks_peak, f.tasks_end), (1, 2_001, 1));
        assert_eq!(f.tasks_spawned, 2_000);
        assert_eq!(f.workers_busy, Some(0.1));
        assert_eq!(
            f.stalls,
            vec![Stall {
                duration_ms: 800.0,
                spawned_at_line: Some(3),
                spawned_by_earlier_cell: false
            }]
        );
    }

    #[test]
    fn a_page_of_another_process_or_cut_short_is_not_read() {
        let dir = std::env::temp_dir().join(format!("rm-page-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid = std::process::id();
        let mut page = RuntimePage::new(&dir, pid);
        assert!(page.read().is_none(), "no file yet");
        let mut bytes = vec![0u8; page::BYTES];
        let mut put =
            |slot: usize, v: u64| bytes[slot * 8..slot * 8 + 8].copy_from_slice(&v.to_ne_bytes());
        put(page::MAGIC, page::MAGIC_VALUE);
        put(page::PID, u64::from(pid) + 1);
        put(page::WORKERS, 2);
        std::fs::write(dir.join(format!("runtime.{pid}")), &bytes).unwrap();
        assert!(page.read().is_none(), "another pid's page");
        let mut put =
            |slot: usize, v: u64| bytes[slot * 8..slot * 8 + 8].copy_from_slice(&v.to_ne_bytes());
        put(page::PID, u64::from(pid));
        std::fs::write(dir.join(format!("runtime.{pid}")), &bytes).unwrap();
        assert!(page.read().is_some());
        std::fs::write(dir.join(format!("runtime.{pid}")), &bytes[..100]).unwrap();
        assert!(page.read().is_none(), "cut short");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
