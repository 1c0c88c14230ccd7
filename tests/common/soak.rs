//! Task types of the soak test (tests/gpu_soak.rs) and their module's builder. Every task adds 1
//! to `counts[id]` for an id of its own (spawned tasks' ids follow from their parent's), so the
//! host, which knows every id it handed out, checks that each task ran exactly once.
#![allow(dead_code)]

use grosr::{DevicePtr, RuntimeBuilder};

/// Counts itself.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    atomicAdd(&task.counts[task.id], 1u);
"#
)]
pub struct SoakLeaf {
    pub counts: DevicePtr<u32>,
    pub id: u32,
    pub pad: u32,
}

/// Node `node` of a complete `fanout`-ary tree of depth `depth` (below this node) whose node `k`
/// has id `base + k` and children `k * fanout + 1 ..= k * fanout + fanout`: counts itself and
/// spawns its children.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    atomicAdd(&task.counts[task.base + task.node], 1u);
    if (task.depth > 0)
        for (uint32_t i = 0; i < task.fanout; ++i)
            grosr_spawn_SoakTree(ctx, SoakTree{.counts = task.counts, .base = task.base,
                .node = task.node * task.fanout + 1 + i, .depth = task.depth - 1, .fanout = task.fanout});
"#
)]
pub struct SoakTree {
    pub counts: DevicePtr<u32>,
    pub base: u32,
    pub node: u32,
    pub depth: u32,
    pub fanout: u32,
}

/// A warp task: counts itself at `id`; lane `l` spawns a leaf with id `id + 1 + l` (33 ids).
#[grosr::task(
    granularity = "warp",
    cuda = r#"
    if (ctx.lane() == 0) atomicAdd(&task.counts[task.id], 1u);
    grosr_spawn_SoakLeaf(ctx, SoakLeaf{.counts = task.counts, .id = task.id + 1 + ctx.lane()});
"#
)]
pub struct SoakWarp {
    pub counts: DevicePtr<u32>,
    pub id: u32,
    pub pad: u32,
}

/// A block task: every thread adds 1 to a shared count; thread 0 then counts the task once if the
/// block's count is its width, else 1000 times (the host sees a wrong count).
#[grosr::task(
    granularity = "block",
    cuda = r#"
    __shared__ uint32_t seen;
    if (ctx.lane() == 0) seen = 0;
    __syncthreads();
    atomicAdd(&seen, 1u);
    __syncthreads();
    if (ctx.lane() == 0) atomicAdd(&task.counts[task.id], seen == ctx.width() ? 1u : 1000u);
    __syncthreads();
"#
)]
pub struct SoakBlock {
    pub counts: DevicePtr<u32>,
    pub id: u32,
    pub pad: u32,
}

// stats: [0] allocations that returned null, [1] blocks whose contents changed.

/// Counts itself at `id`, allocates `words` u32 from the device heap, fills them, and spawns a
/// [`SoakFree`] (id `id + 1`) that checks and frees them.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    atomicAdd(&task.counts[task.id], 1u);
    uint32_t* p = ctx.alloc_n<uint32_t>(task.words);
    if (!p) { atomicAdd(&task.stats[0], 1u); return; }
    const uint32_t tag = task.id * 2654435761u;
    for (uint32_t i = 0; i < task.words; ++i) p[i] = tag + i;
    grosr_spawn_SoakFree(ctx, SoakFree{.block = p, .counts = task.counts, .stats = task.stats, .id = task.id + 1,
                                       .words = task.words, .tag = tag});
"#
)]
pub struct SoakAlloc {
    pub counts: DevicePtr<u32>,
    pub stats: DevicePtr<u32>,
    pub id: u32,
    pub words: u32,
}

/// A warp task whose lanes allocate blocks of different sizes at once (lane `l`: `words + 3 l`
/// u32), each checked and freed by a [`SoakFree`] with id `id + 1 + l`; counts itself at `id`.
#[grosr::task(
    granularity = "warp",
    cuda = r#"
    if (ctx.lane() == 0) atomicAdd(&task.counts[task.id], 1u);
    __syncwarp();
    const uint32_t words = task.words + 3 * ctx.lane();
    const uint32_t id = task.id + 1 + ctx.lane();
    const uint32_t tag = id * 2654435761u;
    uint32_t* p = ctx.alloc_n<uint32_t>(words);
    if (!p) {
        atomicAdd(&task.stats[0], 1u);
    } else {
        for (uint32_t i = 0; i < words; ++i) p[i] = tag + i;
        grosr_spawn_SoakFree(ctx, SoakFree{.block = p, .counts = task.counts, .stats = task.stats, .id = id,
                                           .words = words, .tag = tag});
    }
"#
)]
pub struct SoakAllocWarp {
    pub counts: DevicePtr<u32>,
    pub stats: DevicePtr<u32>,
    pub id: u32,
    pub words: u32,
}

/// Checks a block another task allocated and filled, frees it, and counts itself.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    for (uint32_t i = 0; i < task.words; ++i)
        if (task.block[i] != task.tag + i) { atomicAdd(&task.stats[1], 1u); break; }
    ctx.free(task.block);
    atomicAdd(&task.counts[task.id], 1u);
"#
)]
pub struct SoakFree {
    pub block: DevicePtr<u32>,
    pub counts: DevicePtr<u32>,
    pub stats: DevicePtr<u32>,
    pub id: u32,
    pub words: u32,
    pub tag: u32,
    pub pad: u32,
}

/// The soak's module: its task types; queues, arena and heap sized for it. The arena is small
/// (chunks of 256 KiB, 16 384 leaves) so that large jobs span several chunks and eight threads
/// wait for arena space now and then.
pub fn builder() -> RuntimeBuilder {
    grosr::Runtime::builder()
        .task::<SoakLeaf>()
        .task::<SoakTree>()
        .task::<SoakWarp>()
        .task::<SoakBlock>()
        .task::<SoakAlloc>()
        .task::<SoakAllocWarp>()
        .task::<SoakFree>()
        .queue_capacity(16384)
        .arena_bytes(1 << 20)
        .heap_bytes(1 << 30)
}
