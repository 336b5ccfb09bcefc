//! Starting evcxr: the child command (isolated, in the caps, with the cancel channel),
//! the dependency cache's build environment, the output pump thread and the prelude.
//! Runs once per worker, and the prelude again after each child restart.

use super::{log, Evcxr, Worker};
use crate::engine::prelude;
use crate::engine::process;
use crate::engine::pump::Pump;
use crate::engine::{WarmUp, WarmUpStep};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

impl Worker {
    pub(super) fn start_evcxr(&mut self) -> Result<Evcxr, String> {
        let began = Instant::now();
        // evcxr reads its build folder from EVCXR_TMPDIR, set by the server at start-up
        // while it was still single-threaded.
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut command = std::process::Command::new(exe);
        command.env("RUSTMETER_CHILD_ENV_FILE", self.workdir.child_env_file());
        // Where the `rustmeter` crate in cells reads earlier cells' telemetry.
        command.env("RUSTMETER_TELEMETRY_DIR", self.workdir.telemetry_dir());
        // The tokio shim reads the threshold as plain milliseconds: the checked value.
        let stall_ms = crate::settings::count(&crate::settings::STALL_MS);
        command.env(crate::settings::STALL_MS.name, stall_ms.to_string());
        command.env("RUSTMETER_LABELS_DIR", crate::workdir::labels_dir());
        if let Some(path) = library_path_with_std(&self.workdir.evcxr_dir()) {
            command.env("LD_LIBRARY_PATH", path);
        }
        process::isolate(&mut command);
        // Each child evcxr starts from this command, restarts included, lands in the caps.
        self.limits.attach(&mut command);
        if let Some(channel) = &self.control.cancel {
            channel.inherit(&mut command);
        }
        WarmUp::add(
            &mut self.warm_up,
            WarmUpStep::KernelSetUp,
            began,
            Instant::now(),
        );
        let evcxr_began = Instant::now();
        let (context, outputs) = std::panic::catch_unwind(AssertUnwindSafe(|| {
            evcxr::EvalContext::with_subprocess_command(command)
        }))
        .map_err(|_| "evcxr panicked while starting".to_string())?
        .map_err(|e| e.to_string())?;
        self.record_evcxr_start(evcxr_began);
        let mut context = evcxr::CommandContext::with_eval_context(context);
        // The shared dependency cache: cargo runs this binary as its rustc wrapper. Part
        // of evcxr's config, so it survives child restarts and `:clear`.
        for (key, value) in crate::depcache::build_envs(&self.workdir.build_events_file()) {
            let line = format!(":build_env {key}={value}");
            match std::panic::catch_unwind(AssertUnwindSafe(|| context.execute(&line))) {
                Ok(Ok(_)) => {}
                _ => log(&format!(
                    "could not set {key} for builds: dependency cache off"
                )),
            }
        }
        let (pump_tx, pump_rx) = crossbeam_channel::unbounded();
        let pump = Pump {
            stdout: outputs.stdout,
            stderr: outputs.stderr,
            commands: pump_rx,
            events: self.events.clone(),
            control: Arc::clone(&self.control),
        };
        std::thread::Builder::new()
            .name("output-pump".into())
            .spawn(move || pump.run())
            .map_err(|e| e.to_string())?;
        let pid = self.refresh_child_pid(&context);
        self.limit_warnings.extend(self.limits.check_member(pid));
        // One compile: the display items, then the prelude block; the prelude alone if
        // the items were refused.
        let prelude_began = Instant::now();
        let both = format!("{}\n{}", prelude::QUICK_DISPLAY, prelude::source());
        if !execute_hidden(&mut context, &both) {
            run_prelude(&mut context);
        }
        WarmUp::add(
            &mut self.warm_up,
            WarmUpStep::Prelude,
            prelude_began,
            Instant::now(),
        );
        Ok(Evcxr {
            context,
            pump: pump_tx,
        })
    }
}

