//! The execution queue: runs `execute_request`s one at a time, publishes what the engine
//! reports for each (streams, displays, input prompts, the result or the one error), and
//! after an error aborts the requests already waiting, as ipykernel does.

use super::meter::{CellMeter, Display};
use super::overflow::{self, OutputBudget, Route};
use super::progress::{self, Tracker};
use super::{commands, log, wire, Kernel};
use crate::engine::{CellEvent, CellId, CellOutcome, EngineEvent, ErrorKind};
use crate::telemetry::render::{self, Mode};
use crate::telemetry::{CellStatus, CellTelemetry};
use jupyter_protocol::{
    ClearOutput, DisplayData, ErrorOutput, ExecuteInput, ExecuteReply, ExecuteRequest,
    ExecuteResult, ExecutionCount, InputRequest, JupyterMessage, JupyterMessageContent, Media,
    ReplyError, ReplyStatus, Status, StreamContent, Transient, UpdateDisplayData,
};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The live footer appears once the user's code has run this long …
const LIVE_AFTER_MS: f64 = 500.0;
/// … and is refreshed this often (≥ 2 updates a second).
const LIVE_EVERY: Duration = Duration::from_millis(400);

/// Compile progress is read this often while a cell compiles …
const PROGRESS_EVERY: Duration = Duration::from_millis(300);
/// … and the bar republished at least this often, so it never looks stuck.
const PROGRESS_HEARTBEAT: Duration = Duration::from_millis(900);

/// MIME type of the footer's machine-readable copy.
pub const TELEMETRY_MIME: &str = "application/vnd.rustmeter.telemetry+json";
use tokio::sync::mpsc;

/// An execute request waiting its turn.
pub struct Queued {
    pub message: JupyterMessage,
    pub request: ExecuteRequest,
    pub received: Instant,
}

impl Queued {
    pub fn new(message: JupyterMessage, request: ExecuteRequest) -> Queued {
        Queued {
            message,
            request,
            received: Instant::now(),
        }
    }
}

/// Parents of recent cells, so output a background thread prints after its cell ended
/// still lands under that cell.
struct RecentParents {
    cells: VecDeque<(CellId, JupyterMessage)>,
}

impl RecentParents {
    fn remember(&mut self, cell: CellId, parent: JupyterMessage) {
        self.cells.push_back((cell, parent));
        if self.cells.len() > 16 {
            self.cells.pop_front();
        }
    }

    fn get(&self, cell: CellId) -> Option<&JupyterMessage> {
        self.cells
            .iter()
            .rev()
            .find(|(c, _)| *c == cell)
            .map(|(_, p)| p)
    }
}

pub async fn run(
    kernel: Arc<Kernel>,
    mut queue: mpsc::UnboundedReceiver<Queued>,
    mut events: mpsc::UnboundedReceiver<EngineEvent>,
) {
    let mut count: usize = 0;
    let mut next_cell: CellId = 1;
    let mut recent = RecentParents {
        cells: VecDeque::new(),
    };
    loop {
        let queued = tokio::select! {
            q = queue.recv() => match q { Some(q) => q, None => return },
            e = events.recv() => {
                match e {
                    Some(event) => publish_background(&kernel, &recent, event),
                    None => return,
                }
                continue;
            }
        };
        let cell = next_cell;
        next_cell += 1;
        let silent = queued.request.silent;
        let failed = execute(&kernel, &queued, cell, &mut count, &mut events, &recent).await;
        if !silent {
            recent.remember(cell, queued.message.clone());
        }
        if failed && queued.request.stop_on_error && !silent {
            abort_waiting(&kernel, &mut queue, count).await;
        }
    }
}

