//! rustmeter's telemetry commands, answered by the server without the engine:
//! `:telemetry on|off|compact|full|big|json`, `:label NAME`, `:compare [NAMES…|last N]`,
//! `:solution NAME` (an exercise's solution, when the instructor enabled them),
//! `:last_build_log` (the last build's events, as the rustc wrapper recorded them).
//! Their lines are taken out of the cell; the rest goes to the engine as usual.

use super::meter::FooterChoice;
use super::{wire, Kernel};
use crate::engine::{report, CellOutcome};
use crate::telemetry::render;
use jupyter_protocol::{DisplayData, JupyterMessage};
use serde_json::{Map, Value};

/// A cell with rustmeter's own command lines taken out.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Local {
    pub code: String,
    pub label: Option<String>,
    pub telemetry: Option<String>,
    pub compare: Option<Vec<String>>,
    pub solution: Option<String>,
    /// `:last_build_log`: the last build's events.
    pub build_log: bool,
}

pub fn take(code: &str) -> Local {
    let mut local = Local::default();
    let mut rest = Vec::new();
    for line in code.lines() {
        let t = line.trim();
        if let Some(arg) = t
            .strip_prefix(":telemetry")
            .filter(|a| a.is_empty() || a.starts_with(' '))
        {
            local.telemetry = Some(arg.trim().to_string());
        } else if let Some(arg) = t.strip_prefix(":label ") {
            local.label = Some(arg.trim().to_string()).filter(|l| !l.is_empty());
        } else if let Some(arg) = t
            .strip_prefix(":compare")
            .filter(|a| a.is_empty() || a.starts_with(' '))
        {
            local.compare = Some(arg.split_whitespace().map(str::to_string).collect());
        } else if t == ":last_build_log" {
            local.build_log = true;
        } else if let Some(arg) = t
            .strip_prefix(":solution")
            .filter(|a| a.is_empty() || a.starts_with(' '))
        {
            local.solution = Some(arg.trim().to_string());
        } else {
            rest.push(line);
        }
    }
    local.code = rest.join("\n");
    local
}

/// Applies the commands; returns the cell's outcome when nothing is left for the engine.
pub fn run_local(kernel: &Kernel, parent: &JupyterMessage, local: &Local) -> Option<CellOutcome> {
    let mut error = None;
    if let Some(arg) = &local.telemetry {
        match arg.as_str() {
            "json" => {
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
            "" => {
                let shown = kernel.telemetry().footer;
                say(
                    kernel,
                    parent,
                    &format!(
                        "telemetry: {shown:?}. Choose with :telemetry on|off|compact|full|big|json"
                    ),
                );
            }
            word => match FooterChoice::parse(word) {
                Some(footer) => {
                    kernel.telemetry().footer = footer;
                    say(kernel, parent, &format!("telemetry: {word}"));
                }
                None => {
                    error = Some(format!(
                    ":telemetry: unknown mode {word:?}; use on, off, compact, full, big or json"
                ))
                }
            },
        }
    }
    if let Some(names) = &local.compare {
        let chosen = {
            let telemetry = kernel.telemetry();
            choose(&telemetry.labelled, &telemetry.labelled_here, names)
        };
        match chosen {
            Ok(cells) if cells.is_empty() => {
                let saved = labels(&kernel.telemetry().labelled);
                let earlier = if saved.is_empty() {
                    String::new()
                } else {
                    format!(" Saved by earlier kernels (name them to compare): {saved}.")
                };
                error = Some(format!(":compare: no cells labelled in this kernel yet. Put `:label NAME` at the top of a cell, run it, then :compare.{earlier}"))
            }
            Ok(cells) => {
                let (text, html) = render::compare_table(&cells);
                let mut data = Map::new();
                data.insert("text/plain".into(), Value::String(text));
                data.insert("text/html".into(), Value::String(html));
                publish(kernel, parent, data);
            }
            Err(e) => error = Some(e),
        }
    }
    if let Some(name) = &local.solution {
        match solution(name) {
            Ok(code) => {
                let mut data = Map::new();
                data.insert("text/plain".into(), Value::String(code.clone()));
                data.insert(
                    "text/markdown".into(),
                    Value::String(format!("**Solution `{name}`**\n\n```rust\n{code}\n```")),
                );
                publish(kernel, parent, data);
            }
            Err(e) => error = Some(e),
        }
    }
    if local.build_log {
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
    }
    if local.code.trim().is_empty() {
        if let Some(label) = &local.label {
            // `:label` alone names the next cell.
            kernel.telemetry().pending_label = Some(label.clone());
        }
    }
    if let Some(message) = error {
        return Some(CellOutcome::Error(report::message(
            "command error",
            message,
        )));
    }
    local
        .code
        .trim()
        .is_empty()
        .then(|| CellOutcome::Ok { data: Map::new() })
}

/// Where the instructor put the solutions (`RUSTMETER_SOLUTIONS=DIR`, one `NAME.rs`
/// each, as `notebooks/build.py` writes them); unset means solutions are off.
const SOLUTIONS_VAR: &str = "RUSTMETER_SOLUTIONS";

fn solution(name: &str) -> Result<String, String> {
    let Some(dir) = std::env::var_os(SOLUTIONS_VAR).filter(|d| !d.is_empty()) else {
        return Err(format!(
            ":solution: solutions are not enabled here. Ask your instructor; they turn them \
             on with {SOLUTIONS_VAR}=DIR in the kernelspec (./install.sh --solutions)."
        ));
    };
    let dir = std::path::PathBuf::from(dir);
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

/// The cells `:compare NAMES` means: bare `:compare` takes this kernel's labelled cells
/// (not every label an earlier notebook saved); names reach earlier kernels' cells too.
fn choose(
    labelled: &[crate::telemetry::CellTelemetry],
    here: &[String],
    names: &[String],
) -> Result<Vec<crate::telemetry::CellTelemetry>, String> {
    if names.is_empty() {
        return Ok(labelled
            .iter()
            .filter(|t| t.label.as_ref().is_some_and(|l| here.contains(l)))
            .cloned()
            .collect());
    }
    if names[0] == "last" {
        let n: usize = names
            .get(1)
            .and_then(|n| n.parse().ok())
            .ok_or(":compare last N needs a number")?;
        return Ok(labelled[labelled.len().saturating_sub(n)..].to_vec());
    }
    names
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
        .collect()
}

fn labels(labelled: &[crate::telemetry::CellTelemetry]) -> String {
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
        let l = take(":label threads\nlet x = 1;\n:telemetry big");
        assert_eq!(l.label.as_deref(), Some("threads"));
        assert_eq!(l.telemetry.as_deref(), Some("big"));
        assert_eq!(l.code, "let x = 1;");
        let l = take(":compare a b");
        assert_eq!(l.compare, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(take(":telemetryx").code, ":telemetryx");
    }
}
