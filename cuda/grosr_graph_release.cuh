// Resident task graphs: a finished node releases its successors.

namespace grosr {

// ---- Resident task graphs ------------------------------------------------------------------------------
// A graph launch is one host-submitted record naming a GraphDev. Its roots are spawned as tasks
// tagged with their node; when a node's task has run, each successor's `remaining` counter drops,
// and the update that reaches zero spawns the successor (in the same job). Counters reset to
// `indeg` as they reach zero, so the next launch finds them ready with no host work.

// Node `node`'s record, for a spawn (the caller loads its kind word, g->kinds[node], itself).
__device__ __forceinline__ void node_words(const GraphDev* g, uint32_t node, uint32_t* words) {
    const uint4* src = reinterpret_cast<const uint4*>(g->words + (uint64_t)node * RECORD_WORDS);
    uint4* dst = reinterpret_cast<uint4*>(words);
    dst[0] = src[0]; dst[1] = src[1]; dst[2] = src[2];
}

// Spawns node `node` of graph g, whose kind word is k (counted like any spawn: onto this warp's
// stack, else a queue).
__device__ void spawn_node(Ctx& c, const GraphDev* g, uint32_t node, uint32_t k) {
    alignas(16) uint32_t words[RECORD_WORDS];
    node_words(g, node, words);
    spawn_words(c, node_kind(k), words, node_tag(node, k));
}

// Spawns node `node` of graph g (kind word k) to a queue, where any idle warp can take it (counted
// first, as a spawn that finds the stack full). Out of line: one copy serves every release path;
// it takes the context's fields, not the context, whose address would put it in local memory.
__device__ __noinline__ void spawn_node_queued(const Params* p, WarpState* ws, uint32_t job,
                                               bool uniform, const GraphDev* g, uint32_t node,
                                               uint32_t k) {
    const uint32_t mask = __activemask();
    alignas(16) uint32_t words[RECORD_WORDS];
    node_words(g, node, words);
    // Only the fields spawn_to_queue reads; graph nodes never run in a baseline kernel (p null).
    Ctx c{p, ws, job, 0u, GROSR_WARP, uniform, nullptr};
    const uint32_t same_job = uniform ? mask : __match_any_sync(mask, job);
    spawn_to_queue(c, mask, same_job, node_kind(k), words, node_tag(node, k));
}

// Takes successor s's last predecessor away; true if that was the last (s is released, and its
// counter reset for the next launch).
__device__ __forceinline__ bool last_predecessor(const GraphDev* g, uint32_t s) {
    // acq_rel: the release publishes this node's results (ordered before us by the caller's
    // barrier) to whoever runs s; the acquire of the last decrement sees every other
    // predecessor's results before s is spawned.
    if (atom_add_acq_rel_gpu_s32((int32_t*)&g->remaining[s], -1) != 1) return false;
    // Plain store: the next launch's decrements come after this job has completed.
    g->remaining[s] = g->indeg[s];
    return true;
}

// The graph a finished node of job c.job belongs to.
__device__ __forceinline__ const GraphDev* node_graph(const Ctx& c) {
    return c.ws && c.ws->graph_job == c.job ? c.ws->graph : c.p->jobs[c.job].graph;
}

// Called by the lanes `group` of a lane round whose tasks were graph nodes (each lane's own
// node c.node - 1), after their bodies ran: releases each node's successors whose last
// predecessor it was. `group` is the round's ballot, taken while the warp was converged, so
// lanes that come back from their bodies diverged still release as one group. The lanes go
// through their edges together, RELEASE_BATCH each per trip and then one spawn step per edge,
// so that what goes to a queue goes in one push per step, not one per lane and edge (each push
// a chain of L2 atomics, about 2.5 µs).
// A lane keeps its first lane-task successor (they run side by side in the warp's next round),
// and the group keeps one warp or block successor (those would run one after another on the
// warp while other warps idle); the others go to a queue, where idle warps take them (no other
// warp can take from a stack). Issue 20's wide DAG: 260-268 → 173-183 µs (H100,
// benches/NOTES.md, "Mixed DAGs: where a level's time goes").
__device__ void release_lane_successors(Ctx& c, uint32_t group) {
    __syncwarp(group);                           // the group's lanes come back from their bodies
    const GraphDev* g = node_graph(c);
    const uint32_t node = c.node - 1;
    const uint32_t first = g->succ_off[node];
    const uint32_t n = g->succ_off[node + 1] - first;
    bool kept_lane = false, kept_other = false;
    // One release fence for all of this lane's edges, then relaxed decrements, RELEASE_BATCH at
    // once (each waits on nothing but the fence), then one acquire fence if any reached zero:
    // the PTX model's release and acquire patterns. An acq_rel decrement a trip (last_predecessor)
    // waited out a fence and a round trip per edge: deep DAG 593 → 551 µs, wide 164 → 152 (H100,
    // benches/NOTES.md, "Mixed DAGs: where a level's time goes").
    fence_acq_rel_gpu();
    for (uint32_t base = 0; __any_sync(group, base < n); base += RELEASE_BATCH) {
        uint32_t s[RELEASE_BATCH];
        bool released[RELEASE_BATCH];
#pragma unroll
        for (uint32_t t = 0; t < RELEASE_BATCH; ++t) s[t] = base + t < n ? g->succ[first + base + t] : 0u;
        bool any = false;
#pragma unroll
        for (uint32_t t = 0; t < RELEASE_BATCH; ++t) {
            released[t] = base + t < n && atom_add_relaxed_gpu_s32((int32_t*)&g->remaining[s[t]], -1) == 1;
            any = any || released[t];
        }
        // Acquire: every other predecessor's results before any released successor spawns.
        if (any) fence_acq_rel_gpu();
#pragma unroll
        for (uint32_t t = 0; t < RELEASE_BATCH; ++t) {
            uint32_t k = 0;
            bool lane_kind = false;
            if (released[t]) {
                // Plain store: the next launch's decrements come after this job has completed.
                g->remaining[s[t]] = g->indeg[s[t]];
                k = g->kinds[s[t]];
                lane_kind = kind_gran(node_kind(k)) == GROSR_LANE;
            }
            const uint32_t others = __ballot_sync(group, released[t] && !lane_kind);
            const bool keep = released[t] && (lane_kind ? !kept_lane
                                                        : !kept_other && lane_id() == (uint32_t)(__ffs(others) - 1));
            kept_lane = kept_lane || (keep && lane_kind);
            kept_other = kept_other || others != 0;
            if (keep) spawn_node(c, g, s[t], k);
            // Converged before each spawn step: the spawn paths group lanes by __activemask(),
            // so the queued ones push together and the next step's kept ones stack together.
            __syncwarp(group);
            if (released[t] && !keep) spawn_node_queued(c.p, c.ws, c.job, c.uniform, g, s[t], k);
            __syncwarp(group);
        }
    }
}

// Called by every thread of a warp or block task after the body ran and its writes were ordered
// before this call (the callers' barriers): releases the successors of node c.node - 1 whose
// last predecessor this was. The task's threads split the edges; every lane of a warp makes the
// same trips (a vote per trip), and the warp's lowest releasing lane keeps the warp's first on
// its stack, so a chain stays on its warp with no queue hop; the others go to a queue. All on
// the stack, a DAG's 50-node levels ran one after another on its warps (58 µs a level, H200,
// issue 20's mixed DAG).
__device__ void release_successors(Ctx& c) {
    const GraphDev* g = node_graph(c);
    const uint32_t node = c.node - 1;
    const uint32_t first = g->succ_off[node], end = g->succ_off[node + 1];
    bool stacked_one = false;
    for (uint32_t base = first; base < end; base += c.width()) {
        const uint32_t e = base + c.lane();
        const uint32_t s = e < end ? g->succ[e] : 0u;
        const bool released = e < end && last_predecessor(g, s);
        const uint32_t who = __ballot_sync(0xffffffffu, released);
        const bool keep = !stacked_one && who != 0 && lane_id() == (uint32_t)(__ffs(who) - 1);
        stacked_one = stacked_one || who != 0;
        if (released) {
            const uint32_t k = g->kinds[s];
            if (keep) spawn_node(c, g, s, k);
            else spawn_node_queued(c.p, c.ws, c.job, c.uniform, g, s, k);
        }
    }
}

}  // namespace grosr
