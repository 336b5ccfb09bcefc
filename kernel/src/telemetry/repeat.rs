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
    /// The runs `:repeat` asked for; more than `runs.len()` when the runs stopped early.
    pub asked: u32,
    /// Every run, in order: the last one may have failed.
    pub runs: Vec<RunFigures>,
    /// The spreads are over the runs that ended well only (absent when none did): a run
    /// that failed early (a compile error, an interrupt) would pull every minimum to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_ms: Option<Spread>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<Spread>,
    /// Null when a run was too short for a core figure.
    pub cpu_cores: Option<Spread>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads_peak: Option<Spread>,
    /// Null when any run was not measured on the shared runtime.
    pub tasks_peak: Option<Spread>,
}

impl Repeated {
    /// `runs` (at least one, in order) and the spread of those that ended well.
    fn of(asked: u32, runs: &[CellTelemetry]) -> Repeated {
        let figures: Vec<RunFigures> = runs.iter().map(RunFigures::of).collect();
        let well: Vec<&RunFigures> = figures
            .iter()
            .filter(|r| r.status == CellStatus::Ok)
            .collect();
        let all = |get: fn(&RunFigures) -> Option<f64>| -> Option<Spread> {
            let values: Option<Vec<f64>> = well.iter().map(|r| get(r)).collect();
            Spread::of(values?)
        };
        Repeated {
            asked,
            run_ms: Spread::of(well.iter().map(|r| r.run_ms)),
            cpu_ms: Spread::of(well.iter().map(|r| r.cpu_ms)),
            cpu_cores: all(|r| r.cpu_cores),
            threads_peak: Spread::of(well.iter().map(|r| r.threads_peak as f64)),
            tasks_peak: all(|r| r.tasks_peak.map(|n| n as f64)),
            runs: figures,
        }
    }

    /// Not every run asked for ended well: one failed, or the runs were stopped.
    pub fn stopped_early(&self) -> bool {
        (self.runs.len() as u32) < self.asked
            || self.runs.iter().any(|r| r.status != CellStatus::Ok)
    }
}

impl CellTelemetry {
    /// The last run's telemetry (`self`), summarizing `earlier` runs (which all ended
    /// well) with it: when the last ended well too, the headline figures become the
    /// medians of the runs; `repeat` lists every run. A failed last run keeps its own
    /// figures (the footer tells that run's end). The series, memory and the stall list
    /// stay the last run's; the wait before the first run is the cell's.
    pub fn with_runs(mut self, asked: u32, earlier: Vec<CellTelemetry>) -> CellTelemetry {
        if let Some(first) = earlier.first() {
            self.queue_ms = first.queue_ms;
            self.warm_up = first.warm_up.clone();
            self.wall_ms += earlier.iter().map(|t| t.wall_ms).sum::<f64>();
        }
        if self.status == CellStatus::Ok && !self.ran() {
            return self; // no code ran: nothing was repeated
        }
        let mut runs = earlier;
        runs.push(self.clone());
        let summary = Repeated::of(asked, &runs);
        if let (CellStatus::Ok, Some(run_ms), Some(cpu_ms), Some(threads)) = (
            self.status,
            summary.run_ms,
            summary.cpu_ms,
            summary.threads_peak,
        ) {
            self.run_ms = run_ms.median;
            self.cpu_ms = cpu_ms.median;
            self.cpu_cores = summary.cpu_cores.map(|s| s.median);
            self.threads_peak = (threads.median.round() as u64).max(self.threads_start);
            if let (Some(r), Some(tasks)) = (self.runtime.as_mut(), summary.tasks_peak) {
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
        let run_ms = r.run_ms.unwrap();
        assert_eq!((run_ms.min, run_ms.max), (100.0, 300.0));
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
        let run_ms = r.run_ms.unwrap();
        assert_eq!(
            (run_ms.min, run_ms.max),
            (100.0, 120.0),
            "the spread is of the runs that ended well"
        );
    }

    #[test]
    fn a_failure_at_the_last_run_asked_is_still_a_stop() {
        let mut failed = run(0.0, 4);
        failed.status = CellStatus::Error;
        let r = failed.with_runs(2, vec![run(100.0, 6)]).repeat.unwrap();
        assert!(r.stopped_early());
        assert_eq!(r.run_ms.map(|s| (s.min, s.max)), Some((100.0, 100.0)));
    }

    #[test]
    fn a_first_run_that_failed_has_no_spread_and_the_wait_is_the_first_runs() {
        let mut failed = run(0.0, 4);
        failed.status = CellStatus::Error;
        let r = failed.with_runs(5, Vec::new()).repeat.unwrap();
        assert!(r.stopped_early() && r.run_ms.is_none(), "{r:?}");
        let mut first = run(100.0, 6);
        first.queue_ms = 4000.0;
        let t = run(100.0, 6).with_runs(2, vec![first]);
        assert_eq!(
            t.queue_ms, 4000.0,
            "a wait before the first run is the cell's"
        );
    }
}
