//! The limit settings as limits use them: sizes such as `500M` or `2G`, thread counts such
//! as `1000`, and "no limit" words, read by the parsers of [`crate::settings`] (the kinds
//! `size` and `count`, with their smallest workable values). Pure functions; no files, no
//! cgroups.

use crate::settings::{self, Value};
pub use settings::human_bytes;
use std::ffi::OsStr;

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

/// `text` as a value of the limit `setting`: `Ok(None)` when blank or switched off; an
/// error names the variable, the value and what is accepted.
fn limit(setting: &'static settings::Setting, text: &str) -> Result<Option<Setting>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let value = match settings::parse(setting, OsStr::new(text)).map_err(|e| e.to_string())? {
        Value::Size(value) | Value::Count(value) => value,
        other => unreachable!("{} is a limit, read as {other:?}", setting.name),
    };
    Ok(value.map(|value| Setting {
        variable: setting.name,
        text: trimmed.to_string(),
        value,
    }))
}

/// `RUSTMETER_MEMORY_LIMIT`: a size (`500M` = 500 × 2²⁰ bytes, as `docker --memory` reads
/// it; at least 64 MiB). `Ok(None)` for "off".
pub fn memory(text: &str) -> Result<Option<Setting>, String> {
    limit(&settings::MEMORY_LIMIT, text)
}

/// `RUSTMETER_THREAD_LIMIT`: a whole number of threads and processes (`1000`, also
/// `1_000` or `1,000`; at least 32). `Ok(None)` for "off".
pub fn threads(text: &str) -> Result<Option<Setting>, String> {
    limit(&settings::THREAD_LIMIT, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_keep_what_was_written() {
        let setting = memory(" 2G ").unwrap().unwrap();
        assert_eq!(setting.value, 2 << 30);
        assert_eq!(setting.assignment(), "RUSTMETER_MEMORY_LIMIT=2G");
        let threads = threads("1_000").unwrap().unwrap();
        assert_eq!(threads.value, 1000);
        assert_eq!(threads.assignment(), "RUSTMETER_THREAD_LIMIT=1_000");
    }

    #[test]
    fn off_words_and_blank_mean_no_limit() {
        for text in ["", "off", "None", "unlimited", "max", "0"] {
            assert_eq!(memory(text).unwrap(), None, "{text}");
            assert_eq!(super::threads(text).unwrap(), None, "{text}");
        }
    }

    #[test]
    fn bad_limits_name_the_variable_and_value() {
        let error = memory("lots").unwrap_err();
        assert!(error.contains("RUSTMETER_MEMORY_LIMIT=\"lots\""), "{error}");
        assert!(memory("10M").unwrap_err().contains("64 MiB"));
        let error = super::threads("4").unwrap_err();
        assert!(error.contains("RUSTMETER_THREAD_LIMIT=\"4\""), "{error}");
    }
}
