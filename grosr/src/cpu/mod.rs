//! The CPU executor: tasks with Rust bodies (`#[grosr::task(rust = ..)]`) on host threads, with
//! the GPU's semantics: a lane task runs once, a warp task on 32 lanes whose collectives see
//! all of them, a block task on a block's lanes with barriers, spawns count into the job, and
//! every memory access is checked (`memory.rs`). So grosr programs run and are tested without a
//! GPU: `Backend::Cpu` (`runtime/cpu.rs`), task graphs included (`GraphPlan`). The design, and
//! what is still to come (the heap): `benches/NOTES.md`, "The CPU executor".

mod exec;
mod gang;
mod memory;
mod queue;
mod trace;

pub(crate) use exec::{CpuExecutor, CpuJob, GraphPlan};
pub(crate) use exec::{ErasedBody, TaskRun, abort};
pub(crate) use gang::Op;
pub(crate) use memory::{Allocation, HostMemory};
