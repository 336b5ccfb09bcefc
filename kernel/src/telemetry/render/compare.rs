//! `:compare`: labelled cells side by side as text and HTML tables, with warnings when
//! the cells are not like for like. Reads only the telemetry it is given.

use super::html::escape;
use super::units::{bytes, seconds, thousands};
use super::{CPU_COLOR, GUIDE_COLOR, MEMORY_COLOR, STALL_COLOR, TASKS_COLOR, THREADS_COLOR};
use crate::telemetry::CellTelemetry;

/// Other programs using this many cores during a run make it not comparable.
const BUSY_CORES: f64 = 0.5;

/// `:compare`: labelled cells side by side — run time, CPU cores, threads at most, memory
/// peak above start — each metric on its own linear scale, values printed, ratios
/// against the first cell. Returns (text with Unicode bars, HTML with CSS-width bars).
pub fn compare_table(cells: &[CellTelemetry]) -> (String, String) {
    type Metric = (&'static str, fn(&CellTelemetry) -> f64, fn(f64) -> String);
    let mut metrics: Vec<Metric> = vec![
        ("run", |t| t.run_ms, seconds),
        (
            "CPU cores",
            |t| t.cpu_cores.unwrap_or(0.0),
            |v| format!("{v:.2}"),
        ),
        (
            "threads max",
            |t| t.threads_peak as f64,
            |v| thousands(v as u64),
        ),
        (
            "memory peak Δ",
            |t| t.rss_peak_bytes.saturating_sub(t.rss_start_bytes) as f64,
            |v| bytes(v as u64),
        ),
    ];
    if cells.iter().any(|t| t.runtime.is_some()) {
        metrics.push((
            "tasks max",
            |t| t.runtime.as_ref().map_or(0.0, |r| r.tasks_peak as f64),
            |v| thousands(v as u64),
        ));
        metrics.push((
            "stalls",
            |t| {
                t.runtime.as_ref().map_or(0.0, |r| {
                    (r.stalls.len() as u64 + r.stalls_not_listed) as f64
                })
            },
            |v| thousands(v as u64),
        ));
    }
    let name = |t: &CellTelemetry| t.label.clone().unwrap_or_else(|| "(unlabelled)".into());
    let width = cells
        .iter()
        .map(|t| name(t).chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut text = String::new();
    let mut html = String::from(
        "<table class=\"rustmeter-compare\" style=\"border-collapse: collapse; font-size: 0.9em\"><tr><th style=\"text-align:left\">cell</th>",
    );
    for (title, _, _) in &metrics {
        html.push_str(&format!(
            "<th style=\"text-align:left; padding: 0 0.8em\">{title}</th>"
        ));
    }
    html.push_str("</tr>");
    for t in cells {
        text.push_str(&format!("{:<width$}", name(t)));
        html.push_str(&format!("<tr><td><b>{}</b></td>", escape(&name(t))));
        for (i, (title, get, fmt)) in metrics.iter().enumerate() {
            let max = cells.iter().map(get).fold(0.0f64, f64::max);
            let value = get(t);
            let share = if max > 0.0 { value / max } else { 0.0 };
            let first = get(&cells[0]);
            let ratio = if std::ptr::eq(t, &cells[0]) {
                String::new()
            } else {
                against_first(i == 0, value, first)
            };
            let bar = "█".repeat((share * 12.0).round() as usize);
            text.push_str(&format!(" │ {title} {:>9}{ratio} {bar:<12}", fmt(value)));
            let color = [
                CPU_COLOR,
                CPU_COLOR,
                THREADS_COLOR,
                MEMORY_COLOR,
                TASKS_COLOR,
                STALL_COLOR,
            ]
            .get(i)
            .copied()
            .unwrap_or(GUIDE_COLOR);
            html.push_str(&format!(
                "<td style=\"padding: 0.15em 0.8em\"><div style=\"background: {color}; height: 0.7em; width: {:.1}em; min-width: 1px\"></div>{}{}</td>",
                share * 8.0,
                escape(&fmt(value)),
                escape(&ratio)
            ));
        }
        text.push('\n');
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    let busy: Vec<String> = cells
        .iter()
        .filter(|t| t.other_cores.is_some_and(|c| c >= BUSY_CORES))
        .map(|t| {
            format!(
                "{} ({:.1} cores used by other programs)",
                name(t),
                t.other_cores.unwrap_or(0.0)
            )
        })
        .collect();
    let busy =
        (!busy.is_empty()).then(|| format!("ran while the machine was busy: {}", busy.join(", ")));
    for warning in [notes_differ(cells), busy].into_iter().flatten() {
        text.push_str(&format!("⚠ {warning}\n"));
        html.push_str(&format!(
            "<div style=\"margin-top: 0.3em\">⚠ {}</div>",
            escape(&warning)
        ));
    }
    (text, html)
}

/// Cells compared with different parameters (`rustmeter::note`) are not like for like.
fn notes_differ(cells: &[CellTelemetry]) -> Option<String> {
    let mut keys: Vec<&String> = cells.iter().flat_map(|t| t.notes.keys()).collect();
    keys.sort();
    keys.dedup();
    let differing: Vec<String> = keys
        .into_iter()
        .filter(|k| {
            let values: Vec<Option<&serde_json::Value>> =
                cells.iter().map(|t| t.notes.get(*k)).collect();
            values.windows(2).any(|w| w[0] != w[1])
        })
        .map(|k| {
            let values: Vec<String> = cells
                .iter()
                .map(|t| t.notes.get(k).map_or("—".to_string(), |v| v.to_string()))
                .collect();
            format!("{k} = {}", values.join(" / "))
        })
        .collect();
    (!differing.is_empty()).then(|| {
        format!(
            "these cells ran with different parameters: {}",
            differing.join("; ")
        )
    })
}

/// A value against the first cell's, in words that read the right way round: a run
/// 19 times shorter is "19× faster", never "0.1×", which reads as slower.
fn against_first(is_run_time: bool, value: f64, first: f64) -> String {
    let times = |r: f64| {
        if r >= 10.0 {
            format!("{r:.0}×")
        } else {
            format!("{r:.1}×")
        }
    };
    let (less, more) = if is_run_time {
        ("faster", "slower")
    } else {
        ("less", "more")
    };
    if first <= 0.0 || value <= 0.0 {
        String::new()
    } else if value < first / 1.05 {
        format!(" ({} {less})", times(first / value))
    } else if value > first * 1.05 {
        format!(" ({} {more})", times(value / first))
    } else {
        " (same)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::super::ran;
    use super::*;

    #[test]
    fn ratios_read_the_right_way_round() {
        assert_eq!(against_first(true, 105.3, 2000.0), " (19× faster)");
        assert_eq!(against_first(true, 3000.0, 2000.0), " (1.5× slower)");
        assert_eq!(against_first(false, 4.0, 1004.0), " (251× less)");
        assert_eq!(against_first(false, 1004.0, 4.0), " (251× more)");
        assert_eq!(against_first(true, 2010.0, 2000.0), " (same)");
        assert_eq!(against_first(false, 0.0, 5.0), "");
    }

    #[test]
    fn compare_table_has_a_row_per_cell() {
        let mut a = ran(2000.0);
        a.label = Some("sequential".into());
        let mut b = ran(200.0);
        b.label = Some("tasks".into());
        let (text, html) = compare_table(&[a, b]);
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("(10× faster)"), "{text}");
        assert!(!text.contains("(0.1×)"), "{text}");
        assert!(html.contains("sequential") && html.contains("tasks") && !html.contains("<script"));
        assert!(!text.contains('⚠'));
        let mut c = ran(100.0);
        c.notes.insert("N".into(), 10.into());
        let mut d = ran(100.0);
        d.notes.insert("N".into(), 1000.into());
        d.other_cores = Some(1.2);
        let (text, _) = compare_table(&[c, d]);
        assert!(
            text.contains("⚠ these cells ran with different parameters: N = 10 / 1000"),
            "{text}"
        );
        assert!(text.contains("ran while the machine was busy"), "{text}");
    }
}
