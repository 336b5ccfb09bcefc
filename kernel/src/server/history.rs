//! This session's input history, for `history_request` (tail, range, search with glob
//! patterns and `unique`). In memory; session number 1 is this kernel's session.

use jupyter_protocol::{HistoryEntry, HistoryRequest};

pub const SESSION: usize = 1;

#[derive(Default)]
pub struct History {
    /// (execution_count, code, plain-text output)
    cells: Vec<(usize, String, String)>,
}

impl History {
    pub fn record(&mut self, count: usize, code: &str) {
        self.cells.push((count, code.to_string(), String::new()));
    }

    pub fn set_output(&mut self, count: usize, output: &str) {
        if let Some(cell) = self.cells.iter_mut().rev().find(|c| c.0 == count) {
            cell.2 = output.to_string();
        }
    }

    pub fn answer(&self, request: &HistoryRequest) -> Vec<HistoryEntry> {
        match request {
            HistoryRequest::Tail { n, output, .. } => {
                let n = (*n).max(0) as usize;
                let skip = self.cells.len().saturating_sub(n);
                self.entries(self.cells.iter().skip(skip), *output)
            }
            HistoryRequest::Range {
                start,
                stop,
                output,
                ..
            } => {
                let (start, stop) = (*start as i64, *stop as i64);
                self.entries(
                    self.cells
                        .iter()
                        .filter(|c| (c.0 as i64) >= start && (c.0 as i64) < stop),
                    *output,
                )
            }
            HistoryRequest::Search {
                pattern,
                unique,
                output,
                n,
                ..
            } => {
                let mut hits: Vec<&(usize, String, String)> = self
                    .cells
                    .iter()
                    .filter(|c| glob_match(pattern, &c.1))
                    .collect();
                if *unique {
                    let mut seen = std::collections::HashSet::new();
                    // Keep the most recent of each input.
                    hits = hits
                        .into_iter()
                        .rev()
                        .filter(|c| seen.insert(c.1.clone()))
                        .collect();
                    hits.reverse();
                }
                if *n > 0 {
                    let skip = hits.len().saturating_sub(*n as usize);
                    hits = hits.into_iter().skip(skip).collect();
                }
                self.entries(hits.into_iter(), *output)
            }
        }
    }

    fn entries<'a>(
        &self,
        cells: impl Iterator<Item = &'a (usize, String, String)>,
        output: bool,
    ) -> Vec<HistoryEntry> {
        cells
            .map(|(count, code, out)| {
                if output {
                    HistoryEntry::InputOutput(SESSION, *count, (code.clone(), out.clone()))
                } else {
                    HistoryEntry::Input(SESSION, *count, code.clone())
                }
            })
            .collect()
    }
}

/// Glob match as IPython's history search: `*` any run, `?` one character; the pattern
/// must match the whole input.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        // A `*` in the pattern is always the wildcard, also where the text has a `*`.
        if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("1?2*", "1+2 + 5"));
        assert!(glob_match("*", ""));
        assert!(glob_match("let *", "let x = 1;"));
        assert!(!glob_match("let", "let x"));
        assert!(glob_match("*x*", "let x = 1;"));
        // Patterns with wildcards over inputs that hold the same characters.
        assert!(glob_match("6 *", "6 * 7"));
        assert!(glob_match("*repeat*", "\"ab\".repeat(3)"));
        assert!(glob_match("?a*", "ba * 2"));
        assert!(glob_match("*?", "?"));
        assert!(glob_match("a*b?c", "a**b?c"));
        assert!(!glob_match("6 *", "7 * 6"));
        assert!(!glob_match("?a*", "a"));
    }

    #[test]
    fn tail_range_search() {
        let mut h = History::default();
        for (i, code) in ["a", "b", "a", "c"].iter().enumerate() {
            h.record(i + 1, code);
        }
        let tail = h.answer(&HistoryRequest::Tail {
            n: 2,
            output: false,
            raw: true,
        });
        assert_eq!(tail.len(), 2);
        let range = h.answer(&HistoryRequest::Range {
            session: Some(0),
            start: 2,
            stop: 4,
            output: false,
            raw: true,
        });
        assert_eq!(range.len(), 2);
        let search = h.answer(&HistoryRequest::Search {
            pattern: "a".into(),
            unique: true,
            output: false,
            raw: true,
            n: 0,
        });
        assert_eq!(search.len(), 1);
        match &search[0] {
            HistoryEntry::Input(_, count, _) => assert_eq!(*count, 3),
            _ => panic!(),
        }
    }
}
