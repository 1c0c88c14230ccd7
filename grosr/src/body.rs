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
//! What a Rust body may use, each construct with the CUDA it becomes, is listed with the CUDA
//! bodies' list on one page: [`bodies`](crate::bodies#rust-bodies-the-subset).
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
//! On the CPU backend the body runs as the Rust it is: an integer overflow or a shift past the
//! width panics in a build with overflow checks (`cargo test`'s default profile), where the GPU
//! wraps, and `step_by(0)` panics; a panic fails the task's job with
//! [`Error::BodyFault`](crate::Error::BodyFault). Build with `--release` (or
//! `overflow-checks = false`) for the GPU's wrapping, or write `wrapping_*` where a body means it.
//!
//! # Status
//!
//! NVRTC compiles the translation (in CI), and `tests/gpu_rust_bodies.rs` runs it on the GPU (a
//! warp task's softmax row against a float64 reference, Resident and Fused; a lane task's
//! 10 000-link spawn chain; a block task's barrier; every math method, reduction and atomic of
//! the subset against Rust's results, and against the CPU backend's on the same task). The core and graph tests' task types are
//! Rust bodies that both backends run (`tests/common/suite.rs`, `tests/common/graph.rs`), and
//! the lab's BFS has Rust twins of its CUDA tasks (`grosr_lab::bfs::rust_bodies`, validated on
//! the CPU backend in `cargo test`). The CPU backend ([`Backend::Cpu`](crate::Backend)) runs
//! the same bodies on host threads (`tests/cpu_bodies.rs`, `tests/cpu_suite.rs`), task graphs
//! and `ctx.alloc` / `free` included (`benches/NOTES.md`, "The CPU executor").

use std::panic::Location;

use crate::cpu::Op;

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
/// On a GPU the body runs as that CUDA; on the CPU executor, as written, with `ctx` the
/// executor's (`crate::cpu`): memory accesses are checked against live allocations (an access
/// outside them, or a misaligned one, fails the task's job with
/// [`Error::BodyFault`](crate::Error::BodyFault)), and a warp or block task's collectives meet
/// across its lanes' threads.
pub struct Ctx {
    pub(crate) run: crate::cpu::TaskRun,
}

impl core::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ctx")
            .field("lane", &self.run.lane())
            .field("width", &self.run.width())
            .finish_non_exhaustive()
    }
}

/// An element type's bits, for the CPU executor's atomics and shuffles (an implementation
/// detail of the traits below).
#[doc(hidden)]
pub trait Bits: Copy {
    /// Bytes.
    const SIZE: u32;
    /// The value's bits, zero-extended.
    fn to_bits(self) -> u64;
    /// The value of the low `SIZE` bytes of `bits`.
    fn from_bits(bits: u64) -> Self;
}

macro_rules! bits {
    ($($t:ty: $size:literal, |$v:ident| $to:expr, |$b:ident| $from:expr;)*) => {$(
        impl Bits for $t {
            const SIZE: u32 = $size;
            fn to_bits(self) -> u64 {
                let $v = self;
                $to
            }
            fn from_bits($b: u64) -> Self {
                $from
            }
        }
    )*};
}
bits! {
    u32: 4, |v| u64::from(v), |b| b as u32;
    i32: 4, |v| u64::from(v as u32), |b| b as u32 as i32;
    u64: 8, |v| v, |b| b;
    i64: 8, |v| v as u64, |b| b as i64;
    f32: 4, |v| u64::from(v.to_bits()), |b| f32::from_bits(b as u32);
    f64: 8, |v| v.to_bits(), |b| f64::from_bits(b);
}

/// Element types [`Ctx::atomic_exchange`] takes (CUDA's `atomicExch`).
pub trait AtomicExchange: DeviceType + Bits {}
impl AtomicExchange for u32 {}
impl AtomicExchange for u64 {}
impl AtomicExchange for i32 {}
impl AtomicExchange for f32 {}

/// Element types [`Ctx::read_volatile`] takes: scalars and pointers (CUDA C++ has no volatile
/// load of a record: its copy constructor takes no `volatile` object). Sealed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a scalar or a pointer: `ctx.read_volatile` loads one of those",
    note = "CUDA C++ has no volatile load of a record; read its fields one by one"
)]
pub trait Volatile: DeviceType + Copy + sealed::Scalar {}
mod sealed {
    /// Types of one machine load.
    pub trait Scalar {}
}
macro_rules! volatile {
    ($($t:ty),*) => {$(
        impl sealed::Scalar for $t {}
        impl Volatile for $t {}
    )*};
}
volatile!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);
impl<T> sealed::Scalar for DevicePtr<T> {}
impl<T: DeviceType> Volatile for DevicePtr<T> {}

