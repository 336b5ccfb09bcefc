//! The engine thread: owns evcxr's `CommandContext` and runs requests in order — cells
//! (planned by [`super::cell`], run through evcxr, a shell or rustmeter itself),
//! completion and inspection. Reports through [`CellEvent`]s; never touches sockets.
//!
//! Owns the order of requests and each cell's bookkeeping (phase, child pid, limits,
//! the outcome sent to the pump). The parts: `start` brings evcxr up, `steps` runs a
//! planned cell's steps, `lookups` answers completion and inspection; a thread of its own
//! hands the heap's freed memory back to the OS after cells ([`HeapTrimmer`]).

mod lookups;
mod start;
mod steps;

use super::cell::{self, Session};
use super::offline;
use super::pump::PumpCommand;
use super::time_limit::{self, TimeLimit};
use super::{
    report, CellEvent, CellId, CellOutcome, Control, EngineEvent, ErrorKind, Phase, ReadCell,
    Request, WarmUp, MOVE_CELL, WARM_CELL,
};
use crate::workdir::WorkDir;
use lookups::{complete, inspect};
use start::run_prelude;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// How long the engine must have had nothing to do before rust-analyzer's first analysis
/// (about 2.6 s here) runs: a cell sent at launch, or the next cell of a "Run All", goes
/// first.
const ANALYSIS_AFTER_QUIET: std::time::Duration = std::time::Duration::from_millis(500);

/// Lives on the engine thread.
pub(super) struct Worker {
    control: Arc<Control>,
    workdir: Arc<WorkDir>,
    events: mpsc::UnboundedSender<EngineEvent>,
    pending: Arc<AtomicU32>,
    session: Session,
    shim_root: std::path::PathBuf,
    env: Vec<(String, String)>,
    limits: Arc<crate::limits::Limits>,
    /// Limit problems (caps that cannot be enforced) and bad settings (any `RUSTMETER_*`
    /// value its parser refuses, see `crate::settings`) not yet shown; the next cell
    /// shows them once, on stderr.
    limit_warnings: Vec<String>,
    time_limit: Option<TimeLimit>,
    /// Start-up work since the last cell began; the next cell's `Started` takes it.
    warm_up: Option<WarmUp>,
}

/// Hands the heap's free memory back to the OS after each cell, and every second
/// while a cell compiles, on a thread of its own so that no cell waits for it (a trim
/// takes about 34 ms here). rust-analyzer's analysis of a cell frees much of what it
/// allocates, but glibc keeps freed memory in its arenas, and a cell's build (rustc, up to
/// 200 MB) runs while the kernel still holds it: after notebook 4's first 18 cells the
/// kernel held 576 MB, and 400 MB once trimmed.
struct HeapTrimmer(std::sync::mpsc::SyncSender<()>);

impl HeapTrimmer {
    const WHILE_COMPILING: std::time::Duration = std::time::Duration::from_secs(1);

