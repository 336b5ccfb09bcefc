//! The kernel's resource use as a `usage_reply` tells it (the control-channel message
//! ipykernel answers and JupyterLab's kernel-usage panel, from `jupyter-resource-usage`,
//! asks for): CPU and memory of the kernel and every process under it (the user-code
//! process, cargo and rustc while a cell builds), and the host's CPU and memory.
//!
//! Field names and units are ipykernel's: `kernel_cpu` in percent of one core since the
//! previous request (summed over the processes), `kernel_memory` in bytes (PSS where the
//! system reports it, else RSS), `host_cpu_percent`, `cpu_count`, `host_virtual_memory`
//! as psutil's `virtual_memory()` names its fields. Reads `/proc` only; knows nothing of
//! Jupyter messages.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::Instant;

/// CPU use of a process tree and of the machine at one moment.
#[derive(Debug, Clone)]
pub struct UsageSnapshot {
    at: Instant,
    /// utime + stime in clock ticks, per process of the tree.
    process_ticks: HashMap<u32, u64>,
    machine_ticks: Option<[u64; 8]>,
}

/// Reads `root` and its descendants now.
pub fn snapshot(root: u32) -> UsageSnapshot {
    let pids = std::iter::once(root).chain(crate::sys::descendants(root, &[]));
    UsageSnapshot {
        at: Instant::now(),
        process_ticks: pids
            .filter_map(|pid| Some((pid, cpu_ticks(pid)?)))
            .collect(),
        machine_ticks: crate::sys::machine_cpu_ticks(),
    }
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let fields = crate::sys::stat_fields(pid)?;
    // After the name, field 3 (state) is index 0: utime (14) and stime (15).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Proportional set size where `smaps_rollup` exists (shared libraries counted once
/// across processes, as ipykernel prefers), else resident size.
fn memory_bytes(pid: u32) -> u64 {
    let pss = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Pss:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
    pss.map(|kib| kib * 1024)
        .or_else(|| crate::sys::status_bytes(pid, "VmRSS"))
        .unwrap_or(0)
}

/// The `usage_reply` content for the window from `before` to `after`.
pub fn reply(before: &UsageSnapshot, after: &UsageSnapshot, root: u32) -> Value {
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let wall_s = after.at.saturating_duration_since(before.at).as_secs_f64();
    let ticks: u64 = after
        .process_ticks
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.process_ticks.get(pid).copied().unwrap_or(*t)))
        .sum();
    let kernel_cpu = if wall_s > 0.0 {
        ticks as f64 / hz / wall_s * 100.0
    } else {
        0.0
    };
    let kernel_memory: u64 = after
        .process_ticks
        .keys()
        .map(|pid| memory_bytes(*pid))
        .sum();
    let mut content = Map::new();
    content.insert("hostname".into(), json!(hostname()));
    content.insert("pid".into(), json!(root));
    content.insert("kernel_cpu".into(), json!(kernel_cpu));
    content.insert("kernel_memory".into(), json!(kernel_memory));
    if let (Some(a), Some(b)) = (before.machine_ticks, after.machine_ticks) {
        let total: u64 = b
            .iter()
            .zip(a.iter())
            .map(|(b, a)| b.saturating_sub(*a))
            .sum();
        let idle = b[3].saturating_sub(a[3]) + b[4].saturating_sub(a[4]);
        // ipykernel leaves out psutil's meaningless first 0.0; so does this.
        if total > 0 && total > idle {
            content.insert(
                "host_cpu_percent".into(),
                json!((total - idle) as f64 / total as f64 * 100.0),
            );
        }
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    content.insert("cpu_count".into(), json!(cpus));
    content.insert("host_virtual_memory".into(), virtual_memory());
    Value::Object(content)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// psutil's `virtual_memory()` on Linux, from `/proc/meminfo`, in bytes.
fn virtual_memory() -> Value {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| {
                let rest = l.strip_prefix(name)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse::<u64>().ok()
            })
            .unwrap_or(0)
            * 1024
    };
    let total = field("MemTotal");
    let free = field("MemFree");
    let buffers = field("Buffers");
    let cached = field("Cached") + field("SReclaimable");
    let available = field("MemAvailable");
    let used = total.saturating_sub(free + buffers + cached);
    let percent = if total > 0 {
        (total.saturating_sub(available)) as f64 / total as f64 * 100.0
    } else {
        0.0
    };
    json!({
        "total": total,
        "available": available,
        "percent": (percent * 10.0).round() / 10.0,
        "used": used,
        "free": free,
        "active": field("Active"),
        "inactive": field("Inactive"),
        "buffers": buffers,
        "cached": cached,
        "shared": field("Shmem"),
        "slab": field("Slab"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_thread_shows_as_kernel_cpu_and_memory_is_counted() {
        let before = snapshot(std::process::id());
        let stop = std::time::Instant::now() + std::time::Duration::from_millis(300);
        let mut x = 0u64;
        while std::time::Instant::now() < stop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = snapshot(std::process::id());
        let r = reply(&before, &after, std::process::id());
        let cpu = r["kernel_cpu"].as_f64().unwrap();
        assert!(cpu > 30.0, "{r}");
        assert!(r["kernel_memory"].as_u64().unwrap() > 1_000_000, "{r}");
        let vm = &r["host_virtual_memory"];
        assert!(
            vm["total"].as_u64().unwrap() >= vm["available"].as_u64().unwrap(),
            "{r}"
        );
        assert_eq!(r["pid"], std::process::id());
        assert!(r["cpu_count"].as_u64().unwrap() >= 1);
    }
}