/// Element types [`Ctx::shuffle`] takes (CUDA's `__shfl_sync` overloads).
pub trait Shuffle: DeviceType + Bits {}
impl Shuffle for u32 {}
impl Shuffle for i32 {}
impl Shuffle for u64 {}
impl Shuffle for i64 {}
impl Shuffle for f32 {}
impl Shuffle for f64 {}

/// Element types the atomics take (as CUDA's `atomicAdd` and friends do).
pub trait Atomic: DeviceType + Bits {
    /// `self + other` as `atomicAdd` adds: integers wrap.
    #[doc(hidden)]
    fn plus(self, other: Self) -> Self;
}
impl Atomic for u32 {
    fn plus(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
}
impl Atomic for u64 {
    fn plus(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
}
impl Atomic for i32 {
    fn plus(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
}
impl Atomic for f32 {
    fn plus(self, other: Self) -> Self {
        self + other
    }
}
impl Atomic for f64 {
    fn plus(self, other: Self) -> Self {
        self + other
    }
}

/// Integer element types for the atomics that compare (`atomicMin`, `atomicMax`).
pub trait AtomicOrd: DeviceType + Bits + Ord {}
impl AtomicOrd for u32 {}
impl AtomicOrd for u64 {}
impl AtomicOrd for i32 {}
impl AtomicOrd for i64 {}

impl Ctx {
    /// The atomic read-modify-write behind every `atomic_*`: `f` maps the old element to the
    /// new one; the old one.
    fn rmw<T: Bits>(&mut self, ptr: DevicePtr<T>, index: u64, f: impl Fn(T) -> T) -> T {
        let bits = self
            .run
            .update(ptr.addr(), index, T::SIZE, |b| f(T::from_bits(b)).to_bits());
        T::from_bits(bits)
    }

    /// This thread's index in the task: 0 for a lane task, 0..32 for a warp task, the thread's
    /// index for a block task (`ctx.lane()`).
    pub fn lane(&self) -> u32 {
        self.run.lane()
    }

    /// The task's item in its range: `i` for the `i`th of the `n` tasks that a range node
    /// ([`TaskGraph::add_range`](crate::graph::TaskGraph::add_range)) or a range submit
    /// ([`Runtime::submit_range`](crate::Runtime::submit_range)) runs of one record, the same
    /// for every thread of the task; 0 for any other task (`ctx.index()`).
    pub fn index(&self) -> u32 {
        self.run.index()
    }

    /// The task's thread count: 1, 32 or the block's (`ctx.width()`).
    pub fn width(&self) -> u32 {
        self.run.width()
    }

    /// `ptr[index]`; `index` is any of `u8`..`u64`. Unchecked on a GPU, as in CUDA; on the CPU
    /// backend an access outside every live buffer (or misaligned) fails the task's job with
    /// [`Error::BodyFault`](crate::Error::BodyFault) and stops the body.
    pub fn read<T: DeviceType + Copy>(&self, ptr: DevicePtr<T>, index: impl Into<u64>) -> T {
        self.run.read(ptr.addr(), index.into())
    }

    /// `ptr[index]` through a volatile load: one the compiler neither drops, repeats nor takes
    /// from an earlier load, and which on a GPU is not served from a stale copy in the SM's L1
    /// cache (for a value that tasks on other SMs change while this one runs); checked as
    /// [`read`](Ctx::read) is.
    pub fn read_volatile<T: Volatile>(&self, ptr: DevicePtr<T>, index: impl Into<u64>) -> T {
        self.run.read(ptr.addr(), index.into())
    }

    /// `ptr[index] = value`, checked as [`read`](Ctx::read) is.
    pub fn write<T: DeviceType + Copy>(
        &mut self,
        ptr: DevicePtr<T>,
        index: impl Into<u64>,
        value: T,
    ) {
        self.run.write(ptr.addr(), index.into(), value);
    }

    /// Adds `value` to `ptr[index]` atomically; the old value (`atomicAdd`).
    pub fn atomic_add<T: Atomic>(
        &mut self,
        ptr: DevicePtr<T>,
        index: impl Into<u64>,
        value: T,
    ) -> T {
        self.rmw(ptr, index.into(), |old| old.plus(value))
    }

    /// The smaller of `ptr[index]` and `value` into `ptr[index]`, atomically; the old value
    /// (`atomicMin`).
    pub fn atomic_min<T: AtomicOrd>(
        &mut self,
        ptr: DevicePtr<T>,
        index: impl Into<u64>,
        value: T,
    ) -> T {
        self.rmw(ptr, index.into(), |old| old.min(value))
    }

    /// The larger, as [`atomic_min`](Ctx::atomic_min) (`atomicMax`).
    pub fn atomic_max<T: AtomicOrd>(
        &mut self,
        ptr: DevicePtr<T>,
        index: impl Into<u64>,
        value: T,
    ) -> T {
        self.rmw(ptr, index.into(), |old| old.max(value))
    }

