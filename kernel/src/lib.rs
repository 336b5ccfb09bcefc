//! rustmeter: a Jupyter kernel for Rust built on evcxr, with CPU, memory and thread
//! telemetry on every cell.
//!
//! Dependencies flow one way: `server` uses `engine` (through the [`engine::Engine`]
//! handle) and `telemetry`; `engine` knows nothing of Jupyter messages and `telemetry`
//! knows nothing of either.

pub mod child_runtime;
pub mod cli;
pub mod demo_server;
pub mod depcache;
pub mod doctor;
pub mod engine;
pub mod install;
pub mod launcher;
pub mod limits;
pub mod server;
pub mod spare;
pub mod telemetry;
pub mod workdir;
