//! The wire guard in front of the zeromq sockets: a peer declaring a huge ZMTP frame is
//! disconnected (without the guard the same bytes abort the kernel), the kernel listens
//! only where the connection file says, ipc endpoints are owner-only, and neither the key
//! nor the connection file's path reaches the log or a cell's outputs.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::{Duration, Instant};
use support::forge::{frames, request, signed, zmtp_greeting, zmtp_long_header};
use support::sockets::{tcp_listeners, unix_listeners};
use support::{alive, Options, TestKernel};
use zeromq::{Socket, SocketSend};

const HUGE: u64 = 1 << 62;

/// Greets like a ZMTP peer, declares a `HUGE` frame, and reports whether the other side
/// then closed the connection (as the guard does) within 5 s.
fn declare_huge_frame(mut stream: impl Read + Write) -> bool {
    stream.write_all(&zmtp_greeting()).unwrap();
    let mut their_greeting = [0u8; 64];
    stream.read_exact(&mut their_greeting).unwrap();
    assert_eq!(their_greeting[0], 0xff, "the kernel's greeting reaches us");
    let _ = stream.write_all(&zmtp_long_header(HUGE));
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn tcp(port: u16) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn ports(k: &TestKernel) -> [u16; 5] {
    let i = &k.info;
    [
        i.shell_port,
        i.iopub_port,
        i.stdin_port,
        i.control_port,
        i.hb_port,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_declared_frame_closes_that_connection_on_every_channel() {
    let mut k = TestKernel::start_with(Options {
        capture_log: true,
        ..Default::default()
    })
    .await;
    for port in ports(&k) {
        assert!(
            declare_huge_frame(tcp(port)),
            "port {port}: the connection was not closed"
        );
    }
    let reply = k
        .request(
            jupyter_protocol::KernelInfoRequest {}.into(),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(reply["status"], "ok");
    assert!(alive(k.pid()));
    let log = k.log_text();
    let refusals = log
        .matches(&format!("declared a {HUGE}-byte frame, above the"))
        .count();
    assert_eq!(refusals, 5, "one log line per channel:\n{log}");
    // 50 MB is under the default limit: it reaches the signature check and is refused there.
    let mut raw = zeromq::DealerSocket::new();
    raw.connect(&k.info.shell_url()).await.unwrap();
    let content = format!(r#"{{"padding":"{}"}}"#, "x".repeat(50_000_000));
    raw.send(signed(
        "not-the-key",
        &request("kernel_info_request", &content, "big"),
    ))
    .await
    .unwrap();
    let reply = k
        .request(
            jupyter_protocol::KernelInfoRequest {}.into(),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(reply["status"], "ok");
    // It travels on its own connection, so it may be read after the kernel_info above.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !k.log_text().contains("bad or missing HMAC signature") {
        assert!(
            Instant::now() < deadline,
            "the 50 MB forgery was not refused at the signature check:\n{}",
            k.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(alive(k.pid()));
}

/// Without the guard, the same bytes abort the kernel: what the guard is for. If this
/// fails after a `zeromq` upgrade, zeromq itself now refuses huge frames.
#[tokio::test(flavor = "multi_thread")]
async fn without_the_guard_a_huge_declared_frame_aborts_the_kernel() {
    let mut k = TestKernel::start_with_env(&[("RUSTMETER_WIRE_GUARD", "0")]).await;
    declare_huge_frame(tcp(k.info.shell_port));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = k.process.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "zeromq survived a 2^62-byte frame without the guard"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("unguarded kernel ended with {status:?}");
    assert!(!status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kernel_listens_only_on_the_connection_files_ip_and_ports() {
    let k = TestKernel::start().await;
    let expected: BTreeSet<(String, u16)> = ports(&k)
        .into_iter()
        .map(|p| ("127.0.0.1".to_string(), p))
        .collect();
    assert_eq!(tcp_listeners(k.pid()), expected);
    // zeromq's own sockets are ipc, inside the kernel's private work folder.
    let private = unix_listeners(k.pid());
    assert_eq!(private.len(), 5, "{private:?}");
    for path in private {
        let dir = std::path::Path::new(&path).parent().unwrap();
        assert!(
            dir.ends_with(format!("kernel-{}", k.pid())),
            "{path} is outside the work folder"
        );
        let mode = std::fs::metadata(dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ipc_connection_file_gets_owner_only_sockets_and_the_same_guard() {
    let mut k = TestKernel::start_with(Options {
        ipc: true,
        capture_log: true,
        ..Default::default()
    })
    .await;
    for port in ports(&k) {
        let path = format!("{}-{port}", k.info.ip);
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket(), "{path}");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{path}");
    }
    assert!(tcp_listeners(k.pid()).is_empty(), "no TCP port is opened");
    let shell = format!("{}-{}", k.info.ip, k.info.shell_port);
    let stream = std::os::unix::net::UnixStream::connect(shell).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(declare_huge_frame(stream), "the ipc connection was closed");
    let r = k.execute("6 * 7").await;
    assert_eq!(r.result_text().as_deref(), Some("42"));
    assert!(k.log_text().contains("declared a"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_and_connection_file_never_reach_the_log_or_outputs() {
    let mut k = TestKernel::start_with(Options {
        capture_log: true,
        ..Default::default()
    })
    .await;
    let key = k.info.key.clone();
    let path = k.connection_file.display().to_string();
    // Forged and malformed messages make the kernel log about them.
    let mut raw = zeromq::DealerSocket::new();
    raw.connect(&k.info.shell_url()).await.unwrap();
    raw.send(signed(
        "wrong",
        &request("kernel_info_request", "{}", "forged"),
    ))
    .await
    .unwrap();
    raw.send(signed(&key, &request("execute_request", "{", "bad-json")))
        .await
        .unwrap();
    raw.send(frames(vec![
        b"<IDS|MSG>".to_vec(),
        key.clone().into_bytes(),
    ]))
    .await
    .unwrap();
    assert!(declare_huge_frame(tcp(k.info.control_port)));
    let mut seen = String::new();
    for code in [
        "let secret_probe = std::env::args().collect::<Vec<_>>(); secret_probe",
        "std::env::vars().map(|(k, v)| format!(\"{k}={v}\")).collect::<Vec<_>>()",
        "let x: u32 = \"a\";",
        "panic!(\"boom\")",
        ":vars",
        ":telemetry json",
        "!env",
    ] {
        let r = k.execute(code).await;
        seen.push_str(&r.reply.to_string());
        seen.push_str(&r.metadata.to_string());
        for o in &r.outputs {
            seen.push_str(&o.content.to_string());
        }
    }
    let log = k.log_text();
    assert!(
        log.contains("skipped a message"),
        "the forgeries were logged"
    );
    for (what, secret) in [("key", &key), ("connection file path", &path)] {
        assert!(!log.contains(secret.as_str()), "the {what} is in the log");
        assert!(
            !seen.contains(secret.as_str()),
            "the {what} is in an output"
        );
    }
}
