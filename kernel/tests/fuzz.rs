//! Seeded fuzzing of the shell and control channels: forged,
//! malformed, replayed and validly-signed-but-malformed messages, plus raw ZMTP garbage on
//! fresh TCP connections to every port. Every message that could run code carries code
//! that writes a marker file; the marker must never appear. A kernel_info on control and
//! on shell (on the fuzzed connections and on clean ones) must answer during the run,
//! every `PROBE_EVERY` cases, not only after it.
//!
//! `RUSTMETER_FUZZ_SEED=N` replays a run (the seed is printed), `RUSTMETER_FUZZ_CASES=N`
//! changes its length (default 1,200).

mod support;

use jupyter_protocol::{JupyterMessage, KernelInfoRequest};
use std::time::{Duration, Instant};
use support::forge::{execute_content, frames, request, signed_parts, zmtp_greeting};
use support::{alive, Options, TestKernel};
use tokio::io::AsyncWriteExt;
use zeromq::{Socket, SocketRecv, SocketSend};

const DEFAULT_SEED: u64 = 0x7275_7374_6d65_7465;
const PROBE_EVERY: usize = 50;
const PROBE_LIMIT: Duration = Duration::from_secs(5);
/// The wire guard's default frame limit (`RUSTMETER_WIRE_MAX_FRAME`).
const FRAME_LIMIT: u64 = 64 << 20;

/// splitmix64: small, seedable, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}")))
}

/// What one case sends.
enum Case {
    Multipart(Vec<Vec<u8>>),
    Zmtp { port_index: usize, bytes: Vec<u8> },
}

const KINDS: [&str; 13] = [
    "random frames",
    "truncated multipart",
    "wrong or broken signature",
    "missing signature",
    "wrong key",
    "replay of a valid message",
    "signed, malformed JSON",
    "signed, missing fields",
    "signed, unknown msg_type",
    "signed, invalid UTF-8",
    "signed, wrong field types",
    "signed execute on control",
    "raw ZMTP garbage",
];

struct Forger {
    key: String,
    marker_code: String,
    replayable: Vec<Vec<Vec<u8>>>,
}

impl Forger {
    fn execute(&self, id: String) -> [Vec<u8>; 4] {
        request("execute_request", &execute_content(&self.marker_code), &id)
    }

