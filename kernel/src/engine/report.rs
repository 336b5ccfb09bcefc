//! Turns evcxr errors into the neutral [`CellError`] the server shows: one error per failed
//! cell, with a readable traceback (source line, carets, label, help). Pure functions.

use super::{diagnostics, CellError, ErrorKind};
use crate::commands::{CommandError, Problem};
use crate::limits::{self, Hit, Setting};
use evcxr::CompilationError;

const RED: &str = "\x1b[31m";
const BOLD: &str = "\x1b[1m";
const BLUE: &str = "\x1b[34m";
const RESET: &str = "\x1b[0m";

/// All compile errors of one cell as one error (the protocol wants one `error` per cell);
/// `code` is the cell as evcxr compiled it, for mapping rustc's spans back to its lines.
pub fn compile_errors(errors: &[CompilationError], code: &str) -> CellError {
    let shown: Vec<&CompilationError> = errors
        .iter()
        .filter(|e| diagnostics::worth_showing(e))
        .collect();
    // Never an empty traceback: a failed build with nothing worth showing shows it all.
    let errors = if shown.iter().any(|e| e.level() == "error") {
        shown
    } else {
        errors.iter().collect()
    };
    let mut traceback = Vec::new();
    for error in &errors {
        traceback.extend(diagnostics::render(
            error,
            &diagnostics::CellSource::new(code, error),
        ));
    }
    let first = errors.first();
    let mut evalue = first.map_or_else(
        || "compilation failed".to_string(),
        |e| diagnostics::clean(&e.message(), &diagnostics::CellSource::new(code, e)),
    );
    // evcxr drops an error it finds in the code it generated around the cell and keeps only
    // its help ("consider importing this trait"), which alone reads as if nothing failed.
    let hint_only = !errors.iter().any(|e| e.level() == "error")
        && errors.iter().any(|e| matches!(e.level(), "help" | "note"));
    if hint_only {
        traceback.insert(
            0,
            format!("{RED}{BOLD}error{RESET}{BOLD}: {GENERATED_CODE_ERROR}{RESET}"),
        );
        evalue = format!("{GENERATED_CODE_ERROR} ({evalue})");
    }
    let count = errors.iter().filter(|e| e.level() == "error").count();
    if count > 1 {
        traceback.push(format!("{BOLD}{count} errors{RESET}"));
    }
    CellError {
        kind: ErrorKind::Compile,
        ename: "compile error".to_string(),
        evalue,
        traceback,
        lost_variables: Vec::new(),
    }
}

/// Said when rustc's only words are a help or note about code the kernel wrote around the
/// cell: where that happens, and the two ways out.
const GENERATED_CODE_ERROR: &str = "the cell did not compile, in the code that keeps its \
variables for later cells: most often a variable's type names something not in scope here \
(rustc's hint below). `use` it first (a thread's `join()` result needs `use std::any::Any;`), or wrap the \
work in a block `{ … }` so that only its result is kept";

/// A plain message error (evcxr `Error::Message`, bad `:` command, refused input).
pub fn message(ename: &str, evalue: impl Into<String>) -> CellError {
    let evalue = evalue.into();
    CellError {
        kind: ErrorKind::Kernel,
        ename: ename.to_string(),
        traceback: vec![format!("{RED}{BOLD}{ename}{RESET}: {evalue}")],
        evalue,
        lost_variables: Vec::new(),
    }
}

/// A `:` line the kernel could not read. An unknown command reads like the compile error
/// evcxr gave for it before rustmeter read commands itself (kind `Compile`, the line
/// quoted, the name underlined); wrong arguments like any refused command.
pub fn command_error(error: &CommandError) -> CellError {
    let Problem::Unknown { name, .. } = &error.problem else {
        return message("command error", error.to_string());
    };
    let evalue = error.to_string();
    let indent = error.text.chars().take_while(|c| c.is_whitespace()).count();
    let carets = "^".repeat(name.chars().count());
    CellError {
        kind: ErrorKind::Compile,
        ename: "compile error".to_string(),
        traceback: vec![
            format!("{RED}{BOLD}error{RESET}{BOLD}: {evalue}{RESET}"),
            format!("{BLUE}  --> line {}:{}{RESET}", error.line, indent + 1),
            format!("{BLUE}{:>4} |{RESET} {}", error.line, error.text),
            format!(
                "{BLUE}     |{RESET} {}{RED}{carets}{RESET}",
                " ".repeat(indent)
            ),
            String::new(),
        ],
        evalue,
        lost_variables: Vec::new(),
    }
}

