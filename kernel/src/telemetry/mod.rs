//! Telemetry of one cell: what the user's code did to the machine.
//!
//! `sampler` measures a process (the user-code child) into plain data; `render` turns
//! that data into a text line, HTML with sparklines, and JSON. This module knows nothing
//! of Jupyter or evcxr: the server decides when to measure and where to show it.

pub mod render;
pub mod repeat;
pub mod runtime;
pub mod sampler;
pub mod usage;

use serde::{Deserialize, Serialize};

/// Version of the JSON layout below; bump when a field changes meaning.
pub const VERSION: u32 = 1;

/// How a cell ended, as the footer tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellStatus {
    Ok,
    Error,
    Panic,
    Interrupted,
    Crashed,
}

/// One point of the time series (after the user's code started).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t_ms: f64,
    /// CPU cores busy over the window ending at `t_ms` (≥ 50 ms).
    pub cpu_cores: f64,
    pub rss_bytes: u64,
    pub threads: u64,
    /// Tasks alive on the shared runtime at `t_ms`; absent while there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u64>,
    /// Share of the runtime workers' time spent polling tasks over the window (0–1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers_busy: Option<f64>,
}

/// Everything measured about one cell. Flat keys with units, as the JSON shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellTelemetry {
    pub version: u32,
    pub status: CellStatus,
    /// Waiting behind other cells or for the kernel's start-up.
    pub queue_ms: f64,
    pub compile_ms: f64,
    /// The user's code only: the headline.
    pub run_ms: f64,
    pub wall_ms: f64,
    pub cpu_ms: f64,
    /// `cpu_ms / run_ms`; null when nothing ran or the run was too short to tell (< 50 ms).
    pub cpu_cores: Option<f64>,
    pub compile_cpu_ms: f64,
    pub rss_start_bytes: u64,
    pub rss_end_bytes: u64,
    pub rss_peak_bytes: u64,
    pub threads_start: u64,
    pub threads_end: u64,
    pub threads_peak: u64,
    /// Threads that belonged to the runtime before the cell (evcxr, tokio, relays).
    pub threads_runtime: u64,
    pub samples: Vec<Sample>,
    pub label: Option<String>,
    pub notes: serde_json::Map<String, serde_json::Value>,
    /// Cores that other programs kept busy while the cell ran; null for short runs.
    /// A busy machine makes run times and core counts not comparable.
    pub other_cores: Option<f64>,
    /// Run time of the previous run of this same cell, for "was 2.0 s".
    pub previous_run_ms: Option<f64>,
    pub pid: u32,
    /// Where `compile_ms` went; null when nothing was compiled or it was not measured.
    #[serde(default)]
    pub compile_parts: Option<CompileParts>,
    /// The shared tokio runtime during the cell; absent before tokio is declared, with
    /// `RUSTMETER_SHARED_DEPS=off`, and for cells none of whose code ran on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<runtime::RuntimeFigures>,
    /// The kernel's start-up work the cell waited for; absent when it waited for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_up: Option<WarmUpWait>,
    /// `:repeat N`: every run and the spread; the headline figures above are then the
    /// medians of the runs that ended well. Absent for a cell run once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<repeat::Repeated>,
    /// tokio threads that runtimes other than the cells' shared one (a learner's own
    /// `Runtime::new()`; evcxr's, with shared dependencies off) added during the cell and
    /// kept at its end. Absent when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_runtime_threads_started: Option<u64>,
    /// Threads of the shared runtime at the cell's end, whether or not the cell used it:
    /// what tells them from other runtimes' threads (not shown).
    #[serde(skip)]
    pub shared_runtime_threads: Option<u64>,
}

/// What a cell sent during the kernel's start-up waited for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmUpWait {
    /// The part of `queue_ms` spent waiting for the start-up.
    pub waited_ms: f64,
    /// Every step of that start-up with its whole wall time, in order (some may have
    /// run before the cell was sent): `[name, ms]` pairs.
    pub steps: Vec<(String, f64)>,
}

