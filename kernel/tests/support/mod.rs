//! A test client: starts the built `rustmeter` binary with a fresh connection file and
//! talks to it over real ZeroMQ sockets through `jupyter-zmq-client`.
#![allow(dead_code)]

pub mod forge;
pub mod sockets;

use jupyter_protocol::{
    ConnectionInfo, ExecuteRequest, InterruptRequest, JupyterMessage, JupyterMessageContent,
    KernelInfoRequest, ShutdownRequest, Transport,
};
use jupyter_zmq_client::{
    create_client_control_connection, create_client_iopub_connection,
    create_client_shell_connection_with_identity, peek_ports, peer_identity_for_session,
    ClientControlConnection, ClientIoPubConnection, ClientShellConnection,
};
use serde_json::Value;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct TestKernel {
    pub process: Child,
    pub info: ConnectionInfo,
    pub shell: ClientShellConnection,
    pub iopub: ClientIoPubConnection,
    pub control: ClientControlConnection,
    pub session: String,
    /// The connection file the kernel was started with.
    pub connection_file: std::path::PathBuf,
    /// The kernel's stderr (its log), when started with `capture_log`.
    pub log_file: Option<std::path::PathBuf>,
    _dir: TempDir,
}

/// How to start a test kernel; `Default` is a tcp kernel on 127.0.0.1 logging to our stderr.
#[derive(Default, Clone, Copy)]
pub struct Options<'a> {
    pub env: &'a [(&'a str, &'a str)],
    /// Send the kernel's stderr to a file, read with [`TestKernel::log_text`].
    pub capture_log: bool,
    /// A connection file with `"transport": "ipc"` (endpoints `{ip}-{port}`).
    pub ipc: bool,
}

/// One output seen on iopub while a request ran.
#[derive(Debug, Clone)]
pub struct Output {
    pub at: Duration,
    pub msg_type: String,
    pub content: Value,
}

#[derive(Debug)]
pub struct Executed {
    pub reply: Value,
    /// The reply's metadata: telemetry is under `rustmeter`.
    pub metadata: Value,
    pub outputs: Vec<Output>,
    pub elapsed: Duration,
}

impl Executed {
    pub fn status(&self) -> &str {
        self.reply["status"].as_str().unwrap_or("")
    }
    pub fn stdout(&self) -> String {
        self.outputs
            .iter()
            .filter(|o| o.msg_type == "stream" && o.content["name"] == "stdout")
            .map(|o| o.content["text"].as_str().unwrap_or("").to_string())
            .collect()
    }
    pub fn result_text(&self) -> Option<String> {
        self.outputs
            .iter()
            .find(|o| o.msg_type == "execute_result")
            .and_then(|o| o.content["data"]["text/plain"].as_str().map(str::to_string))
    }
    /// The last line of the reply's traceback (a failed cell's footer line).
    pub fn last_traceback_line(&self) -> String {
        last_line(&self.reply["traceback"])
    }

    /// The cell's telemetry, from the reply metadata.
    pub fn telemetry(&self) -> &Value {
        &self.metadata["rustmeter"]
    }
    pub fn num(&self, key: &str) -> f64 {
        self.telemetry()[key]
            .as_f64()
            .unwrap_or_else(|| panic!("telemetry has no number {key}: {}", self.telemetry()))
    }
    pub fn of_type(&self, t: &str) -> Vec<&Output> {
        self.outputs.iter().filter(|o| o.msg_type == t).collect()
    }
}

