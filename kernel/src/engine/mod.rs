//! The engine: evcxr on a thread of its own, behind a small handle.
//!
//! Owns the evcxr `CommandContext`, the user-code child process, cell planning, and the
//! output pump. Speaks in neutral events ([`CellEvent`], [`CellOutcome`]) and must not
//! send Jupyter messages or know ZeroMQ; the server decides how events are shown.
//!
//! evcxr's calls block (compiling, running), so one dedicated thread owns the context
//! and takes requests in order. Interrupts cannot wait in that queue: they act on
//! processes directly through [`Control`].

mod awaits;
mod cell;
pub mod diagnostics;
pub mod interrupt;
mod offline;
mod prelude;
pub(crate) mod process;
mod pump;
pub mod report;
pub mod shims;
pub mod syntax;
pub mod time_limit;
mod warm_up;
mod worker;

use crate::workdir::WorkDir;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub use syntax::Completeness;
pub use warm_up::{WarmUp, WarmUpStep};

/// Identifies one execution; 0 is the kernel's own hidden work.
pub type CellId = u64;

/// The id of hidden warm-up cells (a warm spare kernel's canonical dependencies): they
/// leave pending limit warnings for the learner's first cell and are followed by a
/// rust-analyzer warm-up over the new dependencies.
pub const WARM_CELL: CellId = CellId::MAX;

/// The id of the hidden cell that moves a warm spare's cell process to the folder of the
/// launch it serves; like [`WARM_CELL`] it leaves limit warnings for the learner's first
/// cell, but no analysis follows it.
pub const MOVE_CELL: CellId = CellId::MAX - 1;

/// How long a completion or inspection waits for evcxr to finish starting. Alone it
/// takes 2–5 s here, rust-analyzer's warm-up included, but with seven kernels starting
/// at once on 2 cores one took over 10 s; JupyterLab's completer waits for the reply
/// however long it takes, so an empty answer would only be a wrong one.
pub const START_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Something a running cell did, in order.
#[derive(Debug)]
pub enum CellEvent {
    Stream {
        stderr: bool,
        text: String,
    },
    Display {
        data: Map<String, Value>,
        metadata: Map<String, Value>,
        display_id: Option<String>,
        update: bool,
    },
    ClearOutput {
        wait: bool,
    },
    /// The cell asks for a line of input; answer on `reply`.
    InputRequest {
        prompt: String,
        password: bool,
        reply: std::sync::mpsc::SyncSender<String>,
    },
    /// The engine took the cell; `child_pid` is the process that will run it, and
    /// `warm_up` the kernel's own start-up work done since the previous cell, which the
    /// cell may have waited for.
    Started {
        child_pid: u32,
        warm_up: Option<WarmUp>,
    },
    /// Compilation is over and the user's code started running (stamped by the user-code
    /// process, not when the kernel read it).
    RunStarted {
        at: std::time::Instant,
    },
    /// The user's code returned.
    RunEnded {
        at: std::time::Instant,
    },
    /// `rustmeter::note(key, value)` from the cell.
    Note {
        key: String,
        value: String,
    },
    /// Always the last event of a cell.
    Finished(CellOutcome),
}

#[derive(Debug)]
pub struct EngineEvent {
    pub cell: CellId,
    pub event: CellEvent,
}