/// A cell's compile time split by what the build reported. The parts add up to
/// `compile_ms`: `other_ms` is what no build step accounts for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompileParts {
    /// Dependency crates, first start to last end: cache restores and rustc runs.
    pub deps_ms: f64,
    /// rustc on the cell's crate, without its link.
    pub rustc_ms: f64,
    /// Linking the cell's crate (a shared library).
    pub link_ms: f64,
    /// From the cell crate's build end to its code starting: cargo finishing, the
    /// library loaded into the process that runs it.
    pub load_ms: f64,
    /// The rest: the crate written, cargo's metadata, resolve and freshness checks,
    /// and the work after the code ran.
    pub other_ms: f64,
    /// rustc runs of the cell's crate (a cell can be built more than once).
    pub cell_builds: u32,
}

impl CellTelemetry {
    /// A cell whose code never ran (compile error, refused command): times only.
    pub fn not_run(
        status: CellStatus,
        queue_ms: f64,
        compile_ms: f64,
        compile_cpu_ms: f64,
    ) -> Self {
        CellTelemetry {
            version: VERSION,
            status,
            queue_ms,
            compile_ms,
            run_ms: 0.0,
            wall_ms: queue_ms + compile_ms,
            cpu_ms: 0.0,
            cpu_cores: None,
            compile_cpu_ms,
            rss_start_bytes: 0,
            rss_end_bytes: 0,
            rss_peak_bytes: 0,
            threads_start: 0,
            threads_end: 0,
            threads_peak: 0,
            threads_runtime: 0,
            samples: Vec::new(),
            label: None,
            notes: Default::default(),
            other_cores: None,
            previous_run_ms: None,
            pid: 0,
            compile_parts: None,
            runtime: None,
            warm_up: None,
            repeat: None,
            other_runtime_threads_started: None,
            shared_runtime_threads: None,
        }
    }

    pub fn ran(&self) -> bool {
        self.run_ms > 0.0
    }

    /// `key value` lines: what the dependency-free `rustmeter` crate in cells reads.
    pub fn to_lines(&self) -> String {
        let status = serde_json::to_value(self.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string));
        let mut out = format!("status {}\n", status.unwrap_or_default());
        if let Some(label) = &self.label {
            out.push_str(&format!("label {label}\n"));
        }
        let numbers = [
            ("run_ms", self.run_ms),
            ("compile_ms", self.compile_ms),
            ("queue_ms", self.queue_ms),
            ("wall_ms", self.wall_ms),
            ("cpu_ms", self.cpu_ms),
            ("rss_start_bytes", self.rss_start_bytes as f64),
            ("rss_end_bytes", self.rss_end_bytes as f64),
            ("rss_peak_bytes", self.rss_peak_bytes as f64),
            ("threads_start", self.threads_start as f64),
            ("threads_end", self.threads_end as f64),
            ("threads_peak", self.threads_peak as f64),
        ];
        for (key, value) in numbers {
            out.push_str(&format!("{key} {value}\n"));
        }
        match self.cpu_cores {
            Some(c) => out.push_str(&format!("cpu_cores {c}\n")),
            None => out.push_str("cpu_cores null\n"),
        }
        if let Some(others) = self.other_cores {
            out.push_str(&format!("other_cores {others}\n"));
        }
        if self.pid != 0 {
            // Lets a cell tell a result of this process from one kept by an earlier kernel.
            out.push_str(&format!("pid {}\n", self.pid));
        }
        if let Some(r) = &self.runtime {
            out.push_str(&r.to_lines());
        }
        if let Some(r) = &self.repeat {
            out.push_str(&format!("repeat_runs {}\n", r.runs.len()));
            if let Some(run_ms) = r.run_ms {
                out.push_str(&format!(
                    "repeat_run_ms_min {}\nrepeat_run_ms_max {}\n",
                    run_ms.min, run_ms.max
                ));
            }
        }
        if let Some(added) = self.other_runtime_threads_started {
            out.push_str(&format!("other_runtime_threads_started {added}\n"));
        }
        for (key, value) in &self.notes {
            let value = value
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            out.push_str(&format!("note.{key} {}\n", value.replace('\n', " ")));
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
