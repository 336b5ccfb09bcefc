//! Compile errors a beginner meets, rendered as the learner reads them: each cell in
//! `error_corpus/*.rs` runs in one real kernel, and its traceback (colours taken out) must
//! equal the reviewed `.txt` next to it and name nothing of the generated crate.
//!
//! After a deliberate change of the rendering, `RUSTMETER_BLESS=1 cargo test --test
//! error_corpus` rewrites the `.txt` files; review the diff before committing it.

mod support;

use std::path::{Path, PathBuf};
use support::TestKernel;

/// What the learner must never read: names of the crate evcxr generates and of
/// rustmeter's own plumbing.
const GENERATED_NAMES: [&str; 7] = [
    "src/lib.rs",
    "async block@",
    "closure@",
    "evcxr",
    "__rm",
    "__Rm",
    "rustmeter_tokio",
];

fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/error_corpus");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the corpus folder")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    cases.sort();
    cases
}

#[tokio::test(flavor = "multi_thread")]
async fn beginner_errors_render_in_the_learners_words() {
    let bless = std::env::var_os("RUSTMETER_BLESS").is_some_and(|v| v == "1");
    let mut k = TestKernel::start().await;
    let r = k
        .execute(":dep tokio = { version = \"1\", features = [\"full\"] }")
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let cases = cases();
    assert!(cases.len() >= 30, "the corpus has {} cells", cases.len());
    let mut differ = Vec::new();
    let mut renders = std::collections::BTreeMap::new();
    for case in cases {
        let code = std::fs::read_to_string(&case).expect("a corpus cell");
        let r = k.execute(code.trim_end()).await;
        assert_eq!(r.status(), "error", "{}: {r:?}", case.display());
        let traceback: Vec<String> = r.reply["traceback"]
            .as_array()
            .expect("a traceback")
            .iter()
            .map(|l| plain(l.as_str().unwrap_or("")))
            .collect();
        // The footer's last line carries the compile time, which differs run to run.
        let traceback: Vec<&str> = traceback
            .iter()
            .map(String::as_str)
            .filter(|l| !l.starts_with("✗ "))
            .collect();
        let rendered = format!("{}\n", traceback.join("\n").trim_end());
        for name in GENERATED_NAMES {
            assert!(
                !rendered.contains(name),
                "{} shows {name:?}:\n{rendered}",
                case.display()
            );
        }
        let name = case
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .to_string();
        renders.insert(name, rendered.clone());
        let golden = case.with_extension("txt");
        if bless {
            std::fs::write(&golden, &rendered).expect("write the golden file");
        } else if std::fs::read_to_string(&golden).ok().as_deref() != Some(rendered.as_str()) {
            differ.push(format!("{}:\n{rendered}", golden.display()));
        }
    }
    // rustc's notes that explain a `Send` error stay, at the cell's own lines.
    let send = &renders["13-future-not-send"];
    for expected in [
        "future cannot be sent between threads safely",
        "--> line 5:",
        "await occurs here, with `g` maybe used later",
        "--> line 4:",
        "which is not `Send`",
        "the `async` block on line 3",
    ] {
        assert!(send.contains(expected), "{expected:?} missing:\n{send}");
    }
    // A type evcxr cannot write when it keeps a variable: an error, and the way out.
    let kept = &renders["33-kept-variable-type-out-of-scope"];
    assert!(
        kept.starts_with("error: the cell did not compile, in the code that keeps its variables")
            && kept.contains("consider importing this trait")
            && kept.contains("wrap the work in a block"),
        "{kept}"
    );
    // A suggestion is the learner's line with the change made, not a stray fragment.
    assert!(renders["12-thread-closure-borrows"]
        .contains("   2 | std::thread::spawn(move || println!(\"{:?}\", v));"));
    assert!(renders["01-missing-semicolon-at-end"]
        .contains("   1 | let v: Vec<u64> = (1..=10).collect();"));
    assert!(
        differ.is_empty(),
        "renders changed (RUSTMETER_BLESS=1 rewrites them; review the diff):\n{}",
        differ.join("\n")
    );
}
