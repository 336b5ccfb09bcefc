//! Pure functions from [`CellTelemetry`] to what a learner reads: a one-line summary,
//! HTML with three small charts, and the live line. No I/O.
//!
//! Charts are SVG inside `<img src="data:image/svg+xml;base64,…">` because JupyterLab
//! strips inline `<svg>` from untrusted output; sizes are in `em` so zoom and
//! presentation mode scale them; colours are mid-tones readable on light and dark.

use super::{CellStatus, CellTelemetry};
use base64::Engine as _;

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
const MEMORY_COLOR: &str = "#2f9e74";
const GUIDE_COLOR: &str = "#8a8a8a";
/// Other programs using this many cores during a run make it not comparable.
const BUSY_CORES: f64 = 0.5;
/// Below this the footer is one muted line.
const TRIVIAL_RUN_MS: f64 = 50.0;
/// Charts need a run this long and this many samples.
const CHART_MIN_MS: f64 = 300.0;
const CHART_MIN_SAMPLES: usize = 5;
/// Cores are only shown for runs this long: shorter ones are below the clock's resolution.
const CORES_MIN_MS: f64 = 100.0;

pub fn seconds(ms: f64) -> String {
    if ms < 10.0 {
        "<0.01 s".to_string()
    } else if ms < 10_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.0} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0} kB", n / 1e3)
    } else {
        format!("{n:.0} B")
    }
}

