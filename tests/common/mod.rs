//! Task types shared by the tests and the NVRTC compile check. Those with Rust bodies run on
//! both backends ([`portable_builder`]; `suite.rs` holds the checks both run); the rest use CUDA
//! that the Rust subset lacks (shared memory, `__trap`, `__nanosleep`) and run on a GPU only.
#![allow(dead_code)]

pub mod stall;
pub mod suite;

use grosr::{DevicePtr, RuntimeBuilder};

/// Marks `flags[index]` once: checks each host-submitted task runs exactly once.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.atomic_add(task.flags, task.index, 1u32);
})]
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
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    if task.n < 2 {
        ctx.atomic_add(task.sum, 0u32, task.n as u64);
    } else {
        ctx.spawn(Fib { n: task.n - 1, pad: 0, sum: task.sum });
        ctx.spawn(Fib { n: task.n - 2, pad: 0, sum: task.sum });
    }
})]
pub struct Fib {
    pub n: u32,
    pub pad: u32,
    pub sum: DevicePtr<u64>,
}

/// A chain of dependent spawns: each hop spawns the next; the last writes `hops_seen`.
#[grosr::task(rust = |task, ctx| {
    if ctx.lane() == 0 {
        ctx.atomic_add(task.hops, 0u32, 1u32);
        if task.remaining > 0 {
            ctx.spawn(Chain { remaining: task.remaining - 1, pad: 0, hops: task.hops });
        }
    }
})]
pub struct Chain {
    pub remaining: u32,
    pub pad: u32,
    pub hops: DevicePtr<u32>,
}

/// A lane chain alternating with [`Tock`]: hop `hop` of chain `chain` counts itself in
/// `hits[chain * len + hop]`, then spawns the next hop (a held task: the scheduler bypass).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.atomic_add(task.hits, task.chain * task.len + task.hop, 1u32);
    if task.hop + 1 < task.len {
        ctx.spawn(Tock { hits: task.hits, chain: task.chain, hop: task.hop + 1, len: task.len, pad: 0 });
    }
})]
pub struct Tick {
    pub hits: DevicePtr<u32>,
    pub chain: u32,
    pub hop: u32,
    pub len: u32,
    pub pad: u32,
}

/// The other half of a [`Tick`] chain; every third hop also spawns a [`Mark`] of its chain, so
/// held chains meet the fan-out path (the second spawn sends the held task to the stack).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.atomic_add(task.hits, task.chain * task.len + task.hop, 1u32);
    if task.hop + 1 < task.len {
        ctx.spawn(Tick { hits: task.hits, chain: task.chain, hop: task.hop + 1, len: task.len, pad: 0 });
    }
    if task.hop % 3 == 0 {
        ctx.spawn(Mark { flags: task.hits, index: task.chain * task.len + task.hop, pad: 0 });
    }
})]
pub struct Tock {
    pub hits: DevicePtr<u32>,
    pub chain: u32,
    pub hop: u32,
    pub len: u32,
    pub pad: u32,
}

/// Fails its job with `code`.
#[grosr::task(rust = |task, ctx| {
    if ctx.lane() == 0 {
        ctx.fail(task.code);
    }
})]
pub struct Failer {
    pub code: i32,
    pub pad: u32,
}

/// Writes through `addr`: an illegal address when it points nowhere.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.write(task.addr, 0u32, 1u32);
})]
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
    grosr_spawn_BlockSum(ctx, BlockSum{.out = task.out, .base = task.base, .slot = task.slot});
"#
)]
pub struct SpawnBlock {
    pub out: DevicePtr<u32>,
    pub base: u32,
    pub slot: u32,
}

/// Spawns `fanout` Mark tasks from each lane: floods small queues.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    for i in 0..task.fanout {
        ctx.spawn(Mark { flags: task.flags, index: task.first + i, pad: 0 });
    }
})]
pub struct Flood {
    pub flags: DevicePtr<u32>,
    pub first: u32,
    pub fanout: u32,
}

/// A warp task whose every lane spawns `fanout` Mark tasks (flags first + lane * fanout + i).
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    for i in 0..task.fanout {
        ctx.spawn(Mark { flags: task.flags, index: task.first + ctx.lane() * task.fanout + i, pad: 0 });
    }
})]
pub struct WarpFlood {
    pub flags: DevicePtr<u32>,
    pub first: u32,
    pub fanout: u32,
}

