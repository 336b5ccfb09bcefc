//! Compile progress of a cell: what the rustc wrapper wrote to the build-events file
//! (`depcache::record`), tailed while the cell compiles, turned into a progress bar the
//! executor shows in place (`display_id`), and collapsed to one line when it is over.
//!
//! cargo prints no totals when stderr is not a terminal, and evcxr sends cargo's
//! "Compiling" lines to the kernel's own stderr (no callback in evcxr 0.22), so the
//! total is estimated from `cargo metadata` in evcxr's crate folder and the per-crate
//! progress comes from the wrapper's events.
//!
//! Owns the parsing, the state and the rendering (pure functions); the executor owns
//! the Jupyter messages.

use crate::depcache::record::{parse_event, BuildEvent};
use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The cell crate evcxr builds (its `CRATE_NAME`); the wrapper passes it through.
pub const CELL_CRATE: &str = "ctx";

/// MIME type of the progress display's machine-readable copy.
pub const PROGRESS_MIME: &str = "application/vnd.rustmeter.build-progress+json";

/// One crate's end event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub crate_name: String,
    /// `hit`, `miss` or `pass`.
    pub outcome: String,
    pub ms: u64,
}

/// The build of one cell, read from the events file from where it stood at cell start.
pub struct Tracker {
    file: PathBuf,
    offset: u64,
    partial: String,
    pub started: Instant,
    /// Dependency crates started and not yet ended, in start order.
    pub running: Vec<String>,
    /// Dependency crates ended (build scripts and the cell crate are not counted).
    pub done: Vec<Ended>,
    /// Build-script compiles ended (not counted as crates).
    pub build_scripts: usize,
    /// The cell crate is compiling now.
    pub cell_running: bool,
    /// Every line read, with its time since cell start, for `:last_build_log`.
    pub lines: Vec<(f64, String)>,
    /// Crates this kernel compiled before this cell (not rebuilt; not in the total).
    pub built_before: HashSet<String>,
    /// When the build steps happened, from the events' time stamps.
    pub times: BuildTimes,
    /// `started` as Unix µs, to place the events' stamps on this clock.
    started_us: u64,
    /// Where cargo's held-back lines stood at cell start (`log::tool_lines_mark`).
    tool_lines_mark: u64,
}

/// When a cell's build steps happened (on the kernel's clock), for `CompileParts`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildTimes {
    /// First dependency start and last dependency end.
    pub deps: Option<(Instant, Instant)>,
    /// rustc on the cell crate, links included, summed over its runs.
    pub cell_ms: u64,
    pub cell_link_ms: u64,
    pub cell_builds: u32,
    /// When the last run of rustc on the cell crate ended.
    pub cell_ended: Option<Instant>,
}

impl Tracker {
    /// Starts reading `file` at its current end; earlier lines only tell which crates
    /// this kernel already built.
    pub fn start(file: &Path) -> Tracker {
        let before = std::fs::read_to_string(file).unwrap_or_default();
        let built_before = before
            .lines()
            .filter_map(parse_event)
            .filter_map(|e| match e {
                BuildEvent::End { crate_name, .. } => Some(crate_name),
                BuildEvent::Start { .. } | BuildEvent::Link { .. } => None,
            })
            .collect();
        Tracker {
            file: file.to_path_buf(),
            offset: before.len() as u64,
            partial: String::new(),
            started: Instant::now(),
            running: Vec::new(),
            done: Vec::new(),
            build_scripts: 0,
            cell_running: false,
            lines: Vec::new(),
            built_before,
            times: BuildTimes::default(),
            started_us: crate::depcache::record::unix_us(),
            tool_lines_mark: crate::log::tool_lines_mark(),
        }
    }

