//! Hand-made Jupyter wire messages for hostile-input tests: HMAC signing with any key,
//! raw multipart frames, and a ZMTP greeting for raw TCP peers.

use bytes::Bytes;
use zeromq::ZmqMessage;

/// The hex HMAC-SHA256 of `parts` under `key`, as Jupyter signs messages.
pub fn sign(key: &str, parts: &[&[u8]]) -> String {
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

pub fn frames(parts: Vec<Vec<u8>>) -> ZmqMessage {
    let parts: Vec<Bytes> = parts.into_iter().map(Bytes::from).collect();
    ZmqMessage::try_from(parts).unwrap()
}

/// Header, parent header, metadata and content of a request.
pub fn request(msg_type: &str, content: &str, msg_id: &str) -> [Vec<u8>; 4] {
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

/// The frames after the routing identities: delimiter, signature under `key`, four parts.
pub fn signed_parts(key: &str, parts: &[Vec<u8>; 4]) -> Vec<Vec<u8>> {
    let sig = sign(key, &[&parts[0], &parts[1], &parts[2], &parts[3]]);
    let mut all = vec![b"<IDS|MSG>".to_vec(), sig.into_bytes()];
    all.extend(parts.iter().cloned());
    all
}

pub fn signed(key: &str, parts: &[Vec<u8>; 4]) -> ZmqMessage {
    frames(signed_parts(key, parts))
}

/// An `execute_request` content running `code`.
pub fn execute_content(code: &str) -> String {
    format!(
        r#"{{"code":{},"silent":false,"store_history":true,"user_expressions":{{}},"allow_stdin":false,"stop_on_error":true}}"#,
        serde_json::to_string(code).unwrap()
    )
}

/// A valid ZMTP 3.1 greeting for the NULL mechanism, as libzmq sends it.
pub fn zmtp_greeting() -> Vec<u8> {
    let mut g = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 1];
    g.extend(b"NULL");
    g.resize(64, 0);
    g
}

/// A long-frame header declaring `size` bytes.
pub fn zmtp_long_header(size: u64) -> Vec<u8> {
    let mut h = vec![0x02];
    h.extend(size.to_be_bytes());
    h
}
