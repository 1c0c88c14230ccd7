//! Task types shared by the GPU tests and the NVRTC compile check.
#![allow(dead_code)]

use grosr::{DevicePtr, RuntimeBuilder};

/// Marks `flags[index]` once: checks each host-submitted task runs exactly once.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    atomicAdd(&task.flags[task.index], 1u);
"#
)]
pub struct Mark {
    pub flags: DevicePtr<u32>,
    pub index: u32,
    pub pad: u32,
}

/// A Mark task setting `flags[index]`.
pub fn mark(flags: &grosr::DeviceBuffer<u32>, index: u32) -> Mark {
    Mark {
        flags: flags.ptr(),
        index,
        pad: 0,
    }
}

/// Fibonacci by recursive spawning: leaves add their n into `sum`, so sum = fib(n).
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    if (task.n < 2) {
        atomicAdd(task.sum, (unsigned long long)task.n);
    } else {
        grosr_spawn_Fib(ctx, Fib{task.n - 1, 0, task.sum});
        grosr_spawn_Fib(ctx, Fib{task.n - 2, 0, task.sum});
    }
"#
)]
pub struct Fib {
    pub n: u32,
    pub pad: u32,
    pub sum: DevicePtr<u64>,
}

/// A chain of dependent spawns: each hop spawns the next; the last writes `hops_seen`.
#[grosr::task(cuda = r#"
    if (ctx.lane() == 0) {
        atomicAdd(task.hops, 1u);
        if (task.remaining > 0) grosr_spawn_Chain(ctx, Chain{task.remaining - 1, 0, task.hops});
    }
"#)]
pub struct Chain {
    pub remaining: u32,
    pub pad: u32,
    pub hops: DevicePtr<u32>,
}

/// A lane chain alternating with [`Tock`]: hop `hop` of chain `chain` counts itself in
/// `hits[chain * len + hop]`, then spawns the next hop (a held task: the scheduler bypass).
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    atomicAdd(&task.hits[task.chain * task.len + task.hop], 1u);
    if (task.hop + 1 < task.len) grosr_spawn_Tock(ctx, Tock{task.hits, task.chain, task.hop + 1, task.len, 0});
"#
)]
pub struct Tick {
    pub hits: DevicePtr<u32>,
    pub chain: u32,
    pub hop: u32,
    pub len: u32,
    pub pad: u32,
}

/// The other half of a [`Tick`] chain; every third hop also spawns a [`Mark`] of its chain, so
/// held chains meet the fan-out path (the second spawn sends the held task to the stack).
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    atomicAdd(&task.hits[task.chain * task.len + task.hop], 1u);
    if (task.hop + 1 < task.len) grosr_spawn_Tick(ctx, Tick{task.hits, task.chain, task.hop + 1, task.len, 0});
    if (task.hop % 3 == 0) grosr_spawn_Mark(ctx, Mark{task.hits, task.chain * task.len + task.hop, 0});
"#
)]
pub struct Tock {
    pub hits: DevicePtr<u32>,
    pub chain: u32,
    pub hop: u32,
    pub len: u32,
    pub pad: u32,
}

/// Fails its job with `code`.
#[grosr::task(cuda = r#"
    if (ctx.lane() == 0) ctx.fail(task.code);
"#)]
pub struct Failer {
    pub code: i32,
    pub pad: u32,
}

/// Writes through `addr`: an illegal address when it points nowhere.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    *task.addr = 1u;
"#
)]
pub struct Poke {
    pub addr: DevicePtr<u32>,
}

/// Traps.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    if (task.really) __trap();
"#
)]
pub struct Trap {
    pub really: u32,
}

/// A whole-block task: a block reduction through shared memory, checked by the host.
#[grosr::task(
    granularity = "block",
    cuda = r#"
    __shared__ uint32_t partial[32];
    uint32_t v = task.base + ctx.lane();
    for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
    if ((ctx.lane() & 31) == 0) partial[ctx.lane() / 32] = v;
    __syncthreads();
    if (ctx.lane() == 0) {
        uint32_t s = 0;
        for (uint32_t w = 0; w < ctx.width() / 32; ++w) s += partial[w];
        task.out[task.slot] = s;
    }
    __syncthreads();
