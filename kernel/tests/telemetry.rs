//! Telemetry accuracy through real cells: each figure is checked against what the cell
//! itself did (threads started, bytes touched, CPU time measured inside the threads).

mod support;

use jupyter_protocol::ExecuteRequest;
use std::time::Duration;
use support::TestKernel;

/// These tests measure CPU and time: one at a time, so no other test's kernel is
/// compiling on the same two cores while they run.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn threads_memory_and_cpu_are_measured_exactly() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut k = TestKernel::start().await;
    assert_eq!(k.execute("let warm = 1;").await.status(), "ok");

    // 300 threads that sleep 0.5 s.
    let r = k
        .execute("let hs: Vec<_> = (0..300).map(|_| std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(500)))).collect();\nfor h in hs { h.join().unwrap(); }")
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let start = r.num("threads_start");
    assert!(r.num("threads_peak") >= start + 300.0, "{}", r.telemetry());
    assert!(
        (r.num("threads_end") - start).abs() <= 2.0,
        "{}",
        r.telemetry()
    );
    assert_eq!(
        r.telemetry()["threads_runtime"],
        r.telemetry()["threads_start"]
    );

    // 250 MB allocated, touched and dropped within ~100 ms: the peak is exact, not sampled.
    let r = k
        .execute("{ let mut v = vec![0u8; 250_000_000]; for i in (0..v.len()).step_by(4096) { v[i] = 1; } std::hint::black_box(&v); }")
        .await;
    assert_eq!(r.status(), "ok");
    let growth = r.num("rss_peak_bytes") - r.num("rss_start_bytes");
    assert!(
        growth >= 240e6,
        "peak growth {growth} bytes: {}",
        r.telemetry()
    );
    assert!(r.num("run_ms") < 1000.0);

    // Sleeping costs no CPU.
    let r = k
        .execute("std::thread::sleep(std::time::Duration::from_secs(1));")
        .await;
    assert!(r.num("cpu_ms") < 50.0, "{}", r.telemetry());
    assert!(r.num("run_ms") >= 950.0, "{}", r.telemetry());
    // What other programs used meanwhile is measured too (for :compare's busy warning).
    assert!(r.num("other_cores") >= 0.0, "{}", r.telemetry());

    // One thread alternating 50 ms spin / 50 ms sleep: about half a core.
    let r = k
        .execute("let t0 = std::time::Instant::now();\nwhile t0.elapsed() < std::time::Duration::from_millis(1200) {\n  let s = std::time::Instant::now(); while s.elapsed() < std::time::Duration::from_millis(50) {}\n  std::thread::sleep(std::time::Duration::from_millis(50));\n}")
        .await;
    let cores = r.num("cpu_cores");
    assert!(
        (0.35..=0.65).contains(&cores),
        "cores {cores}: {}",
        r.telemetry()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_time_matches_what_threads_measure_themselves() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut k = TestKernel::start().await;
    // Calibrate a fixed amount of work to ~1 s of one core, then run it on two threads,
    // each measuring its own CPU time with CLOCK_THREAD_CPUTIME_ID.
    let setup = r#":dep libc = "0.2"
fn thread_cpu_ms() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1000.0 + t.tv_nsec as f64 / 1e6
}
fn work(n: u64) -> u64 { let mut x = 1u64; for i in 0..n { x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i)); } x }
let n = { let t = std::time::Instant::now(); work(20_000_000); (20_000_000.0 / t.elapsed().as_secs_f64()) as u64 };"#;
    let r = k.execute(setup).await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let r = k
        .execute("let hs: Vec<_> = (0..2).map(|_| std::thread::spawn(move || { let c0 = thread_cpu_ms(); work(n); thread_cpu_ms() - c0 })).collect();\nlet total: f64 = hs.into_iter().map(|h| h.join().unwrap()).sum();\nprintln!(\"{total}\");")
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let measured_by_threads: f64 = r.stdout().trim().parse().unwrap();
    let cpu_ms = r.num("cpu_ms");
    assert!(
        (cpu_ms - measured_by_threads).abs() <= 0.10 * measured_by_threads + 20.0,
        "telemetry {cpu_ms} ms vs threads' own {measured_by_threads} ms"
    );
    // Cores are CPU time over run time: consistent with the threads' own clocks whatever
    // the load, and about 2 for two busy threads on an otherwise idle 2-core machine.
    let cores = r.num("cpu_cores");
    let expected = measured_by_threads / r.num("run_ms");
    assert!(
        (cores - expected).abs() <= 0.1 * expected + 0.05,
        "cores {cores} vs {expected}: {}",
        r.telemetry()
    );
    assert!(cores >= 1.4, "cores {cores}: {}", r.telemetry());
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_carry_their_footer() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut k = TestKernel::start().await;
    assert_eq!(k.execute("let warm = 1;").await.status(), "ok");

    let r = k.execute("let x: u8 = \"not a number\";").await;
    assert_eq!(r.status(), "error");
    let t = r.telemetry();
    assert_eq!(t["status"], "error");
    assert_eq!(t["run_ms"], 0.0);
    // The cell's own time (not a wait before it, e.g. for rust-analyzer's first
    // analysis) is mostly compiling.
    let own_ms = r.num("wall_ms") - r.num("queue_ms");
    assert!(r.num("compile_ms") >= 0.8 * own_ms, "{t}");
    assert!(r.num("compile_cpu_ms") > 0.0, "{t}");
    let shown: Vec<_> = r
        .outputs
        .iter()
        .filter(|o| o.msg_type != "status" && o.msg_type != "execute_input")
        .collect();
    assert_eq!(shown.len(), 1, "exactly one output, the error: {shown:?}");
    let last_line = support::last_line(&shown[0].content["traceback"]);
    assert!(
        last_line.starts_with("✗ compile error") && last_line.contains("your code did not run"),
        "{last_line}"
    );

    let r = k.execute("panic!(\"boom\")").await;
    assert_eq!(r.telemetry()["status"], "panic");
    let tb = r.of_type("error")[0].content["traceback"].to_string();
    assert!(tb.contains("panicked after"), "{tb}");

    // A cell queued behind a 2 s cell waits, and says so; its own run stays short.
    let slow = k
        .send_execute(ExecuteRequest::new(
            "std::thread::sleep(std::time::Duration::from_secs(2));".into(),
        ))
        .await;
    let fast = k.send_execute(ExecuteRequest::new("1 + 1".into())).await;
    k.collect_until_idle(&slow, Duration::from_secs(120)).await;
    let _ = k.read_shell_reply(Duration::from_secs(10)).await;
    k.collect_until_idle(&fast, Duration::from_secs(120)).await;
    let reply = k.read_shell_reply(Duration::from_secs(10)).await;
    let t = &reply.metadata["rustmeter"];
    assert!(t["queue_ms"].as_f64().unwrap() >= 1500.0, "{t}");
    assert!(t["run_ms"].as_f64().unwrap() < 100.0, "{t}");
}