/// Added to tokio's panic when a cell that `.await`s also calls `block_on`.
const NESTED_RUNTIME_HINT: &str = "this cell awaits, so it runs on the shared tokio runtime, \
and a runtime cannot block on another inside it. Move the block_on (or #[tokio::main] fn) \
into a cell without .await, or use tokio::task::spawn_blocking for the blocking part.";

/// A panic on the thread that ran the cell.
pub fn panic(message: &str, location: &str) -> CellError {
    let mut traceback = vec![format!("{RED}{BOLD}panic{RESET}: {message}")];
    // evcxr compiles cells into src/lib.rs: its line numbers mean nothing to the learner.
    if !location.is_empty() && !location.starts_with("src/lib.rs") {
        traceback.push(format!("{BLUE}  --> {location}{RESET}"));
    }
    if message.contains("Cannot start a runtime from within a runtime") {
        traceback.push(format!("{BOLD}why{RESET}: {NESTED_RUNTIME_HINT}"));
    }
    CellError {
        kind: ErrorKind::Panic,
        ename: "panic".to_string(),
        evalue: message.to_string(),
        traceback,
        lost_variables: Vec::new(),
    }
}

/// A cell the kernel stopped (`ename`, shown as `■ ename`): `why`, then whether earlier
/// variables are kept or which were lost with a replaced process, then `what_to_do`.
fn stopped(
    ename: &str,
    why: &str,
    what_to_do: &str,
    lost_variables: Vec<String>,
    restarted: bool,
) -> CellError {
    let mut text = why.to_string();
    if restarted {
        text.push_str(&lost_text(&lost_variables));
    } else {
        text.push_str(" Variables from earlier cells are kept.");
    }
    text.push_str(what_to_do);
    CellError {
        kind: ErrorKind::Interrupted,
        ename: ename.to_string(),
        evalue: text.clone(),
        traceback: vec![format!("{RED}{BOLD}■ {ename}{RESET}: {text}")],
        lost_variables,
    }
}

/// The cell was stopped by an interrupt; `restarted` when the child process was replaced.
pub fn interrupted(lost_variables: Vec<String>, restarted: bool) -> CellError {
    stopped(
        "interrupted",
        "The cell was interrupted.",
        "",
        lost_variables,
        restarted,
    )
}

/// The cell's code ran longer than `RUSTMETER_CELL_TIMEOUT` (`limit`, as configured).
pub fn timed_out(limit: &str, lost_variables: Vec<String>, restarted: bool) -> CellError {
    stopped(
        "time limit",
        &format!("The cell ran longer than the time limit of {limit} and was stopped."),
        &format!(
            " The limit is {var}={limit} in the kernel's environment (kernelspec env): change \
             or remove it there and restart the kernel.",
            var = super::time_limit::VAR
        ),
        lost_variables,
        restarted,
    )
}

/// The cell read its stdin in a client that takes no input (`allow_stdin` false:
/// nbclient, papermill, `jupyter execute`); it was stopped like an interrupt.
pub fn stdin_unavailable(lost_variables: Vec<String>, restarted: bool) -> CellError {
    stopped(
        "stdin unavailable",
        "This cell reads standard input (stdin), but this client does not take input (it \
         sent allow_stdin: false, as nbclient, papermill and jupyter execute do), so the cell \
         was stopped. Put the value in the code, or run the cell in JupyterLab, Notebook or \
         jupyter console, which show an input box.",
        "",
        lost_variables,
        restarted,
    )
}

