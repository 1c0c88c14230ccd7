// grosr BFS: device code (benches/lab/src/bfs/gpu.rs adds it with RuntimeBuilder::cuda).
// Protocol (see benches/lab/src/bfs/mod.rs): one 64-bit word per vertex, (level << 32) | parent,
// lowered with atomicMin. BfsVisit tasks expand up to 9 vertices; BfsEdges tasks expand a slice
// of one high-degree vertex's list. Every vertex whose level a task lowers goes into a new
// BfsVisit task; the job ends (Job::wait) when no task is left: the levels are then a fixpoint,
// i.e. exact BFS levels, and each parent sits one level up.

struct BfsGraph {
    const uint64_t* offsets;      // CSR offsets, n + 1 entries
    const uint32_t* targets;      // CSR neighbour lists
    unsigned long long* lp;       // per vertex: (level << 32) | parent; ~0 = unreached
    uint32_t n;                   // vertices
    uint32_t big;                 // degree above which a vertex's edges become BfsEdges tasks
    uint32_t edge_chunk;          // edges per BfsEdges task
    uint32_t local_limit;         // a task discovering <= this many keeps them on its warp
};
static_assert(sizeof(BfsGraph) == 40, "grosr: BfsGraph differs from benches/lab/src/bfs/gpu.rs");

constexpr unsigned long long BFS_INF = 0xFFFFFFFFFFFFFFFFull;
constexpr uint32_t BFS_VISIT_MAX = 9;            // vertices per BfsVisit record (48 bytes)
constexpr uint32_t BFS_ROOT = 0x80000000u;       // BfsVisit::count flag: the search's root
constexpr uint32_t BFS_BUF = 64;                 // per-warp buffer of discovered vertices

__device__ __forceinline__ uint32_t bfs_level(unsigned long long lp) { return (uint32_t)(lp >> 32); }

// Relaxed load of a vertex's word. A stale value only costs an atomicMin that changes nothing
// (or is repeated): correctness rests on the atomicMin alone.
__device__ __forceinline__ unsigned long long bfs_load(const unsigned long long* p) {
    return *(const volatile unsigned long long*)p;
}

// Like ctx.spawn, but straight into a queue (grosr::spawn_queue: spread over the SMs) instead
// of the warp's private stack, so idle warps anywhere can take the child. Counted before it is published, exactly
// as grosr::spawn_words does for queue pushes.
template <class T> __device__ void bfs_spawn_queued(grosr::Ctx& c, const T& t) {
    alignas(16) uint32_t words[grosr::RECORD_WORDS] = {0};
    memcpy(words, &t, sizeof(T));
    const uint32_t mask = __activemask();
    const uint32_t leader = __ffs(mask) - 1;
    // Relaxed add: the child cannot be seen before the release store that publishes its slot
    // (push_to), which follows this add in program order after the warp barrier.
    if (grosr::lane_id() == leader) atomicAdd(&c.p->jobs[c.job].pending, (int32_t)__popc(mask));
    __syncwarp(mask);
    grosr::push_counted(*c.p, grosr::spawn_queue(*c.p, c.ws, mask), mask, grosr::KindOf<T>::value,
                        c.job, 0u, words);
}

// Spawns BfsVisit tasks for the first `cnt` buffered vertices (all of them when `all`, else
// only full tasks), then moves the rest to the front. All 32 lanes call it.
__device__ void bfs_flush(grosr::Ctx& ctx, uint64_t* graph, uint32_t* buf, uint32_t& cnt,
                          bool all, bool& spawned) {
    const uint32_t lane = grosr::lane_id();
    const uint32_t tasks = all ? (cnt + BFS_VISIT_MAX - 1) / BFS_VISIT_MAX : cnt / BFS_VISIT_MAX;
    if (tasks == 0) return;
    const uint32_t taken = grosr::umin(cnt, tasks * BFS_VISIT_MAX);
    const BfsGraph& g = *reinterpret_cast<const BfsGraph*>(graph);
    // A lone small batch at the end of a task stays on this warp's stack (a chain's next hop
    // costs no queue traffic); anything else goes to the queue where every warp can take it.
    const bool local = all && !spawned && cnt <= g.local_limit;
    if (lane < tasks) {
        BfsVisit t;
        t.graph = graph;
        t.count = grosr::umin(BFS_VISIT_MAX, taken - lane * BFS_VISIT_MAX);
        for (uint32_t k = 0; k < BFS_VISIT_MAX; ++k)
            t.vertices[k] = k < t.count ? buf[lane * BFS_VISIT_MAX + k] : 0u;
        if (local) grosr_spawn_BfsVisit(ctx, t);
        else bfs_spawn_queued(ctx, t);
    }
    spawned = true;
    __syncwarp();                                // every lane has read its slice of buf
    const uint32_t rest = cnt - taken;           // < BFS_VISIT_MAX
    const uint32_t keep = lane < rest ? buf[taken + lane] : 0u;
    __syncwarp();
    if (lane < rest) buf[lane] = keep;
    __syncwarp();                                // the moved entries are visible to all lanes
    cnt = rest;
}

