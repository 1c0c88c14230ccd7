//! The few CUDA driver objects grosr needs, as RAII types over cudarc's `result` layer.
//!
//! Every object holds a [`Context`] (a shared handle to its GPU's retained primary context) and
//! makes it current before each driver call and in its drop, so it works from any thread and
//! keeps the context alive while it lives. Every driver call's result is checked and named in
//! the error. Drops ignore failures: they run when the context may already be faulted, and
//! there is nothing left to recover then.
//!
//! One file per object; `crate::copy_streams` builds on these (never the other way round).

mod args;
mod context;
mod gpu;
mod graph;
mod link;
mod mapped;
mod memory;
mod module;
mod stream;

pub use args::{KernelArgs, RecordArg};
pub use context::Context;
pub(crate) use context::{CopyStreamPool, JobFence};
pub use gpu::Gpu;
pub use graph::{Dependency, Graph};
// The lab's WHILE-graph BFS is their only user.
#[cfg(feature = "unstable")]
pub use graph::WhileBody;
#[cfg(feature = "unstable")]
pub use link::link;
pub use mapped::MappedMem;
pub use memory::DeviceMem;
pub(crate) use memory::{read_device, write_device};
pub use module::{Function, Module};
pub use stream::Stream;
