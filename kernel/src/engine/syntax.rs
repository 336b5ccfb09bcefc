//! Lexical questions about a cell's text that need no compiler: is it complete, and where
//! is a cursor in bytes. Pure functions, no evcxr.
//!
//! `is_complete` works on tokens that matter for balance — brackets, strings, chars,
//! comments — which is what a console needs to decide between "run" and "newline".

/// Answer to "is this code ready to run?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completeness {
    Complete,
    /// More input is expected; the indent to offer on the next line.
    Incomplete(String),
    /// Can never become valid by adding text (e.g. a closing bracket with no opener).
    Invalid,
}

const INDENT: &str = "    ";

pub fn is_complete(code: &str) -> Completeness {
    let mut stack: Vec<char> = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if next == Some('*') => {
                let mut depth = 1;
                i += 2;
                while i < chars.len() && depth > 0 {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 1;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 1;
                    }
                    i += 1;
                }
                if depth > 0 {
                    return Completeness::Incomplete(indent_for(stack.len()));
                }
                continue;
            }
            'r' | 'b' | 'c' if is_raw_string_start(&chars, i) => {
                match skip_raw_string(&chars, i) {
                    Some(end) => i = end,
                    None => return Completeness::Incomplete(String::new()),
                }
                continue;
            }
            '"' => {
                match skip_string(&chars, i + 1) {
                    Some(end) => i = end,
                    None => return Completeness::Incomplete(String::new()),
                }
                continue;
            }
            '\'' => {
                i = skip_char_or_lifetime(&chars, i);
                continue;
            }
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let expected = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(expected) {
                    return Completeness::Invalid;
                }
            }
            _ => {}
        }
        i += 1;
    }
    if !stack.is_empty() {
        return Completeness::Incomplete(indent_for(stack.len()));
    }
    if ends_with_continuation(code) {
        return Completeness::Incomplete(INDENT.to_string());
    }
    if !parses_as_cell(code) {
        return Completeness::Invalid;
    }
    Completeness::Complete
}

/// Balanced code that still does not parse (`let = 5;`): running it can only fail, so a
/// console runs it at once to show the error instead of asking for more lines. Parsed as
/// a function body, as evcxr wraps a cell, with `:` command lines blanked.
fn parses_as_cell(code: &str) -> bool {
    use ra_ap_syntax::{Edition, SourceFile};
    let wrapped = format!(
        "fn __rm_cell() {{\n{}\n}}",
        super::awaits::mask_commands(code)
    );
    SourceFile::parse(&wrapped, Edition::CURRENT)
        .errors()
        .is_empty()
}

fn indent_for(depth: usize) -> String {
    INDENT.repeat(depth)
}

/// A trailing binary operator, `=` or `,` (outside brackets) asks for another line.
fn ends_with_continuation(code: &str) -> bool {
    let last_line = code
        .lines()
        .rev()
        .map(|l| l.split("//").next().unwrap_or("").trim_end())
        .find(|l| !l.is_empty());
    let Some(line) = last_line else { return false };
    if line.starts_with(':') || line.starts_with('!') {
        return false;
    }
    [
        "=", "+", "-", "*", "/", "&&", "||", ",", ".", "->", "=>", "|", "&",
    ]
    .iter()
    .any(|op| line.ends_with(op))
        && !line.ends_with("..")
}

fn is_raw_string_start(chars: &[char], i: usize) -> bool {
    // r"..", r#".."#, br"..", cr".." — and not part of an identifier like `for`.
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return false;
    }
    let mut j = i;
    if chars[j] == 'b' || chars[j] == 'c' {
        j += 1;
        if chars.get(j) != Some(&'r') {
            return false;
        }
    }
    if chars.get(j) != Some(&'r') {
        return false;
    }
    j += 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    chars.get(j) == Some(&'"')
}

