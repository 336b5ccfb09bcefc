//! The kernel's `:` commands, read once. One table, [`COMMANDS`], gives every command
//! the kernel accepts its name, its arguments, a one-line help and the side that runs it;
//! [`parse`] reads each line of a cell through that table into Rust code, a `!` shell
//! line or a typed [`Command`]; [`help`] writes `:help` from the same table, so `:help`
//! lists exactly what the parser accepts.
//!
//! Owns reading only: the server answers the [`Side::Kernel`] commands
//! (`server::commands`), the engine plans the rest (`engine::cell`). Imports neither,
//! so both depend on it without depending on each other. Runs nothing.

use std::fmt;

/// Who runs a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The server answers it without the engine (telemetry, labels, solutions).
    Kernel,
    /// rustmeter's engine runs it, or changes it before evcxr sees it.
    Engine,
    /// evcxr's own command, handed to evcxr as written.
    Evcxr,
}

/// A `:` line, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Kernel(KernelCommand),
    Engine(EngineCommand),
    Evcxr(EvcxrCommand),
}

/// Commands the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelCommand {
    Telemetry(TelemetryRequest),
    /// `:label NAME`: names this cell's result (or the next cell's, alone in a cell).
    Label(String),
    Compare(CompareSelection),
    /// `:solution NAME` (the name as typed; the server checks it against the files).
    Solution(String),
    LastBuildLog,
    /// `:warnings on|off` (alone: the setting in force).
    Warnings(Option<bool>),
    /// `:repeat N`: the cell's code runs N times, its footer gives the spread.
    Repeat(u32),
}

/// What `:telemetry` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelemetryRequest {
    /// Bare `:telemetry`: the style in force.
    Current,
    /// `:telemetry json`: the last cell's telemetry as JSON.
    Json,
    /// A footer style for the following cells.
    Style(FooterStyle),
}

/// The footer styles `:telemetry` accepts (`on` and `full` are the same footer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FooterStyle {
    On,
    Off,
    Compact,
    Full,
    Big,
}

impl FooterStyle {
    pub const ALL: [FooterStyle; 5] = [
        FooterStyle::On,
        FooterStyle::Off,
        FooterStyle::Compact,
        FooterStyle::Full,
        FooterStyle::Big,
    ];

    /// The word the learner types.
    pub fn word(self) -> &'static str {
        match self {
            FooterStyle::On => "on",
            FooterStyle::Off => "off",
            FooterStyle::Compact => "compact",
            FooterStyle::Full => "full",
            FooterStyle::Big => "big",
        }
    }
}

/// The cells `:compare` puts side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareSelection {
    /// Bare `:compare`: the cells labelled in this kernel.
    ThisKernel,
    /// `:compare NAMES…`: these labels, from this kernel or earlier ones.
    Named(Vec<String>),
    /// `:compare last N`: the last N labelled cells.
    Last(usize),
}

/// Commands rustmeter's engine runs or changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineCommand {
    Help,
    Limits,
    Env {
        key: String,
        value: String,
    },
    /// Refused: it would end the kernel.
    Quit,
    /// `:dep` with its arguments as written: shared crates become shims, the rest go
    /// to evcxr.
    Dep(String),
}

/// evcxr's own commands: handed over as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvcxrCommand {
    /// `:clear` also forgets the crates the kernel shares between cells.
    Clear,
    /// Any other of evcxr's commands, by name (with its colon).
    Other(&'static str),
}

impl Command {
    pub fn side(&self) -> Side {
        match self {
            Command::Kernel(_) => Side::Kernel,
            Command::Engine(_) => Side::Engine,
            Command::Evcxr(_) => Side::Evcxr,
        }
    }

