//! The BFS tasks with Rust bodies (`grosr::body`): bfs.cu's algorithm statement for statement
//! (the module docs describe it), so the report can time the translation against the
//! hand-written CUDA in one runtime (issue 21: within 3%), and the same search runs on the CPU
//! backend ([`cpu_builder`]), validated in `cargo test`.
//!
//! Where the CUDA reaches past the subset, the Rust uses what the subset offers for it: the
//! warp's buffer of discovered vertices is `ctx.warp_shared`, `__shfl_up_sync` is
//! `ctx.shuffle_up`, `bfs_spawn_queued` is `ctx.spawn_queued`, `bfs_load` is
//! `ctx.read_volatile`, and the shared expansion is a warp helper
//! (`#[grosr::device(granularity = "warp")]`). The graph's state is read as a record
//! (`BfsGraphRs`, the same 40 bytes as bfs.cu's `BfsGraph`, so both read one upload).

use grosr::body::Ctx;
use grosr::{DevicePtr, RuntimeBuilder};

/// bfs.cu's `struct BfsGraph`, as the Rust bodies read it.
#[grosr::record]
pub struct BfsGraphRs {
    /// CSR offsets, `n + 1` entries.
    pub offsets: DevicePtr<u64>,
    /// CSR neighbour lists.
    pub targets: DevicePtr<u32>,
    /// Per vertex `(level << 32) | parent`; all ones: unreached.
    pub lp: DevicePtr<u64>,
    /// Vertices.
    pub n: u32,
    /// Degree above which a vertex's edges become [`BfsEdgesRs`] tasks.
    pub big: u32,
    /// Edges per [`BfsEdgesRs`] task.
    pub edge_chunk: u32,
    /// A task discovering at most this many vertices keeps them on its warp.
    pub local_limit: u32,
}

/// Spawns [`BfsVisitRs`] tasks (`tasks` of them, 9 vertices each but the last) for the first
/// vertices buffered in `buf` (`cnt` of them), then moves the rest to the front; the vertices
/// left (bfs.cu's `bfs_flush`). `local`: the lone small batch at a task's end stays on this
/// warp's stack; anything else goes to a queue, where every warp can take it.
#[grosr::device(granularity = "warp")]
fn bfs_flush_rs(
    ctx: &mut Ctx,
    graph: DevicePtr<BfsGraphRs>,
    buf: DevicePtr<u32>,
    cnt: u32,
    tasks: u32,
    local: bool,
) -> u32 {
    let lane = ctx.lane();
    let taken = cnt.min(tasks * 9u32);
    if lane < tasks {
        let count = 9u32.min(taken - lane * 9u32);
        let mut vertices = [0u32; 9];
        for k in 0..9u32 {
            if k < count {
                vertices[k as usize] = ctx.read(buf, lane * 9u32 + k);
            }
        }
        if local {
            ctx.spawn(BfsVisitRs {
                graph,
                count,
                vertices,
            });
        } else {
            ctx.spawn_queued(BfsVisitRs {
                graph,
                count,
                vertices,
            });
        }
    }
    // Every lane has read its slice of the buffer before the rest moves to the front.
    ctx.sync_warp();
    let rest = cnt - taken;
    let keep = if lane < rest {
        ctx.read(buf, taken + lane)
    } else {
        0u32
    };
    ctx.sync_warp();
    if lane < rest {
        ctx.write(buf, lane, keep);
    }
    // The moved entries are visible to every lane.
    ctx.sync_warp();
    rest
}

