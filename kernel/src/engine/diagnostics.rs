//! Compile errors in the learner's words. rustc's diagnostic (the JSON evcxr keeps on each
//! `CompilationError`) is rendered against the cell's own lines: spans in the generated
//! crate (`src/lib.rs`) are mapped back to cell lines, rustc's notes are kept with their
//! spans ("await occurs here"), a suggestion is shown as the learner's line with the
//! change made, and generated names (`{async block@src/lib.rs:…}`,
//! `evcxr_variable_store`, `evcxr_internal_runtime::`) are replaced or dropped.
//!
//! Pure functions over text: nothing here compiles or runs; [`super::report`] wraps the
//! lines in the cell's error.

use evcxr::CompilationError;
use serde_json::Value;

const RED: &str = "\x1b[31m";
const BOLD: &str = "\x1b[1m";
const BLUE: &str = "\x1b[34m";
const GREEN: &str = "\x1b[32m";
const RESET: &str = "\x1b[0m";

/// The generated crate's source file, as rustc names it in spans and type names.
const GENERATED_FILE: &str = "src/lib.rs";

/// The cell's code as evcxr compiled it, and where its lines sit in the generated crate.
pub struct CellSource<'a> {
    lines: Vec<&'a str>,
    /// Generated-crate line minus cell line, from a span evcxr itself mapped; `None` when
    /// no span of the error was mapped.
    offset: Option<i64>,
}

impl<'a> CellSource<'a> {
    pub fn new(code: &'a str, error: &CompilationError) -> Self {
        let lines: Vec<&str> = code.lines().collect();
        let offset = mapped_offset(error);
        Self { lines, offset }
    }

    /// Where a span of the generated crate is in the cell: 1-based line and character
    /// column where it starts and where it ends (exclusive). `None` for spans in
    /// generated code or in other files.
    fn locate(&self, span: &Value) -> Option<Place> {
        if !span["file_name"].as_str()?.ends_with(GENERATED_FILE) {
            return None;
        }
        let generated_line = span["line_start"].as_u64()? as i64;
        let text = span["text"][0]["text"].as_str()?.trim_end();
        if text.trim().is_empty() {
            return None;
        }
        // evcxr copies the learner's statements verbatim; a statement that starts mid-line
        // begins its generated line there, so the cell line ends with the generated text.
        let candidates: Vec<usize> = (0..self.lines.len())
            .filter(|&i| self.lines[i].trim_end().ends_with(text))
            .collect();
        let expected = self.offset.map(|o| generated_line - o);
        let index = match expected {
            Some(line) => candidates
                .iter()
                .copied()
                .min_by_key(|&i| (i as i64 + 1 - line).abs())?,
            None if candidates.len() == 1 => candidates[0],
            None => return None,
        };
        let shift = self.lines[index].trim_end().chars().count() - text.chars().count();
        let lines = span["line_end"]
            .as_u64()?
            .checked_sub(span["line_start"].as_u64()?)?;
        let end_line = index + 1 + lines as usize;
        if end_line > self.lines.len() {
            return None;
        }
        let end = span["column_end"].as_u64()? as usize;
        Some(Place {
            line: index + 1,
            start: span["column_start"].as_u64()? as usize + shift,
            end_line,
            end: if lines == 0 { end + shift } else { end },
        })
    }

    /// The cell line a generated-crate line shows, when it is one of the cell's.
    fn cell_line(&self, generated_line: i64) -> Option<usize> {
        let line = generated_line - self.offset?;
        (1..=self.lines.len() as i64)
            .contains(&line)
            .then_some(line as usize)
    }
}

/// A span's place in the cell.
#[derive(Debug, Clone, Copy)]
struct Place {
    line: usize,
    start: usize,
    end_line: usize,
    end: usize,
}

