//! The commands the kernel answers itself, without the engine — the
//! [`Side::Kernel`](crate::commands::Side) rows of [`crate::commands::COMMANDS`], one
//! function each: `:telemetry`, `:label`, `:compare`, `:solution` (an exercise's
//! solution, when the instructor enabled them), `:last_build_log` (the last build's
//! events, as the rustc wrapper recorded them). `:label` and `:repeat` are only taken
//! here, for the executor to carry out. [`take`] reads the cell once through
//! [`crate::commands::parse`]; these commands are taken out and the rest, already read,
//! goes to the engine. Reading and `:help` are `crate::commands`'s, not this file's.

use super::meter::FooterChoice;
use super::{wire, Kernel};
use crate::commands::{
    self, Cell, CommandError, CompareSelection, FooterStyle, KernelCommand, TelemetryRequest,
};
use crate::engine::{report, CellOutcome};
use crate::telemetry::render::{self, Mode};
use crate::telemetry::CellTelemetry;
use jupyter_protocol::{DisplayData, JupyterMessage};
use serde_json::{Map, Value};

/// A cell read once and split by who runs what: the kernel's own commands here, the
/// rest for the engine.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SplitCell {
    /// Code and the engine's and evcxr's commands, already read.
    pub for_engine: Cell,
    /// `for_engine` as written, for the live build view; empty when only the kernel's
    /// commands were in the cell.
    pub code: String,
    /// The cell's `:label` (the last one, if several).
    pub label: Option<String>,
    /// The cell's `:repeat N` (the last one, if several).
    pub repeat: Option<u32>,
    kernel_commands: Vec<KernelCommand>,
    /// A line that could not be read: the cell fails with it and nothing runs.
    error: Option<CommandError>,
}

/// Reads `code` once: the kernel's commands taken out, the rest kept (read) for the
/// engine, or the line that could not be read.
pub fn take(code: &str) -> SplitCell {
    let mut for_engine = match commands::parse(code) {
        Ok(cell) => cell,
        Err(error) => {
            return SplitCell {
                error: Some(error),
                ..SplitCell::default()
            }
        }
    };
    let kernel_commands = for_engine.take_kernel_commands();
    let label = kernel_commands.iter().rev().find_map(|c| match c {
        KernelCommand::Label(label) => Some(label.clone()),
        _ => None,
    });
    let repeat = kernel_commands.iter().rev().find_map(|c| match c {
        KernelCommand::Repeat(runs) => Some(*runs),
        _ => None,
    });
    SplitCell {
        code: for_engine.text(),
        for_engine,
        label,
        repeat,
        kernel_commands,
        error: None,
    }
}

/// Answers the kernel's commands in the order written, stopping at the first that
/// fails; returns the cell's outcome when nothing is left for the engine.
pub fn run_local(
    kernel: &Kernel,
    parent: &JupyterMessage,
    cell: &SplitCell,
) -> Option<CellOutcome> {
    if let Some(error) = &cell.error {
        return Some(CellOutcome::Error(report::command_error(error)));
    }
    let only_commands = cell.code.trim().is_empty();
    if let Some(label) = cell.label.as_ref().filter(|_| only_commands) {
        // `:label` alone names the next cell.
        kernel.telemetry().pending_label = Some(label.clone());
    }
    for command in &cell.kernel_commands {
        let answered = match command {
            KernelCommand::Telemetry(request) => telemetry(kernel, parent, *request),
            // Taken with the cell's telemetry by the executor (`SplitCell::label`).
            KernelCommand::Label(_) => Ok(()),
            // Carried out by the executor (`SplitCell::repeat`); alone it has nothing to run.
            KernelCommand::Repeat(runs) if only_commands => Err(format!(
                ":repeat {runs} runs the code below it in the same cell, and this cell has \
                 none: put `:repeat {runs}` on the first line of the cell to measure"
            )),
            KernelCommand::Repeat(_) => Ok(()),
            KernelCommand::Compare(selection) => compare(kernel, parent, selection),
            KernelCommand::Solution(name) => show_solution(kernel, parent, name),
            KernelCommand::LastBuildLog => last_build_log(kernel, parent),
            KernelCommand::Warnings(shown) => warnings(kernel, parent, *shown),
        };
        if let Err(message) = answered {
            return Some(CellOutcome::Error(report::message(
                "command error",
                message,
            )));
        }
    }
    only_commands.then(|| CellOutcome::Ok { data: Map::new() })
}

