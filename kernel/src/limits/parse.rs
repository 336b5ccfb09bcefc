//! Reading the limit settings: sizes such as `500M` or `2G`, thread counts such as `1000`,
//! and "no limit" words. Pure functions; no files, no cgroups.

/// The smallest memory cap accepted: below it the process running the cells cannot
/// even start its runtime, and every cell would fail with a misleading crash.
pub const MIN_MEMORY: u64 = 64 << 20;
/// The smallest thread cap accepted: the process running the cells has a tokio
/// runtime (a worker per core) and evcxr's own threads before any cell runs.
pub const MIN_THREADS: u64 = 32;

/// One configured limit: the value as the administrator wrote it and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable it came from, e.g. `RUSTMETER_MEMORY_LIMIT`.
    pub variable: &'static str,
    /// Exactly what was written, e.g. `500M`, for messages.
    pub text: String,
    /// Bytes for memory, tasks (threads and processes) for threads.
    pub value: u64,
}

impl Setting {
    /// `RUSTMETER_MEMORY_LIMIT=500M`: how the learner finds the setting again.
    pub fn assignment(&self) -> String {
        format!("{}={}", self.variable, self.text)
    }
}

/// Words that mean "no limit", so a kernelspec can switch a limit off explicitly.
fn means_off(text: &str) -> bool {
    matches!(
        text.to_ascii_lowercase().as_str(),
        "" | "off" | "none" | "no" | "unlimited" | "max" | "0"
    )
}

/// Parses a memory size: a number with an optional binary unit `K`, `M`, `G`, `T` (also
/// `KB`/`KiB`…, any case; `500M` = 500 × 2²⁰ bytes, as `docker --memory` reads it) or
/// plain bytes. `Ok(None)` for "off".
pub fn memory(variable: &'static str, text: &str) -> Result<Option<Setting>, String> {
    let trimmed = text.trim();
    if means_off(trimmed) {
        return Ok(None);
    }
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{variable}={text:?} is not a memory size: the unit {unit:?} is unknown \
                 (write e.g. 500M or 2G; K, M, G, T are powers of 1024)"
            ))
        }
    };
    let amount: f64 = number.parse().map_err(|_| {
        format!("{variable}={text:?} is not a memory size (write e.g. 500M or 2G, or off)")
    })?;
    let bytes = amount * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!(
            "{variable}={text:?} is too large to be a memory size"
        ));
    }
    let bytes = bytes as u64;
    if bytes < MIN_MEMORY {
        return Err(format!(
            "{variable}={text:?} is below the smallest workable cap, {}: the process \
             running your code could not even start",
            human_bytes(MIN_MEMORY)
        ));
    }
    Ok(Some(Setting {
        variable,
        text: trimmed.to_string(),
        value: bytes,
    }))
}

/// Parses a thread cap: a whole number (`1000`, also `1_000` or `1,000`). `Ok(None)` for
/// "off".
pub fn threads(variable: &'static str, text: &str) -> Result<Option<Setting>, String> {
    let trimmed = text.trim();
    if means_off(trimmed) {
        return Ok(None);
    }
    let digits: String = trimmed
        .chars()
        .filter(|c| !matches!(c, '_' | ','))
        .collect();
    let count: u64 = digits.parse().map_err(|_| {
        format!("{variable}={text:?} is not a number of threads (write e.g. 1000, or off)")
    })?;
    if count < MIN_THREADS {
        return Err(format!(
            "{variable}={text:?} is below the smallest workable cap, {MIN_THREADS}: the \
             process running your code needs about that many threads before any cell runs"
        ));
    }
    Ok(Some(Setting {
        variable,
        text: trimmed.to_string(),
        value: count,
    }))
}

/// `524288000` → `500 MiB`; whole units when exact, one decimal otherwise.
pub fn human_bytes(bytes: u64) -> String {
    let units = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, name) in units {
        let unit = 1u64 << shift;
        if bytes >= unit {
            return if bytes.is_multiple_of(unit) {
                format!("{} {name}", bytes / unit)
            } else {
                format!("{:.1} {name}", bytes as f64 / unit as f64)
            };
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAR: &str = "RUSTMETER_MEMORY_LIMIT";

    #[test]
    fn reads_sizes_with_binary_units() {
        let cases = [
            ("500M", 500u64 << 20),
            ("2G", 2 << 30),
            ("2g", 2 << 30),
            ("1.5G", 3 << 29),
            ("512MiB", 512 << 20),
            (" 700 MB ", 700 << 20),
            ("1T", 1 << 40),
            ("131072K", 128 << 20),
            ("104857600", 100 << 20),
        ];
        for (text, bytes) in cases {
            let setting = memory(VAR, text).unwrap().unwrap();
            assert_eq!(setting.value, bytes, "{text}");
            assert_eq!(setting.text, text.trim());
        }
    }

    #[test]
    fn off_words_mean_no_limit() {
        for text in ["", "off", "None", "unlimited", "max", "0"] {
            assert_eq!(memory(VAR, text).unwrap(), None, "{text}");
            assert_eq!(threads("RUSTMETER_THREAD_LIMIT", text).unwrap(), None);
        }
    }

    #[test]
    fn bad_sizes_name_the_variable_and_value() {
        for text in ["lots", "500X", "1.2.3G", "-5M", "10M", "99999999999T"] {
            let error = memory(VAR, text).unwrap_err();
            assert!(error.contains(VAR), "{error}");
            assert!(error.contains(&format!("{text:?}")), "{error}");
        }
        assert!(memory(VAR, "10M").unwrap_err().contains("64 MiB"));
    }

    #[test]
    fn reads_thread_counts() {
        let var = "RUSTMETER_THREAD_LIMIT";
        assert_eq!(threads(var, "1000").unwrap().unwrap().value, 1000);
        assert_eq!(threads(var, "1_000").unwrap().unwrap().value, 1000);
        assert_eq!(threads(var, "10,000").unwrap().unwrap().value, 10_000);
        for text in ["many", "1e3", "-1", "12.5", "4"] {
            let error = threads(var, text).unwrap_err();
            assert!(
                error.contains(var) && error.contains(&format!("{text:?}")),
                "{error}"
            );
        }
    }

    #[test]
    fn sizes_read_back_for_humans() {
        assert_eq!(human_bytes(500 << 20), "500 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(100), "100 bytes");
        let setting = memory(VAR, "2G").unwrap().unwrap();
        assert_eq!(setting.assignment(), "RUSTMETER_MEMORY_LIMIT=2G");
    }
}
