//! The marker lines the user-code process prints on stdout for the kernel to turn into
//! Jupyter messages or telemetry. One file for both sides: this crate writes `DISPLAY`,
//! `CLEAR` and `NOTE`; the kernel (which compiles this same file as its `markers` module)
//! writes the others from its relays and reads them all.
//!
//! Plain constants and pure functions only: the kernel includes this file by path, so it
//! must not use anything else of this crate.

/// Prefix of every line rustmeter's own markers use. A control character, so ordinary
/// program output never collides with it.
pub const MARK: &str = "\u{1}RM_";
/// `\u{1}RM_RUN_START <ns>`: compiled user code started running (announced by the stdin
/// relay), stamped with the child's `CLOCK_MONOTONIC` in nanoseconds.
pub const RUN_START: &str = "\u{1}RM_RUN_START";
/// `\u{1}RM_RUN_END <ns>`: the user's code returned (announced before evcxr's completion
/// line), stamped like [`RUN_START`].
pub const RUN_END: &str = "\u{1}RM_RUN_END";
/// `\u{1}RM_DISPLAY {json}`: a display_data (fields `data`, optional `display_id`, `update`).
pub const DISPLAY: &str = "\u{1}RM_DISPLAY ";
/// `\u{1}RM_NOTE {"key":..,"value":..}`: a parameter the cell attached to its telemetry.
pub const NOTE: &str = "\u{1}RM_NOTE ";
/// `\u{1}RM_CLEAR {json}`: clear_output (`{"wait":bool}`).
pub const CLEAR: &str = "\u{1}RM_CLEAR ";
/// `\u{1}RM_PANIC {json}`: a panic seen by the prelude's panic hook.
pub const PANIC: &str = "\u{1}RM_PANIC ";
/// Ends a partial output line (one printed without newline): the text before it has no `\n`.
pub const NO_EOL: &str = "\u{1}RM_NOEOL";
/// Printed by the prelude's flush function; the relay consumes it.
pub const END_OF_CELL: &str = "\u{1}RM_EOC";
/// `\u{1}RM_EOC_FN <address>`: where the prelude's flush function lives; consumed by the
/// child's stdout relay.
pub const END_OF_CELL_FN: &str = "\u{1}RM_EOC_FN ";
/// Tags a prompt inside evcxr's `EVCXR_INPUT_REQUEST:` line when the request stands for
/// a read of the user-code process's stdin (the child's stdout relay asks on its behalf)
/// or for `rustmeter::read_password`; the prompt after it is escaped with
/// [`escape_prompt`], since evcxr keeps only the text up to the next `:`.
pub const STDIN_READ: &str = "\u{1}RM_STDIN ";

/// The kernel's answer to an input request that stands for end of input: the child's
/// stdin relay gives the waiting read end of file (as Ctrl-D at a terminal, or a program
/// run with `< /dev/null`) instead of a line. Sent after an interrupt, and to a read of
/// stdin in a client that takes no input.
pub const STDIN_EOF: &str = "\u{1}RM_STDIN_EOF";

/// `prompt` with `%`, `:` and line ends written as `%25`, `%3A`, `%0A`, `%0D`.
pub fn escape_prompt(prompt: &str) -> String {
    let mut out = String::with_capacity(prompt.len());
    for c in prompt.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`escape_prompt`]; other `%` sequences stay as they are.
pub fn unescape_prompt(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3);
        let decoded = match code {
            Some("25") => Some('%'),
            Some("3A") => Some(':'),
            Some("0A") => Some('\n'),
            Some("0D") => Some('\r'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}
