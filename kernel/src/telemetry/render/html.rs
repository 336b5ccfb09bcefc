//! The footer as HTML: the summary line kept whole field by field, a tooltip, and the
//! charts as base64 `<img>`s. Draws no chart itself (that is `svg`).

use super::line::{is_trivial, text_line};
use super::units::seconds;
use super::{charts, Mode};
use crate::telemetry::CellTelemetry;
use base64::Engine as _;

/// Charts need a run this long and this many samples.
const CHART_MIN_MS: f64 = 300.0;
const CHART_MIN_SAMPLES: usize = 5;

pub(super) fn escape(s: &str) -> String {
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
                escape(&chart.alt),
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
         memory: resident at end, peak above the start{}",
        seconds(t.run_ms),
        seconds(t.compile_ms),
        seconds(t.cpu_ms),
        if t.runtime.is_some() {
            "; tasks: alive on the shared tokio runtime at start, most at once, at end; busy: the \
             share of the workers' time spent running tasks; a stall: one poll that kept a worker \
             from every other task"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::super::ran;
    use super::*;
    use crate::telemetry::CellStatus;

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
    fn each_chart_says_in_words_what_it_shows() {
        let h = html(&ran(2000.0), Mode::Full);
        let alts: Vec<&str> = h
            .split("alt=\"")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap())
            .collect();
        assert_eq!(
            alts,
            [
                "Chart of CPU cores busy over the 2.00 s run: at most 0.5, on average 0.50",
                "Chart of threads over the 2.00 s run: 4 at the start, 1,004 at most, 1,004 at the end",
                "Chart of resident memory over the 2.00 s run: 31 MB at the start, peak 40 MB, 31 MB at the end",
            ]
        );
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
}