#[derive(Debug, Clone)]
pub enum CellOutcome {
    /// Ran to the end; `data` is the final expression's value by MIME type (may be empty).
    Ok {
        data: Map<String, Value>,
    },
    Error(CellError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Compile,
    Panic,
    Interrupted,
    Crashed,
    /// A refused command, a bad `:` line, an evcxr message.
    Kernel,
}

#[derive(Debug, Clone)]
pub struct CellError {
    pub kind: ErrorKind,
    pub ename: String,
    pub evalue: String,
    pub traceback: Vec<String>,
    pub lost_variables: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Completion {
    pub matches: Vec<String>,
    /// In code points, as the protocol counts.
    pub cursor_start: usize,
    pub cursor_end: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Inspection {
    pub found: bool,
    pub text: String,
    pub html: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    Idle = 1,
    Compiling = 2,
    Running = 3,
}

/// Shared between the engine thread, the pump, and whoever interrupts.
pub struct Control {
    kernel_pid: u32,
    child_pid: AtomicU32,
    shell_pgid: AtomicU32,
    phase: AtomicU8,
    interrupted: AtomicBool,
    /// Set with `interrupted` when the cell's time limit stopped it.
    timed_out: AtomicBool,
    /// The cell waits for the learner to answer an input prompt.
    awaiting_input: AtomicBool,
    /// Set with `interrupted` when the cell read stdin in a client that takes no input.
    stdin_refused: AtomicBool,
    /// The kernel is shutting down: a killed child is not restarted, so nothing writes
    /// into the work folder while it is removed.
    stopping: AtomicBool,
    /// Counts cells, so a late stop never hits the next cell.
    cell_serial: AtomicU64,
    /// Counts interrupt requests, idle or not: a cell run several times (`:repeat`)
    /// stops when one arrived between two runs, where nothing runs to stop.
    interrupt_requests: AtomicU64,
    /// `None` when the pipe could not be made: interrupts then always kill.
    cancel: Option<interrupt::CancelChannel>,
    /// Woken by every interrupt: whoever waits on the cell's behalf (an input prompt)
    /// gives up.
    interrupts: tokio::sync::Notify,
    /// Called with true when cell code starts running and false when it stops (the
    /// launch pauses warm spares with it); set once, by [`Engine::on_running_change`].
    on_running: std::sync::OnceLock<fn(bool)>,
}

impl Control {
    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Starting,
            1 => Phase::Idle,
            2 => Phase::Compiling,
            _ => Phase::Running,
        }
    }

