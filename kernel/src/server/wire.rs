//! Reading and writing Jupyter messages on the ZeroMQ sockets.
//!
//! Reading is per message and never fatal: the HMAC is verified (by `jupyter-zmq-client`'s
//! `RawMessage::from_multipart`), a signature seen before is rejected as a replay (as
//! jupyter_client does), and content is parsed leniently where `jupyter-protocol` is
//! stricter than real clients (a `history_request` without `unique`/`n`, an
//! `execute_request` without `user_expressions`). Anything wrong is logged — without the
//! key or the content — and skipped. Writing stamps protocol version 5.4.

use jupyter_protocol::{Header, JupyterMessage, JupyterMessageContent};
use jupyter_zmq_client::RawMessage;
use serde_json::Value;
use std::collections::{HashSet, VecDeque};

pub const PROTOCOL_VERSION: &str = "5.4";

/// Why a message was skipped; shown in the kernel log.
#[derive(Debug)]
pub enum ReadError {
    Frames(String),
    Signature,
    Replay,
    Json(&'static str),
    Content(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Frames(e) => write!(f, "malformed frames ({e})"),
            ReadError::Signature => write!(f, "bad or missing HMAC signature"),
            ReadError::Replay => write!(f, "replayed message (signature seen before)"),
            ReadError::Json(part) => write!(f, "invalid JSON in {part}"),
            ReadError::Content(t) => write!(f, "content does not fit message type {t:?}"),
        }
    }
}

/// Remembers recent signatures to refuse replays; bounded so memory stays flat.
pub struct ReplayGuard {
    seen: HashSet<Vec<u8>>,
    order: VecDeque<Vec<u8>>,
    capacity: usize,
}

