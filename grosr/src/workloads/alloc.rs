//! The device-heap benchmark: grosr's heap against CUDA's device `malloc`/`free` and a
//! per-thread pool sub-allocator, in one process, on the same shapes.
//!
//! Every thread loops: pick a size, allocate, write a pattern over the block (16-byte words every
//! `check_stride` bytes, and the block's last whole 16 bytes), and before freeing check it: two
//! live blocks that overlapped would overwrite each other's pattern, so any mismatch fails the
//! run. The GPU tests check every 16 bytes of every block ([`DENSE_CHECK`]); the report checks a
//! word per [`BENCH_CHECK_STRIDE`] bytes, so that the harness's own loads and stores do not cap
//! what it measures (the per-thread pool, which does no allocator work, shows that ceiling).
//! The benchmark kernels run with the scheduler stopped, so they get every SM.

use std::ffi::c_void;
use std::time::{Duration, Instant};

use cudarc::driver::{result as cu, sys};

use crate::alloc::SlowPaths;
use crate::baseline::Baselines;
use crate::driver::{DeviceMem, Gpu};
use crate::error::{CudaContext as _, Error, Result};
use crate::runtime::{Runtime, RuntimeBuilder};
use crate::workloads::table::Table;
use crate::workloads::{Stats, measure};

