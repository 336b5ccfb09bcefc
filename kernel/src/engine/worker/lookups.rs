//! The editor's look-ups through evcxr: completion and inspection (hover docs), with
//! cursors converted between Jupyter's code points and evcxr's bytes. Never runs a cell.

use crate::engine::{syntax, Completion, Inspection};
use std::panic::AssertUnwindSafe;

pub(super) fn complete(
    context: &mut evcxr::CommandContext,
    code: &str,
    cursor: usize,
) -> Completion {
    let byte = syntax::code_point_to_byte(code, cursor);
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| context.completions(code, byte)));
    match result {
        Ok(Ok(c)) => {
            let mut matches: Vec<String> = Vec::new();
            for completion in c.completions {
                if !matches.contains(&completion.code) {
                    matches.push(completion.code);
                }
            }
            Completion {
                matches,
                cursor_start: syntax::byte_to_code_point(code, c.start_offset),
                cursor_end: syntax::byte_to_code_point(code, c.end_offset),
            }
        }
        _ => Completion {
            cursor_start: cursor,
            cursor_end: cursor,
            ..Default::default()
        },
    }
}

pub(super) fn inspect(
    context: &mut evcxr::CommandContext,
    code: &str,
    cursor: usize,
) -> Inspection {
    let mut byte = syntax::code_point_to_byte(code, cursor);
    // Hover looks at the expression ending at the cursor: extend to the end of the word.
    while let Some(c) = code[byte..].chars().next() {
        if c.is_alphanumeric() || c == '_' {
            byte += c.len_utf8();
        } else {
            break;
        }
    }
    if byte == 0 {
        return Inspection::default();
    }
    match std::panic::catch_unwind(AssertUnwindSafe(|| context.hover_at(code, byte))) {
        Ok(Ok((text, html))) if !text.trim().is_empty() && text != "No documentation found" => {
            Inspection {
                found: true,
                text,
                html,
            }
        }
        _ => Inspection::default(),
    }
}