// Expands, with the whole warp, the edge ranges [start, start + deg) of up to 32 vertices, one
// per lane (u, its level L). Edges are dealt 32 per round over the concatenated ranges (a warp
// prefix sum and a binary search per lane), so one long list and many short ones both keep
// every lane busy. Vertices whose level drops are buffered and spawned as BfsVisit tasks.
__device__ void bfs_expand(grosr::Ctx& ctx, uint64_t* graph, uint32_t u, uint32_t L,
                           uint64_t start, uint32_t deg) {
    __shared__ uint32_t bfs_buf[grosr::WARPS_PER_BLOCK][BFS_BUF];
    const BfsGraph& g = *reinterpret_cast<const BfsGraph*>(graph);
    const uint32_t lane = grosr::lane_id();
    uint32_t* buf = bfs_buf[threadIdx.x / grosr::WARP];
    uint32_t incl = deg;
    for (uint32_t o = 1; o < grosr::WARP; o <<= 1) {
        const uint32_t x = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += x;
    }
    const uint32_t total = __shfl_sync(0xffffffffu, incl, 31);
    const uint32_t excl = incl - deg;
    uint32_t cnt = 0;
    bool spawned = false;
    for (uint32_t e = 0; e < total; e += grosr::WARP) {
        const uint32_t j = e + lane;
        uint32_t s = 0;                          // the last lane whose range starts at or before j
        for (uint32_t step = 16; step > 0; step >>= 1) {
            const uint32_t x = __shfl_sync(0xffffffffu, excl, s + step);
            if (x <= j) s += step;
        }
        const uint32_t su = __shfl_sync(0xffffffffu, u, s);
        const uint32_t sl = __shfl_sync(0xffffffffu, L, s);
        const unsigned long long sstart = __shfl_sync(0xffffffffu, (unsigned long long)start, s);
        const uint32_t sex = __shfl_sync(0xffffffffu, excl, s);
        bool found = false;
        uint32_t v = 0;
        if (j < total) {
            v = g.targets[sstart + (j - sex)];
            if (bfs_level(bfs_load(&g.lp[v])) > sl + 1) {
                const unsigned long long cand = ((unsigned long long)(sl + 1) << 32) | su;
                found = bfs_level(atomicMin(&g.lp[v], cand)) > sl + 1;
            }
        }
        const uint32_t m = __ballot_sync(0xffffffffu, found);
        if (found) buf[cnt + __popc(m & grosr::lanemask_lt())] = v;
        cnt += __popc(m);
        __syncwarp();                            // buffer writes visible to the flushing lanes
        if (cnt >= grosr::WARP) bfs_flush(ctx, graph, buf, cnt, false, spawned);
    }
    bfs_flush(ctx, graph, buf, cnt, true, spawned);
}

__device__ void grosr_bfs_visit(grosr::Ctx& ctx, const BfsVisit& task) {
    const BfsGraph& g = *reinterpret_cast<const BfsGraph*>(task.graph);
    const uint32_t lane = grosr::lane_id();
    const bool root = (task.count & BFS_ROOT) != 0;
    const uint32_t n = grosr::umin(task.count & ~BFS_ROOT, BFS_VISIT_MAX);
    uint32_t u = 0, L = 0, deg = 0;
    uint64_t start = 0;
    if (lane < n) {
        u = task.vertices[lane];
        if (root) {
            g.lp[u] = (unsigned long long)u;      // level 0, its own parent
        } else {
            L = bfs_level(bfs_load(&g.lp[u]));   // the current (possibly since lowered) level
        }
        start = g.offsets[u];
        const uint64_t d = g.offsets[u + 1] - start;
        if (d > g.big) {
            // A high-degree vertex: its list in slices other warps can take.
            for (uint64_t b = start; b < start + d; b += g.edge_chunk) {
                const uint64_t end = b + g.edge_chunk < start + d ? b + g.edge_chunk : start + d;
                bfs_spawn_queued(ctx, BfsEdges{task.graph, b, end, u, L});
            }
        } else {
            deg = (uint32_t)d;
        }
    }
    __syncwarp();                                // the root's word is written before any lane reads
    bfs_expand(ctx, task.graph, u, L, start, deg);
}

__device__ void grosr_bfs_edges(grosr::Ctx& ctx, const BfsEdges& task) {
    const BfsGraph& g = *reinterpret_cast<const BfsGraph*>(task.graph);
    const uint32_t lane = grosr::lane_id();
    uint32_t L = 0;
    if (lane == 0) L = bfs_level(bfs_load(&g.lp[task.vertex]));
    L = __shfl_sync(0xffffffffu, L, 0);
    // The vertex's level dropped since: a newer expansion covers these edges with a better level.
    if (L < task.level) return;
    const uint64_t len = task.end - task.begin;
    const uint64_t per = (len + grosr::WARP - 1) / grosr::WARP;
    const uint64_t b = task.begin + grosr::umin(lane, grosr::WARP) * per;
    const uint64_t start = b < task.end ? b : task.end;
    const uint64_t stop = start + per < task.end ? start + per : task.end;
    bfs_expand(ctx, task.graph, task.vertex, L, start, (uint32_t)(stop - start));
}
