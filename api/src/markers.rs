//! The marker lines the user-code process prints on stdout for the kernel to turn into
//! Jupyter messages or telemetry. One file for both sides: this crate writes `DISPLAY`,
//! `CLEAR` and `NOTE`; the kernel (which compiles this same file as its `markers` module)
//! writes the others from its relays and reads them all.
//!
//! Plain constants only: the kernel includes this file by path, so it must not use
//! anything else of this crate.

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
