//! Task bodies in Rust: `#[grosr::task(rust = |task, ctx| { .. })]`.
//!
//! The macro translates the closure to CUDA C++ for the scheduler module (NVRTC compiles it with
//! the other bodies) and also emits it as a Rust function over `&T` and `&mut Ctx`, so rustc
//! checks every name, field and type first: a spawned record's fields are named, so reordering a
//! struct's fields cannot swap them. Rust and CUDA C bodies mix in one runtime.
//!
//! ```
//! use grosr::DevicePtr;
//!
//! /// One row of `y = softmax(relu(x))` per warp.
//! #[grosr::task(granularity = "warp", rust = |task, ctx| {
//!     let x = task.x;
//!     let mut m = 0.0f32;
//!     for i in (ctx.lane()..task.len).step_by(32) {
//!         m = m.max(ctx.read(x, task.row * task.len + i));
//!     }
//!     m = ctx.warp_max(m);
//!     let mut s = 0.0f32;
//!     for i in (ctx.lane()..task.len).step_by(32) {
//!         s += (ctx.read(x, task.row * task.len + i).max(0.0) - m).exp();
//!     }
//!     s = ctx.warp_sum(s);
//!     for i in (ctx.lane()..task.len).step_by(32) {
//!         let v = (ctx.read(x, task.row * task.len + i).max(0.0) - m).exp() / s;
//!         ctx.write(task.y, task.row * task.len + i, v);
//!     }
//! })]
//! pub struct Row { pub x: DevicePtr<f32>, pub y: DevicePtr<f32>, pub row: u32, pub len: u32 }
//!
//! /// Counts down, spawning the next step by name.
//! #[grosr::task(granularity = "lane", rust = |task, ctx| {
//!     ctx.atomic_add(task.hits, 0u32, 1u32);
//!     if task.n > 0 {
//!         ctx.spawn(Step { hits: task.hits, n: task.n - 1, pad: 0 });
//!     }
//! })]
//! pub struct Step { pub hits: DevicePtr<u32>, pub n: u32, pub pad: u32 }
//! # let _ = grosr::Runtime::builder().task::<Row>().task::<Step>().source();
//! ```
//!
//! # The subset
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
//! | the methods of [`Ctx`] | see each; a pointer index is any of `u8`..`u64` (`0u32`, `i as u64`), unchecked as in CUDA |
//!
//! Helper functions shared by bodies are `#[grosr::device] fn`s in the same subset, registered
//! with [`RuntimeBuilder::helper`](crate::RuntimeBuilder::helper) (each once, a helper before
//! the helpers that call it; the order against `.task` does not matter); a body calls them by
//! name, and a `&Ctx` parameter gives a helper the context (no warp collectives in helpers). A
//! call of a helper that is not registered, or of any other plain function, passes rustc and the
//! macro and fails at [`build`](crate::RuntimeBuilder::build) (NVRTC: "identifier is
//! undefined").
//!
//! Anything else (a `match`, closures, calls through paths, macros, references, tuples,
//! attributes, constants and paths such as `u32::MAX`, ...) is a compile error at its place,
//! listing what is supported; so is a warp collective outside a warp task and `sync_threads`
//! outside a block task. NVRTC's errors about a Rust body give lines counted through its
//! translation, near the Rust line but not on it.
//!
//! # Meaning
//!
//! The translation keeps Rust's types and results: arithmetic is in the operands' type (a `u8`
//! sum wraps at 256; a literal takes the other operand's type), integer arithmetic wraps as in a
//! release build, `!` of an integer is its complement, shift amounts are masked to the width,
//! float `%` is the remainder, `as` from a float saturates (NaN is 0), ranges never step past
//! their end, and every `let` is a new variable (shadowing included). What a GPU cannot report
//! as Rust would: an integer overflow, a division by zero or an index out of bounds does not
//! panic (as in a release build for overflow; the others are undefined, as in a CUDA body), a
//! `step_by(0)` range stops after its first turn, and the CUDA compiler may fuse a float
//! `a * b + c` into one multiply-add (as in a CUDA body), which can change the last bit.
//!
//! # Status
//!
//! The CPU executor that is to run these bodies on host threads does not exist yet (the design
//! is in `benches/NOTES.md`, "The CPU executor"): no [`Ctx`] is ever made today, and the function
//! the macro emits is there for rustc to check the body. NVRTC compiles the translation (in CI),
//! and `tests/gpu_rust_bodies.rs` runs it on the GPU (a warp task's softmax row against a float64
//! reference, Resident and Fused; a lane task's 10 000-link spawn chain; a block task's barrier).