    fn set_phase(&self, phase: Phase) {
        let before = self.phase.swap(phase as u8, Ordering::SeqCst);
        let running = Phase::Running as u8;
        let hook = self.on_running.get();
        match (before == running, phase as u8 == running, hook) {
            (false, true, Some(hook)) => hook(true),
            (true, false, Some(hook)) => hook(false),
            _ => {}
        }
    }
}

/// A cell as read by [`crate::commands::parse`], or the line it could not read.
type ReadCell = Result<crate::commands::Cell, crate::commands::CommandError>;

enum Request {
    Execute {
        cell: CellId,
        code: ReadCell,
        allow_stdin: bool,
    },
    Complete {
        code: String,
        cursor: usize,
        reply: oneshot::Sender<Completion>,
    },
    Inspect {
        code: String,
        cursor: usize,
        reply: oneshot::Sender<Inspection>,
    },
}

type OnIdle = Arc<std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>>;

/// Runs the idle action unless it ran already. The lock is held while it runs, so a
/// shutdown waits for an action in flight on the idle thread: that action starts the
/// next spare, and the shutdown's kill of this kernel's process tree would otherwise
/// catch the spare between its fork and its `setsid` (seen in the test suite as a spare
/// that never started).
fn run_once(on_idle: &OnIdle) {
    let mut slot = on_idle.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(then) = slot.take() {
        then();
    }
}

/// Stops an engine from any thread: see [`Engine::shutdown`].
pub struct EngineStopper {
    control: Arc<Control>,
    workdir: Arc<WorkDir>,
    limits: Arc<crate::limits::Limits>,
}

impl EngineStopper {
    pub fn stop(&self) {
        self.control.stopping.store(true, Ordering::SeqCst);
        let child = self.control.child_pid.load(Ordering::SeqCst);
        process::kill_group(child);
        let shell = self.control.shell_pgid.load(Ordering::SeqCst);
        process::kill_group(shell);
        process::kill_compile_tree(self.control.kernel_pid, 0);
        // What cells started outside those groups: the demo server, `setsid` children. They
        // may sit in this kernel's cgroups, which can only be removed once empty.
        crate::launcher::stop_cell_processes_of(self.control.kernel_pid);
        // After the kill: a cgroup can only be removed once its processes are gone.
        self.limits.remove();
        self.workdir.remove();
    }
}

/// The server's handle on the engine.
pub struct Engine {
    requests: std::sync::mpsc::Sender<Request>,
    control: Arc<Control>,
    pending: Arc<AtomicU32>,
    workdir: Arc<WorkDir>,
    limits: Arc<crate::limits::Limits>,
    on_idle: OnIdle,
}

impl Engine {
    /// Starts the engine thread, which warms evcxr up in the background; events of every
    /// cell arrive on `events`.
    pub fn start(workdir: WorkDir, events: mpsc::UnboundedSender<EngineEvent>) -> Engine {
        let control = Arc::new(Control {
            kernel_pid: std::process::id(),
            child_pid: AtomicU32::new(0),
            shell_pgid: AtomicU32::new(0),
            phase: AtomicU8::new(Phase::Starting as u8),
            interrupted: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
            awaiting_input: AtomicBool::new(false),
            stdin_refused: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            cell_serial: AtomicU64::new(0),
            interrupt_requests: AtomicU64::new(0),
            cancel: interrupt::CancelChannel::new()
                .map_err(|e| {
                    eprintln!(
                        "[rustmeter] no cancel channel ({e}): interrupts will restart the child"
                    )
                })
                .ok(),
            interrupts: tokio::sync::Notify::new(),
            on_running: std::sync::OnceLock::new(),
        });
        let workdir = Arc::new(workdir);
        let limits = Arc::new(crate::limits::Limits::from_env());
        let thread_limits = Arc::clone(&limits);
        let (tx, rx) = std::sync::mpsc::channel();
        let pending = Arc::new(AtomicU32::new(0));
        let thread_control = Arc::clone(&control);
        let thread_workdir = Arc::clone(&workdir);
        let thread_pending = Arc::clone(&pending);
        std::thread::Builder::new()
            .name("evcxr".into())
            .spawn(move || {
                let worker = worker::Worker::new(
                    thread_control,
                    thread_workdir,
                    events,
                    thread_pending,
                    thread_limits,
                );
                worker.run(rx);
            })
            .expect("spawn the engine thread");
        Engine {
            requests: tx,
            control,
            pending,
            workdir,
            limits,
            on_idle: Arc::default(),
        }
    }

    /// Calls `hook(true)` whenever cell code starts running and `hook(false)` when it
    /// stops (not while compiling). Set once; later calls are ignored.
    pub fn on_running_change(&self, hook: fn(bool)) {
        let _ = self.control.on_running.set(hook);
    }

    /// Calls `then` on another thread once the engine is first idle (warmed up, and no
    /// cell running or queued), or at shutdown if that comes first.
    pub fn when_idle(&self, then: impl FnOnce() + Send + 'static) {
        *self.on_idle.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(then));
        let control = Arc::clone(&self.control);
        let pending = Arc::clone(&self.pending);
        let on_idle = Arc::clone(&self.on_idle);
        let _ = std::thread::Builder::new()
            .name("when-idle".into())
            .spawn(move || {
                while pending.load(Ordering::SeqCst) > 0 || control.phase() != Phase::Idle {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                run_once(&on_idle);
            });
    }

    /// Queues a cell given as text (the kernel's own warm-up cells); its events follow
    /// on the events channel.
    pub fn execute(&self, cell: CellId, code: String, allow_stdin: bool) {
        self.queue_cell(cell, crate::commands::parse(&code), allow_stdin);
    }

    /// Queues a cell the server has read already (and taken its own commands out of).
    pub fn execute_cell(&self, cell: CellId, code: crate::commands::Cell, allow_stdin: bool) {
        self.queue_cell(cell, Ok(code), allow_stdin);
    }

    fn queue_cell(&self, cell: CellId, code: ReadCell, allow_stdin: bool) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        let _ = self.requests.send(Request::Execute {
            cell,
            code,
            allow_stdin,
        });
    }

