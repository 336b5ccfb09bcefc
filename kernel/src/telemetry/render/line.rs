//! The one-line summary of a finished cell and the live line of a running one: plain
//! text, fields in a fixed order. The HTML and JSON are built elsewhere from these.

use super::units::{bytes, seconds, signed_bytes, thousands};
use crate::telemetry::repeat::{Repeated, Spread};
use crate::telemetry::runtime::RuntimeFigures;
use crate::telemetry::{CellStatus, CellTelemetry};

/// Below this the footer is one muted line.
const TRIVIAL_RUN_MS: f64 = 50.0;
/// Cores are only shown for runs this long: shorter ones are below the clock's resolution.
const CORES_MIN_MS: f64 = 100.0;

pub fn is_trivial(t: &CellTelemetry) -> bool {
    t.status == CellStatus::Ok
        && t.run_ms < TRIVIAL_RUN_MS
        && t.threads_peak <= t.threads_start
        && t.rss_peak_bytes.saturating_sub(t.rss_start_bytes) < 1_000_000
        && t.runtime.as_ref().is_none_or(|r| !runtime_active(r))
}

/// The cell did something on the shared runtime worth a field of its own.
fn runtime_active(r: &RuntimeFigures) -> bool {
    r.tasks_spawned > 0
        || r.blocking_tasks > 0
        || r.tasks_peak != r.tasks_start
        || r.started_in_cell
        || !r.stalls.is_empty()
}

/// The summary line, fields in a fixed order, run time first.
pub fn text_line(t: &CellTelemetry) -> String {
    let mut parts: Vec<String> = Vec::new();
    let head = match t.status {
        CellStatus::Ok if !t.ran() => "✓ done, no code ran".to_string(),
        CellStatus::Ok => format!("✓ ran {}", seconds(t.run_ms)),
        CellStatus::Panic => format!("✗ panicked after {}", seconds(t.run_ms)),
        CellStatus::Interrupted => format!(
            "■ interrupted at {}",
            seconds(t.run_ms.max(t.wall_ms - t.queue_ms - t.compile_ms))
        ),
        CellStatus::Crashed => format!("✗ crashed after {}", seconds(t.run_ms)),
        CellStatus::Error if !t.ran() => format!("✗ compile error ({})", seconds(t.compile_ms)),
        CellStatus::Error => format!("✗ error after {}", seconds(t.run_ms)),
    };
    let head = match &t.repeat {
        Some(r) if t.status == CellStatus::Ok => {
            format!("{head}, median of {} runs", thousands(r.runs.len() as u64))
        }
        _ => head,
    };
    let head = match t.previous_run_ms {
        Some(prev) if t.ran() && prev > 0.0 && t.status == CellStatus::Ok => {
            format!(
                "{head}, was {}{}",
                seconds(prev),
                speed_change(prev, t.run_ms)
            )
        }
        _ => head,
    };
    parts.push(head);
    if let Some(r) = &t.repeat {
        parts.push(repeat_part(r));
    }
    if !t.ran() {
        if t.status == CellStatus::Ok {
            if t.compile_ms >= 100.0 {
                parts.push(format!("compile {}", seconds(t.compile_ms)));
            }
        } else if t.status != CellStatus::Interrupted {
            parts.push("your code did not run".to_string());
        }
    } else if is_trivial(t) {
        // One muted line: nothing else changed.
    } else {
        parts.push(cpu_part(t));
        parts.push(threads_part(t));
        if let Some(r) = t.runtime.as_ref().filter(|r| runtime_active(r)) {
            parts.push(tasks_part(r));
        }
        parts.push(memory_part(t));
        if let Some(r) = t.runtime.as_ref().filter(|r| r.started_in_cell) {
            parts.push(format!(
                "runtime started: +{} workers",
                thousands(r.workers)
            ));
        }
        if let Some(added) = t.other_runtime_threads_started {
            parts.push(format!(
                "runtime started: +{} tokio threads (not the shared one)",
                thousands(added)
            ));
        }
    }
    if t.compile_ms >= 100.0 && t.ran() {
        parts.push(format!("compile {}", seconds(t.compile_ms)));
    }
    // The kernel's start-up is named: a learner reads a bare wait as their code's.
    let warm_up_ms = t.warm_up.as_ref().map_or(0.0, |w| w.waited_ms);
    if warm_up_ms >= 250.0 {
        parts.push(format!(
            "waited {} for the kernel to warm up",
            seconds(warm_up_ms)
        ));
    }
    if t.queue_ms - warm_up_ms >= 250.0 {
        parts.push(format!(
            "waited {} before starting",
            seconds(t.queue_ms - warm_up_ms)
        ));
    }
    if let Some(label) = &t.label {
        parts.push(format!("“{label}”"));
    }
    // Last: the one field that asks the learner to act.
    if let Some(warning) = t
        .runtime
        .as_ref()
        .filter(|_| t.ran())
        .and_then(stall_warning)
    {
        parts.push(warning);
    }
    parts.join(" │ ")
}

