//! Task types and kernels of the device-heap tests: gpu_alloc and the NVRTC compile check (both
//! grosr-lab tests), and cpu_bodies (the tasks and checks on the CPU backend).
#![allow(dead_code)]

use grosr::{DevicePtr, RuntimeBuilder};

// stats: [0] null allocations, [1] misaligned blocks, [2] blocks whose contents changed, [3] frees.
// The tasks have Rust bodies: they run on a GPU (tests/gpu_alloc.rs) and on the CPU backend
// (tests/cpu_bodies.rs).

/// Allocates `words` u32 in a lane task, fills them, and spawns a FreeBlock to check and free them.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let p = ctx.alloc::<u32>(task.words);
    if p.is_null() {
        ctx.atomic_add(task.stats, 0u32, 1u32);
        return;
    }
    if p.addr() & 15u64 != 0u64 {
        ctx.atomic_add(task.stats, 1u32, 1u32);
    }
    for i in 0..task.words {
        ctx.write(p, i, task.tag + i);
    }
    ctx.spawn(FreeBlock { block: p, stats: task.stats, words: task.words, tag: task.tag });
})]
pub struct AllocLane {
    pub stats: DevicePtr<u32>,
    pub words: u32,
    pub tag: u32,
}

/// Checks a block (another task allocated it) and frees it.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    for i in 0..task.words {
        if ctx.read(task.block, i) != task.tag + i {
            ctx.atomic_add(task.stats, 2u32, 1u32);
            break;
        }
    }
    ctx.free(task.block);
    ctx.atomic_add(task.stats, 3u32, 1u32);
})]
pub struct FreeBlock {
    pub block: DevicePtr<u32>,
    pub stats: DevicePtr<u32>,
    pub words: u32,
    pub tag: u32,
}

/// A warp task whose lanes allocate blocks of different sizes together, each freed by a FreeBlock.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let words = task.words + ctx.lane() * 3u32;
    let tag = task.tag + (ctx.lane() << 22u32);
    let p = ctx.alloc::<u32>(words);
    if p.is_null() {
        ctx.atomic_add(task.stats, 0u32, 1u32);
    } else {
        if p.addr() & 15u64 != 0u64 {
            ctx.atomic_add(task.stats, 1u32, 1u32);
        }
        for i in 0..words {
            ctx.write(p, i, tag + i);
        }
        ctx.spawn(FreeBlock { block: p, stats: task.stats, words: words, tag: tag });
    }
})]
pub struct AllocWarp {
    pub stats: DevicePtr<u32>,
    pub words: u32,
    pub tag: u32,
}

/// Allocates, fills, checks and frees blocks one after another: the lanes of one warp run
/// different numbers of rounds, so lanes that are done wait in the scheduler's warp barrier
/// while others are still inside `ctx.alloc` / `ctx.free`. A lane task of `$gran` (one lane),
/// or a warp task whose lane l runs `rounds + l % 5` rounds.
macro_rules! alloc_rounds_task {
    ($name:ident, $gran:literal) => {
        #[grosr::task(granularity = $gran, rust = |task, ctx| {
            let rounds = if ctx.width() == 1u32 { task.rounds } else { task.rounds + ctx.lane() % 5u32 };
            let tag = task.tag + (ctx.lane() << 22u32);
            for r in 0..rounds {
                let words = 4u32 + (tag + r * 37u32) % 300u32;
                let p = ctx.alloc::<u32>(words);
                if p.is_null() {
                    ctx.atomic_add(task.stats, 0u32, 1u32);
                    continue;
                }
                if p.addr() & 15u64 != 0u64 {
                    ctx.atomic_add(task.stats, 1u32, 1u32);
                }
                for i in 0..words {
                    ctx.write(p, i, tag + r + i);
                }
                // Read back through a volatile load: the check is of memory, not of a value the
                // compiler kept.
                for i in 0..words {
                    if ctx.read_volatile(p, i) != tag + r + i {
                        ctx.atomic_add(task.stats, 2u32, 1u32);
                        break;
                    }
                }
                ctx.free(p);
                ctx.atomic_add(task.stats, 3u32, 1u32);
            }
        })]
        pub struct $name {
            pub stats: DevicePtr<u32>,
            pub rounds: u32,
            pub tag: u32,
        }
    };
}
alloc_rounds_task!(AllocRounds, "lane");
alloc_rounds_task!(AllocRoundsWarp, "warp");

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