    /// True while a cell runs or waits, or while evcxr is still starting: completion
    /// and inspection then answer empty at once instead of queueing behind it.
    pub fn is_busy(&self) -> bool {
        self.pending.load(Ordering::SeqCst) > 0 || self.control.phase() != Phase::Idle
    }

    /// In the first seconds after launch evcxr and rust-analyzer are still starting: a
    /// completion or inspection asked then (Tab right after a notebook opens) waits for
    /// them, up to [`START_WAIT`], instead of answering empty. A running cell is not
    /// waited for: its end may be minutes away.
    async fn wait_while_starting(&self) {
        let deadline = std::time::Instant::now() + START_WAIT;
        while self.control.phase() == Phase::Starting && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn complete(&self, code: String, cursor: usize) -> Completion {
        self.wait_while_starting().await;
        if self.is_busy() {
            return Completion {
                cursor_start: cursor,
                cursor_end: cursor,
                ..Default::default()
            };
        }
        let (reply, rx) = oneshot::channel();
        let _ = self.requests.send(Request::Complete {
            code,
            cursor,
            reply,
        });
        rx.await.unwrap_or_default()
    }

    pub async fn inspect(&self, code: String, cursor: usize) -> Inspection {
        self.wait_while_starting().await;
        if self.is_busy() {
            return Inspection::default();
        }
        let (reply, rx) = oneshot::channel();
        let _ = self.requests.send(Request::Inspect {
            code,
            cursor,
            reply,
        });
        rx.await.unwrap_or_default()
    }

    /// Stops what runs now (see [`interrupt::stop_cell`]): an async cell at its next
    /// `.await`, a cell that checks `rustmeter::interrupted()`, otherwise the child's
    /// process group after a grace period; a shell command; the compiler tree. Does
    /// nothing while idle (clients interrupt before every restart).
    pub fn interrupt(&self) {
        self.control
            .interrupt_requests
            .fetch_add(1, Ordering::SeqCst);
        interrupt::stop_cell(&self.control);
    }

    /// How many interrupts were asked for so far.
    pub fn interrupt_requests(&self) -> u64 {
        self.control.interrupt_requests.load(Ordering::SeqCst)
    }

    /// Resolves at the next interrupt, or at once if the current cell was interrupted.
    pub async fn interrupted(&self) {
        let notified = self.control.interrupts.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.control.interrupted.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }

    /// Kills everything this kernel started and removes its folder. For shutdown.
    pub fn shutdown(&self) {
        run_once(&self.on_idle);
        self.stopper().stop();
    }

    /// What [`Engine::shutdown`] needs, for a thread that does not own the engine (a
    /// served spare whose launcher died).
    pub fn stopper(&self) -> EngineStopper {
        EngineStopper {
            control: Arc::clone(&self.control),
            workdir: Arc::clone(&self.workdir),
            limits: Arc::clone(&self.limits),
        }
    }

    /// This kernel's work folder.
    pub fn workdir_path(&self) -> std::path::PathBuf {
        self.workdir.path.clone()
    }

    /// Where finished cells' telemetry is written for the `rustmeter` crate in cells.
    pub fn telemetry_dir(&self) -> std::path::PathBuf {
        self.workdir.telemetry_dir()
    }

    /// The file the rustc wrapper appends build events to (`depcache::record`), for
    /// compile progress.
    pub fn build_events_file(&self) -> std::path::PathBuf {
        self.workdir.build_events_file()
    }

    /// evcxr's cargo project (its `Cargo.toml` and `Cargo.lock`).
    pub fn crate_dir(&self) -> std::path::PathBuf {
        self.workdir.evcxr_dir()
    }

    /// The user-code process, when one is running.
    pub fn child_pid(&self) -> Option<u32> {
        Some(self.control.child_pid.load(Ordering::SeqCst)).filter(|p| *p != 0)
    }
}