    /// Reads what was appended since the last poll; true if anything changed.
    pub fn poll(&mut self) -> bool {
        let Ok(mut file) = std::fs::File::open(&self.file) else {
            return false;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return false;
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() || bytes.is_empty() {
            return false;
        }
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let text = std::mem::take(&mut self.partial);
        let (complete, rest) = match text.rfind('\n') {
            Some(at) => text.split_at(at + 1),
            None => ("", text.as_str()),
        };
        self.partial = rest.to_string();
        let at = self.started.elapsed().as_secs_f64();
        let mut changed = false;
        for line in complete.lines() {
            self.lines.push((at, line.to_string()));
            if let Some(event) = parse_event(line) {
                self.apply(event);
                changed = true;
            }
        }
        changed
    }

    /// An event's stamp on this tracker's clock (`started` + the difference).
    fn instant_of(&self, at_us: Option<u64>) -> Option<Instant> {
        let at_us = at_us?;
        let started = self.started;
        match at_us.checked_sub(self.started_us) {
            Some(after) => started.checked_add(std::time::Duration::from_micros(after)),
            None => started.checked_sub(std::time::Duration::from_micros(self.started_us - at_us)),
        }
    }

    fn apply(&mut self, event: BuildEvent) {
        match event {
            BuildEvent::Start { crate_name, .. } if crate_name == CELL_CRATE => {
                self.cell_running = true
            }
            BuildEvent::Start {
                crate_name, at_us, ..
            } => {
                if let Some(at) = self.instant_of(at_us) {
                    let deps = self.times.deps.get_or_insert((at, at));
                    deps.0 = deps.0.min(at);
                }
                self.running.push(crate_name)
            }
            BuildEvent::Link { crate_name, ms, .. } => {
                if crate_name == CELL_CRATE {
                    self.times.cell_link_ms += ms;
                }
            }
            BuildEvent::End {
                crate_name,
                outcome,
                ms,
                at_us,
            } => {
                let at = self.instant_of(at_us);
                if crate_name == CELL_CRATE {
                    self.cell_running = false;
                    self.times.cell_ms += ms;
                    self.times.cell_builds += 1;
                    self.times.cell_ended = at.or(self.times.cell_ended);
                    return;
                }
                if let (Some(at), Some(deps)) = (at, self.times.deps.as_mut()) {
                    deps.1 = deps.1.max(at);
                }
                if let Some(i) = self.running.iter().position(|c| *c == crate_name) {
                    self.running.remove(i);
                }
                if crate_name.starts_with("build_script_") {
                    self.build_scripts += 1;
                } else {
                    self.done.push(Ended {
                        crate_name,
                        outcome,
                        ms,
                    });
                }
            }
        }
    }

    /// A dependency (not the cell crate) started or ended: worth a progress display.
    pub fn compiles_dependencies(&self) -> bool {
        !self.done.is_empty() || !self.running.is_empty() || self.build_scripts > 0
    }

    pub fn from_cache(&self) -> usize {
        self.done.iter().filter(|e| e.outcome == "hit").count()
    }

    /// What is compiling now, for the bar.
    pub fn current(&self) -> Vec<String> {
        let mut current: Vec<String> = self
            .running
            .iter()
            .map(|c| {
                if c.starts_with("build_script_") {
                    "a build script".to_string()
                } else {
                    c.clone()
                }
            })
            .collect();
        current.dedup();
        if self.cell_running {
            current.push("your cell".into());
        }
        current
    }

    /// The cell's total estimate from `cargo metadata`'s package count: packages this
    /// kernel did not build before (never less than what is done and running).
    pub fn total(&self, packages: Option<&[String]>) -> Option<usize> {
        let packages = packages?;
        let new = packages
            .iter()
            .filter(|p| !self.built_before.contains(*p))
            .count();
        let seen = self.done.len() + self.running.len();
        Some(new.max(seen))
    }

    /// The log `:last_build_log` shows.
    pub fn log(&self, cell: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let mut text = format!(
            "build of cell {cell}: {} crates ({} from cache, {} compiled), {} build scripts, {:.1} s\n",
            self.done.len(),
            self.from_cache(),
            self.done.iter().filter(|e| e.outcome != "hit").count(),
            self.build_scripts,
            secs
        );
        text.push_str("  at      event (crate, outcome: hit = from the cache, miss = compiled and stored, pass = not cacheable; ms)\n");
        for (at, line) in &self.lines {
            text.push_str(&format!("  {at:>6.1}s {line}\n"));
        }
        match crate::log::tool_lines_since(self.tool_lines_mark) {
            Some(lines) if !lines.is_empty() => {
                text.push_str("cargo's own lines:\n");
                for line in lines {
                    text.push_str(&format!("  {}\n", line.trim()));
                }
            }
            Some(_) => text.push_str("cargo printed nothing for this build\n"),
            None => text.push_str(
                "(cargo's own \"Compiling …\" lines are in the kernel's log at RUSTMETER_LOG=debug)\n",
            ),
        }
        text
    }
}

/// The bar while compiling: text and HTML. `total` unknown shows a count so far.
pub fn render_progress(
    done: usize,
    total: Option<usize>,
    current: &[String],
    elapsed_s: f64,
) -> (String, String) {
    let now = if current.is_empty() {
        String::new()
    } else {
        format!("  compiling {}", current.join(", "))
    };
    let (text_bar, html_bar, count) = match total {
        Some(total) if total > 0 => {
            let done = done.min(total);
            let width = 24;
            let filled = done * width / total;
            let bar = format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled));
            let pct = done as f64 * 100.0 / total as f64;
            let html = format!(
                "<div style=\"display:inline-block;width:16em;height:0.8em;border:1px solid #888;\
                 vertical-align:middle;margin-right:0.5em\"><div style=\"width:{pct:.0}%;height:100%;\
                 background:#4a90d9\"></div></div>"
            );
            (format!("{bar} "), html, format!("{done}/{total} crates"))
        }
        _ => (
            String::new(),
            String::new(),
            format!("{done} crates compiled so far"),
        ),
    };
    let text = format!("compiling dependencies {text_bar}{count}{now}  {elapsed_s:.1} s");
    let html = format!(
        "<div class=\"rustmeter-build\" style=\"font-family:monospace\">{html_bar}{} {}{}  {elapsed_s:.1} s</div>",
        "compiling dependencies",
        escape(&count),
        escape(&now)
    );
    (text, html)
}

