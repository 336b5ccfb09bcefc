//! The output pump: one thread that turns the user-code child's stdout/stderr lines (as
//! evcxr passes them on) into [`CellEvent`]s, in order, and finishes each cell only after
//! every line the cell printed has gone out.
//!
//! Ordering argument: evcxr returns from a cell only once its stdout channel is empty,
//! i.e. once this thread has taken every line; this thread handles the engine's
//! `Finish` after those lines, because it is one thread reading in turn.

use super::{CellEvent, CellId, CellOutcome, Control, EngineEvent, ErrorKind, Phase};
use crate::child_runtime::stamp_instant;
use crate::markers::{CLEAR, DISPLAY, NOTE, NO_EOL, PANIC, RUN_END, RUN_START};
use crossbeam_channel::{select, Receiver};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// Messages from the engine thread.
pub enum PumpCommand {
    Start(CellId),
    /// The cell's outcome and the caps (memory, threads) it ran into.
    Finish(CellId, CellOutcome, Vec<crate::limits::Hit>),
}

/// Largest stream message built from consecutive lines (a flood is batched, not dropped).
const BATCH_BYTES: usize = 64 * 1024;

pub struct Pump {
    pub stdout: Receiver<String>,
    pub stderr: Receiver<String>,
    pub commands: Receiver<PumpCommand>,
    pub events: UnboundedSender<EngineEvent>,
    pub control: Arc<Control>,
}

struct PanicSeen {
    message: String,
    location: String,
}

impl Pump {
    pub fn run(self) {
        // Output between cells belongs to the cell that ran last (background threads).
        let mut cell: CellId = 0;
        // Only between Start and Finish do run markers change the phase: the prelude that
        // follows a child restart runs outside any cell.
        let mut in_cell = false;
        let mut panic: Option<PanicSeen> = None;
        // The last words of a dying child (evcxr's signal handler, Rust's overflow check).
        let mut crash_hint: Option<String> = None;
        loop {
            select! {
                recv(self.stdout) -> line => {
                    let Ok(line) = line else { return };
                    self.on_stdout(cell, in_cell, line, &mut panic);
                }
                recv(self.stderr) -> line => {
                    let Ok(line) = line else { return };
                    if let Some(hint) = crash_hint_of(&line) {
                        crash_hint = Some(hint);
                    }
                    let mut text = format!("{line}\n");
                    batch(&self.stderr, &mut text);
                    self.send(cell, CellEvent::Stream { stderr: true, text });
                }
                recv(self.commands) -> command => {
                    match command {
                        Ok(PumpCommand::Start(id)) => {
                            cell = id;
                            in_cell = true;
                            panic = None;
                            crash_hint = None;
                        }
                        Ok(PumpCommand::Finish(id, outcome, hits)) => {
                            in_cell = false;
                            // Lines still on stderr were printed by the cell; keep them in it.
                            let mut text = String::new();
                            batch(&self.stderr, &mut text);
                            if let Some(hint) = text.lines().find_map(crash_hint_of) {
                                crash_hint = Some(hint);
                            }
                            if !text.is_empty() {
                                self.send(id, CellEvent::Stream { stderr: true, text });
                            }
                            let outcome = match (outcome, panic.take()) {
                                (CellOutcome::Ok { .. }, Some(p)) => {
                                    CellOutcome::Error(super::report::panic(&p.message, &p.location))
                                }
                                (CellOutcome::Error(e), _) if e.kind == ErrorKind::Crashed => {
                                    let evidence = format!("{}\n{}", crash_hint.take().unwrap_or_default(), e.evalue);
                                    CellOutcome::Error(super::report::crashed(&evidence, e.lost_variables))
                                }
                                (other, _) => other,
                            };
                            let outcome = self.with_limit_hits(id, outcome, &hits);
                            self.send(id, CellEvent::Finished(outcome));
                        }
                        Err(_) => return,
                    }
                }
            }
        }
    }

    fn on_stdout(&self, cell: CellId, in_cell: bool, line: String, panic: &mut Option<PanicSeen>) {
        // A marker after a `print!` without newline: the text before it is partial output.
        if let Some(at) = line.find(crate::markers::MARK).filter(|at| *at > 0) {
            self.send(
                cell,
                CellEvent::Stream {
                    stderr: false,
                    text: line[..at].to_string(),
                },
            );
            return self.on_stdout(cell, in_cell, line[at..].to_string(), panic);
        }
        if let Some(stamp) = line.strip_prefix(RUN_START) {
            if in_cell {
                self.control.set_phase(Phase::Running);
            }
            let at = stamp_instant(stamp).unwrap_or_else(std::time::Instant::now);
            self.send(cell, CellEvent::RunStarted { at });
        } else if let Some(stamp) = line.strip_prefix(RUN_END) {
            if in_cell {
                self.control.set_phase(Phase::Compiling);
            }
            let at = stamp_instant(stamp).unwrap_or_else(std::time::Instant::now);
            self.send(cell, CellEvent::RunEnded { at });
        } else if let Some(json) = line.strip_prefix(DISPLAY) {
            if let Some(event) = display_event(json) {
                self.send(cell, event);
            }
        } else if let Some(json) = line.strip_prefix(NOTE) {
            if let Some(event) = note_event(json) {
                self.send(cell, event);
            }
        } else if let Some(json) = line.strip_prefix(CLEAR) {
            let wait = serde_json::from_str::<Value>(json)
                .ok()
                .and_then(|v| v.get("wait").and_then(Value::as_bool))
                .unwrap_or(false);
            self.send(cell, CellEvent::ClearOutput { wait });
        } else if let Some(json) = line.strip_prefix(PANIC) {
            // The first panic on the cell's main thread is the cell's.
            if panic.is_none() {
                *panic = main_thread_panic(json);
            }
        } else {
            self.on_text(cell, in_cell, line, panic);
        }
    }