/// `range 0.10–0.12 s, CPU 0.01–0.02 s, threads max 6–7, tasks max 100 every run`: how far the
/// runs of a `:repeat` cell that ended well spread; `failed at run 3 of 5` first when one
/// failed, `stopped after run 3 of 5` when the runs were stopped between two.
fn repeat_part(r: &Repeated) -> String {
    let mut out = Vec::new();
    if r.stopped_early() {
        let how = match r.runs.last().map(|run| run.status) {
            Some(CellStatus::Interrupted) => "interrupted at run",
            Some(status) if status != CellStatus::Ok => "failed at run",
            _ => "stopped after run",
        };
        out.push(format!(
            "{how} {} of {}",
            thousands(r.runs.len() as u64),
            thousands(u64::from(r.asked))
        ));
    }
    let count = |v: f64| thousands(v.round() as u64);
    let range = |s: &Spread, unit: &dyn Fn(f64) -> String| {
        if unit(s.min) == unit(s.max) {
            format!("{} every run", unit(s.min))
        } else {
            format!("{}–{}", unit(s.min).trim_end_matches(" s"), unit(s.max))
        }
    };
    if let Some(run_ms) = &r.run_ms {
        out.push(format!("range {}", range(run_ms, &seconds)));
    }
    if let Some(cpu_ms) = &r.cpu_ms {
        out.push(format!("CPU {}", range(cpu_ms, &seconds)));
    }
    if let Some(threads) = &r.threads_peak {
        out.push(format!("threads max {}", range(threads, &count)));
    }
    // A run with no task alive says nothing about tasks.
    if let Some(tasks) = r.tasks_peak.as_ref().filter(|t| t.max > 0.0) {
        out.push(format!("tasks max {}", range(tasks, &count)));
    }
    out.join(", ")
}

fn speed_change(previous: f64, now: f64) -> String {
    if now <= 0.0 {
        return String::new();
    }
    let ratio = previous / now;
    if ratio >= 1.1 {
        format!(": {ratio:.1}× faster")
    } else if ratio <= 1.0 / 1.1 {
        format!(": {:.1}× slower", 1.0 / ratio)
    } else {
        ": about the same".to_string()
    }
}

fn cpu_part(t: &CellTelemetry) -> String {
    match t.cpu_cores.filter(|_| t.run_ms >= CORES_MIN_MS) {
        Some(cores) => {
            let tag = if cores < 0.1 {
                " — mostly waiting"
            } else if cores >= 1.5 {
                " — parallel"
            } else {
                ""
            };
            format!("CPU {cores:.2} cores ({}){tag}", seconds(t.cpu_ms))
        }
        None => format!("CPU {}", seconds(t.cpu_ms)),
    }
}

fn threads_part(t: &CellTelemetry) -> String {
    let counts = if t.threads_peak > t.threads_start || t.threads_end != t.threads_start {
        format!(
            "threads {} ▸ {} max ▸ {}",
            thousands(t.threads_start),
            thousands(t.threads_peak),
            thousands(t.threads_end)
        )
    } else {
        format!("threads {}", thousands(t.threads_start))
    };
    match &t.runtime {
        Some(r) => {
            let blocking = if r.blocking_threads_peak > r.blocking_threads_end {
                format!("{} blocking max", thousands(r.blocking_threads_peak))
            } else {
                format!("{} blocking", thousands(r.blocking_threads_end))
            };
            format!(
                "{counts} (runtime: {} workers, {blocking})",
                thousands(r.workers)
            )
        }
        None => counts,
    }
}