    /// Stores `value`, atomically; the old value (`atomicExch`).
    pub fn atomic_exchange<T: AtomicExchange>(
        &mut self,
        ptr: DevicePtr<T>,
        index: impl Into<u64>,
        value: T,
    ) -> T {
        self.rmw(ptr, index.into(), |_| value)
    }

    /// Stores `value` if `ptr[index]` is `compare`, atomically; the old value (`atomicCAS`).
    pub fn atomic_cas(
        &mut self,
        ptr: DevicePtr<u32>,
        index: impl Into<u64>,
        compare: u32,
        value: u32,
    ) -> u32 {
        self.rmw(
            ptr,
            index.into(),
            |old| if old == compare { value } else { old },
        )
    }

    /// The sum over the warp's 32 lanes, for every lane (`grosr::warp_sum`); warp tasks only.
    #[track_caller]
    pub fn warp_sum(&self, x: f32) -> f32 {
        self.reduce_f32(Op::SumF32, x)
    }

    /// The maximum over the warp's 32 lanes (`grosr::warp_max`); warp tasks only.
    #[track_caller]
    pub fn warp_max(&self, x: f32) -> f32 {
        self.reduce_f32(Op::MaxF32, x)
    }

    /// The minimum over the warp's 32 lanes (`grosr::warp_min`); warp tasks only.
    #[track_caller]
    pub fn warp_min(&self, x: f32) -> f32 {
        self.reduce_f32(Op::MinF32, x)
    }

    /// `x` reduced by `op` over the warp's lanes, met at the caller's place.
    #[track_caller]
    fn reduce_f32(&self, op: Op, x: f32) -> f32 {
        let r = self
            .run
            .meet(Location::caller(), op, u64::from(x.to_bits()), 0);
        f32::from_bits(r as u32)
    }

    /// Bit `l` set when lane `l`'s `p` holds (`__ballot_sync(0xffffffff, p)`); warp tasks only.
    #[track_caller]
    pub fn ballot(&self, p: bool) -> u32 {
        self.run
            .meet(Location::caller(), Op::Ballot, u64::from(p), 0) as u32
    }

    /// Whether any lane's `p` holds (`__any_sync`); warp tasks only.
    #[track_caller]
    pub fn any(&self, p: bool) -> bool {
        self.run
            .meet(Location::caller(), Op::Ballot, u64::from(p), 0)
            != 0
    }

    /// Whether every lane's `p` holds (`__all_sync`); warp tasks only.
    #[track_caller]
    pub fn all(&self, p: bool) -> bool {
        // No lane's `!p`: one meeting, as __all_sync is one instruction.
        self.run
            .meet(Location::caller(), Op::Ballot, u64::from(!p), 0)
            == 0
    }

    /// Lane `lane`'s `x` (`__shfl_sync`); warp tasks only.
    #[track_caller]
    pub fn shuffle<T: Shuffle>(&self, x: T, lane: u32) -> T {
        T::from_bits(
            self.run
                .meet(Location::caller(), Op::Shuffle, x.to_bits(), lane),
        )
    }

    /// The `x` of lane `this lane ^ mask` (`__shfl_xor_sync`); warp tasks only.
    #[track_caller]
    pub fn shuffle_xor<T: Shuffle>(&self, x: T, mask: u32) -> T {
        T::from_bits(
            self.run
                .meet(Location::caller(), Op::ShuffleXor, x.to_bits(), mask),
        )
    }

    /// The `x` of lane `lane - delta`; lanes below `delta` get their own
    /// (`__shfl_up_sync`); warp tasks only.
    #[track_caller]
    pub fn shuffle_up<T: Shuffle>(&self, x: T, delta: u32) -> T {
        T::from_bits(
            self.run
                .meet(Location::caller(), Op::ShuffleUp, x.to_bits(), delta),
        )
    }

    /// The `x` of lane `lane + delta`; lanes from `32 - delta` get their own
    /// (`__shfl_down_sync`); warp tasks only.
    #[track_caller]
    pub fn shuffle_down<T: Shuffle>(&self, x: T, delta: u32) -> T {
        T::from_bits(
            self.run
                .meet(Location::caller(), Op::ShuffleDown, x.to_bits(), delta),
        )
    }

    /// Waits for the warp's 32 lanes: what each wrote before (to [`warp_shared`](Ctx::warp_shared)
    /// memory, say) every lane reads after (`__syncwarp()`); warp tasks only.
    #[track_caller]
    pub fn sync_warp(&self) {
        self.run.meet(Location::caller(), Op::Barrier, 0, 0);
    }

