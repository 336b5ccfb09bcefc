//! The wire guard: listens exactly where the connection file says (tcp ip:port, or
//! Jupyter's `ipc://{ip}-{port}` created 0600) and relays each connection to the kernel's
//! zeromq sockets, which are bound on private ipc endpoints in the 0700 work folder.
//!
//! In the client→kernel direction every byte passes [`InboundCheck`] first: a bad
//! greeting, bad frame flags, or a frame declared above `RUSTMETER_WIRE_MAX_FRAME`
//! (default 64 MiB, so a 50 MB message still reaches the signature check) closes that
//! connection with a log line, before `zeromq` could reserve memory for it. Bytes the
//! kernel sends pass through untouched. A TCP client on this machine is relayed only when
//! its socket belongs to the kernel's own account or one `RUSTMETER_ALLOW_UIDS` names
//! (root by default); ipc sockets are 0600, so only the owner (and root) reach them. `RUSTMETER_WIRE_GUARD=0` binds zeromq directly on
//! the connection file's endpoints instead (to measure what the guard costs).
//! Owns listening and relaying; it must not read Jupyter messages or know the key.

use super::log;
use super::zmtp_check::{InboundCheck, Violation};
use crate::workdir::SocketFolder;
use anyhow::Context;
use jupyter_protocol::{ConnectionInfo, Transport};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::Semaphore;

/// Connections one channel relays at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 256;
/// A peer must finish its 64-byte greeting within this time.
const GREETING_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Settings {
    pub max_frame: u64,
    /// Accounts whose loopback TCP connections are relayed: the kernel's own, then
    /// `RUSTMETER_ALLOW_UIDS`.
    pub allowed_uids: Vec<u32>,
}

impl Settings {
    /// `None` when `RUSTMETER_WIRE_GUARD` is off; a bad value of either setting is
    /// refused (the kernel does not start) with an error naming it.
    pub fn from_env() -> anyhow::Result<Option<Settings>> {
        use crate::settings::WIRE_MAX_FRAME;
        use crate::settings::{accounts, check, size, switch, ALLOW_UIDS, WIRE_GUARD};
        check(&WIRE_GUARD)?;
        if !switch(&WIRE_GUARD) {
            return Ok(None);
        }
        check(&WIRE_MAX_FRAME)?;
        check(&ALLOW_UIDS)?;
        let mut allowed_uids = vec![unsafe { libc::getuid() }];
        allowed_uids.extend(accounts(&ALLOW_UIDS));
        Ok(Some(Settings {
            max_frame: size(&WIRE_MAX_FRAME),
            allowed_uids,
        }))
    }
}

/// The private endpoints zeromq binds when the guard is on: `ipc://{dir}/wire-{1..5}`.
pub fn private_endpoints(public: &ConnectionInfo, dir: &SocketFolder) -> ConnectionInfo {
    ConnectionInfo {
        transport: Transport::IPC,
        ip: dir.path().join("wire").display().to_string(),
        shell_port: 1,
        iopub_port: 2,
        stdin_port: 3,
        control_port: 4,
        hb_port: 5,
        ..public.clone()
    }
}

/// The (name, public port, private port) of each channel.
fn channels(public: &ConnectionInfo, private: &ConnectionInfo) -> [(&'static str, u16, u16); 5] {
    [
        ("shell", public.shell_port, private.shell_port),
        ("iopub", public.iopub_port, private.iopub_port),
        ("stdin", public.stdin_port, private.stdin_port),
        ("control", public.control_port, private.control_port),
        ("heartbeat", public.hb_port, private.hb_port),
    ]
}

/// Jupyter's ipc path for a port: `{ip}-{port}`.
pub fn ipc_path(info: &ConnectionInfo, port: u16) -> PathBuf {
    PathBuf::from(format!("{}-{port}", info.ip))
}

/// Makes ipc socket files of `info` (if it is ipc) readable and writable by this user only.
pub fn restrict_ipc(info: &ConnectionInfo) -> anyhow::Result<()> {
    if info.transport != Transport::IPC {
        return Ok(());
    }
    for (name, port, _) in channels(info, info) {
        let path = ipc_path(info, port);
        set_owner_only(&path).with_context(|| format!("cannot restrict the {name} ipc socket"))?;
    }
    Ok(())
}

fn set_owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    async fn bind(public: &ConnectionInfo, port: u16) -> std::io::Result<Listener> {
        match public.transport {
            Transport::TCP => {
                // zeromq's "any address" spelling.
                let ip = if public.ip == "*" {
                    "0.0.0.0"
                } else {
                    &public.ip
                };
                Ok(Listener::Tcp(TcpListener::bind((ip, port)).await?))
            }
            Transport::IPC => {
                let path = ipc_path(public, port);
                // Bound under a temporary name and made 0600 before it takes the real
                // name, so no other user can connect in between.
                let temporary = PathBuf::from(format!("{}.{}", path.display(), std::process::id()));
                let _ = std::fs::remove_file(&temporary);
                let listener = UnixListener::bind(&temporary)?;
                set_owner_only(&temporary)?;
                remove_stale_socket(&path);
                std::fs::rename(&temporary, &path)?;
                Ok(Listener::Unix(listener))
            }
        }
    }
}

/// A socket file left by a kernel that died is replaced (as libzmq does); other files are
/// left alone so the bind fails with a clear error.
fn remove_stale_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