/// The benchmark kernels (compiled into the runtime's module with [`RuntimeBuilder::cuda`]).
pub const BENCH_CUDA: &str = r#"
namespace grosr_bench {
struct Args {                      // mirrored by BenchArgs in grosr/src/workloads/alloc.rs
    unsigned long long* counters;  // [0] allocations served, [1] null returns, [2] mismatches,
                                   // [3] blocks outside grosr's arena, [4..6] GROSR_BENCH_PROFILE,
                                   // [7] loop threads stopped by budget_ns
    uint8_t* pool;                 // per-thread pool regions
    unsigned long long pool_per_thread;
    unsigned long long budget_ns;  // a loop thread stops after this long (a run that stalls ends)
    uint32_t pool_slot, iters, outstanding, kind, min_size, max_size, seed, check_stride;
};
__device__ __forceinline__ uint32_t hash(uint32_t x) {
    x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16; return x;
}
__device__ __forceinline__ uint32_t log2u(uint32_t x) { return 31u - __clz(x); }
// Size of allocation i of thread t: 0 fixed, 1 powers of two, 2 uniform, 3 skewed 90/10, 4 drift.
__device__ uint32_t size_of(const Args& a, uint32_t t, uint32_t i) {
    const uint32_t r = hash(a.seed ^ hash(t * 0x9E3779B9u + i));
    const uint32_t lo = log2u(a.min_size), hi = log2u(a.max_size);
    switch (a.kind) {
    case 0: return a.min_size;
    case 1: return 1u << (lo + r % (hi - lo + 1));
    case 2: return a.min_size + r % (a.max_size - a.min_size + 1);
    case 3: return r % 10 ? a.min_size : a.max_size;
    default: {
        const uint32_t step = lo + (uint32_t)(((unsigned long long)i * (hi - lo + 1)) / (a.iters ? a.iters : 1));
        return 1u << (step < hi ? step : hi);
    }
    }
}
__device__ __forceinline__ unsigned long long tag_of(uint32_t t, uint32_t i) {
    return ((unsigned long long)(t + 1) << 32) | (i + 1);
}
// A block's pattern: words at offsets 0, stride, 2 stride, ... and at its last whole word
// (n >= 16). A word is 16 bytes, or with GROSR_BENCH_WORD=32 a whole 32-byte sector where the
// block has one (an experiment: L2 evicts a partly written sector by a read-modify-write of DRAM;
// H200, session 8, a word every 256 B: the pool gained on 16-4096 B, 1.64 against 1.12 G/s,
// grosr did not, 0.50 against 0.55). Volatile: the check must read memory, not what the
// compiler remembers writing.
#ifndef GROSR_BENCH_WORD
#define GROSR_BENCH_WORD 16
#endif
__device__ __forceinline__ void st_pair(uint8_t* p, unsigned long long x, unsigned long long y) {
    asm volatile("st.volatile.global.v2.u64 [%0], {%1, %2};" ::"l"(p), "l"(x), "l"(y) : "memory");
}
__device__ __forceinline__ uint32_t pair_differs(const uint8_t* p, unsigned long long x, unsigned long long y) {
    unsigned long long u, v;
    asm volatile("ld.volatile.global.v2.u64 {%0, %1}, [%2];" : "=l"(u), "=l"(v) : "l"(p) : "memory");
    return (u != x) + (v != y);
}
__device__ __forceinline__ uint32_t word_of(uint32_t n) { return GROSR_BENCH_WORD == 32 && n >= 32 ? 32u : 16u; }
__device__ void write(const Args& a, uint8_t* p, uint32_t n, unsigned long long tag) {
    const uint32_t w = word_of(n), last = (n - w) & ~(w - 1);
    for (uint32_t o = 0; o < last; o += a.check_stride)
        for (uint32_t k = 0; k < w; k += 16) st_pair(p + o + k, tag ^ (o + k), ~tag ^ (o + k));
    for (uint32_t k = 0; k < w; k += 16) st_pair(p + last + k, tag ^ (last + k), ~tag ^ (last + k));
}
__device__ uint32_t check(const Args& a, const uint8_t* p, uint32_t n, unsigned long long tag) {
    const uint32_t w = word_of(n), last = (n - w) & ~(w - 1);
    uint32_t bad = 0;
    for (uint32_t o = 0; o < last; o += a.check_stride)
        for (uint32_t k = 0; k < w; k += 16) bad += pair_differs(p + o + k, tag ^ (o + k), ~tag ^ (o + k));
    for (uint32_t k = 0; k < w; k += 16) bad += pair_differs(p + last + k, tag ^ (last + k), ~tag ^ (last + k));
    return bad;
}
__device__ void count(const Args& a, unsigned long long ok, unsigned long long fail, unsigned long long bad) {
    if (ok) atomicAdd(&a.counters[0], ok);
    if (fail) atomicAdd(&a.counters[1], fail);
    if (bad) atomicAdd(&a.counters[2], bad);
}

// A block that does not lie wholly inside the heap's arena is never written: it is counted in
// counters[3] (the run fails) and treated as a null return.
__device__ void* in_arena(void* p, uint32_t n, unsigned long long* wild) {
    const grosr::Heap& h = grosr_heap;
    const unsigned long long lo = (unsigned long long)h.base, q = (unsigned long long)p;
    if (p == nullptr || (q >= lo && q + n <= lo + ((unsigned long long)h.slabs << grosr::HEAP_SLAB_SHIFT))) return p;
    atomicAdd(wild, 1ull);
    return nullptr;
}
struct Grosr {
    unsigned long long* wild;
    __device__ Grosr(const Args& a, uint32_t) : wild(&a.counters[3]) {}
    __device__ void* alloc(uint32_t n) { return in_arena(grosr::heap_alloc(n), n, wild); }
    __device__ void release(void* p) { grosr::heap_free(p); }
};
struct Cuda {
    __device__ Cuda(const Args&, uint32_t) {}
    __device__ void* alloc(uint32_t n) { return malloc(n); }
    __device__ void release(void* p) { free(p); }
};
// A private region per thread: `outstanding` slots of the largest size, a bit mask in a register.
struct Pool {
    uint8_t* region; uint32_t slot, slots, used;
    __device__ Pool(const Args& a, uint32_t t)
        : region(a.pool + (unsigned long long)t * a.pool_per_thread), slot(a.pool_slot),
          slots(a.outstanding), used(0) {}
    __device__ void* alloc(uint32_t n) {
        const uint32_t avail = ~used & (slots >= 32 ? 0xFFFFFFFFu : (1u << slots) - 1);
        if (n > slot || !avail) return nullptr;
        const uint32_t b = __ffs(avail) - 1;
        used |= 1u << b;
        return region + (unsigned long long)b * slot;
    }
    __device__ void release(void* p) { used &= ~(1u << (uint32_t)(((uint8_t*)p - region) / slot)); }
};

// GROSR_BENCH_PROFILE=1: each loop thread times (clock64) its allocations, frees and pattern
// writes and checks, and the warps add the sums to counters[4..6], so a slow shape shows whether
// the allocator or the harness's memory traffic takes the time. Off: no clock reads at all.
#ifndef GROSR_BENCH_PROFILE
#define GROSR_BENCH_PROFILE 0
#endif
struct Split {
    unsigned long long alloc = 0, release = 0, pattern = 0, t = 0;
    __device__ void start() { if (GROSR_BENCH_PROFILE) t = clock64(); }
    __device__ void lap(unsigned long long& into) {
        if (GROSR_BENCH_PROFILE) { const unsigned long long now = clock64(); into += now - t; t = now; }
    }
    // Per thread, no warp-synchronous step: lanes that finish their loop early must not wait in
    // a full-warp shuffle while others are still allocating (H200: with a __shfl_down_sync
    // reduction here the drifting row stalled for good with half a warp's blocks live, session
    // 9; without it every row finishes, session 10; see GROSR_HEAP_WHOLE_WARPS).
    __device__ void add_to(const Args& a) {
        if (!GROSR_BENCH_PROFILE) return;
        const unsigned long long v[3] = {alloc, release, pattern};
        for (uint32_t i = 0; i < 3; ++i)
            if (v[i]) atomicAdd(&a.counters[4 + i], v[i]);
    }
};

// Each thread keeps a ring of `outstanding` blocks: check and free the oldest, allocate anew.
// Every lane of the grid runs the loop the same number of times, and the warp meets before each
// free and each allocation (__syncwarp): a warp that left the last call apart would otherwise go
// on apart (independent thread scheduling does not reconverge it), and grosr's heap serves a
// partial warp's lanes one by one (GROSR_HEAP_WHOLE_WARPS) where a whole warp's are served
// together. The same for all three allocators.
template <class A> __device__ void loop(const Args& a) {
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    A al(a, t);
    uint8_t* ring[16];
    uint32_t sizes[16];
    for (uint32_t k = 0; k < 16; ++k) ring[k] = nullptr;
    unsigned long long ok = 0, fail = 0, bad = 0;
    Split sp;
    const unsigned long long began = grosr::globaltimer();
    uint32_t iters = a.iters;
    for (uint32_t i = 0; i < iters; ++i) {
        // Every 16th iteration: past the budget, the whole warp stops (the host reports the run
        // as stalled).
        if ((i & 15) == 15 && __any_sync(0xffffffffu, grosr::globaltimer() - began > a.budget_ns)) {
            atomicAdd(&a.counters[7], 1ull);
            iters = i;
            break;
        }
        const uint32_t k = i % a.outstanding;
        uint8_t* old = ring[k];
        if (old) {
            sp.start();
            bad += check(a, old, sizes[k], tag_of(t, i - a.outstanding));
            sp.lap(sp.pattern);
        }
        __syncwarp();
        if (old) {
            sp.start();
            al.release(old);
            sp.lap(sp.release);
            ring[k] = nullptr;
        }
        const uint32_t n = size_of(a, t, i);
        __syncwarp();
        sp.start();
        uint8_t* p = (uint8_t*)al.alloc(n);
        sp.lap(sp.alloc);
        if (p) { write(a, p, n, tag_of(t, i)); ring[k] = p; sizes[k] = n; ++ok; } else { ++fail; }
        sp.lap(sp.pattern);
    }
    for (uint32_t i = iters > a.outstanding ? iters - a.outstanding : 0; i < iters; ++i) {
        const uint32_t k = i % a.outstanding;
        if (ring[k]) { bad += check(a, ring[k], sizes[k], tag_of(t, i)); al.release(ring[k]); }
    }
    count(a, ok, fail, bad);
    sp.add_to(a);
}

// Remote frees: thread t allocates ptrs[t]; in the next kernel thread t frees a permuted slot.
template <class A> __device__ void remote_alloc(const Args& a, uint8_t** ptrs, uint32_t n, uint32_t round) {
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    A al(a, t);
    const uint32_t sz = size_of(a, t, round);
    uint8_t* p = (uint8_t*)al.alloc(sz);
    if (p) write(a, p, sz, tag_of(t, round));
    ptrs[t] = p;
    count(a, p != nullptr, p == nullptr, 0);
}
template <class A> __device__ void remote_free(const Args& a, uint8_t** ptrs, uint32_t n, uint32_t round) {
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    A al(a, t);
    const uint32_t j = (uint32_t)(((unsigned long long)t * 1000003ull) % n);
    uint8_t* p = ptrs[j];
    if (!p) return;
    const uint32_t bad = check(a, p, size_of(a, j, round), tag_of(j, round));
    al.release(p);
    count(a, 0, 0, bad);
}
}  // namespace grosr_bench