impl Worker {
    /// evcxr's start as two steps: its first compile begins when cargo creates the build
    /// folder's `target` (its birth time); before that, the child process starts and
    /// rust-analyzer loads the crate graph and std's sources. One step when the file
    /// system keeps no birth times.
    fn record_evcxr_start(&mut self, began: Instant) {
        let ended = Instant::now();
        let compile_began = std::fs::metadata(self.workdir.evcxr_dir().join("target"))
            .and_then(|m| m.created())
            .ok()
            .and_then(|born| std::time::SystemTime::now().duration_since(born).ok())
            .and_then(|ago| ended.checked_sub(ago))
            .filter(|at| *at > began && *at < ended);
        match compile_began {
            Some(at) => {
                WarmUp::add(&mut self.warm_up, WarmUpStep::EvcxrStart, began, at);
                WarmUp::add(&mut self.warm_up, WarmUpStep::EvcxrFirstCompile, at, ended);
            }
            None => WarmUp::add(&mut self.warm_up, WarmUpStep::EvcxrStart, began, ended),
        }
    }

    /// rust-analyzer's first analysis, when no request waits for the engine: a cell sent
    /// at launch runs first (it does not need it), completion and the first `let` after.
    pub(super) fn warm_analysis(&mut self, context: &mut evcxr::CommandContext, code: &str) {
        let began = Instant::now();
        let _ = super::lookups::complete(context, code, code.chars().count());
        WarmUp::add(
            &mut self.warm_up,
            WarmUpStep::Analysis,
            began,
            Instant::now(),
        );
    }
}

/// The loader path for the child, std's shared library folder first. evcxr builds each
/// cell into `deps/` with a *relative* RUNPATH and loads the hard link one folder up, so
/// the path is one `..` too deep: harmless when it climbs past `/` (evcxr's default
/// build folder under /tmp), but `dlopen failed` for every cell when the build folder
/// and the toolchain share a parent, as `~/.cache/rustmeter` and `~/.rustup` do.
/// Asked from `build_folder`, where evcxr runs cargo: a `rust-toolchain.toml` in the
/// notebook's folder must not pick another toolchain than the one that builds the cells.
fn library_path_with_std(build_folder: &std::path::Path) -> Option<std::ffi::OsString> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = std::process::Command::new(rustc)
        .args(["--print", "target-libdir"])
        .current_dir(build_folder)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let dir = String::from_utf8(output.stdout).ok()?;
    let mut folders = vec![std::path::PathBuf::from(dir.trim())];
    if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH") {
        // An empty entry would make the loader search the working folder.
        folders.extend(std::env::split_paths(&existing).filter(|p| !p.as_os_str().is_empty()));
    }
    std::env::join_paths(folders).ok()
}

/// The prelude again, in a restarted child (evcxr keeps the display items).
pub(super) fn run_prelude(context: &mut evcxr::CommandContext) {
    execute_hidden(context, &prelude::source());
}

/// After `:fmt`/`:types`: values are printed by evcxr, as those commands ask.
pub(super) fn quick_display_off(context: &mut evcxr::CommandContext) {
    execute_hidden(context, prelude::QUICK_DISPLAY_OFF);
}

/// Runs kernel code no learner sees; a failure only loses what it would have added.
fn execute_hidden(context: &mut evcxr::CommandContext, code: &str) -> bool {
    match std::panic::catch_unwind(AssertUnwindSafe(|| context.execute(code))) {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            log(&format!("a hidden kernel cell failed: {e}"));
            false
        }
        Err(_) => {
            log("a hidden kernel cell panicked inside evcxr");
            false
        }
    }
}

/// Code whose completion makes rust-analyzer do, during warm-up, what the learner's first
/// `let` would otherwise wait for: load the std sources' crate graph and infer a type
/// through std's traits (about 2 s on 2 cores). A look-up only: evcxr keeps no state.
pub(super) const WARM_ANALYSIS: &str =
    "let rustmeter_warm = std::collections::HashMap::<String, Vec<u8>>::new();\nrustmeter_warm.le";

/// The same after hidden warm-up cells, which declare tokio: its crate graph too.
pub(super) const WARM_ANALYSIS_TOKIO: &str =
    "let rustmeter_warm = tokio::sync::mpsc::channel::<u8>(1);\nrustmeter_warm.0.se";
