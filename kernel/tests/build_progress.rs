//! Compile progress over real ZeroMQ: a cell whose dependencies are not in the (empty)
//! cache shows a progress display updated in place, whose crate names match what the
//! rustc wrapper recorded, and which collapses to one line when compilation is over;
//! `:last_build_log` then shows the build's events.

mod support;

use serde_json::Value;
use support::{TempDir, TestKernel};

const PROGRESS_MIME: &str = "application/vnd.rustmeter.build-progress+json";
const CELL: &str = ":dep serde_json = \"1\"\nserde_json::to_string(&[1u8, 2]).unwrap()";

#[tokio::test(flavor = "multi_thread")]
async fn dependency_compile_shows_progress_then_one_line() {
    let cache = std::env::temp_dir().join(format!("rustmeter-progress-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&cache).unwrap();
    let cache = TempDir(cache);
    let runtime = cache.0.join("runtime");
    let mut k = TestKernel::start_with_env(&[
        ("RUSTMETER_RUNTIME_DIR", runtime.to_str().unwrap()),
        ("RUSTMETER_CACHE_DIR", cache.0.to_str().unwrap()),
        ("RUSTMETER_SHARED_CACHE", ""),
        ("RUSTMETER_DEP_CACHE", "1"),
    ])
    .await;
    let r = k.execute(CELL).await;
    assert_eq!(r.status(), "ok", "{r:?}");
    assert_eq!(r.result_text().as_deref(), Some("\"[1,2]\""), "{r:?}");
    let events_file = runtime.join(format!("kernel-{}/build-events.log", k.pid()));
    let events = std::fs::read_to_string(&events_file).unwrap_or_default();

    let progress: Vec<_> = r
        .outputs
        .iter()
        .filter(|o| !o.content["data"][PROGRESS_MIME].is_null())
        .collect();
    for o in &progress {
        println!(
            "{:>6.1} s {:<22} {}",
            o.at.as_secs_f64(),
            o.msg_type,
            o.content["data"]["text/plain"].as_str().unwrap_or("")
        );
    }
    assert!(!progress.is_empty(), "no progress display: {r:?}");
    assert_eq!(progress[0].msg_type, "display_data", "{progress:?}");
    let id = progress[0].content["transient"]["display_id"].clone();
    assert!(id.is_string(), "{:?}", progress[0]);
    let updates: Vec<_> = progress[1..].to_vec();
    assert!(updates.len() >= 3, "fewer than 3 updates: {progress:?}");
    for u in &updates {
        assert_eq!(u.msg_type, "update_display_data", "{u:?}");
        assert_eq!(u.content["transient"]["display_id"], id, "{u:?}");
    }

    // What the wrapper recorded for this kernel, apart from the cell crate and build scripts.
    let crates: Vec<&str> = events
        .lines()
        .filter_map(|l| l.strip_prefix("end "))
        .filter_map(|l| l.split(' ').next())
        .filter(|c| *c != "ctx" && !c.starts_with("build_script_"))
        .collect();
    for expected in ["serde_json", "serde_core", "itoa"] {
        assert!(crates.contains(&expected), "{expected} not built: {events}");
    }

    let json = |o: &support::Output| o.content["data"][PROGRESS_MIME].clone();
    let bars: Vec<Value> = progress.iter().map(|o| json(o)).collect();
    let mut last_done = 0;
    let mut named = 0;
    for bar in bars.iter().filter(|b| b["finished"] == false) {
        let done = bar["done"].as_u64().unwrap();
        assert!(done >= last_done, "done went back: {bars:?}");
        last_done = done;
        if let Some(total) = bar["total"].as_u64() {
            assert!(total >= done, "{bar}");
        }
        for name in bar["current"].as_array().unwrap() {
            let name = name.as_str().unwrap();
            if name == "your cell" || name == "a build script" {
                continue;
            }
            named += 1;
            assert!(
                events.contains(&format!("start {name} ")),
                "{name} is not in the build events: {events}"
            );
        }
    }
    assert!(named >= 1, "no crate named while compiling: {bars:?}");
    assert!(
        bars.iter().any(|b| b["total"].is_u64()),
        "the total never became known: {bars:?}"
    );
    assert!(last_done > 0, "done never increased: {bars:?}");

    // Never silent for long while compiling.
    let gaps = progress
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64());
    let longest = gaps.fold(0.0, f64::max);
    assert!(longest < 3.0, "{longest:.1} s without a progress update");

    // Collapsed to one line at the end.
    let last = bars.last().unwrap();
    assert_eq!(last["finished"], true, "{bars:?}");
    assert_eq!(
        last["done"].as_u64().unwrap() as usize,
        crates.len(),
        "{events}"
    );
    let line = progress.last().unwrap().content["data"]["text/plain"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(line.starts_with("compiled "), "{line}");
    assert!(!line.contains('\n'), "{line}");

    // The log of that build.
    let log = k.execute(":last_build_log").await;
    let text: String = log
        .of_type("display_data")
        .iter()
        .map(|o| o.content["data"]["text/plain"].as_str().unwrap_or(""))
        .collect();
    assert!(text.contains("end serde_json "), "{text}");
    assert!(text.contains("end ctx pass"), "{text}");
    k.shutdown(false).await;
}