// Every benchmark kernel is built for at least 4 resident blocks of 256 per SM (at most 64
// registers a thread). At 8 (all 2048 threads of an SM, 32 registers) grosr's allocation path
// spills and runs slower: H200, same run, 8 against 4: churn 11.6 against 13.3 G/s, mixed 64-512 B
// 4.4 against 8.4. GROSR_DEFINES=GROSR_BENCH_MIN_BLOCKS=8 (or =0, no bound) builds them otherwise.
#ifndef GROSR_BENCH_MIN_BLOCKS
#define GROSR_BENCH_MIN_BLOCKS 4
#endif
#if GROSR_BENCH_MIN_BLOCKS > 0
#define BENCH_BOUNDS __launch_bounds__(256, GROSR_BENCH_MIN_BLOCKS)
#else
#define BENCH_BOUNDS __launch_bounds__(256)   // GROSR_BENCH_MIN_BLOCKS=0: registers as needed
#endif

extern "C" __global__ void BENCH_BOUNDS bench_loop_grosr(grosr_bench::Args a) { grosr_bench::loop<grosr_bench::Grosr>(a); }
extern "C" __global__ void BENCH_BOUNDS bench_loop_cuda(grosr_bench::Args a) { grosr_bench::loop<grosr_bench::Cuda>(a); }
extern "C" __global__ void BENCH_BOUNDS bench_loop_pool(grosr_bench::Args a) { grosr_bench::loop<grosr_bench::Pool>(a); }
extern "C" __global__ void BENCH_BOUNDS bench_remote_alloc_grosr(grosr_bench::Args a, uint8_t** p, uint32_t n, uint32_t r) {
    grosr_bench::remote_alloc<grosr_bench::Grosr>(a, p, n, r);
}
extern "C" __global__ void BENCH_BOUNDS bench_remote_free_grosr(grosr_bench::Args a, uint8_t** p, uint32_t n, uint32_t r) {
    grosr_bench::remote_free<grosr_bench::Grosr>(a, p, n, r);
}
extern "C" __global__ void BENCH_BOUNDS bench_remote_alloc_cuda(grosr_bench::Args a, uint8_t** p, uint32_t n, uint32_t r) {
    grosr_bench::remote_alloc<grosr_bench::Cuda>(a, p, n, r);
}
extern "C" __global__ void BENCH_BOUNDS bench_remote_free_cuda(grosr_bench::Args a, uint8_t** p, uint32_t n, uint32_t r) {
    grosr_bench::remote_free<grosr_bench::Cuda>(a, p, n, r);
}
// Out-of-memory round: each thread allocates min_size blocks until null, chaining them through
// their first word (block: next pointer, then its tag); bench_oom_free walks, checks and frees.
extern "C" __global__ void BENCH_BOUNDS bench_oom_fill(grosr_bench::Args a, uint8_t** heads) {
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    uint8_t* head = nullptr;
    unsigned long long n = 0;
    for (; n < a.iters; ++n) {
        uint8_t* p = (uint8_t*)grosr_bench::in_arena(grosr::heap_alloc(a.min_size), a.min_size, &a.counters[3]);
        if (!p) break;
        ((uint8_t* volatile*)p)[0] = head;
        ((volatile unsigned long long*)p)[1] = grosr_bench::tag_of(t, 0);
        head = p;
    }
    heads[t] = head;
    grosr_bench::count(a, n, n < a.iters, 0);
}
extern "C" __global__ void BENCH_BOUNDS bench_oom_free(grosr_bench::Args a, uint8_t** heads) {
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    uint8_t* p = heads[t];
    unsigned long long bad = 0;
    for (uint32_t guard = 0; p && guard < a.iters; ++guard) {
        uint8_t* next = ((uint8_t* volatile*)p)[0];
        bad += ((volatile unsigned long long*)p)[1] != grosr_bench::tag_of(t, 0);
        grosr::heap_free(p);
        p = next;
    }
    grosr_bench::count(a, 0, 0, bad + (p != nullptr));
}
"#;

