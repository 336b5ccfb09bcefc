//! The kernel core through real ZeroMQ sockets: blocking and async cells, streaming,
//! errors, abort-after-error, interrupt, restart. Each test drives the built binary.

mod support;

use jupyter_protocol::{CompleteRequest, ExecuteRequest};
use std::time::{Duration, Instant};
use support::{alive, descendants, TestKernel};

#[tokio::test(flavor = "multi_thread")]
async fn blocking_cells_stream_persist_and_fail_cleanly() {
    let mut k = TestKernel::start().await;

    let r = k.execute("let x = 40 + 2;").await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = k.execute("x").await;
    assert_eq!(
        r.result_text().as_deref(),
        Some("42"),
        "variable persists across cells: {r:?}"
    );

    // Streaming: the first line arrives while the cell still runs.
    let r = k
        .execute("for i in 0..3 { println!(\"tick {i}\"); std::thread::sleep(std::time::Duration::from_millis(400)); }")
        .await;
    assert_eq!(r.status(), "ok");
    let streams = r.of_type("stream");
    assert!(
        streams.len() >= 3,
        "one stream message per tick: {streams:?}"
    );
    let last = r.outputs.last().unwrap().at;
    assert!(
        streams[0].at + Duration::from_millis(600) < last,
        "first line came {:?} before the end",
        last - streams[0].at
    );

    // print! without newline shows in its own cell.
    let r = k.execute("print!(\"partial\")").await;
    assert_eq!(r.stdout(), "partial");

    // A panic after a partial line: the partial is output, the panic still the error.
    let r = k
        .execute("print!(\"half\"); panic!(\"after partial\")")
        .await;
    assert_eq!(r.reply["ename"], "panic", "{r:?}");
    assert_eq!(r.stdout(), "half");

    // A panic is an error, with exactly one error message.
    let r = k.execute("panic!(\"boom {}\", 7)").await;
    assert_eq!(r.status(), "error");
    assert_eq!(r.reply["ename"], "panic");
    assert_eq!(r.reply["evalue"], "boom 7");
    assert_eq!(r.of_type("error").len(), 1);

    // Several compile errors: one error message, readable traceback.
    let r = k.execute("let a: i32 = \"s\";\nlet b: u8 = \"t\";").await;
    assert_eq!(r.status(), "error");
    let errors = r.of_type("error");
    assert_eq!(errors.len(), 1);
    let tb = errors[0].content["traceback"].to_string();
    assert!(tb.contains("E0308") && tb.contains("let a: i32"), "{tb}");

    // Variables from before the errors survive.
    assert_eq!(
        k.execute("x + 1").await.result_text().as_deref(),
        Some("43")
    );

    // Silent requests publish nothing but status.
    let mut silent = ExecuteRequest::new("println!(\"quiet\"); 5".into());
    silent.silent = true;
    let r = k.execute_with(silent, Duration::from_secs(120)).await;
    assert_eq!(r.status(), "ok");
    assert!(
        r.outputs.iter().all(|o| o.msg_type == "status"),
        "{:?}",
        r.outputs
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_cells_are_aborted_after_an_error() {
    let mut k = TestKernel::start().await;
    let first = k
        .send_execute(ExecuteRequest::new("panic!(\"first fails\")".into()))
        .await;
    let second = k
        .send_execute(ExecuteRequest::new("println!(\"must not run\")".into()))
        .await;
    let third = k.send_execute(ExecuteRequest::new("1".into())).await;
    let outputs_first = k.collect_until_idle(&first, Duration::from_secs(300)).await;
    assert!(outputs_first.iter().any(|o| o.msg_type == "error"));
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let reply = k.read_shell_reply(Duration::from_secs(60)).await;
        let content = serde_json::to_value(&reply.content).unwrap();
        statuses.push((
            reply.parent_header.unwrap().msg_id,
            content["status"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(statuses[0], (first, "error".to_string()));
    assert_eq!(statuses[1], (second.clone(), "aborted".to_string()));
    assert_eq!(statuses[2], (third, "aborted".to_string()));
    let aborted_outputs = k.collect_until_idle(&second, Duration::from_secs(10)).await;
    assert!(
        aborted_outputs.iter().all(|o| o.msg_type == "status"),
        "no execute_input for aborted: {aborted_outputs:?}"
    );
    // stop_on_error: false never aborts what follows.
    let mut tolerant = ExecuteRequest::new("panic!(\"ignored\")".into());
    tolerant.stop_on_error = false;
    let id = k.send_execute(tolerant).await;
    let next = k.send_execute(ExecuteRequest::new("2".into())).await;
    // Sent right after the aborted replies: they ran, they were not swept up in the abort.
    let out = k.collect_until_idle(&id, Duration::from_secs(120)).await;
    assert!(out.iter().any(|o| o.msg_type == "error"), "{out:?}");
    let out = k.collect_until_idle(&next, Duration::from_secs(120)).await;
    assert!(
        out.iter().any(|o| o.msg_type == "execute_result"),
        "{out:?}"
    );

    for expected in [id, next] {
        let reply = k.read_shell_reply(Duration::from_secs(60)).await;
        assert_eq!(reply.parent_header.unwrap().msg_id, expected);
    }

    // A cell sent once the error reply arrived, while many aborts are still being
    // answered, runs: only requests received before the failure are aborted.
    let failing = k
        .send_execute(ExecuteRequest::new("panic!(\"again\")".into()))
        .await;
    let mut waiting = Vec::new();
    for i in 0..300 {
        let code = format!("println!(\"queued {i}\")");
        waiting.push(k.send_execute(ExecuteRequest::new(code)).await);
    }
    let reply = k.read_shell_reply(Duration::from_secs(300)).await;
    assert_eq!(reply.parent_header.unwrap().msg_id, failing);
    let late = k.send_execute(ExecuteRequest::new("40 + 2".into())).await;
    let mut replies = Vec::new();
    for _ in 0..waiting.len() + 1 {
        let reply = k.read_shell_reply(Duration::from_secs(120)).await;
        let content = serde_json::to_value(&reply.content).unwrap();
        replies.push((
            reply.parent_header.unwrap().msg_id,
            content["status"].as_str().unwrap().to_string(),
        ));
    }
    let (last_id, last_status) = replies.pop().unwrap();
    assert_eq!((last_id, last_status.as_str()), (late.clone(), "ok"));
    assert!(
        replies
            .iter()
            .zip(&waiting)
            .all(|((id, status), w)| id == w && status == "aborted"),
        "{replies:?}"
    );
    let out = k.collect_until_idle(&late, Duration::from_secs(120)).await;
    assert!(
        out.iter().any(|o| o.msg_type == "execute_result"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn async_cells_share_one_runtime() {
    let mut k = TestKernel::start().await;
    let r = k
        .execute(
            "tokio::time::sleep(std::time::Duration::from_millis(50)).await;\nprintln!(\"slept\");",
        )
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    assert_eq!(r.stdout(), "slept\n");

    let r = k.execute("tokio::join!(async { 1 }, async { tokio::time::sleep(std::time::Duration::from_millis(20)).await; 2 })").await;
    assert_eq!(r.result_text().as_deref(), Some("(1, 2)"));

    let r = k
        .execute(
            "tokio::select! {\n  _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => \"slow\",\n  _ = tokio::time::sleep(std::time::Duration::from_millis(10)) => \"timeout first\",\n}",
        )
        .await;
    assert_eq!(
        r.result_text().as_deref(),
        Some("\"timeout first\""),
        "{r:?}"
    );

    // A task spawned in one cell is awaited in the next.
    let r = k.execute("let h = tokio::spawn(async { tokio::time::sleep(std::time::Duration::from_millis(10)).await; 1u8 });").await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = k.execute("h.await.unwrap()").await;
    assert_eq!(r.result_text().as_deref(), Some("1"), "{r:?}");

    // The learner's own :dep tokio is merged when the shared tokio covers it ...
    let r = k
        .execute(":dep tokio = { version = \"1\", features = [\"full\", \"rt\"] }")
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = k.execute("tokio::time::timeout(std::time::Duration::from_millis(5), std::future::pending::<()>()).await.is_err()").await;
    assert_eq!(r.result_text().as_deref(), Some("true"));
    // ... and refused with a reason when it cannot change any more.
    let r = k
        .execute(":dep tokio = { version = \"1\", features = [\"test-util\"] }")
        .await;
    assert_eq!(r.status(), "error");
    assert!(
        r.reply["evalue"]
            .as_str()
            .unwrap()
            .contains("Restart the kernel"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupt_stops_a_runaway_cell_and_restart_leaves_nothing_behind() {
    let mut k = TestKernel::start().await;
    let r = k.execute("let kept = 1;").await;
    assert_eq!(r.status(), "ok");
    // Interrupting an idle kernel does nothing.
    assert_eq!(k.interrupt().await["status"], "ok");
    assert_eq!(k.execute("kept").await.result_text().as_deref(), Some("1"));

    let old_children: Vec<u32> = descendants(k.pid()).into_iter().map(|(p, _)| p).collect();
    let id = k.send_execute(ExecuteRequest::new("loop {}".into())).await;
    // Wait until the user's code runs (the child burns CPU), then interrupt.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = Instant::now();
    assert_eq!(k.interrupt().await["status"], "ok");
    let outputs = k.collect_until_idle(&id, Duration::from_secs(10)).await;
    let took = sent.elapsed();
    println!("blocking loop {{}}: interrupt -> idle in {took:?}");
    // A grace period for a cooperative stop, then the kill: the interrupt must end the
    // cell within 2 s.
    assert!(
        took < Duration::from_secs(2),
        "idle {took:?} after the interrupt"
    );
    let error = outputs
        .iter()
        .find(|o| o.msg_type == "error")
        .expect("an error output");
    let evalue = error.content["evalue"].as_str().unwrap();
    assert!(
        evalue.contains("interrupted") && evalue.contains("kept"),
        "names the lost variable: {evalue}"
    );
    let reply = k.read_shell_reply(Duration::from_secs(5)).await;
    assert_eq!(
        serde_json::to_value(&reply.content).unwrap()["status"],
        "error"
    );
    // Once the new child is ready, completion works again before any further cell.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let completion = complete_at_end(&mut k, "std::collections::Hash", 60).await;
    assert!(
        completion["matches"].to_string().contains("HashMap"),
        "{completion}"
    );
    for pid in &old_children {
        assert!(!alive(*pid), "old child {pid} still alive");
    }
    assert_eq!(k.execute("1 + 1").await.result_text().as_deref(), Some("2"));
    let leftovers: Vec<_> = descendants(k.pid())
        .into_iter()
        .filter(|(_, n)| n == "cargo" || n == "rustc")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Restart: the kernel exits and takes its whole tree with it.
    let kernel_pid = k.pid();
    let tree: Vec<u32> = descendants(kernel_pid)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert!(!tree.is_empty());
    let status = k.shutdown(true).await;
    assert!(status.success(), "{status:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for pid in tree {
        assert!(!alive(pid), "process {pid} survived the kernel");
    }
    let mut fresh = TestKernel::start().await;
    assert_ne!(fresh.pid(), kernel_pid);
    assert_eq!(
        fresh.execute("2 * 21").await.result_text().as_deref(),
        Some("42")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn values_print_as_evcxr_prints_them() {
    let mut k = TestKernel::start().await;
    let text = |r: &support::Executed| r.result_text().unwrap_or_else(|| panic!("{:?}", r.outputs));
    let builds = |r: &support::Executed| r.telemetry()["compile_parts"]["cell_builds"].clone();

    // std values: `{:?}`, compiled once.
    let r = k
        .execute("let v = vec![1, 2];\n(v.clone(), Some(\"a\"), 2.5f64)")
        .await;
    assert_eq!(text(&r), "([1, 2], Some(\"a\"), 2.5)");
    assert_eq!(builds(&r), 1);
    let r = k
        .execute("std::collections::BTreeMap::from([(1u8, 'x')])")
        .await;
    assert_eq!(text(&r), "{1: 'x'}");

    // The learner's own Debug type: evcxr's path, the same text.
    let r = k
        .execute("#[derive(Debug)] struct Point { x: i32 }\nPoint { x: 3 }")
        .await;
    assert_eq!(text(&r), "Point { x: 3 }");

    // An inherent evcxr_display wins, on the learner's type and through a reference.
    let r = k
        .execute(
            "struct Shown;\nimpl Shown { fn evcxr_display(&self) { println!(\"EVCXR_BEGIN_CONTENT text/html\\n<b>shown</b>\\nEVCXR_END_CONTENT\"); } }\nShown",
        )
        .await;
    let data = &r.of_type("execute_result")[0].content["data"];
    assert_eq!(data["text/html"], "<b>shown</b>", "{data}");

    // `:fmt` and `:types` change how values print, and are honoured.
    assert_eq!(k.execute(":fmt {:#?}").await.status(), "ok");
    assert_eq!(text(&k.execute("v.clone()").await), "[\n    1,\n    2,\n]");
    assert_eq!(k.execute(":types").await.status(), "ok");
    let r = k.execute("7u8").await;
    assert!(text(&r).contains("u8"), "{:?}", text(&r));
}

/// A runtime folder deeper than a Unix socket path can hold (107 bytes) still serves: the
/// kernel reaches its private sockets through a short path.
#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_folder_deeper_than_a_socket_path_still_serves() {
    let deep = support::TempDir(
        std::env::temp_dir()
            .join(format!("rustmeter-deep-{}", uuid::Uuid::new_v4()))
            .join("d".repeat(90)),
    );
    std::fs::create_dir_all(&deep.0).unwrap();
    let mut k =
        TestKernel::start_with_env(&[("RUSTMETER_RUNTIME_DIR", deep.0.to_str().unwrap())]).await;
    let r = k.execute("40 + 2").await;
    assert_eq!(r.result_text().as_deref(), Some("42"), "{r:?}");
    let work = std::fs::read_dir(&deep.0)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    assert!(work.join("wire-1").exists(), "sockets are in {work:?}");
}

/// Tab right after a notebook opens: a completion sent as soon as the kernel listens
/// waits for evcxr to finish starting and answers for real.
#[tokio::test(flavor = "multi_thread")]
async fn completion_right_after_launch_waits_for_the_start() {
    let mut k = TestKernel::start().await;
    let asked = Instant::now();
    let completion = complete_at_end(&mut k, "std::collections::HashM", 30).await;
    println!(
        "completion right after launch answered in {:?}",
        asked.elapsed()
    );
    let matches: Vec<&str> = completion["matches"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    assert!(matches.contains(&"HashMap"), "{completion}");
}

/// The kernel's complete_reply for `code` with the cursor at its end.
async fn complete_at_end(k: &mut TestKernel, code: &str, timeout_s: u64) -> serde_json::Value {
    let request = CompleteRequest {
        cursor_pos: code.len(),
        code: code.to_string(),
    };
    k.request(request.into(), Duration::from_secs(timeout_s))
        .await
}