/// `:warnings on|off`; alone, the setting in force.
fn warnings(kernel: &Kernel, parent: &JupyterMessage, shown: Option<bool>) -> Result<(), String> {
    use std::sync::atomic::Ordering;
    if let Some(shown) = shown {
        kernel.warnings_shown.store(shown, Ordering::Relaxed);
    }
    let now = if kernel.warnings_shown.load(Ordering::Relaxed) {
        "on: warnings that matter to a learner are shown under the cell"
    } else {
        "off: compiler warnings are not shown"
    };
    say(kernel, parent, &format!("warnings {now}\n"));
    Ok(())
}

/// The footer `style` asks for.
fn display_of(style: FooterStyle) -> FooterChoice {
    match style {
        FooterStyle::Off => FooterChoice::Off,
        FooterStyle::On | FooterStyle::Full => FooterChoice::On(Mode::Full),
        FooterStyle::Compact => FooterChoice::On(Mode::Compact),
        FooterStyle::Big => FooterChoice::On(Mode::Big),
    }
}

fn telemetry(
    kernel: &Kernel,
    parent: &JupyterMessage,
    request: TelemetryRequest,
) -> Result<(), String> {
    match request {
        TelemetryRequest::Json => {
            let last = kernel.telemetry().last.clone();
            let json = last.map(|t| t.to_json()).unwrap_or(Value::Null);
            let mut data = Map::new();
            data.insert(
                "text/plain".into(),
                Value::String(serde_json::to_string_pretty(&json).unwrap_or_default()),
            );
            data.insert("application/json".into(), json);
            publish(kernel, parent, data);
        }
        TelemetryRequest::Current => {
            let shown = kernel.telemetry().footer;
            say(
                kernel,
                parent,
                &format!(
                    "telemetry: {shown:?}. Choose with :telemetry on|off|compact|full|big|json"
                ),
            );
        }
        TelemetryRequest::Style(style) => {
            kernel.telemetry().footer = display_of(style);
            say(kernel, parent, &format!("telemetry: {}", style.word()));
        }
    }
    Ok(())
}

fn compare(
    kernel: &Kernel,
    parent: &JupyterMessage,
    selection: &CompareSelection,
) -> Result<(), String> {
    let cells = {
        let settings = kernel.telemetry();
        choose(&settings.labelled, &settings.labelled_here, selection)?
    };
    if cells.is_empty() {
        let saved = labels(&kernel.telemetry().labelled);
        let earlier = if saved.is_empty() {
            String::new()
        } else {
            format!(" Saved by earlier kernels (name them to compare): {saved}.")
        };
        return Err(format!(":compare: no cells labelled in this kernel yet. Put `:label NAME` at the top of a cell, run it, then :compare.{earlier}"));
    }
    let (text, html) = render::compare_table(&cells);
    let mut data = Map::new();
    data.insert("text/plain".into(), Value::String(text));
    data.insert("text/html".into(), Value::String(html));
    publish(kernel, parent, data);
    Ok(())
}

fn show_solution(kernel: &Kernel, parent: &JupyterMessage, name: &str) -> Result<(), String> {
    let code = solution(name)?;
    let mut data = Map::new();
    data.insert("text/plain".into(), Value::String(code.clone()));
    data.insert(
        "text/markdown".into(),
        Value::String(format!("**Solution `{name}`**\n\n```rust\n{code}\n```")),
    );
    publish(kernel, parent, data);
    Ok(())
}

fn last_build_log(kernel: &Kernel, parent: &JupyterMessage) -> Result<(), String> {
    let log = kernel
        .last_build_log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    say(
        kernel,
        parent,
        log.as_deref()
            .unwrap_or("no build yet: no cell of this kernel has compiled anything"),
    );
    Ok(())
}

/// Where the instructor put the solutions (`RUSTMETER_SOLUTIONS=DIR`, one `NAME.rs`
/// each, as `notebooks/build.py` writes them); unset means solutions are off.
const SOLUTIONS_VAR: &str = crate::settings::SOLUTIONS.name;

fn solution(name: &str) -> Result<String, String> {
    let Some(dir) = crate::settings::path(&crate::settings::SOLUTIONS) else {
        return Err(format!(
            ":solution: solutions are not enabled here. Ask your instructor; they turn them \
             on with {SOLUTIONS_VAR}=DIR in the kernelspec (./install.sh --solutions)."
        ));
    };
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let read = valid
        .then(|| std::fs::read_to_string(dir.join(format!("{name}.rs"))).ok())
        .flatten();
    read.map(|code| code.trim_end().to_string()).ok_or_else(|| {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                file.strip_suffix(".rs").map(str::to_string)
            })
            .collect();
        names.sort();
        format!(
            ":solution: no solution named {name:?}. Available: {}",
            if names.is_empty() {
                format!("none (is {} right?)", dir.display())
            } else {
                names.join(", ")
            }
        )
    })
}

