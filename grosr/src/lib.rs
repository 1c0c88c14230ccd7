//! grosr keeps a task scheduler resident on an NVIDIA GPU, so that many small, dynamic,
//! data-dependent tasks run without the CPU launching a kernel for each one.
//!
//! Declare task types with [`#[grosr::task]`](macro@task), register them with
//! [`Runtime::builder`], and [`submit`](Runtime::submit) records; tasks spawn further tasks on
//! the GPU (`ctx.spawn(..)` / `grosr_spawn_<T>(ctx, ..)` in CUDA), and [`Job::wait`] returns when
//! the whole job, spawned tasks included, has finished.
//!
//! ```no_run
//! use grosr::{DevicePtr, Runtime};
//!
//! #[grosr::task(granularity = "lane", cuda = r#"
//!     atomicAdd(task.sum, task.value);
//! "#)]
//! pub struct Add { pub sum: DevicePtr<u32>, pub value: u32, pub pad: u32 }
//!
//! let rt = Runtime::builder().task::<Add>().build()?;
//! let sum = grosr::DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
//! let tasks: Vec<Add> = (1..=100).map(|v| Add { sum: sum.ptr(), value: v, pad: 0 }).collect();
//! rt.submit(&tasks)?.wait()?;
//! assert_eq!(sum.to_vec()?[0], 5050);
//! # Ok::<(), grosr::Error>(())
//! ```
#![warn(missing_docs)]
// Under loom only the ring protocol is built and model-checked; the rest is idle there.
#![cfg_attr(loom, allow(dead_code, unused_imports))]

extern crate self as grosr;

pub mod alloc;
#[cfg(not(loom))]
pub mod baseline;
#[cfg(not(loom))]
pub mod bfs;
#[cfg(all(test, loom))]
mod board_model;
mod buffer;
pub mod codegen;
pub mod compile;
mod copy_streams;
pub mod driver;
mod error;
#[cfg(not(loom))]
pub mod graph;
#[cfg(all(test, loom))]
mod graph_release_model;
mod layout;
#[cfg(all(test, loom))]
mod owed_counts_model;
pub mod record;
mod ring;
#[cfg(not(loom))]
mod runtime;
#[cfg(not(loom))]
pub mod workloads;

pub use alloc::{ClassStats, HeapStats, SlowPaths};
pub use buffer::DeviceBuffer;
pub use error::{Error, Result};
pub use grosr_macros::{record, task};
pub use record::{
    CudaBody, DevicePtr, DeviceType, Field, Granularity, MAX_RECORD_BYTES, Record, Task,
};
#[cfg(not(loom))]
pub use runtime::{Job, Runtime, RuntimeBuilder, RuntimeInfo, Tuning};

/// What the macros' expansions name; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use bytemuck;
}
