//! The engine thread: owns evcxr's `CommandContext` and runs requests in order — cells
//! (planned by [`super::cell`], run through evcxr, a shell or rustmeter itself),
//! completion and inspection. Reports through [`CellEvent`]s; never touches sockets.

use super::cell::{self, Session, Step};
use super::pump::{Pump, PumpCommand};
use super::time_limit::{self, TimeLimit};
use super::{
    prelude, process, report, syntax, CellError, CellEvent, CellId, CellOutcome, Completion,
    Control, EngineEvent, ErrorKind, Inspection, Phase, Request,
};
use crate::workdir::WorkDir;
use serde_json::{Map, Value};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

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
    /// Limit problems (caps that cannot be enforced, a bad `RUSTMETER_CELL_TIMEOUT`) not
    /// yet shown; the next cell shows them once, on stderr.
    limit_warnings: Vec<String>,
    time_limit: Option<TimeLimit>,
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
        let time_limit = time_limit::from_env().unwrap_or_else(|error| {
            limit_warnings.push(error);
            None
        });
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
        self.control.set_phase(Phase::Idle);
        while let Ok(request) = requests.recv() {
            match request {
                Request::Execute {
                    cell,
                    code,
                    allow_stdin,
                } => match evcxr.as_mut() {
                    Some(e) => self.execute(e, cell, &code, allow_stdin),
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
                } => {
                    let result = evcxr
                        .as_mut()
                        .map(|e| complete(&mut e.context, &code, cursor));
                    let _ = reply.send(result.unwrap_or_default());
                }
                Request::Inspect {
                    code,
                    cursor,
                    reply,
                } => {
                    let result = evcxr
                        .as_mut()
                        .map(|e| inspect(&mut e.context, &code, cursor));
                    let _ = reply.send(result.unwrap_or_default());
                }
            }
        }
    }

    fn start_evcxr(&mut self) -> Result<Evcxr, String> {
        // evcxr reads its build folder from EVCXR_TMPDIR, set by the server at start-up
        // while it was still single-threaded.
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut command = std::process::Command::new(exe);
        command.env("RUSTMETER_CHILD_ENV_FILE", self.workdir.child_env_file());
        // Where the `rustmeter` crate in cells reads earlier cells' telemetry.
        command.env("RUSTMETER_TELEMETRY_DIR", self.workdir.telemetry_dir());
        command.env("RUSTMETER_LABELS_DIR", crate::workdir::labels_dir());
        process::isolate(&mut command);
        // Each child evcxr starts from this command, restarts included, lands in the caps.
        self.limits.attach(&mut command);
        if let Some(channel) = &self.control.cancel {
            channel.inherit(&mut command);
        }
        let (context, outputs) = std::panic::catch_unwind(AssertUnwindSafe(|| {
            evcxr::EvalContext::with_subprocess_command(command)
        }))
        .map_err(|_| "evcxr panicked while starting".to_string())?
        .map_err(|e| e.to_string())?;
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
        run_prelude(&mut context);
        Ok(Evcxr {
            context,
            pump: pump_tx,
        })
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

    fn execute(&mut self, evcxr: &mut Evcxr, cell: CellId, code: &str, allow_stdin: bool) {
        let serial = self.control.cell_serial.fetch_add(1, Ordering::SeqCst) + 1;
        self.control.interrupted.store(false, Ordering::SeqCst);
        self.control.timed_out.store(false, Ordering::SeqCst);
        if let Some(channel) = &self.control.cancel {
            channel.drain();
        }
        self.control.set_phase(Phase::Compiling);
        if let Some(limit) = &self.time_limit {
            time_limit::watch(Arc::clone(&self.control), serial, limit.duration);
        }
        let _ = evcxr.pump.send(PumpCommand::Start(cell));
        let pid_before = self.refresh_child_pid(&evcxr.context);
        self.send(
            cell,
            CellEvent::Started {
                child_pid: pid_before,
            },
        );
        for warning in std::mem::take(&mut self.limit_warnings) {
            self.send(
                cell,
                CellEvent::Stream {
                    stderr: true,
                    text: format!("rustmeter: {warning}\n"),
                },
            );
        }
        let counters_before = self.limits.counters();
        let variables_before: Vec<String> = evcxr
            .context
            .variables_and_types()
            .map(|(name, _)| name.to_string())
            .collect();

        let outcome = match cell::plan(code, &self.session, &self.shim_root) {
            Err(message) => CellOutcome::Error(report::message("command error", message)),
            Ok(steps) => self.run_steps(evcxr, cell, steps, allow_stdin),
        };

        let pid_after = self.refresh_child_pid(&evcxr.context);
        let restarted = pid_after != pid_before;
        let lost = if restarted {
            variables_before
        } else {
            Vec::new()
        };
        let outcome = if self.control.interrupted.load(Ordering::SeqCst) {
            match self.time_limit.as_ref() {
                Some(limit) if self.control.timed_out.load(Ordering::SeqCst) => {
                    CellOutcome::Error(report::timed_out(&limit.text, lost, restarted))
                }
                _ => CellOutcome::Error(report::interrupted(lost, restarted)),
            }
        } else {
            match outcome {
                // Worded by the pump, which also saw what the child wrote on stderr.
                CellOutcome::Error(mut e) if e.kind == ErrorKind::Crashed => {
                    e.lost_variables = lost;
                    CellOutcome::Error(e)
                }
                other => other,
            }
        };
        self.control.set_phase(Phase::Idle);
        // Not busy any more before the reply can reach the client, so a completion
        // request sent right after the reply is answered for real.
        self.pending.fetch_sub(1, Ordering::SeqCst);
        let hits = self.limits.hits_since(counters_before);
        let _ = evcxr.pump.send(PumpCommand::Finish(cell, outcome, hits));
        if restarted {
            // A new child has neither our panic hook nor the flush function.
            run_prelude(&mut evcxr.context);
            let pid = self.refresh_child_pid(&evcxr.context);
            self.limit_warnings.extend(self.limits.check_member(pid));
        }
    }

    fn run_steps(
        &mut self,
        evcxr: &mut Evcxr,
        cell: CellId,
        steps: Vec<Step>,
        allow_stdin: bool,
    ) -> CellOutcome {
        let mut data = Map::new();
        for step in steps {
            if self.control.interrupted.load(Ordering::SeqCst) {
                break;
            }
            let result = match step {
                Step::Evcxr(code) => {
                    let r = self.run_evcxr(evcxr, cell, &code, allow_stdin);
                    // `:clear` empties evcxr's state, dependencies included.
                    if code.lines().any(|l| l.trim() == ":clear") {
                        self.session.shims.clear();
                    }
                    r
                }
                Step::InterruptibleEvcxr { code, original } => {
                    let r = match self.run_evcxr(evcxr, cell, &code, allow_stdin) {
                        // The learner should see their own code in compile errors.
                        CellOutcome::Error(e)
                            if e.kind == ErrorKind::Compile && shows_rewrite(&e) =>
                        {
                            self.run_evcxr(evcxr, cell, &original, allow_stdin)
                        }
                        other => other,
                    };
                    if original.lines().any(|l| l.trim() == ":clear") {
                        self.session.shims.clear();
                    }
                    r
                }
                Step::DeclareShim {
                    name,
                    line,
                    features,
                } => {
                    let r = self.run_evcxr(evcxr, cell, &line, false);
                    if matches!(r, CellOutcome::Ok { .. }) {
                        self.session.shims.insert(name, features);
                    }
                    r
                }
                Step::Shell(command) => self.run_shell(cell, &command),
                Step::SetEnv { key, value } => self.set_env(evcxr, cell, key, value),
                Step::Note(text) => {
                    self.send(
                        cell,
                        CellEvent::Stream {
                            stderr: false,
                            text: format!("{text}\n"),
                        },
                    );
                    CellOutcome::Ok { data: Map::new() }
                }
                Step::Help => help(&mut evcxr.context),
                Step::Limits => {
                    let mut data = Map::new();
                    data.insert("text/plain".into(), Value::String(self.limits.describe()));
                    CellOutcome::Ok { data }
                }
            };
            match result {
                CellOutcome::Ok { data: d } => data.extend(d),
                error => return error,
            }
        }
        CellOutcome::Ok { data }
    }

    fn run_evcxr(
        &mut self,
        evcxr: &mut Evcxr,
        cell: CellId,
        code: &str,
        allow_stdin: bool,
    ) -> CellOutcome {
        let events = self.events.clone();
        let control = Arc::clone(&self.control);
        // evcxr does not export its InputRequest type: the closure's argument type is
        // inferred from `EvalCallbacks::input_reader`.
        let reader = move |prompt: String, password: bool| -> String {
            if !allow_stdin {
                let _ = events.send(EngineEvent {
                    cell,
                    event: CellEvent::Stream {
                        stderr: true,
                        text:
                            "rustmeter: this cell asked for input, but this client does not allow \
                               input (allow_stdin is false); an empty line was given.\n"
                                .to_string(),
                    },
                });
                return String::new();
            }
            let (reply, answer) = std::sync::mpsc::sync_channel(1);
            let _ = events.send(EngineEvent {
                cell,
                event: CellEvent::InputRequest {
                    prompt,
                    password,
                    reply,
                },
            });
            // The learner's typing does not count against the cell's time limit.
            control.awaiting_input.store(true, Ordering::SeqCst);
            let line = answer.recv().unwrap_or_default();
            control.awaiting_input.store(false, Ordering::SeqCst);
            line
        };
        let mut callbacks = evcxr::EvalCallbacks {
            input_reader: &|request| reader(request.prompt, request.is_password),
        };
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            evcxr.context.execute_with_callbacks(code, &mut callbacks)
        }));
        match result {
            Err(_) => CellOutcome::Error(report::message(
                "kernel error",
                "evcxr failed internally on this cell (the kernel is still running). Try :restart.",
            )),
            Ok(Ok(outputs)) => {
                let mut content = outputs.content_by_mime_type;
                // A cell ending in a statement-like expression (`print!(..)`, a `for`
                // loop) has the value `()`: show nothing, as Python kernels do for None.
                if content.len() == 1 && content.get("text/plain").is_some_and(|t| t == "()") {
                    content.clear();
                }
                // A cell ending in `;` has no value: content blocks it printed last are
                // displays, not its result.
                if !content.is_empty() && !syntax::has_final_expression(code) {
                    let data = std::mem::take(&mut content)
                        .into_iter()
                        .map(|(m, c)| (m, Value::String(c)))
                        .collect();
                    self.send(
                        cell,
                        CellEvent::Display {
                            data,
                            metadata: Map::new(),
                            display_id: None,
                            update: false,
                        },
                    );
                }
                CellOutcome::Ok {
                    data: content
                        .into_iter()
                        .map(|(m, c)| (m, Value::String(c)))
                        .collect(),
                }
            }
            Ok(Err(evcxr::Error::CompilationErrors(errors))) => {
                CellOutcome::Error(report::compile_errors(&errors))
            }
            Ok(Err(evcxr::Error::SubprocessTerminated(message))) => CellOutcome::Error(CellError {
                kind: ErrorKind::Crashed,
                ename: "crash".into(),
                evalue: message,
                traceback: Vec::new(),
                lost_variables: Vec::new(),
            }),
            Ok(Err(evcxr::Error::TypeRedefinedVariablesLost(vars))) => {
                let mut e = report::message(
                    "variables lost",
                    format!(
                        "A type was redefined, so these variables were lost: {}",
                        vars.join(", ")
                    ),
                );
                e.lost_variables = vars;
                CellOutcome::Error(e)
            }
            Ok(Err(other)) => CellOutcome::Error(report::message("error", other.to_string())),
        }
    }

    fn run_shell(&self, cell: CellId, command: &str) -> CellOutcome {
        use std::io::{BufRead, BufReader};
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .envs(self.env.iter().cloned())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        process::isolate(&mut cmd);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return CellOutcome::Error(report::message(
                    "shell error",
                    format!("could not run sh: {e}"),
                ))
            }
        };
        self.control.shell_pgid.store(child.id(), Ordering::SeqCst);
        self.control.set_phase(Phase::Running);
        let stderr = child.stderr.take().map(BufReader::new);
        let events = self.events.clone();
        let err_thread = std::thread::spawn(move || {
            if let Some(stderr) = stderr {
                for line in stderr.lines().map_while(Result::ok) {
                    let _ = events.send(EngineEvent {
                        cell,
                        event: CellEvent::Stream {
                            stderr: true,
                            text: format!("{line}\n"),
                        },
                    });
                }
            }
        });
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                self.send(
                    cell,
                    CellEvent::Stream {
                        stderr: false,
                        text: format!("{line}\n"),
                    },
                );
            }
        }
        let status = child.wait();
        let _ = err_thread.join();
        self.control.shell_pgid.store(0, Ordering::SeqCst);
        self.control.set_phase(Phase::Compiling);
        match status {
            Ok(s) if s.success() => CellOutcome::Ok { data: Map::new() },
            Ok(s) => CellOutcome::Error(report::message(
                "shell error",
                format!("`{command}` failed: {s}"),
            )),
            Err(e) => CellOutcome::Error(report::message("shell error", e.to_string())),
        }
    }

    /// `:env`: never `set_var` in a process whose threads may read the environment. The
    /// value goes to cargo/rustc through evcxr's build environment now, and to the
    /// user-code process through a file it reads at start-up, before it has threads.
    fn set_env(
        &mut self,
        evcxr: &mut Evcxr,
        cell: CellId,
        key: String,
        value: String,
    ) -> CellOutcome {
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key.clone(), value.clone()));
        let file: String = self.env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        if let Err(e) = std::fs::write(self.workdir.child_env_file(), file) {
            return CellOutcome::Error(report::message(":env", e.to_string()));
        }
        let outcome = self.run_evcxr(evcxr, cell, &format!(":build_env {key}={value}"), false);
        self.send(
            cell,
            CellEvent::Stream {
                stderr: false,
                text: format!(
                    "{key} is set for compiling (env!, build scripts) now, and for your running code \
                     (std::env::var) after :restart.\n"
                ),
            },
        );
        outcome
    }
}

