//! Writing task bodies: everything a body may use, in one place.
//!
//! A body is CUDA C++ statements given to [`#[grosr::task]`](macro@crate::task) as
//! `cuda = r#"..."#` (or `file = "path.cu"`, relative to the crate's `Cargo.toml`), or Rust
//! given as `rust = |task, ctx| { .. }`, which the macro checks and translates to such
//! statements. The first table below is what a CUDA body may use, the second what a Rust body
//! may use (each construct with the CUDA it becomes); the rules after them hold for both.
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
//! | `ctx.cancelled()` | whether the task's job was cancelled ([`Job::cancel`](crate::Job::cancel)): a long body may return early (on a GPU only a runtime built [`cancellable`](crate::RuntimeBuilder::cancellable) can cancel; otherwise always `false`) |
//! | `grosr::warp_sum(float)`, `grosr::warp_max(float)`, `grosr::warp_min(float)` | reductions over the 32 lanes of a warp task (all lanes call, all get the result) |
//! | `grosr::globaltimer()` | the GPU's nanosecond clock |
//! | CUDA C++ (C++20) | arithmetic, math functions, atomics, `__shfl_*_sync`, `__ballot_sync`, `__nanosleep`, ... as in any `__device__` function |
//!
//! # Rust bodies: the subset
//!
//! What a `rust = |task, ctx| { .. }` body may use ([`body`](crate::body) says how the
//! translation keeps Rust's meaning):
//!
//! | Rust | CUDA |
//! | --- | --- |
//! | `let x = e;`, `let mut x: f32 = e;`, `let a = [0u32; 4];` | a new C variable each (`auto x_1 = ..`, `float x_2 = ..`), a local array; a `let` copying a whole array is not supported (index it) |
//! | `=`, `+=` and the other compound assignments | the same |
//! | `if`/`else if`/`else`, `while`, `loop`, `break`, `continue`, `return` | the same (no labels, no values) |
//! | `for i in a..b`, `a..=b`, `(a..b).step_by(s)` | a counted `for` |
//! | arithmetic, bit, comparison and logical operators; `!` | `grosr::rs` helpers with Rust's types (see Meaning); `!` of an integer is its complement |
//! | `e as T` | a cast, saturating from a float |
//! | `if c { a } else { b }` as a value | `c ? a : b` in the branches' common type |
//! | `task.field`, `task.array[i]` | the same |
//! | literals: `1`, `1u32`, `1.5`, `1.5f32` | an unsuffixed literal takes the other operand's type, as Rust infers it; alone (`let x = 0;`, `[0; 4]`, `if c { 1 } else { 2 }`), beside another (`65536 * 65536`), shifted (`1 << k`), as both ends of a `for` range (`0..4`) or beyond `i32`, it needs a suffix or a `let` type (a compile error says so). Paths such as `u32::MAX` are not supported: write the value with a suffix |
//! | `x.abs()`, `sqrt`, `exp`, `exp2`, `ln`, `log2`, `log10`, `sin`, `cos`, `tan`, `tanh`, `floor`, `ceil`, `round`, `trunc`, `cbrt`, `recip`, `max`, `min`, `powf`, `powi`, `mul_add` | CUDA's overloads (`expf` for a `float`) |
//! | `wrapping_add`, `wrapping_sub`, `wrapping_mul` | the wrapping operation |
//! | `x.count_ones()`, `x.div_ceil(y)` (unsigned) | `__popc` / `__popcll` (a `u32`); the quotient rounded up |
//! | `ctx.alloc::<T>(n)`, `ctx.free(p)`, `p.is_null()`, `p.addr()`, `p.add(n)` | `ctx.alloc_n<T>(n)` (the device heap; the element type written out), `ctx.free(p)`, `p == nullptr`, the address as a `u64`, `p + n` (`n` elements on, a `u64`, wrapping) |
//! | the methods of [`Ctx`](crate::body::Ctx) | see each; a pointer index is any of `u8`..`u64` (`0u32`, `i as u64`), unchecked on a GPU as in CUDA, checked on the CPU backend |
//! | `ctx.warp_shared::<T, N>()` | a `__shared__ T[warps per block][N]` array (one per call site), this warp's row: memory a warp task's lanes share (element type and length written out) |
//! | `ctx.spawn_queued(T { .. })` | `ctx.spawn_queued(t)`: a spawn into a queue every warp takes from, not this warp's stack |
//!
//! Helper functions shared by bodies are `#[grosr::device] fn`s in the same subset, registered
//! with [`RuntimeBuilder::helper`](crate::RuntimeBuilder::helper) (each once, a helper before
//! the helpers that call it; the order against `.task` does not matter); a body calls them by
//! name, and a `&Ctx` (or `&mut Ctx`, to spawn) parameter gives a helper the context. A helper
//! that meets its task's other lanes (warp collectives, `sync_warp`, `warp_shared`) is declared
//! `#[grosr::device(granularity = "warp")]` (`"block"` for `sync_threads`), and a call from a
//! task or helper of another granularity fails the build (NVRTC: "\`name\`
//! (#[grosr::device(granularity = ..)]) meets its other lanes", at the call); on the CPU
//! backend such a call fails the task. (A translated call goes through a template,
//! `grosr_call_<name>`, that checks; CUDA code calls a helper by its name, unchecked.) A call of a helper that is not registered passes rustc and
//! the macro and is [`Error::UnregisteredHelper`](crate::Error::UnregisteredHelper) at
//! [`build`](crate::RuntimeBuilder::build), naming the helper and the calling task; a call of
//! any other plain function fails there too (NVRTC: "identifier is undefined").
//!
//! Anything else (a `match`, closures, calls through paths, macros, references, tuples,
//! attributes, constants and paths such as `u32::MAX`, ...) is a compile error at its place,
//! listing what is supported; so is a warp collective outside a warp task and `sync_threads`
//! outside a block task. NVRTC's errors about a Rust body give lines counted through its
//! translation, near the Rust line but not on it.
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
