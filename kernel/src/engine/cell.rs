//! Reads a cell before evcxr does and decides what runs where: the rustmeter `:` commands,
//! the evcxr commands that would hurt the kernel (`:quit`, `!cmd`, `:env`), the `:dep`
//! lines for crates served through a shared dylib (see [`super::shims`]), and whether the
//! cell needs tokio. Pure planning: nothing here runs anything.

use super::shims::{self, ShimSpec};
use std::collections::BTreeMap;

/// One thing to do for a cell, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Code and commands for evcxr, as the learner wrote them (minus intercepted lines).
    Evcxr(String),
    /// Like `Evcxr`, with the top-level awaits made interruptible (see
    /// [`super::awaits`]); `original` is run instead when a compile error shows the rewrite.
    InterruptibleEvcxr { code: String, original: String },
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
    /// `:help`: evcxr's list plus rustmeter's commands.
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

/// rustmeter's own commands, for `:help` (the telemetry ones are answered by the server).
pub const COMMANDS: &[(&str, &str)] = &[
    (
        ":telemetry on|off|compact|full|big",
        "How the footer under each cell looks (big = projector size)",
    ),
    (":telemetry json", "The last cell's telemetry as JSON"),
    (":label NAME", "Name this cell's result, for :compare"),
    (
        ":compare [NAMES…|last N]",
        "Table of labelled results side by side",
    ),
    (
        ":env KEY=VALUE",
        "Set an environment variable for compiling now and for your program after :restart",
    ),
    (
        ":limits",
        "The memory and thread limits of the process running your code",
    ),
    (":help", "This list"),
    (
        "!command",
        "Run a shell command (output streams, interrupt stops it)",
    ),
];

/// Plans a cell. `shim_root` is where dylib shims are written.
pub fn plan(
    code: &str,
    session: &Session,
    shim_root: &std::path::Path,
) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut rest = Vec::new();
    let mut declared = session.shims.clone();
    let mut previous_ends_statement = true;
    for line in code.lines() {
        let trimmed = line.trim_start();
        if let Some(command) = trimmed
            .strip_prefix(':')
            .filter(|_| previous_ends_statement)
        {
            let (name, args) = command
                .split_once(char::is_whitespace)
                .map_or((command.trim(), ""), |(n, a)| (n, a.trim()));
            match name {
                "quit" => {
                    return Err(
                        ":quit would stop the whole kernel. Use the notebook's Kernel › Shut Down \
                        (or Restart) instead."
                            .to_string(),
                    )
                }
                "help" => steps.push(Step::Help),
                "limits" => steps.push(Step::Limits),
                "env" => steps.push(parse_env(args)?),
                "dep" => match plan_dep(args, &declared, shim_root)? {
                    Some(step) => {
                        if let Step::DeclareShim { name, features, .. } = &step {
                            declared.insert(name.clone(), features.clone());
                        }
                        steps.push(step);
                    }
                    None => rest.push(line.to_string()),
                },
                "clear" => {
                    declared.clear();
                    rest.push(line.to_string());
                }
                _ => rest.push(line.to_string()),
            }
            continue;
        }
        if let Some(command) = trimmed
            .strip_prefix('!')
            .filter(|_| previous_ends_statement && rest_is_commands(&rest))
        {
            steps.push(Step::Shell(command.to_string()));
            continue;
        }
        rest.push(line.to_string());
        let t = line.trim_end();
        if !t.is_empty() && !t.starts_with("//") {
            previous_ends_statement = t.ends_with(';') || t.ends_with('}') || t.ends_with('{');
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
            .position(|s| matches!(s, Step::Evcxr(_) | Step::InterruptibleEvcxr { .. }))
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
            },
            None => Step::Evcxr(code),
        });
    }
    Ok(steps)
}

/// `!` lines are shell commands only before any Rust code in the cell (or between
/// statements), never inside an expression such as `let x =\n!y;`.
fn rest_is_commands(rest: &[String]) -> bool {
    rest.iter().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with(':') || t.starts_with("//")
    }) || rest.last().is_some_and(|l| {
        let t = l.trim_end();
        t.ends_with(';') || t.ends_with('}')
    })
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

fn parse_env(args: &str) -> Result<Step, String> {
    let (key, value) = args
        .split_once('=')
        .or_else(|| args.split_once(char::is_whitespace))
        .ok_or_else(|| format!(":env expects KEY=VALUE, got {args:?}"))?;
    let key = key.trim();
    if key.is_empty() || key.contains(['\0', '=']) {
        return Err(format!(":env: {key:?} is not a valid variable name"));
    }
    Ok(Step::SetEnv {
        key: key.to_string(),
        value: value.trim().to_string(),
    })
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

    #[test]
    fn plain_code_goes_to_evcxr() {
        let steps = plan("let x = 1;\nx", &Session::default(), &root()).unwrap();
        assert_eq!(steps, vec![Step::Evcxr("let x = 1;\nx".into())]);
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
                original: "tokio::time::sleep(d).await;".into()
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
            vec![Step::Evcxr(
                ":dep itoa = \"1\"\nitoa::Buffer::new();".into()
            )]
        );
    }

    #[test]
    fn quit_is_refused_and_shell_is_intercepted() {
        assert!(plan(":quit", &Session::default(), &root()).is_err());
        let steps = plan("!echo hi\nlet x = 1;", &Session::default(), &root()).unwrap();
        assert_eq!(steps[0], Step::Shell("echo hi".into()));
        let steps = plan("let x =\n!y;", &Session::default(), &root()).unwrap();
        assert_eq!(steps, vec![Step::Evcxr("let x =\n!y;".into())]);
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
        assert!(plan(":env KEY value", &Session::default(), &root()).is_ok());
        assert!(plan(":env nothing", &Session::default(), &root()).is_err());
        assert!(plan(":env", &Session::default(), &root()).is_err());
    }
}