/// Kernels of [`BENCH_CUDA`] that the benchmark launches (preloaded at build).
pub const BENCH_KERNELS: &[&str] = &[
    "bench_loop_grosr",
    "bench_loop_cuda",
    "bench_loop_pool",
    "bench_remote_alloc_grosr",
    "bench_remote_free_grosr",
    "bench_remote_alloc_cuda",
    "bench_remote_free_cuda",
    "bench_oom_fill",
    "bench_oom_free",
];

/// The kernels' argument block. C: `grosr_bench::Args`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct BenchArgs {
    counters: u64,
    pool: u64,
    pool_per_thread: u64,
    budget_ns: u64,
    pool_slot: u32,
    iters: u32,
    outstanding: u32,
    kind: u32,
    min_size: u32,
    max_size: u32,
    seed: u32,
    check_stride: u32,
}

/// The three allocators compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// grosr's device heap.
    Grosr,
    /// CUDA's device `malloc` / `free`.
    CudaMalloc,
    /// A private region per thread with a bit mask of taken slots (no sharing, no remote frees).
    ThreadPool,
}

impl Allocator {
    fn suffix(self) -> &'static str {
        match self {
            Allocator::Grosr => "grosr",
            Allocator::CudaMalloc => "cuda",
            Allocator::ThreadPool => "pool",
        }
    }
}

/// How sizes are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sizes {
    /// Always `min`.
    Fixed,
    /// A power of two between `min` and `max`.
    Pow2,
    /// Uniform in `[min, max]`.
    Uniform,
    /// 90% `min`, 10% `max`.
    Skewed,
    /// Powers of two from `min` up to `max` over the run.
    Drift,
}

/// One benchmark shape: each thread runs `iters` allocations, keeping `outstanding` live.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Row label.
    pub name: &'static str,
    /// Size choice.
    pub sizes: Sizes,
    /// Smallest size (bytes, >= 16).
    pub min: u32,
    /// Largest size (bytes).
    pub max: u32,
    /// Live allocations per thread (1..=16).
    pub outstanding: u32,
}

/// What one run did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome {
    /// Allocations that returned memory.
    pub served: u64,
    /// Allocations that returned null.
    pub failed: u64,
    /// Clock cycles the loop kernel's threads spent allocating, freeing, and writing and checking
    /// blocks, summed over threads: zero unless built with `GROSR_BENCH_PROFILE=1`
    /// (`GROSR_DEFINES`).
    pub split: [u64; 3],
}

impl Outcome {
    /// Share of allocations that succeeded, in percent.
    pub fn success_pct(&self) -> f64 {
        100.0 * self.served as f64 / (self.served + self.failed).max(1) as f64
    }
}

const WAIT: Duration = Duration::from_secs(120);
/// How long a loop kernel's thread may run before it stops: runs take milliseconds, so a run
/// that reaches this has stalled, and the host reports it with the heap's slow-path counts
/// instead of waiting.
const LOOP_BUDGET: Duration = Duration::from_secs(10);
/// A run still going after this long prints the heap's state (at most [`STALL_NOTICES`] times).
const STALL_NOTICE: Duration = Duration::from_secs(4);
const STALL_NOTICES: usize = 4;
const BLOCK: u32 = 256;

/// Bytes between the checked 16-byte words of a block in the report and `cargo bench`: so far
/// apart that every block gets its first and last 16 bytes written and checked, and no more (what
/// an allocator benchmark can afford: a denser pattern's own memory traffic caps the rate, as
/// the per-thread pool, which does no allocator work, shows under [`FILLED_CHECK_STRIDE`]).
pub const BENCH_CHECK_STRIDE: u32 = 1 << 30;
/// A 16-byte word every 256 bytes: the report's second table, blocks used more as a task that
/// fills them would (a 4 KiB block: 17 words).
pub const FILLED_CHECK_STRIDE: u32 = 256;
/// Every 16 bytes of every block written and checked: what the GPU tests use.
pub const DENSE_CHECK: u32 = 16;

/// Launchers of the benchmark kernels on a runtime built by [`builder`] (scheduler stopped).
pub struct AllocBench<'rt> {
    rt: &'rt Runtime,
    base: Baselines<'rt>,
    counters: DeviceMem,
    pool: Option<DeviceMem>,
    ptrs: Option<DeviceMem>,
    check_stride: u32,
}

/// A runtime builder with the benchmark kernels and a heap of `heap_bytes`.
pub fn builder(heap_bytes: u64) -> RuntimeBuilder {
    Runtime::builder()
        .heap_bytes(heap_bytes)
        .cuda(BENCH_CUDA, BENCH_KERNELS)
}