/// The offset between the generated crate and the cell, from the first span evcxr mapped
/// (its `spanned_messages` carry cell lines, the JSON the generated ones).
fn mapped_offset(error: &CompilationError) -> Option<i64> {
    let mapped = error.spanned_messages().iter().find_map(|m| m.span)?;
    let spans = error.json["spans"].as_array()?;
    spans
        .iter()
        .filter(|s| {
            s["file_name"]
                .as_str()
                .is_some_and(|f| f.ends_with(GENERATED_FILE))
        })
        .find_map(|s| {
            let start = s["line_start"].as_u64()? as i64;
            let end = s["line_end"].as_u64()? as i64;
            let lines = (mapped.end_line - mapped.start_line) as i64;
            (end - start == lines).then_some(start - mapped.start_line as i64)
        })
}

/// Lints worth a learner's attention even when the cell has errors: the rest of rustc's
/// warnings (unused variables, unused assignments) are noise next to an error.
pub const LINTS_TO_SHOW: [&str; 1] = ["unused_must_use"];

/// Whether an error of a failed build is shown: errors always, warnings of
/// [`LINTS_TO_SHOW`] only, and only about the cell's own lines.
pub fn worth_showing(error: &CompilationError) -> bool {
    error.level() != "warning"
        || (error.code().is_some_and(|c| LINTS_TO_SHOW.contains(&c))
            && error.spanned_messages().iter().any(|m| m.span.is_some()))
}

/// The traceback lines of one error.
pub fn render(error: &CompilationError, source: &CellSource) -> Vec<String> {
    let mut lines = Vec::new();
    let code = error.code().map(|c| format!("[{c}]")).unwrap_or_default();
    lines.push(format!(
        "{RED}{BOLD}{}{code}{RESET}{BOLD}: {}{RESET}",
        error.level(),
        clean(&error.message(), source)
    ));
    // evcxr labels an unlabelled span with the error's own message: said once is enough.
    let own_message = clean(&format!("{}: {}", error.level(), error.message()), source);
    for spanned in error.spanned_messages() {
        let label = clean(&spanned.label, source);
        let label = if label == own_message {
            String::new()
        } else {
            label
        };
        match &spanned.span {
            Some(span) => {
                lines.push(arrow(span.start_line, span.start_column));
                for line in span.start_line..=span.end_line {
                    let text = source.lines.get(line - 1).copied().unwrap_or("");
                    lines.push(numbered(line, text));
                }
                if span.start_line == span.end_line && span.end_column >= span.start_column {
                    lines.push(carets(span.start_column, span.end_column, &label));
                } else if !label.is_empty() {
                    lines.push(format!("{BLUE}     = {RESET}{label}"));
                }
            }
            None if !label.is_empty() && !label.starts_with("help:") => {
                lines.push(format!("  {label}"));
            }
            None => {}
        }
    }
    if let Some(children) = error.json["children"].as_array() {
        for child in children {
            lines.extend(render_child(child, source));
        }
    }
    if let Some(hint) = error.evcxr_extra_hint() {
        lines.push(format!("{BOLD}hint{RESET}: {hint}"));
    }
    lines.push(String::new());
    lines
}