"#
)]
pub struct BlockSum {
    pub out: DevicePtr<u32>,
    pub base: u32,
    pub slot: u32,
}

/// Spawns `count` block tasks from one lane each.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    grosr_spawn_BlockSum(ctx, BlockSum{task.out, task.base, task.slot});
"#
)]
pub struct SpawnBlock {
    pub out: DevicePtr<u32>,
    pub base: u32,
    pub slot: u32,
}

/// Spawns `fanout` Mark tasks from each lane: floods small queues.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    for (uint32_t i = 0; i < task.fanout; ++i)
        grosr_spawn_Mark(ctx, Mark{task.flags, task.first + i, 0});
"#
)]
pub struct Flood {
    pub flags: DevicePtr<u32>,
    pub first: u32,
    pub fanout: u32,
}

/// A warp task whose every lane spawns `fanout` Mark tasks (flags first + lane * fanout + i).
#[grosr::task(
    granularity = "warp",
    cuda = r#"
    for (uint32_t i = 0; i < task.fanout; ++i)
        grosr_spawn_Mark(ctx, Mark{task.flags, task.first + ctx.lane() * task.fanout + i, 0});
"#
)]
pub struct WarpFlood {
    pub flags: DevicePtr<u32>,
    pub first: u32,
    pub fanout: u32,
}

/// Spawns 32 children per level: live tasks grow far past small queues.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    if (task.depth > 0)
        for (uint32_t i = 0; i < 32; ++i) grosr_spawn_Bomb(ctx, Bomb{task.depth - 1});
"#
)]
pub struct Bomb {
    pub depth: u32,
}

/// Every test task type, registered.
pub fn builder() -> RuntimeBuilder {
    grosr::Runtime::builder()
        .task::<Mark>()
        .task::<Fib>()
        .task::<Chain>()
        .task::<Failer>()
        .task::<Poke>()
        .task::<Trap>()
        .task::<BlockSum>()
        .task::<SpawnBlock>()
        .task::<Flood>()
        .task::<WarpFlood>()
        .task::<Bomb>()
        .task::<Tick>()
        .task::<Tock>()
}

// ---- Device heap (tests/gpu_alloc.rs) ----
// stats: [0] null allocations, [1] misaligned blocks, [2] blocks whose contents changed, [3] frees.

/// Allocates `words` u32 in a lane task, fills them, and spawns a FreeBlock to check and free them.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    uint32_t* p = ctx.alloc_n<uint32_t>(task.words);
    if (!p) { atomicAdd(&task.stats[0], 1u); return; }
    if ((unsigned long long)p & 15) atomicAdd(&task.stats[1], 1u);
    for (uint32_t i = 0; i < task.words; ++i) p[i] = task.tag + i;
    grosr_spawn_FreeBlock(ctx, FreeBlock{p, task.stats, task.words, task.tag});
"#
)]
pub struct AllocLane {
    pub stats: DevicePtr<u32>,
    pub words: u32,
    pub tag: u32,
}

/// Checks a block (another task allocated it) and frees it.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    for (uint32_t i = 0; i < task.words; ++i) {
        if (task.block[i] != task.tag + i) { atomicAdd(&task.stats[2], 1u); break; }
    }
    ctx.free(task.block);
    atomicAdd(&task.stats[3], 1u);
"#
)]
pub struct FreeBlock {
    pub block: DevicePtr<u32>,
    pub stats: DevicePtr<u32>,
    pub words: u32,
    pub tag: u32,
}

