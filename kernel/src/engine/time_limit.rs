//! The optional per-cell time limit (`RUSTMETER_CELL_TIMEOUT`, e.g. `30s`, `2m`; unset
//! means none): reading it, and a watchdog that stops a cell whose code has run longer.
//! Compile time and time spent waiting for the learner's input do not count, so a first
//! build of a big crate or a slow typist never trips it.
//!
//! Owns the watchdog; the setting's syntax is the duration kind of [`crate::settings`],
//! which also reports a bad value. Stopping goes through [`super::interrupt::stop_cell`]
//! like any interrupt.

use super::{interrupt, Control, Phase};
use crate::settings::{self, CELL_TIMEOUT};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const VAR: &str = CELL_TIMEOUT.name;

/// The limit as configured: its duration and the text the learner wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeLimit {
    pub duration: Duration,
    pub text: String,
}

/// Reads [`VAR`]: `None` when unset, switched off, or bad (a bad value is among
/// [`settings::problems`], which the first cell shows).
pub fn from_env() -> Option<TimeLimit> {
    Some(TimeLimit {
        duration: settings::duration_or_off(&CELL_TIMEOUT)?,
        text: settings::text(&CELL_TIMEOUT)?,
    })
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