    /// The name typed for it, with its colon.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Kernel(KernelCommand::Telemetry(_)) => ":telemetry",
            Command::Kernel(KernelCommand::Label(_)) => ":label",
            Command::Kernel(KernelCommand::Compare(_)) => ":compare",
            Command::Kernel(KernelCommand::Solution(_)) => ":solution",
            Command::Kernel(KernelCommand::LastBuildLog) => ":last_build_log",
            Command::Kernel(KernelCommand::Warnings(_)) => ":warnings",
            Command::Kernel(KernelCommand::Repeat(_)) => ":repeat",
            Command::Engine(EngineCommand::Help) => ":help",
            Command::Engine(EngineCommand::Limits) => ":limits",
            Command::Engine(EngineCommand::Env { .. }) => ":env",
            Command::Engine(EngineCommand::Quit) => ":quit",
            Command::Engine(EngineCommand::Dep(_)) => ":dep",
            Command::Evcxr(EvcxrCommand::Clear) => ":clear",
            Command::Evcxr(EvcxrCommand::Other(name)) => name,
        }
    }
}

/// How a command's arguments are read.
#[derive(Clone, Copy)]
enum Arguments {
    /// By rustmeter: the rest of the line, trimmed, into a typed command or an error
    /// naming what is wrong.
    Read(fn(&str) -> Result<Command, String>),
    /// By evcxr, which gets the line as written.
    Evcxr,
}

/// One row of the table.
#[derive(Clone, Copy)]
pub struct Spec {
    /// As typed, with its colon: `:label`.
    pub name: &'static str,
    /// The arguments as `:help` shows them; empty when there are none.
    pub arguments: &'static str,
    pub help: &'static str,
    pub side: Side,
    read: Arguments,
}

impl Spec {
    /// What `:help` shows in its first column: `:label NAME`.
    pub fn usage(&self) -> String {
        if self.arguments.is_empty() {
            self.name.to_string()
        } else {
            format!("{} {}", self.name, self.arguments)
        }
    }

    fn read(&self, arguments: &str) -> Result<Command, String> {
        match self.read {
            Arguments::Read(read) => read(arguments),
            Arguments::Evcxr => Ok(Command::Evcxr(EvcxrCommand::Other(self.name))),
        }
    }
}

const fn rustmeter(
    name: &'static str,
    arguments: &'static str,
    side: Side,
    help: &'static str,
    read: fn(&str) -> Result<Command, String>,
) -> Spec {
    Spec {
        name,
        arguments,
        help,
        side,
        read: Arguments::Read(read),
    }
}

/// One of evcxr's own commands, with evcxr's own help text.
const fn evcxr(name: &'static str, help: &'static str) -> Spec {
    Spec {
        name,
        arguments: "",
        help,
        side: Side::Evcxr,
        read: Arguments::Evcxr,
    }
}