/// Runs one cell to the end; true if it failed.
/// Publishes what the engine reports for `cell` until it finishes, with the live footer.
#[allow(clippy::too_many_arguments)]
async fn run_events(
    kernel: &Arc<Kernel>,
    parent: &JupyterMessage,
    cell: CellId,
    silent: bool,
    shown: Display,
    code: &str,
    meter: &mut CellMeter,
    events: &mut mpsc::UnboundedReceiver<EngineEvent>,
    recent: &RecentParents,
) -> CellOutcome {
    let live_id = format!("rustmeter-live-{cell}");
    let mut live_shown = false;
    let saved_to = crate::workdir::cache_dir()
        .join("outputs")
        .join(format!("kernel-{}-cell-{cell}.txt", std::process::id()));
    let mut budget = OutputBudget::new(overflow::limit_from_env(), saved_to);
    let mut ticker = tokio::time::interval(LIVE_EVERY);
    let mut build = (!silent).then(|| LiveBuild::start(kernel, cell, code));
    let mut build_ticker = tokio::time::interval(PROGRESS_EVERY);
    let outcome = loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = build_ticker.tick(), if build.is_some() => {
                if let Some(build) = build.as_mut() {
                    build.tick(kernel, parent);
                }
                continue;
            }
            _ = ticker.tick(), if shown != Display::Off => {
                if let Some((run_ms, view)) = meter.live().filter(|(ms, _)| *ms >= LIVE_AFTER_MS) {
                    let line = render::live_line(run_ms, view.cpu_cores_now, view.threads, view.rss_bytes);
                    publish_live(kernel, parent, &live_id, line, live_shown);
                    live_shown = true;
                }
                continue;
            }
        };
        let Some(event) = event else {
            break CellOutcome::Error(crate::engine::report::message(
                "kernel error",
                "the engine stopped",
            ));
        };
        if event.cell != cell {
            publish_background(kernel, recent, event);
            continue;
        }
        match event.event {
            CellEvent::Finished(outcome) => break outcome,
            CellEvent::Started { child_pid } => meter.started(child_pid, shown != Display::Off),
            CellEvent::RunStarted { at } => {
                meter.run_started(at);
                if let Some(build) = build.as_mut() {
                    build.collapse(kernel, parent);
                }
            }
            CellEvent::RunEnded { at } => meter.run_ended(at),
            CellEvent::Note { key, value } => meter.note(key, value),
            CellEvent::InputRequest {
                prompt,
                password,
                reply,
            } => {
                let answer = ask_input(kernel, parent, prompt, password).await;
                let _ = reply.send(answer);
            }
            other if silent => drop(other),
            CellEvent::Stream { stderr, text } => match budget.route(text) {
                Route::Publish(text) => {
                    publish_output(kernel, parent, CellEvent::Stream { stderr, text })
                }
                Route::PublishThenNote(text, note) => {
                    publish_output(kernel, parent, CellEvent::Stream { stderr, text });
                    publish_output(
                        kernel,
                        parent,
                        CellEvent::Stream {
                            stderr: true,
                            text: note,
                        },
                    );
                }
                Route::Saved => {}
            },
            other => publish_output(kernel, parent, other),
        }
    };
    if let Some(mut build) = build {
        build.collapse(kernel, parent);
        if !build.tracker.lines.is_empty() {
            *kernel
                .last_build_log
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(build.tracker.log(cell));
        }
    }
    if let Some(summary) = budget.summary() {
        publish_output(
            kernel,
            parent,
            CellEvent::Stream {
                stderr: true,
                text: summary,
            },
        );
    }
    if live_shown {
        // Emptied, so the final footer is the one footer of this cell.
        publish_live(kernel, parent, &live_id, String::new(), true);
    }
    outcome
}