/// Raises CUDA's device-malloc heap limit of `gpu`'s context. Call it before building a
/// runtime on that GPU (the limit cannot change beside a running kernel).
pub fn set_cuda_malloc_heap(gpu: &Gpu, bytes: usize) -> Result<()> {
    gpu.bind()?;
    // SAFETY: the context is current; the limit is a plain value.
    unsafe { sys::cuCtxSetLimit(sys::CUlimit::CU_LIMIT_MALLOC_HEAP_SIZE, bytes) }
        .result()
        .call("cuCtxSetLimit(CU_LIMIT_MALLOC_HEAP_SIZE)")
}

impl<'rt> AllocBench<'rt> {
    /// Stops the runtime's scheduler (benchmark kernels need every SM) and prepares launchers.
    pub fn new(rt: &'rt Runtime) -> Result<Self> {
        rt.stop()?;
        Ok(AllocBench {
            rt,
            base: rt.baselines()?,
            counters: DeviceMem::zeroed(64)?,
            pool: None,
            ptrs: None,
            check_stride: BENCH_CHECK_STRIDE,
        })
    }

    /// Sets how densely blocks are written and checked: a 16-byte word every `stride` bytes
    /// (a multiple of 16; [`DENSE_CHECK`] covers every byte) and each block's last 16 bytes.
    pub fn set_check_stride(&mut self, stride: u32) -> Result<()> {
        if stride == 0 || stride % 16 != 0 {
            return Err(Error::Config(format!(
                "check stride {stride} must be a positive multiple of 16 bytes"
            )));
        }
        self.check_stride = stride;
        Ok(())
    }

    /// Blocks of 256 threads per SM that grosr's loop kernel keeps resident, as the occupancy API
    /// reports (kernels are built for at least `GROSR_BENCH_MIN_BLOCKS`, default 4).
    pub fn min_blocks(&self) -> Result<u32> {
        Ok(self.full_threads("bench_loop_grosr")? / self.rt.info().sm_count.max(1) / BLOCK)
    }

    /// Threads of a full-occupancy grid of `kernel` (resident blocks per SM × SMs × 256).
    pub fn full_threads(&self, kernel: &str) -> Result<u32> {
        let f = self.rt.module().function(kernel)?;
        // SAFETY: f is a function of the runtime's live module.
        let per_sm =
            unsafe { cu::occupancy::max_active_block_per_multiprocessor(f, BLOCK as i32, 0) }
                .call("cuOccupancyMaxActiveBlocksPerMultiprocessor")?;
        Ok(per_sm.max(1) as u32 * self.rt.info().sm_count * BLOCK)
    }

    fn args(&mut self, shape: &Shape, iters: u32, threads: u32, a: Allocator) -> Result<BenchArgs> {
        self.counters.write(&[0u64; 8])?;
        let slot = shape.max.next_multiple_of(16);
        let per_thread = slot as u64 * shape.outstanding as u64;
        let mut pool = 0;
        if a == Allocator::ThreadPool {
            let need = (per_thread * threads as u64) as usize;
            if self.pool.as_ref().is_none_or(|p| p.len() < need) {
                self.pool = None;
                self.pool = Some(DeviceMem::uninit(need)?);
            }
            pool = self.pool.as_ref().map_or(0, |p| p.ptr());
        }
        Ok(BenchArgs {
            counters: self.counters.ptr(),
            pool,
            pool_per_thread: per_thread,
            budget_ns: LOOP_BUDGET.as_nanos() as u64,
            pool_slot: slot,
            iters,
            outstanding: shape.outstanding.clamp(1, 16),
            kind: shape.sizes as u32,
            min_size: shape.min.max(16),
            max_size: shape.max.max(shape.min.max(16)),
            seed: 0x5EED,
            check_stride: self.check_stride,
        })
    }

    fn outcome(&self, what: &str) -> Result<Outcome> {
        // Runs take milliseconds. One still running after a notice period prints the heap's
        // state, read on the copy stream beside it (slow-path counts that move: a slow loop;
        // that do not: a thread stuck elsewhere), a few times, then is waited out.
        for _ in 0..STALL_NOTICES {
            match self.base.sync(STALL_NOTICE) {
                Err(Error::Timeout(..)) => {
                    let heap = self.rt.heap_stats()?;
                    eprintln!(
                        "{what}: still running after {STALL_NOTICE:?}; heap: {} of {} slabs \
                         free, {} allocations in use, {} failures; slow paths: {:?}",
                        heap.free_slabs,
                        heap.slabs,
                        heap.allocations_in_use,
                        heap.failures,
                        heap.slow_paths
                    );
                }
                r => return r.and_then(|()| self.counted(what)),
            }
        }
        self.base.sync(WAIT)?;
        self.counted(what)
    }

    /// The counters of a finished run, checked.
    fn counted(&self, what: &str) -> Result<Outcome> {
        let mut c = [0u64; 8];
        self.counters.read(&mut c)?;
        if c[7] != 0 {
            let heap = self.rt.heap_stats()?;
            return Err(Error::Config(format!(
                "{what}: {} threads stopped after {LOOP_BUDGET:?} (a stall); heap: {} of {} \
                 slabs free, {} allocations in use; slow paths since setup: {:?}",
                c[7], heap.free_slabs, heap.slabs, heap.allocations_in_use, heap.slow_paths
            )));
        }
        if c[3] != 0 {
            return Err(Error::Config(format!(
                "{what}: {} allocations returned blocks outside the heap's arena",
                c[3]
            )));
        }
        if c[2] != 0 {
            return Err(Error::Config(format!(
                "{what}: {} words of live allocations were overwritten (overlapping allocations)",
                c[2]
            )));
        }
        Ok(Outcome {
            served: c[0],
            failed: c[1],
            split: [c[4], c[5], c[6]],
        })
    }