#[tokio::test(flavor = "multi_thread")]
async fn live_footer_updates_while_the_cell_runs_and_the_final_footer_is_last() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut k = TestKernel::start().await;
    assert_eq!(k.execute("let warm = 1;").await.status(), "ok");
    let r = k
        .execute("let mut keep = Vec::new();\nfor _ in 0..6 { let v = vec![1u8; 40_000_000]; keep.push(v); std::thread::sleep(std::time::Duration::from_millis(500)); }\nprintln!(\"{}\", keep.len());")
        .await;
    assert_eq!(r.status(), "ok");
    let updates = r.of_type("update_display_data");
    let live: Vec<&str> = updates
        .iter()
        .filter_map(|u| u.content["data"]["text/plain"].as_str())
        .filter(|t| !t.is_empty())
        .collect();
    assert!(live.len() >= 4, "live updates: {live:?}");
    let elapsed: Vec<f64> = live
        .iter()
        .map(|l| {
            l.trim_start_matches("⏱ running ")
                .split(' ')
                .next()
                .unwrap()
                .parse::<f64>()
                .unwrap()
        })
        .collect();
    assert!(
        elapsed.windows(2).all(|w| w[1] > w[0]),
        "strictly increasing: {elapsed:?}"
    );
    let memory_mb: Vec<f64> = live
        .iter()
        .map(|l| {
            l.rsplit("memory ")
                .next()
                .unwrap()
                .trim_end_matches(" MB")
                .parse::<f64>()
                .unwrap_or(0.0)
        })
        .collect();
    assert!(
        memory_mb.last().unwrap() - memory_mb.first().unwrap() >= 80.0,
        "RSS follows the allocation: {memory_mb:?}"
    );
    // The live display is emptied and the final footer is the cell's last output.
    assert_eq!(updates.last().unwrap().content["data"]["text/plain"], "");
    let last = r
        .outputs
        .iter()
        .rev()
        .find(|o| o.msg_type != "status")
        .unwrap();
    assert_eq!(last.msg_type, "display_data");
    assert!(
        last.content["data"]["text/plain"]
            .as_str()
            .unwrap()
            .starts_with("✓ ran"),
        "{last:?}"
    );
    assert!(
        last.content["data"]["application/vnd.rustmeter.telemetry+json"]["run_ms"]
            .as_f64()
            .unwrap()
            >= 3000.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cells_read_telemetry_through_the_shipped_crate_and_compare_labels() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut k = TestKernel::start().await;
    let r = k
        .execute("let hs: Vec<_> = (0..50).map(|_| std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(300)))).collect();\nfor h in hs { h.join().unwrap(); }")
        .await;
    assert_eq!(r.status(), "ok");
    let peak = r.num("threads_peak");
    // The next cell sees that figure and asserts on it (a self-check cell would).
    let r = k
        .execute("let t = rustmeter::last().expect(\"previous cell's telemetry\");\nassert!(t.threads_added() >= 50, \"{t:?}\");\nt.threads_peak")
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    assert_eq!(r.result_text().unwrap().parse::<f64>().unwrap(), peak);
    // A wrong expectation fails that cell with its message.
    let r = k.execute("let t = rustmeter::last().unwrap();\nassert!(t.threads_added() >= 50, \"you started {} threads\", t.threads_added());").await;
    assert_eq!(r.status(), "error");

    // Notes attach to the current cell's telemetry.
    let r = k.execute("rustmeter::note(\"N\", 1000);").await;
    assert_eq!(r.telemetry()["notes"]["N"], 1000.0);

    // Every marker the `rustmeter` crate prints (one `markers` file on both sides) comes
    // back as its Jupyter message.
    let r = k
        .execute("rustmeter::html(\"<b>one</b>\");\nrustmeter::display_with_id(\"d\", \"text/plain\", \"v1\", false);\nrustmeter::display_with_id(\"d\", \"text/plain\", \"v2\", true);\nrustmeter::clear_output(true);")
        .await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let shown = r.of_type("display_data");
    assert_eq!(shown[0].content["data"]["text/html"], "<b>one</b>", "{r:?}");
    assert_eq!(shown[1].content["transient"]["display_id"], "d", "{r:?}");
    let updated = r.of_type("update_display_data");
    assert_eq!(updated[0].content["data"]["text/plain"], "v2", "{r:?}");
    assert_eq!(r.of_type("clear_output")[0].content["wait"], true, "{r:?}");
    assert!(!r.stdout().contains('\u{1}'), "no marker leaks: {r:?}");

    for (label, n) in [("one", 1), ("ten", 10), ("hundred", 100)] {
        let code = format!(
            ":label {label}\nlet hs: Vec<_> = (0..{n}).map(|_| std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(100)))).collect();\nfor h in hs {{ h.join().unwrap(); }}"
        );
        let r = k.execute(&code).await;
        assert_eq!(r.telemetry()["label"], label);
    }
    let r = k.execute(":compare one ten hundred").await;
    assert_eq!(r.status(), "ok", "{r:?}");
    let table = r.of_type("display_data")[0];
    let text = table.content["data"]["text/plain"].as_str().unwrap();
    // One row per cell (a "⚠ ran while the machine was busy" line may follow).
    let rows = text.lines().filter(|l| !l.starts_with('⚠')).count();
    assert_eq!(rows, 3, "{text}");
    let html = table.content["data"]["text/html"].as_str().unwrap();
    assert!(html.contains("<table") && html.contains("hundred") && html.contains("threads max"));
    // A labelled result is also readable by name from code.
    let r = k
        .execute("rustmeter::cell(\"hundred\").unwrap().threads_added() >= 100")
        .await;
    assert_eq!(r.result_text().as_deref(), Some("true"), "{r:?}");
    // Labelled results outlive kernels; `labelled_here` takes only this process's, so a
    // self-check never grades a result kept from an earlier kernel.
    let r = k
        .execute("let dir = std::env::var(\"RUSTMETER_LABELS_DIR\").unwrap();\nstd::fs::write(format!(\"{dir}/earlier.txt\"), \"status ok\\nlabel earlier\\npid 1\\n\").unwrap();\n(rustmeter::cell(\"earlier\").is_some(), rustmeter::labelled_here(\"earlier\").is_none(), rustmeter::labelled_here(\"hundred\").is_some_and(|t| t.ran_here()), rustmeter::last().unwrap().pid == std::process::id())")
        .await;
    assert_eq!(
        r.result_text().as_deref(),
        Some("(true, true, true, true)"),
        "{r:?}"
    );
    let r = k.execute(":compare nosuch").await;
    assert_eq!(r.status(), "error");
}

