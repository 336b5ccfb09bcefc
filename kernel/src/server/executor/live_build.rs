//! The compile progress of one cell, shown in place while dependencies compile and
//! collapsed to one line when the code starts. Reads cargo's progress through
//! [`crate::server::progress`]; must not block the async threads (`cargo metadata` runs
//! on a blocking thread).

use super::publish::publish_output;
use crate::engine::{CellEvent, CellId};
use crate::server::progress::{self, Tracker};
use crate::server::Kernel;
use jupyter_protocol::JupyterMessage;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// The bar is republished at least this often, so it never looks stuck.
const PROGRESS_HEARTBEAT: Duration = Duration::from_millis(900);

/// The compile progress of one cell, shown in place while dependencies compile.
pub(super) struct LiveBuild {
    pub(super) tracker: Tracker,
    id: String,
    crate_dir: std::path::PathBuf,
    shown: bool,
    collapsed: bool,
    /// The cell declares dependencies (`:dep`): cargo may resolve (and download) for a
    /// while before the first crate compiles; say so instead of staying silent.
    declares_deps: bool,
    last_sent: Instant,
    /// Package names from `cargo metadata`, once known.
    packages: Option<Vec<String>>,
    /// A `cargo metadata` running on a blocking thread, and when the last one started.
    asking: Option<std::sync::mpsc::Receiver<Option<Vec<String>>>>,
    asked_at: Option<Instant>,
}

impl LiveBuild {
    pub(super) fn start(kernel: &Kernel, cell: CellId, code: &str) -> LiveBuild {
        LiveBuild {
            tracker: Tracker::start(&kernel.engine.build_events_file()),
            id: format!("rustmeter-build-{}-{cell}", std::process::id()),
            crate_dir: kernel.engine.crate_dir(),
            shown: false,
            collapsed: false,
            declares_deps: code.lines().any(|l| l.trim_start().starts_with(":dep ")),
            last_sent: Instant::now(),
            packages: None,
            asking: None,
            asked_at: None,
        }
    }

    pub(super) fn tick(&mut self, kernel: &Kernel, parent: &JupyterMessage) {
        let changed = self.tracker.poll();
        if !self.tracker.compiles_dependencies() {
            let elapsed = self.tracker.started.elapsed();
            let due = !self.shown || self.last_sent.elapsed() >= PROGRESS_HEARTBEAT;
            if self.declares_deps && !self.collapsed && elapsed >= PROGRESS_HEARTBEAT && due {
                let (text, html) = progress::render_preparing(elapsed.as_secs_f64());
                let json = serde_json::json!({
                    "done": 0, "total": null, "from_cache": 0, "current": [],
                    "elapsed_s": elapsed.as_secs_f64(), "finished": false,
                });
                self.publish(kernel, parent, text, html, json);
            }
            return;
        }
        if self.collapsed {
            // Compiling again after the code started (a later step of the cell).
            if !changed || self.tracker.running.is_empty() {
                return;
            }
            self.collapsed = false;
        }
        self.ask_total();
        if !changed && self.shown && self.last_sent.elapsed() < PROGRESS_HEARTBEAT {
            return;
        }
        let total = self.tracker.total(self.packages.as_deref());
        let current = self.tracker.current();
        let elapsed = self.tracker.started.elapsed().as_secs_f64();
        let done = self.tracker.done.len();
        let (text, html) = progress::render_progress(done, total, &current, elapsed);
        let json = serde_json::json!({
            "done": done,
            "total": total,
            "from_cache": self.tracker.from_cache(),
            "current": current,
            "elapsed_s": elapsed,
            "finished": false,
        });
        self.publish(kernel, parent, text, html, json);
    }

    /// Starts `cargo metadata` off the async threads, or picks up its answer.
    fn ask_total(&mut self) {
        if self.packages.is_some() {
            return;
        }
        if let Some(rx) = &self.asking {
            match rx.try_recv() {
                Ok(answer) => {
                    self.packages = answer;
                    self.asking = None;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
                Err(_) => self.asking = None,
            }
            return;
        }
        // The lock file may not name this cell's dependencies yet: ask again later.
        if self
            .asked_at
            .is_some_and(|at| at.elapsed() < Duration::from_secs(2))
        {
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = self.crate_dir.clone();
        tokio::task::spawn_blocking(move || {
            let host = progress::host_triple();
            let _ = tx.send(progress::cargo_packages(&dir, host.as_deref()));
        });
        self.asking = Some(rx);
        self.asked_at = Some(Instant::now());
    }

    /// The bar becomes one line (compilation is over, or the cell ended).
    pub(super) fn collapse(&mut self, kernel: &Kernel, parent: &JupyterMessage) {
        self.tracker.poll();
        if !self.shown || self.collapsed {
            return;
        }
        self.collapsed = true;
        let elapsed = self.tracker.started.elapsed().as_secs_f64();
        let done = self.tracker.done.len();
        if !self.tracker.compiles_dependencies() {
            // Only "preparing" was shown and nothing needed compiling: clear it.
            let json = serde_json::json!({
                "done": 0, "total": 0, "from_cache": 0, "current": [],
                "elapsed_s": elapsed, "finished": true,
            });
            self.publish(kernel, parent, String::new(), String::new(), json);
            return;
        }
        let from_cache = self.tracker.from_cache();
        let (text, html) = progress::render_done(done, from_cache, elapsed);
        let json = serde_json::json!({
            "done": done,
            "total": done,
            "from_cache": from_cache,
            "current": [],
            "elapsed_s": elapsed,
            "finished": true,
        });
        self.publish(kernel, parent, text, html, json);
    }

    fn publish(
        &mut self,
        kernel: &Kernel,
        parent: &JupyterMessage,
        text: String,
        html: String,
        json: Value,
    ) {
        let mut data = Map::new();
        data.insert("text/plain".into(), Value::String(text));
        data.insert("text/html".into(), Value::String(html));
        data.insert(progress::PROGRESS_MIME.into(), json);
        publish_output(
            kernel,
            parent,
            CellEvent::Display {
                data,
                metadata: Map::new(),
                display_id: Some(self.id.clone()),
                update: self.shown,
            },
        );
        self.shown = true;
        self.last_sent = Instant::now();
    }
}
