//! grosr's benchmark lab: the workloads that `cargo bench` and the `report` example time, the
//! device-heap benchmark, breadth-first search on the GPU and its baselines, the report tables
//! and its pictures of small task graphs. Not published: it builds on `grosr::unstable`, which
//! makes no stability promise.
#![warn(missing_docs)]

pub mod bfs;
pub mod cli;
mod defines;
mod error;
pub mod graph_svg;
pub mod trace_summary;
pub mod workloads;

pub use defines::env_defines;
pub use error::{CallName, Error, Result};
