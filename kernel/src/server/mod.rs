//! The Jupyter side: five ZeroMQ sockets, one typed `match` per channel, the execution
//! queue, busy/idle, abort-after-error, history.
//!
//! Knows Jupyter messages, and the engine only through [`crate::engine::Engine`]'s neutral
//! events; it must not name evcxr types. One small task per socket: shell and control
//! read and dispatch, iopub owns the publishing socket (and answers subscriptions with
//! the JEP 65 welcome), heartbeat echoes, and the executor runs cells in order.

mod commands;
mod executor;
pub mod guard;
pub mod history;
mod meter;
mod overflow;
pub mod progress;
pub mod wire;
pub mod zmtp_check;

use crate::engine::{Completeness, Engine};
use anyhow::Context;
use jupyter_protocol::{
    CodeMirrorMode, CommClose, CommInfoReply, CompleteReply, CompleteRequest, ConnectionInfo,
    HelpLink, HistoryReply, InspectReply, InspectRequest, InterruptReply, IsCompleteReply,
    JupyterMessage, JupyterMessageContent, KernelInfoReply, LanguageInfo, Media, MediaType,
    ReplyStatus, ShutdownReply, ShutdownRequest, Status,
};
use jupyter_zmq_client::{
    create_kernel_control_connection, create_kernel_heartbeat_connection,
    create_kernel_iopub_xpub_connection, create_kernel_shell_connection,
    create_kernel_stdin_connection, RouterSendConnection, SubscriptionEvent,
};
use std::sync::Arc;
use tokio::sync::{mpsc, Mutex};

/// The kernel's own async runtime: two I/O threads (the engine has its own thread).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kernel-io")
        .enable_all()
        .build()
}

pub(crate) trait ClassifyText {
    fn classify_text(&self) -> String;
}

impl ClassifyText for serde_json::Error {
    fn classify_text(&self) -> String {
        format!(
            "{:?} error at line {} column {}",
            self.classify(),
            self.line(),
            self.column()
        )
    }
}

/// Publishes on iopub, in order, from any task.
#[derive(Clone)]
pub struct IoPub {
    tx: mpsc::UnboundedSender<JupyterMessage>,
}

impl IoPub {
    pub fn send(&self, message: JupyterMessage) {
        let _ = self.tx.send(message);
    }

    pub fn status(&self, state: Status, parent: &JupyterMessage) {
        self.send(wire::child_of(state, parent));
    }
}

/// What the socket tasks share.
pub struct Kernel {
    pub iopub: IoPub,
    pub shell: Mutex<RouterSendConnection>,
    pub control: Mutex<RouterSendConnection>,
    pub engine: Engine,
    pub history: std::sync::Mutex<history::History>,
    pub executions: mpsc::UnboundedSender<executor::Queued>,
    pub stdin: Mutex<jupyter_zmq_client::KernelStdinConnection>,
    telemetry: std::sync::Mutex<meter::SessionTelemetry>,
    rustc_version: String,
    /// The build events of the last cell that compiled something, for `:last_build_log`.
    pub last_build_log: std::sync::Mutex<Option<String>>,
    /// `:warnings on|off`: learner-relevant compiler warnings under cells.
    pub warnings_shown: std::sync::atomic::AtomicBool,
    /// (user-code pid, the runtime's cell number) at the end of the last cell that ran
    /// on the shared runtime: what the next cell's runtime figures count from.
    pub runtime_seen: std::sync::Mutex<Option<(u32, u64)>>,
    /// The reading the next `usage_request` measures CPU from.
    usage_before: std::sync::Mutex<Option<crate::telemetry::usage::UsageSnapshot>>,
}

impl Kernel {
    /// This session's telemetry state (footer choice, labels, the last cell's figures).
    pub fn telemetry(&self) -> std::sync::MutexGuard<'_, meter::SessionTelemetry> {
        self.telemetry.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves `info`'s sockets with an engine that may already be warm (a spare's).
