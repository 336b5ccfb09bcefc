//! Numbers as a learner reads them: seconds, bytes and counts with units and separators.
//! Pure formatting; knows nothing of cells or HTML.

pub fn seconds(ms: f64) -> String {
    if ms < 10.0 {
        "<0.01 s".to_string()
    } else if ms < 10_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.0} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0} kB", n / 1e3)
    } else {
        format!("{n:.0} B")
    }
}

pub(super) fn signed_bytes(delta: i64) -> String {
    let magnitude = delta.unsigned_abs() as f64;
    let sign = if delta < 0 { "−" } else { "+" };
    if magnitude >= 1e9 {
        format!("{sign}{:.1} GB", magnitude / 1e9)
    } else if magnitude >= 1e6 {
        format!("{sign}{:.1} MB", magnitude / 1e6)
    } else {
        format!("{sign}{:.0} kB", magnitude / 1e3)
    }
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