    fn start(control: Arc<Control>) -> HeapTrimmer {
        // One nudge waiting is enough: a trim releases everything free at that moment.
        let (nudge, nudges) = std::sync::mpsc::sync_channel::<()>(1);
        let started = std::thread::Builder::new()
            .name("rustmeter-heap-trim".to_string())
            .spawn(move || loop {
                use std::sync::mpsc::RecvTimeoutError;
                match nudges.recv_timeout(Self::WHILE_COMPILING) {
                    Ok(()) => release_free_heap(),
                    Err(RecvTimeoutError::Timeout) if control.phase() == Phase::Compiling => {
                        release_free_heap()
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            });
        if let Err(e) = started {
            log(&format!(
                "no heap-trimming thread ({e}): the kernel keeps freed memory"
            ));
        }
        HeapTrimmer(nudge)
    }

    fn nudge(&self) {
        let _ = self.0.try_send(());
    }
}

fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        // SAFETY: malloc_trim takes the allocator's own locks and walks its free lists.
        unsafe { libc::malloc_trim(0) };
        crate::log::debug(&format!(
            "returned free heap memory to the OS in {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        ));
    }
}

struct Evcxr {
    context: evcxr::CommandContext,
    pump: crossbeam_channel::Sender<PumpCommand>,
}

impl Worker {
    pub(super) fn new(
        control: Arc<Control>,
        workdir: Arc<WorkDir>,
        events: mpsc::UnboundedSender<EngineEvent>,
        pending: Arc<AtomicU32>,
        limits: Arc<crate::limits::Limits>,
    ) -> Worker {
        let mut limit_warnings = limits.problems().to_vec();
        // Limits word their own bad values (which cap is not applied); every other bad
        // setting is worded by the settings table.
        limit_warnings.extend(
            crate::settings::problems()
                .iter()
                .filter(|e| {
                    let assignment = format!("{}=", e.setting.name);
                    !limits.problems().iter().any(|p| p.starts_with(&assignment))
                })
                .map(|e| e.report()),
        );
        limit_warnings.extend(
            crate::workdir::refused_folders()
                .iter()
                .map(|r| format!("a folder was refused: {r}")),
        );
        let time_limit = time_limit::from_env();
        Worker {
            limit_warnings,
            limits,
            control,
            workdir,
            events,
            pending,
            session: Session::default(),
            shim_root: crate::workdir::cache_dir().join("shims"),
            env: Vec::new(),
            time_limit,
            warm_up: None,
        }
    }

    pub(super) fn run(mut self, requests: std::sync::mpsc::Receiver<Request>) {
        let mut evcxr = match self.start_evcxr() {
            Ok(e) => Some(e),
            Err(message) => {
                log(&format!("evcxr failed to start: {message}"));
                None
            }
        };
        // The quiet log (info) keeps only the start line; RUSTMETER_LOG=debug adds this.
        if let Some(w) = &self.warm_up {
            crate::log::debug(&format!(
                "evcxr ready in {:.2} s: {}",
                w.ended.duration_since(w.began).as_secs_f64(),
                w.describe()
            ));
        }
        self.control.set_phase(Phase::Idle);
        let mut analysis_due = evcxr.is_some();
        let heap = HeapTrimmer::start(self.control.clone());
        heap.nudge();
        loop {
            // The server hands over one cell at a time: the next cell of a "Run All"
            // arrives within milliseconds of the last one's end, and goes first.
            use std::sync::mpsc::RecvTimeoutError;
            let received = match analysis_due {
                true => requests.recv_timeout(ANALYSIS_AFTER_QUIET),
                false => requests.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let request = match received {
                Ok(request) => request,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    analysis_due = false;
                    if let Some(e) = evcxr.as_mut() {
                        self.warm_analysis(&mut e.context, start::WARM_ANALYSIS);
                    }
                    heap.nudge();
                    continue;
                }
            };
            // Completion and inspection requests come with every keystroke or cursor
            // move; cells are what leave memory behind.
            let is_cell = matches!(request, Request::Execute { .. });
            self.serve(&mut evcxr, request);
            if is_cell {
                heap.nudge();
            }
        }
    }

    fn serve(&mut self, evcxr: &mut Option<Evcxr>, request: Request) {
        match request {
            Request::Execute {
                cell,
                code,
                allow_stdin,
            } => match evcxr.as_mut() {
                Some(e) => self.execute(e, cell, code, allow_stdin),
                None => {
                    self.pending.fetch_sub(1, Ordering::SeqCst);
                    self.send(cell, CellEvent::Finished(CellOutcome::Error(report::message(
                        "kernel error",
                        "The Rust engine (evcxr) could not start; see the kernel log. Check that \
                         cargo and rustc are on PATH.",
                    ))))
                }
            },
            Request::Complete {
                code,
                cursor,
                reply,
            } => look_up(evcxr, reply, |c| complete(c, &code, cursor)),
            Request::Inspect {
                code,
                cursor,
                reply,
            } => look_up(evcxr, reply, |c| inspect(c, &code, cursor)),
        }
    }

    /// Plans the cell and runs its steps; a line that could not be read or a refused
    /// command fails the cell before anything runs.
    fn plan_and_run(
        &mut self,
        evcxr: &mut Evcxr,
        cell: CellId,
        code: ReadCell,
        allow_stdin: bool,
    ) -> CellOutcome {
        let planned = code
            .map_err(|e| report::command_error(&e))
            .and_then(|code| match offline::refusal(&code) {
                Some(refusal) => Err(report::message("dependency error", refusal)),
                None => cell::plan(&code, &self.session, &self.shim_root)
                    .map_err(|message| report::message("command error", message)),
            });
        match planned {
            Err(error) => CellOutcome::Error(error),
            Ok(steps) => self.run_steps(evcxr, cell, steps, allow_stdin),
        }
    }

    fn refresh_child_pid(&self, context: &evcxr::CommandContext) -> u32 {
        let handle = context.process_handle();
        let pid = handle.lock().map(|c| c.id()).unwrap_or(0);
        self.control.child_pid.store(pid, Ordering::SeqCst);
        pid
    }

    fn send(&self, cell: CellId, event: CellEvent) {
        let _ = self.events.send(EngineEvent { cell, event });
    }

    fn execute(&mut self, evcxr: &mut Evcxr, cell: CellId, code: ReadCell, allow_stdin: bool) {
        let pid_before = self.begin_cell(evcxr, cell);
        let counters_before = self.limits.counters();
        let variables_before: Vec<String> = evcxr
            .context
            .variables_and_types()
            .map(|(name, _)| name.to_string())
            .collect();

        let outcome = self.plan_and_run(evcxr, cell, code, allow_stdin);

        let pid_after = self.refresh_child_pid(&evcxr.context);
        let restarted = pid_after != pid_before;
        let lost = if restarted {
            variables_before
        } else {
            Vec::new()
        };
        let outcome = self.worded_outcome(outcome, lost, restarted);
        self.control.set_phase(Phase::Idle);
        // Not busy any more before the reply can reach the client, so a completion
        // request sent right after the reply is answered for real.
        self.pending.fetch_sub(1, Ordering::SeqCst);
        let hits = self.limits.hits_since(counters_before);
        let _ = evcxr.pump.send(PumpCommand::Finish(cell, outcome, hits));
        if restarted && !self.control.stopping.load(Ordering::SeqCst) {
            // A new child has neither our panic hook nor the flush function.
            run_prelude(&mut evcxr.context);
            let pid = self.refresh_child_pid(&evcxr.context);
            self.limit_warnings.extend(self.limits.check_member(pid));
        }
        if cell == WARM_CELL {
            self.warm_analysis(&mut evcxr.context, start::WARM_ANALYSIS_TOKIO);
        }
    }

    /// Readies the cell's run: flags cleared, the time limit watching, the pump and the
    /// server told it started, limit problems not yet shown shown. Returns the pid of
    /// the user-code process before the run.
    fn begin_cell(&mut self, evcxr: &mut Evcxr, cell: CellId) -> u32 {
        let serial = self.control.cell_serial.fetch_add(1, Ordering::SeqCst) + 1;
        self.control.interrupted.store(false, Ordering::SeqCst);
        self.control.timed_out.store(false, Ordering::SeqCst);
        self.control.stdin_refused.store(false, Ordering::SeqCst);
        if let Some(channel) = &self.control.cancel {
            channel.drain();
        }
        self.control.set_phase(Phase::Compiling);
        if let Some(limit) = &self.time_limit {
            time_limit::watch(Arc::clone(&self.control), serial, limit.duration);
        }
        let _ = evcxr.pump.send(PumpCommand::Start(cell));
        let pid_before = self.refresh_child_pid(&evcxr.context);
        let warm_up = self.warm_up.take();
        self.send(
            cell,
            CellEvent::Started {
                child_pid: pid_before,
                warm_up,
            },
        );
        let warnings = match cell {
            WARM_CELL | MOVE_CELL => Vec::new(),
            _ => std::mem::take(&mut self.limit_warnings),
        };
        for warning in warnings {
            self.send(
                cell,
                CellEvent::Stream {
                    stderr: true,
                    text: format!("rustmeter: {warning}\n"),
                },
            );
        }
        pid_before
    }

    /// The outcome as the learner reads it: an interrupt or the time limit says so, and
    /// they and a crash name the variables `lost` with a restarted process.
    fn worded_outcome(
        &self,
        outcome: CellOutcome,
        lost: Vec<String>,
        restarted: bool,
    ) -> CellOutcome {
        if self.control.stdin_refused.load(Ordering::SeqCst) {
            return CellOutcome::Error(report::stdin_unavailable(lost, restarted));
        }
        if self.control.interrupted.load(Ordering::SeqCst) {
            return match self.time_limit.as_ref() {
                Some(limit) if self.control.timed_out.load(Ordering::SeqCst) => {
                    CellOutcome::Error(report::timed_out(&limit.text, lost, restarted))
                }
                _ => CellOutcome::Error(report::interrupted(lost, restarted)),
            };
        }
        match outcome {
            // Worded by the pump, which also saw what the child wrote on stderr.
            CellOutcome::Error(mut e) if e.kind == ErrorKind::Crashed => {
                e.lost_variables = lost;
                CellOutcome::Error(e)
            }
            other => other,
        }
    }
}

/// Answers a completion or inspection: empty when evcxr could not start.
fn look_up<T: Default>(
    evcxr: &mut Option<Evcxr>,
    reply: tokio::sync::oneshot::Sender<T>,
    ask: impl FnOnce(&mut evcxr::CommandContext) -> T,
) {
    let _ = reply.send(
        evcxr
            .as_mut()
            .map(|e| ask(&mut e.context))
            .unwrap_or_default(),
    );
}

fn log(message: &str) {
    crate::log::info(message);
}