pub struct TempDir(pub std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn to_value(m: &JupyterMessage) -> Value {
    serde_json::to_value(&m.content).unwrap_or(Value::Null)
}

impl TestKernel {
    pub async fn start() -> TestKernel {
        Self::start_with_env(&[]).await
    }

    /// Starts a kernel with extra environment variables (on top of the test's own).
    pub async fn start_with_env(env: &[(&str, &str)]) -> TestKernel {
        Self::start_with(Options {
            env,
            ..Default::default()
        })
        .await
    }

    pub async fn start_with(options: Options<'_>) -> TestKernel {
        // The ports are free when picked, but another process (a kernel of a test running
        // beside this one, cargo fetching a crate) can take one before the kernel binds
        // it; the kernel then exits naming the port. Such a start is tried again with new
        // ports, as a client would.
        for _ in 0..3 {
            if let Some(kernel) = Self::try_start(options).await {
                return kernel;
            }
        }
        panic!("the kernel exited before listening three times in a row (ports taken?)");
    }

    async fn try_start(options: Options<'_>) -> Option<TestKernel> {
        let dir = std::env::temp_dir().join(format!("rustmeter-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let (transport, ip, ports) = if options.ipc {
            let base = dir.join("kernel").display().to_string();
            (Transport::IPC, base, vec![1, 2, 3, 4, 5])
        } else {
            let ports = peek_ports(ip, 5).await.unwrap();
            (Transport::TCP, "127.0.0.1".to_string(), ports)
        };
        let info = ConnectionInfo {
            ip,
            transport,
            shell_port: ports[0],
            iopub_port: ports[1],
            stdin_port: ports[2],
            control_port: ports[3],
            hb_port: ports[4],
            key: uuid::Uuid::new_v4().to_string(),
            signature_scheme: "hmac-sha256".into(),
            kernel_name: Some("rustmeter".into()),
        };
        let file = dir.join("connection.json");
        std::fs::write(&file, serde_json::to_string(&info).unwrap()).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_rustmeter"));
        command
            .arg("kernel")
            .arg("--connection-file")
            .arg(&file)
            // Warm spares are tested on their own (tests/test_spare.py); elsewhere each
            // launch starts its own kernel, as the tests expect.
            .env("RUSTMETER_SPARE", "0")
            .envs(options.env.iter().copied());
        let log_file = options.capture_log.then(|| dir.join("kernel.log"));
        if let Some(log) = &log_file {
            command.stderr(std::fs::File::create(log).unwrap());
        }
        // Killed on drop until `TestKernel` owns it, so a failed start leaves no kernel.
        let mut process = Reaper(Some(command.spawn().expect("start the kernel")));
        if !options.ipc {
            // Connect only once the kernel listens: a client retrying a connect to a port
            // nobody listens on yet can be handed that very port as its own source port and
            // connect to itself (zeromq then reports "sockets combination is not
            // compatible"), which happened with several kernels starting at once.
            let pid = process.0.as_ref().unwrap().id();
            let wanted: Vec<u16> = vec![
                info.shell_port,
                info.iopub_port,
                info.stdin_port,
                info.control_port,
                info.hb_port,
            ];
            let start = Instant::now();
            loop {
                let listening: Vec<u16> = sockets::tcp_listeners(pid)
                    .into_iter()
                    .map(|(_, port)| port)
                    .collect();
                if wanted.iter().all(|p| listening.contains(p)) {
                    break;
                }
                if let Ok(Some(_)) = process.0.as_mut().unwrap().try_wait() {
                    return None;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "the kernel did not listen on {wanted:?} within 60 s (listening: {listening:?})"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if options.ipc {
            // zeromq's ipc connect fails (rather than retries) before the file exists.
            let shell = std::path::PathBuf::from(format!("{}-{}", info.ip, info.shell_port));
            let start = Instant::now();
            while !shell.exists() && start.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let session = uuid::Uuid::new_v4().to_string();
        let identity = peer_identity_for_session(&session).unwrap();
        let mut iopub = create_client_iopub_connection(&info, "", &session)
            .await
            .unwrap();
        let shell = create_client_shell_connection_with_identity(&info, &session, identity)
            .await
            .unwrap();
        let control = create_client_control_connection(&info, &session)
            .await
            .unwrap();
        // The welcome (JEP 65) tells us our subscription is live.
        let _ =
            jupyter_zmq_client::wait_for_iopub_welcome(&mut iopub, Duration::from_secs(10)).await;
        let mut kernel = TestKernel {
            process: process.0.take().unwrap(),
            info,
            shell,
            iopub,
            control,
            session,
            connection_file: file,
            log_file,
            _dir: TempDir(dir),
        };
        let reply = kernel
            .request(KernelInfoRequest {}.into(), Duration::from_secs(10))
            .await;
        assert_eq!(reply["status"], "ok");
        Some(kernel)
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// What the kernel wrote to stderr so far (empty unless started with `capture_log`).
    pub fn log_text(&self) -> String {
        self.log_file
            .as_ref()
            .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned())
            .unwrap_or_default()
    }

    /// Sends a shell request, collects its iopub messages until idle, returns the reply.
    pub async fn request(&mut self, content: JupyterMessageContent, timeout: Duration) -> Value {
        let message: JupyterMessage = content.into();
        let id = message.header.msg_id.clone();
        self.shell.send(message).await.unwrap();
        let reply = tokio::time::timeout(timeout, self.shell.read())
            .await
            .expect("reply in time")
            .unwrap();
        assert_eq!(reply.parent_header.as_ref().unwrap().msg_id, id);
        to_value(&reply)
    }

    pub async fn execute(&mut self, code: &str) -> Executed {
        self.execute_with(
            ExecuteRequest::new(code.to_string()),
            Duration::from_secs(300),
        )
        .await
    }

    pub async fn execute_with(&mut self, request: ExecuteRequest, timeout: Duration) -> Executed {
        let message: JupyterMessage = request.into();
        let id = message.header.msg_id.clone();
        let start = Instant::now();
        self.shell.send(message).await.unwrap();
        let outputs = self.collect_until_idle(&id, timeout).await;
        let reply = tokio::time::timeout(timeout, self.shell.read())
            .await
            .expect("reply in time")
            .unwrap();
        Executed {
            reply: to_value(&reply),
            metadata: reply.metadata.clone(),
            outputs,
            elapsed: start.elapsed(),
        }
    }

    /// Sends without waiting; collect later with `finish`.
    pub async fn send_execute(&mut self, request: ExecuteRequest) -> String {
        let message: JupyterMessage = request.into();
        let id = message.header.msg_id.clone();
        self.shell.send(message).await.unwrap();
        id
    }

    pub async fn collect_until_idle(&mut self, id: &str, timeout: Duration) -> Vec<Output> {
        let start = Instant::now();
        let mut outputs = Vec::new();
        loop {
            let left = timeout
                .checked_sub(start.elapsed())
                .expect("iopub idle in time");
            let m = tokio::time::timeout(left, self.iopub.read())
                .await
                .expect("iopub in time")
                .unwrap();
            if m.parent_header.as_ref().map(|h| h.msg_id.as_str()) != Some(id) {
                continue;
            }
            let t = m.header.msg_type.clone();
            let content = to_value(&m);
            if t == "status" && content["execution_state"] == "idle" {
                return outputs;
            }
            outputs.push(Output {
                at: start.elapsed(),
                msg_type: t,
                content,
            });
        }
    }

    pub async fn read_shell_reply(&mut self, timeout: Duration) -> JupyterMessage {
        tokio::time::timeout(timeout, self.shell.read())
            .await
            .expect("reply in time")
            .unwrap()
    }

    pub async fn interrupt(&mut self) -> Value {
        let message: JupyterMessage = InterruptRequest {}.into();
        self.control.send(message).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), self.control.read())
            .await
            .expect("interrupt reply")
            .unwrap();
        to_value(&reply)
    }

    pub async fn shutdown(mut self, restart: bool) -> std::process::ExitStatus {
        let message: JupyterMessage = ShutdownRequest { restart }.into();
        self.control.send(message).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.control.read()).await;
        for _ in 0..100 {
            if let Some(status) = self.process.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("kernel did not exit after shutdown_request");
    }
}

struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestKernel {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// All descendants of `pid` (children, grandchildren, …) from /proc.
pub fn descendants(pid: u32) -> Vec<(u32, String)> {
    let mut table = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let open = stat.find('(').unwrap_or(0);
        let close = stat.rfind(')').unwrap_or(0);
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        if fields[0] == "Z" {
            continue;
        }
        table.push((p, fields[1].parse::<u32>().unwrap_or(0), name));
    }
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(parent) = stack.pop() {
        for (p, pp, name) in &table {
            if *pp == parent {
                out.push((*p, name.clone()));
                stack.push(*p);
            }
        }
    }
    out
}

/// The last string of a JSON array of strings (a traceback).
pub fn last_line(traceback: &Value) -> String {
    traceback
        .as_array()
        .and_then(|lines| lines.last())
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
        .unwrap_or(false)
}