/// Every `:` command the kernel accepts. rustmeter's first, in the order `:help` shows
/// them; then evcxr 0.22's own (its `CommandContext::create_commands`) except the ones
/// rustmeter answers instead (`:help`, `:env`, `:quit`, `:dep`).
pub const COMMANDS: &[Spec] = &[
    rustmeter(
        ":telemetry",
        "[on|off|compact|full|big|json]",
        Side::Kernel,
        "How the footer under each cell looks (big = projector size); json: the last \
         cell's telemetry as JSON; alone: the style in force",
        read_telemetry,
    ),
    rustmeter(
        ":label",
        "NAME",
        Side::Kernel,
        "Name this cell's result, for :compare (alone in a cell: names the next cell)",
        read_label,
    ),
    rustmeter(
        ":repeat",
        "N",
        Side::Kernel,
        "Run this cell's code N times (1 to 100); the footer gives the median and range \
         of run time, CPU, threads and tasks, and :compare uses the medians",
        read_repeat,
    ),
    rustmeter(
        ":compare",
        "[NAMES…|last N]",
        Side::Kernel,
        "Table of labelled results side by side",
        read_compare,
    ),
    rustmeter(
        ":solution",
        "NAME",
        Side::Kernel,
        "An exercise's solution, when the instructor enabled them",
        read_solution,
    ),
    rustmeter(
        ":last_build_log",
        "",
        Side::Kernel,
        "The last build's events, as the rustc wrapper recorded them",
        read_last_build_log,
    ),
    rustmeter(
        ":warnings",
        "[on|off]",
        Side::Kernel,
        "Compiler warnings that matter to a learner (a future never awaited) under the \
         cells that compiled with them: on (the default) or off; alone: the setting in force",
        read_warnings,
    ),
    rustmeter(
        ":dep",
        "NAME [= SPEC]",
        Side::Engine,
        "Add a dependency, e.g. :dep regex = \"1\" (tokio and rayon: one copy shared by \
         all cells)",
        read_dep,
    ),
    rustmeter(
        ":env",
        "KEY=VALUE",
        Side::Engine,
        "Set an environment variable for compiling now and for your program after :restart",
        read_env,
    ),
    rustmeter(
        ":limits",
        "",
        Side::Engine,
        "The memory and thread limits of the process running your code",
        read_limits,
    ),
    rustmeter(":help", "", Side::Engine, "This list", read_help),
    rustmeter(
        ":quit",
        "",
        Side::Engine,
        "Refused: it would stop the whole kernel (use Kernel › Shut Down)",
        read_quit,
    ),
    evcxr(
        ":allow_static_linking",
        "Set whether to allow static linking of dependencies (0/1)",
    ),
    evcxr(
        ":build_env",
        "Set environment variables when building code (key=value)",
    ),
    evcxr(":cache", "Set cache size in MiB, or 0 to disable."),
    rustmeter(
        ":clear",
        "",
        Side::Evcxr,
        "Clear all state, keeping compilation cache",
        read_clear,
    ),
    evcxr(":clear_cache", "Clear the cache used by the :cache command"),
    evcxr(
        ":codegen_backend",
        "Set/print the codegen backend. Requires nightly",
    ),
    evcxr(
        ":doc",
        "show the documentation of a variable, keyword, type or module",
    ),
    evcxr(":efmt", "Set the formatter for errors returned by ?"),
    evcxr(":explain", "Print explanation of last error"),
    evcxr(":fmt", "Set output formatter (default: {:?})"),
    evcxr(":internal_debug", "Toggle various internal debugging code"),
    evcxr(
        ":last_compile_dir",
        "Print the directory in which we last compiled",
    ),
    evcxr(
        ":last_error_json",
        "Print the last compilation error as JSON (for debugging)",
    ),
    evcxr(":linker", "Set/print linker. Supported: system, lld, mold"),
    evcxr(
        ":load_config",
        "Reloads startup configuration files. Accepts optional flag `--quiet` to suppress \
         logging.",
    ),
    evcxr(":offline", "Set offline mode when invoking cargo (0/1)"),
    evcxr(":opt", "Set optimization level (0/1/2)"),
    evcxr(":preserve_vars_on_panic", "Try to keep vars on panic (0/1)"),
    evcxr(":restart", "Restart child process"),
    evcxr(":sccache", "Set whether to use sccache (0/1)."),
    evcxr(":show_deps", "Show the current dependencies"),
    evcxr(":t", "Short version of :type"),
    evcxr(
        ":time_passes",
        "Toggle printing of rustc pass times (requires nightly)",
    ),
    evcxr(":timing", "Toggle printing of how long evaluations take"),
    evcxr(":toolchain", "Set which toolchain to use (e.g. nightly)"),
    evcxr(":type", "Show variable type"),
    evcxr(":types", "Toggle printing of types"),
    evcxr(":vars", "List bound variables and their types"),
    evcxr(":version", "Print Evcxr version"),
];

/// `!` lines are not `:` commands, but `:help` lists them with rustmeter's.
pub const SHELL_USAGE: &str = "!command";
pub const SHELL_HELP: &str = "Run a shell command (output streams, interrupt stops it)";

/// The table row for `name` (with its colon).
pub fn find(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|spec| spec.name == name)
}

fn read_telemetry(arguments: &str) -> Result<Command, String> {
    let request = match arguments {
        "" => TelemetryRequest::Current,
        "json" => TelemetryRequest::Json,
        word => FooterStyle::ALL
            .into_iter()
            .find(|style| style.word() == word)
            .map(TelemetryRequest::Style)
            .ok_or_else(|| {
                format!(
                    ":telemetry: unknown mode {word:?}; use on, off, compact, full, big or json"
                )
            })?,
    };
    Ok(Command::Kernel(KernelCommand::Telemetry(request)))
}

