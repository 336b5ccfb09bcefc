//! The one-line summary of a finished cell and the live line of a running one: plain
//! text, fields in a fixed order. The HTML and JSON are built elsewhere from these.

use super::units::{bytes, seconds, signed_bytes, thousands};
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
        parts.push(memory_part(t));
    }
    if t.compile_ms >= 100.0 && t.ran() {
        parts.push(format!("compile {}", seconds(t.compile_ms)));
    }
    if t.queue_ms >= 250.0 {
        parts.push(format!("waited {} before starting", seconds(t.queue_ms)));
    }
    if let Some(label) = &t.label {
        parts.push(format!("“{label}”"));
    }
    parts.join(" │ ")
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
    if t.threads_peak > t.threads_start || t.threads_end != t.threads_start {
        format!(
            "threads {} ▸ {} max ▸ {}",
            thousands(t.threads_start),
            thousands(t.threads_peak),
            thousands(t.threads_end)
        )
    } else {
        format!("threads {}", thousands(t.threads_start))
    }
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

    #[test]
    fn previous_run_is_compared() {
        let mut t = ran(210.0);
        t.previous_run_ms = Some(2010.0);
        assert!(text_line(&t).starts_with("✓ ran 0.21 s, was 2.01 s: 9.6× faster"));
    }
}