/// A warp task whose lanes allocate blocks of different sizes together, each freed by a FreeBlock.
#[grosr::task(
    granularity = "warp",
    cuda = r#"
    const uint32_t words = task.words + ctx.lane() * 3;
    const uint32_t tag = task.tag + (ctx.lane() << 22);
    uint32_t* p = ctx.alloc_n<uint32_t>(words);
    if (!p) {
        atomicAdd(&task.stats[0], 1u);
    } else {
        if ((unsigned long long)p & 15) atomicAdd(&task.stats[1], 1u);
        for (uint32_t i = 0; i < words; ++i) p[i] = tag + i;
        grosr_spawn_FreeBlock(ctx, FreeBlock{p, task.stats, words, tag});
    }
"#
)]
pub struct AllocWarp {
    pub stats: DevicePtr<u32>,
    pub words: u32,
    pub tag: u32,
}

/// Allocates, fills, checks and frees blocks one after another (tests/cuda/alloc_rounds.cu): the
/// lanes of one warp run different numbers of rounds, so lanes that are done wait in the
/// scheduler's warp barrier while others are still inside `ctx.alloc` / `ctx.free`.
#[grosr::task(granularity = "lane", file = "../tests/cuda/alloc_rounds.cu")]
pub struct AllocRounds {
    pub stats: DevicePtr<u32>,
    pub rounds: u32,
    pub tag: u32,
}

/// [`AllocRounds`] as a warp task: each lane runs `rounds + lane % 5` rounds.
#[grosr::task(granularity = "warp", file = "../tests/cuda/alloc_rounds.cu")]
pub struct AllocRoundsWarp {
    pub stats: DevicePtr<u32>,
    pub rounds: u32,
    pub tag: u32,
}

/// Kernels for the heap tests: allocate sizes[t] bytes per thread (writing a pattern every 4 KiB
/// and at the end), then check and free them, possibly from other threads.
pub const ALLOC_TEST_CUDA: &str = r#"
__device__ void t_pattern(unsigned long long* p, unsigned long long bytes, unsigned long long tag, uint32_t* bad, bool write) {
    for (unsigned long long o = 0; o + 8 <= bytes; o += 4096) {
        if (write) p[o / 8] = tag ^ o; else if (p[o / 8] != (tag ^ o)) atomicAdd(bad, 1u);
    }
    const unsigned long long last = (bytes - 8) / 8;
    if (write) p[last] = tag ^ ~last; else if (p[last] != (tag ^ ~last)) atomicAdd(bad, 1u);
}
extern "C" __global__ void t_alloc(const unsigned long long* sizes, uint32_t n, unsigned long long** out, uint32_t* nulls, uint32_t* bad) {
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    unsigned long long* p = (unsigned long long*)grosr::heap_alloc(sizes[t]);
    out[t] = p;
    if (!p) { atomicAdd(nulls, 1u); return; }
    if ((unsigned long long)p & 15) atomicAdd(bad, 1u);
    t_pattern(p, sizes[t], 0x9E3779B97F4A7C15ull * (t + 1), bad, true);
}
// Thread t checks and frees block (t * stride) % n: another warp's, another SM's.
extern "C" __global__ void t_free(const unsigned long long* sizes, uint32_t n, unsigned long long** ptrs, uint32_t stride, uint32_t* bad) {
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    const uint32_t j = (uint32_t)(((unsigned long long)t * stride) % n);
    unsigned long long* p = ptrs[j];
    if (!p) return;
    t_pattern(p, sizes[j], 0x9E3779B97F4A7C15ull * (j + 1), bad, false);
    grosr::heap_free(p);
}
"#;

/// The heap tests' runtime: the allocating tasks and test kernels, a heap of `heap` bytes.
pub fn alloc_builder_with(heap: u64) -> RuntimeBuilder {
    grosr::Runtime::builder()
        .task::<AllocLane>()
        .task::<FreeBlock>()
        .task::<AllocWarp>()
        .task::<AllocRounds>()
        .task::<AllocRoundsWarp>()
        .heap_bytes(heap)
        .cuda(ALLOC_TEST_CUDA, &["t_alloc", "t_free"])
}

/// [`alloc_builder_with`] a 256 MiB heap.
pub fn alloc_builder() -> RuntimeBuilder {
    alloc_builder_with(256 << 20)
}
