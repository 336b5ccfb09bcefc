//! Async cells behave as the same code behaves in a Rust program: the shared runtime is
//! entered in every cell (awaiting or not), a cell may build and block on a runtime of its
//! own, and an interrupt stops an await wherever it is parked without restarting the
//! user-code process. Real kernels over real ZeroMQ sockets.

mod support;

use jupyter_protocol::ExecuteRequest;
use std::time::{Duration, Instant};
use support::{descendants, TestKernel};

/// The user-code process: the kernel's child that runs this same binary.
fn user_code_pid(k: &TestKernel) -> u32 {
    let kernel = k.pid();
    descendants(kernel)
        .into_iter()
        .find(|(pid, name)| name == "rustmeter" && *pid != kernel)
        .map(|(pid, _)| pid)
        .expect("a user-code process")
}

#[tokio::test(flavor = "multi_thread")]
async fn cells_without_await_have_the_runtime_and_may_run_their_own() {
    let mut k = TestKernel::start().await;
    // No async cell ran yet: spawning needs the runtime's context all the same.
    let r = k.execute("let h = tokio::spawn(async { 40 + 2 });").await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = k.execute("h.await.unwrap()").await;
    assert_eq!(r.result_text().as_deref(), Some("42"), "{r:?}");
    let r = k
        .execute("let h2 = tokio::spawn(async { 1 + 1 });\ntokio::runtime::Handle::current().metrics().num_workers() > 0")
        .await;
    assert_eq!(r.result_text().as_deref(), Some("true"), "{r:?}");

    // After async cells, a program's own runtime works as in `main`.
    let r = k
        .execute(
            "#[tokio::main]\nasync fn main() {\n    tokio::spawn(async { println!(\"from a task\") }).await.unwrap();\n}\nmain();",
        )
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    assert_eq!(r.stdout(), "from a task\n");
    assert!(r.num("cpu_ms") >= 0.0, "the footer's telemetry is there");
    let r = k
        .execute("tokio::runtime::Runtime::new().unwrap().block_on(async { 5 })")
        .await;
    assert_eq!(r.result_text().as_deref(), Some("5"), "{r:?}");
    let r = k
        .execute(
            "let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();\n\
             let local = tokio::task::LocalSet::new();\n\
             let v = local.block_on(&rt, async { tokio::task::spawn_local(async { std::rc::Rc::new(7) }).await.unwrap() });\n\
             *v",
        )
        .await;
    assert_eq!(r.result_text().as_deref(), Some("7"), "{r:?}");
    let r = k.execute("h2.await.unwrap()").await;
    assert_eq!(r.result_text().as_deref(), Some("2"), "{r:?}");

    // A cell that awaits runs on the runtime: blocking on another one there is tokio's
    // panic, with why and what to do.
    let r = k
        .execute("tokio::task::yield_now().await;\ntokio::runtime::Runtime::new().unwrap().block_on(async { 1 })")
        .await;
    assert_eq!(r.status(), "error", "{r:?}");
    let traceback = r.reply["traceback"].to_string();
    assert!(traceback.contains("Cannot start a runtime"), "{traceback}");
    assert!(traceback.contains("cell without .await"), "{traceback}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupt_stops_any_await_and_keeps_the_process() {
    let mut k = TestKernel::start().await;
    let r = k
        .execute("let started = std::time::Instant::now();\nlet seed = format!(\"{started:?}\");")
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = k.execute("tokio::task::yield_now().await;").await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = k.execute(":dep futures = \"0.3\"").await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let child = user_code_pid(&k);
    let cells = [
        (
            "join!",
            "use std::time::Duration;\ntokio::join!(tokio::time::sleep(Duration::from_secs(60)), tokio::time::sleep(Duration::from_secs(60)));",
        ),
        (
            "select! loop",
            "let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));\nlet mut n = 0u64;\nloop {\n    tokio::select! {\n        _ = tick.tick() => { n += 1; }\n        _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => break,\n    }\n}",
        ),
        (
            "JoinSet of 100 sleeps",
            "let mut set = tokio::task::JoinSet::new();\nfor _ in 0..100 { set.spawn(tokio::time::sleep(std::time::Duration::from_secs(60))); }\nwhile let Some(done) = set.join_next().await { done.unwrap(); }",
        ),
        (
            "join_all of 100 sleeps",
            "futures::future::join_all((0..100).map(|_| tokio::time::sleep(std::time::Duration::from_secs(60)))).await;",
        ),
        (
            "async move block awaited at the end",
            "let secs = 60;\nasync move { tokio::time::sleep(std::time::Duration::from_secs(secs)).await; secs }.await",
        ),
        (
            "async closure awaited at the end",
            "let later = |s| async move { tokio::time::sleep(std::time::Duration::from_secs(s)).await; s };\nlater(60).await",
        ),
    ];
    for (what, code) in cells {
        let id = k.send_execute(ExecuteRequest::new(code.into())).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let sent = Instant::now();
        assert_eq!(k.interrupt().await["status"], "ok");
        let outputs = k.collect_until_idle(&id, Duration::from_secs(30)).await;
        let took = sent.elapsed();
        println!("{what}: interrupt -> idle in {took:?}");
        let reply = k.read_shell_reply(Duration::from_secs(5)).await;
        let reply = serde_json::to_value(&reply.content).unwrap();
        assert_eq!(reply["status"], "error", "{what}: {reply}");
        assert!(
            took < Duration::from_secs(1),
            "{what}: idle {took:?} after the interrupt"
        );
        let text: String = outputs.iter().map(|o| o.content.to_string()).collect();
        assert!(text.contains("interrupted"), "{what}: {text}");
        assert_eq!(
            user_code_pid(&k),
            child,
            "{what}: the process was restarted"
        );
        let r = k.execute("format!(\"{started:?}\") == seed").await;
        assert_eq!(r.result_text().as_deref(), Some("true"), "{what}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_await_after_the_tokio_declaration_builds_once() {
    let mut k = TestKernel::start().await;
    let builds = |r: &support::Executed| r.telemetry()["compile_parts"]["cell_builds"].clone();
    let r = k.execute("let x = 1;").await;
    assert_eq!(r.status(), "ok", "{r:?}");
    // evcxr learns async mode and `?` from one failed build of the declaration.
    let r = k
        .execute(":dep tokio = { version = \"1\", features = [\"full\"] }")
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    assert_eq!(builds(&r), 2, "{:?}", r.telemetry());
    let r = k.execute("tokio::task::yield_now().await;\nx + 1").await;
    assert_eq!(r.result_text().as_deref(), Some("2"), "{r:?}");
    assert_eq!(builds(&r), 1, "{:?}", r.telemetry());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_future_never_awaited_is_a_warning_at_its_line_unless_turned_off() {
    let mut k = TestKernel::start().await;
    let r = k
        .execute(":dep tokio = { version = \"1\", features = [\"full\"] }")
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let stderr = |r: &support::Executed| -> String {
        r.outputs
            .iter()
            .filter(|o| o.msg_type == "stream" && o.content["name"] == "stderr")
            .map(|o| o.content["text"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let r = k
        .execute(
            "let d = std::time::Duration::from_millis(5);\ntokio::time::sleep(d);\nlet after = 1;",
        )
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let text = stderr(&r);
    assert!(
        text.contains("⚠ line 2: unused `Sleep` that must be used")
            && text.contains("futures do nothing unless you `.await`"),
        "{text:?}"
    );
    for generated in ["src/lib.rs", "evcxr", "__rm"] {
        assert!(!text.contains(generated), "{text:?}");
    }
    // A clean cell shows nothing; `:warnings off` hides them.
    let r = k.execute("tokio::time::sleep(d).await;").await;
    assert_eq!(stderr(&r), "", "{r:?}");
    assert_eq!(k.execute(":warnings off").await.status(), "ok");
    let r = k.execute("tokio::time::sleep(d);").await;
    assert_eq!(r.status(), "ok", "{r:?}");
    assert_eq!(stderr(&r), "", "{r:?}");
}
