//! The execution queue: runs `execute_request`s one at a time, publishes what the engine
//! reports for each (streams, displays, input prompts, the result or the one error), and
//! after an error aborts the requests already waiting, as ipykernel does.
//!
//! Owns the order of execution and the reply to each request. One cell goes through the
//! steps of ipykernel's `execute_request`: publish the input, run (rustmeter's commands,
//! then the engine), publish the outcome, reply with metadata; the steps share one
//! [`CellRun`]; a `:repeat N` cell goes through "run" up to N times, each run measured
//! apart, and its telemetry summarizes them. The parts: `cell_events` follows one running cell's engine events,
//! `publish` turns them into iopub messages, `live_build` shows compile progress in place. Must not name evcxr types: the engine
//! is reached only through [`crate::engine::Engine`].

mod cell_events;
mod live_build;
mod publish;

use super::meter::{CellMeter, FooterChoice};
use super::{commands, log, wire, Kernel};
use crate::engine::{diagnostics, CellError, CellId, CellOutcome, EngineEvent, ErrorKind};
use crate::telemetry::render;
use crate::telemetry::{CellStatus, CellTelemetry};
use cell_events::run_events;
use jupyter_protocol::{
    ErrorOutput, ExecuteInput, ExecuteReply, ExecuteRequest, ExecuteResult, ExecutionCount,
    JupyterMessage, ReplyError, ReplyStatus, Status, StreamContent, Transient,
};
use publish::{footer, media, publish_background};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
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
    // A request that arrived after a failure, taken off the queue while aborting.
    let mut held: Option<Queued> = None;
    loop {
        let queued = if let Some(q) = held.take() {
            q
        } else {
            tokio::select! {
                q = queue.recv() => match q { Some(q) => q, None => return },
                e = events.recv() => {
                    match e {
                        Some(event) => publish_background(&kernel, &recent, event),
                        None => return,
                    }
                    continue;
                }
            }
        };
        let cell = next_cell;
        next_cell += 1;
        let silent = queued.request.silent;
        let failed_at = execute(&kernel, &queued, cell, &mut count, &mut events, &recent).await;
        if !silent {
            recent.remember(cell, queued.message.clone());
        }
        if let Some(failed_at) = failed_at.filter(|_| queued.request.stop_on_error && !silent) {
            held = abort_waiting(&kernel, &mut queue, count, failed_at).await;
        }
    }
}

/// An execute request once counted: what every step of its cell's run reads.
#[derive(Clone, Copy)]
struct CellRequest<'a> {
    parent: &'a JupyterMessage,
    request: &'a ExecuteRequest,
    cell: CellId,
    /// The cell's execution count (`In [n]`), also the number of its history entry.
    count: usize,
    /// Off for silent requests and for cells that were only rustmeter commands.
    footer: FooterChoice,
}

impl CellRequest<'_> {
    fn silent(&self) -> bool {
        self.request.silent
    }

    fn execution_count(&self) -> ExecutionCount {
        ExecutionCount::new(self.count)
    }
}

/// One cell while it runs: its request, its meter and its label.
pub(super) struct CellRun<'a> {
    cell: CellRequest<'a>,
    meter: CellMeter,
    /// The cell's `:label`, or the one a bare `:label` left for it; none when silent.
    label: Option<String>,
    /// The cell was only rustmeter commands: nothing ran worth a footer or a record.
    only_commands: bool,
    /// `:repeat N`'s N; 1 for a cell run once.
    runs_asked: u32,
    /// The telemetry of each run before the current one, when repeated.
    earlier_runs: Vec<CellTelemetry>,
    /// The engine's interrupt count when the cell began: one asked for since stops the
    /// runs left, even between two runs.
    interrupts_at_start: u64,
    /// The last run printed past the output limit (its rest went to a file).
    output_overflowed: bool,
}