use core::convert::Infallible;

/// A helper function for Rust bodies, declared with `#[grosr::device]`: the type of the same
/// name carries its CUDA translation, which
/// [`RuntimeBuilder::helper`](crate::RuntimeBuilder::helper) adds to a runtime's module.
pub trait DeviceFn {
    /// The `__device__` function.
    const CUDA: &'static str;
}

use crate::record::{DevicePtr, DeviceType, Task};

/// What a Rust task body sees besides its record: the same operations as a CUDA body's `ctx`
/// and the CUDA functions they stand for. Each method's documentation gives its translation.
///
/// No value of this type exists until the CPU executor runs bodies (see the module's
/// documentation): its methods are there for rustc to check bodies against.
pub struct Ctx {
    never: Infallible,
}

impl core::fmt::Debug for Ctx {
    fn fmt(&self, _: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.never {}
    }
}

/// Element types [`Ctx::atomic_exchange`] takes (CUDA's `atomicExch`).
pub trait AtomicExchange: DeviceType + Copy {}
impl AtomicExchange for u32 {}
impl AtomicExchange for u64 {}
impl AtomicExchange for i32 {}
impl AtomicExchange for f32 {}

/// Element types [`Ctx::shuffle`] takes (CUDA's `__shfl_sync` overloads).
pub trait Shuffle: DeviceType + Copy {}
impl Shuffle for u32 {}
impl Shuffle for i32 {}
impl Shuffle for u64 {}
impl Shuffle for i64 {}
impl Shuffle for f32 {}
impl Shuffle for f64 {}

/// Element types the atomics take (as CUDA's `atomicAdd` and friends do).
pub trait Atomic: DeviceType + Copy {}
impl Atomic for u32 {}
impl Atomic for u64 {}
impl Atomic for i32 {}
impl Atomic for f32 {}
impl Atomic for f64 {}

/// Integer element types for the atomics that compare (`atomicMin`, `atomicMax`).
pub trait AtomicOrd: DeviceType + Copy {}
impl AtomicOrd for u32 {}
impl AtomicOrd for u64 {}
impl AtomicOrd for i32 {}
impl AtomicOrd for i64 {}

impl Ctx {
    /// This thread's index in the task: 0 for a lane task, 0..32 for a warp task, the thread's
    /// index for a block task (`ctx.lane()`).
    pub fn lane(&self) -> u32 {
        match self.never {}
    }

    /// The task's thread count: 1, 32 or the block's (`ctx.width()`).
    pub fn width(&self) -> u32 {
        match self.never {}
    }

    /// `ptr[index]`, unchecked as in CUDA; `index` is any of `u8`..`u64`.
    pub fn read<T: DeviceType + Copy>(&self, ptr: DevicePtr<T>, index: impl Into<u64>) -> T {
        let _ = (ptr, index.into());
        match self.never {}
    }

    /// `ptr[index] = value`, unchecked as in CUDA.
    pub fn write<T: DeviceType + Copy>(
        &mut self,
        ptr: DevicePtr<T>,
        index: impl Into<u64>,
        value: T,
    ) {
        let _ = (ptr, index.into(), value);
        match self.never {}
    }

    /// Adds `value` to `ptr[index]` atomically; the old value (`atomicAdd`).
    pub fn atomic_add<T: Atomic>(
        &mut self,
        ptr: DevicePtr<T>,
        index: impl Into<u64>,
        value: T,
    ) -> T {
        let _ = (ptr, index.into(), value);
        match self.never {}
    }

