//! Bad input on the shell socket is skipped message by message: garbage frames, wrong
//! signatures, replays, malformed JSON, unknown types. None of it runs code; the kernel
//! keeps answering.

mod support;

use jupyter_protocol::{
    ExecuteRequest, ExecutionState, JupyterMessage, JupyterMessageContent, KernelInfoRequest, Stdio,
};
use std::time::{Duration, Instant};
use support::forge::{frames, request, signed};
use support::TestKernel;
use zeromq::{Socket, SocketRecv, SocketSend};

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_forged_messages_are_skipped() {
    let mut k = TestKernel::start().await;
    let marker = std::env::temp_dir().join(format!("rustmeter-forged-{}", uuid::Uuid::new_v4()));
    let code = format!(
        "std::fs::write(\"{}\", \"ran\").unwrap();",
        marker.display()
    );
    let execute = format!(
        r#"{{"code":{},"silent":false,"store_history":true,"user_expressions":{{}},"allow_stdin":false,"stop_on_error":true}}"#,
        serde_json::to_string(&code).unwrap()
    );

    let mut raw = zeromq::DealerSocket::new();
    raw.connect(&k.info.shell_url()).await.unwrap();
    let key = k.info.key.clone();

    // Garbage: no delimiter, a lone delimiter, too few parts.
    raw.send(frames(vec![b"hello".to_vec()])).await.unwrap();
    raw.send(frames(vec![b"<IDS|MSG>".to_vec()])).await.unwrap();
    raw.send(frames(vec![
        b"<IDS|MSG>".to_vec(),
        b"00".to_vec(),
        b"{}".to_vec(),
    ]))
    .await
    .unwrap();
    // A forged execute: wrong key, then no signature, then a non-hex signature.
    raw.send(signed(
        "not-the-key",
        &request("execute_request", &execute, "forged-1"),
    ))
    .await
    .unwrap();
    let mut unsigned = vec![b"<IDS|MSG>".to_vec(), Vec::new()];
    unsigned.extend(request("execute_request", &execute, "forged-2"));
    raw.send(frames(unsigned)).await.unwrap();
    let mut nonhex = vec![b"<IDS|MSG>".to_vec(), b"zz-not-hex".to_vec()];
    nonhex.extend(request("execute_request", &execute, "forged-3"));
    raw.send(frames(nonhex)).await.unwrap();
    // Validly signed but malformed: bad JSON, missing fields, invalid UTF-8, unknown type.
    raw.send(signed(
        &key,
        &request("execute_request", "{not json", "bad-json"),
    ))
    .await
    .unwrap();
    raw.send(signed(
        &key,
        &request("execute_request", "{}", "missing-code"),
    ))
    .await
    .unwrap();
    let mut bad_utf8 = request("kernel_info_request", "{}", "utf8");
    bad_utf8[0] = vec![0xff, 0xfe, 0xfd];
    raw.send(signed(&key, &bad_utf8)).await.unwrap();
    raw.send(signed(&key, &request("no_such_request", "{}", "unknown")))
        .await
        .unwrap();

    // A valid request is answered; the same bytes again (a replay) are not.
    let valid = request("kernel_info_request", "{}", "valid-1");
    raw.send(signed(&key, &valid)).await.unwrap();
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), raw.recv())
        .await
        .expect("reply")
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(reply.get(2).unwrap()).unwrap();
    assert_eq!(header["msg_type"], "kernel_info_reply");
    raw.send(signed(&key, &valid)).await.unwrap();
    let replayed = tokio::time::timeout(std::time::Duration::from_secs(2), raw.recv()).await;
    assert!(replayed.is_err(), "a replayed message was answered");

    // The kernel still works, and none of the forged code ran.
    assert_eq!(
        k.execute("6 * 7").await.result_text().as_deref(),
        Some("42")
    );
    assert!(!marker.exists(), "forged or malformed code was executed");
    assert!(k.process.try_wait().unwrap().is_none(), "kernel died");
}

