//! The shared tokio runtime in every cell's telemetry: tasks alive, spawned and at their
//! peak, the blocking pool, the workers' busy share, the longest poll and the polls that
//! held a worker (stalls, with the cell line of their `spawn`). Real kernels over real
//! ZeroMQ sockets; the figures come from tokio's own hooks in the user-code process.

mod support;

use serde_json::Value;
use support::{Executed, TestKernel};

const DECLARE: &str = ":dep tokio = { version = \"1\", features = [\"full\"] }";

fn runtime(r: &Executed) -> &Value {
    let rt = &r.telemetry()["runtime"];
    assert!(rt.is_object(), "a runtime object: {}", r.telemetry());
    rt
}

fn n(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("runtime has no number {key}: {v}"))
}

async fn declared() -> TestKernel {
    let mut k = TestKernel::start().await;
    let r = k.execute("let before = 1;").await;
    assert_eq!(r.status(), "ok", "{r:?}");
    assert!(
        r.telemetry().get("runtime").is_none(),
        "no runtime before tokio is declared: {}",
        r.telemetry()
    );
    let r = k.execute(DECLARE).await;
    assert_eq!(r.status(), "ok", "{r:?}");
    k
}

#[tokio::test(flavor = "multi_thread")]
async fn a_joinset_of_sleeping_tasks_is_counted_and_adds_no_threads() {
    let mut k = declared().await;
    let r = k
        .execute(
            "let mut set = tokio::task::JoinSet::new();\n\
             for _ in 0..2000 {\n    set.spawn(tokio::time::sleep(std::time::Duration::from_millis(50)));\n}\n\
             while set.join_next().await.is_some() {}",
        )
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let rt = runtime(&r);
    assert!(n(rt, "tasks_peak") >= 2000.0, "{rt}");
    assert!(n(rt, "tasks_spawned") >= 2000.0, "{rt}");
    assert_eq!(n(rt, "tasks_end"), n(rt, "tasks_start"), "{rt}");
    assert_eq!(rt["stalls"].as_array().map(Vec::len), Some(0), "{rt}");
    assert_eq!(rt["started_in_cell"], false, "{rt}");
    assert_eq!(
        r.num("threads_peak"),
        r.num("threads_start"),
        "tasks are not threads: {}",
        r.telemetry()
    );
    // The series follows tasks alive (a run long enough for several samples).
    let r = k
        .execute(
            "let mut set = tokio::task::JoinSet::new();\n\
             for _ in 0..500 {\n    set.spawn(tokio::time::sleep(std::time::Duration::from_millis(400)));\n}\n\
             while set.join_next().await.is_some() {}",
        )
        .await;
    let rt = runtime(&r);
    let samples = r.telemetry()["samples"].as_array().unwrap();
    assert!(
        samples
            .iter()
            .any(|s| s["tasks"].as_f64().unwrap_or(0.0) > 100.0),
        "the series has tasks alive: {samples:?}"
    );
    // The footer's text, HTML and JSON say the same.
    let (text, html, json) = footer(&r);
    let peak = n(&json["runtime"], "tasks_peak") as u64;
    let peak_words = if peak >= 1000 {
        format!("{},{:03}", peak / 1000, peak % 1000)
    } else {
        peak.to_string()
    };
    assert!(
        text.contains(&format!(
            "tasks 0 ▸ {} max ▸ 0 on {} workers",
            peak_words,
            n(rt, "workers")
        )),
        "{text}"
    );
    assert!(text.contains("(runtime: "), "{text}");
    assert!(
        html.contains(&peak_words) && html.contains("tasks alive"),
        "{html}"
    );

    // From code, the shipped crate reads the same figures.
    let r = k
        .execute(":label tasks\nlet mut set = tokio::task::JoinSet::new();\nfor _ in 0..100 { set.spawn(async {}); }\nwhile set.join_next().await.is_some() {}")
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = k
        .execute("let t = rustmeter::last().unwrap();\n(t.tasks_spawned(), t.tasks_peak() >= 1, t.stalls().len(), t.longest_poll_ms() < 100.0)")
        .await;
    assert_eq!(
        r.result_text().as_deref(),
        Some("(100, true, 0, true)"),
        "{r:?}"
    );
    let r = k
        .execute(":label threads\nstd::thread::spawn(|| 1).join().unwrap();")
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = k.execute(":compare tasks threads").await;
    let table = r.of_type("display_data")[0];
    let text = table.content["data"]["text/plain"].as_str().unwrap();
    assert!(
        text.contains("tasks max") && text.contains("stalls"),
        "{text}"
    );
}