    /// The smaller of `ptr[index]` and `value` into `ptr[index]`, atomically; the old value
    /// (`atomicMin`).
    pub fn atomic_min<T: AtomicOrd>(
        &mut self,
        ptr: DevicePtr<T>,
        index: impl Into<u64>,
        value: T,
    ) -> T {
        let _ = (ptr, index.into(), value);
        match self.never {}
    }

    /// The larger, as [`atomic_min`](Ctx::atomic_min) (`atomicMax`).
    pub fn atomic_max<T: AtomicOrd>(
        &mut self,
        ptr: DevicePtr<T>,
        index: impl Into<u64>,
        value: T,
    ) -> T {
        let _ = (ptr, index.into(), value);
        match self.never {}
    }

    /// Stores `value`, atomically; the old value (`atomicExch`).
    pub fn atomic_exchange<T: AtomicExchange>(
        &mut self,
        ptr: DevicePtr<T>,
        index: impl Into<u64>,
        value: T,
    ) -> T {
        let _ = (ptr, index.into(), value);
        match self.never {}
    }

    /// Stores `value` if `ptr[index]` is `compare`, atomically; the old value (`atomicCAS`).
    pub fn atomic_cas(
        &mut self,
        ptr: DevicePtr<u32>,
        index: impl Into<u64>,
        compare: u32,
        value: u32,
    ) -> u32 {
        let _ = (ptr, index.into(), compare, value);
        match self.never {}
    }

    /// The sum over the warp's 32 lanes, for every lane (`grosr::warp_sum`); warp tasks only.
    pub fn warp_sum(&self, x: f32) -> f32 {
        let _ = x;
        match self.never {}
    }

    /// The maximum over the warp's 32 lanes (`grosr::warp_max`); warp tasks only.
    pub fn warp_max(&self, x: f32) -> f32 {
        let _ = x;
        match self.never {}
    }

    /// Bit `l` set when lane `l`'s `p` holds (`__ballot_sync(0xffffffff, p)`); warp tasks only.
    pub fn ballot(&self, p: bool) -> u32 {
        let _ = p;
        match self.never {}
    }

    /// Whether any lane's `p` holds (`__any_sync`); warp tasks only.
    pub fn any(&self, p: bool) -> bool {
        let _ = p;
        match self.never {}
    }

    /// Whether every lane's `p` holds (`__all_sync`); warp tasks only.
    pub fn all(&self, p: bool) -> bool {
        let _ = p;
        match self.never {}
    }

    /// Lane `lane`'s `x` (`__shfl_sync`); warp tasks only.
    pub fn shuffle<T: Shuffle>(&self, x: T, lane: u32) -> T {
        let _ = (x, lane);
        match self.never {}
    }

    /// The `x` of lane `this lane ^ mask` (`__shfl_xor_sync`); warp tasks only.
    pub fn shuffle_xor<T: Shuffle>(&self, x: T, mask: u32) -> T {
        let _ = (x, mask);
        match self.never {}
    }

    /// Waits for every thread of the block (`__syncthreads`); block tasks only, reached by all.
    pub fn sync_threads(&self) {
        match self.never {}
    }

    /// The GPU's nanosecond clock (`grosr::globaltimer`).
    pub fn globaltimer(&self) -> u64 {
        match self.never {}
    }

    /// Fails the task's job with a positive `code` (`ctx.fail`).
    pub fn fail(&mut self, code: i32) {
        let _ = code;
        match self.never {}
    }

    /// Spawns `task` into the same job. Write it as a struct literal without `..`
    /// (`ctx.spawn(Child { a: .., b: .. })`), which the translation sets field by field; `Child`
    /// must be registered too (`.task::<Child>()`, else [`Error::UnregisteredSpawn`](crate::Error)
    /// at build).
    pub fn spawn<T: Task>(&mut self, task: T) {
        let _ = task;
        match self.never {}
    }
}