/// The cells `:compare` means: bare `:compare` takes this kernel's labelled cells (not
/// every label an earlier notebook saved); names reach earlier kernels' cells too.
fn choose(
    labelled: &[CellTelemetry],
    here: &[String],
    selection: &CompareSelection,
) -> Result<Vec<CellTelemetry>, String> {
    match selection {
        CompareSelection::ThisKernel => Ok(labelled
            .iter()
            .filter(|t| t.label.as_ref().is_some_and(|l| here.contains(l)))
            .cloned()
            .collect()),
        CompareSelection::Last(n) => Ok(labelled[labelled.len().saturating_sub(*n)..].to_vec()),
        CompareSelection::Named(names) => names
            .iter()
            .map(|name| {
                labelled
                    .iter()
                    .find(|t| t.label.as_deref() == Some(name))
                    .cloned()
                    .ok_or_else(|| {
                        format!(
                            ":compare: no cell labelled {name:?} (labelled: {})",
                            labels(labelled)
                        )
                    })
            })
            .collect(),
    }
}

fn labels(labelled: &[CellTelemetry]) -> String {
    labelled
        .iter()
        .filter_map(|t| t.label.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

fn publish(kernel: &Kernel, parent: &JupyterMessage, data: Map<String, Value>) {
    let media = serde_json::from_value(Value::Object(data)).unwrap_or_default();
    kernel
        .iopub
        .send(wire::child_of(DisplayData::new(media), parent));
}

fn say(kernel: &Kernel, parent: &JupyterMessage, text: &str) {
    let mut data = Map::new();
    data.insert("text/plain".into(), Value::String(text.to_string()));
    publish(kernel, parent, data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_taken_out() {
        let cell = take(":label threads\nlet x = 1;\n:telemetry big");
        assert_eq!(cell.label.as_deref(), Some("threads"));
        assert_eq!(
            cell.kernel_commands,
            vec![
                KernelCommand::Label("threads".into()),
                KernelCommand::Telemetry(TelemetryRequest::Style(FooterStyle::Big))
            ]
        );
        assert_eq!(cell.code, "let x = 1;");
        assert_eq!(cell.for_engine.text(), cell.code);
        let cell = take(":compare a b");
        assert_eq!(
            cell.kernel_commands,
            vec![KernelCommand::Compare(CompareSelection::Named(vec![
                "a".to_string(),
                "b".to_string()
            ]))]
        );
        assert!(cell.code.is_empty());
        let cell = take(":telemetryx");
        assert!(cell.error.is_some() && cell.code.is_empty());
    }

    #[test]
    fn every_footer_style_is_the_display_its_word_names() {
        for style in FooterStyle::ALL {
            assert_eq!(
                Some(display_of(style)),
                FooterChoice::parse(style.word()),
                "{style:?}"
            );
        }
    }

    fn labelled(names: &[&str]) -> Vec<CellTelemetry> {
        names
            .iter()
            .map(|name| CellTelemetry {
                label: Some(name.to_string()),
                ..CellTelemetry::not_run(crate::telemetry::CellStatus::Ok, 0.0, 0.0, 0.0)
            })
            .collect()
    }

    fn names(cells: &[CellTelemetry]) -> Vec<String> {
        cells.iter().filter_map(|t| t.label.clone()).collect()
    }

    #[test]
    fn compare_chooses_this_kernels_cells_the_last_n_or_names() {
        let all = labelled(&["old", "a", "b"]);
        let here = vec!["a".to_string(), "b".to_string()];
        let chosen = |s: CompareSelection| choose(&all, &here, &s).map(|c| names(&c));
        assert_eq!(chosen(CompareSelection::ThisKernel).unwrap(), ["a", "b"]);
        assert_eq!(chosen(CompareSelection::Last(2)).unwrap(), ["a", "b"]);
        assert_eq!(
            chosen(CompareSelection::Last(9)).unwrap(),
            ["old", "a", "b"]
        );
        assert_eq!(
            chosen(CompareSelection::Named(vec!["b".into(), "old".into()])).unwrap(),
            ["b", "old"]
        );
        assert_eq!(
            chosen(CompareSelection::Named(vec!["nosuch".into()])).unwrap_err(),
            ":compare: no cell labelled \"nosuch\" (labelled: old, a, b)"
        );
    }
}