/// Spawns 32 children per level: live tasks grow far past small queues.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    if task.depth > 0 {
        for _child in 0..32u32 {
            ctx.spawn(Bomb { depth: task.depth - 1 });
        }
    }
})]
pub struct Bomb {
    pub depth: u32,
}

/// Holds whatever runs it until `*flag` is nonzero or `max_ns` have passed (the bound keeps a
/// test whose release never arrives from holding the GPU for good), then traps if `*flag` is 2,
/// else counts itself in `*ran`. A lone one submitted inline runs on the ingest warp, so while it
/// holds, no descriptor after it is taken from its ring, and with one submission ring
/// (`submit_rings(1)`) the ring fills (tests/common/stall.rs).
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    const unsigned long long start = grosr::globaltimer();
    uint32_t f;
    while ((f = *(volatile uint32_t*)task.flag) == 0u && grosr::globaltimer() - start < task.max_ns)
        __nanosleep(1000);
    if (f == 2u) __trap();
    atomicAdd(task.ran, 1u);
"#
)]
pub struct Hold {
    pub flag: DevicePtr<u32>,
    pub ran: DevicePtr<u32>,
    pub max_ns: u64,
}

/// A spawn tree of `fanout` children a level, `depth` levels below this task: each task counts
/// itself in `counts[0]` (fanout 10, depth 7: 11 111 111 tasks).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.atomic_add(task.counts, 0u32, 1u32);
    if task.depth > 0 {
        for _child in 0..task.fanout {
            ctx.spawn(Tree { counts: task.counts, depth: task.depth - 1, fanout: task.fanout });
        }
    }
})]
pub struct Tree {
    pub counts: DevicePtr<u32>,
    pub depth: u32,
    pub fanout: u32,
}

/// Runs until its job is cancelled or `max_ns` have passed, then writes 1 to `seen[0]` if it saw
/// the cancellation (2 if its time ran out).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let start = ctx.globaltimer();
    while !ctx.cancelled() && ctx.globaltimer() - start < task.max_ns {}
    let how = if ctx.cancelled() { 1u32 } else { 2u32 };
    ctx.write(task.seen, 0u32, how);
})]
pub struct Spin {
    pub seen: DevicePtr<u32>,
    pub max_ns: u64,
}

/// [`Spin`] as a warp task: every lane polls, lane 0 writes `seen[0]`.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let start = ctx.globaltimer();
    while !ctx.cancelled() && ctx.globaltimer() - start < task.max_ns {}
    let how = if ctx.cancelled() { 1u32 } else { 2u32 };
    if ctx.lane() == 0u32 {
        ctx.write(task.seen, 0u32, how);
    }
})]
pub struct WarpSpin {
    pub seen: DevicePtr<u32>,
    pub max_ns: u64,
}

/// [`Spin`] as a block task: every thread polls, meets the others, thread 0 writes `seen[0]`.
#[grosr::task(granularity = "block", rust = |task, ctx| {
    let start = ctx.globaltimer();
    while !ctx.cancelled() && ctx.globaltimer() - start < task.max_ns {}
    ctx.sync_threads();
    let how = if ctx.cancelled() { 1u32 } else { 2u32 };
    if ctx.lane() == 0u32 {
        ctx.write(task.seen, 0u32, how);
    }
})]
pub struct BlockSpin {
    pub seen: DevicePtr<u32>,
    pub max_ns: u64,
}

/// The test task types with Rust bodies, registered: a builder for either backend.
pub fn portable_builder() -> RuntimeBuilder {
    grosr::Runtime::builder()
        .task::<Mark>()
        .task::<Fib>()
        .task::<Chain>()
        .task::<Failer>()
        .task::<Poke>()
        .task::<Flood>()
        .task::<WarpFlood>()
        .task::<Bomb>()
        .task::<Tick>()
        .task::<Tock>()
        .task::<Tree>()
        .task::<Spin>()
        .task::<WarpSpin>()
        .task::<BlockSpin>()
}

/// Every test task type, registered (a GPU builder: some bodies are CUDA C).
pub fn builder() -> RuntimeBuilder {
    portable_builder()
        .task::<Trap>()
        .task::<BlockSum>()
        .task::<SpawnBlock>()
        .task::<Hold>()
}