/// `tasks 0 ▸ 1,000 max ▸ 0 on 2 workers (3 % busy)`: the runtime's tasks, as threads are shown.
fn tasks_part(r: &RuntimeFigures) -> String {
    let counts = if r.tasks_peak > r.tasks_start || r.tasks_end != r.tasks_start {
        format!(
            "tasks {} ▸ {} max ▸ {}",
            thousands(r.tasks_start),
            thousands(r.tasks_peak),
            thousands(r.tasks_end)
        )
    } else {
        format!("tasks {}", thousands(r.tasks_start))
    };
    let busy = r
        .workers_busy
        .map(|b| format!(" ({:.0} % busy)", b * 100.0))
        .unwrap_or_default();
    let blocking = if r.blocking_tasks > 0 {
        format!(", {} blocking tasks", thousands(r.blocking_tasks))
    } else {
        String::new()
    };
    format!(
        "{counts} on {} workers{busy}{blocking}",
        thousands(r.workers)
    )
}

/// A poll that held a worker: the learner's mistake named in their words.
fn stall_warning(r: &RuntimeFigures) -> Option<String> {
    let longest = r
        .stalls
        .iter()
        .max_by(|a, b| a.duration_ms.total_cmp(&b.duration_ms))?;
    let count = r.stalls.len() as u64 + r.stalls_not_listed;
    let place = match (longest.spawned_at_line, longest.spawned_by_earlier_cell) {
        (Some(line), _) => format!(" (spawned at line {line})"),
        (None, true) => " (spawned by an earlier cell)".to_string(),
        (None, false) => String::new(),
    };
    let who = if count == 1 {
        format!("a task held a worker for {}", seconds(longest.duration_ms))
    } else {
        format!(
            "{} polls held a worker, up to {}",
            thousands(count),
            seconds(longest.duration_ms)
        )
    };
    Some(format!(
        "⚠ {who} without an .await{place} — a blocking call inside async code?"
    ))
}

fn memory_part(t: &CellTelemetry) -> String {
    let peak = t.rss_peak_bytes as i64 - t.rss_start_bytes as i64;
    format!(
        "memory {}, peak {}",
        bytes(t.rss_end_bytes),
        signed_bytes(peak)
    )
}

/// The live line while a cell runs.
pub fn live_line(elapsed_ms: f64, cores_now: f64, threads: u64, rss: u64) -> String {
    format!(
        "⏱ running {} │ CPU {cores_now:.2} cores now │ threads {} │ memory {}",
        seconds(elapsed_ms),
        thousands(threads),
        bytes(rss)
    )
}

#[cfg(test)]
mod tests {
    use super::super::ran;
    use super::*;

    #[test]
    fn line_has_fixed_order_and_units() {
        let line = text_line(&ran(300.0));
        assert_eq!(
            line,
            "✓ ran 0.30 s │ CPU 0.50 cores (0.15 s) │ threads 4 ▸ 1,004 max ▸ 4 │ memory 31 MB, peak +9.1 MB │ compile 0.50 s"
        );
    }

    #[test]
    fn a_wait_for_the_warm_up_is_named_apart_from_other_waits() {
        let mut t = CellTelemetry::not_run(CellStatus::Ok, 4500.0, 200.0, 300.0);
        t.warm_up = Some(crate::telemetry::WarmUpWait {
            waited_ms: 4200.0,
            steps: vec![("evcxr_start".into(), 3900.0), ("prelude".into(), 500.0)],
        });
        let line = text_line(&t);
        assert!(
            line.ends_with(
                "│ waited 4.20 s for the kernel to warm up │ waited 0.30 s before starting"
            ),
            "{line}"
        );
        t.queue_ms = 4200.0;
        assert!(!text_line(&t).contains("before starting"));
        t.warm_up = None;
        assert!(text_line(&t).ends_with("│ waited 4.20 s before starting"));
    }

    #[test]
    fn command_only_cells_do_not_claim_a_run() {
        let t = CellTelemetry::not_run(CellStatus::Ok, 0.0, 2500.0, 3000.0);
        assert_eq!(text_line(&t), "✓ done, no code ran │ compile 2.50 s");
    }