impl ReplayGuard {
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// True if `signature` is new (and records it).
    pub fn admit(&mut self, signature: &[u8]) -> bool {
        if signature.is_empty() {
            return true; // no key: nothing to compare
        }
        if !self.seen.insert(signature.to_vec()) {
            return false;
        }
        self.order.push_back(signature.to_vec());
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

const DELIMITER: &[u8] = b"<IDS|MSG>";

/// Verifies and parses one multipart message.
pub fn parse(
    frames: zeromq::ZmqMessage,
    key: &Option<ring::hmac::Key>,
    replays: &mut ReplayGuard,
) -> Result<JupyterMessage, ReadError> {
    let signature = {
        let parts: Vec<&[u8]> = frames.iter().map(|b| b.as_ref()).collect();
        let at = parts
            .iter()
            .position(|p| *p == DELIMITER)
            .ok_or_else(|| ReadError::Frames("no <IDS|MSG> delimiter".into()))?;
        parts.get(at + 1).map(|s| s.to_vec()).unwrap_or_default()
    };
    let raw = RawMessage::from_multipart(frames, key).map_err(|e| match e {
        jupyter_zmq_client::RuntimeError::VerifyError(_)
        | jupyter_zmq_client::RuntimeError::MissingHmac => ReadError::Signature,
        other => classify_frame_error(other),
    })?;
    if key.is_some() && !replays.admit(&signature) {
        return Err(ReadError::Replay);
    }
    let header: Header =
        serde_json::from_slice(&raw.jparts[0]).map_err(|_| ReadError::Json("header"))?;
    let parent_header: Option<Header> = serde_json::from_slice(&raw.jparts[1]).ok();
    let metadata: Value =
        serde_json::from_slice(&raw.jparts[2]).map_err(|_| ReadError::Json("metadata"))?;
    let mut content: Value =
        serde_json::from_slice(&raw.jparts[3]).map_err(|_| ReadError::Json("content"))?;
    fill_defaults(&header.msg_type, &mut content);
    let content = JupyterMessageContent::from_type_and_content(&header.msg_type, content)
        .map_err(|_| ReadError::Content(header.msg_type.clone()))?;
    Ok(JupyterMessage {
        zmq_identities: raw.zmq_identities,
        header,
        parent_header,
        metadata,
        content,
        buffers: raw.jparts[4..].to_vec(),
        channel: None,
    })
}

fn classify_frame_error(e: jupyter_zmq_client::RuntimeError) -> ReadError {
    let text = e.to_string();
    if text.to_lowercase().contains("hmac") || text.to_lowercase().contains("decode") {
        ReadError::Signature
    } else {
        ReadError::Frames(text)
    }
}

/// Adds the fields real clients omit and the protocol crate requires.
fn fill_defaults(msg_type: &str, content: &mut Value) {
    let Some(obj) = content.as_object_mut() else {
        return;
    };
    let mut default = |k: &str, v: Value| {
        obj.entry(k.to_string()).or_insert(v);
    };
    match msg_type {
        "history_request" => {
            default("output", Value::Bool(false));
            default("raw", Value::Bool(true));
            default("hist_access_type", Value::String("tail".into()));
            default("n", Value::from(10));
            default("unique", Value::Bool(false));
            default("pattern", Value::String("*".into()));
            default("start", Value::from(0));
            default("stop", Value::from(i32::MAX));
            default("session", Value::from(0));
        }
        "execute_request" => {
            default("silent", Value::Bool(false));
            default("store_history", Value::Bool(true));
            default("user_expressions", Value::Object(Default::default()));
        }
        "inspect_request" => {
            default("detail_level", Value::from(0));
        }
        "comm_info_request" => {}
        "shutdown_request" => default("restart", Value::Bool(false)),
        _ => {}
    }
    // `null` where a number is expected: treat as absent.
    if msg_type == "history_request" {
        for k in ["n", "start", "stop", "session"] {
            if obj.get(k).is_some_and(Value::is_null) {
                obj.remove(k);
            }
        }
        let mut default = |k: &str, v: Value| {
            obj.entry(k.to_string()).or_insert(v);
        };
        default("n", Value::from(10));
        default("start", Value::from(0));
        default("stop", Value::from(i32::MAX));
        default("session", Value::from(0));
    }
}

/// A reply or broadcast that is a child of `parent`, stamped with this protocol version.
pub fn child_of(
    content: impl Into<JupyterMessageContent>,
    parent: &JupyterMessage,
) -> JupyterMessage {
    let mut message = JupyterMessage::new(content.into(), Some(parent));
    message.header.version = PROTOCOL_VERSION.to_string();
    message.header.username = "kernel".to_string();
    message
}

/// A message with no parent (the iopub welcome, start-up status).
pub fn orphan(content: impl Into<JupyterMessageContent>) -> JupyterMessage {
    let mut message = JupyterMessage::new(content.into(), None);
    message.header.version = PROTOCOL_VERSION.to_string();
    message.header.username = "kernel".to_string();
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_guard_is_bounded() {
        let mut g = ReplayGuard::new(2);
        assert!(g.admit(b"a"));
        assert!(!g.admit(b"a"));
        assert!(g.admit(b"b"));
        assert!(g.admit(b"c"));
        assert!(g.admit(b"a"), "evicted after capacity");
        assert!(g.admit(b""), "unsigned messages are not replays");
        assert!(g.admit(b""));
    }

    #[test]
    fn lenient_history_request_parses() {
        let mut content = serde_json::json!({"hist_access_type": "tail", "output": false, "raw": true, "n": null});
        fill_defaults("history_request", &mut content);
        assert!(JupyterMessageContent::from_type_and_content("history_request", content).is_ok());
        let mut content = serde_json::json!({"hist_access_type": "search", "pattern": "a*", "output": false, "raw": true});
        fill_defaults("history_request", &mut content);
        assert!(JupyterMessageContent::from_type_and_content("history_request", content).is_ok());
    }

    #[test]
    fn header_version_is_54() {
        let m = orphan(jupyter_protocol::Status::idle());
        assert_eq!(m.header.version, "5.4");
    }
}
