//! `rustmeter prewarm [--cache DIR]`: compiles the tutorial's canonical dependencies
//! (tokio 1 with `full` through rustmeter's shim, and the `rustmeter` API crate) through
//! a real engine, so that they land in a cache tier and the first `:dep tokio` of every
//! later kernel is a cache hit.
//!
//! Owns only that sequence and its summary; the engine plans the cells exactly as in a
//! notebook (the same shim lines), and the wrapper does the caching.

use crate::depcache::record::{parse_event, BuildEvent};
use crate::depcache::CANONICAL_CELLS;
use crate::engine::{CellEvent, CellOutcome, Engine};
use crate::workdir::WorkDir;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Runs the canonical cells; `cache` makes DIR the tier written. Must be called while
/// the process is still single-threaded (it sets environment variables).
pub fn run(cache: Option<PathBuf>) -> Result<String, String> {
    if !crate::depcache::enabled() {
        return Err(format!(
            "the dependency cache is off ({}={}): nothing to prewarm",
            crate::settings::DEP_CACHE.name,
            crate::settings::text(&crate::settings::DEP_CACHE).unwrap_or_default()
        ));
    }
    let tier = match cache {
        Some(dir) => {
            crate::depcache::store::create_dirs(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            let dir = std::fs::canonicalize(&dir).map_err(|e| e.to_string())?;
            std::env::set_var(crate::settings::DEP_CACHE_TIER.name, &dir);
            dir
        }
        None => crate::depcache::Tiers::from_env().write.root,
    };
    let workdir = WorkDir::create().map_err(|e| format!("work folder: {e}"))?;
    std::fs::create_dir_all(workdir.evcxr_dir()).map_err(|e| e.to_string())?;
    std::env::set_var("EVCXR_TMPDIR", workdir.evcxr_dir());
    let events_file = workdir.build_events_file();

    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = Engine::start(workdir, tx);
    engine.on_running_change(crate::spare::pause::while_code_runs);
    let mut failure = None;
    for (id, code) in (1..).zip(CANONICAL_CELLS) {
        engine.execute(id, code.to_string(), false);
        let mut stderr = String::new();
        while let Some(event) = rx.blocking_recv() {
            match event.event {
                CellEvent::Stream { stderr: true, text } => stderr.push_str(&text),
                CellEvent::Finished(CellOutcome::Error(e)) => {
                    failure = Some(format!(
                        "`{code}` failed: {} {}\n{stderr}",
                        e.ename, e.evalue
                    ));
                    break;
                }
                CellEvent::Finished(_) => break,
                _ => {}
            }
        }
        if failure.is_some() {
            break;
        }
    }
    let summary = summarize(&std::fs::read_to_string(&events_file).unwrap_or_default());
    engine.shutdown();
    if let Some(failure) = failure {
        return Err(failure);
    }
    Ok(format!(
        "prewarmed {} in {:.1} s\n{summary}",
        tier.display(),
        started.elapsed().as_secs_f64()
    ))
}

/// `N crates: X compiled, Y already cached, Z passed through`, then the slowest ones.
fn summarize(events: &str) -> String {
    let mut ends: Vec<(String, String, u64)> = events
        .lines()
        .filter_map(parse_event)
        .filter_map(|e| match e {
            BuildEvent::End {
                crate_name,
                outcome,
                ms,
                ..
            } => Some((crate_name, outcome, ms)),
            BuildEvent::Start { .. } | BuildEvent::Link { .. } => None,
        })
        .collect();
    let count = |o: &str| ends.iter().filter(|e| e.1 == o).count();
    let mut text = format!(
        "{} crates: {} compiled and stored, {} already cached, {} not cacheable (cell code, build scripts)\n",
        ends.len(),
        count("miss"),
        count("hit"),
        count("pass")
    );
    ends.sort_by_key(|e| std::cmp::Reverse(e.2));
    for (name, outcome, ms) in ends.iter().take(12) {
        let secs = Duration::from_millis(*ms).as_secs_f64();
        text.push_str(&format!("  {name:<24} {outcome:<5} {secs:>6.1} s\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_outcomes() {
        let text =
            summarize("start tokio 1\nend tokio miss 9000\nend itoa hit 3\nend ctx pass 800\n");
        assert!(
            text.starts_with("3 crates: 1 compiled and stored, 1 already cached, 1 not cacheable"),
            "{text}"
        );
        assert!(text.contains("tokio"));
    }
}
