//! A cell run several times (`:repeat N`): each run's headline figures, their median and
//! range, and the cell's telemetry with the medians in its headline fields, so the
//! footer, `:compare` and `rustmeter::last()` read one noisy run less.
//!
//! Pure data: the server decides how the runs happen; this module only summarizes
//! telemetry it is given. Must not render (that is `render::line`).

use super::{CellStatus, CellTelemetry};
use serde::{Deserialize, Serialize};

/// The middle and the ends of one figure over the runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut sorted: Vec<f64> = values.into_iter().collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

/// What one run of a repeated cell did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFigures {
    pub status: CellStatus,
    pub run_ms: f64,
    pub cpu_ms: f64,
    pub cpu_cores: Option<f64>,
    pub threads_peak: u64,
    pub rss_peak_bytes: u64,
    /// Absent when the shared runtime was not measured during the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_peak: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_spawned: Option<u64>,
    pub stalls: u64,
}

impl RunFigures {
    fn of(t: &CellTelemetry) -> RunFigures {
        RunFigures {
            status: t.status,
            run_ms: t.run_ms,
            cpu_ms: t.cpu_ms,
            cpu_cores: t.cpu_cores,
            threads_peak: t.threads_peak,
            rss_peak_bytes: t.rss_peak_bytes,
            tasks_peak: t.runtime.as_ref().map(|r| r.tasks_peak),
            tasks_spawned: t.runtime.as_ref().map(|r| r.tasks_spawned),
            stalls: t
                .runtime
                .as_ref()
                .map_or(0, |r| r.stalls.len() as u64 + r.stalls_not_listed),
        }
    }
}

/// A repeated cell's runs and their spread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repeated {
    /// The runs `:repeat` asked for; more than `runs.len()` when one failed and the
    /// rest did not run.
    pub asked: u32,
    pub runs: Vec<RunFigures>,
    pub run_ms: Spread,
    pub cpu_ms: Spread,
    /// Null when a run was too short for a core figure.
    pub cpu_cores: Option<Spread>,
    pub threads_peak: Spread,
    /// Null when any run was not measured on the shared runtime.
    pub tasks_peak: Option<Spread>,
}

impl Repeated {
    /// The spread of `runs` (at least one, in order).
    fn of(asked: u32, runs: &[CellTelemetry]) -> Option<Repeated> {
        let figures: Vec<RunFigures> = runs.iter().map(RunFigures::of).collect();
        let all = |get: fn(&RunFigures) -> Option<f64>| -> Option<Spread> {
            let values: Option<Vec<f64>> = figures.iter().map(get).collect();
            Spread::of(values?)
        };
        Some(Repeated {
            asked,
            run_ms: Spread::of(figures.iter().map(|r| r.run_ms))?,
            cpu_ms: Spread::of(figures.iter().map(|r| r.cpu_ms))?,
            cpu_cores: all(|r| r.cpu_cores),
            threads_peak: Spread::of(figures.iter().map(|r| r.threads_peak as f64))?,
            tasks_peak: all(|r| r.tasks_peak.map(|n| n as f64)),
            runs: figures,
        })
    }

    /// The runs stopped early: one failed.
    pub fn stopped_early(&self) -> bool {
        (self.runs.len() as u32) < self.asked
    }
}

impl CellTelemetry {
    /// The last run's telemetry (`self`), summarizing `earlier` runs with it: when every
    /// run ended well, the headline figures become the medians of the runs; `repeat`
    /// lists every run. A failed last run keeps its own figures (the footer tells that
    /// run's end). The series, memory and the stall list stay the last run's.
    pub fn with_runs(mut self, asked: u32, earlier: Vec<CellTelemetry>) -> CellTelemetry {
        let mut runs = earlier;
        runs.push(self.clone());
        let Some(summary) = Repeated::of(asked, &runs) else {
            return self;
        };
        if self.status == CellStatus::Ok {
            let well = &summary;
            self.run_ms = well.run_ms.median;
            self.cpu_ms = well.cpu_ms.median;
            self.cpu_cores = well.cpu_cores.map(|s| s.median);
            self.threads_peak = (well.threads_peak.median.round() as u64).max(self.threads_start);
            if let (Some(r), Some(tasks)) = (self.runtime.as_mut(), well.tasks_peak) {
                r.tasks_peak = (tasks.median.round() as u64).max(r.tasks_start);
            }
        }
        self.repeat = Some(summary);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(run_ms: f64, threads_peak: u64) -> CellTelemetry {
        let mut t = CellTelemetry::not_run(CellStatus::Ok, 0.0, 300.0, 400.0);
        t.run_ms = run_ms;
        t.cpu_ms = run_ms / 10.0;
        t.threads_start = 4;
        t.threads_peak = threads_peak;
        t
    }

    #[test]
    fn spread_is_the_median_and_the_ends() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of([4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Spread::of(Vec::new()).is_none());
    }

    #[test]
    fn headline_figures_become_the_medians_and_every_run_is_listed() {
        let earlier = vec![run(100.0, 6), run(300.0, 9), run(110.0, 6), run(105.0, 6)];
        let t = run(102.0, 7).with_runs(5, earlier);
        assert_eq!(t.run_ms, 105.0);
        assert_eq!(t.threads_peak, 6);
        let r = t.repeat.as_ref().unwrap();
        assert_eq!(r.runs.len(), 5);
        assert_eq!((r.run_ms.min, r.run_ms.max), (100.0, 300.0));
        assert!(!r.stopped_early());
        assert!(
            r.tasks_peak.is_none(),
            "no runtime measured, no tasks spread"
        );
    }

    #[test]
    fn a_failed_last_run_keeps_its_own_figures_and_lists_every_run() {
        let mut failed = run(20.0, 4);
        failed.status = CellStatus::Panic;
        let t = failed.with_runs(5, vec![run(100.0, 6), run(120.0, 6)]);
        assert_eq!(t.status, CellStatus::Panic);
        assert_eq!(t.run_ms, 20.0, "the failed run's own time");
        let r = t.repeat.unwrap();
        assert!(r.stopped_early());
        assert_eq!(r.runs.len(), 3);
        assert_eq!(r.runs[2].status, CellStatus::Panic);
    }
}