/// One million printed lines arrive in batches, the browser gets at most the output limit,
/// the rest lands in the file the note names, and control answers kernel_info throughout.
#[tokio::test(flavor = "multi_thread")]
async fn an_output_flood_is_delivered_in_batches_then_truncated_to_a_file() {
    const LINES: usize = 1_000_000;
    const PROBE_LIMIT: Duration = Duration::from_secs(5);
    let mut k = TestKernel::start().await;
    let code = format!("for i in 0..{LINES} {{ println!(\"line {{i}}\"); }}");
    let id = k.send_execute(ExecuteRequest::new(code)).await;
    let started = Instant::now();
    let mut outputs: Vec<(Stdio, String)> = Vec::new();
    let mut probes: Vec<Duration> = Vec::new();
    let mut probe_sent: Option<Instant> = None;
    let mut next_probe = tokio::time::Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "flood ended in time"
        );
        tokio::select! {
            m = k.iopub.read() => {
                let m = m.unwrap();
                if m.parent_header.as_ref().map(|h| h.msg_id.as_str()) != Some(id.as_str()) {
                    continue;
                }
                match &m.content {
                    JupyterMessageContent::StreamContent(s) => {
                        outputs.push((s.name.clone(), s.text.clone()));
                    }
                    JupyterMessageContent::Status(s) if s.execution_state == ExecutionState::Idle => break,
                    _ => {}
                }
            }
            reply = k.control.read(), if probe_sent.is_some() => {
                assert_eq!(reply.unwrap().header.msg_type, "kernel_info_reply");
                probes.push(probe_sent.take().unwrap().elapsed());
            }
            _ = tokio::time::sleep_until(next_probe), if probe_sent.is_none() => {
                let probe: JupyterMessage = KernelInfoRequest {}.into();
                k.control.send(probe).await.unwrap();
                probe_sent = Some(Instant::now());
                next_probe = tokio::time::Instant::now() + Duration::from_millis(250);
            }
        }
        if let Some(sent) = probe_sent {
            assert!(
                sent.elapsed() < PROBE_LIMIT,
                "control stopped answering during the flood"
            );
        }
    }
    let flood_time = started.elapsed();
    if let Some(sent) = probe_sent {
        tokio::time::timeout(PROBE_LIMIT, k.control.read())
            .await
            .expect("the last kernel_info probe is answered")
            .unwrap();
        probes.push(sent.elapsed());
    }
    let reply = k.read_shell_reply(Duration::from_secs(30)).await;
    assert_eq!(reply.header.msg_type, "execute_reply");

    let stdout: Vec<&str> = outputs
        .iter()
        .filter(|(name, _)| matches!(name, Stdio::Stdout))
        .map(|(_, text)| text.as_str())
        .collect();
    let shown: String = stdout.concat();
    assert!(
        stdout.len() < LINES / 100,
        "lines are batched, not one message each: {}",
        stdout.len()
    );
    assert!(
        shown.len() as u64 <= 2_000_000,
        "{} bytes shown",
        shown.len()
    );
    assert!(shown.starts_with("line 0\n") && shown.ends_with('\n'));
    let notes: String = outputs
        .iter()
        .filter(|(name, _)| matches!(name, Stdio::Stderr))
        .map(|(_, text)| text.as_str())
        .collect();
    let path = notes
        .split("the rest in ")
        .nth(1)
        .and_then(|s| s.lines().next())
        .unwrap_or_else(|| panic!("a note names the file: {notes}"));
    let rest = std::fs::read_to_string(path).unwrap();
    let shown_lines = shown.lines().count();
    assert_eq!(shown_lines + rest.lines().count(), LINES, "nothing is lost");
    assert!(rest.ends_with(&format!("line {}\n", LINES - 1)));
    probes.sort();
    println!(
        "flood of {LINES} lines: {:.1} s, {} stdout messages, {} bytes ({shown_lines} lines) shown, \
         {} bytes saved to the file; control kernel_info during it: {} answered, median {:.1} ms, max {:.1} ms",
        flood_time.as_secs_f64(),
        stdout.len(),
        shown.len(),
        rest.len(),
        probes.len(),
        probes[probes.len() / 2].as_secs_f64() * 1e3,
        probes.last().unwrap().as_secs_f64() * 1e3,
    );
    let _ = std::fs::remove_file(path);
    // The kernel is responsive right after.
    assert_eq!(k.execute("1 + 1").await.result_text().as_deref(), Some("2"));
}
