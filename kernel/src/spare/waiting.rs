//! The spare's side (`rustmeter spare --key K`): warm a kernel up without any client —
//! evcxr, the prelude, rust-analyzer, and the tutorials' canonical dependency line — then
//! wait on a Unix socket for one launch with the same key, take over its connection file
//! and standard streams, move to its working folder, and serve it as an ordinary kernel.
//!
//! Owns the waiting and the take-over; the kernel itself is [`crate::server::serve`].

use super::handover;
use crate::engine::{CellEvent, CellOutcome, Engine, EngineEvent, MOVE_CELL, WARM_CELL};
use crate::server::ClassifyText;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The canonical dependency line of the tutorials and the prewarm (so it is a cache hit),
/// and the `rustmeter` crate, declared by naming it without calling anything.
const WARM_CELLS: [&str; 2] = [
    crate::depcache::CANONICAL_CELLS[0],
    "{ let _ = rustmeter::interrupted; }",
];

/// A spare starts warming this long after the launch that started it, so it does not
/// compete with that launch's own first cell.
const START_DELAY: Duration = Duration::from_secs(4);

pub fn run(key: &str) -> anyhow::Result<()> {
    let dir = super::create_dir()?;
    let pid = std::process::id();
    let Some(lock) = super::KeyLock::try_take(&dir, key) else {
        super::log(&format!(
            "spare {pid}: another spare holds key {key}; exiting"
        ));
        return Ok(());
    };
    if super::current_key()? != key {
        anyhow::bail!("the environment differs from the launch that asked for this spare");
    }
    super::log(&format!("spare {pid} started for key {key}"));
    let pid_file = super::pid_path(&dir, key, pid);
    std::fs::write(&pid_file, "")?;
    std::thread::sleep(START_DELAY);
    let waited = wait_for_a_free_core();
    if waited >= FREE_CORE_PATIENCE {
        super::log(&format!(
            "spare {pid}: no core was free for {} s; warming up anyway",
            waited.as_secs()
        ));
    }
    let workdir = crate::workdir::WorkDir::create()?;
    std::fs::create_dir_all(workdir.evcxr_dir())?;
    // No other thread reads the environment yet (the stderr filter never does): the only
    // safe moment to set evcxr's folder.
    std::env::set_var("EVCXR_TMPDIR", workdir.evcxr_dir());
    crate::launcher::mark_kernel_process();
    let runtime = crate::server::runtime()?;
    let result = runtime.block_on(warm_then_serve(&dir, key, &pid_file, lock, workdir));
    let _ = std::fs::remove_file(&pid_file);
    result
}

