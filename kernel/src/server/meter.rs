//! Glue between a cell's life on the server and the telemetry module: when to start the
//! sampler, which moments are compile and which are run, and the kernel's telemetry
//! settings (`:telemetry`, `:label`, previous runs). Holds no rendering logic.

use crate::telemetry::render::Mode;
use crate::telemetry::sampler::{children_cpu_ms, LiveView, Sampler};
use crate::telemetry::{CellStatus, CellTelemetry, VERSION};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What the learner asked the footer to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    Off,
    On(Mode),
}

impl Display {
    pub fn parse(word: &str) -> Option<Display> {
        match word {
            "off" => Some(Display::Off),
            "on" | "full" => Some(Display::On(Mode::Full)),
            "compact" => Some(Display::On(Mode::Compact)),
            "big" => Some(Display::On(Mode::Big)),
            _ => None,
        }
    }

    /// `RUSTMETER_TELEMETRY` (kernelspec `env`), default full.
    pub fn from_env() -> Display {
        std::env::var("RUSTMETER_TELEMETRY")
            .ok()
            .and_then(|v| Display::parse(v.trim()))
            .unwrap_or(Display::On(Mode::Full))
    }
}

/// Kernel-wide telemetry state.
pub struct Settings {
    pub display: Display,
    pub last: Option<CellTelemetry>,
    /// Run time of the last run of each cell's code.
    previous: HashMap<u64, f64>,
    /// A `:label` waiting for the next cell.
    pub pending_label: Option<String>,
    pub labelled: Vec<CellTelemetry>,
}

impl Settings {
    pub fn new() -> Settings {
        Settings {
            display: Display::from_env(),
            last: None,
            previous: HashMap::new(),
            pending_label: None,
            labelled: Vec::new(),
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
        }
        self.last = Some(telemetry.clone());
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::new()
    }
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
        }
    }

    /// The engine took the cell; `pid` will run it.
    pub fn started(&mut self, pid: u32) {
        self.started = Some(Instant::now());
        self.children_cpu_start = children_cpu_ms();
        self.pid = pid;
        if pid != 0 {
            self.sampler = Some(Sampler::start(pid));
        }
    }

    pub fn run_started(&mut self) {
        let now = Instant::now();
        self.run_since = Some(now);
        if self.first_run.is_none() {
            self.first_run = Some(now);
            if let Some(s) = &self.sampler {
                s.mark_run_start(now);
            }
        }
    }

    pub fn run_ended(&mut self) {
        if let Some(since) = self.run_since.take() {
            self.run_total += since.elapsed();
        }
    }

    /// Run time so far and what the process does now, while the user's code runs.
    pub fn live(&self) -> Option<(f64, LiveView)> {
        let since = self.run_since?;
        let running = (self.run_total + since.elapsed()).as_secs_f64() * 1000.0;
        Some((running, self.sampler.as_ref()?.live()))
    }

    pub fn finish(mut self, status: CellStatus) -> CellTelemetry {
        self.run_ended();
        let now = Instant::now();
        let started = self.started.unwrap_or(now);
        let queue_ms = ms(started.duration_since(self.received));
        let wall_ms = ms(now.duration_since(self.received));
        let run_ms = ms(self.run_total);
        let compile_ms = (wall_ms - queue_ms - run_ms).max(0.0);
        let compile_cpu_ms = (children_cpu_ms() - self.children_cpu_start).max(0.0);
        let Some(sampler) = self.sampler.take() else {
            return CellTelemetry::not_run(status, queue_ms, compile_ms, compile_cpu_ms);
        };
        let m = sampler.finish(now);
        let cpu_ms = (m.end.cpu_ms - m.start.cpu_ms).max(0.0);
        let ran = self.first_run.is_some();
        CellTelemetry {
            version: VERSION,
            status,
            queue_ms,
            compile_ms,
            run_ms,
            wall_ms,
            cpu_ms: if ran { cpu_ms } else { 0.0 },
            cpu_cores: (ran && run_ms > 0.0).then(|| cpu_ms / run_ms),
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
            notes: Default::default(),
            previous_run_ms: None,
            pid: self.pid,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