/// The user-code process died (segfault, abort, stack overflow, `process::exit`).
pub fn crashed(evcxr_message: &str, lost_variables: Vec<String>) -> CellError {
    let cause = crash_cause(evcxr_message);
    let text = format!(
        "The process running your code stopped: {cause}.{}",
        lost_text(&lost_variables)
    );
    let mut traceback = vec![format!("{RED}{BOLD}crash{RESET}: {text}")];
    let detail: Vec<&str> = evcxr_message
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(8)
        .collect();
    if !detail.is_empty() {
        traceback.push(detail.join("\n"));
    }
    CellError {
        kind: ErrorKind::Crashed,
        ename: "crash".to_string(),
        evalue: text,
        traceback,
        lost_variables,
    }
}

/// The user-code process was killed by the kernel's OOM killer at the memory cap.
pub fn crashed_at_memory_limit(setting: &Setting, lost_variables: Vec<String>) -> CellError {
    let text = format!(
        "The process running your code was stopped: it reached the memory limit of {} \
         ({}).{}",
        limits::parse::human_bytes(setting.value),
        setting.assignment(),
        lost_text(&lost_variables)
    );
    CellError {
        kind: ErrorKind::Crashed,
        ename: "memory limit".to_string(),
        evalue: text.clone(),
        traceback: vec![
            format!("{RED}{BOLD}memory limit{RESET}: {text}"),
            how_to_change(setting, "2G"),
        ],
        lost_variables,
    }
}

/// One line naming a cap the cell ran into, what it did, and where it is set.
pub fn limit_sentence(hit: &Hit) -> String {
    match hit {
        Hit::Memory(setting) => format!(
            "The process running your code reached the memory limit of {} ({}).",
            limits::parse::human_bytes(setting.value),
            setting.assignment()
        ),
        Hit::Threads(setting) => format!(
            "The process running your code reached the thread limit of {} threads \
             ({}): starting another thread or process was refused.",
            setting.value,
            setting.assignment()
        ),
    }
}

/// Adds the caps a failed cell ran into to its error (a panic from a refused
/// `thread::spawn` otherwise reads like a bug in the cell).
pub fn note_limits(error: &mut CellError, hits: &[Hit]) {
    for hit in hits {
        let setting = match hit {
            Hit::Memory(s) | Hit::Threads(s) => s,
        };
        if error.evalue.contains(&setting.assignment()) {
            continue;
        }
        let sentence = limit_sentence(hit);
        error.evalue = format!("{}\n{sentence}", error.evalue);
        error
            .traceback
            .push(format!("{BOLD}limit{RESET}: {sentence}"));
        let example = match hit {
            Hit::Memory(_) => "2G",
            Hit::Threads(_) => "5000",
        };
        error.traceback.push(how_to_change(setting, example));
    }
}

fn how_to_change(setting: &Setting, example: &str) -> String {
    let flag = match setting.variable {
        limits::MEMORY_VARIABLE => "--memory-limit",
        _ => "--thread-limit",
    };
    format!(
        "{BOLD}help{RESET}: the limit is set by {} in the kernel's environment (kernelspec \
         env; ./install.sh {flag} {example} writes it). Ask whoever runs this server to change \
         it, or make the cell use less.",
        setting.variable
    )
}

fn lost_text(lost: &[String]) -> String {
    if lost.is_empty() {
        " It was restarted; no variables were lost.".to_string()
    } else {
        format!(
            " It was restarted, so these variables were lost: {}. Re-run the cells that defined them.",
            lost.join(", ")
        )
    }
}

