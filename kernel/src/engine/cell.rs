//! Plans a cell already read by [`crate::commands::parse`]: what runs where. The
//! engine's commands (`:help`, `:limits`, `:env`, `:quit` refused), the `:dep` lines for
//! crates served through a shared dylib (see [`super::shims`]), `!` shell lines, and
//! whether the cell needs tokio; code and evcxr's own commands go to evcxr as written.
//! Pure planning: nothing here runs anything, and no line is read again.

use super::shims::{self, ShimSpec};
use crate::commands::{Cell, Command, EngineCommand, EvcxrCommand, LineKind};
use std::collections::BTreeMap;

/// One thing to do for a cell, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Code and commands for evcxr, as the learner wrote them (minus intercepted lines);
    /// `clears_state` when they include `:clear`.
    Evcxr { code: String, clears_state: bool },
    /// Like `Evcxr`, with the top-level awaits made interruptible (see
    /// [`super::awaits`]); `original` is run instead when a compile error shows the rewrite.
    InterruptibleEvcxr {
        code: String,
        original: String,
        clears_state: bool,
    },
    /// Declare a dylib shim: the `:dep` line to hand evcxr, and what it provides.
    DeclareShim {
        name: String,
        line: String,
        features: Vec<String>,
    },
    /// A `!command` line: run in a shell with streaming output and interrupt.
    Shell(String),
    /// `:env KEY=VALUE`.
    SetEnv { key: String, value: String },
    /// Text to show the learner (stdout).
    Note(String),
    /// `:help`: the list written by [`crate::commands::help`].
    Help,
    /// `:limits`: the memory and thread caps in force.
    Limits,
}

/// What the kernel remembers between cells that planning depends on.
#[derive(Debug, Default, Clone)]
pub struct Session {
    /// Shims declared in this evcxr context, with their features.
    pub shims: BTreeMap<String, Vec<String>>,
}

/// The crate cells use to read telemetry (`rustmeter::last()`).
const API: &str = "rustmeter";

/// Plans a cell. `shim_root` is where dylib shims are written. The server's own
/// commands are not the engine's: the server takes them out before sending the cell.
pub fn plan(
    cell: &Cell,
    session: &Session,
    shim_root: &std::path::Path,
) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut rest: Vec<&str> = Vec::new();
    let mut declared = session.shims.clone();
    let mut clears_state = false;
    for line in &cell.lines {
        match &line.kind {
            LineKind::Code => rest.push(&line.text),
            LineKind::Shell(command) => steps.push(Step::Shell(command.clone())),
            LineKind::Command(Command::Kernel(_)) => {}
            LineKind::Command(Command::Engine(command)) => {
                match plan_engine_command(command, &declared, shim_root)? {
                    Some(step) => {
                        if let Step::DeclareShim { name, features, .. } = &step {
                            declared.insert(name.clone(), features.clone());
                        }
                        steps.push(step);
                    }
                    None => rest.push(&line.text),
                }
            }
            LineKind::Command(Command::Evcxr(command)) => {
                if *command == EvcxrCommand::Clear {
                    declared.clear();
                    clears_state = true;
                }
                rest.push(&line.text);
            }
        }
    }
    let code = rest.join("\n");
    if strip_comments(&code).contains("rustmeter::") && !declared.contains_key(API) {
        let line = shims::api_dep_line(shim_root).map_err(|e| e.to_string())?;
        steps.push(Step::DeclareShim {
            name: API.into(),
            line,
            features: Vec::new(),
        });
    }
    if shims::enabled() && needs_tokio(&code) && !declared.contains_key(shims::TOKIO.name) {
        let line = shims::dep_line(shim_root, shims::TOKIO, &[]).map_err(|e| e.to_string())?;
        let first_evcxr = steps
            .iter()
            .position(|s| matches!(s, Step::Evcxr { .. } | Step::InterruptibleEvcxr { .. }))
            .unwrap_or(steps.len());
        steps.insert(
            first_evcxr.min(steps.len()),
            Step::DeclareShim {
                name: "tokio".into(),
                line,
                features: feature_list(shims::TOKIO, &[]),
            },
        );
    }
    if !code.trim().is_empty() {
        // Any await made tokio the shared shim above, which carries the cancel channel.
        let rewritten = shims::enabled()
            .then(|| super::awaits::make_interruptible(&code))
            .flatten();
        steps.push(match rewritten {
            Some(rewritten) => Step::InterruptibleEvcxr {
                code: rewritten,
                original: code,
                clears_state,
            },
            None => Step::Evcxr { code, clears_state },
        });
    }
    Ok(steps)
}

