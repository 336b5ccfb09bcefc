//! Glue between a cell's life on the server and the telemetry module: when to start the
//! sampler, which moments are compile and which are run, and this kernel session's
//! telemetry state (the footer choice of `:telemetry`, `:label`, previous runs). Holds
//! no rendering logic.

use super::progress::BuildTimes;
use crate::engine::WarmUp;
use crate::telemetry::render::Mode;
use crate::telemetry::runtime::RuntimePage;
use crate::telemetry::sampler::{children_cpu_ms, LiveView, Sampler};
use crate::telemetry::{CellStatus, CellTelemetry, CompileParts, WarmUpWait, VERSION};
use crate::workdir::{replace_file, write_atomic};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The footer the learner chose (`:telemetry`): none, or one in a rendering mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FooterChoice {
    Off,
    On(Mode),
}

impl FooterChoice {
    pub fn parse(word: &str) -> Option<FooterChoice> {
        match word {
            "off" => Some(FooterChoice::Off),
            "on" | "full" => Some(FooterChoice::On(Mode::Full)),
            "compact" => Some(FooterChoice::On(Mode::Compact)),
            "big" => Some(FooterChoice::On(Mode::Big)),
            _ => None,
        }
    }

    /// `RUSTMETER_TELEMETRY` (kernelspec `env`), default full.
    pub fn from_env() -> FooterChoice {
        let word = crate::settings::word(&crate::settings::TELEMETRY);
        FooterChoice::parse(word).unwrap_or_else(|| {
            unreachable!("RUSTMETER_TELEMETRY's words are all footer styles, not {word:?}")
        })
    }
}

/// This kernel session's telemetry state: the footer choice, the last cell's telemetry,
/// labelled cells and each code's previous run time.
pub struct SessionTelemetry {
    /// `last.txt` for the `rustmeter` crate in cells.
    telemetry_dir: PathBuf,
    /// `NAME.txt` / `NAME.json` of labelled cells, kept per user across kernels.
    labels_dir: PathBuf,
    pub footer: FooterChoice,
    pub last: Option<CellTelemetry>,
    /// Run time of the last run of each cell's code.
    previous: HashMap<u64, f64>,
    /// A `:label` waiting for the next cell.
    pub pending_label: Option<String>,
    /// Labelled cells: those saved by earlier kernels, then this kernel's.
    pub labelled: Vec<CellTelemetry>,
    /// Labels given in this kernel: what a bare `:compare` shows.
    pub labelled_here: Vec<String>,
    /// (user-code pid, tokio threads not of the shared runtime) at the last count: what
    /// the next cell's "runtime started" counts from.
    pub other_runtime_threads: Option<(u32, u64)>,
}

impl SessionTelemetry {
    pub fn new(telemetry_dir: PathBuf, labels_dir: PathBuf) -> SessionTelemetry {
        let labelled = load_labels(&labels_dir);
        SessionTelemetry {
            telemetry_dir,
            labels_dir,
            footer: FooterChoice::from_env(),
            last: None,
            previous: HashMap::new(),
            pending_label: None,
            labelled,
            labelled_here: Vec::new(),
            other_runtime_threads: None,
        }
    }

    /// Remembers a finished cell and fills in what depends on earlier ones.
    pub fn record(&mut self, code: &str, telemetry: &mut CellTelemetry) {
        let key = code_key(code);
        if telemetry.ran() {
            telemetry.previous_run_ms = self.previous.get(&key).copied();
            self.previous.insert(key, telemetry.run_ms);
        }
        if let Some(label) = &telemetry.label {
            self.labelled.retain(|t| t.label.as_deref() != Some(label));
            self.labelled.push(telemetry.clone());
            if !self.labelled_here.contains(label) {
                self.labelled_here.push(label.clone());
            }
            if safe_name(label) {
                let _ = write_atomic(
                    &self.labels_dir.join(format!("{label}.txt")),
                    &telemetry.to_lines(),
                );
                let json = serde_json::to_string(telemetry).unwrap_or_default();
                let _ = write_atomic(&self.labels_dir.join(format!("{label}.json")), &json);
            }
        }
        // Into the work folder only while it exists (see `replace_file`).
        let _ = replace_file(&self.telemetry_dir.join("last.txt"), &telemetry.to_lines());
        self.last = Some(telemetry.clone());
    }
}

/// Runs shorter than this get no core figure: the kernel counts CPU time in 10 ms clock
/// ticks, so 1 tick over a 1 ms run would read as "10 cores".
const CORES_MIN_RUN_MS: f64 = 50.0;

