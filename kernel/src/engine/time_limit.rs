//! The optional per-cell time limit (`RUSTMETER_CELL_TIMEOUT`, e.g. `30s`, `2m`; unset
//! means none): reading it, and a watchdog that stops a cell whose code has run longer.
//! Compile time and time spent waiting for the learner's input do not count, so a first
//! build of a big crate or a slow typist never trips it.
//!
//! Owns the setting's syntax and the watchdog; stopping goes through
//! [`super::interrupt::stop_cell`] like any interrupt.

use super::{interrupt, Control, Phase};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const VAR: &str = "RUSTMETER_CELL_TIMEOUT";

/// The limit as configured: its duration and the text the learner wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeLimit {
    pub duration: Duration,
    pub text: String,
}

/// Reads [`VAR`]: `Ok(None)` when unset, empty, `0` or `none`; an error names the bad value.
pub fn from_env() -> Result<Option<TimeLimit>, String> {
    match std::env::var(VAR) {
        Err(_) => Ok(None),
        Ok(text) => parse(&text),
    }
}

pub fn parse(text: &str) -> Result<Option<TimeLimit>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "0" || trimmed.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let bad = || {
        format!(
            "{VAR}={text:?} is not a duration: write a number with a unit, e.g. 30s, 2m, 1h or \
             500ms (no limit applies until it is fixed)"
        )
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(bad()),
    };
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 1e9 {
        return Err(bad());
    }
    Ok(Some(TimeLimit {
        duration: Duration::from_secs_f64(seconds),
        text: trimmed.to_string(),
    }))
}

/// Watches the cell numbered `serial`: once its code has been running for `limit`, marks
/// it timed out and stops it. Returns when the cell ends.
pub fn watch(control: Arc<Control>, serial: u64, limit: Duration) {
    std::thread::spawn(move || {
        let tick = Duration::from_millis(20);
        let mut ran = Duration::ZERO;
        let mut last = Instant::now();
        while control.cell_serial.load(Ordering::SeqCst) == serial && control.phase() != Phase::Idle
        {
            std::thread::sleep(tick);
            let now = Instant::now();
            if control.phase() == Phase::Running && !control.awaiting_input.load(Ordering::SeqCst) {
                ran += now - last;
            }
            last = now;
            if ran >= limit {
                if !control.interrupted.load(Ordering::SeqCst) {
                    control.timed_out.store(true, Ordering::SeqCst);
                    interrupt::stop_cell(&control);
                }
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn durations_parse() {
        let d = |t: &str| parse(t).unwrap().unwrap().duration;
        assert_eq!(d("30s"), Duration::from_secs(30));
        assert_eq!(d("2m"), Duration::from_secs(120));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d("45"), Duration::from_secs(45));
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("none").unwrap(), None);
        assert_eq!(parse("0").unwrap(), None);
    }

    #[test]
    fn bad_durations_name_the_value() {
        for bad in ["abc", "10 parsecs", "-5s", "s", "1e400s"] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.contains("RUSTMETER_CELL_TIMEOUT") && e.contains(bad),
                "{e}"
            );
        }
    }
}