/// Expands, with the whole warp, the edges `[start, start + deg)` of up to 32 vertices, one per
/// lane (vertex `u` at level `level`), 32 edges a round over the concatenated ranges (a warp
/// prefix sum, a binary search per lane); vertices whose level drops are buffered and spawned as
/// [`BfsVisitRs`] tasks (bfs.cu's `bfs_expand`).
#[grosr::device(granularity = "warp")]
fn bfs_expand_rs(
    ctx: &mut Ctx,
    graph: DevicePtr<BfsGraphRs>,
    g: BfsGraphRs,
    u: u32,
    level: u32,
    start: u64,
    deg: u32,
) {
    let buf = ctx.warp_shared::<u32, 64>();
    let lane = ctx.lane();
    let mut incl = deg;
    let mut o = 1u32;
    while o < 32u32 {
        let x = ctx.shuffle_up(incl, o);
        if lane >= o {
            incl += x;
        }
        o <<= 1u32;
    }
    let total = ctx.shuffle(incl, 31u32);
    let excl = incl - deg;
    let mut cnt = 0u32;
    let mut spawned = false;
    let mut e = 0u32;
    while e < total {
        let j = e + lane;
        // The last lane whose range starts at or before edge j.
        let mut s = 0u32;
        let mut step = 16u32;
        while step > 0u32 {
            let x = ctx.shuffle(excl, s + step);
            if x <= j {
                s += step;
            }
            step >>= 1u32;
        }
        let su = ctx.shuffle(u, s);
        let sl = ctx.shuffle(level, s);
        let sstart = ctx.shuffle(start, s);
        let sex = ctx.shuffle(excl, s);
        let mut found = false;
        let mut v = 0u32;
        if j < total {
            v = ctx.read(g.targets, sstart + (j - sex) as u64);
            if ((ctx.read_volatile(g.lp, v) >> 32u32) as u32) > sl + 1u32 {
                let cand = (((sl + 1u32) as u64) << 32u32) | su as u64;
                found = ((ctx.atomic_min(g.lp, v, cand) >> 32u32) as u32) > sl + 1u32;
            }
        }
        let m = ctx.ballot(found);
        if found {
            ctx.write(buf, cnt + (m & ((1u32 << lane) - 1u32)).count_ones(), v);
        }
        cnt += m.count_ones();
        // The buffer's new entries are visible to the lanes that flush them.
        ctx.sync_warp();
        if cnt >= 32u32 {
            cnt = bfs_flush_rs(ctx, graph, buf, cnt, cnt / 9u32, false);
            spawned = true;
        }
        e += 32u32;
    }
    let tasks = cnt.div_ceil(9u32);
    if tasks > 0u32 {
        let local = !spawned && cnt <= g.local_limit;
        bfs_flush_rs(ctx, graph, buf, cnt, tasks, local);
    }
}

/// [`BfsVisit`](super::gpu::BfsVisit) with a Rust body: up to 9 vertices to expand.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let g = ctx.read(task.graph, 0u32);
    let lane = ctx.lane();
    let root = (task.count & 0x8000_0000u32) != 0u32;
    let n = (task.count & 0x7FFF_FFFFu32).min(9u32);
    let mut u = 0u32;
    let mut level = 0u32;
    let mut deg = 0u32;
    let mut start = 0u64;
    if lane < n {
        u = task.vertices[lane as usize];
        if root {
            // Level 0, its own parent.
            ctx.write(g.lp, u, u as u64);
        } else {
            // The current (possibly since lowered) level.
            level = (ctx.read_volatile(g.lp, u) >> 32u32) as u32;
        }
        start = ctx.read(g.offsets, u);
        let d = ctx.read(g.offsets, u + 1u32) - start;
        if d > g.big as u64 {
            // A high-degree vertex: its list in slices other warps can take.
            let mut b = start;
            while b < start + d {
                let end = (b + g.edge_chunk as u64).min(start + d);
                ctx.spawn_queued(BfsEdgesRs { graph: task.graph, begin: b, end, vertex: u, level });
                b += g.edge_chunk as u64;
            }
        } else {
            deg = d as u32;
        }
    }
    // The root's word is written before any lane reads it.
    ctx.sync_warp();
    bfs_expand_rs(ctx, task.graph, g, u, level, start, deg);
})]
pub struct BfsVisitRs {
    /// The search's state in device memory.
    pub graph: DevicePtr<BfsGraphRs>,
    /// Vertices in `vertices` (bit 31: this is the root task).
    pub count: u32,
    /// The vertices to expand.
    pub vertices: [u32; 9],
}

/// [`BfsEdges`](super::gpu::BfsEdges) with a Rust body: edges `[begin, end)` of one
/// high-degree vertex, by one warp.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let g = ctx.read(task.graph, 0u32);
    let lane = ctx.lane();
    let mut level = 0u32;
    if lane == 0u32 {
        level = (ctx.read_volatile(g.lp, task.vertex) >> 32u32) as u32;
    }
    level = ctx.shuffle(level, 0u32);
    // The vertex's level dropped since: a newer expansion covers these edges.
    if level < task.level {
        return;
    }
    let per = (task.end - task.begin + 31u64) / 32u64;
    let start = (task.begin + lane as u64 * per).min(task.end);
    let stop = (start + per).min(task.end);
    bfs_expand_rs(ctx, task.graph, g, task.vertex, level, start, (stop - start) as u32);
})]
pub struct BfsEdgesRs {
    /// The search's state in device memory.
    pub graph: DevicePtr<BfsGraphRs>,
    /// First edge (index into the CSR targets).
    pub begin: u64,
    /// One past the last edge.
    pub end: u64,
    /// The vertex whose edges these are.
    pub vertex: u32,
    /// Its level when the task was made (stale tasks are skipped).
    pub level: u32,
}

/// `builder` with the Rust-body BFS tasks and their helpers registered.
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .helper::<bfs_flush_rs>()
        .helper::<bfs_expand_rs>()
        .task::<BfsVisitRs>()
        .task::<BfsEdgesRs>()
}

/// A builder with only the Rust-body BFS tasks: runs on either backend (`Backend::Cpu` too).
pub fn cpu_builder() -> RuntimeBuilder {
    register(grosr::Runtime::builder())
}