fn cores_over(ran: bool, cpu_ms: f64, run_ms: f64) -> Option<f64> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    (ran && run_ms >= CORES_MIN_RUN_MS).then(|| (cpu_ms / run_ms).min(cores))
}

fn safe_name(label: &str) -> bool {
    !label.is_empty() && !label.starts_with('.') && !label.contains(['/', '\\', '\0'])
}

/// Labelled results of earlier kernels, oldest first.
fn load_labels(dir: &Path) -> Vec<CellTelemetry> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, CellTelemetry)> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| {
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            let t = serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok()?;
            Some((modified, t))
        })
        .collect();
    found.sort_by_key(|(m, _)| *m);
    found.into_iter().map(|(_, t)| t).collect()
}

fn code_key(code: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    code.trim().hash(&mut h);
    h.finish()
}

/// Measures one cell from the moment it was received.
pub struct CellMeter {
    received: Instant,
    started: Option<Instant>,
    children_cpu_start: f64,
    sampler: Option<Sampler>,
    run_since: Option<Instant>,
    first_run: Option<Instant>,
    run_total: Duration,
    pid: u32,
    notes: serde_json::Map<String, serde_json::Value>,
    build: Option<BuildTimes>,
    warm_up: Option<WarmUp>,
    /// Time this meter itself spent on the cell's critical path (start and finish).
    pub overhead: Duration,
}

impl CellMeter {
    pub fn new(received: Instant) -> CellMeter {
        CellMeter {
            received,
            started: None,
            children_cpu_start: children_cpu_ms(),
            sampler: None,
            run_since: None,
            first_run: None,
            run_total: Duration::ZERO,
            pid: 0,
            notes: Default::default(),
            build: None,
            warm_up: None,
            overhead: Duration::ZERO,
        }
    }

    /// The engine took the cell; `pid` will run it, and `runtime_page` is where its
    /// shared runtime is measured. Without a page (telemetry off, silent requests) only
    /// times are kept.
    /// `warm_up` is the kernel's start-up work since the previous cell: the part of it
    /// after this cell was received is the wait the footer names.
    pub fn started(
        &mut self,
        pid: u32,
        runtime_page: Option<RuntimePage>,
        warm_up: Option<WarmUp>,
    ) {
        let now = Instant::now();
        self.started = Some(now);
        self.warm_up = warm_up;
        self.children_cpu_start = children_cpu_ms();
        self.pid = pid;
        if pid != 0 && runtime_page.is_some() {
            self.sampler = Some(Sampler::start(pid, runtime_page));
        }
        self.overhead += now.elapsed();
    }

    pub fn run_started(&mut self, now: Instant) {
        self.run_since = Some(now);
        if self.first_run.is_none() {
            self.first_run = Some(now);
            if let Some(s) = &self.sampler {
                s.mark_run_start(now);
            }
        }
    }