/// Binds every public endpoint and starts relaying. Call after zeromq bound `private`.
pub async fn listen(
    public: &ConnectionInfo,
    private: &ConnectionInfo,
    settings: Settings,
) -> anyhow::Result<()> {
    for (name, public_port, private_port) in channels(public, private) {
        let listener = Listener::bind(public, public_port).await.with_context(|| {
            format!(
                "cannot listen for the {name} channel on {} port {public_port}",
                public.transport
            )
        })?;
        let target = ipc_path(private, private_port);
        tokio::spawn(accept_loop(listener, name, target, settings.clone()));
    }
    Ok(())
}

async fn accept_loop(
    listener: Listener,
    channel: &'static str,
    target: PathBuf,
    settings: Settings,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = match &listener {
            Listener::Tcp(l) => match l.accept().await {
                Ok((stream, peer)) => {
                    if !tcp_peer_allowed(&stream, peer, &settings.allowed_uids) {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    Ok((Box::new(stream) as Box<dyn Stream>, peer.to_string()))
                }
                Err(e) => Err(e),
            },
            Listener::Unix(l) => l
                .accept()
                .await
                .map(|(stream, _)| (Box::new(stream) as Box<dyn Stream>, "ipc".to_string())),
        };
        let (client, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                log(&format!("wire guard: {channel}: accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            log(&format!(
                "wire guard: {channel}: closed a connection from {peer}: already {MAX_CONNECTIONS} open"
            ));
            continue;
        };
        let target = target.clone();
        let max_frame = settings.max_frame;
        tokio::spawn(async move {
            relay(client, &target, max_frame, |reason| {
                log(&format!(
                    "wire guard: {channel}: closed a connection from {peer}: {reason}"
                ))
            })
            .await;
            drop(permit);
        });
    }
}

/// Whether a TCP client may reach the kernel. A client on this machine is relayed only
/// when its socket belongs to an allowed account: zeromq signs what a kernel accepts, not
/// what it publishes, so without this any local account could subscribe to iopub and
/// read every output. A client on another machine is relayed as before (signatures are
/// its only check). A refused account is logged once, not on each of zeromq's reconnects.
fn tcp_peer_allowed(stream: &tokio::net::TcpStream, peer: SocketAddr, allowed: &[u32]) -> bool {
    use crate::peer_owner::{owner, PeerOwner};
    let Ok(local) = stream.local_addr() else {
        return false;
    };
    let uid = match owner(local, peer) {
        PeerOwner::Remote => return true,
        PeerOwner::Local(uid) if allowed.contains(&uid) => return true,
        PeerOwner::Local(uid) => Some(uid),
        PeerOwner::LocalUnknown => None,
    };
    static LOGGED: std::sync::Mutex<Vec<Option<u32>>> = std::sync::Mutex::new(Vec::new());
    let mut logged = LOGGED.lock().unwrap_or_else(|e| e.into_inner());
    if !logged.contains(&uid) {
        logged.push(uid);
        let who = uid.map_or("an account that could not be found".into(), |u| {
            format!("uid {u}")
        });
        log(&format!(
            "wire guard: refused local connections from {who}: only uids {allowed:?} may connect (RUSTMETER_ALLOW_UIDS adds accounts); further refusals of it are not logged"
        ));
    }
    false
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Why a relay ended early; a peer that simply disconnects is not one.
enum Refused {
    Violation(Violation),
    SlowGreeting,
    Kernel(std::io::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Violation(v) => write!(f, "{v}"),
            Refused::SlowGreeting => write!(
                f,
                "no complete ZMTP greeting within {} s",
                GREETING_TIMEOUT.as_secs()
            ),
            Refused::Kernel(e) => write!(f, "the kernel's socket is unreachable: {e}"),
        }
    }
}

/// Relays until either side closes; `refused` is called (while the client is still
/// connected, so the log line comes first) when the guard ends the connection.
async fn relay(
    client: Box<dyn Stream>,
    target: &Path,
    max_frame: u64,
    refused: impl FnOnce(Refused),
) {
    let kernel = match UnixStream::connect(target).await {
        Ok(kernel) => kernel,
        Err(e) => return refused(Refused::Kernel(e)),
    };
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut kernel_read, mut kernel_write) = kernel.into_split();
    let inbound = async {
        let mut check = InboundCheck::new(max_frame);
        let mut buffer = vec![0u8; 64 * 1024];
        let greeting_deadline = tokio::time::Instant::now() + GREETING_TIMEOUT;
        loop {
            let read = if check.greeted() {
                client_read.read(&mut buffer).await
            } else {
                tokio::time::timeout_at(greeting_deadline, client_read.read(&mut buffer))
                    .await
                    .map_err(|_| Refused::SlowGreeting)?
            };
            let n = match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => n,
            };
            check.check(&buffer[..n]).map_err(Refused::Violation)?;
            if kernel_write.write_all(&buffer[..n]).await.is_err() {
                return Ok(());
            }
        }
    };
    let outbound = tokio::io::copy(&mut kernel_read, &mut client_write);
    let ended: Result<(), Refused> = tokio::select! {
        ended = inbound => ended,
        _ = outbound => Ok(()),
    };
    if let Err(reason) = ended {
        refused(reason);
    }
}