/// Names what killed the child, as precisely as evcxr's message allows.
pub fn crash_cause(message: &str) -> String {
    if message.contains("has overflowed its stack") {
        "stack overflow (too deep recursion or a too large local variable)".into()
    } else if message.contains("Segmentation fault") {
        "segmentation fault (invalid memory access)".into()
    } else if message.contains("Illegal instruction") {
        "illegal instruction (SIGILL)".into()
    } else if message.contains("Bus error") {
        "bus error (SIGBUS)".into()
    } else if message.contains("signal: 11") || message.contains("SIGSEGV") {
        "SIGSEGV with no message, likely a stack overflow".into()
    } else if message.contains("stack overflow") {
        "stack overflow".into()
    } else if message.contains("signal: 6") || message.contains("SIGABRT") {
        "abort() (SIGABRT)".into()
    } else if message.contains("signal: 9") || message.contains("SIGKILL") {
        "killed (SIGKILL), possibly out of memory".into()
    } else if let Some(code) = message
        .split("exit status: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
    {
        format!("the program exited with status {code} (std::process::exit)")
    } else {
        "it terminated unexpectedly".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_commands_read_as_compile_errors_and_bad_arguments_as_command_errors() {
        let unknown = crate::commands::parse("let x = 1;\n  :hepl").unwrap_err();
        let e = command_error(&unknown);
        assert_eq!(e.kind, ErrorKind::Compile);
        assert_eq!(e.ename, "compile error");
        assert_eq!(e.evalue, "unknown command :hepl — did you mean :help?");
        assert!(e.traceback[1].contains("line 2:3"), "{:?}", e.traceback);
        assert!(e.traceback[3].ends_with(&format!("   {RED}^^^^^{RESET}")));
        let bad = crate::commands::parse(":env nothing").unwrap_err();
        let e = command_error(&bad);
        assert_eq!(e.kind, ErrorKind::Kernel);
        assert_eq!(e.ename, "command error");
        assert_eq!(e.evalue, ":env expects KEY=VALUE, got \"nothing\"");
    }

    #[test]
    fn crash_causes_are_named() {
        assert!(
            crash_cause("thread 'main' has overflowed its stack\nsignal: 6 (SIGABRT)")
                .contains("stack overflow")
        );
        assert!(
            crash_cause("Segmentation fault.\nSubprocess terminated with status: signal: 6")
                .contains("segmentation")
        );
        assert!(
            crash_cause("Subprocess terminated with status: signal: 11 (SIGSEGV)")
                .contains("stack overflow")
        );
        assert!(
            crash_cause("Subprocess terminated with status: exit status: 3").contains("status 3")
        );
        assert!(crash_cause(
            "Subprocess terminated with status: signal: 6 (SIGABRT) (core dumped)"
        )
        .contains("abort"));
    }

    #[test]
    fn limit_errors_name_the_cap_and_the_setting() {
        let memory = limits::parse::memory("500M").unwrap().unwrap();
        let e = crashed_at_memory_limit(&memory, vec!["v".into()]);
        assert_eq!(e.kind, ErrorKind::Crashed);
        assert!(e.evalue.contains("500 MiB") && e.evalue.contains("RUSTMETER_MEMORY_LIMIT=500M"));
        assert!(e.evalue.contains("lost: v"));
        assert!(e.traceback.iter().any(|l| l.contains("--memory-limit")));

        let threads = limits::parse::threads("1000").unwrap().unwrap();
        let mut e = panic("failed to spawn thread: Os { code: 11 }", "");
        note_limits(&mut e, &[Hit::Threads(threads.clone())]);
        assert!(e.evalue.starts_with("failed to spawn thread"));
        assert!(e
            .evalue
            .contains("thread limit of 1000 threads (RUSTMETER_THREAD_LIMIT=1000)"));
        assert!(e.traceback.iter().any(|l| l.contains("--thread-limit")));
        let lines = e.traceback.len();
        note_limits(&mut e, &[Hit::Threads(threads)]);
        assert_eq!(e.traceback.len(), lines, "a cap is named once");
    }

    #[test]
    fn a_nested_runtime_panic_says_why_and_what_to_do() {
        let error = panic(
            "Cannot start a runtime from within a runtime. This happens because ...",
            "src/lib.rs:3:5",
        );
        let text = error.traceback.join("\n");
        assert!(text.contains("cell without .await"), "{text}");
        assert!(!panic("boom", "").traceback.join("").contains("why"));
    }

    #[test]
    fn interrupted_lists_lost_variables() {
        let e = interrupted(vec!["a".into(), "b".into()], true);
        assert!(e.evalue.contains("a, b"));
        assert_eq!(e.kind, ErrorKind::Interrupted);
        assert!(interrupted(Vec::new(), false).evalue.contains("kept"));
    }

    #[test]
    fn time_limit_names_the_setting() {
        let e = timed_out("2s", vec!["x".into()], true);
        assert!(e.evalue.contains("RUSTMETER_CELL_TIMEOUT=2s") && e.evalue.contains('x'));
        assert_eq!(e.kind, ErrorKind::Interrupted);
    }
}