    /// `rustmeter::note(key, value)`: numbers stay numbers in the JSON.
    pub fn note(&mut self, key: String, value: String) {
        let value = value
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::String(value));
        self.notes.insert(key, value);
    }

    /// What the cell's build reported, to split its compile time.
    pub fn build_times(&mut self, times: BuildTimes) {
        self.build = Some(times);
    }

    /// `compile_ms` split by the build's own reports; `None` when no crate was built.
    fn compile_parts(&self, compile_ms: f64) -> Option<CompileParts> {
        let b = self
            .build
            .as_ref()
            .filter(|b| b.cell_builds > 0 || b.deps.is_some())?;
        let deps_ms = b
            .deps
            .map_or(0.0, |(from, to)| ms(to.saturating_duration_since(from)));
        let link_ms = b.cell_link_ms as f64;
        let rustc_ms = (b.cell_ms as f64 - link_ms).max(0.0);
        let load_ms = match (b.cell_ended, self.first_run) {
            (Some(end), Some(run)) => ms(run.saturating_duration_since(end)),
            _ => 0.0,
        };
        let other_ms = (compile_ms - deps_ms - rustc_ms - link_ms - load_ms).max(0.0);
        Some(CompileParts {
            deps_ms,
            rustc_ms,
            link_ms,
            load_ms,
            other_ms,
            cell_builds: b.cell_builds,
        })
    }

    /// How long the cell waited for start-up work: the overlap of its queue (received to
    /// started) with that work; `None` when it waited for none of it.
    fn warm_up_wait(&self, started: Instant) -> Option<WarmUpWait> {
        let w = self.warm_up.as_ref()?;
        let from = w.began.max(self.received);
        let to = w.ended.min(started);
        let waited_ms = ms(to.saturating_duration_since(from));
        (waited_ms > 0.0).then(|| WarmUpWait {
            waited_ms,
            steps: w
                .steps
                .iter()
                .map(|(step, took)| (step.key().to_string(), ms(*took)))
                .collect(),
        })
    }

    pub fn run_ended(&mut self, at: Instant) {
        if let Some(since) = self.run_since.take() {
            self.run_total += at.saturating_duration_since(since);
        }
    }

    /// The user's code's run time so far, in ms.
    pub fn run_ms(&self) -> f64 {
        let running = self
            .run_since
            .map_or(Duration::ZERO, |since| since.elapsed());
        ms(self.run_total + running)
    }

    /// Run time so far and what the process does now, while the user's code runs.
    pub fn live(&self) -> Option<(f64, LiveView)> {
        self.run_since?;
        Some((self.run_ms(), self.sampler.as_ref()?.live()))
    }

    /// The cell's telemetry, and the time the meter spent on the cell's critical path.
    pub fn finish(mut self, status: CellStatus) -> (CellTelemetry, Duration) {
        let now = Instant::now();
        self.run_ended(now);
        let telemetry = self.measure(status, now);
        (telemetry, self.overhead + now.elapsed())
    }

    fn measure(&mut self, status: CellStatus, now: Instant) -> CellTelemetry {
        let started = self.started.unwrap_or(now);
        let queue_ms = ms(started.duration_since(self.received));
        let wall_ms = ms(now.duration_since(self.received));
        let run_ms = ms(self.run_total);
        let compile_ms = (wall_ms - queue_ms - run_ms).max(0.0);
        let compile_cpu_ms = (children_cpu_ms() - self.children_cpu_start).max(0.0);
        let Some(sampler) = self.sampler.take() else {
            // Not sampled (footer off): the times are still real.
            let mut t = CellTelemetry::not_run(status, queue_ms, compile_ms, compile_cpu_ms);
            t.run_ms = run_ms;
            t.wall_ms = wall_ms;
            t.pid = self.pid;
            t.notes = std::mem::take(&mut self.notes);
            t.compile_parts = self.compile_parts(compile_ms);
            t.warm_up = self.warm_up_wait(started);
            return t;
        };
        let m = sampler.finish(now);
        let baseline = m.run_start.unwrap_or(m.start);
        let cpu_ms = (m.end.cpu_ms - baseline.cpu_ms).max(0.0);
        let ran = self.first_run.is_some();
        CellTelemetry {
            version: VERSION,
            status,
            queue_ms,
            compile_ms,
            run_ms,
            wall_ms,
            cpu_ms: if ran { cpu_ms } else { 0.0 },
            cpu_cores: cores_over(ran, cpu_ms, run_ms),
            compile_cpu_ms,
            rss_start_bytes: m.start.rss_bytes,
            rss_end_bytes: m.end.rss_bytes,
            rss_peak_bytes: m.rss_peak_bytes,
            threads_start: m.start.threads,
            threads_end: m.end.threads,
            threads_peak: m.threads_peak,
            threads_runtime: m.start.threads,
            samples: if ran { m.samples } else { Vec::new() },
            label: None,
            notes: std::mem::take(&mut self.notes),
            other_cores: m.other_cores,
            previous_run_ms: None,
            pid: self.pid,
            compile_parts: self.compile_parts(compile_ms),
            warm_up: self.warm_up_wait(started),
            runtime: m.runtime_after.as_ref().and_then(|after| {
                // What the kernel saw at an earlier cell's end, else the reading as
                // this cell was taken (which may come after the cell began).
                let prior = m
                    .runtime_seen_seq
                    .or(m.runtime_before.as_ref().map(|b| b.cell_seq()));
                after.cell_figures(prior, run_ms)
            }),
            repeat: None,
            other_runtime_threads_started: None,
            shared_runtime_threads: m.runtime_after.as_ref().map(|after| after.threads()),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::FooterChoice;
    use crate::settings::{Kind, TELEMETRY};

    /// `FooterChoice::from_env` relies on it: every word the setting accepts is a footer style.
    #[test]
    fn every_telemetry_word_is_a_footer_style() {
        let Kind::Word(words) = TELEMETRY.kind else {
            panic!("RUSTMETER_TELEMETRY is a word setting")
        };
        for word in words {
            assert!(FooterChoice::parse(word).is_some(), "{word}");
        }
        assert_eq!(
            FooterChoice::parse(TELEMETRY.default),
            FooterChoice::parse("full")
        );
    }
}
