// Resident task graphs: a finished node releases its successors.

namespace grosr {

// ---- Resident task graphs ------------------------------------------------------------------------------
// A graph launch is one host-submitted record naming a GraphDev. Its roots are spawned as tasks
// tagged with their node; when a node's task has run, each successor's `remaining` counter drops,
// and the update that reaches zero spawns the successor (in the same job). Counters reset to
// `indeg` as they reach zero, so the next launch finds them ready with no host work.

// Node `node`'s kind and record, for a spawn.
__device__ __forceinline__ uint32_t node_record(const GraphDev* g, uint32_t node, uint32_t* words) {
    const uint4* src = reinterpret_cast<const uint4*>(g->words + (uint64_t)node * RECORD_WORDS);
    uint4* dst = reinterpret_cast<uint4*>(words);
    dst[0] = src[0]; dst[1] = src[1]; dst[2] = src[2];
    return g->kinds[node];
}

// Spawns node `node` of graph g (counted like any spawn: onto this warp's stack, else a queue).
__device__ void spawn_node(Ctx& c, const GraphDev* g, uint32_t node) {
    alignas(16) uint32_t words[RECORD_WORDS];
    const uint32_t k = node_record(g, node, words);
    spawn_words(c, node_kind(k), words, node_tag(node, k));
}

// Spawns node `node` of graph g to a queue, where any idle warp can take it (counted first, as a
// spawn that finds the stack full). Out of line: one copy serves every release path; it takes
// the context's fields, not the context, whose address would put it in local memory.
__device__ __noinline__ void spawn_node_queued(const Params* p, WarpState* ws, uint32_t job,
                                               bool uniform, const GraphDev* g, uint32_t node) {
    const uint32_t mask = __activemask();
    alignas(16) uint32_t words[RECORD_WORDS];
    const uint32_t k = node_record(g, node, words);
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

// Called by every thread of a task (ctx.lane() / ctx.width() split the work) after the body ran
// and its writes were ordered before this call (the callers' barriers): releases the successors
// of node c.node - 1 whose last predecessor this was. Some go onto the warp's stack, so a chain
// stays on its warp with no queue hop: a lane task's first lane-task successor and, per group of
// lanes released together (normally the whole round), one warp or block successor; a warp or
// block task's first successor of any kind, per warp. The others go to a queue, where idle
// warps take them: no other warp can take from a stack, and all on the stack, a DAG's 50-node
// levels ran one after another on its warps (58 µs a level, H200, issue 20's mixed DAG).
__device__ void release_successors(Ctx& c) {
    const GraphDev* g = c.ws && c.ws->graph_job == c.job ? c.ws->graph : c.p->jobs[c.job].graph;
    const uint32_t node = c.node - 1;
    const uint32_t first = g->succ_off[node], end = g->succ_off[node + 1];
    if (c.gran == GROSR_LANE) {
        // One task per lane, each with its own successors. The calling lanes go through their
        // edges together, one edge each per trip, so that what goes to a queue goes in one push
        // per trip, not one per lane and edge (each push a chain of L2 atomics, about 2.5 µs).
        // A lane keeps its first lane-task successor (they run side by side in the warp's next
        // round), and the lanes keep one warp or block successor between them (those would run
        // one after another on the warp while other warps idle). Lanes that arrive diverged
        // release as separate groups, each keeping one and pushing its own. Issue 20's wide
        // DAG: 260-268 → 173-183 µs (H100, benches/NOTES.md, "Mixed DAGs: where a level's time
        // goes").
        const uint32_t mask = __activemask();
        const uint32_t n = end - first;
        bool kept_lane = false, kept_other = false;
        for (uint32_t i = 0; __any_sync(mask, i < n); ++i) {
            uint32_t s = 0;
            bool released = false, lane_kind = false;
            if (i < n) {
                s = g->succ[first + i];
                released = last_predecessor(g, s);
                if (released) lane_kind = kind_gran(node_kind(g->kinds[s])) == GROSR_LANE;
            }
            const uint32_t others = __ballot_sync(mask, released && !lane_kind);
            const bool keep = released && (lane_kind ? !kept_lane
                                                     : !kept_other && lane_id() == (uint32_t)(__ffs(others) - 1));
            kept_lane = kept_lane || (keep && lane_kind);
            kept_other = kept_other || others != 0;
            if (keep) spawn_node(c, g, s);
            __syncwarp(mask);                    // the queued ones push together
            if (released && !keep) spawn_node_queued(c.p, c.ws, c.job, c.uniform, g, s);
            __syncwarp(mask);
        }
        return;
    }
    // The task's threads split the edges; every lane of a warp makes the same trips (a vote per
    // trip), and the warp's lowest releasing lane keeps the warp's first.
    bool stacked_one = false;
    for (uint32_t base = first; base < end; base += c.width()) {
        const uint32_t e = base + c.lane();
        const uint32_t s = e < end ? g->succ[e] : 0u;
        const bool released = e < end && last_predecessor(g, s);
        const uint32_t who = __ballot_sync(0xffffffffu, released);
        const bool keep = !stacked_one && who != 0 && lane_id() == (uint32_t)(__ffs(who) - 1);
        stacked_one = stacked_one || who != 0;
        if (released) {
            if (keep) spawn_node(c, g, s);
            else spawn_node_queued(c.p, c.ws, c.job, c.uniform, g, s);
        }
    }
}

}  // namespace grosr