async fn execute(
    kernel: &Arc<Kernel>,
    queued: &Queued,
    cell: CellId,
    count: &mut usize,
    events: &mut mpsc::UnboundedReceiver<EngineEvent>,
    recent: &RecentParents,
) -> bool {
    let parent = &queued.message;
    let request = &queued.request;
    let silent = request.silent;
    kernel.iopub.status(Status::busy(), parent);
    if !silent && request.store_history {
        *count += 1;
    }
    let execution_count = ExecutionCount::new(*count);
    if !silent {
        kernel.iopub.send(wire::child_of(
            ExecuteInput {
                code: request.code.clone(),
                execution_count,
            },
            parent,
        ));
        if request.store_history {
            kernel
                .history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(*count, &request.code);
        }
    }
    let mut meter = CellMeter::new(queued.received);
    let commands = commands::take(&request.code);
    let shown = if silent {
        Display::Off
    } else {
        kernel.settings().display
    };
    let label = if silent {
        None
    } else {
        commands
            .label
            .clone()
            .or_else(|| kernel.settings().pending_label.take())
    };
    // Cells that were only rustmeter commands ran nothing worth a footer or a record.
    let mut shown = shown;
    let mut only_commands = false;
    let outcome = match commands::run_local(kernel, parent, &commands) {
        Some(outcome) => {
            meter.started(0, false);
            shown = Display::Off;
            only_commands = true;
            outcome
        }
        None => {
            kernel
                .engine
                .execute(cell, commands.code.clone(), request.allow_stdin);
            run_events(
                kernel,
                parent,
                cell,
                silent,
                shown,
                &commands.code,
                &mut meter,
                events,
                recent,
            )
            .await
        }
    };
    let (mut telemetry, meter_cost) = meter.finish(status_of(&outcome));
    let render_started = Instant::now();
    telemetry.label = label;
    if !silent && !only_commands {
        kernel.settings().record(&request.code, &mut telemetry);
    }

    let (reply, failed) = match outcome {
        CellOutcome::Ok { data } => {
            if !silent && !data.is_empty() {
                if request.store_history {
                    if let Some(Value::String(text)) = data.get("text/plain") {
                        kernel
                            .history
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .set_output(*count, text);
                    }
                }
                kernel.iopub.send(wire::child_of(
                    ExecuteResult {
                        execution_count,
                        data: media(data),
                        metadata: Map::new(),
                        // `{}`, not null: the message schema wants an object.
                        transient: Some(Transient::default()),
                    },
                    parent,
                ));
            }
            if let Display::On(mode) = shown {
                kernel
                    .iopub
                    .send(wire::child_of(footer(&telemetry, mode), parent));
            }
            let reply = ExecuteReply {
                status: ReplyStatus::Ok,
                execution_count,
                user_expressions: Some(Default::default()),
                ..Default::default()
            };
            (reply, false)
        }
        CellOutcome::Error(mut error) => {
            // A failed cell has exactly one error message: its footer is the last line.
            if shown != Display::Off {
                error.traceback.push(render::text_line(&telemetry));
            }
            if !silent {
                kernel.iopub.send(wire::child_of(
                    ErrorOutput {
                        ename: error.ename.clone(),
                        evalue: error.evalue.clone(),
                        traceback: error.traceback.clone(),
                    },
                    parent,
                ));
            }
            let reply = ExecuteReply {
                status: ReplyStatus::Error,
                execution_count,
                user_expressions: Some(Default::default()),
                error: Some(Box::new(ReplyError {
                    ename: error.ename,
                    evalue: error.evalue,
                    traceback: error.traceback,
                })),
                ..Default::default()
            };
            (reply, true)
        }
    };
    // What telemetry cost this cell on its critical path (for bench/telemetry_overhead).
    let overhead_ms = (meter_cost + render_started.elapsed()).as_secs_f64() * 1000.0;
    let mut reply = wire::child_of(reply, parent);
    reply.metadata = serde_json::json!({
        "started": chrono::Utc::now().to_rfc3339(),
        "status": status_word(failed),
    });
    if !silent {
        reply.metadata["rustmeter"] = telemetry.to_json();
        reply.metadata["rustmeter_overhead_ms"] = overhead_ms.into();
    }
    send_shell(kernel, reply).await;
    kernel.iopub.status(Status::idle(), parent);
    failed
}

fn status_word(failed: bool) -> &'static str {
    if failed {
        "error"
    } else {
        "ok"
    }
}

/// Requests already queued when a cell failed are answered `aborted` without running.
async fn abort_waiting(
    kernel: &Arc<Kernel>,
    queue: &mut mpsc::UnboundedReceiver<Queued>,
    count: usize,
) {
    while let Ok(queued) = queue.try_recv() {
        let parent = &queued.message;
        kernel.iopub.status(Status::busy(), parent);
        let reply = ExecuteReply {
            status: ReplyStatus::Aborted,
            execution_count: ExecutionCount::new(count),
            user_expressions: Some(Default::default()),
            ..Default::default()
        };
        send_shell(kernel, wire::child_of(reply, parent)).await;
        kernel.iopub.status(Status::idle(), parent);
    }
}

async fn send_shell(kernel: &Kernel, reply: JupyterMessage) {
    if let Err(e) = kernel.shell.lock().await.send(reply).await {
        log(&format!("shell: could not send execute_reply: {e}"));
    }
}

fn publish_background(kernel: &Kernel, recent: &RecentParents, event: EngineEvent) {
    let Some(parent) = recent.get(event.cell) else {
        return;
    };
    match event.event {
        CellEvent::Stream { .. } | CellEvent::Display { .. } | CellEvent::ClearOutput { .. } => {
            publish_output(kernel, parent, event.event)
        }
        _ => {}
    }
}

