//! The shared dependency cache, end to end through real kernels: concurrent kernels
//! publishing the same crate, a later kernel hitting it, a corrupt entry rebuilt; and
//! the key's normalization. Hits are judged by the tier's hit record (`hits.log`).

mod support;

use rustmeter_kernel::depcache::key::{Invocation, Roots};
use std::path::{Path, PathBuf};
use support::{TempDir, TestKernel};

const CELL: &str = ":dep itoa = \"1\"\nitoa::Buffer::new().format(4242u32).to_string()";

fn fresh_cache(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!(
        "rustmeter-depcache-{name}-{}",
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// Each kernel's work folder is `<cache>/runtime/kernel-<pid>` (for its build events).
async fn kernel(cache: &Path) -> TestKernel {
    let runtime = cache.join("runtime");
    TestKernel::start_with_env(&[
        ("RUSTMETER_RUNTIME_DIR", runtime.to_str().unwrap()),
        ("RUSTMETER_CACHE_DIR", cache.to_str().unwrap()),
        ("RUSTMETER_SHARED_CACHE", ""),
        ("RUSTMETER_DEP_CACHE", "1"),
    ])
    .await
}

/// Runs the itoa cell and checks its result; returns the compile CPU time (ms).
async fn run_itoa(k: &mut TestKernel) -> f64 {
    let r = k.execute(CELL).await;
    assert_eq!(r.status(), "ok", "{r:?}");
    assert_eq!(r.result_text().as_deref(), Some("\"4242\""), "{r:?}");
    r.telemetry()["compile_cpu_ms"].as_f64().unwrap_or(f64::NAN)
}

/// `(crate, outcome)` of every hit-record line.
fn record(cache: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(cache.join("deps").join("hits.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[1].to_string(), f[3].to_string())
        })
        .collect()
}

fn count(record: &[(String, String)], krate: &str, outcome: &str) -> usize {
    record
        .iter()
        .filter(|(c, o)| c == krate && o == outcome)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_kernels_publish_once_and_a_third_kernel_hits() {
    let cache = fresh_cache("concurrent");
    let (mut a, mut b) = tokio::join!(kernel(&cache.0), kernel(&cache.0));
    let (cpu_a, cpu_b) = tokio::join!(run_itoa(&mut a), run_itoa(&mut b));
    let first = record(&cache.0);
    assert!(count(&first, "itoa", "miss") >= 1, "{first:?}");
    assert_eq!(
        count(&first, "itoa", "stored"),
        1,
        "exactly one entry wins: {first:?}"
    );
    assert_eq!(count(&first, "itoa", "corrupt"), 0, "{first:?}");
    a.shutdown(false).await;
    b.shutdown(false).await;

    let mut c = kernel(&cache.0).await;
    let cpu_c = run_itoa(&mut c).await;
    let after = record(&cache.0);
    let third: Vec<_> = after[first.len()..].to_vec();
    assert_eq!(count(&third, "itoa", "hit"), 1, "{after:?}");
    assert_eq!(count(&third, "itoa", "miss"), 0, "{after:?}");
    println!("compile CPU ms: concurrent {cpu_a:.0} / {cpu_b:.0}, cached {cpu_c:.0}");
    c.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_entry_is_rebuilt_not_a_failure() {
    let cache = fresh_cache("corrupt");
    let mut k = kernel(&cache.0).await;
    run_itoa(&mut k).await;
    k.shutdown(false).await;
    assert_eq!(
        count(&record(&cache.0), "itoa", "stored"),
        1,
        "{:?}",
        record(&cache.0)
    );

    // Flip a byte in the middle of every stored itoa rlib.
    let mut flipped = 0;
    for entry in std::fs::read_dir(cache.0.join("deps").join("entries")).unwrap() {
        let files = entry.unwrap().path().join("files");
        for file in std::fs::read_dir(files).unwrap() {
            let path: PathBuf = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("libitoa") && name.ends_with(".rlib") {
                let mut bytes = std::fs::read(&path).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xff;
                std::fs::write(&path, bytes).unwrap();
                flipped += 1;
            }
        }
    }
    assert_eq!(flipped, 1);

    let before = record(&cache.0).len();
    let mut k = kernel(&cache.0).await;
    run_itoa(&mut k).await;
    k.shutdown(false).await;
    let after = record(&cache.0)[before..].to_vec();
    assert_eq!(count(&after, "itoa", "corrupt"), 1, "{after:?}");
    assert_eq!(
        count(&after, "itoa", "miss"),
        1,
        "rebuilt by rustc: {after:?}"
    );
    assert_eq!(
        count(&after, "itoa", "stored"),
        1,
        "and stored again: {after:?}"
    );

    let before = record(&cache.0).len();
    let mut k = kernel(&cache.0).await;
    run_itoa(&mut k).await;
    // Progress events for the kernel's own compiles, in its work folder.
    let events_file = cache
        .0
        .join(format!("runtime/kernel-{}/build-events.log", k.pid()));
    let events = std::fs::read_to_string(&events_file).unwrap_or_default();
    k.shutdown(false).await;
    let after = record(&cache.0)[before..].to_vec();
    assert_eq!(count(&after, "itoa", "hit"), 1, "{after:?}");
    assert!(
        events.lines().any(|l| l.starts_with("start itoa ")),
        "{events}"
    );
    assert!(
        events.lines().any(|l| l.starts_with("end itoa hit ")),
        "{events}"
    );
    assert!(
        events.lines().any(|l| l.starts_with("end ctx pass ")),
        "the cell crate: {events}"
    );
}

// ---- key normalization (the real key function, over a real source file)

struct KeyFixture {
    _dir: TempDir,
    roots: Roots,
    source: String,
}

fn key_fixture() -> KeyFixture {
    let dir = fresh_cache("key");
    let cargo_home = dir.0.join("cargo");
    let src = cargo_home.join("registry/src/index.crates.io-1949cf8c6b5b557f/itoa-1.0.19/src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("lib.rs"), "pub fn f() {}\n").unwrap();
    KeyFixture {
        roots: Roots {
            cargo_home,
            shims: dir.0.join("shims"),
        },
        source: src.join("lib.rs").to_string_lossy().into_owned(),
        _dir: dir,
    }
}

fn args(fx: &KeyFixture, target: &str, opt: &str, features: &[&str]) -> Vec<String> {
    let deps = format!("{target}/x86_64-unknown-linux-gnu/debug/deps");
    let mut a: Vec<String> = vec![
        "rustc".into(),
        "--crate-name".into(),
        "itoa".into(),
        "--edition=2021".into(),
        fx.source.clone(),
        "--crate-type".into(),
        "lib".into(),
        "-C".into(),
        format!("opt-level={opt}"),
        "-C".into(),
        "metadata=6c7a07f71d34eb09".into(),
        "--out-dir".into(),
        deps.clone(),
        "--target".into(),
        "x86_64-unknown-linux-gnu".into(),
        "-C".into(),
        format!("incremental={target}/x86_64-unknown-linux-gnu/debug/incremental"),
        "-L".into(),
        format!("dependency={deps}"),
        "-L".into(),
        format!("dependency={target}/debug/deps"),
        "--extern".into(),
        format!("core2={deps}/libcore2-0123456789abcdef.rlib"),
    ];
    for f in features {
        a.push("--cfg".into());
        a.push(format!("feature=\"{f}\""));
    }
    a
}

fn key(fx: &KeyFixture, args: &[String]) -> String {
    let env = vec![("CARGO_PKG_VERSION".to_string(), "1.0.19".to_string())];
    let inv = Invocation::parse(args, env).unwrap();
    assert!(inv.cacheable(&fx.roots));
    inv.key(&fx.roots, "rustc 1.95.0 (test)").unwrap()
}

/// A kernel's target folder holding the one dependency the fixture's crate links.
fn target_with_dep(fx: &KeyFixture, kernel: &str, dep_bytes: &[u8]) -> String {
    let target = fx.roots.shims.join(format!("../{kernel}/evcxr/target"));
    let deps = target.join("x86_64-unknown-linux-gnu/debug/deps");
    std::fs::create_dir_all(&deps).unwrap();
    std::fs::write(deps.join("libcore2-0123456789abcdef.rlib"), dep_bytes).unwrap();
    target.to_string_lossy().into_owned()
}

#[test]
fn key_ignores_kernel_paths_but_not_features_or_opt_level() {
    let fx = key_fixture();
    let k1 = target_with_dep(&fx, "kernel-1", b"dep");
    let k2 = target_with_dep(&fx, "kernel-424242", b"dep");
    let base = key(&fx, &args(&fx, &k1, "2", &["std"]));
    assert_eq!(base, key(&fx, &args(&fx, &k2, "2", &["std"])));
    assert_ne!(base, key(&fx, &args(&fx, &k1, "0", &["std"])));
    assert_ne!(base, key(&fx, &args(&fx, &k1, "2", &[])));
    assert_ne!(base, key(&fx, &args(&fx, &k1, "2", &["std", "i128"])));
    // A dependency rebuilt differently (another SVH) changes the key.
    let k3 = target_with_dep(&fx, "kernel-3", b"dep rebuilt elsewhere");
    assert_ne!(base, key(&fx, &args(&fx, &k3, "2", &["std"])));
}

#[test]
fn key_changes_with_the_compiler_and_build_script_output() {
    let fx = key_fixture();
    let target = target_with_dep(&fx, "kernel-1", b"dep");
    let a = args(&fx, &target, "2", &[]);
    let env = |out: &Path| {
        vec![
            ("CARGO_PKG_VERSION".to_string(), "1.0.19".to_string()),
            ("OUT_DIR".to_string(), out.to_string_lossy().into_owned()),
        ]
    };
    let out1 = fx.roots.shims.join("../out1");
    let out2 = fx.roots.shims.join("../out2");
    for out in [&out1, &out2] {
        std::fs::create_dir_all(out).unwrap();
        std::fs::write(out.join("gen.rs"), "const X: u8 = 1;").unwrap();
    }
    let with = |out: &Path, rustc: &str| {
        Invocation::parse(&a, env(out))
            .unwrap()
            .key(&fx.roots, rustc)
            .unwrap()
    };
    // Same generated contents in another folder: same key.
    assert_eq!(with(&out1, "rustc 1"), with(&out2, "rustc 1"));
    assert_ne!(with(&out1, "rustc 1"), with(&out1, "rustc 2"));
    std::fs::write(out2.join("gen.rs"), "const X: u8 = 2;").unwrap();
    assert_ne!(with(&out1, "rustc 1"), with(&out2, "rustc 1"));
}

// ---- measurement (minutes; run with `--ignored --nocapture`)

const TOKIO: &str = ":dep tokio = { version = \"1\", features = [\"full\"] }";

/// `(wall s, compile s, compile CPU s)` of a fresh kernel's `:dep tokio` cell.
async fn tokio_cell(env: &[(&str, &str)]) -> (f64, f64, f64) {
    let mut k = TestKernel::start_with_env(env).await;
    // Let evcxr's start-up compile finish so that it is not counted.
    assert_eq!(k.execute("1").await.status(), "ok");
    let r = k.execute(TOKIO).await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let r2 = k
        .execute("tokio::time::sleep(std::time::Duration::from_millis(1)).await; 7")
        .await;
    assert_eq!(r2.result_text().as_deref(), Some("7"), "{r2:?}");
    k.shutdown(false).await;
    let t = r.telemetry();
    (
        r.elapsed.as_secs_f64(),
        t["compile_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        t["compile_cpu_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0,
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement: compiles tokio from scratch, about a minute"]
async fn measure_dep_tokio_cold_warm_and_prewarmed() {
    let user = fresh_cache("tokio-user");
    let u = user.0.to_str().unwrap();
    let env = [("RUSTMETER_CACHE_DIR", u), ("RUSTMETER_SHARED_CACHE", "")];
    let cold = tokio_cell(&env).await;
    let warm = tokio_cell(&env).await;
    let rec = record(&user.0);
    assert!(count(&rec, "tokio", "hit") >= 1, "{rec:?}");
    println!(
        "cold  :dep tokio: wall {:.1} s, compile {:.1} s, compile CPU {:.1} s",
        cold.0, cold.1, cold.2
    );
    println!(
        "warm  :dep tokio: wall {:.1} s, compile {:.1} s, compile CPU {:.1} s",
        warm.0, warm.1, warm.2
    );

    // An admin fills a shared tier with `rustmeter prewarm --cache DIR`; a learner with an
    // empty cache of their own then reads it.
    let shared = fresh_cache("tokio-shared");
    let admin = fresh_cache("tokio-admin");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rustmeter"))
        .args(["prewarm", "--cache", shared.0.to_str().unwrap()])
        .env("RUSTMETER_CACHE_DIR", &admin.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("prewarm: {}", String::from_utf8_lossy(&out.stdout));
    let learner = fresh_cache("tokio-learner");
    let l = learner.0.to_str().unwrap();
    let s = shared.0.to_str().unwrap();
    let pre = tokio_cell(&[("RUSTMETER_CACHE_DIR", l), ("RUSTMETER_SHARED_CACHE", s)]).await;
    println!(
        "prewarmed shared tier :dep tokio: wall {:.1} s, compile {:.1} s, compile CPU {:.1} s",
        pre.0, pre.1, pre.2
    );
    let rec = std::fs::read_to_string(learner.0.join("deps/hits.log")).unwrap_or_default();
    println!("learner's hit record:\n{rec}");
    assert!(
        rec.lines()
            .any(|l| l.contains(" tokio ") && l.contains(" hit ") && l.contains(s)),
        "{rec}"
    );
}
