//! Writing task bodies: everything a body may use, in one place.
//!
//! A body is CUDA C++ statements given to [`#[grosr::task]`](macro@crate::task) as
//! `cuda = r#"..."#` (or `file = "path.cu"`, relative to the crate's `Cargo.toml`), or Rust
//! given as `rust = |task, ctx| { .. }`, which the macro checks and translates to such
//! statements ([`body`](crate::body#the-subset) lists what it may use, each with the CUDA it
//! becomes; the table below is what a CUDA body may use, and the rules after it hold for both).
//! Every thread that runs the task runs the whole body: one thread for `granularity = "lane"`,
//! the 32 lanes of a warp for `"warp"` (the default), every thread of a block for `"block"`.
//! NVRTC compiles all registered bodies into the scheduler module at
//! [`RuntimeBuilder::build`]; its errors point at the Rust file and line where the body starts
//! (for a `rust =` body, lines counted through its translation).
//!
//! # In scope
//!
//! | name | what it is |
//! | --- | --- |
//! | `task` | `const T&`: the record, fields named as in Rust. `DevicePtr<f32>` is `float*`, `[u32; 4]` is `uint32_t[4]`, a `#[grosr::record]` field is a struct of the same name. |
//! | `ctx.lane()`, `ctx.width()` | this thread's index in the task and the task's thread count: 0 and 1 (lane), 0..32 and 32 (warp), `threadIdx.x` and `blockDim.x` (block) |
//! | `grosr_spawn_T(ctx, T{..})` | spawns a task of registered type `T` into the same job. Name the fields, C++20's designated initialiser `T{.out = p, .n = 1}`: in the Rust struct's field order, so a field renamed or reordered in Rust is a compile error at build instead of a swapped value (fields left out are zero). A positional `T{p, 1}` also compiles and follows the field order silently. Spawning a type that is not registered is [`Error::UnregisteredSpawn`] at build. |
//! | `ctx.spawn(t)` | the same, for a `T` already built |
//! | `ctx.spawn_queued(t)` | spawns into a queue that every warp of every SM takes from, instead of this warp's stack (whose tasks run next, on this warp): for wide fan-out |
//! | `ctx.alloc(bytes)`, `ctx.alloc_n<T>(n)`, `ctx.free(p)` | the device heap ([`RuntimeBuilder::heap_bytes`]): 16-byte aligned, `nullptr` when exhausted; any task may free what another allocated. A whole warp's calls are served together. |
//! | `ctx.fail(code)` | fails the task's job with a positive code; the job still completes and [`Job::wait`](crate::Job::wait) returns [`Error::TaskFailed`] |
//! | `ctx.index()` | this task's item in a range (`TaskGraph::add_range`, `Runtime::submit_range`; CPU backend for now), else 0 |
//! | `ctx.cancelled()` | whether the task's job was cancelled ([`Job::cancel`](crate::Job::cancel)): a long body may return early (on a GPU always `false` for now: GPU jobs cannot be cancelled yet) |
//! | `grosr::warp_sum(float)`, `grosr::warp_max(float)`, `grosr::warp_min(float)` | reductions over the 32 lanes of a warp task (all lanes call, all get the result) |
//! | `grosr::globaltimer()` | the GPU's nanosecond clock |
//! | CUDA C++ (C++20) | arithmetic, math functions, atomics, `__shfl_*_sync`, `__ballot_sync`, `__nanosleep`, ... as in any `__device__` function |
//!
//! # Granularity rules
//!
//! - **Lane** tasks share their warp with other tasks (of any type): no warp collectives and no
//!   `__syncthreads()`.
//! - **Warp** tasks own all 32 lanes: warp collectives with the full mask (`0xffffffff`) are
//!   fine; `__syncthreads()` and `__shared__` are not (other warps of the block run other tasks).
//! - **Block** tasks own their block: `__syncthreads()` (reached by every thread) and
//!   `__shared__` variables work. End with a `__syncthreads()` when `__shared__` data is reused,
//!   since the block's next task may be of the same type.
//!
//! # What a body sees of other tasks' writes
//!
//! A spawned task sees every write the spawning thread made before the spawn; a graph node
//! ([`graph::TaskGraph`](crate::graph::TaskGraph)) sees its predecessors' writes; the host sees a
//! job's writes once [`Job::wait`](crate::Job::wait) returns. Tasks that run at the same time
//! share data only through atomics (and fences of their own).
//!
//! # Code that several bodies share
//!
//! - [`RuntimeBuilder::prelude`]: CUDA placed before the bodies (after the records and the
//!   `grosr_spawn_*` helpers): `__device__` functions, templates and constants.
//! - [`RuntimeBuilder::define`]: a `#define` at the top of the module.
//! - [`RuntimeBuilder::cuda`]: CUDA placed after the bodies: `extern "C" __global__` kernels
//!   of your own, which may use the task types.
//!
//! ```
//! #[grosr::task(granularity = "lane", cuda = r#"
//!     if (task.n > 1) {
//!         grosr_spawn_Fib(ctx, Fib{.out = task.out, .n = task.n - 1});
//!         grosr_spawn_Fib(ctx, Fib{.out = task.out, .n = task.n - 2});
//!     } else {
//!         atomicAdd(task.out, grosr_leaf(task.n));
//!     }
//! "#)]
//! pub struct Fib { pub out: grosr::DevicePtr<u32>, pub n: u32, pub pad: u32 }
//!
//! let builder = grosr::Runtime::builder()
//!     .prelude("__device__ uint32_t grosr_leaf(uint32_t n) { return n; }")
//!     .task::<Fib>();
//! // The module's source, for reading or compiling ahead (no GPU needed).
//! assert!(builder.source().contains("grosr_body_Fib"));
//! ```
//!
//! # Compile time
//!
//! A module's first build compiles every body into each scheduler path that runs it: seconds
//! for a few types, a minute or more for many at [`Optimize::Speed`]; [`Optimize::Compile`]
//! takes seconds. Later builds load the module from the compile cache (README, "What you need").
//!
//! [`RuntimeBuilder::build`]: crate::RuntimeBuilder::build
//! [`RuntimeBuilder::heap_bytes`]: crate::RuntimeBuilder::heap_bytes
//! [`RuntimeBuilder::prelude`]: crate::RuntimeBuilder::prelude
//! [`RuntimeBuilder::define`]: crate::RuntimeBuilder::define
//! [`RuntimeBuilder::cuda`]: crate::RuntimeBuilder::cuda
//! [`Error::UnregisteredSpawn`]: crate::Error::UnregisteredSpawn
//! [`Error::TaskFailed`]: crate::Error::TaskFailed
//! [`Optimize::Speed`]: crate::Optimize::Speed
//! [`Optimize::Compile`]: crate::Optimize::Compile