pub async fn serve(
    info: ConnectionInfo,
    engine: Engine,
    events_rx: mpsc::UnboundedReceiver<crate::engine::EngineEvent>,
) -> anyhow::Result<()> {
    let session = uuid::Uuid::new_v4().to_string();
    // With the guard, zeromq binds private ipc endpoints and the guard listens on the
    // connection file's; without it, zeromq binds the connection file's endpoints itself.
    let guard = guard::Settings::from_env()?;
    // Kept open while the kernel serves: the guard connects through it per connection.
    let wire_folder = crate::workdir::SocketFolder::open(&engine.workdir_path(), 16)?;
    let bound = match &guard {
        Some(_) => guard::private_endpoints(&info, &wire_folder),
        None => info.clone(),
    };
    let shell = create_kernel_shell_connection(&bound, &session)
        .await
        .context("bind shell")?;
    let control = create_kernel_control_connection(&bound, &session)
        .await
        .context("bind control")?;
    let stdin = create_kernel_stdin_connection(&bound, &session)
        .await
        .context("bind stdin")?;
    let iopub = create_kernel_iopub_xpub_connection(&bound, &session)
        .await
        .context("bind iopub")?;
    let heartbeat = create_kernel_heartbeat_connection(&bound)
        .await
        .context("bind heartbeat")?;
    guard::restrict_ipc(&bound)?;
    match guard {
        Some(settings) => guard::listen(&info, &bound, settings).await?,
        None => log("wire guard off (RUSTMETER_WIRE_GUARD=0): zeromq listens directly"),
    }

    let (iopub_tx, iopub_rx) = mpsc::unbounded_channel();
    tokio::spawn(iopub_task(iopub, iopub_rx));
    tokio::spawn(heartbeat_task(heartbeat));
    let iopub = IoPub { tx: iopub_tx };
    iopub.send(wire::orphan(Status::starting()));

    let telemetry =
        meter::SessionTelemetry::new(engine.telemetry_dir(), crate::workdir::labels_dir());
    let (exec_tx, exec_rx) = mpsc::unbounded_channel();
    let key = shell.mac.clone();
    let (shell_send, shell_recv) = shell.split();
    let (control_send, control_recv) = control.split();
    let kernel = Arc::new(Kernel {
        iopub,
        shell: Mutex::new(shell_send),
        control: Mutex::new(control_send),
        engine,
        history: Default::default(),
        executions: exec_tx,
        stdin: Mutex::new(stdin),
        telemetry: std::sync::Mutex::new(telemetry),
        warnings_shown: std::sync::atomic::AtomicBool::new(true),
        usage_before: Default::default(),
        runtime_seen: Default::default(),
        rustc_version: rustc_version(),
        last_build_log: std::sync::Mutex::new(None),
    });
    exit_if_stopped(tokio::spawn(executor::run(
        Arc::clone(&kernel),
        exec_rx,
        events_rx,
    )));
    let replays = Arc::new(std::sync::Mutex::new(wire::ReplayGuard::new(100_000)));
    tokio::spawn(read_loop(
        Arc::clone(&kernel),
        shell_recv,
        key.clone(),
        Arc::clone(&replays),
        Channel::Shell,
    ));
    read_loop(kernel, control_recv, key, replays, Channel::Control).await;
    drop(wire_folder);
    Ok(())
}