impl<'a> CellRun<'a> {
    fn new(kernel: &Kernel, queued: &'a Queued, cell: CellId, count: usize) -> CellRun<'a> {
        let meter = CellMeter::new(queued.received);
        let footer = if queued.request.silent {
            FooterChoice::Off
        } else {
            kernel.telemetry().footer
        };
        CellRun {
            cell: CellRequest {
                parent: &queued.message,
                request: &queued.request,
                cell,
                count,
                footer,
            },
            meter,
            label: None,
            only_commands: false,
            runs_asked: 1,
            earlier_runs: Vec::new(),
            interrupts_at_start: kernel.engine.interrupt_requests(),
            output_overflowed: false,
        }
    }
}

/// A cell after its run: its request, its telemetry, and what measuring it cost.
struct FinishedCell<'a> {
    cell: CellRequest<'a>,
    telemetry: CellTelemetry,
    /// The meter's own time on the cell's critical path (start and finish) …
    meter_cost: Duration,
    /// … and when labelling, recording and rendering the telemetry began.
    render_started: Instant,
}

impl FinishedCell<'_> {
    /// What telemetry cost this cell on its critical path (for bench/telemetry_overhead).
    fn overhead_ms(&self) -> f64 {
        (self.meter_cost + self.render_started.elapsed()).as_secs_f64() * 1000.0
    }
}

/// Runs one cell to the end, in the steps of ipykernel's `execute_request`: publish the
/// input, run (rustmeter's commands, then the engine), publish the outcome, reply. If it
/// failed: when, just before its reply was sent.
async fn execute(
    kernel: &Arc<Kernel>,
    queued: &Queued,
    cell: CellId,
    count: &mut usize,
    events: &mut mpsc::UnboundedReceiver<EngineEvent>,
    recent: &RecentParents,
) -> Option<Instant> {
    publish_input(kernel, queued, count);
    let mut run = CellRun::new(kernel, queued, cell, *count);
    let outcome = run_cell(kernel, &mut run, events, recent).await;
    let finished = measure(kernel, run, &outcome);
    let (reply, failed) = publish_outcome(kernel, &finished, outcome);
    let replied_at = send_execute_reply(kernel, &finished, reply, failed).await;
    failed.then_some(replied_at)
}

