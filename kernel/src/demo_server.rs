//! The tutorials' demo server: a separate process (`rustmeter demo-server`) that answers
//! requests after a delay, so a cell's telemetry measures only the learner's code.
//!
//! The protocol is one line per request, over plain TCP on `127.0.0.1`:
//!
//! ```text
//! → 7                 ← item 7 next 22     (after the server's delay)
//! → 7 delay=50        ← item 7 next 22     (after 50 ms)
//! → 7 slow            ← item 7 next 22     (after 10 × the delay: a slow dependency)
//! → stats             ← served 12 in_flight 0 peak 10   (at once; `stats reset` zeroes)
//! → nonsense          ← error: expected "ID [delay=MS] [slow]" or "stats", got "nonsense"
//! ```
//!
//! `served` counts answered requests and `peak` the most waiting at the same moment, so
//! a lesson can show that a future never awaited sent nothing, or that requests really
//! overlapped.
//!
//! A connection may send many requests; each is answered in order. Connections are
//! served concurrently (tokio tasks on one thread), so 1,000 learners' requests wait
//! together. `next` is [`next_id`], so "dependent chain" lessons can check their answer.
//!
//! The server binds port 0 (20 learners on one machine never collide), writes
//! `pid`/`port`/`delay_ms` to its state file, and exits when the kernel that owns it
//! is gone or the state file no longer names it (a newer server replaced it). Starting,
//! reusing and stopping it from a cell is the `rustmeter` API crate's `demo` module.
//! This module knows nothing of Jupyter or evcxr.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// What `rustmeter demo-server` was asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub state_file: PathBuf,
    /// The process whose end ends the server (the kernel).
    pub owner_pid: u32,
    pub delay: Duration,
}

/// The item a reply to `id` names as the next one to fetch.
pub fn next_id(id: u64) -> u64 {
    (id.wrapping_mul(3).wrapping_add(1)) % 1000
}

/// One parsed request line.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Item {
        id: u64,
        delay: Option<Duration>,
        slow: bool,
    },
    Stats {
        reset: bool,
    },
}

pub fn parse_request(line: &str) -> Result<Request, String> {
    let mut words = line.split_whitespace();
    let bad = || {
        format!(
            "error: expected \"ID [delay=MS] [slow]\" or \"stats\", got {:?}",
            line.trim()
        )
    };
    let first = words.next().ok_or_else(bad)?;
    if first == "stats" {
        return match words.next() {
            None => Ok(Request::Stats { reset: false }),
            Some("reset") => Ok(Request::Stats { reset: true }),
            Some(_) => Err(bad()),
        };
    }
    let id = first.parse().map_err(|_| bad())?;
    let (mut delay, mut slow) = (None, false);
    for word in words {
        if word == "slow" {
            slow = true;
        } else if let Some(ms) = word.strip_prefix("delay=").and_then(|v| v.parse().ok()) {
            delay = Some(Duration::from_millis(ms));
        } else {
            return Err(bad());
        }
    }
    Ok(Request::Item { id, delay, slow })
}

/// What the server has answered, for `stats`.
#[derive(Default)]
struct Counters {
    served: AtomicU64,
    in_flight: AtomicU64,
    peak: AtomicU64,
}

/// Runs the server until its owner exits. Errors before it is listening are returned.
pub fn run(options: DemoOptions) -> anyhow::Result<()> {
    crate::sys::raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(options))
}

async fn serve(options: DemoOptions) -> anyhow::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    // A long backlog: the scale lessons open a thousand connections at once.
    let listener = socket.listen(4096)?;
    let port = listener.local_addr()?.port();
    let me = std::process::id();
    let state = format!(
        "pid {me}\nport {port}\ndelay_ms {}\n",
        options.delay.as_millis()
    );
    // Its folder is the kernel's (or the temporary folder): never recreated once removed.
    crate::workdir::replace_file(&options.state_file, &state)?;

    let watch = tokio::spawn(watch_owner(
        options.state_file.clone(),
        options.owner_pid,
        me,
    ));
    let delay = options.delay;
    let counters = Arc::new(Counters::default());
    let accept = async move {
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, delay, counters.clone()));
            }
        }
    };
    tokio::select! {
        _ = watch => {}
        _ = accept => {}
    }
    Ok(())
}

async fn answer(stream: TcpStream, delay: Duration, counters: Arc<Counters>) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match parse_request(&line) {
            Ok(Request::Item {
                id,
                delay: asked,
                slow,
            }) => {
                let wait = asked.unwrap_or(delay) * if slow { 10 } else { 1 };
                let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                counters.peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(wait).await;
                counters.in_flight.fetch_sub(1, Ordering::SeqCst);
                counters.served.fetch_add(1, Ordering::SeqCst);
                format!("item {id} next {}\n", next_id(id))
            }
            Ok(Request::Stats { reset }) => {
                let in_flight = counters.in_flight.load(Ordering::SeqCst);
                let reply = format!(
                    "served {} in_flight {in_flight} peak {}\n",
                    counters.served.load(Ordering::SeqCst),
                    counters.peak.load(Ordering::SeqCst)
                );
                if reset {
                    counters.served.store(0, Ordering::SeqCst);
                    counters.peak.store(in_flight, Ordering::SeqCst);
                }
                reply
            }
            Err(message) => format!("{message}\n"),
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Ends the server when the kernel is gone or another server took over the state file.
async fn watch_owner(state_file: PathBuf, owner: u32, me: u32) {
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let owner_alive = crate::sys::alive(owner);
        let still_mine = std::fs::read_to_string(&state_file)
            .map(|s| s.lines().any(|l| l == format!("pid {me}")))
            .unwrap_or(false);
        if !owner_alive || !still_mine {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        assert_eq!(
            parse_request("7").unwrap(),
            Request::Item {
                id: 7,
                delay: None,
                slow: false
            }
        );
        assert_eq!(
            parse_request(" 8 delay=50 slow ").unwrap(),
            Request::Item {
                id: 8,
                delay: Some(Duration::from_millis(50)),
                slow: true
            }
        );
        assert_eq!(
            parse_request("stats reset").unwrap(),
            Request::Stats { reset: true }
        );
        let err = parse_request("hello").unwrap_err();
        assert!(err.contains("ID [delay=MS]"), "{err}");
        assert!(parse_request("3 fast").is_err());
    }

    #[test]
    fn next_ids_stay_small() {
        assert_eq!(next_id(7), 22);
        assert!((0..5000).all(|i| next_id(i) < 1000));
    }
}
