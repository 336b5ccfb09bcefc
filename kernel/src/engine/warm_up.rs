//! The kernel's own start-up work, timed step by step ([`WarmUp`]): what the first cell
//! waits for, named in its footer and telemetry and in the kernel log. Only the record;
//! the engine's worker does the work and the server's meter measures the wait.

/// The kernel's own start-up work between two cells: when it ran, and its steps in order
/// with their wall times (steps are back to back, except the wait for a first request).
#[derive(Debug, Clone)]
pub struct WarmUp {
    pub began: std::time::Instant,
    pub ended: std::time::Instant,
    pub steps: Vec<(WarmUpStep, std::time::Duration)>,
}

/// One step of [`WarmUp`]; `key()` names it in the telemetry, `words()` in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmUpStep {
    /// Before evcxr: the work folder's build settings, finding the toolchain.
    KernelSetUp,
    /// evcxr's child process started and rust-analyzer loaded the crate graph and the
    /// std sources (evcxr does it before its first compile).
    EvcxrStart,
    /// evcxr's own first compile (an empty cell).
    EvcxrFirstCompile,
    /// rustmeter's prelude: display items, panic hook, flush function.
    Prelude,
    /// rust-analyzer's first type inference through std (what completion and the first
    /// `let` need); deferred while a cell waits.
    Analysis,
}

impl WarmUpStep {
    pub fn key(self) -> &'static str {
        match self {
            WarmUpStep::KernelSetUp => "kernel_set_up",
            WarmUpStep::EvcxrStart => "evcxr_start",
            WarmUpStep::EvcxrFirstCompile => "evcxr_first_compile",
            WarmUpStep::Prelude => "prelude",
            WarmUpStep::Analysis => "analysis",
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            WarmUpStep::KernelSetUp => "kernel set-up",
            WarmUpStep::EvcxrStart => "evcxr start with rust-analyzer loading std",
            WarmUpStep::EvcxrFirstCompile => "evcxr's first compile",
            WarmUpStep::Prelude => "prelude",
            WarmUpStep::Analysis => "rust-analyzer's first analysis",
        }
    }
}

impl WarmUp {
    /// Adds a step that ran from `began` to `ended`.
    pub fn add(
        warm_up: &mut Option<WarmUp>,
        step: WarmUpStep,
        began: std::time::Instant,
        ended: std::time::Instant,
    ) {
        let took = ended.saturating_duration_since(began);
        match warm_up {
            Some(w) => {
                w.ended = ended;
                w.steps.push((step, took));
            }
            None => {
                *warm_up = Some(WarmUp {
                    began,
                    ended,
                    steps: vec![(step, took)],
                })
            }
        }
    }

    /// `evcxr start 3.1 s, prelude 0.5 s`
    pub fn describe(&self) -> String {
        self.steps
            .iter()
            .map(|(step, took)| format!("{} {:.2} s", step.words(), took.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