/// The step for one of the engine's commands; `None` hands the line to evcxr as written.
fn plan_engine_command(
    command: &EngineCommand,
    declared: &BTreeMap<String, Vec<String>>,
    shim_root: &std::path::Path,
) -> Result<Option<Step>, String> {
    Ok(Some(match command {
        EngineCommand::Quit => {
            return Err(
                ":quit would stop the whole kernel. Use the notebook's Kernel › Shut Down \
                (or Restart) instead."
                    .to_string(),
            )
        }
        EngineCommand::Help => Step::Help,
        EngineCommand::Limits => Step::Limits,
        EngineCommand::Env { key, value } => Step::SetEnv {
            key: key.clone(),
            value: value.clone(),
        },
        EngineCommand::Dep(arguments) => return plan_dep(arguments, declared, shim_root),
    }))
}

/// A cell needs tokio when it awaits at top level or names tokio.
pub fn needs_tokio(code: &str) -> bool {
    let code = strip_comments(code);
    code.contains(".await") || code.contains("tokio::") || code.contains("use tokio")
}

fn strip_comments(code: &str) -> String {
    code.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn feature_list(spec: ShimSpec, extra: &[String]) -> Vec<String> {
    let mut f: Vec<String> = spec.features.iter().map(|s| s.to_string()).collect();
    for e in extra {
        if !f.contains(e) {
            f.push(e.clone());
        }
    }
    f
}

/// Features that tokio's `full` already includes.
const TOKIO_FULL: &[&str] = &[
    "full",
    "default",
    "fs",
    "io-util",
    "io-std",
    "macros",
    "net",
    "parking_lot",
    "process",
    "rt",
    "rt-multi-thread",
    "signal",
    "sync",
    "time",
];

fn covered(spec: ShimSpec, have: &[String], feature: &str) -> bool {
    have.iter().any(|h| h == feature)
        || (spec == shims::TOKIO
            && have.iter().any(|h| h == "full")
            && TOKIO_FULL.contains(&feature))
}

/// `:dep NAME ...` for a shimmed crate becomes a shim declaration, a note, or a refusal;
/// `None` leaves other crates to evcxr.
fn plan_dep(
    args: &str,
    declared: &BTreeMap<String, Vec<String>>,
    shim_root: &std::path::Path,
) -> Result<Option<Step>, String> {
    let (name, spec_text) = args
        .split_once('=')
        .map_or((args.trim(), ""), |(n, s)| (n.trim(), s.trim()));
    let Some(spec) = shims::find(name).filter(|_| shims::enabled()) else {
        return Ok(None);
    };
    let request = shims::parse_dep_spec(spec_text).map_err(|e| format!(":dep {name}: {e}"))?;
    // Feature names become part of a folder name and of a Cargo.toml: names only.
    if let Some(bad) = request.features.iter().find(|f| {
        f.is_empty()
            || !f
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }) {
        return Err(format!(
            ":dep {name}: {bad:?} is not a feature name (letters, digits, - and _ only)"
        ));
    }
    if !shims::version_fits(spec, request.version.as_deref()) {
        return Err(format!(
            ":dep {name}: rustmeter shares one {name} {major}.x between all cells (so tasks and \
             thread pools survive from cell to cell); version {v:?} is not {major}.x. Use \
             version = \"{major}\".",
            major = spec.major,
            v = request.version.unwrap_or_default()
        ));
    }
    if let Some(have) = declared.get(name) {
        let missing: Vec<&String> = request
            .features
            .iter()
            .filter(|f| !covered(spec, have, f))
            .collect();
        if missing.is_empty() {
            return Ok(Some(Step::Note(format!(
                "rustmeter: {name} {}.x is already shared by all cells (features: {}); nothing to add.",
                spec.major,
                have.join(", ")
            ))));
        }
        return Err(format!(
            ":dep {name}: {name} is already loaded in this kernel with features [{}] and cannot \
             change while it runs (feature{} {} missing). Restart the kernel and put this :dep \
             line in the first cell, before any async code.",
            have.join(", "),
            if missing.len() > 1 { "s" } else { "" },
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let extra: Vec<String> = request
        .features
        .iter()
        .filter(|f| !covered(spec, &feature_list(spec, &[]), f))
        .cloned()
        .collect();
    let line = shims::dep_line(shim_root, spec, &extra).map_err(|e| e.to_string())?;
    Ok(Some(Step::DeclareShim {
        name: name.to_string(),
        line,
        features: feature_list(spec, &extra),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("rm-cell-test-{}", std::process::id()))
    }

    fn plan(code: &str, session: &Session, root: &std::path::Path) -> Result<Vec<Step>, String> {
        let cell = crate::commands::parse(code).map_err(|e| e.to_string())?;
        super::plan(&cell, session, root)
    }

    fn evcxr(code: &str) -> Step {
        Step::Evcxr {
            code: code.into(),
            clears_state: false,
        }
    }

    #[test]
    fn plain_code_goes_to_evcxr() {
        let steps = plan("let x = 1;\nx", &Session::default(), &root()).unwrap();
        assert_eq!(steps, vec![evcxr("let x = 1;\nx")]);
    }

    #[test]
    fn await_declares_tokio_first() {
        let steps = plan("tokio::time::sleep(d).await;", &Session::default(), &root()).unwrap();
        assert!(matches!(&steps[0], Step::DeclareShim { name, line, .. }
            if name == "tokio" && line.contains(shims::INTERRUPTIBLE_IMPORT)));
        assert_eq!(
            steps[1],
            Step::InterruptibleEvcxr {
                code: "tokio::time::sleep(d).__rm_interruptible().await?;".into(),
                original: "tokio::time::sleep(d).await;".into(),
                clears_state: false,
            }
        );
    }

    #[test]
    fn tokio_in_comment_does_not_count() {
        assert!(!needs_tokio("// tokio::spawn\nlet x = 1;"));
    }

    #[test]
    fn dep_tokio_merges_or_refuses() {
        let mut session = Session::default();
        session.shims.insert("tokio".into(), vec!["full".into()]);
        let steps = plan(
            ":dep tokio = { version = \"1\", features = [\"rt\", \"macros\"] }",
            &session,
            &root(),
        )
        .unwrap();
        assert!(matches!(&steps[0], Step::Note(_)));
        let err = plan(
            ":dep tokio = { version = \"1\", features = [\"test-util\"] }",
            &session,
            &root(),
        )
        .unwrap_err();
        assert!(err.contains("test-util") && err.contains("Restart"));
        let err = plan(":dep tokio = \"0.2\"", &Session::default(), &root()).unwrap_err();
        assert!(err.contains("0.2"));
        let steps = plan(
            ":dep tokio = { version = \"1\", features = [\"test-util\"] }",
            &Session::default(),
            &root(),
        )
        .unwrap();
        assert!(
            matches!(&steps[0], Step::DeclareShim { features, .. } if features.contains(&"test-util".to_string()))
        );
    }

    #[test]
    fn feature_names_cannot_escape_the_shim_folder() {
        let err = plan(
            ":dep tokio = { version = \"1\", features = [\"z/../../x\"] }",
            &Session::default(),
            &root(),
        )
        .unwrap_err();
        assert!(err.contains("not a feature name"), "{err}");
    }

    #[test]
    fn other_deps_pass_through() {
        let steps = plan(
            ":dep itoa = \"1\"\nitoa::Buffer::new();",
            &Session::default(),
            &root(),
        )
        .unwrap();
        assert_eq!(
            steps,
            vec![evcxr(":dep itoa = \"1\"\nitoa::Buffer::new();")]
        );
    }

    #[test]
    fn quit_is_refused_and_shell_is_intercepted() {
        assert!(plan(":quit", &Session::default(), &root()).is_err());
        let steps = plan("!echo hi\nlet x = 1;", &Session::default(), &root()).unwrap();
        assert_eq!(steps[0], Step::Shell("echo hi".into()));
        let steps = plan("let x =\n!y;", &Session::default(), &root()).unwrap();
        assert_eq!(steps, vec![evcxr("let x =\n!y;")]);
    }

    #[test]
    fn env_is_parsed() {
        let steps = plan(":env RUST_LOG=debug", &Session::default(), &root()).unwrap();
        assert_eq!(
            steps,
            vec![Step::SetEnv {
                key: "RUST_LOG".into(),
                value: "debug".into()
            }]
        );
    }

    #[test]
    fn help_and_limits_are_steps_and_evcxr_commands_pass_through() {
        let steps = plan(
            ":help\n:limits\n:vars\n:clear",
            &Session::default(),
            &root(),
        )
        .unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Help,
                Step::Limits,
                Step::Evcxr {
                    code: ":vars\n:clear".into(),
                    clears_state: true
                }
            ]
        );
    }

    #[test]
    fn clear_forgets_declared_shims() {
        let mut session = Session::default();
        session.shims.insert("tokio".into(), vec!["full".into()]);
        // Without :clear the shared tokio is kept: asking for it again is a note.
        let steps = plan(":dep tokio = \"1\"", &session, &root()).unwrap();
        assert!(matches!(&steps[0], Step::Note(_)), "{steps:?}");
        // After :clear evcxr has forgotten it: it is declared again.
        let steps = plan(":clear\n:dep tokio = \"1\"", &session, &root()).unwrap();
        assert!(
            steps
                .iter()
                .any(|s| matches!(s, Step::DeclareShim { name, .. } if name == "tokio")),
            "{steps:?}"
        );
        assert!(matches!(
            steps.last(),
            Some(Step::Evcxr {
                clears_state: true,
                ..
            })
        ));
    }

    #[test]
    fn kernel_commands_are_not_the_engines() {
        let steps = plan(":telemetry big\nlet x = 1;", &Session::default(), &root()).unwrap();
        assert_eq!(steps, vec![evcxr("let x = 1;")]);
    }
}