/// A compile error that quotes a line of the rewritten cell (see `super::awaits`).
fn shows_rewrite(error: &CellError) -> bool {
    std::iter::once(&error.evalue)
        .chain(&error.traceback)
        .any(|line| line.contains("__rm_interruptible") || line.contains("RmInterruptible"))
}

fn log(message: &str) {
    eprintln!("[rustmeter] {message}");
}

fn run_prelude(context: &mut evcxr::CommandContext) {
    let source = prelude::source();
    match std::panic::catch_unwind(AssertUnwindSafe(|| context.execute(&source))) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => log(&format!(
            "prelude cell failed (panics will show as output only): {e}"
        )),
        Err(_) => log("prelude cell panicked inside evcxr"),
    }
}

fn help(context: &mut evcxr::CommandContext) -> CellOutcome {
    let evcxr_help = std::panic::catch_unwind(AssertUnwindSafe(|| context.execute(":help")))
        .ok()
        .and_then(Result::ok)
        .map(|o| o.content_by_mime_type)
        .unwrap_or_default();
    let mut text = String::from("rustmeter commands:\n");
    let mut html = String::from("<h4>rustmeter</h4><table>");
    for (name, description) in cell::COMMANDS {
        text.push_str(&format!("{name:<17} {description}\n"));
        html.push_str(&format!(
            "<tr><td><code>{name}</code></td><td>{description}</td></tr>"
        ));
    }
    html.push_str("</table><h4>evcxr</h4>");
    text.push_str("\nevcxr commands:\n");
    text.push_str(evcxr_help.get("text/plain").map_or("", String::as_str));
    html.push_str(evcxr_help.get("text/html").map_or("", String::as_str));
    let mut data = Map::new();
    data.insert("text/plain".into(), Value::String(text));
    data.insert("text/html".into(), Value::String(html));
    CellOutcome::Ok { data }
}