    /// One run of `shape` on `threads` threads, `iters` allocations each; verified.
    pub fn run(
        &mut self,
        a: Allocator,
        shape: &Shape,
        threads: u32,
        iters: u32,
    ) -> Result<Outcome> {
        let mut args = self.args(shape, iters, threads, a)?;
        let name = format!("bench_loop_{}", a.suffix());
        let mut p = [&mut args as *mut BenchArgs as *mut c_void];
        // SAFETY: the kernel takes one Args by value (BenchArgs mirrors it); the counters and the
        // pool outlive the launch (we sync in outcome).
        unsafe {
            self.base
                .launch(&name, threads.div_ceil(BLOCK), BLOCK, 0, &mut p)?
        };
        self.outcome(&format!("{} {}", a.suffix(), shape.name))
    }

    /// Timed runs (median of `reps` after `warmup`): allocations per second and the outcome of
    /// the last run.
    pub fn rate(
        &mut self,
        a: Allocator,
        shape: &Shape,
        threads: u32,
        iters: u32,
        warmup: usize,
        reps: usize,
    ) -> Result<(f64, Outcome)> {
        let mut last = Outcome::default();
        let stats = measure(warmup, reps, || {
            last = self.run(a, shape, threads, iters)?;
            Ok(())
        })?;
        Ok((per_second(last.served, &stats), last))
    }

    /// Remote frees: `rounds` × (every thread allocates; then every thread frees the block of a
    /// permuted other thread). Allocations per second over the whole, and the outcome.
    pub fn remote(
        &mut self,
        a: Allocator,
        shape: &Shape,
        threads: u32,
        rounds: u32,
    ) -> Result<(f64, Outcome)> {
        if a == Allocator::ThreadPool {
            return Err(Error::Config(
                "a per-thread pool cannot free remotely".into(),
            ));
        }
        let mut args = self.args(shape, rounds, threads, a)?;
        self.ensure_ptrs(threads as usize)?;
        let ptrs = self.ptrs.as_ref().map_or(0, |p| p.ptr());
        let t = Instant::now();
        for round in 0..rounds {
            for kernel in ["bench_remote_alloc_", "bench_remote_free_"] {
                let (mut ptr, mut n, mut r) = (ptrs, threads, round);
                let mut p = [
                    &mut args as *mut BenchArgs as *mut c_void,
                    &mut ptr as *mut u64 as *mut c_void,
                    &mut n as *mut u32 as *mut c_void,
                    &mut r as *mut u32 as *mut c_void,
                ];
                let name = format!("{kernel}{}", a.suffix());
                // SAFETY: (Args, uint8_t**, uint32_t, uint32_t) as the kernels declare; the
                // pointer array has `threads` entries and outlives the launches.
                unsafe {
                    self.base
                        .launch(&name, threads.div_ceil(BLOCK), BLOCK, 0, &mut p)?
                };
            }
        }
        let out = self.outcome(&format!("{} remote frees", a.suffix()))?;
        let secs = t.elapsed().as_secs_f64();
        Ok((out.served as f64 / secs, out))
    }

    fn ensure_ptrs(&mut self, n: usize) -> Result<()> {
        if self.ptrs.as_ref().is_none_or(|p| p.len() < 8 * n) {
            self.ptrs = None;
            self.ptrs = Some(DeviceMem::zeroed(8 * n)?);
        }
        Ok(())
    }

    /// Out-of-memory round of grosr's heap: allocate `size`-byte blocks until null on every
    /// thread, then free them all. Returns (share of the heap handed out, in percent; bytes in
    /// use after the frees; failures counted).
    pub fn oom_round(&mut self, size: u32, threads: u32) -> Result<(f64, u64)> {
        let shape = Shape {
            name: "oom",
            sizes: Sizes::Fixed,
            min: size,
            max: size,
            outstanding: 1,
        };
        let mut args = self.args(&shape, u32::MAX, threads, Allocator::Grosr)?;
        self.ensure_ptrs(threads as usize)?;
        let mut heads = self.ptrs.as_ref().map_or(0, |p| p.ptr());
        let grid = threads.div_ceil(BLOCK);
        for kernel in ["bench_oom_fill", "bench_oom_free"] {
            let mut p = [
                &mut args as *mut BenchArgs as *mut c_void,
                &mut heads as *mut u64 as *mut c_void,
            ];
            // SAFETY: (Args, uint8_t**) as declared; heads has one entry per thread.
            unsafe { self.base.launch(kernel, grid, BLOCK, 0, &mut p)? };
            if kernel == "bench_oom_fill" {
                self.base.sync(WAIT)?;
            }
        }
        let out = self.outcome("grosr out-of-memory round")?;
        let after = self.rt.heap_stats()?.bytes_in_use;
        Ok((
            100.0 * (out.served * size as u64) as f64 / self.rt.heap_bytes().max(1) as f64,
            after,
        ))
    }
}

fn per_second(n: u64, s: &Stats) -> f64 {
    n as f64 / s.median.as_secs_f64().max(1e-9)
}

/// The seed's three shapes.
pub const SEED_SHAPES: [Shape; 3] = [
    Shape {
        name: "churn 64 B",
        sizes: Sizes::Fixed,
        min: 64,
        max: 64,
        outstanding: 1,
    },
    Shape {
        name: "16 outstanding, 64 B",
        sizes: Sizes::Fixed,
        min: 64,
        max: 64,
        outstanding: 16,
    },
    Shape {
        name: "mixed 64–512 B",
        sizes: Sizes::Pow2,
        min: 64,
        max: 512,
        outstanding: 1,
    },
];