fn signed_bytes(delta: i64) -> String {
    let magnitude = delta.unsigned_abs() as f64;
    let sign = if delta < 0 { "−" } else { "+" };
    if magnitude >= 1e9 {
        format!("{sign}{:.1} GB", magnitude / 1e9)
    } else if magnitude >= 1e6 {
        format!("{sign}{:.1} MB", magnitude / 1e6)
    } else {
        format!("{sign}{:.0} kB", magnitude / 1e3)
    }
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

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

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The footer as HTML: the line, then (for runs long enough) three charts on one time axis.
pub fn html(t: &CellTelemetry, mode: Mode) -> String {
    let line = text_line(t);
    let muted = is_trivial(t) || !t.ran();
    let scale = if mode == Mode::Big { 1.6 } else { 1.0 };
    let opacity = if muted { "0.65" } else { "0.9" };
    let mut out = format!(
        "<div class=\"rustmeter-footer\" style=\"font-family: var(--jp-code-font-family, monospace); \
         font-size: {:.2}em; opacity: {opacity}; border-top: 1px solid rgba(128,128,128,0.35); \
         padding-top: 0.3em; margin-top: 0.2em\" title=\"{}\">{}</div>",
        0.85 * scale,
        escape(&tooltip(t)),
        line_html(&line)
    );
    if mode != Mode::Compact && t.run_ms >= CHART_MIN_MS && t.samples.len() >= CHART_MIN_SAMPLES {
        out.push_str(&format!("<div class=\"rustmeter-charts\" style=\"display: flex; flex-wrap: wrap; gap: 0.8em; margin-top: 0.25em; font-size: {scale:.2}em\">"));
        for chart in charts(t) {
            out.push_str(&format!(
                "<img src=\"data:image/svg+xml;base64,{}\" alt=\"{}\" title=\"{}\" style=\"height: 3.2em; width: 12em\">",
                base64::engine::general_purpose::STANDARD.encode(chart.svg.as_bytes()),
                escape(&line),
                escape(&chart.title)
            ));
        }
        out.push_str("</div>");
    }
    out
}

/// The line with each field kept whole: a narrow output (or `:telemetry big`) wraps
/// between fields, never inside one ("memory 13 / MB").
fn line_html(line: &str) -> String {
    line.split(" │ ")
        .map(|part| {
            format!(
                "<span style=\"white-space: nowrap\">{}</span>",
                escape(part)
            )
        })
        .collect::<Vec<_>>()
        .join(" │ ")
}

fn tooltip(t: &CellTelemetry) -> String {
    format!(
        "run {} = your code only; compile {}; CPU {} of CPU time on all cores; threads: at start, most at once, at end; \
         memory: resident at end, peak above the start",
        seconds(t.run_ms),
        seconds(t.compile_ms),
        seconds(t.cpu_ms)
    )
}

pub struct Chart {
    pub title: String,
    pub svg: String,
}

/// CPU (fixed 0–N cores scale with a 1-core line), threads (step line, start dotted),
/// memory (10 MB floor so noise is no mountain), on one time axis.
pub fn charts(t: &CellTelemetry) -> Vec<Chart> {
    let end = t
        .run_ms
        .max(t.samples.last().map_or(1.0, |s| s.t_ms))
        .max(1.0);
    let cores_max = t
        .samples
        .iter()
        .map(|s| s.cpu_cores)
        .fold(2.0f64, f64::max)
        .ceil();
    let threads_max = (t.threads_peak.max(t.threads_start) as f64).max(1.0) * 1.1;
    let rss_min = t
        .samples
        .iter()
        .map(|s| s.rss_bytes)
        .min()
        .unwrap_or(0)
        .min(t.rss_start_bytes) as f64;
    let rss_max = (t.rss_peak_bytes as f64).max(rss_min + 10e6);
    // The top 13 units hold the label; the plot uses the rest, so lines never cross it.
    let y = |v: f64, lo: f64, hi: f64| 38.0 - 24.0 * ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
    let x = |ms: f64| 2.0 + 196.0 * (ms / end).clamp(0.0, 1.0);
    let cpu_points: Vec<(f64, f64)> = t
        .samples
        .iter()
        .map(|s| (x(s.t_ms), y(s.cpu_cores, 0.0, cores_max)))
        .collect();
    let mut thread_points = vec![(x(0.0), y(t.threads_start as f64, 0.0, threads_max))];
    for s in &t.samples {
        let last_y = thread_points.last().map_or(0.0, |p| p.1);
        thread_points.push((x(s.t_ms), last_y));
        thread_points.push((x(s.t_ms), y(s.threads as f64, 0.0, threads_max)));
    }
    let mem_points: Vec<(f64, f64)> =
        std::iter::once((x(0.0), y(t.rss_start_bytes as f64, rss_min, rss_max)))
            .chain(
                t.samples
                    .iter()
                    .map(|s| (x(s.t_ms), y(s.rss_bytes as f64, rss_min, rss_max))),
            )
            .collect();
    let one_core = y(1.0, 0.0, cores_max);
    let start_threads = y(t.threads_start as f64, 0.0, threads_max);
    let peak_mem = y(t.rss_peak_bytes as f64, rss_min, rss_max);
    vec![
        Chart {
            title: format!("CPU cores over time (0–{cores_max:.0}; dashed line = 1 core)"),
            svg: svg(
                &cpu_points,
                CPU_COLOR,
                &format!("CPU 0–{cores_max:.0} cores"),
                Some(one_core),
                "4 3",
            ),
        },
        Chart {
            title: format!(
                "threads over time: {} at start (dotted), {} at most",
                thousands(t.threads_start),
                thousands(t.threads_peak)
            ),
            svg: svg(
                &thread_points,
                THREADS_COLOR,
                &format!("threads max {}", thousands(t.threads_peak)),
                Some(start_threads),
                "1 2",
            ),
        },
        Chart {
            title: format!(
                "resident memory over time; dotted line = peak {}",
                bytes(t.rss_peak_bytes)
            ),
            svg: svg(
                &mem_points,
                MEMORY_COLOR,
                &format!("memory peak {}", bytes(t.rss_peak_bytes)),
                Some(peak_mem),
                "1 2",
            ),
        },
    ]
}

fn svg(points: &[(f64, f64)], color: &str, label: &str, guide: Option<f64>, dash: &str) -> String {
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let guide = guide
        .map(|g| {
            format!(
                "<line x1=\"2\" x2=\"198\" y1=\"{g:.1}\" y2=\"{g:.1}\" stroke=\"{GUIDE_COLOR}\" stroke-width=\"1\" stroke-dasharray=\"{dash}\"/>"
            )
        })
        .unwrap_or_default();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 200 40\" width=\"200\" height=\"40\">\
         <rect x=\"0.5\" y=\"0.5\" width=\"199\" height=\"39\" fill=\"none\" stroke=\"{GUIDE_COLOR}\" stroke-opacity=\"0.4\"/>\
         {guide}<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"4\" y=\"11\" font-family=\"sans-serif\" font-size=\"9\" fill=\"{GUIDE_COLOR}\">{}</text></svg>",
        path.join(" "),
        escape(label)
    )
}

