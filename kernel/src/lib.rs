//! rustmeter: a Jupyter kernel for Rust built on evcxr, with CPU, memory and thread
//! telemetry on every cell.
//!
//! Dependencies flow one way, top to bottom (`scripts/module_graph.py --check` fails CI
//! on any two modules that reach each other):
//! - `launch` wires one launch of the binary: a plain kernel, a spare's take-over,
//!   `rustmeter prewarm`. Nothing uses it but `main`.
//! - `spare` (warm kernels waiting for a launch) uses `server` and `engine`.
//! - `server` (Jupyter messages) uses `engine` through the [`engine::Engine`] handle and
//!   `telemetry`; `engine` (evcxr, the user-code child) knows nothing of Jupyter, and
//!   `telemetry` knows nothing of either.
//! - Below them: `depcache`, `limits`, `launcher`, `workdir`, `child_runtime` (the code
//!   that runs inside the user-code child), `commands` (the `:` command table, shared by
//!   `server` and `engine`).
//! - `log` (the kernel's stderr, quiet by default) reads only `settings`.
//! - Leaves, importing nothing of the crate: `settings` (every `RUSTMETER_*` variable),
//!   `sys` (the `/proc` readers and signals), `peer_owner` (who opened the other end of
//!   a TCP connection), `private_dir` (folders no other account can write in), `stdin_wait` (whether user code waits on
//!   its stdin), `cli`, `install`.
//!
//! `doctor` and `demo_server` are tools beside the kernel; they use the lower modules only.

pub mod child_runtime;
pub mod cli;
pub mod commands;
pub mod demo_server;
pub mod depcache;
pub mod doctor;
pub mod engine;
#[cfg(test)]
mod function_length;
pub mod install;
pub mod launch;
pub mod launcher;
pub mod limits;
pub mod log;
#[path = "../../api/src/markers.rs"]
pub mod markers;
pub mod peer_owner;
pub mod private_dir;
pub mod server;
pub mod settings;
pub mod spare;
pub mod stdin_wait;
pub mod sys;
pub mod telemetry;
pub mod workdir;
