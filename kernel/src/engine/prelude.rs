//! The hidden cell run in every new user-code child before the learner's first cell.
//!
//! It runs inside the cells' shared `libstd.so` (not this binary's std), which is the only
//! place a panic hook or a stdout flush reaches user code. Everything sits inside one
//! block, so evcxr keeps no items or variables from it. The one exception is
//! [`QUICK_DISPLAY`], items kept on purpose, compiled with the first prelude.
//!
//! The Rust source itself lives in real files, `kernel/shim/prelude.rs` and
//! `kernel/shim/quick_display.rs`, syntax-checked by the tests below; this module fills
//! in the markers.

use crate::markers::{END_OF_CELL, END_OF_CELL_FN, PANIC};

/// Items defined once per kernel, before the prelude: a cell ending in a std value
/// (`x + 1`, a `Vec`, an `Option`) then compiles once instead of twice.
///
/// evcxr first compiles a final expression as `(expr).evcxr_display()` and, when that
/// fails (no such method), compiles the cell again printing `{:?}`: about 100 ms and a
/// second cargo run per cell. This trait gives std types that method, printing exactly
/// what evcxr's second compile prints. Only std types get it: they cannot have an
/// inherent `evcxr_display`, and a crate's own `evcxr_display` on them through a trait
/// would be ambiguous with this one (evcxr then falls back to `{:?}`, as before).
/// Inherent `evcxr_display` methods of the learner's types win over a trait's.
pub const QUICK_DISPLAY: &str = include_str!("../../shim/quick_display.rs");

/// Replaces [`QUICK_DISPLAY`] once the learner changes how evcxr prints values (`:fmt`,
/// `:types`): every value then takes evcxr's own path, which honours those settings.
pub const QUICK_DISPLAY_OFF: &str = "mod __rustmeter_display {\n    pub trait Show {}\n}";

/// evcxr commands after which [`QUICK_DISPLAY_OFF`] must run.
pub fn changes_value_format(code: &str) -> bool {
    code.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with(":fmt") || l.starts_with(":types")
    })
}

/// The prelude cell's source, with `@@NAME@@` where a marker of [`crate::markers`]
/// goes (inside string literals, so the file parses as it is).
const PRELUDE_TEMPLATE: &str = include_str!("../../shim/prelude.rs");

/// Rust source of the prelude cell: one block, the markers filled in as Rust string
/// escapes (they start with a control character).
pub fn source() -> String {
    PRELUDE_TEMPLATE
        .trim_end() // the file's last newline: the cell is the block alone
        .replace(
            "@@END_OF_CELL_FN@@",
            &END_OF_CELL_FN.escape_default().to_string(),
        )
        .replace("@@END_OF_CELL@@", &END_OF_CELL.escape_default().to_string())
        .replace("@@PANIC@@", &PANIC.escape_default().to_string())
}

#[cfg(test)]
mod tests {
    use ra_ap_syntax::{Edition, SourceFile};

    #[test]
    fn prelude_is_one_block_with_markers() {
        let src = super::source();
        assert!(src.starts_with('{') && src.ends_with('}'));
        assert!(src.contains("\\u{1}RM_EOC_FN "));
        assert!(src.contains("\\u{1}RM_PANIC "));
        assert!(src.contains("set_hook"));
    }

    /// The sources as evcxr receives them parse as Rust: a typo in a shim file shows
    /// here, not as a failed hidden cell in every new kernel.
    #[test]
    fn the_sources_sent_to_evcxr_parse() {
        // The prelude is a block, which is not an item: parse it as a function body.
        let prelude = format!("fn prelude() {}", super::source());
        for (name, text) in [
            ("shim/prelude.rs", prelude.as_str()),
            ("shim/quick_display.rs", super::QUICK_DISPLAY),
            ("QUICK_DISPLAY_OFF", super::QUICK_DISPLAY_OFF),
        ] {
            let parsed = SourceFile::parse(text, Edition::Edition2021);
            assert_eq!(parsed.errors(), [], "{name} does not parse:\n{text}");
        }
        assert!(
            !prelude.contains("@@"),
            "a placeholder was not filled in:\n{prelude}"
        );
    }

    #[test]
    fn value_format_commands_are_recognised() {
        assert!(super::changes_value_format(":fmt {:#?}"));
        assert!(super::changes_value_format("let a = 1;\n  :types"));
        assert!(!super::changes_value_format("let fmt = 1;\n// :fmt"));
    }
}