/// The final footer: its text, HTML and JSON.
fn footer(r: &Executed) -> (String, String, Value) {
    let last = r
        .outputs
        .iter()
        .rev()
        .find(|o| o.msg_type == "display_data")
        .expect("a footer");
    let data = &last.content["data"];
    (
        data["text/plain"].as_str().unwrap_or("").to_string(),
        data["text/html"].as_str().unwrap_or("").to_string(),
        data["application/vnd.rustmeter.telemetry+json"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocking_sleep_inside_a_task_is_a_stall_at_the_spawn_line() {
    let mut k = declared().await;
    for spawn in [
        "tokio::spawn",
        "tokio::task::spawn",
        "tokio::task::JoinSet::new().spawn",
    ] {
        let code = if spawn.contains("JoinSet") {
            "let mut set = tokio::task::JoinSet::new();\n\
             set.spawn(async { std::thread::sleep(std::time::Duration::from_millis(800)) });\n\
             set.join_next().await;"
                .to_string()
        } else {
            format!(
                "let x = 1;\n{spawn}(async {{ std::thread::sleep(std::time::Duration::from_millis(800)) }}).await.unwrap();"
            )
        };
        let r = k.execute(&code).await;
        assert_eq!(r.status(), "ok", "{spawn}: {r:?}");
        let rt = runtime(&r);
        let stalls = rt["stalls"].as_array().unwrap();
        assert_eq!(stalls.len(), 1, "{spawn}: {rt}");
        let ms = n(&stalls[0], "duration_ms");
        assert!((700.0..=1000.0).contains(&ms), "{spawn}: {rt}");
        assert_eq!(stalls[0]["spawned_at_line"], 2, "{spawn}: {rt}");
        let (text, _, _) = footer(&r);
        assert!(
            text.contains("⚠ a task held a worker for 0.") && text.contains("(spawned at line 2)"),
            "{text}"
        );
    }
    let r = k
        .execute("let s = rustmeter::last().unwrap().stalls();\n(s.len(), s[0].spawned_at_line, s[0].duration_ms >= 700.0)")
        .await;
    assert_eq!(
        r.result_text().as_deref(),
        Some("(1, Some(2), true)"),
        "{r:?}"
    );
    let r = k
        .execute("tokio::spawn(async { tokio::time::sleep(std::time::Duration::from_millis(800)).await }).await.unwrap();")
        .await;
    let rt = runtime(&r);
    assert_eq!(rt["stalls"].as_array().map(Vec::len), Some(0), "{rt}");
    assert!(n(rt, "longest_poll_ms") < 50.0, "{rt}");
}

#[tokio::test(flavor = "multi_thread")]
async fn spawn_blocking_uses_the_blocking_pool_without_stalls() {
    let mut k = declared().await;
    let r = k
        .execute(
            "let handles: Vec<_> = (0..8).map(|_| tokio::task::spawn_blocking(|| std::thread::sleep(std::time::Duration::from_millis(300)))).collect();\n\
             for h in handles { h.await.unwrap(); }",
        )
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let rt = runtime(&r);
    assert!(n(rt, "blocking_threads_peak") >= 8.0, "{rt}");
    assert_eq!(n(rt, "blocking_tasks"), 8.0, "{rt}");
    assert_eq!(rt["stalls"].as_array().map(Vec::len), Some(0), "{rt}");
    let added = |r: &Executed| r.telemetry()["other_runtime_threads_started"].as_u64();
    assert_eq!(
        added(&r),
        None,
        "the shared pool's threads are not another runtime's"
    );

    // A runtime of the learner's own: its workers are named under the cell that built it,
    // and only there; after it is dropped, a new one is named again.
    const OWN: &str =
        "let own = tokio::runtime::Builder::new_multi_thread().worker_threads(3).build().unwrap();";
    let r = k.execute(OWN).await;
    assert_eq!(r.status(), "ok", "{r:?}");
    assert_eq!(added(&r), Some(3), "{}", r.telemetry());
    let (text, html, json) = footer(&r);
    let says = "runtime started: +3 tokio threads (not the shared one)";
    assert!(text.contains(says) && html.contains(says), "{text}\n{html}");
    assert_eq!(json["other_runtime_threads_started"], 3);
    let r = k.execute("own.block_on(async { 1 + 1 })").await;
    assert_eq!(r.result_text().as_deref(), Some("2"), "{r:?}");
    assert_eq!(added(&r), None, "{}", r.telemetry());
    let r = k.execute("drop(own);").await;
    assert_eq!(added(&r), None, "{}", r.telemetry());
    let r = k.execute(OWN).await;
    assert_eq!(added(&r), Some(3), "{}", r.telemetry());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cpu_loop_in_a_task_stalls_a_busy_worker() {
    let mut k = TestKernel::start_with_env(&[("TOKIO_WORKER_THREADS", "2")]).await;
    let r = k.execute(DECLARE).await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let rt = runtime(&r);
    assert_eq!(
        rt["started_in_cell"], true,
        "the declaration starts it: {rt}"
    );
    assert_eq!(n(rt, "workers"), 2.0, "{rt}");
    assert!(
        r.telemetry().get("other_runtime_threads_started").is_none(),
        "the shared runtime's start is not another runtime's: {}",
        r.telemetry()
    );
    let r = k
        .execute(
            "tokio::spawn(async {\n    let t = std::time::Instant::now();\n    let mut x = 0u64;\n    \
             while t.elapsed() < std::time::Duration::from_secs(1) { x = x.wrapping_add(1); }\n    \
             std::hint::black_box(x);\n}).await.unwrap();",
        )
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let rt = runtime(&r);
    let stalls = rt["stalls"].as_array().unwrap();
    assert_eq!(stalls.len(), 1, "{rt}");
    assert!(n(&stalls[0], "duration_ms") >= 900.0, "{rt}");
    assert!(n(rt, "workers_busy") >= 0.4, "{rt}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_shared_deps_there_is_no_runtime_object_and_no_error() {
    let mut k = TestKernel::start_with_env(&[("RUSTMETER_SHARED_DEPS", "0")]).await;
    let r = k.execute(DECLARE).await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = k
        .execute("tokio::runtime::Runtime::new().unwrap().block_on(async { tokio::spawn(async { 2 }).await.unwrap() })")
        .await;
    assert_eq!(r.result_text().as_deref(), Some("2"), "{r:?}");
    assert!(r.telemetry().get("runtime").is_none(), "{}", r.telemetry());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stall_threshold_is_a_setting() {
    let mut k = TestKernel::start_with_env(&[("RUSTMETER_STALL_MS", "2000")]).await;
    assert_eq!(k.execute(DECLARE).await.status(), "ok");
    let r = k
        .execute("tokio::spawn(async { std::thread::sleep(std::time::Duration::from_millis(800)) }).await.unwrap();")
        .await;
    let rt = runtime(&r);
    assert_eq!(n(rt, "stall_threshold_ms"), 2000.0, "{rt}");
    assert_eq!(rt["stalls"].as_array().map(Vec::len), Some(0), "{rt}");
    assert!(n(rt, "longest_poll_ms") >= 700.0, "{rt}");
}

#[tokio::test(flavor = "multi_thread")]
async fn repeat_runs_a_cell_n_times_and_gives_the_median_and_range() {
    let mut k = declared().await;
    let r = k
        .execute(":repeat 5\nstd::thread::sleep(std::time::Duration::from_millis(100));")
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let repeat = &r.telemetry()["repeat"];
    let runs = repeat["runs"].as_array().expect("each run listed");
    assert_eq!(runs.len(), 5, "{repeat}");
    for run in runs {
        let ms = run["run_ms"].as_f64().unwrap();
        assert!((95.0..1000.0).contains(&ms), "each run slept 100 ms: {run}");
    }
    let median = n(&repeat["run_ms"], "median");
    let (min, max) = (n(&repeat["run_ms"], "min"), n(&repeat["run_ms"], "max"));
    assert!((90.0..=150.0).contains(&median), "{repeat}");
    assert!(min <= median && median <= max, "{repeat}");
    assert_eq!(r.num("run_ms"), median, "the headline is the median");
    let (text, html, json) = footer(&r);
    assert!(
        text.contains("median of 5 runs") && text.contains("range "),
        "{text}"
    );
    assert!(html.contains("median of 5 runs"), "{html}");
    assert_eq!(json["repeat"], *repeat);

    // Tasks are measured in every run, each from where the last one ended.
    let r = k
        .execute(
            ":repeat 3\n\
             let mut set = tokio::task::JoinSet::new();\n\
             for _ in 0..100 {\n    set.spawn(tokio::time::sleep(std::time::Duration::from_millis(60)));\n}\n\
             while set.join_next().await.is_some() {}",
        )
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let runs = r.telemetry()["repeat"]["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 3);
    for run in &runs {
        assert!(run["tasks_peak"].as_f64().unwrap() >= 100.0, "{run}");
        assert_eq!(run["tasks_spawned"].as_f64(), Some(100.0), "{run}");
    }

    // The code really runs each time, and its variables are the last run's.
    assert_eq!(k.execute("let mut count = 0u32;").await.status(), "ok");
    let r = k.execute(":repeat 4\ncount += 1;\nlet seen = count;").await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = k.execute("(count, seen)").await;
    assert_eq!(r.result_text().as_deref(), Some("(4, 4)"), "{r:?}");

    // A run that fails stops the rest and says where.
    let r = k
        .execute(":repeat 5\ncount += 1;\nif count == 6 { panic!(\"run two\") }")
        .await;
    assert_eq!(r.status(), "error", "{r:?}");
    // A failed cell's footer is the last line of its one error.
    let text = r.last_traceback_line();
    assert!(text.contains("failed at run 2 of 5"), "{text}");
    assert_eq!(
        r.telemetry()["repeat"]["runs"].as_array().map(Vec::len),
        Some(2)
    );

    // Alone, or with a count out of range: a clear error, nothing runs.
    let r = k.execute(":repeat 3").await;
    assert_eq!(r.status(), "error");
    assert!(r.last_traceback_line().contains("first line"), "{r:?}");
    let r = k.execute(":repeat 0\n1").await;
    assert!(r.last_traceback_line().contains("from 1 to 100"), "{r:?}");
}