fn skip_raw_string(chars: &[char], start: usize) -> Option<usize> {
    let mut j = start;
    while chars[j] != 'r' {
        j += 1;
    }
    j += 1;
    let mut hashes = 0;
    while chars[j] == '#' {
        hashes += 1;
        j += 1;
    }
    j += 1; // opening quote
    while j < chars.len() {
        if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    None
}

fn skip_string(chars: &[char], mut j: usize) -> Option<usize> {
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 2,
            '"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

fn skip_char_or_lifetime(chars: &[char], i: usize) -> usize {
    // 'a' / '\n' / '\u{..}' are chars; 'a (no closing quote soon) is a lifetime.
    if chars.get(i + 1) == Some(&'\\') {
        let mut j = i + 2;
        while j < chars.len() && chars[j] != '\'' && j < i + 12 {
            j += 1;
        }
        return j + 1;
    }
    if chars.get(i + 2) == Some(&'\'') {
        return i + 3;
    }
    i + 1
}

/// Whether the cell ends in an expression whose value evcxr shows (no trailing `;`).
pub fn has_final_expression(code: &str) -> bool {
    let last = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or("").trim())
        .rfind(|l| !l.is_empty() && !l.starts_with(':'));
    last.is_some_and(|l| !l.ends_with(';'))
}

/// Converts a cursor position in Unicode code points (what Jupyter clients send) into a
/// byte offset into `code`, clamped to the end.
pub fn code_point_to_byte(code: &str, cursor: usize) -> usize {
    code.char_indices()
        .nth(cursor)
        .map_or(code.len(), |(byte, _)| byte)
}

/// Converts a byte offset into code points; an offset inside a character counts that
/// character as before it.
pub fn byte_to_code_point(code: &str, byte: usize) -> usize {
    code.char_indices().take_while(|(b, _)| *b < byte).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incomplete(code: &str) -> bool {
        matches!(is_complete(code), Completeness::Incomplete(_))
    }

    #[test]
    fn complete_code() {
        for code in [
            "1",
            "let x = 1;",
            "fn f() {}",
            "let s = \"}\";",
            "let c = '{';",
            "fn f<'a>(x: &'a str) -> &'a str { x }",
            "let r = r#\"{\"#;",
            "// {",
            ":dep tokio",
            "0..",
            "a.b()",
            "6 * 7",
            "struct P { x: i32 }\nlet p = P { x: 1 };\np.x",
            "#[derive(Debug)]\nstruct Q;",
            ":dep itoa = \"1\"\nitoa::Buffer::new().format(1u8).len()",
            "let v: Vec<u8> = Vec::new();\nv",
        ] {
            assert_eq!(is_complete(code), Completeness::Complete, "{code}");
        }
    }

    #[test]
    fn incomplete_code() {
        for code in [
            "fn f() {",
            "let v = vec![1,",
            "if x {",
            "let s = \"abc",
            "/* open",
            "let x = 1 +",
            "let r = r#\"abc",
        ] {
            assert!(incomplete(code), "{code}");
        }
        assert_eq!(
            is_complete("fn f() {\n  if x {"),
            Completeness::Incomplete("        ".into())
        );
    }

    #[test]
    fn invalid_code() {
        for code in ["let x = );", "}", "fn f() { ]", "let = 5;", "fn 3x() {}"] {
            assert_eq!(is_complete(code), Completeness::Invalid, "{code}");
        }
    }

    #[test]
    fn final_expressions() {
        assert!(has_final_expression("let x = 1;\nx"));
        assert!(has_final_expression("if a { 1 } else { 2 }"));
        assert!(!has_final_expression("println!(\"x\");"));
        assert!(!has_final_expression("let x = 1; // done"));
        assert!(!has_final_expression(":dep foo"));
    }

    #[test]
    fn cursor_conversions_round_trip() {
        let code = "let é = \"日本\"; x";
        for cp in 0..=code.chars().count() {
            let b = code_point_to_byte(code, cp);
            assert!(code.is_char_boundary(b));
            assert_eq!(byte_to_code_point(code, b), cp);
        }
        assert_eq!(code_point_to_byte(code, 999), code.len());
    }
}