/// The allocating tasks, a heap of `heap` bytes: a builder for either backend.
pub fn portable_alloc_builder(heap: u64) -> RuntimeBuilder {
    grosr::Runtime::builder()
        .task::<AllocLane>()
        .task::<FreeBlock>()
        .task::<AllocWarp>()
        .task::<AllocRounds>()
        .task::<AllocRoundsWarp>()
        .heap_bytes(heap)
}

/// The heap tests' runtime: the allocating tasks and test kernels, a heap of `heap` bytes.
pub fn alloc_builder_with(heap: u64) -> RuntimeBuilder {
    portable_alloc_builder(heap).cuda(ALLOC_TEST_CUDA, &["t_alloc", "t_free"])
}

/// [`alloc_builder_with`] a 256 MiB heap.
pub fn alloc_builder() -> RuntimeBuilder {
    alloc_builder_with(256 << 20)
}

/// Submits two jobs of allocating tasks and waits for both; then every block was allocated,
/// aligned, unchanged and freed (`stats` [nulls, misaligned, changed, frees] is [0, 0, 0, frees])
/// and the heap holds nothing.
pub fn run_and_check<L: grosr::Task + 'static, W: grosr::Task + 'static>(
    rt: &grosr::Runtime,
    lanes: &[L],
    warps: &[W],
    stats: &grosr::DeviceBuffer<u32>,
    frees: u32,
) {
    let t = std::time::Duration::from_secs(120);
    let (a, b) = (rt.submit(lanes).unwrap(), rt.submit(warps).unwrap());
    a.wait_timeout(t).unwrap();
    b.wait_timeout(t).unwrap();
    assert_eq!(
        stats.to_vec().unwrap(),
        vec![0, 0, 0, frees],
        "[nulls, misaligned, changed, frees]"
    );
    let h = rt.heap_stats().unwrap();
    assert_eq!((h.allocations_in_use, h.bytes_in_use), (0, 0), "{h:?}");
    assert_eq!((h.failures, h.bad_frees), (0, 0));
}

/// 20 000 lane tasks and 2 000 warp tasks allocate blocks that other tasks check and free.
pub fn tasks_allocate_and_other_tasks_free(rt: &grosr::Runtime, stats: &grosr::DeviceBuffer<u32>) {
    let lanes: Vec<AllocLane> = (0..20_000u32)
        .map(|i| AllocLane {
            stats: stats.ptr(),
            words: 4 + i % 300,
            tag: i << 12,
        })
        .collect();
    let warps: Vec<AllocWarp> = (0..2_000u32)
        .map(|i| AllocWarp {
            stats: stats.ptr(),
            words: 2 + i % 500,
            tag: i << 12,
        })
        .collect();
    run_and_check(rt, &lanes, &warps, stats, 20_000 + 2_000 * 32);
}

/// Lane and warp tasks whose lanes allocate different numbers of times all finish, every block
/// intact.
pub fn lanes_that_allocate_different_numbers_of_times_all_finish(
    rt: &grosr::Runtime,
    stats: &grosr::DeviceBuffer<u32>,
) {
    let lanes: Vec<AllocRounds> = (0..100_000u32)
        .map(|i| AllocRounds {
            stats: stats.ptr(),
            rounds: i % 9,
            tag: i << 4,
        })
        .collect();
    let warps: Vec<AllocRoundsWarp> = (0..4_000u32)
        .map(|i| AllocRoundsWarp {
            stats: stats.ptr(),
            rounds: i % 4,
            tag: i << 4,
        })
        .collect();
    let frees: u32 = lanes.iter().map(|t| t.rounds).sum::<u32>()
        + warps
            .iter()
            .map(|t| (0..32).map(|l| t.rounds + l % 5).sum::<u32>())
            .sum::<u32>();
    run_and_check(rt, &lanes, &warps, stats, frees);
}
