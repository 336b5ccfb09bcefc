//! Keeps the project rule "no function over 80 lines in `server/` or `engine/`" true:
//! a test reads those sources and names every function that runs longer. A function's
//! length runs from its `fn` line to the closing brace at the same indentation, as
//! `cargo fmt` lays them out. Test-only; reads this crate's sources, changes nothing.

use std::path::{Path, PathBuf};

/// Longest function allowed, its `fn` line and closing brace included.
const MAX_LINES: usize = 80;

/// The name of the function `line` opens, if it opens one (`pub(crate) async fn name(`).
fn declared_fn(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    let mut word = words.next()?;
    while word == "pub"
        || word.starts_with("pub(")
        || ["const", "async", "unsafe", "extern"].contains(&word)
        || word.starts_with('"')
    {
        word = words.next()?;
    }
    if word != "fn" {
        return None;
    }
    let name = words.next()?;
    let end = name.find(['(', '<']).unwrap_or(name.len());
    Some(&name[..end])
}

/// Each function with a body in `source`: its name, its first line (from 1) and its
/// length in lines.
fn function_lengths(source: &str) -> Vec<(&str, usize, usize)> {
    let lines: Vec<&str> = source.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(name) = declared_fn(line) else {
            continue;
        };
        let indent = indent_of(line);
        let closing = format!("{indent}}}");
        let signature_end = lines[start..]
            .iter()
            .map(|l| l.trim_end())
            .find(|l| l.ends_with('{') || l.ends_with(';') || l.ends_with('}'));
        let length = match signature_end {
            // A declaration without a body (in a trait or an `extern` block).
            Some(end) if end.ends_with(';') => continue,
            // The whole function on one line.
            Some(end) if end.ends_with('}') => 1,
            // Up to the closing brace; a line indented less comes first only when the
            // `fn` is text in a string (code that a format string builds).
            _ => match lines[start + 1..].iter().position(|l| {
                *l == closing || (!l.trim().is_empty() && indent_of(l).len() < indent.len())
            }) {
                Some(offset) if lines[start + 1 + offset] == closing => offset + 2,
                _ => continue,
            },
        };
        found.push((name, start + 1, length));
    }
    found
}

fn indent_of(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[test]
fn no_function_in_server_or_engine_runs_over_80_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut too_long = Vec::new();
    for dir in ["server", "engine"] {
        for file in rust_files(&src.join(dir)) {
            let relative = file.strip_prefix(&src).unwrap().to_string_lossy();
            let source = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            for (name, line, length) in function_lengths(&source) {
                if length > MAX_LINES {
                    too_long.push(format!("{relative}:{line} fn {name}: {length} lines"));
                }
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "functions over {MAX_LINES} lines in server/ or engine/; split them into well-named \
         helpers:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn lengths_run_from_the_fn_line_to_its_closing_brace() {
    let source = "\
impl Thing {
    pub(crate) async fn long<T>(
        a: T,
    ) -> T
    where
        T: Copy,
    {
        fn inner() {}
        a
    }
    fn one_line(&self) -> u8 { 1 }
}
trait Declared {
    fn declared(&self);
}
const BUILT: &str = \"{{
    fn in_a_format_string() {{
    }}
}}\";
const NOT_A_FN: &str = \"fn\";
fn free() {
    let x = 1;
}
";
    assert_eq!(
        function_lengths(source),
        vec![
            ("long", 2, 9),
            ("inner", 8, 1),
            ("one_line", 11, 1),
            ("free", 21, 3)
        ]
    );
}
