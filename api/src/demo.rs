//! The tutorials' demo server, from a cell: start it (or reuse the one running), and the
//! rule its replies follow.
//!
//! ```no_run
//! use std::time::Duration;
//! let server = rustmeter::demo::start(Duration::from_millis(200));
//! println!("{}", server.addr); // 127.0.0.1:PORT — send "7\n", read "item 7 next 22\n"
//! ```
//!
//! The server is a separate process (`rustmeter demo-server`), so a cell's telemetry
//! counts only the cell's own threads and CPU. It listens on a free port, answers each
//! line `ID [delay=MS] [slow]` with `item ID next N` after the delay (`slow`: 10 × the
//! delay), serves connections concurrently, and stops when the kernel stops.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running demo server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoServer {
    /// Where to connect: `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    /// How long it waits before each answer.
    pub delay: Duration,
    /// The server's process id.
    pub pid: u32,
}

/// What the server has answered: requests `served`, and the `peak` number waiting at
/// the same moment (1 means they ran one after another).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub served: u64,
    pub in_flight: u64,
    pub peak: u64,
}

impl DemoServer {
    /// The server's counters now.
    pub fn stats(&self) -> Stats {
        self.ask_stats("stats")
    }

    /// The counters now, then zeroes them (the peak restarts from what is waiting).
    pub fn reset_stats(&self) -> Stats {
        self.ask_stats("stats reset")
    }

    fn ask_stats(&self, line: &str) -> Stats {
        use std::io::{BufRead, BufReader, Write};
        let ask = || -> std::io::Result<String> {
            let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
            stream.write_all(format!("{line}\n").as_bytes())?;
            let mut reply = String::new();
            BufReader::new(stream).read_line(&mut reply)?;
            Ok(reply)
        };
        let reply = ask().unwrap_or_else(|e| panic!("demo server at {}: {e}", self.addr));
        let words: Vec<&str> = reply.split_whitespace().collect();
        let field = |name: &str| {
            words
                .iter()
                .position(|w| *w == name)
                .and_then(|i| words.get(i + 1)?.parse().ok())
                .unwrap_or(0)
        };
        Stats {
            served: field("served"),
            in_flight: field("in_flight"),
            peak: field("peak"),
        }
    }
}

/// The id a reply to `id` names as the next one (`item 7 next 22`).
pub fn next_id(id: u64) -> u64 {
    (id.wrapping_mul(3).wrapping_add(1)) % 1000
}

/// Starts the demo server with `delay`, or reuses the one this kernel already runs with
/// the same delay (so re-running a setup cell is harmless). Another delay replaces it.
///
/// Panics with a message saying what went wrong when the server cannot start.
pub fn start(delay: Duration) -> DemoServer {
    match start_or_reuse(delay) {
        Ok((server, reused)) => {
            let how = if reused { "already running" } else { "started" };
            println!(
                "demo server {how} at {} (delay {} ms, pid {})",
                server.addr,
                server.delay.as_millis(),
                server.pid
            );
            server
        }
        Err(message) => panic!("could not start the demo server: {message}"),
    }
}

/// The server this kernel runs now, if any.
pub fn running() -> Option<DemoServer> {
    let server = read_state()?;
    alive(&server).then_some(server)
}

/// Stops this kernel's demo server (it would stop with the kernel anyway).
pub fn stop() {
    // The server exits within a moment once its state file no longer names it.
    let _ = std::fs::remove_file(state_file());
}

fn start_or_reuse(delay: Duration) -> Result<(DemoServer, bool), String> {
    if let Some(server) = running() {
        if server.delay == delay {
            return Ok((server, true));
        }
    }
    let state = state_file();
    let exe = server_binary()?;
    let log = state.with_extension("log");
    if let Some(dir) = state.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut command = Command::new(&exe);
    command
        .arg("demo-server")
        .arg("--state")
        .arg(&state)
        .arg("--owner-pid")
        .arg(owner_pid().to_string())
        .arg("--delay-ms")
        .arg(delay.as_millis().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        // Not the user-code runtime or a compiler wrapper: a plain server.
        .env_remove("EVCXR_IS_RUNTIME")
        .env_remove("EVCXR_RUSTC_WRAPPER")
        .env_remove("RUSTMETER_RUSTC_WRAPPER")
        .env_remove("RUSTMETER_INTERRUPT_FD");
    // Its own process group: interrupting a cell must not stop the server.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command
        .spawn()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(server) = read_state().filter(|s| s.pid == child.id()) {
            if alive(&server) {
                return Ok((server, false));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    Err(format!(
        "it did not come up within 10 s. {}",
        said.trim().lines().last().unwrap_or("")
    ))
}

fn alive(server: &DemoServer) -> bool {
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid)).unwrap_or_default();
    let is_server = cmdline.split(|b| *b == 0).any(|a| a == b"demo-server");
    is_server && TcpStream::connect_timeout(&server.addr, Duration::from_secs(1)).is_ok()
}

fn read_state() -> Option<DemoServer> {
    let text = std::fs::read_to_string(state_file()).ok()?;
    let field = |key: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(DemoServer {
        addr: SocketAddr::from(([127, 0, 0, 1], u16::try_from(field("port")?).ok()?)),
        delay: Duration::from_millis(field("delay_ms")?),
        pid: u32::try_from(field("pid")?).ok()?,
    })
}

/// One state file per kernel: its folder is the kernel's own.
fn state_file() -> PathBuf {
    match std::env::var_os("RUSTMETER_TELEMETRY_DIR") {
        Some(dir) => PathBuf::from(dir).join("demo-server.txt"),
        None => std::env::temp_dir().join(format!("rustmeter-demo-{}.txt", owner_pid())),
    }
}

/// The kernel (the parent of the process running cells); outside a kernel, this process.
fn owner_pid() -> u32 {
    if std::env::var_os("EVCXR_IS_RUNTIME").is_some() {
        std::os::unix::process::parent_id()
    } else {
        std::process::id()
    }
}

/// The `rustmeter` binary: cells run inside it, so it is this process's executable.
fn server_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("RUSTMETER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the rustmeter binary: {e}"))?;
    // A rebuilt or reinstalled binary leaves this process running the old, unlinked one:
    // Linux then names it "PATH (deleted)". The new one is at PATH.
    let text = exe.to_string_lossy();
    match text.strip_suffix(" (deleted)") {
        Some(path) => Ok(PathBuf::from(path)),
        None => Ok(exe),
    }
}