    /// Returns the case, and whether it must go to control (else: either channel).
    fn case(&self, kind: usize, rng: &mut Rng, n: usize) -> (Case, bool) {
        let id = format!("fuzz-{n}");
        let key = &self.key;
        let multipart = |parts| (Case::Multipart(parts), false);
        match kind {
            0 => multipart((0..1 + rng.below(6)).map(|_| rng.bytes(200)).collect()),
            1 => {
                let mut parts = signed_parts(key, &self.execute(id));
                if rng.below(2) == 0 {
                    parts.truncate(rng.below(parts.len()));
                } else {
                    let last = parts.last_mut().unwrap();
                    last.truncate(rng.below(last.len()));
                }
                multipart(parts)
            }
            2 => {
                let mut parts = signed_parts(key, &self.execute(id));
                let signature = &mut parts[1];
                match rng.below(4) {
                    0 => {
                        let at = rng.below(signature.len());
                        signature[at] = if signature[at] == b'0' { b'1' } else { b'0' };
                    }
                    1 => signature.truncate(32),
                    2 => signature.extend(b"00"),
                    _ => *signature = rng.bytes(80),
                }
                multipart(parts)
            }
            3 => {
                let mut parts = signed_parts(key, &self.execute(id));
                if rng.below(2) == 0 {
                    parts[1].clear();
                } else {
                    parts.remove(1);
                }
                multipart(parts)
            }
            4 => multipart(signed_parts(
                &uuid::Uuid::new_v4().to_string(),
                &self.execute(id),
            )),
            5 => multipart(self.replayable[rng.below(self.replayable.len())].clone()),
            6 => {
                let mut parts = self.execute(id);
                let which = [0, 2, 3][rng.below(3)];
                let cut = rng.below(parts[which].len());
                parts[which].truncate(cut);
                parts[which].extend(rng.bytes(3));
                multipart(signed_parts(key, &parts))
            }
            7 => {
                let mut parts = self.execute(id);
                if rng.below(2) == 0 {
                    let field =
                        ["msg_id", "username", "session", "msg_type", "version"][rng.below(5)];
                    let mut header: serde_json::Value = serde_json::from_slice(&parts[0]).unwrap();
                    header.as_object_mut().unwrap().remove(field);
                    parts[0] = header.to_string().into_bytes();
                } else {
                    parts[3] = br#"{"silent":false,"store_history":true}"#.to_vec();
                }
                multipart(signed_parts(key, &parts))
            }
            8 => {
                let msg_type = match rng.below(3) {
                    0 => "execute_requests".to_string(),
                    1 => String::new(),
                    _ => (0..1 + rng.below(20))
                        .map(|_| (b'a' + rng.below(26) as u8) as char)
                        .collect(),
                };
                let content = execute_content(&self.marker_code);
                multipart(signed_parts(key, &request(&msg_type, &content, &id)))
            }
            9 => {
                let mut parts = self.execute(id);
                let which = if rng.below(2) == 0 { 0 } else { 3 };
                // Inside a JSON string, so only the encoding is wrong.
                let at = parts[which].iter().position(|b| *b == b'"').unwrap() + 1;
                parts[which].insert(at, [0xff, 0xc0, 0x80, 0xfe][rng.below(4)]);
                multipart(signed_parts(key, &parts))
            }
            10 => {
                let code = serde_json::to_string(&self.marker_code).unwrap();
                let content = match rng.below(5) {
                    0 => r#"{"code":42,"silent":false,"store_history":true}"#.to_string(),
                    1 => format!(r#"{{"code":{code},"silent":"no","store_history":true}}"#),
                    2 => format!(r#"{{"code":[{code}],"silent":false}}"#),
                    3 => format!(r#"[{code}]"#),
                    _ => format!(r#"{{"code":{code},"user_expressions":"x"}}"#),
                };
                let mut parts = request("execute_request", &content, &id);
                if rng.below(4) == 0 {
                    parts[0] = br#"{"msg_id":7,"username":"t","session":"s","msg_type":"execute_request","version":"5.4"}"#.to_vec();
                }
                multipart(signed_parts(key, &parts))
            }
            11 => (Case::Multipart(signed_parts(key, &self.execute(id))), true),
            _ => (zmtp_garbage(rng), false),
        }
    }
}

fn zmtp_garbage(rng: &mut Rng) -> Case {
    let port_index = rng.below(5);
    let bytes = match rng.below(5) {
        0 => rng.bytes(200),
        1 => {
            let mut bytes = zmtp_greeting();
            bytes.push(0x08 | (rng.next() as u8 & 0xf8));
            bytes.extend(rng.bytes(50));
            bytes
        }
        2 => {
            let mut bytes = zmtp_greeting();
            let size = FRAME_LIMIT + 1 + rng.next() % (u64::MAX - FRAME_LIMIT - 1);
            bytes.push(0x02 | (rng.next() as u8 & 0x05));
            bytes.extend(size.to_be_bytes());
            bytes
        }
        3 => zmtp_greeting()[..rng.below(64)].to_vec(),
        _ => {
            // Well-framed, random content: passes the guard, zeromq must cope.
            let mut bytes = zmtp_greeting();
            for _ in 0..1 + rng.below(4) {
                let body = rng.bytes(60);
                bytes.push([0x00, 0x01, 0x04][rng.below(3)]);
                bytes.push(body.len() as u8);
                bytes.extend(body);
            }
            bytes
        }
    };
    Case::Zmtp { port_index, bytes }
}

async fn control_kernel_info(k: &mut TestKernel) -> Duration {
    let started = Instant::now();
    let message: JupyterMessage = KernelInfoRequest {}.into();
    k.control.send(message).await.unwrap();
    let reply = tokio::time::timeout(PROBE_LIMIT, k.control.read())
        .await
        .expect("control answers kernel_info during the fuzz run")
        .unwrap();
    assert_eq!(reply.header.msg_type, "kernel_info_reply");
    started.elapsed()
}

async fn shell_kernel_info(k: &mut TestKernel) -> Duration {
    let started = Instant::now();
    let reply = k.request(KernelInfoRequest {}.into(), PROBE_LIMIT).await;
    assert_eq!(reply["status"], "ok");
    started.elapsed()
}

/// A signed kernel_info on a raw socket; the next reply there must be its answer.
async fn raw_kernel_info(
    socket: &mut zeromq::DealerSocket,
    key: &str,
    name: &str,
    n: usize,
) -> Duration {
    let started = Instant::now();
    let id = format!("probe-{name}-{n}");
    let parts = signed_parts(key, &request("kernel_info_request", "{}", &id));
    socket.send(frames(parts)).await.unwrap();
    let reply = any_reply(socket, PROBE_LIMIT).await;
    assert_eq!(
        reply,
        Some(("kernel_info_reply".to_string(), id)),
        "{name} answered the probe after case {n}, and nothing else"
    );
    started.elapsed()
}

/// A reply that arrives on a raw socket within `wait`: (msg_type, parent msg_id).
async fn any_reply(socket: &mut zeromq::DealerSocket, wait: Duration) -> Option<(String, String)> {
    let frames = tokio::time::timeout(wait, socket.recv()).await.ok()?.ok()?;
    let at = frames.iter().position(|f| f.as_ref() == b"<IDS|MSG>")?;
    let header: serde_json::Value = serde_json::from_slice(frames.get(at + 2)?).ok()?;
    let parent: serde_json::Value = serde_json::from_slice(frames.get(at + 3)?).ok()?;
    Some((
        header["msg_type"].as_str()?.to_string(),
        parent["msg_id"].as_str().unwrap_or("").to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn fuzzed_hostile_input_never_runs_code_and_never_stops_the_kernel() {
    let seed = env_number("RUSTMETER_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let cases = env_number("RUSTMETER_FUZZ_CASES").unwrap_or(1200) as usize;
    println!("fuzz seed {seed:#x} ({cases} cases); replay with RUSTMETER_FUZZ_SEED={seed:#x}");
    let mut rng = Rng(seed);
    let mut k = TestKernel::start_with(Options {
        capture_log: true,
        ..Default::default()
    })
    .await;
    let scratch = std::env::temp_dir().join(format!("rustmeter-fuzz-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch).unwrap();
    let marker = scratch.join("forged-code-ran");
    let counter = scratch.join("valid-runs");
    let key = k.info.key.clone();
    let mut shell = zeromq::DealerSocket::new();
    shell.connect(&k.info.shell_url()).await.unwrap();
    let mut control = zeromq::DealerSocket::new();
    control.connect(&k.info.control_url()).await.unwrap();

    // One valid execute (appends a line to `counter`) and one valid kernel_info: their
    // exact frames are what the replay cases resend.
    let counting = format!(
        "{{ use std::io::Write; std::fs::OpenOptions::new().create(true).append(true).open({:?}).unwrap().write_all(b\"ran\\n\").unwrap(); }}",
        counter.display().to_string()
    );
    let valid_execute = signed_parts(
        &key,
        &request("execute_request", &execute_content(&counting), "valid-exec"),
    );
    shell.send(frames(valid_execute.clone())).await.unwrap();
    let valid_info = signed_parts(&key, &request("kernel_info_request", "{}", "valid-info"));
    control.send(frames(valid_info.clone())).await.unwrap();
    assert!(any_reply(&mut control, Duration::from_secs(10))
        .await
        .is_some());
    assert_eq!(
        any_reply(&mut shell, Duration::from_secs(300)).await,
        Some(("execute_reply".into(), "valid-exec".into()))
    );
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "ran\n");

    let forger = Forger {
        key: key.clone(),
        marker_code: format!(
            "std::fs::write({:?}, \"ran\").unwrap();",
            marker.display().to_string()
        ),
        replayable: vec![valid_execute, valid_info],
    };
    let ports = [
        k.info.shell_port,
        k.info.iopub_port,
        k.info.stdin_port,
        k.info.control_port,
        k.info.hb_port,
    ];
    let mut counts = [0usize; KINDS.len()];
    let mut probes = Vec::new();
    let started = Instant::now();
    for n in 0..cases {
        if n == cases / 3 || n == 2 * cases / 3 {
            // 50 MB: forged on shell, then validly signed but cut short on control.
            let padding = "x".repeat(50_000_000);
            let content = format!(r#"{{"code":{:?},"pad":"{padding}"}}"#, forger.marker_code);
            let parts = request("execute_request", &content, &format!("huge-{n}"));
            if n == cases / 3 {
                shell
                    .send(frames(signed_parts("forged", &parts)))
                    .await
                    .unwrap();
            } else {
                let mut parts = parts;
                parts[3].truncate(parts[3].len() - 2);
                control
                    .send(frames(signed_parts(&key, &parts)))
                    .await
                    .unwrap();
            }
        }
        let kind = rng.below(KINDS.len());
        counts[kind] += 1;
        let (case, control_only) = forger.case(kind, &mut rng, n);
        match case {
            Case::Multipart(parts) => {
                let message = if parts.is_empty() {
                    frames(vec![Vec::new()])
                } else {
                    frames(parts)
                };
                let socket = if control_only || rng.below(2) == 0 {
                    &mut control
                } else {
                    &mut shell
                };
                socket.send(message).await.unwrap();
            }
            Case::Zmtp { port_index, bytes } => {
                let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", ports[port_index]))
                    .await
                    .unwrap();
                let _ = raw.write_all(&bytes).await;
                let _ = raw.shutdown().await;
            }
        }
        if (n + 1) % PROBE_EVERY == 0 {
            // On the fuzzed connections themselves: each answer also proves every case
            // sent before it on that connection was read, and none of them was answered.
            for (name, socket) in [("shell", &mut shell), ("control", &mut control)] {
                probes.push(raw_kernel_info(socket, &key, name, n).await);
            }
            probes.push(control_kernel_info(&mut k).await);
            probes.push(shell_kernel_info(&mut k).await);
        }
    }
    let fuzz_time = started.elapsed();

    // Nothing sent above deserved an answer on the raw sockets.
    for (name, socket) in [("shell", &mut shell), ("control", &mut control)] {
        if let Some((msg_type, parent)) = any_reply(socket, Duration::from_secs(2)).await {
            panic!("a forged, malformed or replayed message was answered on {name}: {msg_type} to {parent}");
        }
    }
    probes.push(control_kernel_info(&mut k).await);
    assert_eq!(
        k.execute("6 * 7").await.result_text().as_deref(),
        Some("42")
    );
    assert!(!marker.exists(), "forged or malformed code was executed");
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        "ran\n",
        "a replayed execute ran again"
    );
    assert!(alive(k.pid()));

    probes.sort();
    let skipped = k.log_text().matches("skipped a message").count();
    let refused = k.log_text().matches("wire guard:").count();
    println!(
        "{cases} cases in {:.1} s; kernel_info probes during the run: {} answered, median {:.1} ms, max {:.1} ms",
        fuzz_time.as_secs_f64(),
        probes.len(),
        probes[probes.len() / 2].as_secs_f64() * 1e3,
        probes.last().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "kernel log: {skipped} messages skipped, {refused} connections refused by the wire guard"
    );
    for (kind, count) in KINDS.iter().zip(counts) {
        println!("  {count:5}  {kind}");
    }
    let _ = std::fs::remove_dir_all(scratch);
}
