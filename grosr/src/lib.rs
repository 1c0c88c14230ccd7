//! grosr keeps a task scheduler resident on an NVIDIA GPU, so that many small, dynamic,
//! data-dependent tasks run without the CPU launching a kernel for each one.
//!
//! Declare task types with [`#[grosr::task]`](macro@task), register them with
//! [`Runtime::builder`], and [`submit`](Runtime::submit) records; tasks spawn further tasks on
//! the GPU (`ctx.spawn(..)` / `grosr_spawn_<T>(ctx, ..)` in CUDA), and [`Job::wait`] returns when
//! the whole job, spawned tasks included, has finished. What a body may use: [`body`] for Rust
//! bodies (`rust = |task, ctx| ..`), [`bodies`] for CUDA C ones (`cuda = ".."`).
//!
//! ```
//! use grosr::{DeviceBuffer, DevicePtr, Runtime};
//!
//! /// A warp task: its 32 lanes spawn one `Add` per value in 1..=n.
//! #[grosr::task(rust = |task, ctx| {
//!     for v in (ctx.lane() + 1..task.n + 1).step_by(ctx.width() as usize) {
//!         ctx.spawn(Add { sum: task.sum, value: v, pad: 0u32 });
//!     }
//! })]
//! pub struct Fan { pub sum: DevicePtr<u32>, pub n: u32, pub pad: u32 }
//!
//! /// A one-lane task: adds its value to the sum.
//! #[grosr::task(granularity = "lane", rust = |task, ctx| {
//!     ctx.atomic_add(task.sum, 0u32, task.value);
//! })]
//! pub struct Add { pub sum: DevicePtr<u32>, pub value: u32, pub pad: u32 }
//!
//! let rt = Runtime::builder()
//! #   .backend(grosr::Backend::Cpu) // doctests run on host threads: no GPU needed
//!     .task::<Fan>()
//!     .task::<Add>()
//!     .build()?;
//! let sum = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
//! // One record from the host; the 100 `Add` tasks are spawned on the GPU.
//! let job = rt.submit(&[Fan { sum: sum.ptr(), n: 100, pad: 0 }])?;
//! job.wait()?;
//! assert_eq!(sum.to_vec()?[0], 5050);
//! # Ok::<(), grosr::Error>(())
//! ```
//!
//! A body can be CUDA C instead (`#[grosr::task(cuda = "...")]`, GPU only); `GROSR_BACKEND=cpu`
//! or [`RuntimeBuilder::backend`] runs Rust bodies on host threads, for tests without a GPU.
#![warn(missing_docs, missing_debug_implementations)]
// Under loom only the ring protocol is built and model-checked; the rest is idle there.
#![cfg_attr(loom, allow(dead_code, unused_imports))]
// Without the `unstable` feature, the internals only grosr's lab uses look dead; the workspace
// build (the lab enables the feature) checks dead code.
#![cfg_attr(not(feature = "unstable"), allow(dead_code))]

extern crate self as grosr;

mod alloc;
#[cfg(not(loom))]
mod baseline;
#[cfg(all(test, loom))]
mod board_model;
pub mod bodies;
pub mod body;
mod buffer;
mod codegen;
mod compile;
mod copy_streams;
mod cpu;
mod driver;
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
pub mod trace;

pub use alloc::{ClassStats, HeapStats, SlowPaths};
pub use buffer::DeviceBuffer;
pub use driver::Gpu;
pub use error::{CudaCode, Error, Result};
pub use grosr_macros::{device, record, task};
pub use record::{DevicePtr, DeviceType, Granularity, MAX_RECORD_BYTES, Record, Task};
// What `#[grosr::task]` and `#[grosr::record]` expand to names; users never write them.
#[doc(hidden)]
pub use record::{CudaBody, Field};
#[cfg(not(loom))]
pub use runtime::{
    Backend, CompileProgress, Job, Optimize, PROGRESS_AFTER, Precompiled, Priority, Runtime,
    RuntimeBuilder, RuntimeInfo, Startup, Tuning,
};
pub use trace::Trace;

/// The longest any wait of grosr lasts: one year (365 days). A longer timeout given to
/// [`RuntimeBuilder::submit_timeout`], [`Runtime::submit_timeout`], [`Job::wait_timeout`] or
/// [`graph::Prepared::run`] (`Duration::MAX` included) waits this long and then fails with
/// [`Error::Timeout`]: every wait ends.
pub const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 60 * 60);

/// Internals for grosr's own benchmark lab (`benches/lab`) and tests, behind the cargo feature
/// `unstable`. No stability promise: anything here may change or go in any release.
#[cfg(all(feature = "unstable", not(loom)))]
pub mod unstable {
    pub use crate::baseline::Baselines;
    pub use crate::compile::{
        compile, compile_cached, compile_with, nvrtc_available, nvrtc_version,
    };
    pub use crate::driver::{
        Context, Dependency, DeviceMem, Function, Graph, KernelArgs, Module, RecordArg, Stream,
        WhileBody, link,
    };

    use crate::{Gpu, Optimize, Runtime};

    /// The runtime's compiled module: its scheduler, baseline and extra (`RuntimeBuilder::cuda`)
    /// kernels; `Error::Unsupported` on the CPU backend.
    pub fn module(rt: &Runtime) -> crate::Result<&Module> {
        rt.module()
    }

    /// The NVRTC options `optimize` adds to a compile of the module (for [`compile_with`]).
    pub fn nvrtc_options(optimize: Optimize) -> &'static [&'static str] {
        optimize.nvrtc_options()
    }

    /// The GPU's context, which the driver objects above are made in; `Error::Unsupported` on
    /// the CPU backend.
    pub fn context(gpu: &Gpu) -> crate::Result<&Context> {
        gpu.context()
    }
}

/// What the macros' expansions name; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use bytemuck;
}