/// Before the first crate compiles, in a cell that declares dependencies.
pub fn render_preparing(elapsed_s: f64) -> (String, String) {
    let text = format!(
        "preparing the build: cargo resolves (and may download) dependencies  {elapsed_s:.1} s"
    );
    let html = format!(
        "<div class=\"rustmeter-build\" style=\"font-family:monospace\">{}</div>",
        escape(&text)
    );
    (text, html)
}

/// The one line left when the build is over.
pub fn render_done(done: usize, from_cache: usize, elapsed_s: f64) -> (String, String) {
    let text = format!(
        "compiled {done} crate{} ({from_cache} from cache) in {elapsed_s:.1} s  (:last_build_log for details)",
        if done == 1 { "" } else { "s" }
    );
    let html = format!(
        "<div class=\"rustmeter-build\" style=\"font-family:monospace;color:#666\">{}</div>",
        escape(&text)
    );
    (text, html)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Names of the packages cargo will build for evcxr's crate in `crate_dir` (the root
/// package itself excluded), for the host platform; `None` if cargo cannot tell yet
/// (no lock file, offline without the index). Reads only: `--offline --locked`.
pub fn cargo_packages(crate_dir: &Path, host: Option<&str>) -> Option<Vec<String>> {
    if !crate_dir.join("Cargo.lock").is_file() {
        return None;
    }
    let mut command = std::process::Command::new("cargo");
    command
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .current_dir(crate_dir)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(host) = host {
        command.args(["--filter-platform", host]);
    }
    let output = command.output().ok()?;
    if !output.status.success() {
        return None;
    }
    packages_from_metadata(&String::from_utf8_lossy(&output.stdout))
}

/// The resolve's nodes other than the root, by crate name (`-` as `_`, as rustc names
/// them in the events).
pub fn packages_from_metadata(json: &str) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let resolve = v.get("resolve")?;
    let root = resolve.get("root").and_then(|r| r.as_str());
    let names = resolve
        .get("nodes")?
        .as_array()?
        .iter()
        .filter_map(|n| n.get("id")?.as_str())
        .filter(|id| Some(*id) != root)
        .filter_map(|id| {
            v.get("packages")?
                .as_array()?
                .iter()
                .find(|p| p.get("id").and_then(|i| i.as_str()) == Some(id))
                .and_then(lib_name)
        })
        .collect();
    Some(names)
}