fn publish_output(kernel: &Kernel, parent: &JupyterMessage, event: CellEvent) {
    let content: JupyterMessageContent = match event {
        CellEvent::Stream { stderr, text } => {
            if stderr {
                StreamContent::stderr(&text).into()
            } else {
                StreamContent::stdout(&text).into()
            }
        }
        CellEvent::Display {
            data,
            metadata,
            display_id,
            update,
        } => match (display_id, update) {
            (Some(id), true) => UpdateDisplayData {
                data: media(data),
                metadata,
                transient: Transient {
                    display_id: Some(id),
                },
            }
            .into(),
            (id, _) => DisplayData {
                data: media(data),
                metadata,
                transient: id.map(|id| Transient {
                    display_id: Some(id),
                }),
            }
            .into(),
        },
        CellEvent::ClearOutput { wait } => ClearOutput { wait }.into(),
        _ => return,
    };
    kernel.iopub.send(wire::child_of(content, parent));
}

fn media(data: Map<String, Value>) -> Media {
    // Round-trip through the protocol crate's own parser so known types are typed.
    serde_json::from_value(Value::Object(data)).unwrap_or_default()
}

/// Sends an `input_request` on stdin to the client that asked for this cell and waits
/// for its `input_reply`.
async fn ask_input(
    kernel: &Kernel,
    parent: &JupyterMessage,
    prompt: String,
    password: bool,
) -> String {
    let mut stdin = kernel.stdin.lock().await;
    let request = wire::child_of(InputRequest { prompt, password }, parent);
    let asked = request.header.msg_id.clone();
    if let Err(e) = stdin.send(request).await {
        log(&format!("stdin: could not send input_request: {e}"));
        return String::new();
    }
    let answer = async {
        loop {
            match stdin.read().await {
                // Only the answer to this prompt counts, not a late one to an older prompt.
                Ok(message) => match message.content {
                    JupyterMessageContent::InputReply(reply)
                        if message
                            .parent_header
                            .as_ref()
                            .is_none_or(|p| p.msg_id == asked) =>
                    {
                        return reply.value;
                    }
                    _ => log("stdin: ignored a message that does not answer the current prompt"),
                },
                Err(e) => {
                    log(&format!("stdin: skipped a bad message: {e}"));
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    };
    // An interrupt while the prompt is open ends the wait (the cell is being stopped).
    tokio::select! {
        value = answer => value,
        _ = kernel.engine.interrupted() => String::new(),
    }
}

fn status_of(outcome: &CellOutcome) -> CellStatus {
    match outcome {
        CellOutcome::Ok { .. } => CellStatus::Ok,
        CellOutcome::Error(e) => match e.kind {
            ErrorKind::Panic => CellStatus::Panic,
            ErrorKind::Interrupted => CellStatus::Interrupted,
            ErrorKind::Crashed => CellStatus::Crashed,
            ErrorKind::Compile | ErrorKind::Kernel => CellStatus::Error,
        },
    }
}

/// The final footer: the line, the HTML with charts, and the JSON.
pub fn footer(telemetry: &CellTelemetry, mode: Mode) -> DisplayData {
    let mut data = Map::new();
    data.insert(
        "text/plain".into(),
        Value::String(render::text_line(telemetry)),
    );
    data.insert(
        "text/html".into(),
        Value::String(render::html(telemetry, mode)),
    );
    data.insert(TELEMETRY_MIME.into(), telemetry.to_json());
    let mut metadata = Map::new();
    metadata.insert("rustmeter".into(), serde_json::json!({ "footer": true }));
    DisplayData {
        data: media(data),
        metadata,
        transient: None,
    }
}

fn publish_live(kernel: &Kernel, parent: &JupyterMessage, id: &str, line: String, update: bool) {
    let mut data = Map::new();
    data.insert("text/plain".into(), Value::String(line));
    let transient = Transient {
        display_id: Some(id.to_string()),
    };
    let content: JupyterMessageContent = if update {
        UpdateDisplayData {
            data: media(data),
            metadata: Map::new(),
            transient,
        }
        .into()
    } else {
        DisplayData {
            data: media(data),
            metadata: Map::new(),
            transient: Some(transient),
        }
        .into()
    };
    kernel.iopub.send(wire::child_of(content, parent));
}

/// The compile progress of one cell, shown in place while dependencies compile.
struct LiveBuild {
    tracker: Tracker,
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
    fn start(kernel: &Kernel, cell: CellId, code: &str) -> LiveBuild {
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

    fn tick(&mut self, kernel: &Kernel, parent: &JupyterMessage) {
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
    fn collapse(&mut self, kernel: &Kernel, parent: &JupyterMessage) {
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
