//! The two append-only text files the wrapper writes; nothing else. Each line is one
//! `write` on a file opened with `O_APPEND`, so lines of concurrent rustc wrappers
//! (cargo runs several, and several kernels share a tier) never interleave. Write
//! errors are ignored: a record must never fail a build.
//!
//! **Hit record** — `hits.log` in the writable tier (a hit from the shared tier names
//! that tier in `detail`), one line per lookup or publish:
//! ```text
//! <unix-ms> <crate> <key-prefix-12> <outcome> <ms> [detail]
//! ```
//! Past 4 MB the file is renamed `hits.log.1` and a new one started.
//! `outcome` is `hit` (restored from a tier), `miss` (compiled by rustc), `corrupt`
//! (an entry was found but failed verification or trust checks; rustc compiled it),
//! `stored` / `store-lost` (published / another process published first), or `error`
//! (a cache-internal failure; rustc compiled it). `detail` is free text (the tier, the
//! reason).
//!
//! **Build events** — the file named by `RUSTMETER_BUILD_EVENTS`, for progress display:
//! ```text
//! start <crate> <pid> <unix-µs>
//! end <crate> hit|miss|pass <ms> <unix-µs>
//! link <crate> <ms> <unix-µs>
//! ```
//! `pass` = not cacheable (the cell crate, build scripts): rustc ran unchanged. `link`
//! comes from this executable run as that rustc's linker (`depcache::link`), before
//! the crate's `end`. The time stamp is when the line was written; older files lack it.

use std::io::Write;
use std::path::Path;

/// Appends `line` (a newline is added) in a single write.
pub fn append_line(path: &Path, line: &str) {
    let mut text = line.replace('\n', " ");
    text.push('\n');
    if let Ok(mut file) = crate::private_dir::open_for_writing(path, true) {
        let _ = file.write_all(text.as_bytes());
    }
}

pub fn hit_record(
    tier_root: &Path,
    crate_name: &str,
    key: &str,
    outcome: &str,
    ms: u128,
    detail: &str,
) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let prefix = &key[..key.len().min(12)];
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(" {detail}")
    };
    let log = tier_root.join("hits.log");
    if std::fs::metadata(&log).is_ok_and(|m| m.len() > MAX_RECORD_BYTES) {
        let _ = std::fs::rename(&log, tier_root.join("hits.log.1"));
    }
    append_line(
        &log,
        &format!("{now} {crate_name} {prefix} {outcome} {ms}{detail}"),
    );
}

/// Past this size `hits.log` becomes `hits.log.1` (the previous `.1` is replaced).
const MAX_RECORD_BYTES: u64 = 4 << 20;

/// Progress events, when the kernel asked for them.
pub struct Events {
    path: Option<std::path::PathBuf>,
}

impl Events {
    pub fn from_env() -> Events {
        Events {
            path: crate::settings::path(&crate::settings::BUILD_EVENTS),
        }
    }

    /// The events file, when builds are recorded.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    pub fn start(&self, crate_name: &str) {
        if let Some(path) = &self.path {
            let pid = std::process::id();
            append_line(path, &format!("start {crate_name} {pid} {}", unix_us()));
        }
    }

    pub fn end(&self, crate_name: &str, outcome: &str, ms: u128) {
        if let Some(path) = &self.path {
            append_line(
                path,
                &format!("end {crate_name} {outcome} {ms} {}", unix_us()),
            );
        }
    }

    pub fn link(&self, crate_name: &str, ms: u128) {
        if let Some(path) = &self.path {
            append_line(path, &format!("link {crate_name} {ms} {}", unix_us()));
        }
    }
}

/// Microseconds since the Unix epoch: comparable across the wrapper's processes.
pub fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// One parsed line of a build-events file; `at_us` is when it was written (`unix_us`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    Start {
        crate_name: String,
        pid: u32,
        at_us: Option<u64>,
    },
    End {
        crate_name: String,
        outcome: String,
        ms: u64,
        at_us: Option<u64>,
    },
    Link {
        crate_name: String,
        ms: u64,
        at_us: Option<u64>,
    },
}

pub fn parse_event(line: &str) -> Option<BuildEvent> {
    let mut parts = line.split_whitespace();
    match parts.next()? {
        "start" => Some(BuildEvent::Start {
            crate_name: parts.next()?.to_string(),
            pid: parts.next()?.parse().ok()?,
            at_us: parts.next().and_then(|t| t.parse().ok()),
        }),
        "end" => Some(BuildEvent::End {
            crate_name: parts.next()?.to_string(),
            outcome: parts.next()?.to_string(),
            ms: parts.next()?.parse().ok()?,
            at_us: parts.next().and_then(|t| t.parse().ok()),
        }),
        "link" => Some(BuildEvent::Link {
            crate_name: parts.next()?.to_string(),
            ms: parts.next()?.parse().ok()?,
            at_us: parts.next().and_then(|t| t.parse().ok()),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        assert_eq!(
            parse_event("end tokio hit 12"),
            Some(BuildEvent::End {
                crate_name: "tokio".into(),
                outcome: "hit".into(),
                ms: 12,
                at_us: None,
            })
        );
        assert_eq!(
            parse_event("start itoa 77 1700000000000001"),
            Some(BuildEvent::Start {
                crate_name: "itoa".into(),
                pid: 77,
                at_us: Some(1_700_000_000_000_001),
            })
        );
        assert_eq!(
            parse_event("link ctx 31 5"),
            Some(BuildEvent::Link {
                crate_name: "ctx".into(),
                ms: 31,
                at_us: Some(5),
            })
        );
        assert_eq!(parse_event("garbage"), None);
        assert_eq!(parse_event("link ctx"), None);
    }
}