fn complete(context: &mut evcxr::CommandContext, code: &str, cursor: usize) -> Completion {
    let byte = syntax::code_point_to_byte(code, cursor);
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| context.completions(code, byte)));
    match result {
        Ok(Ok(c)) => {
            let mut matches: Vec<String> = Vec::new();
            for completion in c.completions {
                if !matches.contains(&completion.code) {
                    matches.push(completion.code);
                }
            }
            Completion {
                matches,
                cursor_start: syntax::byte_to_code_point(code, c.start_offset),
                cursor_end: syntax::byte_to_code_point(code, c.end_offset),
            }
        }
        _ => Completion {
            cursor_start: cursor,
            cursor_end: cursor,
            ..Default::default()
        },
    }
}

fn inspect(context: &mut evcxr::CommandContext, code: &str, cursor: usize) -> Inspection {
    let mut byte = syntax::code_point_to_byte(code, cursor);
    // Hover looks at the expression ending at the cursor: extend to the end of the word.
    while let Some(c) = code[byte..].chars().next() {
        if c.is_alphanumeric() || c == '_' {
            byte += c.len_utf8();
        } else {
            break;
        }
    }
    if byte == 0 {
        return Inspection::default();
    }
    match std::panic::catch_unwind(AssertUnwindSafe(|| context.hover_at(code, byte))) {
        Ok(Ok((text, html))) if !text.trim().is_empty() && text != "No documentation found" => {
            Inspection {
                found: true,
                text,
                html,
            }
        }
        _ => Inspection::default(),
    }
}
