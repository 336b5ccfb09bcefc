//! Pure functions from [`CellTelemetry`](super::CellTelemetry) to what a learner reads: a one-line summary,
//! HTML with three small charts, and the live line. No I/O.
//!
//! Charts are SVG inside `<img src="data:image/svg+xml;base64,…">` because JupyterLab
//! strips inline `<svg>` from untrusted output; sizes are in `em` so zoom and
//! presentation mode scale them; colours are mid-tones readable on light and dark.
//!
//! Owns the display mode and the colours every part shares; the parts are `units`
//! (numbers as words), `line` (the summary and live lines), `html` (the footer),
//! `svg` (the charts) and `compare` (`:compare`). Must not measure, publish or read
//! settings: callers pass everything in.

mod compare;
mod html;
mod line;
mod svg;
mod units;

pub use compare::compare_table;
pub use html::html;
pub use line::{is_trivial, live_line, text_line};
pub use svg::{charts, Chart};
pub use units::{bytes, seconds, thousands};

#[cfg(test)]
use crate::telemetry::{CellStatus, CellTelemetry, Sample};

/// How much to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The line and, for runs long enough, the charts.
    #[default]
    Full,
    /// The line only.
    Compact,
    /// Projector size.
    Big,
}

const CPU_COLOR: &str = "#d9822b";
const THREADS_COLOR: &str = "#3b82c4";
const TASKS_COLOR: &str = "#8e6bbf";
const STALL_COLOR: &str = "#c4473b";
const MEMORY_COLOR: &str = "#2f9e74";
const GUIDE_COLOR: &str = "#8a8a8a";
/// Chart tiles are white in every theme (like a plotted figure), so the label colour can
/// be fixed: #555555 on white is 7.5:1, past WCAG AA's 4.5:1 for small text. No single
/// colour reaches 4.5:1 on both white and JupyterLab's dark #111111 background.
const CHART_BACKGROUND: &str = "#ffffff";
const LABEL_COLOR: &str = "#555555";

/// A cell that ran for `run_ms` with ten samples: the tests of every part start here.
#[cfg(test)]
fn ran(run_ms: f64) -> CellTelemetry {
    let mut t = CellTelemetry::not_run(CellStatus::Ok, 0.0, 500.0, 800.0);
    t.run_ms = run_ms;
    t.wall_ms = run_ms + 500.0;
    t.cpu_ms = run_ms * 0.5;
    t.cpu_cores = Some(0.5);
    t.threads_start = 4;
    t.threads_peak = 1004;
    t.threads_end = 4;
    t.rss_start_bytes = 31_000_000;
    t.rss_end_bytes = 31_000_000;
    t.rss_peak_bytes = 40_100_000;
    t.samples = (1..=10)
        .map(|i| Sample {
            t_ms: run_ms * i as f64 / 10.0,
            cpu_cores: 0.5,
            rss_bytes: 31_000_000,
            threads: 4 + 100 * i,
            tasks: None,
            workers_busy: None,
        })
        .collect();
    t
}
