//! A user-code process that dies — segfault, abort, stack overflow, `process::exit` — ends
//! only its cell: a clear error naming the cause and the variables lost, a footer with
//! status `crashed`, and a working kernel for the next cell.

mod support;

use support::TestKernel;

#[tokio::test(flavor = "multi_thread")]
async fn crashes_end_only_their_cell() {
    let mut k = TestKernel::start().await;
    let cases = [
        (
            "unsafe { std::ptr::write_volatile(8usize as *mut u8, 1) }",
            "segmentation fault",
        ),
        ("std::process::abort();", "abort()"),
        (
            "fn deep(n: u64) -> u64 { if n == 0 { 0 } else { 1 + deep(n - 1) } }\ndeep(u64::MAX)",
            "stack overflow",
        ),
        ("std::process::exit(3);", "exited with status 3"),
    ];
    for (code, cause) in cases {
        assert_eq!(k.execute("let kept = 5;").await.status(), "ok");
        let r = k.execute(code).await;
        assert_eq!(r.status(), "error", "{code}: {r:?}");
        assert_eq!(r.reply["ename"], "crash", "{code}");
        let evalue = r.reply["evalue"].as_str().unwrap();
        assert!(evalue.contains(cause), "{code}: {evalue}");
        assert!(evalue.contains("kept"), "names the lost variable: {evalue}");
        assert_eq!(r.telemetry()["status"], "crashed", "{code}");
        let last = r.last_traceback_line();
        assert!(last.starts_with("✗ crashed"), "footer line: {last}");
        assert_eq!(
            k.execute("40 + 2").await.result_text().as_deref(),
            Some("42"),
            "after {code}"
        );
    }
    assert!(
        k.process.try_wait().unwrap().is_none(),
        "the kernel survived"
    );
}
