//! One launch of the binary, wired: a plain kernel, a launch served by a warm spare (this
//! process then proxies), and `rustmeter prewarm`. Decides which engine serves which
//! connection file and what runs beside it (the launcher watch, the next spare, pausing
//! spares while code runs).
//!
//! The top of the dependency graph: it uses `server`, `engine`, `spare`, `depcache` and
//! `launcher`, and none of them uses it. Serving (Jupyter messages) is `server`'s, running
//! code is `engine`'s.

pub mod prewarm;

use crate::engine::Engine;
use crate::server::{log, runtime, serve, ClassifyText};
use crate::workdir::WorkDir;
use anyhow::Context;
use jupyter_protocol::ConnectionInfo;
use std::path::PathBuf;
use tokio::sync::mpsc;

/// Runs the kernel until a shutdown request. Returns an error only if it cannot start.
/// With warm spares on (see [`crate::spare`]), a ready spare serves this launch and this
/// process stays as its proxy; either way a spare is started for the next launch (at
/// once when served, else when this kernel is first idle).
pub fn run_kernel(connection_file: PathBuf) -> anyhow::Result<()> {
    crate::spare::note_launch_environment();
    let launcher = crate::launcher::launcher();
    let spare_key = crate::spare::enabled()
        .then(crate::spare::current_key)
        .and_then(Result::ok);
    if let Some(key) = &spare_key {
        if let Some(claimed) = crate::spare::claim(key, &connection_file) {
            if crate::spare::started_by_launches() {
                crate::spare::ensure(key);
            }
            if let Some(launcher) = launcher {
                // The proxy's exit closes the link: the spare then shuts down as a kernel.
                crate::launcher::watch(launcher, move || {
                    log(&format!(
                        "the launching process {launcher} is gone; shutting down"
                    ));
                    let _ = std::fs::remove_file(crate::spare::proxy_file(std::process::id()));
                    crate::log::exit(0);
                });
            }
            claimed.serve_as_proxy();
        }
        if !crate::spare::started_by_launches() {
            // A launch before the login spare was warm starts its own kernel: the spare
            // would only wait beside it, a second idle kernel for this learner.
            crate::spare::stop_all();
        }
    }
    let text = std::fs::read_to_string(&connection_file)
        .with_context(|| format!("cannot read connection file {}", connection_file.display()))?;
    // The parse error is reported without the file's content: it holds the key.
    let info: ConnectionInfo = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "connection file {} is not valid: {}",
            connection_file.display(),
            e.classify_text()
        )
    })?;
    let workdir = WorkDir::create().context("cannot create the kernel's work folder")?;
    std::fs::create_dir_all(workdir.evcxr_dir())?;
    // No other thread reads the environment yet (the stderr filter never does): the only
    // safe moment to set evcxr's folder.
    std::env::set_var("EVCXR_TMPDIR", workdir.evcxr_dir());
    crate::launcher::mark_kernel_process();
    // The connection file's path stays out of the log: it leads to the signing key.
    crate::log::info(&format!(
        "kernel {} started (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    ));
    runtime()?.block_on(async {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let engine = Engine::start(workdir, events_tx);
        engine.on_running_change(crate::spare::pause::while_code_runs);
        if let Some(launcher) = launcher {
            let stopper = engine.stopper();
            crate::launcher::watch(launcher, move || {
                log(&format!(
                    "the launching process {launcher} is gone; shutting down"
                ));
                stopper.stop();
                crate::log::exit(0);
            });
        }
        // The spare for the next launch warms up once this kernel has (and its first
        // cells ran), not alongside.
        if let Some(key) = spare_key.filter(|_| crate::spare::started_by_launches()) {
            engine.when_idle(move || crate::spare::ensure(&key));
        }
        serve(info, engine, events_rx).await
    })
}