/// A note or help of rustc's: its message, its spans in the cell, and a suggestion as the
/// changed line. Dropped when it speaks only of generated code.
fn render_child(child: &Value, source: &CellSource) -> Vec<String> {
    let level = child["level"].as_str().unwrap_or("note");
    let message = child["message"].as_str().unwrap_or("");
    let message = clean(message, source);
    if message.is_empty() || speaks_of_generated_code(&message) {
        return Vec::new();
    }
    let spans = child["spans"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let mut lines = vec![format!("{BOLD}{level}{RESET}: {message}")];
    if spans.iter().any(|s| s["suggested_replacement"].is_string()) {
        lines.extend(suggestion(spans, source));
        return lines;
    }
    for span in spans {
        let Some(place) = source.locate(span) else {
            continue;
        };
        let label = clean(span["label"].as_str().unwrap_or(""), source);
        lines.push(arrow(place.line, place.start));
        lines.push(numbered(place.line, source.lines[place.line - 1]));
        let end = if place.end_line == place.line {
            place.end
        } else {
            place.start + 1
        };
        lines.push(carets(place.start, end, &label));
    }
    lines
}

/// The learner's lines with rustc's suggested replacements made (a replacement may add
/// lines); nothing when a replacement falls outside the cell.
fn suggestion(spans: &[Value], source: &CellSource) -> Vec<String> {
    let mut edits: Vec<(Place, &str)> = Vec::new();
    for span in spans {
        let Some(replacement) = span["suggested_replacement"].as_str() else {
            continue;
        };
        let Some(place) = source.locate(span) else {
            return Vec::new();
        };
        edits.push((place, replacement));
    }
    let Some(first) = edits.iter().map(|(p, _)| p.line).min() else {
        return Vec::new();
    };
    let last = edits.iter().map(|(p, _)| p.end_line).max().unwrap_or(first);
    // The touched lines as one text; edits made right to left so earlier ones keep their
    // places.
    let mut text: Vec<char> = source.lines[first - 1..last].join("\n").chars().collect();
    let offset = |line: usize, column: usize| -> usize {
        let before: usize = source.lines[first - 1..line - 1]
            .iter()
            .map(|l| l.chars().count() + 1)
            .sum();
        before + column - 1
    };
    let mut edits: Vec<(usize, usize, &str)> = edits
        .into_iter()
        .map(|(p, r)| (offset(p.line, p.start), offset(p.end_line, p.end), r))
        .collect();
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (start, end, replacement) in edits {
        if start > end || end > text.len() {
            return Vec::new();
        }
        text.splice(start..end, replacement.chars());
    }
    let text: String = text.into_iter().collect();
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let number = first + i;
            if number <= last {
                format!("{BLUE}{number:>4} |{RESET} {GREEN}{line}{RESET}")
            } else {
                format!("{BLUE}   + |{RESET} {GREEN}{line}{RESET}")
            }
        })
        .collect()
}

fn arrow(line: usize, column: usize) -> String {
    format!("{BLUE}  --> line {line}:{column}{RESET}")
}

fn numbered(line: usize, text: &str) -> String {
    format!("{BLUE}{line:>4} |{RESET} {text}")
}

fn carets(start: usize, end: usize, label: &str) -> String {
    let pad = " ".repeat(start.saturating_sub(1));
    let carets = "^".repeat(end.saturating_sub(start).max(1));
    format!("{BLUE}     |{RESET} {pad}{RED}{carets} {label}{RESET}")
}

/// Text about the generated crate's own items, which the learner cannot see or change.
fn speaks_of_generated_code(text: &str) -> bool {
    ["evcxr", "__rm", "__Rm", GENERATED_FILE]
        .iter()
        .any(|name| text.contains(name))
}

