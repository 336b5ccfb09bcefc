//! Makes a cell's top-level `.await`s interruptible: `x.await` becomes
//! `x.__rm_interruptible().await?` (see the tokio shim's `__rustmeter` module), so an
//! interrupt ends an async cell at its next await through `?`, and evcxr keeps the
//! variables of earlier cells. Pure text rewriting on a real parse tree (rust-analyzer's
//! parser, which evcxr already uses); nothing here compiles or runs.
//!
//! Only awaits of the cell's own body are rewritten: inside an `async` block, an async
//! closure or fn, or any nested item, `?` would return from something else. Awaits inside
//! macro calls (`println!("{}", f.await)`, `tokio::select!`) are token trees to the
//! parser and stay as they are: those wait uninterruptibly, like blocking code.

use ra_ap_syntax::{ast, AstNode, Edition, SourceFile, SyntaxNode};

/// Put in front of the cell so it parses as a function body; its length is subtracted
/// from every offset.
const WRAP_OPEN: &str = "fn __rm_cell() {\n";
const WRAP_CLOSE: &str = "\n}";
/// Inserted before `.await`.
const METHOD: &str = ".__rm_interruptible()";

/// A line of the generated crate as the learner wrote it: the rewrite taken back out.
pub fn as_written(line: &str) -> String {
    line.replace(&format!("{METHOD}.await?"), ".await")
}

/// The cell with its top-level awaits made interruptible, or `None` when it has none.
pub fn make_interruptible(code: &str) -> Option<String> {
    if !code.contains("await") {
        return None;
    }
    let wrapped = format!("{WRAP_OPEN}{}{WRAP_CLOSE}", mask_commands(code));
    let file = SourceFile::parse(&wrapped, Edition::CURRENT).tree();
    let mut insertions: Vec<(usize, &str)> = Vec::new();
    for await_expr in file.syntax().descendants().filter_map(ast::AwaitExpr::cast) {
        if !is_top_level(await_expr.syntax()) {
            continue;
        }
        let (Some(dot), Some(keyword)) = (await_expr.dot_token(), await_expr.await_token()) else {
            continue;
        };
        let dot_at = usize::from(dot.text_range().start());
        let end = usize::from(keyword.text_range().end());
        if dot_at < WRAP_OPEN.len() || end > WRAP_OPEN.len() + code.len() {
            continue;
        }
        insertions.push((dot_at - WRAP_OPEN.len(), METHOD));
        insertions.push((end - WRAP_OPEN.len(), "?"));
    }
    if insertions.is_empty() {
        return None;
    }
    // From the end backwards, so earlier offsets stay valid.
    insertions.sort_by_key(|insertion| std::cmp::Reverse(insertion.0));
    let mut out = code.to_string();
    for (at, text) in insertions {
        out.insert_str(at, text);
    }
    Some(out)
}

/// True when the await belongs to the cell's body itself.
fn is_top_level(node: &SyntaxNode) -> bool {
    for ancestor in node.ancestors().skip(1) {
        if ast::ClosureExpr::can_cast(ancestor.kind()) {
            return false;
        }
        if let Some(block) = ast::BlockExpr::cast(ancestor.clone()) {
            if block.async_token().is_some() || block.const_token().is_some() {
                return false;
            }
        }
        if ast::Item::can_cast(ancestor.kind()) {
            // The first enclosing item must be the wrapper function itself.
            return usize::from(ancestor.text_range().start()) == 0;
        }
    }
    false
}

/// evcxr `:` command lines left in the code are blanked for parsing (same byte length,
/// so offsets stay the same).
pub(super) fn mask_commands(code: &str) -> String {
    code.split('\n')
        .map(|line| {
            if line.trim_start().starts_with(':') {
                " ".repeat(line.len())
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::make_interruptible;

    #[test]
    fn top_level_awaits_are_rewritten() {
        assert_eq!(
            make_interruptible("let x = f(1).await;\nlet y = g().await?;").as_deref(),
            Some(
                "let x = f(1).__rm_interruptible().await?;\n\
                 let y = g().__rm_interruptible().await??;"
            )
        );
    }

    #[test]
    fn awaits_in_loops_and_final_expressions_are_rewritten() {
        let out =
            make_interruptible("for i in 0..3 {\n    sleep(d)\n        .await;\n}\nh().await")
                .unwrap();
        assert_eq!(
            out,
            "for i in 0..3 {\n    sleep(d)\n        .__rm_interruptible().await?;\n}\n\
             h().__rm_interruptible().await?"
        );
    }

    #[test]
    fn nested_async_code_is_left_alone() {
        for code in [
            "let t = tokio::spawn(async move { sleep(d).await; });",
            "async fn f() { g().await; }",
            "let c = async || { g().await };",
            "fn f() { let x = async { g().await }; }",
            "impl S { async fn m(&self) { g().await } }",
            "println!(\"{}\", g().await);",
            "let x = 1; // g().await",
        ] {
            assert_eq!(make_interruptible(code), None, "{code}");
        }
    }

    #[test]
    fn mixed_cells_rewrite_only_the_body() {
        let out = make_interruptible(
            ":dep foo = \"1\"\nlet h = tokio::spawn(async { a().await });\nh.await.unwrap();",
        )
        .unwrap();
        assert_eq!(
            out,
            ":dep foo = \"1\"\nlet h = tokio::spawn(async { a().await });\n\
             h.__rm_interruptible().await?.unwrap();"
        );
    }

    #[test]
    fn chained_awaits_each_get_their_own_check() {
        assert_eq!(
            make_interruptible("f().await.await;").as_deref(),
            Some("f().__rm_interruptible().await?.__rm_interruptible().await?;")
        );
    }

    #[test]
    fn no_await_means_no_rewrite() {
        assert_eq!(make_interruptible("let x = 1;"), None);
        assert_eq!(make_interruptible("let awaited = 1;"), None);
    }
}