    /// `N` elements of `T` that the warp's lanes share for this task: this warp's row of a
    /// `__shared__ T[warps per block][N]` array (one per call site), its contents left by
    /// whatever ran before (write before you read, with [`sync_warp`](Ctx::sync_warp) between
    /// lanes). Every lane calls it at the same place; warp tasks only. The array is static
    /// shared memory of the scheduler kernel, so it costs every block `N × size_of::<T>() ×
    /// warps per block` bytes whatever runs (256 B a warp is small; past the 48 KB a kernel may
    /// declare, the module does not compile). On the CPU backend, memory of the task's (one
    /// array a call site), which only its lanes may reach, freed when it ends.
    #[track_caller]
    pub fn warp_shared<T: DeviceType, const N: usize>(&self) -> DevicePtr<T> {
        let bytes = (N as u64).saturating_mul(size_of::<T>() as u64);
        DevicePtr::from_raw(self.run.warp_shared(Location::caller(), bytes))
    }

    /// Waits for every thread of the block (`__syncthreads`); block tasks only, reached by all.
    #[track_caller]
    pub fn sync_threads(&self) {
        self.run.meet(Location::caller(), Op::Barrier, 0, 0);
    }

    /// The GPU's nanosecond clock (`grosr::globaltimer`).
    pub fn globaltimer(&self) -> u64 {
        // As %globaltimer: nanoseconds of the wall clock.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }

    /// `n` elements of `T` from the device heap, 16-byte aligned, or a null pointer when the heap
    /// is exhausted (`ctx.alloc_n<T>(n)`); write the type: `ctx.alloc::<f32>(n)`. Any task may
    /// [`free`](Ctx::free) it. On the CPU backend, host memory that only this pointer reaches.
    pub fn alloc<T: DeviceType>(&mut self, n: impl Into<u64>) -> DevicePtr<T> {
        DevicePtr::from_raw(self.run.alloc(n.into(), size_of::<T>() as u64))
    }

    /// Frees what [`alloc`](Ctx::alloc) gave (`ctx.free(p)`); a null pointer is ignored. On the
    /// CPU backend, freeing anything else (a buffer, a pointer twice) fails the task's job with
    /// [`Error::BodyFault`](crate::Error::BodyFault).
    pub fn free<T: DeviceType>(&mut self, ptr: DevicePtr<T>) {
        self.run.free(ptr.addr());
    }

    /// Whether the task's job has been cancelled ([`Job::cancel`](crate::Job::cancel)): a long
    /// body may stop early (`ctx.cancelled()`; on a GPU false unless the runtime was built
    /// [`cancellable`](crate::RuntimeBuilder::cancellable)). Lanes of a warp or block task that
    /// read it at different moments may read different answers: before a collective or barrier
    /// that the answer steers, make it the same for all (in a warp task `if
    /// ctx.any(ctx.cancelled()) { return; }`; in a block task, one thread's answer shared
    /// through memory and a barrier).
    pub fn cancelled(&self) -> bool {
        self.run.cancelled()
    }

    /// What a `#[grosr::device(granularity = ..)]` helper checks first on the CPU backend: its
    /// caller is a warp task (`warp`) or a block task, else the task faults (a GPU build refuses
    /// such a call).
    #[doc(hidden)]
    pub fn __helper_granularity(&self, helper: &str, warp: bool) {
        let (want, what) = if warp {
            (32, "warp")
        } else {
            (crate::layout::BLOCK_THREADS, "block")
        };
        if self.run.width() != want || !self.run.on_gang() {
            let caller = match self.run.width() {
                1 => "a lane task",
                32 => "a warp task",
                _ => "a block task",
            };
            self.run.fault(format!(
                "it calls `{helper}`, a {what} helper (#[grosr::device(granularity = \"{what}\")]), \
                 from {caller}: only {what} tasks may call it (a GPU build refuses the call)"
            ));
            crate::cpu::abort()
        }
    }

    /// Fails the task's job with a positive `code` (`ctx.fail`).
    pub fn fail(&mut self, code: i32) {
        self.run.fail(code);
    }

    /// Spawns `task` into the same job. Write it as a struct literal without `..`
    /// (`ctx.spawn(Child { a: .., b: .. })`), which the translation sets field by field; `Child`
    /// must be registered too (`.task::<Child>()`: else [`Error::UnregisteredSpawn`](crate::Error)
    /// at a GPU build, and [`Error::BodyFault`](crate::Error::BodyFault) when the spawn runs on
    /// the CPU backend).
    pub fn spawn<T: Task + 'static>(&mut self, task: T) {
        self.run.spawn(&task);
    }

    /// Spawns `task` into a queue that any warp of any SM takes from, rather than this warp's
    /// stack (which runs a child next, on this warp): for wide fan-out that should spread over
    /// the GPU (`ctx.spawn_queued(t)`). The same as [`spawn`](Ctx::spawn) on the CPU backend.
    pub fn spawn_queued<T: Task + 'static>(&mut self, task: T) {
        self.run.spawn(&task);
    }
}