    /// A plain line, batched with the plain lines already waiting behind it.
    fn on_text(&self, cell: CellId, in_cell: bool, line: String, panic: &mut Option<PanicSeen>) {
        let mut text = match line.strip_suffix(NO_EOL) {
            Some(partial) => partial.to_string(),
            None => format!("{line}\n"),
        };
        // Stop at anything that is a marker.
        while text.len() < BATCH_BYTES {
            match self.stdout.try_recv() {
                Ok(next) if !next.starts_with('\u{1}') => text.push_str(&format!("{next}\n")),
                Ok(next) => {
                    self.send(
                        cell,
                        CellEvent::Stream {
                            stderr: false,
                            text: std::mem::take(&mut text),
                        },
                    );
                    self.on_stdout(cell, in_cell, next, panic);
                    return;
                }
                Err(_) => break,
            }
        }
        self.send(
            cell,
            CellEvent::Stream {
                stderr: false,
                text,
            },
        );
    }

    fn send(&self, cell: CellId, event: CellEvent) {
        let _ = self.events.send(EngineEvent { cell, event });
    }

    /// Names the caps a cell ran into: a crash at the memory cap becomes that error, a
    /// failed cell gets a line per cap, a cell that succeeded anyway a note on stderr.
    fn with_limit_hits(
        &self,
        cell: CellId,
        outcome: CellOutcome,
        hits: &[crate::limits::Hit],
    ) -> CellOutcome {
        use crate::limits::Hit;
        if hits.is_empty() {
            return outcome;
        }
        match outcome {
            CellOutcome::Error(e) if e.kind == ErrorKind::Crashed => {
                let memory = hits.iter().find_map(|h| match h {
                    Hit::Memory(setting) => Some(setting),
                    Hit::Threads(_) => None,
                });
                let mut error = match memory {
                    Some(setting) => {
                        super::report::crashed_at_memory_limit(setting, e.lost_variables)
                    }
                    None => e,
                };
                super::report::note_limits(&mut error, hits);
                CellOutcome::Error(error)
            }
            CellOutcome::Error(mut e) => {
                super::report::note_limits(&mut e, hits);
                CellOutcome::Error(e)
            }
            ok => {
                for hit in hits {
                    let text = format!("rustmeter: {}\n", super::report::limit_sentence(hit));
                    self.send(cell, CellEvent::Stream { stderr: true, text });
                }
                ok
            }
        }
    }
}

/// Lines a dying user-code process prints that name the cause.
fn crash_hint_of(line: &str) -> Option<String> {
    let line = line.trim();
    let known = ["Segmentation fault.", "Illegal instruction.", "Bus error."];
    if known.contains(&line) || line.contains("has overflowed its stack") {
        Some(line.to_string())
    } else {
        None
    }
}

fn batch(rx: &Receiver<String>, text: &mut String) {
    while text.len() < BATCH_BYTES {
        match rx.try_recv() {
            Ok(line) => {
                text.push_str(&line);
                text.push('\n');
            }
            Err(_) => break,
        }
    }
}

/// `rustmeter::note(key, value)`: a value that is not a string keeps its JSON text.
fn note_event(json: &str) -> Option<CellEvent> {
    let v: Value = serde_json::from_str(json).ok()?;
    let key = v["key"].as_str().unwrap_or("").to_string();
    let value = v["value"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v["value"].to_string());
    Some(CellEvent::Note { key, value })
}

/// A panic the child reported, when it happened on the cell's main thread.
fn main_thread_panic(json: &str) -> Option<PanicSeen> {
    let v: Value = serde_json::from_str(json).ok()?;
    let on_main = v.get("main").and_then(Value::as_bool).unwrap_or(false);
    on_main.then(|| PanicSeen {
        message: v["message"].as_str().unwrap_or("").to_string(),
        location: v["location"].as_str().unwrap_or("").to_string(),
    })
}

fn display_event(json: &str) -> Option<CellEvent> {
    let v: Value = serde_json::from_str(json).ok()?;
    let data = v.get("data")?.as_object()?.clone();
    let metadata = v
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let display_id = v
        .get("display_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let update = v.get("update").and_then(Value::as_bool).unwrap_or(false);
    Some(CellEvent::Display {
        data,
        metadata,
        display_id,
        update,
    })
}