    #[test]
    fn compile_error_says_code_did_not_run() {
        let t = CellTelemetry::not_run(CellStatus::Error, 0.0, 620.0, 900.0);
        assert_eq!(
            text_line(&t),
            "✗ compile error (0.62 s) │ your code did not run"
        );
    }

    #[test]
    fn big_numbers_are_readable() {
        let mut t = ran(2000.0);
        t.rss_peak_bytes = 10_000_000_000 + t.rss_start_bytes;
        t.rss_end_bytes = 10_031_000_000;
        let line = text_line(&t);
        assert!(line.contains("peak +10.0 GB"), "{line}");
        assert!(line.contains("1,004"));
    }

    #[test]
    fn tags_at_clear_thresholds() {
        let mut t = ran(1000.0);
        t.cpu_cores = Some(0.02);
        assert!(text_line(&t).contains("mostly waiting"));
        t.cpu_cores = Some(1.9);
        assert!(text_line(&t).contains("parallel"));
        t.cpu_cores = Some(0.9);
        assert!(!text_line(&t).contains("—"));
    }

    fn runtime(spawned: u64) -> RuntimeFigures {
        RuntimeFigures {
            workers: 2,
            tasks_start: 0,
            tasks_peak: spawned,
            tasks_end: 0,
            tasks_spawned: spawned,
            blocking_threads_start: 0,
            blocking_threads_peak: 0,
            blocking_threads_end: 0,
            blocking_tasks: 0,
            workers_busy: Some(0.03),
            longest_poll_ms: 0.2,
            stall_threshold_ms: 100.0,
            stalls: Vec::new(),
            stalls_not_listed: 0,
            started_in_cell: false,
            cell_seq: 1,
        }
    }

    #[test]
    fn tasks_and_the_runtimes_threads_are_shown() {
        let mut t = ran(300.0);
        t.threads_start = 6;
        t.threads_peak = 6;
        t.threads_end = 6;
        t.runtime = Some(runtime(1000));
        assert_eq!(
            text_line(&t),
            "✓ ran 0.30 s │ CPU 0.50 cores (0.15 s) │ threads 6 (runtime: 2 workers, 0 blocking) │ \
             tasks 0 ▸ 1,000 max ▸ 0 on 2 workers (3 % busy) │ memory 31 MB, peak +9.1 MB │ compile 0.50 s"
        );
        t.runtime = Some(runtime(0));
        assert!(
            !text_line(&t).contains("tasks"),
            "no tasks field for a cell without tasks"
        );
    }

    #[test]
    fn a_stall_is_a_warning_naming_the_spawn_line() {
        let mut t = ran(1200.0);
        let mut r = runtime(1);
        r.stalls = vec![crate::telemetry::runtime::Stall {
            duration_ms: 1000.0,
            spawned_at_line: Some(3),
            spawned_by_earlier_cell: false,
        }];
        t.runtime = Some(r);
        assert!(text_line(&t).ends_with(
            "⚠ a task held a worker for 1.00 s without an .await (spawned at line 3) — a blocking call inside async code?"
        ), "{}", text_line(&t));
    }

    #[test]
    fn a_repeated_cell_shows_its_medians_and_range() {
        let earlier: Vec<CellTelemetry> = [100.0, 130.0, 104.0, 98.0]
            .iter()
            .map(|&ms| ran(ms))
            .collect();
        let t = ran(101.0).with_runs(5, earlier);
        let line = text_line(&t);
        assert!(
            line.starts_with(
                "✓ ran 0.10 s, median of 5 runs │ range 0.10–0.13 s, CPU 0.05–0.07 s, \
                 threads max 1,004 every run │ CPU"
            ),
            "{line}"
        );
        let mut failed = ran(20.0);
        failed.status = CellStatus::Panic;
        let line = text_line(&failed.with_runs(5, vec![ran(100.0)]));
        assert!(
            line.starts_with(
                "✗ panicked after 0.02 s │ failed at run 2 of 5, range 0.10 s every run"
            ),
            "{line}"
        );
    }

    #[test]
    fn previous_run_is_compared() {
        let mut t = ran(210.0);
        t.previous_run_ms = Some(2010.0);
        assert!(text_line(&t).starts_with("✓ ran 0.21 s, was 2.01 s: 9.6× faster"));
    }
}
