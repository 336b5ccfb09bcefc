//! Interrupts that keep state: an async cell is cancelled at its next `.await` in the
//! same child (earlier, non-reproducible values survive, so restart-and-replay cannot
//! pass); a blocking cell that checks `rustmeter::interrupted()` stops by itself; code
//! that does neither is killed after a grace period; `RUSTMETER_CELL_TIMEOUT` ends a
//! cell that runs too long. Real kernel, real ZeroMQ.

mod support;

use jupyter_protocol::ExecuteRequest;
use std::time::{Duration, Instant};
use support::{Output, TestKernel};

/// Reads iopub until the cell `id` printed `needle` (so its code is running).
async fn wait_for_stream(k: &mut TestKernel, id: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("the cell started in time");
        let m = tokio::time::timeout(left, k.iopub.read())
            .await
            .expect("iopub in time")
            .unwrap();
        if m.parent_header.as_ref().map(|h| h.msg_id.as_str()) != Some(id) {
            continue;
        }
        let content = serde_json::to_value(&m.content).unwrap();
        assert_ne!(
            content["execution_state"], "idle",
            "the cell ended before printing {needle:?}"
        );
        if m.header.msg_type == "stream" && content["text"].as_str().unwrap_or("").contains(needle)
        {
            return;
        }
        if m.header.msg_type == "error" {
            panic!("the cell failed before printing {needle:?}: {content}");
        }
    }
}

/// Starts `code`, waits until it prints `needle`, interrupts, and returns the outputs
/// up to idle and how long idle took after the interrupt.
async fn interrupt_when(k: &mut TestKernel, code: &str, needle: &str) -> (Vec<Output>, Duration) {
    let id = k.send_execute(ExecuteRequest::new(code.into())).await;
    wait_for_stream(k, &id, needle).await;
    let sent = Instant::now();
    assert_eq!(k.interrupt().await["status"], "ok");
    let outputs = k.collect_until_idle(&id, Duration::from_secs(30)).await;
    let took = sent.elapsed();
    let reply = k.read_shell_reply(Duration::from_secs(5)).await;
    assert_eq!(
        serde_json::to_value(&reply.content).unwrap()["status"],
        "error"
    );
    (outputs, took)
}

fn error_text(outputs: &[Output]) -> String {
    let error = outputs
        .iter()
        .find(|o| o.msg_type == "error")
        .expect("an error output");
    format!(
        "{} {}",
        error.content["ename"].as_str().unwrap(),
        error.content["evalue"].as_str().unwrap()
    )
}

const STATE: &str = "let t0 = std::time::Instant::now();\n\
    let r: u64 = { use std::hash::{BuildHasher, Hasher}; \
    let mut h = std::collections::hash_map::RandomState::new().build_hasher(); \
    h.write_u64(7); h.finish() };";
const SHOW_STATE: &str = "format!(\"{:?} {} pid={}\", t0, r, std::process::id())";