fn read_label(arguments: &str) -> Result<Command, String> {
    if arguments.is_empty() {
        return Err(
            ":label needs a NAME: `:label threads` at the top of a cell names its result for \
             :compare"
                .to_string(),
        );
    }
    Ok(Command::Kernel(KernelCommand::Label(arguments.to_string())))
}

/// Most runs `:repeat` accepts: 100 runs of a cell are already minutes of compiling.
pub const REPEAT_MAX: u32 = 100;

fn read_repeat(arguments: &str) -> Result<Command, String> {
    match arguments.parse::<u32>() {
        Ok(runs) if (1..=REPEAT_MAX).contains(&runs) => {
            Ok(Command::Kernel(KernelCommand::Repeat(runs)))
        }
        _ => Err(format!(
            ":repeat needs a number of runs from 1 to {REPEAT_MAX} (got {arguments:?}): \
             `:repeat 5` in a cell runs all of its code five times"
        )),
    }
}

fn read_compare(arguments: &str) -> Result<Command, String> {
    let words: Vec<String> = arguments.split_whitespace().map(str::to_string).collect();
    let selection = match words.first().map(String::as_str) {
        None => CompareSelection::ThisKernel,
        Some("last") => CompareSelection::Last(
            words
                .get(1)
                .and_then(|n| n.parse().ok())
                .ok_or(":compare last N needs a number")?,
        ),
        Some(_) => CompareSelection::Named(words),
    };
    Ok(Command::Kernel(KernelCommand::Compare(selection)))
}

fn read_solution(arguments: &str) -> Result<Command, String> {
    Ok(Command::Kernel(KernelCommand::Solution(
        arguments.to_string(),
    )))
}

fn read_warnings(arguments: &str) -> Result<Command, String> {
    let shown = match arguments {
        "" => None,
        "on" => Some(true),
        "off" => Some(false),
        other => {
            return Err(format!(
                ":warnings: unknown setting {other:?}; use on or off"
            ))
        }
    };
    Ok(Command::Kernel(KernelCommand::Warnings(shown)))
}

fn read_last_build_log(arguments: &str) -> Result<Command, String> {
    if !arguments.is_empty() {
        return Err(format!(
            ":last_build_log takes no arguments (got {arguments:?}); write it alone on its line"
        ));
    }
    Ok(Command::Kernel(KernelCommand::LastBuildLog))
}

fn read_dep(arguments: &str) -> Result<Command, String> {
    // evcxr reads the dependency itself (and names what is wrong with it).
    Ok(Command::Engine(EngineCommand::Dep(arguments.to_string())))
}

fn read_env(arguments: &str) -> Result<Command, String> {
    let (key, value) = arguments
        .split_once('=')
        .or_else(|| arguments.split_once(char::is_whitespace))
        .ok_or_else(|| format!(":env expects KEY=VALUE, got {arguments:?}"))?;
    let key = key.trim();
    if key.is_empty() || key.contains(['\0', '=']) {
        return Err(format!(":env: {key:?} is not a valid variable name"));
    }
    Ok(Command::Engine(EngineCommand::Env {
        key: key.to_string(),
        value: value.trim().to_string(),
    }))
}

// `:help` and `:limits` have always ignored words after them, as evcxr's commands
// without arguments (`:vars`, `:timing`) do.
fn read_limits(_: &str) -> Result<Command, String> {
    Ok(Command::Engine(EngineCommand::Limits))
}

fn read_help(_: &str) -> Result<Command, String> {
    Ok(Command::Engine(EngineCommand::Help))
}

fn read_quit(_: &str) -> Result<Command, String> {
    Ok(Command::Engine(EngineCommand::Quit))
}

fn read_clear(_: &str) -> Result<Command, String> {
    Ok(Command::Evcxr(EvcxrCommand::Clear))
}

/// A cell, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cell {
    pub lines: Vec<Line>,
}

/// One line of a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// As written: what evcxr gets for code and for its own commands.
    pub text: String,
    pub kind: LineKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// Rust code, a comment or a blank line.
    Code,
    /// `!command`: the command after the `!`.
    Shell(String),
    Command(Command),
}