/// The package's lib target name (what `--crate-name` says), else its name.
fn lib_name(package: &serde_json::Value) -> Option<String> {
    let targets = package.get("targets").and_then(|t| t.as_array());
    let lib = targets.and_then(|ts| {
        ts.iter().find(|t| {
            t.get("kind").and_then(|k| k.as_array()).is_some_and(|k| {
                k.iter()
                    .any(|k| matches!(k.as_str(), Some("lib" | "rlib" | "proc-macro")))
            })
        })
    });
    let name = lib
        .and_then(|t| t.get("name"))
        .or_else(|| package.get("name"))?
        .as_str()?;
    Some(name.replace('-', "_"))
}

/// The host triple from `rustc -vV` (remembered by the cache's writable tier).
pub fn host_triple() -> Option<String> {
    let tier = crate::depcache::Tiers::from_env().write;
    let text = crate::depcache::rustc_version(Path::new("rustc"), &tier).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_with_and_without_total() {
        let (text, html) = render_progress(12, Some(31), &["tokio".into()], 14.26);
        assert_eq!(
            text,
            "compiling dependencies [#########---------------] 12/31 crates  compiling tokio  14.3 s"
        );
        assert!(html.contains("width:39%"), "{html}");
        let (text, _) = render_progress(3, None, &[], 2.0);
        assert_eq!(
            text,
            "compiling dependencies 3 crates compiled so far  2.0 s"
        );
        let (text, _) = render_done(31, 21, 38.24);
        assert!(
            text.starts_with("compiled 31 crates (21 from cache) in 38.2 s"),
            "{text}"
        );
    }

    #[test]
    fn tracker_tails_appended_lines_and_skips_the_cell_crate() {
        let dir = std::env::temp_dir().join(format!("rustmeter-progress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("build-events.log");
        std::fs::write(&file, "start itoa 1\nend itoa miss 10\n").unwrap();
        let mut t = Tracker::start(&file);
        assert!(!t.poll());
        crate::depcache::record::append_line(&file, "start ctx 2");
        assert!(t.poll());
        assert!(!t.compiles_dependencies());
        crate::depcache::record::append_line(&file, "end ctx pass 5");
        crate::depcache::record::append_line(&file, "start ryu 3");
        crate::depcache::record::append_line(&file, "start build_script_build 4");
        t.poll();
        assert_eq!(t.current(), vec!["ryu", "a build script"]);
        // A line being written is kept until its newline arrives.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .map(|mut f| std::io::Write::write_all(&mut f, b"end ryu hit 2"))
            .unwrap()
            .unwrap();
        t.poll();
        assert!(t.done.is_empty());
        crate::depcache::record::append_line(&file, "");
        crate::depcache::record::append_line(&file, "end build_script_build pass 9");
        t.poll();
        assert_eq!(t.done.len(), 1);
        assert_eq!(t.from_cache(), 1);
        assert_eq!(t.build_scripts, 1);
        let packages = vec!["itoa".to_string(), "ryu".into(), "serde".into()];
        assert_eq!(t.total(Some(&packages)), Some(2), "itoa was built before");
        assert!(t.log(3).contains("end ryu hit 2"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn metadata_packages_exclude_the_root_and_use_lib_names() {
        let json = r#"{"packages":[
            {"id":"ctx 0.1","name":"ctx","targets":[{"kind":["cdylib"],"name":"ctx"}]},
            {"id":"proc-macro2 1","name":"proc-macro2","targets":[{"kind":["lib"],"name":"proc_macro2"},{"kind":["custom-build"],"name":"build-script-build"}]},
            {"id":"tokio 1","name":"tokio","targets":[{"kind":["lib"],"name":"tokio"}]}],
            "resolve":{"root":"ctx 0.1","nodes":[{"id":"ctx 0.1"},{"id":"proc-macro2 1"},{"id":"tokio 1"}]}}"#;
        assert_eq!(
            packages_from_metadata(json),
            Some(vec!["proc_macro2".to_string(), "tokio".into()])
        );
    }
}