async fn warm_then_serve(
    dir: &Path,
    key: &str,
    pid_file: &Path,
    lock: super::KeyLock,
    workdir: crate::workdir::WorkDir,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let engine = Engine::start(workdir, events_tx);
    engine.on_running_change(super::pause::while_code_runs);
    for code in WARM_CELLS {
        engine.execute(WARM_CELL, code.to_string(), false);
        if let Err(e) = finish_warm_cell(&mut events).await {
            super::log(&format!("spare warm-up `{code}` failed: {e}"));
        }
    }
    super::log(&format!(
        "spare {key} warm in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let socket = super::socket_path(dir, key, std::process::id());
    let taken = tokio::task::spawn_blocking({
        let socket = socket.clone();
        let pid_file = pid_file.to_path_buf();
        move || wait_for_launch(&socket, &pid_file, lock, super::idle_limit())
    })
    .await?;
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(pid_file);
    let Some(Launch {
        link,
        info,
        launcher,
        cwd,
    }) = taken
    else {
        super::log("spare not claimed in time; exiting");
        engine.shutdown();
        return Ok(());
    };
    if let Some(cwd) = cwd {
        move_to(&cwd, &engine, &mut events).await;
    }
    let stopper = engine.stopper();
    std::thread::Builder::new()
        .name("spare-link".into())
        .spawn(move || {
            use std::io::Read;
            let mut link = link;
            let mut buffer = [0u8; 64];
            while matches!(link.read(&mut buffer), Ok(n) if n > 0) {}
            // The launcher is gone (killed): nobody can reach this kernel any more.
            super::log("the launching process is gone; shutting down");
            let _ = std::fs::remove_file(super::proxy_file(launcher));
            stopper.stop();
            crate::log::exit(0);
        })?;
    crate::server::serve(info, engine, events).await
}

/// The launch's working folder becomes this kernel's and its cell process's, before any
/// cell of the launch runs: relative paths in cells mean the notebook's folder, as in
/// the kernel the launch would have started. A folder that cannot be entered is logged
/// and the spare's own kept.
async fn move_to(
    folder: &Path,
    engine: &Engine,
    events: &mut mpsc::UnboundedReceiver<EngineEvent>,
) {
    if std::env::current_dir().is_ok_and(|now| now == folder) {
        return;
    }
    if let Err(e) = std::env::set_current_dir(folder) {
        super::log(&format!("cannot move to the launch's folder: {e}"));
        return;
    }
    // evcxr restarts a crashed cell process with this process's folder, now the launch's;
    // the running one moves with a hidden cell.
    let Some(text) = folder.to_str() else {
        super::log("the launch's folder is not UTF-8: cells keep the spare's folder");
        return;
    };
    let code = format!("{{ let _ = std::env::set_current_dir({text:?}); }}");
    engine.execute(MOVE_CELL, code, false);
    if let Err(e) = finish_warm_cell(events).await {
        super::log(&format!("cannot move cells to the launch's folder: {e}"));
    }
}

async fn finish_warm_cell(events: &mut mpsc::UnboundedReceiver<EngineEvent>) -> Result<(), String> {
    while let Some(event) = events.recv().await {
        if let CellEvent::Finished(outcome) = event.event {
            return match outcome {
                CellOutcome::Error(e) => Err(format!("{} {}", e.ename, e.evalue)),
                _ => Ok(()),
            };
        }
    }
    Err("the engine stopped".into())
}

/// Waits until the machine has a core to spare for three seconds in a row (at most ten
/// minutes): warming costs about 10 CPU-seconds, which must not slow the cells of
/// kernels in use, e.g. a whole class starting at once.
/// Waits until one core has been mostly free of normal-priority work for 3 s, at most
/// [`FREE_CORE_PATIENCE`]; returns how long it waited. Running code in this user's
/// kernels stops spares anyway (`pause`), so this only keeps a warm-up from landing on a
/// machine already busy compiling.
fn wait_for_a_free_core() -> Duration {
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut calm = 0;
    let mut last = cpu_times();
    while calm < 3 && started.elapsed() < FREE_CORE_PATIENCE {
        std::thread::sleep(Duration::from_secs(1));
        let now = cpu_times();
        if let (Some((busy0, total0)), Some((busy1, total1))) = (last, now) {
            let busy_cores = (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64 * cores;
            calm = if busy_cores <= cores - 0.75 {
                calm + 1
            } else {
                0
            };
        }
        last = now;
    }
    started.elapsed()
}

/// How long a spare waits for a free core before warming up anyway: a machine busy for
/// longer is busy with something that will not end for a spare's sake.
const FREE_CORE_PATIENCE: Duration = Duration::from_secs(60);

/// `(busy, total)` jiffies of all cores, from `/proc/stat`; busy = at normal priority.
fn cpu_times() -> Option<(u64, u64)> {
    let t = crate::telemetry::sampler::machine_cpu_ticks()?;
    let total: u64 = t.iter().sum();
    // Idle, iowait and niced time: background work at low priority does not count.
    let free = t[3] + t[4] + t[1];
    Some((total.saturating_sub(free), total))
}

/// Listens until one launch of this user hands over a readable connection file, or the
/// idle limit passes. The socket appears only now, when the spare is warm. Before the
/// launch hears "ok", this spare's files and key lock are gone, so the launch can start
/// the next spare at once.
fn wait_for_launch(
    socket: &Path,
    pid_file: &Path,
    lock: super::KeyLock,
    idle: Duration,
) -> Option<Launch> {
    let temporary = socket.with_extension("sock.tmp");
    let _ = std::fs::remove_file(&temporary);
    let folder = std::fs::File::open(temporary.parent()?).ok()?;
    let listener = match UnixListener::bind(super::socket_address(&folder, temporary.file_name()?))
    {
        Ok(listener) => listener,
        Err(e) => {
            super::log(&format!(
                "spare cannot listen at {}: {e}",
                temporary.display()
            ));
            return None;
        }
    };
    std::fs::rename(&temporary, socket).ok()?;
    let deadline = Instant::now() + idle;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let mut poll = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(60_000) as i32;
        if unsafe { libc::poll(&mut poll, 1, ms) } <= 0 {
            continue;
        }
        let Ok((link, _)) = listener.accept() else {
            continue;
        };
        if let Some((info, request)) = take_over(&link) {
            let _ = std::fs::remove_file(socket);
            let _ = std::fs::remove_file(pid_file);
            drop(lock);
            handover::write_reply(&link, Ok(std::process::id())).ok()?;
            let launcher = request.launcher_pid;
            super::log(&format!("warm spare serving the launch of pid {launcher}"));
            return Some(Launch {
                link,
                info,
                launcher,
                cwd: request.cwd,
            });
        }
    }
}

/// A launch this spare took over: the link to its launcher, its connection, the
/// launcher's pid and working folder.
struct Launch {
    link: UnixStream,
    info: jupyter_protocol::ConnectionInfo,
    launcher: u32,
    cwd: Option<std::path::PathBuf>,
}

/// Checks one hand-over; on success the launch's streams become this process's.
fn take_over(link: &UnixStream) -> Option<(jupyter_protocol::ConnectionInfo, handover::Request)> {
    if handover::peer_uid(link) != Some(unsafe { libc::getuid() }) {
        return None;
    }
    let _ = link.set_read_timeout(Some(Duration::from_secs(5)));
    let (request, fds) = handover::receive(link).ok()?;
    let _ = link.set_read_timeout(None);
    let info = std::fs::read_to_string(&request.connection_file)
        .map_err(|e| format!("cannot read the connection file: {e}"))
        .and_then(|text| {
            serde_json::from_str::<jupyter_protocol::ConnectionInfo>(&text)
                .map_err(|e| format!("the connection file is not valid: {}", e.classify_text()))
        });
    let info = match (info, fds.len()) {
        (Ok(info), 3) => info,
        (Ok(_), n) => {
            let _ = handover::write_reply(link, Err(&format!("expected 3 descriptors, got {n}")));
            return None;
        }
        (Err(why), _) => {
            let _ = handover::write_reply(link, Err(&why));
            return None;
        }
    };
    for (target, fd) in fds.iter().enumerate().take(2) {
        unsafe { libc::dup2(fd.as_raw_fd(), target as i32) };
    }
    // Behind this spare's log filter, so cargo's lines stay out of the launcher's log.
    if let Err(e) = fds[2].try_clone().and_then(crate::log::adopt_stderr) {
        crate::log::info(&format!("cannot take over the launcher's stderr: {e}"));
    }
    Some((info, request))
}
