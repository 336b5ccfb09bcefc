//! Path rewriting in text: one pass over several prefixes, used to normalize keys
//! (per-kernel folders → placeholders) and to move a stored entry's dep-info and stderr
//! to the current build's folders. Pure; no I/O.

/// Replaces several prefixes in one pass, longest first, so a replacement is never
/// itself rewritten.
#[derive(Debug, Clone)]
pub struct Replacer {
    pairs: Vec<(String, String)>,
}

impl Replacer {
    pub fn new(mut pairs: Vec<(String, String)>) -> Replacer {
        pairs.retain(|(from, _)| !from.is_empty());
        pairs.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        Replacer { pairs }
    }

    pub fn apply(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        'scan: while !rest.is_empty() {
            for (from, to) in &self.pairs {
                if let Some(after) = rest.strip_prefix(from.as_str()) {
                    out.push_str(to);
                    rest = after;
                    continue 'scan;
                }
            }
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacer_prefers_longest_and_does_not_recurse() {
        let r = Replacer::new(vec![
            ("/a".into(), "/a/b".into()),
            ("/a/b/c".into(), "X".into()),
        ]);
        assert_eq!(r.apply("/a/b/c/d /a/e"), "X/d /a/b/e");
    }
}