/// The further shapes, run at full occupancy.
pub const MORE_SHAPES: [Shape; 3] = [
    Shape {
        name: "mixed 16–4096 B",
        sizes: Sizes::Uniform,
        min: 16,
        max: 4096,
        outstanding: 1,
    },
    Shape {
        name: "skewed 90% 64 B / 10% 4 KB",
        sizes: Sizes::Skewed,
        min: 64,
        max: 4096,
        outstanding: 1,
    },
    Shape {
        name: "drifting 16 B → 4 KB, 4 outstanding",
        sizes: Sizes::Drift,
        min: 16,
        max: 4096,
        outstanding: 4,
    },
];

/// The report's allocator section: builds its own runtime (8 GiB heap, or less where memory is
/// short; CUDA's malloc heap raised to 6 GiB), runs every shape on the three allocators, and
/// returns the tables (throughput, success, the shapes with large blocks under a denser pattern,
/// usable heap, init time). `quick` cuts iterations and repetitions (about 15 s instead of about
/// 60 s). `step` hears of each row as it is measured (a progress line). `GROSR_BENCH_CHECK_STRIDE` (bytes, a multiple of 16) replaces
/// [`BENCH_CHECK_STRIDE`], to see how much the harness's own memory traffic weighs.
pub fn report(quick: bool, step: &dyn Fn(&str)) -> Result<Vec<Table>> {
    let gpu = Gpu::open(0)?;
    let (free, _) = gpu.memory_info()?;
    let free = free as u64;
    let heap = (8u64 << 30).min(free / 3);
    let cuda_heap = (6u64 << 30).min(free / 4);
    set_cuda_malloc_heap(&gpu, cuda_heap as usize)?;
    let rt = builder(heap).build()?;
    let mut b = AllocBench::new(&rt)?;
    let stride = match std::env::var("GROSR_BENCH_CHECK_STRIDE") {
        Ok(v) => v.parse().map_err(|_| {
            Error::Config(format!(
                "GROSR_BENCH_CHECK_STRIDE={v:?} is not a number of bytes"
            ))
        })?,
        Err(_) => BENCH_CHECK_STRIDE,
    };
    b.set_check_stride(stride)?;
    let cold = rt.heap_init_time().unwrap_or_default();

    let (warm, reps) = if quick { (1, 3) } else { (2, 7) };
    let seed_iters = 200;
    let (cuda_seed_iters, cuda_full_iters) = if quick { (20, 2) } else { (200, 4) };
    let small = 16_384;
    let cols = ["grosr", "CUDA malloc", "per-thread pool"];
    let mut rate = Table::new(
        "alloc_rate",
        "Device allocators: allocations per second (alloc → write → check → free)",
        "M allocs/s",
        true,
        &cols,
    );
    let mut success = Table::new(
        "alloc_success",
        "Device allocators: allocations served",
        "%",
        true,
        &cols,
    );
    let allocators = [
        Allocator::Grosr,
        Allocator::CudaMalloc,
        Allocator::ThreadPool,
    ];
    let mut splits = Vec::new();
    // Slow-path counts exist only in a module built with GROSR_HEAP_SLOW_COUNTS=1 (by
    // GROSR_DEFINES here, since this section builds its own runtime).
    let count_slow = std::env::var("GROSR_DEFINES").is_ok_and(|d| {
        d.split(',')
            .any(|kv| kv.trim() == "GROSR_HEAP_SLOW_COUNTS=1")
    });
    let mut row = |b: &mut AllocBench, label: String, shape: &Shape, full: bool| -> Result<()> {
        let (mut r, mut s) = (Vec::new(), Vec::new());
        for a in allocators {
            let threads = if full {
                b.full_threads(&format!("bench_loop_{}", a.suffix()))?
            } else {
                small
            };
            let (iters, w, n) = match (a, full) {
                (Allocator::CudaMalloc, false) => (cuda_seed_iters, 0, 1),
                (Allocator::CudaMalloc, true) => (cuda_full_iters, 0, 1),
                _ => (seed_iters, warm, reps),
            };
            let count_slow = count_slow && a == Allocator::Grosr;
            let slow_before = if count_slow {
                rt.heap_stats()?.slow_paths
            } else {
                SlowPaths::default()
            };
            let (v, out) = b.rate(a, shape, threads, iters, w, n)?;
            if count_slow {
                let slow = rt.heap_stats()?.slow_paths.since(&slow_before);
                let line = format!("{label} (grosr), all runs: {slow:?}");
                step(&line); // now: a later row may not finish
                splits.push(line);
            }
            step(&format!(
                "{label} ({}): {:.1} M allocs/s",
                a.suffix(),
                v / 1e6
            ));
            if out.split.iter().any(|&c| c > 0) {
                let per = |c: u64| c as f64 / (out.served + out.failed).max(1) as f64;
                splits.push(format!(
                    "{label} ({}): clocks per allocation: allocate {:.0}, free {:.0}, write + check {:.0}",
                    a.suffix(),
                    per(out.split[0]),
                    per(out.split[1]),
                    per(out.split[2])
                ));
            }
            r.push(Some(v / 1e6));
            s.push(Some(out.success_pct()));
        }
        rate.push(label.clone(), r);
        success.push(label, s);
        Ok(())
    };
    // The seed's three modes at its 16 384 threads, then every mode at full occupancy.
    let runs = SEED_SHAPES.iter().map(|s| (s, false)).chain(
        SEED_SHAPES
            .iter()
            .chain(MORE_SHAPES.iter())
            .map(|s| (s, true)),
    );
    for (shape, full) in runs {
        let threads = if full {
            "full occupancy"
        } else {
            "16 384 threads"
        };
        row(&mut b, format!("{}, {threads}", shape.name), shape, full)?;
    }
    // Remote frees (a per-thread pool cannot do them).
    let remote_shape = SEED_SHAPES[2];
    let threads = b.full_threads("bench_remote_alloc_grosr")?;
    let rounds = if quick { 4 } else { 20 };
    let (g, go) = b.remote(Allocator::Grosr, &remote_shape, threads, rounds)?;
    let (c, co) = b.remote(Allocator::CudaMalloc, &remote_shape, threads, 1)?;
    step("remote frees: done");
    let label = "remote frees, mixed 64–512 B, full occupancy".to_string();
    rate.push(label.clone(), vec![Some(g / 1e6), Some(c / 1e6), None]);
    success.push(
        label,
        vec![Some(go.success_pct()), Some(co.success_pct()), None],
    );
    // The shapes with large blocks again, a word every 256 B: the harness's traffic now weighs.
    b.set_check_stride(FILLED_CHECK_STRIDE)?;
    let mut filled = Table::new(
        "alloc_rate_filled",
        "Device allocators, large blocks more filled: a 16-byte word every 256 B written and checked",
        "M allocs/s",
        true,
        &["grosr", "per-thread pool"],
    );
    for shape in SEED_SHAPES[2..].iter().chain(MORE_SHAPES.iter()) {
        let mut r = Vec::new();
        for a in [Allocator::Grosr, Allocator::ThreadPool] {
            let threads = b.full_threads(&format!("bench_loop_{}", a.suffix()))?;
            let (v, _) = b.rate(a, shape, threads, seed_iters, warm, reps)?;
            step(&format!(
                "{}, every 256 B ({}): {:.1} M allocs/s",
                shape.name,
                a.suffix(),
                v / 1e6
            ));
            r.push(Some(v / 1e6));
        }
        filled.push(format!("{}, full occupancy", shape.name), r);
    }
    filled.notes.push(
        "Same shapes and runs as the first table but for the pattern. The pool's column is the \
         harness's own ceiling; the pool reuses one slot per thread, while an allocator hands out \
         blocks spread over its slabs."
            .into(),
    );
    b.set_check_stride(stride)?;
    rate.notes.extend(splits);
    rate.notes.push(format!(
        "Same process, same GPU ({}). grosr and the pool: {seed_iters} iterations per thread, median of {reps}; \
         CUDA malloc: {cuda_seed_iters} iterations (16 384 threads) or {cuda_full_iters} (full occupancy), one run \
         (it is three orders of magnitude slower). Full occupancy = the occupancy API's grid for each kernel \
         (each built for at least 4 blocks of 256 threads per SM; grosr's loop kernel gets {}). grosr heap {} MiB, CUDA malloc heap {} MiB. \
         Every allocation is written and checked: {} (the GPU tests check every 16 bytes of every block; the \
         last table, a word every 256 B); the per-thread pool does no allocator work, so its column is the \
         harness's own ceiling. \
         Targets (H200): full occupancy churn 64 B ≥ 4500, 16 outstanding ≥ 6200, mixed 64–512 B ≥ 1600, \
         mixed 16–4096 B ≥ 1000 M allocs/s, each ≥ 1000× CUDA malloc.",
        rt.info().device,
        b.min_blocks()?,
        heap >> 20,
        cuda_heap >> 20,
        if stride == BENCH_CHECK_STRIDE {
            "the block's first and last 16 bytes".to_string()
        } else {
            format!("16-byte words {stride} bytes apart and the block's last 16 bytes")
        }
    ));

    let mut oom = Table::new(
        "alloc_oom",
        "grosr heap: share usable before out-of-memory (allocate until null, then free all)",
        "%",
        true,
        &["usable", "in use after frees"],
    );
    let threads = b.full_threads("bench_oom_fill")?;
    for size in [64u32, 1024] {
        rt.heap_reset()?;
        let (share, after) = b.oom_round(size, threads)?;
        step(&format!(
            "out-of-memory round, {size} B: {share:.1}% usable"
        ));
        oom.push(
            format!("{size} B blocks"),
            vec![
                Some(share),
                Some(100.0 * after as f64 / rt.heap_bytes().max(1) as f64),
            ],
        );
    }
    oom.notes.push(
        "Target: ≥ 95% usable at 64 B; 0% in use after the frees (the heap recovers).".into(),
    );

    let warm_init = measure(1, if quick { 3 } else { 10 }, || {
        rt.heap_reset().map(|_| ())
    })?;
    let mut init = Table::new(
        "alloc_init",
        "grosr heap initialisation",
        "ms",
        false,
        &["time"],
    );
    init.push(
        "cold (allocate + initialise, at build)",
        vec![Some(cold.as_secs_f64() * 1e3)],
    );
    init.push(
        "warm (re-initialise, median)",
        vec![Some(warm_init.median.as_secs_f64() * 1e3)],
    );
    init.notes.push(format!(
        "Heap of {} MiB: metadata written by host copies (no kernel beside the scheduler).",
        heap >> 20
    ));
    drop(b);
    drop(gpu);
    Ok(vec![rate, success, filled, oom, init])
}