/// Busy, then (unless silent) the cell's input, counted and kept in the history when the
/// request asks for that.
fn publish_input(kernel: &Kernel, queued: &Queued, count: &mut usize) {
    let parent = &queued.message;
    let request = &queued.request;
    kernel.iopub.status(Status::busy(), parent);
    if request.silent {
        return;
    }
    if request.store_history {
        *count += 1;
    }
    kernel.iopub.send(wire::child_of(
        ExecuteInput {
            code: request.code.clone(),
            execution_count: ExecutionCount::new(*count),
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

/// What is left of a cell once rustmeter's own commands are answered.
enum AfterCommands {
    /// What the engine runs, already read, and its text as written (for the live
    /// build view).
    Engine(crate::commands::Cell, String),
    /// Nothing: the cell was only commands, and this is its outcome.
    Done(CellOutcome),
}

/// The executor's one call into `commands`: takes rustmeter's command lines out of the
/// cell, settles its label and answers the commands.
fn answer_commands(kernel: &Kernel, run: &mut CellRun<'_>) -> AfterCommands {
    let commands = commands::take(&run.cell.request.code);
    if !run.cell.silent() {
        // Taken before the commands run: a bare `:label` leaves one for the next cell.
        run.label = commands
            .label
            .clone()
            .or_else(|| kernel.telemetry().pending_label.take());
    }
    run.runs_asked = commands.repeat.unwrap_or(1);
    match commands::run_local(kernel, run.cell.parent, &commands) {
        Some(outcome) => AfterCommands::Done(outcome),
        None => AfterCommands::Engine(commands.for_engine, commands.code),
    }
}

/// Runs the cell: rustmeter's commands here, what is left in the engine.
async fn run_cell(
    kernel: &Arc<Kernel>,
    run: &mut CellRun<'_>,
    events: &mut mpsc::UnboundedReceiver<EngineEvent>,
    recent: &RecentParents,
) -> CellOutcome {
    match answer_commands(kernel, run) {
        AfterCommands::Done(outcome) => {
            run.meter.started(0, None, None);
            run.cell.footer = FooterChoice::Off;
            run.only_commands = true;
            outcome
        }
        AfterCommands::Engine(cell, code) => loop {
            // Warnings on file are the last build's: none of this cell's yet.
            let _ = std::fs::remove_file(warnings_file(kernel));
            let allow_stdin = run.cell.request.allow_stdin;
            kernel
                .engine
                .execute_cell(run.cell.cell, cell.clone(), allow_stdin);
            let outcome = run_events(kernel, run, &code, events, recent).await;
            if !another_run(kernel, run, &outcome) {
                break outcome;
            }
            // Another run: evcxr builds and runs the cell again (it cannot re-run a built
            // cell), so variables come from the last run; each run is measured apart.
            let meter = std::mem::replace(&mut run.meter, CellMeter::new(Instant::now()));
            let (telemetry, _) = meter.finish(CellStatus::Ok);
            remember_runtime_seen(kernel, &telemetry);
            run.earlier_runs.push(telemetry);
        },
    }
}

/// Whether a `:repeat` cell runs again after a run that ended with `outcome`: not after
/// the runs asked for, a failure, an interrupt asked for (even between runs), a run that
/// printed past the output limit, or once the runs have used the cell's time limit (each
/// run is held to it too), so repeating never multiplies what the limits allow.
fn another_run(kernel: &Kernel, run: &CellRun<'_>, outcome: &CellOutcome) -> bool {
    let runs_done = run.earlier_runs.len() as u32 + 1;
    let ran_ms = run.meter.run_ms() + run.earlier_runs.iter().map(|t| t.run_ms).sum::<f64>();
    let time_left = crate::engine::time_limit::from_env()
        .is_none_or(|limit| ran_ms < limit.duration.as_secs_f64() * 1000.0);
    runs_done < run.runs_asked
        && matches!(outcome, CellOutcome::Ok { .. })
        && kernel.engine.interrupt_requests() == run.interrupts_at_start
        && !run.output_overflowed
        && time_left
}

/// Where the shared runtime's counters stood at the end of a run: the next run's tasks
/// and stalls count from there.
fn remember_runtime_seen(kernel: &Kernel, telemetry: &CellTelemetry) {
    if let Some(figures) = &telemetry.runtime {
        *kernel
            .runtime_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((telemetry.pid, figures.cell_seq));
    }
}

/// The names tokio gives its threads by default (`/proc` keeps 15 bytes): 1.x before and
/// after its rename of "tokio-runtime-worker".
const TOKIO_THREAD_NAMES: [&str; 2] = ["tokio-rt-worker", "tokio-runtime-w"];
/// The most a cell's end waits for its new threads to first run and name themselves.
const NAMING_WAIT: Duration = Duration::from_millis(250);

/// Says when a runtime other than the shared one (a learner's own `Runtime::new()`, or
/// evcxr's with shared dependencies off) left new tokio threads: the threads footer would
/// otherwise grow with no word why. Counted only when the thread number changed (naming
/// threads costs a read each) or the cell ran several times; a runtime built and dropped
/// within the cell is not named. A cell not sampled (footer off, silent) has no thread
/// figures to go by and leaves the count as it was.
fn count_other_runtime_threads(kernel: &Kernel, t: &mut CellTelemetry, repeated: bool) {
    if t.pid == 0 || !t.ran() || t.threads_start == 0 {
        return;
    }
    // The executor runs one cell at a time: nothing else changes the count meanwhile.
    let last = kernel.telemetry().other_runtime_threads;
    let before = last.filter(|(pid, _)| *pid == t.pid).map(|(_, n)| n);
    let changed = repeated || t.threads_peak != t.threads_start || t.threads_end != t.threads_start;
    if before.is_some() && !changed {
        return;
    }
    let Some(named) = crate::sys::threads_named(t.pid, &TOKIO_THREAD_NAMES, NAMING_WAIT) else {
        return;
    };
    let now = named.saturating_sub(t.shared_runtime_threads.unwrap_or(0));
    kernel.telemetry().other_runtime_threads = Some((t.pid, now));
    // The shared runtime's own start has its own words ("+2 workers").
    let shared_started = t.runtime.as_ref().is_some_and(|r| r.started_in_cell);
    let added = now.saturating_sub(before.unwrap_or(0));
    if added > 0 && !shared_started {
        t.other_runtime_threads_started = Some(added);
    }
}

/// Ends the cell's meter: its telemetry, labelled, and recorded (for `:compare`,
/// `rustmeter::last()` and the next run of the same code) unless the request was silent
/// or the cell only commands.
fn measure<'a>(kernel: &Kernel, run: CellRun<'a>, outcome: &CellOutcome) -> FinishedCell<'a> {
    let (mut telemetry, meter_cost) = run.meter.finish(status_of(outcome));
    let render_started = Instant::now();
    remember_runtime_seen(kernel, &telemetry);
    count_other_runtime_threads(kernel, &mut telemetry, run.runs_asked > 1);
    if run.runs_asked > 1 {
        telemetry = telemetry.with_runs(run.runs_asked, run.earlier_runs);
    }
    if let Some(figures) = telemetry.runtime.as_mut().filter(|f| !f.stalls.is_empty()) {
        // Stalls name the generated crate's line of their spawn: the cell's line instead.
        let generated = std::fs::read_to_string(kernel.engine.crate_dir().join("src/lib.rs"))
            .unwrap_or_default();
        let lines = diagnostics::LineMap::new(&run.cell.request.code, &generated);
        // No offset guess, and only a line that spawns: a task that code of an earlier
        // cell spawned during this one names a line of that cell's build, not this one's.
        figures.map_spawn_lines(|line| {
            lines
                .cell_line(line, false)
                .filter(|&l| lines.cell_text(l).contains("spawn"))
        });
    }
    telemetry.label = run.label;
    if !run.cell.silent() && !run.only_commands {
        kernel
            .telemetry()
            .record(&run.cell.request.code, &mut telemetry);
    }
    FinishedCell {
        cell: run.cell,
        telemetry,
        meter_cost,
        render_started,
    }
}

/// Publishes the outcome; returns the reply's content and whether the cell failed.
fn publish_outcome(
    kernel: &Kernel,
    finished: &FinishedCell<'_>,
    outcome: CellOutcome,
) -> (ExecuteReply, bool) {
    match outcome {
        CellOutcome::Ok { data } => {
            publish_warnings(kernel, finished);
            publish_result(kernel, finished, data);
            let reply = ExecuteReply {
                status: ReplyStatus::Ok,
                execution_count: finished.cell.execution_count(),
                user_expressions: Some(Default::default()),
                ..Default::default()
            };
            (reply, false)
        }
        CellOutcome::Error(error) => (publish_error(kernel, finished, error), true),
    }
}

fn warnings_file(kernel: &Kernel) -> std::path::PathBuf {
    crate::depcache::cell_warnings_file(&kernel.engine.build_events_file())
}

/// The build's warnings that matter to a learner (`:warnings off` hides them), on
/// stderr as rustc's own would be, above the result.
fn publish_warnings(kernel: &Kernel, finished: &FinishedCell<'_>) {
    let shown = kernel
        .warnings_shown
        .load(std::sync::atomic::Ordering::Relaxed);
    if finished.cell.silent() || !shown {
        return;
    }
    let Ok(jsonl) = std::fs::read_to_string(warnings_file(kernel)) else {
        return;
    };
    let generated =
        std::fs::read_to_string(kernel.engine.crate_dir().join("src/lib.rs")).unwrap_or_default();
    let lines = diagnostics::learner_warnings(&jsonl, &finished.cell.request.code, &generated);
    if lines.is_empty() {
        return;
    }
    let text = format!("{}\n(:warnings off hides these)\n", lines.join("\n"));
    kernel.iopub.send(wire::child_of(
        StreamContent::stderr(&text),
        finished.cell.parent,
    ));
}

/// The result (unless silent or empty, kept in the history when asked), then the footer.
fn publish_result(kernel: &Kernel, finished: &FinishedCell<'_>, data: Map<String, Value>) {
    let cell = &finished.cell;
    if !cell.silent() && !data.is_empty() {
        if cell.request.store_history {
            if let Some(Value::String(text)) = data.get("text/plain") {
                kernel
                    .history
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .set_output(cell.count, text);
            }
        }
        kernel.iopub.send(wire::child_of(
            ExecuteResult {
                execution_count: cell.execution_count(),
                data: media(data),
                metadata: Map::new(),
                // `{}`, not null: the message schema wants an object.
                transient: Some(Transient::default()),
            },
            cell.parent,
        ));
    }
    if let FooterChoice::On(mode) = cell.footer {
        kernel.iopub.send(wire::child_of(
            footer(&finished.telemetry, mode),
            cell.parent,
        ));
    }
}

/// Publishes the error (unless silent) and returns the error reply.
fn publish_error(
    kernel: &Kernel,
    finished: &FinishedCell<'_>,
    mut error: CellError,
) -> ExecuteReply {
    let cell = &finished.cell;
    // A failed cell has exactly one error message: its footer is the last line.
    if cell.footer != FooterChoice::Off {
        error.traceback.push(render::text_line(&finished.telemetry));
    }
    if !cell.silent() {
        kernel.iopub.send(wire::child_of(
            ErrorOutput {
                ename: error.ename.clone(),
                evalue: error.evalue.clone(),
                traceback: error.traceback.clone(),
            },
            cell.parent,
        ));
    }
    ExecuteReply {
        status: ReplyStatus::Error,
        execution_count: cell.execution_count(),
        user_expressions: Some(Default::default()),
        error: Some(Box::new(ReplyError {
            ename: error.ename,
            evalue: error.evalue,
            traceback: error.traceback,
        })),
        ..Default::default()
    }
}

/// Sends the reply with ipykernel's metadata (`started`, `status`) and, unless silent,
/// the cell's telemetry and its cost; then idle. Returns when the reply was about to be
/// sent: requests received later are not aborted by this cell's failure.
async fn send_execute_reply(
    kernel: &Kernel,
    finished: &FinishedCell<'_>,
    reply: ExecuteReply,
    failed: bool,
) -> Instant {
    let overhead_ms = finished.overhead_ms();
    let parent = finished.cell.parent;
    let mut reply = wire::child_of(reply, parent);
    reply.metadata = serde_json::json!({
        "started": chrono::Utc::now().to_rfc3339(),
        "status": status_word(failed),
    });
    if !finished.cell.silent() {
        reply.metadata["rustmeter"] = finished.telemetry.to_json();
        reply.metadata["rustmeter_overhead_ms"] = overhead_ms.into();
    }
    let replied_at = Instant::now();
    send_shell(kernel, reply).await;
    kernel.iopub.status(Status::idle(), parent);
    replied_at
}

fn status_word(failed: bool) -> &'static str {
    if failed {
        "error"
    } else {
        "ok"
    }
}

/// Requests received before a cell failed (at `failed_at`) are answered `aborted` without
/// running. The first request received later is returned to run: a client that saw the
/// error and sent new cells at once must not lose them to this abort.
async fn abort_waiting(
    kernel: &Arc<Kernel>,
    queue: &mut mpsc::UnboundedReceiver<Queued>,
    count: usize,
    failed_at: Instant,
) -> Option<Queued> {
    while let Ok(queued) = queue.try_recv() {
        if queued.received > failed_at {
            return Some(queued);
        }
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
    None
}

async fn send_shell(kernel: &Kernel, reply: JupyterMessage) {
    if let Err(e) = kernel.shell.lock().await.send(reply).await {
        log(&format!("shell: could not send execute_reply: {e}"));
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