/// `text` with the generated crate's names replaced by what they are in the cell.
pub fn clean(text: &str, source: &CellSource) -> String {
    let mut text = text
        .replace("`evcxr_variable_store`", "the end of the cell")
        .replace("<end of input>", "the end of the cell")
        .replace("evcxr_internal_runtime::", "");
    // A shared crate is the learner's `tokio`, not the shim package that re-exports it.
    for shim in super::shims::ALL {
        text = text.replace(
            &format!("rustmeter_{}::", shim.name),
            &format!("{}::", shim.name),
        );
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    // rustc names anonymous types by place: `{async block@src/lib.rs:163:14: 163:24}`.
    while let Some(at) = rest.find(&format!("@{GENERATED_FILE}:")) {
        let Some(open) = rest[..at].rfind('{') else {
            break;
        };
        let Some(close) = rest[at..].find('}').map(|c| at + c) else {
            break;
        };
        // A quoted name (`` `{closure@…}` ``) becomes plain words: drop its quotes.
        let quoted = rest[..open].ends_with('`') && rest[close + 1..].starts_with('`');
        let (before, after) = if quoted {
            (open - 1, close + 2)
        } else {
            (open, close + 1)
        };
        out.push_str(&rest[..before]);
        let kind = &rest[open + 1..at];
        let place = &rest[at + GENERATED_FILE.len() + 2..close];
        let line = place
            .split(':')
            .next()
            .and_then(|l| l.parse::<i64>().ok())
            .and_then(|l| source.cell_line(l));
        let what = match kind {
            k if k.starts_with("async") => "`async` block",
            "closure" => "closure",
            _ => "expression",
        };
        if !out.ends_with("this ") {
            out.push_str("the ");
        }
        out.push_str(what);
        if let Some(line) = line {
            out.push_str(&format!(" on line {line}"));
        }
        rest = &rest[after..];
    }
    out.push_str(rest);
    out
}

/// Lints whose warning a learner should see even though the cell compiled: each names
/// a mistake that makes the program not do what it says.
const LEARNER_LINTS: [&str; 1] = [
    // A future created and dropped, never awaited: the work never happens.
    "unused_must_use",
];

/// The warnings (rustc's JSON diagnostics, one per line, from a build of the cell that
/// succeeded) that matter to a learner, one compact line each:
/// `⚠ line 2: unused implementer of `Future` that must be used — futures do nothing
/// unless you `.await` or poll them`. Warnings about generated code are dropped.
pub fn learner_warnings(jsonl: &str, code: &str, generated: &str) -> Vec<String> {
    let map = LineMap::new(code, generated);
    let mut lines: Vec<String> = Vec::new();
    for json in jsonl
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let lint = json["code"]["code"].as_str().unwrap_or("");
        if json["level"] != "warning" || !LEARNER_LINTS.contains(&lint) {
            continue;
        }
        let primary = json["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["is_primary"] == true));
        let Some(line) = primary
            .filter(|s| s["file_name"] == GENERATED_FILE)
            .and_then(|s| s["line_start"].as_u64())
            .and_then(|l| map.cell_line(u32::try_from(l).ok()?, true))
        else {
            continue;
        };
        let message = json["message"].as_str().unwrap_or("");
        let note = json["children"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["level"] == "note" && c["spans"].as_array().is_none_or(Vec::is_empty))
            .filter_map(|c| c["message"].as_str())
            .find(|m| !m.starts_with('`') || !m.contains("on by default"));
        let text = match note {
            Some(note) => format!("⚠ line {line}: {message} — {note}"),
            None => format!("⚠ line {line}: {message}"),
        };
        if !lines.contains(&text) {
            lines.push(text);
        }
    }
    lines
}

/// Where the lines of the generated crate (`generated`, evcxr's `src/lib.rs`) are in the
/// cell, for places rustc or tokio name in the crate after a build that succeeded
/// (warnings, spawn locations), where evcxr maps nothing. Built once per cell: linear in
/// the lines of both.
pub struct LineMap<'a> {
    cell: Vec<&'a str>,
    crate_lines: Vec<String>,
    /// Crate line index minus cell line index, as most cell lines found once in each
    /// agree (evcxr copies a cell's statements in order, some rewritten).
    offset: Option<i64>,
}

