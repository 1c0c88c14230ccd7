//! Task types and kernels of the device-heap tests (gpu_alloc and the NVRTC compile check, both
//! grosr-lab tests: their `file = ` paths are relative to benches/lab/Cargo.toml).
#![allow(dead_code)]

use grosr::{DevicePtr, RuntimeBuilder};

// stats: [0] null allocations, [1] misaligned blocks, [2] blocks whose contents changed, [3] frees.

/// Allocates `words` u32 in a lane task, fills them, and spawns a FreeBlock to check and free them.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    uint32_t* p = ctx.alloc_n<uint32_t>(task.words);
    if (!p) { atomicAdd(&task.stats[0], 1u); return; }
    if ((unsigned long long)p & 15) atomicAdd(&task.stats[1], 1u);
    for (uint32_t i = 0; i < task.words; ++i) p[i] = task.tag + i;
    grosr_spawn_FreeBlock(ctx, FreeBlock{.block = p, .stats = task.stats, .words = task.words, .tag = task.tag});
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
        grosr_spawn_FreeBlock(ctx, FreeBlock{.block = p, .stats = task.stats, .words = words, .tag = tag});
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
#[grosr::task(granularity = "lane", file = "../../tests/cuda/alloc_rounds.cu")]
pub struct AllocRounds {
    pub stats: DevicePtr<u32>,
    pub rounds: u32,
    pub tag: u32,
}

/// [`AllocRounds`] as a warp task: each lane runs `rounds + lane % 5` rounds.
#[grosr::task(granularity = "warp", file = "../../tests/cuda/alloc_rounds.cu")]
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
