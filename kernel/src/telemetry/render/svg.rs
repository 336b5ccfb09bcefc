//! The charts (CPU cores, threads, the runtime's tasks when there is one, memory) on one time axis, each a small
//! standalone SVG document. Only draws; `html` decides when charts are shown.

use super::html::escape;
use super::units::{bytes, seconds, thousands};
use super::{
    CHART_BACKGROUND, CPU_COLOR, GUIDE_COLOR, LABEL_COLOR, MEMORY_COLOR, TASKS_COLOR, THREADS_COLOR,
};
use crate::telemetry::CellTelemetry;

pub struct Chart {
    pub title: String,
    /// What the chart shows, in words, for a screen reader (the image's `alt`).
    pub alt: String,
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
    let over = format!("over the {} run", seconds(t.run_ms));
    let cpu_peak = t.samples.iter().map(|s| s.cpu_cores).fold(0.0f64, f64::max);
    let last = t.samples.last();
    let one_core = y(1.0, 0.0, cores_max);
    let start_threads = y(t.threads_start as f64, 0.0, threads_max);
    let peak_mem = y(t.rss_peak_bytes as f64, rss_min, rss_max);
    let mut charts = vec![
        Chart {
            title: format!("CPU cores over time (0–{cores_max:.0}; dashed line = 1 core)"),
            alt: format!(
                "Chart of CPU cores busy {over}: at most {cpu_peak:.1}, on average {}",
                t.cpu_cores
                    .map_or("not measured".to_string(), |c| format!("{c:.2}"))
            ),
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
            alt: format!(
                "Chart of threads {over}: {} at the start, {} at most, {} at the end",
                thousands(t.threads_start),
                thousands(t.threads_peak),
                thousands(last.map_or(t.threads_end, |s| s.threads))
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
            alt: format!(
                "Chart of resident memory {over}: {} at the start, peak {}, {} at the end",
                bytes(t.rss_start_bytes),
                bytes(t.rss_peak_bytes),
                bytes(last.map_or(t.rss_end_bytes, |s| s.rss_bytes))
            ),
            svg: svg(
                &mem_points,
                MEMORY_COLOR,
                &format!("memory peak {}", bytes(t.rss_peak_bytes)),
                Some(peak_mem),
                "1 2",
            ),
        },
    ];
    if let Some(r) = &t.runtime {
        let tasks_max = (r.tasks_peak.max(1) as f64) * 1.1;
        let mut points = vec![(x(0.0), y(r.tasks_start as f64, 0.0, tasks_max))];
        for s in t.samples.iter().filter(|s| s.tasks.is_some()) {
            let last_y = points.last().map_or(0.0, |p| p.1);
            points.push((x(s.t_ms), last_y));
            points.push((x(s.t_ms), y(s.tasks.unwrap_or(0) as f64, 0.0, tasks_max)));
        }
        charts.insert(
            2,
            Chart {
                title: format!(
                    "tasks alive on the runtime over time: {} at start (dotted), {} at most",
                    thousands(r.tasks_start),
                    thousands(r.tasks_peak)
                ),
                alt: format!(
                    "Chart of tasks alive on the tokio runtime {over}: {} at the start, {} at most, {} at the end",
                    thousands(r.tasks_start),
                    thousands(r.tasks_peak),
                    thousands(r.tasks_end)
                ),
                svg: svg(
                    &points,
                    TASKS_COLOR,
                    &format!("tasks max {}", thousands(r.tasks_peak)),
                    Some(y(r.tasks_start as f64, 0.0, tasks_max)),
                    "1 2",
                ),
            },
        );
    }
    charts
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
         <rect x=\"0.5\" y=\"0.5\" width=\"199\" height=\"39\" fill=\"{CHART_BACKGROUND}\" stroke=\"{GUIDE_COLOR}\" stroke-opacity=\"0.4\"/>\
         {guide}<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"4\" y=\"11\" font-family=\"sans-serif\" font-size=\"9\" fill=\"{LABEL_COLOR}\">{}</text></svg>",
        path.join(" "),
        escape(label)
    )
}