/// `:compare`: labelled cells side by side — run time, CPU cores, threads at most, memory
/// peak above start — each metric on its own linear scale, values printed, ratios
/// against the first cell. Returns (text with Unicode bars, HTML with CSS-width bars).
pub fn compare_table(cells: &[CellTelemetry]) -> (String, String) {
    type Metric = (&'static str, fn(&CellTelemetry) -> f64, fn(f64) -> String);
    let metrics: [Metric; 4] = [
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
            let ratio = if first > 0.0 && !std::ptr::eq(t, &cells[0]) {
                format!(" ({:.1}×)", value / first)
            } else {
                String::new()
            };
            let bar = "█".repeat((share * 12.0).round() as usize);
            text.push_str(&format!(" │ {title} {:>9}{ratio} {bar:<12}", fmt(value)));
            let color = [CPU_COLOR, CPU_COLOR, THREADS_COLOR, MEMORY_COLOR][i];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{CellTelemetry, Sample};

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
            })
            .collect();
        t
    }

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
    fn empty_and_zero_values_render() {
        let mut t = CellTelemetry::not_run(CellStatus::Ok, 0.0, 0.0, 0.0);
        t.run_ms = 0.0;
        let h = html(&t, Mode::Full);
        assert!(!h.contains("<img"), "no chart for an empty run");
        let mut one = ran(5.0);
        one.samples.truncate(1);
        one.threads_peak = 4;
        one.rss_peak_bytes = one.rss_start_bytes;
        assert!(text_line(&one).starts_with("✓ ran <0.01 s"));
        assert!(is_trivial(&one));
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
    fn html_wraps_between_fields_only() {
        let t = ran(2000.0);
        let h = html(&t, Mode::Big);
        let fields: Vec<String> = text_line(&t).split(" │ ").map(escape).collect();
        assert!(fields.len() >= 3, "{fields:?}");
        for field in &fields {
            assert!(
                h.contains(&format!(
                    "<span style=\"white-space: nowrap\">{field}</span>"
                )),
                "{field} not kept whole in {h}"
            );
        }
    }

    #[test]
    fn html_has_images_not_inline_svg_or_script() {
        let h = html(&ran(2000.0), Mode::Full);
        assert!(!h.contains("<svg") && !h.contains("<script"));
        assert_eq!(
            h.matches("<img src=\"data:image/svg+xml;base64,").count(),
            3
        );
        let encoded = h
            .split("base64,")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let svg = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap();
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"") && svg.ends_with("</svg>")
        );
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
    fn compare_table_has_a_row_per_cell() {
        let mut a = ran(2000.0);
        a.label = Some("sequential".into());
        let mut b = ran(200.0);
        b.label = Some("tasks".into());
        let (text, html) = compare_table(&[a, b]);
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("(0.1×)"), "{text}");
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

    #[test]
    fn previous_run_is_compared() {
        let mut t = ran(210.0);
        t.previous_run_ms = Some(2010.0);
        assert!(text_line(&t).starts_with("✓ ran 0.21 s, was 2.01 s: 9.6× faster"));
    }
}
