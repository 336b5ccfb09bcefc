//! rustmeter: a Jupyter kernel for Rust built on evcxr, with CPU, memory and thread
//! telemetry on every cell.
//!
//! Dependencies flow one way: `server` uses `engine` (through the [`engine::Engine`]
//! handle) and `telemetry`; `engine` knows nothing of Jupyter messages and `telemetry`
//! knows nothing of either. `commands` (the `:` command table and parser) is shared by
//! `server` and `engine` and imports neither.

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
pub mod launcher;
pub mod limits;
pub mod server;
pub mod settings;
pub mod spare;
pub mod telemetry;
pub mod workdir;
