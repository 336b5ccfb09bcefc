//! One tokio (and one rayon) per user-code process: tasks outlive the cell that spawned
//! them, timers and sockets work in later cells, signals reach tokio, and a thread pool
//! is shared by every cell.

mod support;

use support::TestKernel;

#[tokio::test(flavor = "multi_thread")]
async fn spawned_tasks_timers_sockets_and_signals_work_across_cells() {
    let mut k = TestKernel::start().await;

    // The four cells that hang under plain evcxr 0.22.
    let cells = [
        ":dep tokio = { version = \"1\", features = [\"full\"] }",
        "tokio::time::sleep(std::time::Duration::from_millis(1)).await;",
        "let h = tokio::spawn(async { tokio::time::sleep(std::time::Duration::from_millis(10)).await; 1u8 });",
    ];
    for cell in cells {
        let r = k.execute(cell).await;
        assert_eq!(r.status(), "ok", "{cell}: {r:?}");
    }
    let r = k.execute("h.await.unwrap()").await;
    assert_eq!(r.result_text().as_deref(), Some("1"));
    assert!(r.num("run_ms") < 1000.0, "{}", r.telemetry());

    // A task spawned in cell N still runs in cell N+3.
    let r = k
        .execute(
            "let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1000);\n\
             let ticker = tokio::spawn(async move { let mut i = 0u32; loop { if tx.send(i).await.is_err() { break; } i += 1; tokio::time::sleep(std::time::Duration::from_millis(50)).await; } });",
        )
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    assert_eq!(k.execute("let a = 1;").await.status(), "ok");
    assert_eq!(k.execute("let b = 2;").await.status(), "ok");
    let r = k
        .execute(
            "while rx.try_recv().is_ok() {}\n\
             let fresh = tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv()).await;\n\
             (fresh.is_ok(), ticker.is_finished())",
        )
        .await;
    assert_eq!(r.result_text().as_deref(), Some("(true, false)"), "{r:?}");

    // A JoinSet of 1,000 tasks each sleeping 100 ms finishes in well under a second.
    let r = k
        .execute(
            "let mut set = tokio::task::JoinSet::new();\n\
             for i in 0..1000u32 { set.spawn(async move { tokio::time::sleep(std::time::Duration::from_millis(100)).await; i }); }\n\
             let mut n = 0; while let Some(r) = set.join_next().await { r.unwrap(); n += 1; }\nn",
        )
        .await;
    assert_eq!(r.result_text().as_deref(), Some("1000"), "{r:?}");
    assert!(r.num("run_ms") < 1000.0, "{}", r.telemetry());
    assert!(
        r.num("threads_peak") <= r.num("threads_start") + 4.0,
        "tasks, not threads: {}",
        r.telemetry()
    );

    // A TCP echo server spawned in one cell answers a client in a later cell.
    let r = k
        .execute(
            "let listener = tokio::net::TcpListener::bind(\"127.0.0.1:0\").await.unwrap();\n\
             let addr = listener.local_addr().unwrap();\n\
             tokio::spawn(async move { loop { let (mut s, _) = listener.accept().await.unwrap(); tokio::spawn(async move { let (mut r, mut w) = s.split(); let _ = tokio::io::copy(&mut r, &mut w).await; }); } });",
        )
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = k
        .execute(
            "use tokio::io::{AsyncReadExt, AsyncWriteExt};\n\
             let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();\n\
             c.write_all(b\"ping\").await.unwrap();\n\
             let mut buf = [0u8; 4]; c.read_exact(&mut buf).await.unwrap();\n\
             String::from_utf8_lossy(&buf).to_string()",
        )
        .await;
    assert_eq!(r.result_text().as_deref(), Some("\"ping\""), "{r:?}");

    // tokio::signal::ctrl_c() fires when the user-code process receives SIGINT.
    let r = k
        .execute(
            "let sig = tokio::spawn(async { tokio::signal::ctrl_c().await.unwrap(); \"got ctrl-c\" });\n\
             tokio::time::sleep(std::time::Duration::from_millis(200)).await;",
        )
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let child = r.num("pid") as i32;
    assert!(child > 0);
    unsafe {
        libc::kill(child, libc::SIGINT);
    }
    let r = k
        .execute(
            "tokio::time::timeout(std::time::Duration::from_secs(5), sig).await.unwrap().unwrap()",
        )
        .await;
    assert_eq!(r.result_text().as_deref(), Some("\"got ctrl-c\""), "{r:?}");
    assert_eq!(
        r.num("pid") as i32,
        child,
        "the process survived its SIGINT"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rayon_cells_share_one_thread_pool() {
    let mut k = TestKernel::start().await;
    let r = k.execute(":dep rayon = \"1\"").await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let sum =
        "use rayon::prelude::*;\n(0..1_000_000u64).into_par_iter().map(|x| x % 7).sum::<u64>()";
    let first = k.execute(sum).await;
    assert_eq!(first.status(), "ok", "{first:?}");
    let second = k.execute(sum).await;
    let third = k.execute(sum).await;
    assert_eq!(first.result_text(), third.result_text());
    // The pool was created once: later cells start and end with the same threads.
    assert!(
        first.num("threads_end") > first.num("threads_start"),
        "{}",
        first.telemetry()
    );
    assert_eq!(
        second.num("threads_start"),
        first.num("threads_end"),
        "{}",
        second.telemetry()
    );
    assert_eq!(
        third.num("threads_end"),
        first.num("threads_end"),
        "{}",
        third.telemetry()
    );
}