impl<'a> LineMap<'a> {
    pub fn new(code: &'a str, generated: &str) -> LineMap<'a> {
        let cell: Vec<&str> = code.lines().map(str::trim).collect();
        let crate_lines: Vec<String> = generated
            .lines()
            .map(|l| super::awaits::as_written(l.trim()))
            .collect();
        let offset = line_offset(&cell, &crate_lines);
        LineMap {
            cell,
            crate_lines,
            offset,
        }
    }

    /// The cell line (1-based) that crate line `generated_line` shows: the one cell line
    /// with its text; else the one cell line it is a piece of (evcxr puts each statement
    /// of a cell on a line of its own); else by the offset, when `guess` allows.
    pub fn cell_line(&self, generated_line: u32, guess: bool) -> Option<u32> {
        let index = usize::try_from(generated_line).ok()?.checked_sub(1)?;
        let text = self.crate_lines.get(index).map_or("", String::as_str);
        let only = |found: Vec<usize>| match found.as_slice() {
            [one] => Some(*one),
            _ => None,
        };
        let same = (0..self.cell.len()).filter(|&i| !text.is_empty() && self.cell[i] == text);
        let within =
            (0..self.cell.len()).filter(|&i| text.len() > 2 && self.cell[i].contains(text));
        let at = only(same.collect())
            .or_else(|| only(within.collect()))
            .or_else(|| {
                let offset = self.offset.filter(|_| guess)?;
                usize::try_from(index as i64 - offset).ok()
            });
        at.filter(|&i| i < self.cell.len()).map(|i| i as u32 + 1)
    }

    /// The text of cell line `line` (1-based).
    pub fn cell_text(&self, line: u32) -> &str {
        (line as usize)
            .checked_sub(1)
            .and_then(|i| self.cell.get(i))
            .copied()
            .unwrap_or("")
    }
}

/// The cell line (1-based) that line `generated_line` of `generated` shows (see
/// [`LineMap`]), offset guess allowed.
pub fn cell_line_of(code: &str, generated: &str, generated_line: u32) -> Option<u32> {
    LineMap::new(code, generated).cell_line(generated_line, true)
}

fn line_offset(cell: &[&str], crate_lines: &[String]) -> Option<i64> {
    use std::collections::HashMap;
    let mut in_crate: HashMap<&str, (usize, usize)> = HashMap::new();
    for (j, text) in crate_lines.iter().enumerate() {
        in_crate.entry(text.as_str()).or_insert((j, 0)).1 += 1;
    }
    let mut in_cell: HashMap<&str, usize> = HashMap::new();
    for text in cell {
        *in_cell.entry(text).or_default() += 1;
    }
    let mut votes: HashMap<i64, usize> = HashMap::new();
    for (i, text) in cell.iter().enumerate().filter(|(_, t)| t.len() > 2) {
        if in_cell.get(text) == Some(&1) {
            if let Some(&(j, 1)) = in_crate.get(text) {
                *votes.entry(j as i64 - i as i64).or_default() += 1;
            }
        }
    }
    votes
        .into_iter()
        .max_by_key(|(offset, n)| (*n, -offset))
        .map(|(offset, _)| offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_future_never_awaited_is_one_line_at_the_cells_line() {
        let code = "let d = std::time::Duration::from_millis(5);\ntokio::time::sleep(d);";
        let generated =
            "\n\nlet d = std::time::Duration::from_millis(5);\ntokio::time::sleep(d);\n";
        let warning = r#"{"$message_type":"diagnostic","message":"unused implementer of `Future` that must be used","code":{"code":"unused_must_use","explanation":null},"level":"warning","spans":[{"file_name":"src/lib.rs","line_start":4,"line_end":4,"column_start":1,"column_end":22,"is_primary":true}],"children":[{"message":"futures do nothing unless you `.await` or poll them","code":null,"level":"note","spans":[],"children":[]},{"message":"`#[warn(unused_must_use)]` on by default","code":null,"level":"note","spans":[],"children":[]}]}"#;
        let dead_code = warning.replace("unused_must_use", "dead_code");
        let jsonl = format!("{warning}\n{dead_code}\n{warning}\nnot json\n");
        assert_eq!(
            learner_warnings(&jsonl, code, generated),
            vec!["⚠ line 2: unused implementer of `Future` that must be used — futures do nothing unless you `.await` or poll them"]
        );
    }

    #[test]
    fn generated_lines_map_to_the_cells_own_lines() {
        let one_line = "set.spawn(work()); set.join_next().await;";
        let crate_one = "\n\nset.spawn(work()); set.join_next().__rm_interruptible().await?;\n";
        assert_eq!(cell_line_of(one_line, crate_one, 3), Some(1));
        let split = "let mut set = JoinSet::new(); set.spawn(work());\nwhile set.join_next().await.is_some() {}";
        let crate_split = "let mut set = JoinSet::new();\nset.spawn(work());\n\
                           while set.join_next().__rm_interruptible().await?.is_some() {}\n";
        assert_eq!(cell_line_of(split, crate_split, 2), Some(1));
        assert_eq!(cell_line_of(split, crate_split, 3), Some(2));
        let code = "let x = 1;\ntokio::spawn(work()).await;\nlet y = 2;";
        let generated = "fn a() {}\n\n\n\n\n\n\n\n\n\nlet x = 1;\n\
                         tokio::spawn(work()).__rm_interruptible().await?;\nlet y = 2;\n";
        let lines: Vec<_> = [12, 13, 3, 0, 99]
            .into_iter()
            .map(|l| cell_line_of(code, generated, l))
            .collect();
        assert_eq!(lines, vec![Some(2), Some(3), None, None, None]);
    }
}