#[tokio::test(flavor = "multi_thread")]
async fn compile_time_is_split_by_the_builds_own_reports() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut k = TestKernel::start().await;
    assert_eq!(k.execute("let x = 41;").await.status(), "ok");

    let parts_of = |r: &support::Executed| {
        let p = r.telemetry()["compile_parts"].clone();
        assert!(p.is_object(), "no compile_parts: {}", r.telemetry());
        let n = |k: &str| p[k].as_f64().unwrap_or_else(|| panic!("{k} in {p}"));
        let sum = n("deps_ms") + n("rustc_ms") + n("link_ms") + n("load_ms") + n("other_ms");
        // The parts add up to compile_ms (other_ms is the remainder, never negative).
        assert!(
            (sum - r.num("compile_ms")).abs() < 2.0 && n("other_ms") >= 0.0,
            "parts {p} vs compile_ms {}",
            r.num("compile_ms")
        );
        p
    };

    // A steady cell: one build of the cell crate (a std value needs no second compile),
    // rustc and the link both measured.
    let r = k.execute("x + 1").await;
    assert_eq!(r.result_text().as_deref(), Some("42"));
    let p = parts_of(&r);
    assert_eq!(p["cell_builds"], 1, "{p}");
    assert!(p["rustc_ms"].as_f64().unwrap() > 0.0, "{p}");
    assert!(p["link_ms"].as_f64().unwrap() > 0.0, "{p}");
    assert_eq!(p["deps_ms"], 0.0, "{p}");

    // A dependency: its crate is part of the cell's compile time.
    let r = k
        .execute(":dep itoa = \"1\"\nitoa::Buffer::new().format(7).len()")
        .await;
    assert_eq!(r.result_text().as_deref(), Some("1"), "{:?}", r.outputs);
    let p = parts_of(&r);
    assert!(p["deps_ms"].as_f64().unwrap() > 0.0, "{p}");

    // A compile error: rustc ran, nothing was linked or loaded.
    let r = k.execute("let y: u8 = \"no\";").await;
    assert_eq!(r.status(), "error");
    let p = parts_of(&r);
    assert_eq!(
        (p["link_ms"].as_f64(), p["load_ms"].as_f64()),
        (Some(0.0), Some(0.0)),
        "{p}"
    );

    // Commands that build nothing have no parts.
    let r = k.execute(":vars").await;
    assert!(
        r.telemetry()["compile_parts"].is_null(),
        "{}",
        r.telemetry()
    );
}