#[tokio::test(flavor = "multi_thread")]
async fn async_cell_is_cancelled_at_its_await_and_keeps_earlier_values() {
    let mut k = TestKernel::start().await;
    assert_eq!(k.execute(STATE).await.status(), "ok");
    let before = k.execute(SHOW_STATE).await.result_text().expect("state");

    let (outputs, took) = interrupt_when(
        &mut k,
        "println!(\"sleeping\");\n\
         tokio::time::sleep(std::time::Duration::from_secs(60)).await;\n\
         let never = 1;",
        "sleeping",
    )
    .await;
    println!("async sleep: interrupt -> idle in {took:?}");
    let error = error_text(&outputs);
    assert!(
        error.contains("interrupted") && error.contains("kept"),
        "{error}"
    );
    assert!(
        took < Duration::from_secs(1),
        "idle {took:?} after the interrupt"
    );
    // Same process, same non-reproducible values: nothing was replayed.
    let after = k.execute(SHOW_STATE).await.result_text().expect("state");
    assert_eq!(before, after);
    // The interrupted cell's own variables are gone, as after any early return.
    assert_eq!(k.execute("never").await.status(), "error");

    // Awaits in a loop, with a task still running in the background.
    let (outputs, took) = interrupt_when(
        &mut k,
        "let bg = tokio::spawn(async { for _ in 0..100_000 { tokio::time::sleep(std::time::Duration::from_millis(5)).await; } });\n\
         let mut ticks = 0u64;\n\
         while ticks < 100_000 {\n\
             tokio::time::sleep(std::time::Duration::from_millis(20)).await;\n\
             ticks += 1;\n\
             if ticks == 3 { println!(\"looping\"); }\n\
         }\n\
         bg.abort();",
        "looping",
    )
    .await;
    println!("async loop with a spawned task: interrupt -> idle in {took:?}");
    assert!(error_text(&outputs).contains("kept"));
    assert!(
        took < Duration::from_secs(1),
        "idle {took:?} after the interrupt"
    );
    assert_eq!(
        k.execute(SHOW_STATE).await.result_text().expect("state"),
        before
    );
    // A later async cell works.
    let r = k
        .execute("tokio::time::sleep(std::time::Duration::from_millis(10)).await;\n6 * 7")
        .await;
    assert_eq!(r.result_text().as_deref(), Some("42"), "{r:?}");

    // A type error in an awaited expression shows the learner's code, not the rewrite.
    let r = k.execute("let n: u32 = async { \"text\" }.await;").await;
    assert_eq!(r.status(), "error");
    let shown =
        serde_json::to_string(&r.outputs.iter().map(|o| &o.content).collect::<Vec<_>>()).unwrap();
    assert!(shown.contains("mismatched types"), "{shown}");
    assert!(!shown.contains("__rm_interruptible"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn blocking_cell_that_checks_the_flag_stops_without_a_restart() {
    let mut k = TestKernel::start().await;
    assert_eq!(k.execute(STATE).await.status(), "ok");
    let before = k.execute(SHOW_STATE).await.result_text().expect("state");
    let (outputs, took) = interrupt_when(
        &mut k,
        "println!(\"spinning\");\n\
         let mut spins = 0u64;\n\
         while !rustmeter::interrupted() { spins += 1; }\n\
         println!(\"stopped after {spins} spins\");",
        "spinning",
    )
    .await;
    println!("cooperative blocking loop: interrupt -> idle in {took:?}");
    let error = error_text(&outputs);
    assert!(error.contains("kept"), "{error}");
    let printed: String = outputs
        .iter()
        .filter(|o| o.msg_type == "stream")
        .map(|o| o.content["text"].as_str().unwrap_or(""))
        .collect();
    assert!(printed.contains("stopped after"), "{printed}");
    assert_eq!(
        k.execute(SHOW_STATE).await.result_text().expect("state"),
        before
    );
    // The interrupt was used up: the next cell is not interrupted.
    let r = k.execute("rustmeter::interrupted()").await;
    assert_eq!(r.result_text().as_deref(), Some("false"), "{r:?}");

    // A repeated cell: the interrupt ends the run it lands in and the runs left.
    let (outputs, _) = interrupt_when(
        &mut k,
        ":repeat 50\nprintln!(\"spinning\");\nwhile !rustmeter::interrupted() {}",
        "spinning",
    )
    .await;
    let error = outputs.iter().find(|o| o.msg_type == "error").unwrap();
    // A failed cell's footer is the last line of its one error.
    let footer = support::last_line(&error.content["traceback"]);
    assert!(footer.contains("interrupted at run 1 of 50"), "{footer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn time_limit_ends_only_the_cell_that_ran_too_long() {
    let mut k = TestKernel::start_with_env(&[
        ("RUSTMETER_CELL_TIMEOUT", "2s"),
        ("RUSTMETER_OUTPUT_LIMIT", "1000"),
    ])
    .await;
    assert_eq!(k.execute("let a = 5;").await.status(), "ok");
    let r = k
        .execute("println!(\"sleeping\"); std::thread::sleep(std::time::Duration::from_secs(10));")
        .await;
    let error = error_text(&r.outputs);
    println!("blocking sleep under a 2s limit: {:?} in all", r.elapsed);
    assert!(
        error.contains("time limit") && error.contains("RUSTMETER_CELL_TIMEOUT=2s"),
        "{error}"
    );
    assert!(error.contains('a') && error.contains("lost"), "{error}");
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
    assert_eq!(
        k.execute("let b = 3; b + 1").await.result_text().as_deref(),
        Some("4")
    );

    // An async cell that runs too long is cancelled at its await: `b` survives.
    let r = k
        .execute("tokio::time::sleep(std::time::Duration::from_secs(10)).await;")
        .await;
    let error = error_text(&r.outputs);
    assert!(
        error.contains("RUSTMETER_CELL_TIMEOUT=2s") && error.contains("kept"),
        "{error}"
    );
    assert_eq!(k.execute("b").await.result_text().as_deref(), Some("3"));

    // Repeating never multiplies the limits: no run starts once the runs have used the
    // time limit, nor after a run that printed past the output limit.
    let footer = |r: &support::Executed| {
        let shown = r.of_type("display_data");
        let last = shown.last().expect("a footer");
        last.content["data"]["text/plain"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let stops = [
        (
            ":repeat 10\nstd::thread::sleep(std::time::Duration::from_millis(700));",
            "stopped after run 3 of 10",
        ),
        (
            ":repeat 10\nprintln!(\"{}\", \"x\".repeat(2000));",
            "stopped after run 1 of 10",
        ),
    ];
    for (code, says) in stops {
        let r = k.execute(code).await;
        assert_eq!(r.status(), "ok", "{r:?}");
        assert!(footer(&r).contains(says), "{}", footer(&r));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_time_limit_is_named_and_ignored() {
    let mut k = TestKernel::start_with_env(&[("RUSTMETER_CELL_TIMEOUT", "ten minutes")]).await;
    let r = k.execute("1 + 1").await;
    assert_eq!(r.result_text().as_deref(), Some("2"));
    let stderr: String = r
        .outputs
        .iter()
        .filter(|o| o.msg_type == "stream")
        .map(|o| o.content["text"].as_str().unwrap_or(""))
        .collect();
    assert!(
        stderr.contains("RUSTMETER_CELL_TIMEOUT") && stderr.contains("ten minutes"),
        "{stderr}"
    );
}
