//! Running a planned cell, step by step: evcxr code, shell commands, `:env`, notes,
//! `:help` (written by [`crate::commands::help`]) and `:limits`. Each step reports
//! through [`CellEvent`]s and returns its outcome; the cell's bookkeeping around them is
//! `super::Worker::execute`'s.

use super::{Evcxr, Worker};
use crate::engine::cell::Step;
use crate::engine::{
    interrupt, process, report, syntax, CellError, CellEvent, CellId, CellOutcome, Control,
    EngineEvent, ErrorKind, Phase,
};
use crate::markers;
use serde_json::{Map, Value};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

impl Worker {
    pub(super) fn run_steps(
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
                Step::Evcxr { code, clears_state } => {
                    let r = self.run_evcxr(evcxr, cell, &code, allow_stdin);
                    self.after_evcxr_commands(evcxr, &code, clears_state);
                    r
                }
                Step::InterruptibleEvcxr {
                    code,
                    original,
                    clears_state,
                } => {
                    let r = match self.run_evcxr(evcxr, cell, &code, allow_stdin) {
                        // The learner should see their own code in compile errors.
                        CellOutcome::Error(e)
                            if e.kind == ErrorKind::Compile && shows_rewrite(&e) =>
                        {
                            self.run_evcxr(evcxr, cell, &original, allow_stdin)
                        }
                        other => other,
                    };
                    self.after_evcxr_commands(evcxr, &original, clears_state);
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
                Step::Help => help(),
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

    /// Keeps the kernel's view of evcxr's state in step with the commands `code` ran;
    /// `clears_state` when they included `:clear`.
    fn after_evcxr_commands(&mut self, evcxr: &mut Evcxr, code: &str, clears_state: bool) {
        if crate::engine::prelude::changes_value_format(code) {
            super::start::quick_display_off(&mut evcxr.context);
        }
        // `:clear` empties evcxr's state, dependencies included.
        if clears_state {
            self.session.shims.clear();
        }
    }

    fn run_evcxr(
        &mut self,
        evcxr: &mut Evcxr,
        cell: CellId,
        code: &str,
        allow_stdin: bool,
    ) -> CellOutcome {
        let reader = input_reader(
            self.events.clone(),
            Arc::clone(&self.control),
            cell,
            allow_stdin,
        );
        // evcxr does not export its InputRequest type: the closure's argument type is
        // inferred from `EvalCallbacks::input_reader`.
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
            Ok(Ok(outputs)) => self.value_of(cell, code, outputs),
            Ok(Err(error)) => CellOutcome::Error(evcxr_error(error, code)),
        }
    }

    /// The cell's value from what evcxr returned; content it printed last that is not
    /// its value is sent as a display.
    fn value_of(&self, cell: CellId, code: &str, outputs: evcxr::EvalOutputs) -> CellOutcome {
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

/// Answers evcxr's input requests: the client's answer when it allows input. Without
/// input, a read of the cell's stdin (the prompt tagged `STDIN_READ` by the child's
/// relay) gets end of input and the cell is stopped with an error that says why; an
/// `evcxr_input` call gets an empty line and a note on stderr. After an interrupt every
/// request gets end of input.
fn input_reader(
    events: mpsc::UnboundedSender<EngineEvent>,
    control: Arc<Control>,
    cell: CellId,
    allow_stdin: bool,
) -> impl Fn(String, bool) -> String {
    move |prompt: String, password: bool| -> String {
        let (prompt, reads_stdin) = match prompt.strip_prefix(markers::STDIN_READ) {
            Some(escaped) => (markers::unescape_prompt(escaped), true),
            None => (prompt, false),
        };
        if control.interrupted.load(Ordering::SeqCst) {
            return markers::STDIN_EOF.to_string();
        }
        if !allow_stdin && reads_stdin {
            control.stdin_refused.store(true, Ordering::SeqCst);
            interrupt::stop_cell(&control);
            return markers::STDIN_EOF.to_string();
        }
        if !allow_stdin {
            let _ = events.send(EngineEvent {
                cell,
                event: CellEvent::Stream {
                    stderr: true,
                    text: "rustmeter: this cell asked for input, but this client does not allow \
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
        // An interrupt closed the prompt: the read gets end of input, so loops over
        // lines end by themselves and the cell stops without losing its process.
        if control.interrupted.load(Ordering::SeqCst) {
            return markers::STDIN_EOF.to_string();
        }
        line
    }
}

/// evcxr's error for a cell, worded for the learner.
fn evcxr_error(error: evcxr::Error, code: &str) -> CellError {
    match error {
        evcxr::Error::CompilationErrors(errors) => report::compile_errors(&errors, code),
        evcxr::Error::SubprocessTerminated(message) => CellError {
            kind: ErrorKind::Crashed,
            ename: "crash".into(),
            evalue: message,
            traceback: Vec::new(),
            lost_variables: Vec::new(),
        },
        evcxr::Error::TypeRedefinedVariablesLost(vars) => {
            let mut e = report::message(
                "variables lost",
                format!(
                    "A type was redefined, so these variables were lost: {}",
                    vars.join(", ")
                ),
            );
            e.lost_variables = vars;
            e
        }
        other => report::message("error", other.to_string()),
    }
}

/// A compile error that quotes a line of the rewritten cell (see `super::awaits`).
fn shows_rewrite(error: &CellError) -> bool {
    std::iter::once(&error.evalue)
        .chain(&error.traceback)
        .any(|line| line.contains("__rm_interruptible") || line.contains("RmInterruptible"))
}

/// `:help`, written from the command table (evcxr's own commands included).
fn help() -> CellOutcome {
    let help = crate::commands::help();
    let mut data = Map::new();
    data.insert("text/plain".into(), Value::String(help.text));
    data.insert("text/html".into(), Value::String(help.html));
    CellOutcome::Ok { data }
}
