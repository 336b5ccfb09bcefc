//! The runtime page: 64-bit slots the tokio shim's hooks keep up to date in the
//! user-code process (a shared mapping of `<telemetry dir>/runtime.<pid>`), and the
//! kernel's sampler reads with `pread`. Compiled twice: inside the shim (generated
//! source) and into the kernel (`telemetry::runtime`), so both read one layout.
//! Constants only: no code, no imports.

/// `RMRTPG` + layout version 1.
pub const MAGIC_VALUE: u64 = 0x524d_5254_5047_0001;
pub const SLOTS: usize = 32 + STALL_RING * STALL_WORDS;
pub const BYTES: usize = SLOTS * 8;

pub const MAGIC: usize = 0;
/// The process the page describes (a stale page of an earlier process is ignored).
pub const PID: usize = 1;
pub const WORKERS: usize = 2;
/// Cells run through the shim so far; a cell starts by adding one.
pub const CELL_SEQ: usize = 3;
/// Tasks spawned onto the runtime, ever (not `spawn_blocking`).
pub const SPAWNED: usize = 4;
/// Of those, tasks that ended (finished, cancelled or panicked).
pub const ENDED: usize = 5;
/// `spawn_blocking` tasks (and tokio's own: file system, DNS, stdin) that ended.
pub const BLOCKING_ENDED: usize = 6;
/// Time workers spent inside task polls, summed (nanoseconds, coarse clock).
pub const BUSY_NS: usize = 7;
/// Threads of the runtime alive now: its workers and the blocking pool's.
pub const THREADS_ALIVE: usize = 8;
/// Polls that held a worker longer than [`STALL_NS`], ever; the last [`STALL_RING`] are kept.
pub const STALLS: usize = 9;
pub const STALL_NS: usize = 10;
/// The cell during which the runtime was built.
pub const STARTED_IN_SEQ: usize = 11;
/// A running stall count to claim ring entries (may run ahead of [`STALLS`]).
pub const STALLS_CLAIMED: usize = 12;

// Copied by the shim when a cell starts, so "during this cell" needs no reading at its start.
pub const CELL_SPAWNED0: usize = 16;
pub const CELL_ENDED0: usize = 17;
pub const CELL_BLOCKING_ENDED0: usize = 18;
pub const CELL_BUSY_NS0: usize = 19;
pub const CELL_STALLS0: usize = 20;
pub const CELL_BLOCKING_THREADS0: usize = 21;
// Reset when a cell starts, raised by the hooks while it runs.
pub const CELL_TASKS_PEAK: usize = 24;
pub const CELL_LONGEST_POLL_NS: usize = 25;
pub const CELL_BLOCKING_THREADS_PEAK: usize = 26;

/// The stall ring: entry `n` (counting from 0) is at `STALL_BASE + (n % STALL_RING) * STALL_WORDS`.
pub const STALL_BASE: usize = 32;
pub const STALL_RING: usize = 64;
pub const STALL_WORDS: usize = 4;
/// Offsets inside one stall entry.
pub const STALL_DURATION_NS: usize = 0;
/// The cell (`CELL_SEQ` value) that spawned the task; 0 when not known.
pub const STALL_SPAWN_SEQ: usize = 1;
/// The line of the cell's generated crate (`src/lib.rs`) that spawned it; 0 when elsewhere.
pub const STALL_SPAWN_LINE: usize = 2;
/// `n + 1` for entry `n` once it is whole (0 while it is written).
pub const STALL_TAG: usize = 3;
