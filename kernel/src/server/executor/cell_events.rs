//! One running cell: publishes what the engine reports for it until it finishes, with
//! the live footer and the compile progress, and answers its input prompts on stdin.
//! Replies and the final footer are the caller's (`super::execute`).

use super::live_build::LiveBuild;
use super::publish::{publish_background, publish_live, publish_output};
use super::{CellRun, RecentParents};
use crate::engine::{CellEvent, CellId, CellOutcome, EngineEvent};
use crate::server::meter::{CellMeter, FooterChoice};
use crate::server::overflow::{self, OutputBudget, Route};
use crate::server::{log, wire, Kernel};
use crate::telemetry::render;
use crate::telemetry::runtime::RuntimePage;
use jupyter_protocol::{InputRequest, JupyterMessage, JupyterMessageContent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The live footer appears once the user's code has run this long …
const LIVE_AFTER_MS: f64 = 500.0;
/// … and is refreshed this often (≥ 2 updates a second).
const LIVE_EVERY: Duration = Duration::from_millis(400);

/// Compile progress is read this often while a cell compiles (republished at least
/// every `live_build::PROGRESS_HEARTBEAT`).
const PROGRESS_EVERY: Duration = Duration::from_millis(300);

/// Publishes what the engine reports for the cell until it finishes, with the live footer.
pub(super) async fn run_events(
    kernel: &Arc<Kernel>,
    run: &mut CellRun<'_>,
    code: &str,
    events: &mut mpsc::UnboundedReceiver<EngineEvent>,
    recent: &RecentParents,
) -> CellOutcome {
    let (cell, parent) = (run.cell.cell, run.cell.parent);
    let live = LiveFooter::new(cell);
    let budget = output_budget(cell);
    let mut ticker = tokio::time::interval(LIVE_EVERY);
    let build = (!run.cell.silent()).then(|| LiveBuild::start(kernel, cell, code));
    let mut output = LiveOutput {
        live,
        budget,
        build,
    };
    let mut build_ticker = tokio::time::interval(PROGRESS_EVERY);
    let outcome = loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = build_ticker.tick(), if output.build.is_some() => {
                if let Some(build) = output.build.as_mut() {
                    build.tick(kernel, parent);
                }
                continue;
            }
            _ = ticker.tick(), if run.cell.footer != FooterChoice::Off => {
                output.live.refresh(kernel, parent, &run.meter);
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
            event => on_event(kernel, run, &mut output, event).await,
        }
    };
    output.finish(kernel, run);
    outcome
}

/// What following one running cell keeps between its events.
struct LiveOutput {
    live: LiveFooter,
    budget: OutputBudget,
    /// The compile progress; none for silent requests.
    build: Option<LiveBuild>,
}

impl LiveOutput {
    /// After the cell's end: the compile progress collapsed and its times given to the
    /// meter, the output budget's summary, the live footer emptied.
    fn finish(self, kernel: &Kernel, run: &mut CellRun<'_>) {
        let (cell, parent) = (run.cell.cell, run.cell.parent);
        if let Some(mut build) = self.build {
            build.collapse(kernel, parent);
            build.tracker.poll();
            run.meter
                .build_times(std::mem::take(&mut build.tracker.times));
            if !build.tracker.lines.is_empty() {
                *kernel
                    .last_build_log
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(build.tracker.log(cell));
            }
        }
        if let Some(summary) = self.budget.summary() {
            run.output_overflowed = true;
            publish_output(
                kernel,
                parent,
                CellEvent::Stream {
                    stderr: true,
                    text: summary,
                },
            );
        }
        self.live.clear(kernel, parent);
    }
}

/// The running cell's one-line footer, shown and updated in place under a display id.
struct LiveFooter {
    display_id: String,
    shown: bool,
}

impl LiveFooter {
    fn new(cell: CellId) -> LiveFooter {
        LiveFooter {
            display_id: format!("rustmeter-live-{cell}"),
            shown: false,
        }
    }

    /// Shows or updates the line, once the user's code has run `LIVE_AFTER_MS`.
    fn refresh(&mut self, kernel: &Kernel, parent: &JupyterMessage, meter: &CellMeter) {
        if let Some((run_ms, view)) = meter.live().filter(|(ms, _)| *ms >= LIVE_AFTER_MS) {
            let line = render::live_line(run_ms, view.cpu_cores_now, view.threads, view.rss_bytes);
            publish_live(kernel, parent, &self.display_id, line, self.shown);
            self.shown = true;
        }
    }

    /// Emptied, so the final footer is the one footer of this cell.
    fn clear(self, kernel: &Kernel, parent: &JupyterMessage) {
        if self.shown {
            publish_live(kernel, parent, &self.display_id, String::new(), true);
        }
    }
}

/// Output past the budget is saved to this cell's file instead of published.
fn output_budget(cell: CellId) -> OutputBudget {
    let saved_to = crate::workdir::cache_dir()
        .join("outputs")
        .join(format!("kernel-{}-cell-{cell}.txt", std::process::id()));
    OutputBudget::new(overflow::limit_from_env(), saved_to)
}

/// One event of the running cell, other than its end: meter moments, input prompts, and
/// (unless silent) its output.
async fn on_event(
    kernel: &Kernel,
    run: &mut CellRun<'_>,
    output: &mut LiveOutput,
    event: CellEvent,
) {
    let parent = run.cell.parent;
    match event {
        CellEvent::Started { child_pid, warm_up } => {
            let sample = run.cell.footer != FooterChoice::Off;
            let seen = kernel
                .runtime_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .filter(|(pid, _)| *pid == child_pid)
                .map(|(_, seq)| seq);
            let runtime_page = sample.then(|| {
                RuntimePage::new(&kernel.engine.telemetry_dir(), child_pid).with_seen(seen)
            });
            run.meter.started(child_pid, runtime_page, warm_up);
            // Builds before this were the kernel's warm-up (the cell's queue time).
            if let Some(build) = output.build.as_mut() {
                build.tracker.poll();
                build.tracker.times = Default::default();
            }
        }
        CellEvent::RunStarted { at } => {
            run.meter.run_started(at);
            if let Some(build) = output.build.as_mut() {
                build.collapse(kernel, parent);
            }
        }
        CellEvent::RunEnded { at } => run.meter.run_ended(at),
        CellEvent::Note { key, value } => run.meter.note(key, value),
        CellEvent::InputRequest {
            prompt,
            password,
            reply,
        } => {
            let answer = ask_input(kernel, parent, prompt, password).await;
            let _ = reply.send(answer);
        }
        other if run.cell.silent() => drop(other),
        CellEvent::Stream { stderr, text } => {
            publish_stream(kernel, parent, &mut output.budget, stderr, text)
        }
        other => publish_output(kernel, parent, other),
    }
}

/// A stream chunk within the cell's output budget; what passes it is saved, with one note.
fn publish_stream(
    kernel: &Kernel,
    parent: &JupyterMessage,
    budget: &mut OutputBudget,
    stderr: bool,
    text: String,
) {
    match budget.route(text) {
        Route::Publish(text) => publish_output(kernel, parent, CellEvent::Stream { stderr, text }),
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
    }
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
