//! The execution queue: runs `execute_request`s one at a time, publishes what the engine
//! reports for each (streams, displays, input prompts, the result or the one error), and
//! after an error aborts the requests already waiting, as ipykernel does.
//!
//! Owns the order of execution and the reply to each request. The parts: `cell_events`
//! follows one running cell's engine events, `publish` turns them into iopub messages,
//! `live_build` shows compile progress in place. Must not name evcxr types: the engine
//! is reached only through [`crate::engine::Engine`].

mod cell_events;
mod live_build;
mod publish;

use super::meter::{CellMeter, Display};
use super::{commands, log, wire, Kernel};
use crate::engine::{CellId, CellOutcome, EngineEvent, ErrorKind};
use crate::telemetry::render;
use crate::telemetry::CellStatus;
use cell_events::run_events;
use jupyter_protocol::{
    ErrorOutput, ExecuteInput, ExecuteReply, ExecuteRequest, ExecuteResult, ExecutionCount,
    JupyterMessage, ReplyError, ReplyStatus, Status, Transient,
};
use publish::{footer, media, publish_background};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;
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

/// Runs one cell to the end. If it failed: when, just before its reply was sent.
async fn execute(
    kernel: &Arc<Kernel>,
    queued: &Queued,
    cell: CellId,
    count: &mut usize,
    events: &mut mpsc::UnboundedReceiver<EngineEvent>,
    recent: &RecentParents,
) -> Option<Instant> {
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
                .execute_cell(cell, commands.for_engine.clone(), request.allow_stdin);
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
    let replied_at = Instant::now();
    send_shell(kernel, reply).await;
    kernel.iopub.status(Status::idle(), parent);
    failed.then_some(replied_at)
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