/// If the executor ever died, cells would wait forever while the heartbeat still
/// answers: exit instead, so the client sees the kernel die and can restart it.
fn exit_if_stopped(executor: tokio::task::JoinHandle<()>) {
    tokio::spawn(async move {
        if let Err(e) = executor.await {
            log(&format!(
                "the execution queue stopped ({e}); exiting so the client restarts the kernel"
            ));
            crate::log::exit(70);
        }
    });
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Channel {
    Shell,
    Control,
}

async fn read_loop(
    kernel: Arc<Kernel>,
    mut socket: jupyter_zmq_client::RouterRecvConnection,
    key: Option<ring::hmac::Key>,
    replays: Arc<std::sync::Mutex<wire::ReplayGuard>>,
    channel: Channel,
) {
    use zeromq::SocketRecv;
    loop {
        let frames = match socket.socket.recv().await {
            Ok(f) => f,
            Err(e) => {
                log(&format!("{channel:?}: receive failed: {e}"));
                continue;
            }
        };
        let parsed = {
            let mut guard = replays.lock().unwrap_or_else(|p| p.into_inner());
            wire::parse(frames, &key, &mut guard)
        };
        match parsed {
            Ok(message) => dispatch(&kernel, message, channel).await,
            Err(e) => log(&format!("{channel:?}: skipped a message: {e}")),
        }
    }
}

/// Queues shell `execute_request`s; answers every other request between busy and idle.
async fn dispatch(kernel: &Arc<Kernel>, request: JupyterMessage, channel: Channel) {
    if let JupyterMessageContent::ExecuteRequest(execute) = &request.content {
        if channel == Channel::Shell {
            let queued = executor::Queued::new(request.clone(), execute.clone());
            let _ = kernel.executions.send(queued);
            return;
        }
    }
    kernel.iopub.status(Status::busy(), &request);
    if let Some(reply) = answer(kernel, &request, channel).await {
        send_reply(kernel, channel, wire::child_of(reply, &request)).await;
    }
    kernel.iopub.status(Status::idle(), &request);
}

/// One typed `match` over what clients ask: the reply's content, or none for messages
/// that get no reply.
async fn answer(
    kernel: &Kernel,
    request: &JupyterMessage,
    channel: Channel,
) -> Option<JupyterMessageContent> {
    match &request.content {
        JupyterMessageContent::KernelInfoRequest(_) => {
            Some(kernel_info(&kernel.rustc_version).into())
        }
        JupyterMessageContent::IsCompleteRequest(r) => Some(is_complete(&r.code).into()),
        JupyterMessageContent::CompleteRequest(r) => Some(complete(kernel, r).await.into()),
        JupyterMessageContent::InspectRequest(r) => Some(inspect(kernel, r).await.into()),
        JupyterMessageContent::HistoryRequest(r) => {
            let history = kernel
                .history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .answer(r);
            Some(HistoryReply::new(history).into())
        }
        JupyterMessageContent::CommInfoRequest(_) => Some(CommInfoReply::default().into()),
        JupyterMessageContent::CommOpen(open) => {
            // No comm targets exist: close it so the frontend does not wait.
            kernel.iopub.send(wire::child_of(
                CommClose {
                    comm_id: open.comm_id.clone(),
                    data: Default::default(),
                },
                request,
            ));
            None
        }
        JupyterMessageContent::CommMsg(_) | JupyterMessageContent::CommClose(_) => None,
        JupyterMessageContent::InterruptRequest(_) => {
            kernel.engine.interrupt();
            Some(InterruptReply::new().into())
        }
        JupyterMessageContent::ShutdownRequest(r) => {
            shut_down_on_request(kernel, request, r, channel).await
        }
        JupyterMessageContent::ExecuteRequest(_) => {
            log("execute_request on control is not supported; ignored");
            None
        }
        JupyterMessageContent::UnknownMessage(u) if u.msg_type == "usage_request" => {
            Some(u.reply(usage(kernel).await))
        }
        other => {
            log(&format!(
                "{channel:?}: ignored message type {:?}",
                other.message_type()
            ));
            None
        }
    }
}

/// `usage_request` (ipykernel's, for JupyterLab's kernel-usage panel): CPU since the
/// previous request (0 for the first, as ipykernel's psutil gives). `/proc` is read off
/// the socket task, so an interrupt on control never waits behind it for long.
async fn usage(kernel: &Kernel) -> serde_json::Value {
    use crate::telemetry::usage::{reply, snapshot};
    let root = std::process::id();
    let Ok(after) = tokio::task::spawn_blocking(move || snapshot(root)).await else {
        return serde_json::json!({ "hostname": "", "pid": root });
    };
    let mut before = kernel
        .usage_before
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let content = reply(before.as_ref().unwrap_or(&after), &after, root);
    *before = Some(after);
    content
}

fn is_complete(code: &str) -> IsCompleteReply {
    match crate::engine::syntax::is_complete(code) {
        Completeness::Complete => IsCompleteReply::complete(),
        Completeness::Incomplete(indent) => IsCompleteReply::incomplete(indent),
        Completeness::Invalid => IsCompleteReply::invalid(),
    }
}

async fn complete(kernel: &Kernel, request: &CompleteRequest) -> CompleteReply {
    let c = kernel
        .engine
        .complete(request.code.clone(), request.cursor_pos)
        .await;
    CompleteReply {
        matches: c.matches,
        cursor_start: c.cursor_start,
        cursor_end: c.cursor_end,
        ..Default::default()
    }
}

async fn inspect(kernel: &Kernel, request: &InspectRequest) -> InspectReply {
    let i = kernel
        .engine
        .inspect(request.code.clone(), request.cursor_pos)
        .await;
    let mut data = Vec::new();
    if i.found {
        data.push(MediaType::Plain(i.text));
        if !i.html.is_empty() {
            data.push(MediaType::Html(i.html));
        }
    }
    InspectReply {
        found: i.found,
        data: Media::new(data),
        ..Default::default()
    }
}

/// Replies, goes idle, and ends the kernel.
async fn shut_down_on_request(
    kernel: &Kernel,
    request: &JupyterMessage,
    shutdown_request: &ShutdownRequest,
    channel: Channel,
) -> ! {
    let reply = ShutdownReply {
        restart: shutdown_request.restart,
        status: ReplyStatus::Ok,
        error: None,
    };
    send_reply(kernel, channel, wire::child_of(reply, request)).await;
    kernel.iopub.status(Status::idle(), request);
    shutdown(kernel).await
}

async fn send_reply(kernel: &Kernel, channel: Channel, reply: JupyterMessage) {
    let result = match channel {
        Channel::Shell => kernel.shell.lock().await.send(reply).await,
        Channel::Control => kernel.control.lock().await.send(reply).await,
    };
    if let Err(e) = result {
        log(&format!("{channel:?}: could not send a reply: {e}"));
    }
}

async fn shutdown(kernel: &Kernel) -> ! {
    kernel.engine.shutdown();
    // Let iopub flush the last status before the process ends.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    crate::log::exit(0)
}

fn kernel_info(rustc_version: &str) -> KernelInfoReply {
    KernelInfoReply {
        status: ReplyStatus::Ok,
        protocol_version: wire::PROTOCOL_VERSION.to_string(),
        implementation: "rustmeter".to_string(),
        implementation_version: env!("CARGO_PKG_VERSION").to_string(),
        language_info: LanguageInfo {
            name: "rust".to_string(),
            version: rustc_version.to_string(),
            mimetype: Some("text/x-rustsrc".to_string()),
            file_extension: Some(".rs".to_string()),
            pygments_lexer: Some("rust".to_string()),
            codemirror_mode: Some(CodeMirrorMode::Simple("rust".to_string())),
            nbconvert_exporter: Some("script".to_string()),
        },
        banner: format!(
            "rustmeter {} — Rust {rustc_version} via evcxr, with CPU, memory and thread telemetry",
            env!("CARGO_PKG_VERSION")
        ),
        help_links: vec![
            HelpLink {
                text: "Rust standard library".into(),
                url: "https://doc.rust-lang.org/std/".into(),
            },
            HelpLink {
                text: "rustmeter README".into(),
                url: "https://github.com/rustmeter/rustmeter#readme".into(),
            },
        ],
        debugger: false,
        error: None,
    }
}

fn rustc_version() -> String {
    std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

async fn iopub_task(
    mut socket: jupyter_zmq_client::KernelIoPubXPubConnection,
    mut outgoing: mpsc::UnboundedReceiver<JupyterMessage>,
) {
    loop {
        tokio::select! {
            biased;
            message = outgoing.recv() => {
                let Some(message) = message else { return };
                if let Err(e) = socket.send(message).await {
                    log(&format!("iopub: send failed: {e}"));
                }
            }
            event = socket.recv_subscription() => {
                if let Ok(SubscriptionEvent::Subscribe(topic)) = event {
                    let welcome = wire::orphan(jupyter_protocol::IoPubWelcome::new(topic));
                    if let Err(e) = socket.send(welcome).await {
                        log(&format!("iopub: welcome failed: {e}"));
                    }
                }
            }
        }
    }
}

async fn heartbeat_task(mut socket: jupyter_zmq_client::KernelHeartbeatConnection) {
    use zeromq::{SocketRecv, SocketSend};
    loop {
        match socket.socket.recv().await {
            // Echo what the client sent, as the protocol asks.
            Ok(message) => {
                if let Err(e) = socket.socket.send(message).await {
                    log(&format!("heartbeat: send failed: {e}"));
                }
            }
            Err(e) => {
                // A client that goes away resets its connection; that is not news.
                if !e.to_string().contains("Connection reset") {
                    log(&format!("heartbeat: receive failed: {e}"));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Kernel log lines go to stderr, which Jupyter servers keep as the kernel log.
pub fn log(message: &str) {
    crate::log::info(message);
}