impl Cell {
    /// Takes out the commands the server answers; the rest is the engine's.
    pub fn take_kernel_commands(&mut self) -> Vec<KernelCommand> {
        let mut taken = Vec::new();
        self.lines.retain(|line| match &line.kind {
            LineKind::Command(Command::Kernel(command)) => {
                taken.push(command.clone());
                false
            }
            _ => true,
        });
        taken
    }

    /// The lines as written, one per line.
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(|line| line.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A line of a cell that is not a command the kernel accepts, or whose arguments are wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// Counted from 1.
    pub line: usize,
    /// The line as written.
    pub text: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No such command; `nearest` is the known name closest to it, if any is close.
    Unknown {
        name: String,
        nearest: Option<&'static str>,
    },
    /// The command exists; what is wrong with its arguments.
    Arguments(String),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Problem::Unknown {
                name,
                nearest: Some(nearest),
            } => write!(f, "unknown command {name} — did you mean {nearest}?"),
            Problem::Unknown {
                name,
                nearest: None,
            } => write!(f, "unknown command {name} (:help lists the commands)"),
            Problem::Arguments(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for CommandError {}

/// Reads a cell. A `:` line is a command at the start of a statement (never inside an
/// expression such as `let x =\n:y`); the server's own commands (`:label`, `:telemetry`,
/// …) are taken wherever they are, as they always were. A `!` line is a shell command
/// before any Rust code or between statements. Everything else is code, for evcxr.
pub fn parse(code: &str) -> Result<Cell, CommandError> {
    let mut position = Position::default();
    let mut cell = Cell::default();
    for (index, text) in code.lines().enumerate() {
        let kind = position.read(text).map_err(|problem| CommandError {
            line: index + 1,
            text: text.to_string(),
            problem,
        })?;
        cell.lines.push(Line {
            text: text.to_string(),
            kind,
        });
    }
    Ok(cell)
}

/// Where the reader is in the cell's Rust code.
struct Position {
    /// The last code line ended a statement or opened a block (or there was none).
    at_statement_start: bool,
    /// Some code line came before.
    code_seen: bool,
    /// The last code line ended with `;` or `}`: a `!` after it is not a negation.
    after_complete_statement: bool,
}

impl Default for Position {
    fn default() -> Position {
        Position {
            at_statement_start: true,
            code_seen: false,
            after_complete_statement: false,
        }
    }
}

impl Position {
    fn read(&mut self, text: &str) -> Result<LineKind, Problem> {
        let trimmed = text.trim();
        if let Some((name, arguments)) = command_words(trimmed) {
            let spec = find(name);
            if self.at_statement_start || spec.is_some_and(|s| s.side == Side::Kernel) {
                let spec = spec.ok_or_else(|| Problem::Unknown {
                    name: name.to_string(),
                    nearest: nearest(name),
                })?;
                return spec
                    .read(arguments)
                    .map(LineKind::Command)
                    .map_err(Problem::Arguments);
            }
        } else if let Some(command) = text.trim_start().strip_prefix('!') {
            if self.at_statement_start && (!self.code_seen || self.after_complete_statement) {
                return Ok(LineKind::Shell(command.to_string()));
            }
        }
        if !trimmed.is_empty() && !trimmed.starts_with("//") {
            self.code_seen = true;
            self.at_statement_start = trimmed.ends_with([';', '}', '{']);
            self.after_complete_statement = trimmed.ends_with([';', '}']);
        }
        Ok(LineKind::Code)
    }
}

/// `:name arguments` → (`:name`, `arguments`). A name starts with a letter: `::std::…`
/// is a path, not a command.
fn command_words(trimmed: &str) -> Option<(&str, &str)> {
    let after_colon = trimmed.strip_prefix(':')?;
    if !after_colon.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    Some(match trimmed.split_once(char::is_whitespace) {
        Some((name, arguments)) => (name, arguments.trim()),
        None => (trimmed, ""),
    })
}

/// The known name closest to `name` by edit distance (a swap of two letters counts as
/// one edit), when it is close enough to be a typo: one edit per three letters.
pub fn nearest(name: &str) -> Option<&'static str> {
    let typed = name.trim_start_matches(':').to_lowercase();
    let allowed = (typed.chars().count() + 1) / 3;
    COMMANDS
        .iter()
        .map(|spec| {
            let known = spec.name.trim_start_matches(':');
            (strsim::osa_distance(&typed, known), spec.name)
        })
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// `:help`, written from the table: rustmeter's commands (and `!`), then evcxr's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Help {
    pub text: String,
    pub html: String,
}

pub fn help() -> Help {
    let ours: Vec<(String, &str)> = COMMANDS
        .iter()
        .filter(|spec| spec.side != Side::Evcxr)
        .map(|spec| (spec.usage(), spec.help))
        .chain([(SHELL_USAGE.to_string(), SHELL_HELP)])
        .collect();
    let mut evcxrs: Vec<(String, &str)> = COMMANDS
        .iter()
        .filter(|spec| spec.side == Side::Evcxr)
        .map(|spec| (spec.usage(), spec.help))
        .collect();
    evcxrs.sort();
    let mut text = String::new();
    let mut html = String::new();
    for (title, heading, rows) in [
        ("rustmeter commands:", "rustmeter", &ours),
        ("evcxr commands:", "evcxr", &evcxrs),
    ] {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(title);
        text.push('\n');
        html.push_str(&format!("<h4>{heading}</h4><table>"));
        for (usage, help) in rows {
            text.push_str(&format!("{usage:<17} {help}\n"));
            html.push_str("<tr><td><code>");
            escape_into(&mut html, usage);
            html.push_str("</code></td><td>");
            escape_into(&mut html, help);
            html.push_str("</td></tr>");
        }
        html.push_str("</table>");
    }
    Help { text, html }
}

fn escape_into(html: &mut String, text: &str) {
    // Writing into a String cannot fail.
    let _ = pulldown_cmark_escape::escape_html_body_text(html, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(line: &str) -> Command {
        let cell = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        match &cell.lines[..] {
            [Line {
                kind: LineKind::Command(command),
                ..
            }] => command.clone(),
            other => panic!("{line}: not one command: {other:?}"),
        }
    }

    fn problem(line: &str) -> Problem {
        parse(line).expect_err(line).problem
    }

    fn arguments_error(line: &str) -> String {
        match problem(line) {
            Problem::Arguments(message) => message,
            other => panic!("{line}: {other:?}"),
        }
    }

    /// Arguments every command accepts, for the table-wide tests.
    fn valid_arguments(name: &str) -> &'static str {
        match name {
            ":label" | ":solution" | ":dep" => "threads",
            ":env" => "RUST_LOG=debug",
            ":repeat" => "5",
            _ => "",
        }
    }

    #[test]
    fn telemetry_reads_each_style_json_and_bare() {
        for style in FooterStyle::ALL {
            assert_eq!(
                command(&format!(":telemetry {}", style.word())),
                Command::Kernel(KernelCommand::Telemetry(TelemetryRequest::Style(style)))
            );
        }
        assert_eq!(
            command(":telemetry json"),
            Command::Kernel(KernelCommand::Telemetry(TelemetryRequest::Json))
        );
        assert_eq!(
            command("  :telemetry  "),
            Command::Kernel(KernelCommand::Telemetry(TelemetryRequest::Current))
        );
        assert_eq!(
            arguments_error(":telemetry huge"),
            ":telemetry: unknown mode \"huge\"; use on, off, compact, full, big or json"
        );
        assert!(arguments_error(":telemetry big extra").contains("\"big extra\""));
    }

    #[test]
    fn label_needs_a_name() {
        assert_eq!(
            command(":label two words"),
            Command::Kernel(KernelCommand::Label("two words".into()))
        );
        assert!(arguments_error(":label").contains(":label needs a NAME"));
    }

    #[test]
    fn repeat_needs_a_count_in_range() {
        assert_eq!(
            command(":repeat 5"),
            Command::Kernel(KernelCommand::Repeat(5))
        );
        for wrong in [
            ":repeat",
            ":repeat 0",
            ":repeat 101",
            ":repeat five",
            ":repeat -2",
        ] {
            let message = arguments_error(wrong);
            assert!(message.contains("from 1 to 100"), "{wrong}: {message}");
        }
    }

    #[test]
    fn compare_reads_names_and_last_n() {
        let compare = |s| Command::Kernel(KernelCommand::Compare(s));
        assert_eq!(command(":compare"), compare(CompareSelection::ThisKernel));
        assert_eq!(
            command(":compare a  b"),
            compare(CompareSelection::Named(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            command(":compare last 3"),
            compare(CompareSelection::Last(3))
        );
        for bad in [":compare last", ":compare last x", ":compare last -1"] {
            assert_eq!(arguments_error(bad), ":compare last N needs a number");
        }
    }

    #[test]
    fn solution_and_last_build_log() {
        assert_eq!(
            command(":solution ex-1"),
            Command::Kernel(KernelCommand::Solution("ex-1".into()))
        );
        // The server answers a missing name with the list of solutions.
        assert_eq!(
            command(":solution"),
            Command::Kernel(KernelCommand::Solution(String::new()))
        );
        assert_eq!(
            command(":last_build_log"),
            Command::Kernel(KernelCommand::LastBuildLog)
        );
        assert!(arguments_error(":last_build_log now").contains("takes no arguments"));
        assert_eq!(
            command(":warnings off"),
            Command::Kernel(KernelCommand::Warnings(Some(false)))
        );
        assert!(arguments_error(":warnings loud").contains("use on or off"));
    }

    #[test]
    fn engine_commands() {
        assert_eq!(
            command(":env RUST_LOG=debug"),
            Command::Engine(EngineCommand::Env {
                key: "RUST_LOG".into(),
                value: "debug".into()
            })
        );
        assert_eq!(
            command(":env KEY value"),
            Command::Engine(EngineCommand::Env {
                key: "KEY".into(),
                value: "value".into()
            })
        );
        assert_eq!(
            arguments_error(":env nothing"),
            ":env expects KEY=VALUE, got \"nothing\""
        );
        assert_eq!(arguments_error(":env"), ":env expects KEY=VALUE, got \"\"");
        assert!(arguments_error(":env =x").contains("not a valid variable name"));
        assert_eq!(
            command(":dep tokio = \"1\""),
            Command::Engine(EngineCommand::Dep("tokio = \"1\"".into()))
        );
        assert_eq!(command(":help"), Command::Engine(EngineCommand::Help));
        assert_eq!(command(":limits"), Command::Engine(EngineCommand::Limits));
        assert_eq!(command(":quit"), Command::Engine(EngineCommand::Quit));
    }

    #[test]
    fn evcxr_commands_pass_through_as_written() {
        assert_eq!(command(":clear"), Command::Evcxr(EvcxrCommand::Clear));
        let cell = parse("  :fmt {:#?}").unwrap();
        assert_eq!(cell.lines[0].text, "  :fmt {:#?}");
        assert_eq!(
            cell.lines[0].kind,
            LineKind::Command(Command::Evcxr(EvcxrCommand::Other(":fmt")))
        );
    }

    #[test]
    fn every_table_entry_reads_to_its_own_name_and_side() {
        for spec in COMMANDS {
            let line = format!("{} {}", spec.name, valid_arguments(spec.name));
            let command = command(&line);
            assert_eq!(command.name(), spec.name, "{line}");
            assert_eq!(command.side(), spec.side, "{line}");
        }
        let mut names: Vec<&str> = COMMANDS.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len(), "a name is in the table twice");
    }

    #[test]
    fn help_lists_every_command_the_parser_accepts() {
        let help = help();
        for spec in COMMANDS {
            let row = format!("{:<17} {}\n", spec.usage(), spec.help);
            assert!(help.text.contains(&row), "{row:?} not in :help");
            let mut cells = String::new();
            escape_into(&mut cells, &spec.usage());
            cells.push_str("</code></td><td>");
            escape_into(&mut cells, spec.help);
            assert!(
                help.html.contains(&cells),
                "{} not in :help html",
                spec.name
            );
        }
        assert!(help.text.contains(SHELL_USAGE) && help.html.contains(SHELL_USAGE));
        // Whatever the parser takes for a command has a row: every `:word` either is in
        // the table or is refused as unknown.
        for word in [
            "help",
            "vars",
            "hepl",
            "telemetryx",
            "label",
            "t",
            "zzz",
            "Help",
        ] {
            let line = format!(":{word} {}", valid_arguments(&format!(":{word}")));
            match parse(&line) {
                Ok(cell) => {
                    let LineKind::Command(command) = &cell.lines[0].kind else {
                        panic!("{line} read as {:?}", cell.lines[0]);
                    };
                    assert!(help.text.contains(&format!("\n{}", command.name())));
                }
                Err(e) => assert!(matches!(e.problem, Problem::Unknown { .. }), "{e}"),
            }
        }
    }

    #[test]
    fn readme_lists_every_command() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("\n## Commands\n")
            .expect("README has a Commands section");
        let section = &readme[start..];
        let section = &section[..section[1..].find("\n## ").map_or(section.len(), |e| e + 1)];
        for spec in COMMANDS {
            let named = [format!("`{}`", spec.name), format!("`{} ", spec.name)];
            assert!(
                named.iter().any(|n| section.contains(n.as_str())),
                "README's Commands section does not list {}",
                spec.name
            );
        }
        assert!(section.contains(SHELL_USAGE));
    }

    #[test]
    fn help_html_is_escaped_text() {
        let help = help();
        assert!(help
            .html
            .contains("<td><code>:compare [NAMES…|last N]</code></td>"));
        let mut escaped = String::new();
        escape_into(&mut escaped, "Vec<u8> & more");
        assert_eq!(escaped, "Vec&lt;u8&gt; &amp; more");
    }

    #[test]
    fn unknown_commands_name_the_nearest() {
        let e = parse("let x = 1;\n:hepl").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.text, ":hepl");
        assert_eq!(e.to_string(), "unknown command :hepl — did you mean :help?");
        assert_eq!(nearest(":telemetryx"), Some(":telemetry"));
        assert_eq!(nearest(":lables"), Some(":label"));
        assert_eq!(nearest(":Vars"), Some(":vars"));
        assert_eq!(nearest(":frobnicate"), None);
        assert_eq!(nearest(":x"), None);
        assert_eq!(
            parse(":frobnicate").unwrap_err().to_string(),
            "unknown command :frobnicate (:help lists the commands)"
        );
    }

    #[test]
    fn colons_inside_code_are_code() {
        for code in [
            "let a = 1;\n::std::mem::drop(a);",
            "let x =\n:hepl",
            "let x: u8 = 1;",
            "// :hepl",
        ] {
            let cell = parse(code).unwrap_or_else(|e| panic!("{code}: {e}"));
            assert!(
                cell.lines.iter().all(|l| l.kind == LineKind::Code),
                "{code}"
            );
            assert_eq!(cell.text(), code);
        }
    }

    #[test]
    fn kernel_commands_are_taken_anywhere() {
        let mut cell = parse(":label threads\nlet x =\n:telemetry big\n1;").unwrap();
        let taken = cell.take_kernel_commands();
        assert_eq!(
            taken,
            vec![
                KernelCommand::Label("threads".into()),
                KernelCommand::Telemetry(TelemetryRequest::Style(FooterStyle::Big))
            ]
        );
        assert_eq!(cell.text(), "let x =\n1;");
    }

    #[test]
    fn shell_lines_only_between_statements() {
        let kinds = |code: &str| -> Vec<LineKind> {
            parse(code)
                .unwrap()
                .lines
                .into_iter()
                .map(|l| l.kind)
                .collect()
        };
        assert_eq!(
            kinds("!echo hi\nlet x = 1;"),
            vec![LineKind::Shell("echo hi".into()), LineKind::Code]
        );
        assert_eq!(kinds("let x = 1;\n!ls")[1], LineKind::Shell("ls".into()));
        assert_eq!(kinds("let x = 1;\n\n!ls")[2], LineKind::Shell("ls".into()));
        assert_eq!(kinds("let x =\n!y;")[1], LineKind::Code);
        assert_eq!(kinds("if a {\n!b\n}")[1], LineKind::Code);
    }
}
