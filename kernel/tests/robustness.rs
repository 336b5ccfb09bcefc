//! Bad input on the shell socket is skipped message by message: garbage frames, wrong
//! signatures, replays, malformed JSON, unknown types. None of it runs code; the kernel
//! keeps answering.

mod support;

use bytes::Bytes;
use support::TestKernel;
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

fn sign(key: &str, parts: &[&[u8]]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    ctx.sign()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn frames(parts: Vec<Vec<u8>>) -> ZmqMessage {
    let parts: Vec<Bytes> = parts.into_iter().map(Bytes::from).collect();
    ZmqMessage::try_from(parts).unwrap()
}

fn request(msg_type: &str, content: &str, msg_id: &str) -> [Vec<u8>; 4] {
    let header = format!(
        r#"{{"msg_id":"{msg_id}","username":"t","session":"s","date":"2026-01-01T00:00:00Z","msg_type":"{msg_type}","version":"5.4"}}"#
    );
    [
        header.into_bytes(),
        b"{}".to_vec(),
        b"{}".to_vec(),
        content.as_bytes().to_vec(),
    ]
}

fn signed(key: &str, parts: &[Vec<u8>; 4]) -> ZmqMessage {
    let sig = sign(key, &[&parts[0], &parts[1], &parts[2], &parts[3]]);
    let mut all = vec![b"<IDS|MSG>".to_vec(), sig.into_bytes()];
    all.extend(parts.iter().cloned());
    frames(all)
}

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

#[tokio::test(flavor = "multi_thread")]
async fn an_output_flood_is_delivered_in_batches_then_truncated_to_a_file() {
    let mut k = TestKernel::start().await;
    let r = k
        .execute("for i in 0..300_000 { println!(\"line {i}\"); }")
        .await;
    assert_eq!(r.status(), "ok");
    let shown = r.stdout();
    let streams = r.of_type("stream").len();
    assert!(
        streams < 10_000,
        "lines are batched, not one message each: {streams}"
    );
    assert!(
        shown.len() as u64 <= 2_000_000,
        "{} bytes shown",
        shown.len()
    );
    assert!(shown.starts_with("line 0\n") && shown.ends_with('\n'));
    let notes: String = r
        .outputs
        .iter()
        .filter(|o| o.msg_type == "stream" && o.content["name"] == "stderr")
        .map(|o| o.content["text"].as_str().unwrap().to_string())
        .collect();
    let path = notes
        .split("the rest in ")
        .nth(1)
        .and_then(|s| s.lines().next())
        .unwrap_or_else(|| panic!("a note names the file: {notes}"));
    let rest = std::fs::read_to_string(path).unwrap();
    let shown_lines = shown.lines().count();
    assert_eq!(
        shown_lines + rest.lines().count(),
        300_000,
        "nothing is lost"
    );
    assert!(rest.ends_with("line 299999\n"));
    let _ = std::fs::remove_file(path);
    // The kernel is responsive right after.
    assert_eq!(k.execute("1 + 1").await.result_text().as_deref(), Some("2"));
}
