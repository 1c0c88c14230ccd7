// Graph launches: a launch's roots, run as ranges or claimed unit by unit from the graph board.

namespace grosr {

// ---- Graph ranges: the roots of a graph launch ----------------------------------------------------
// A graph range [begin, end) of the roots is one counted task of the job. The warp that takes
// one pushes halves (counted first) for other warps to steal until little is left, then runs the
// roots right there: 32 lane roots per round, warp roots one by one (each counted through the
// round's deferred count just before it runs, so a root costs no queue push and no atomic);
// block roots are spawned, since they need the block's mailbox. The range settles its own count.
struct GraphRange { uint64_t graph; uint32_t begin, end; };

// Scheduling weight of roots [b, e): lane roots count 1 per 32, warp and block roots 1 each.
__device__ __forceinline__ uint32_t graph_weight(const GraphDev* g, uint32_t b, uint32_t e) {
    const uint32_t lane_e = umin(e, g->lane_roots), lanes = lane_e > b ? lane_e - b : 0u;
    return (lanes + WARP - 1) / WARP + (e - b - lanes);
}

constexpr uint32_t GRAPH_LEAF_WEIGHT = 2;   // a warp runs at most this much of a range itself

// Runs roots [begin, end) of g right here. `counted`: the launch counted every root already (the
// board), so a root's run only takes its count away; otherwise (a range, counted once as a whole)
// each root is counted through the round's deferred count just before it runs. Block roots are
// spawned (they need a block's mailbox); the caller's account() settles the range or unit.
__device__ void run_graph_roots(const Params& p, WarpState* ws, const GraphDev* g, uint32_t begin,
                                uint32_t end, uint32_t job, bool counted) {
    const uint32_t lane = lane_id();
    // The part of each class: [begin, lane_end) lane roots, [lane_end, warp_end) warp
    // roots, [warp_end, end) block roots (any part may be empty).
    const uint32_t lane_end = umax(begin, umin(end, g->lane_roots));
    const uint32_t warp_end = umax(lane_end, umin(end, g->warp_roots_end));
    GROSR_STAMP_MIN(14);
    // Lane roots: 32 per round, each lane its own node (kinds may differ).
    for (uint32_t b = begin; b < lane_end; b += WARP) {
        const uint32_t n = umin(WARP, lane_end - b);
        const bool has = lane < n;
        uint32_t tag = 0, kind = NO_KIND;
        alignas(16) uint32_t words[RECORD_WORDS];
        if (has) {
            const uint32_t node = g->roots[b + lane];
            const uint32_t k = g->kinds[node];
            kind = node_kind(k);
            tag = node_tag(node, k);
            node_words(g, node, words);
        }
        // The round's account() subtracts the n roots it ran: count them there, not here.
        if (lane == 0 && !counted) ws->deferred += (int32_t)n;
        __syncwarp();
        run_lane_round_outlined(p, ws, has, kind, job, tag, words);
    }
    // Warp roots one by one, the record loaded by all lanes (a broadcast read).
    for (uint32_t b = lane_end; b < warp_end; ++b) {
        const uint32_t node = g->roots[b];
        alignas(16) uint32_t words[RECORD_WORDS];
        node_words(g, node, words);
        const uint32_t k = g->kinds[node];
        if (lane == 0 && !counted) ws->deferred += 1;
        __syncwarp();
        run_warp_task(p, ws, node_kind(k), job, node_tag(node, k), words);
    }
    // Block roots: spawned (counted by the range's own account()).
    Ctx c{&p, ws, job, KIND_GRAPH_RANGE, GROSR_WARP, true, nullptr};
    for (uint32_t b = warp_end; b < end; b += WARP) {
        if (b + lane < end) {
            const uint32_t node = g->roots[b + lane];
            spawn_node(c, g, node, g->kinds[node]);
        }
        __syncwarp();
    }
    GROSR_STAMP_MAX(15);
}

__device__ __noinline__ void run_graph_range(const Params& p, WarpState* ws, GraphRange r, uint32_t job) {
    const uint32_t lane = lane_id();
    const GraphDev* g = reinterpret_cast<const GraphDev*>(r.graph);
    while (graph_weight(g, r.begin, r.end) > GRAPH_LEAF_WEIGHT) {
        uint32_t mid = r.begin + (r.end - r.begin) / 2;
        if (mid < g->lane_roots) mid = r.begin + (mid - r.begin + WARP - 1) / WARP * WARP;  // whole rounds
        if (mid <= r.begin || mid >= r.end) break;
        GraphRange right{r.graph, mid, r.end};
        alignas(16) uint32_t words[RECORD_WORDS] = {0};
        memcpy(words, &right, sizeof(GraphRange));
        if (lane == 0) {
            // Counted before it is published: the right half is a task of the job until it runs.
            atomicAdd(&p.jobs[job].pending, 1);
            push_counted(p, home_queue(p), 1u, KIND_GRAPH_RANGE, job, 0u, words);
        }
        __syncwarp();
        r.end = mid;
    }
    run_graph_roots(p, ws, g, r.begin, r.end, job, false);
    // The range's own count goes last, with what no round took (block roots' spawns), never
    // with an earlier round's: the ingest warp settles every round at once, so the job would
    // complete while later rounds still ran. On other warps this owes the decrement (no atomic).
    account(p, ws, lane == 0, KIND_GRAPH_RANGE, job, true);
}

// ---- The graph board: a large launch's roots, claimed by every idle warp -----------------------
// A launch with more roots than a warp runs alone takes one board entry instead of being cut into
// ranges: its roots are counted at ingest, and any warp whose own queue is empty claims the next
// *unit* (32 lane roots, or one warp or block root; more on a large launch: graph_units) with one
// atomic add on the entry's state.
// state = job << 44 | units << 22 | next claimed unit. A claim returns the job and the total with
// the unit, so a claim never reads a field a newer launch may have rewritten; a late claim that
// lands on a reused entry claims a unit of that newer launch (its roots are counted too) or none.
// `live` has a bit per entry with units left: set by the ingest warp that fills the entry (there
// is one per submission ring; each takes a clear bit with an atomic OR, so no two fill one entry),
// cleared by whoever claims an entry's last unit.
// A warp claims once per look at `live`, so claims past the last unit stay below one per warp.
constexpr uint32_t BOARD_ENTRIES = 32;
constexpr uint32_t BOARD_UNIT_BITS = 22, BOARD_JOB_SHIFT = 44;
constexpr uint64_t BOARD_UNIT_MASK = (1ull << BOARD_UNIT_BITS) - 1;
// Claims past the last unit (at most one per warp) must not carry into the units field.
constexpr uint32_t BOARD_MAX_UNITS = (1u << BOARD_UNIT_BITS) - (1u << 17);
struct GraphBoard {
    uint32_t live; uint32_t pad[31];             // its own line: read by every idle warp
    unsigned long long state[BOARD_ENTRIES];
};
__device__ GraphBoard grosr_board;               // zeroed by grosr_init before every start

// Units of a launch: lane roots 32 (a round) to a unit, warp roots one to a unit, block roots
// one each, except that a launch with at least 8 lane rounds (or warp roots) per scheduler warp
// takes several a unit, leaving 4 to 8 units of the class per warp: every claim is an atomic
// on the entry's one state word, and 100 000 one-per-row softmax roots claimed one by one took
// 370 µs on an H200, 3.7 ns per claim, against 60 µs for the fused kernel.
// Both the offer and the claimers compute this from the graph and the grid: no field to agree on.
struct GraphUnits { uint32_t lane_per, lane_units, warp_per, warp_units, units; };
__device__ __forceinline__ GraphUnits graph_units(const GraphDev* g) {
    const uint32_t target = gridDim.x * WARPS_PER_BLOCK * 4;   // 4 per warp, at least
    GraphUnits u;
    const uint32_t rounds = (g->lane_roots + WARP - 1) / WARP;
    u.lane_per = WARP * umax(1u, rounds / target);
    u.lane_units = (g->lane_roots + u.lane_per - 1) / u.lane_per;
    const uint32_t warp_roots = g->warp_roots_end - g->lane_roots;
    u.warp_per = umax(1u, warp_roots / target);
    u.warp_units = (warp_roots + u.warp_per - 1) / u.warp_per;
    u.units = u.lane_units + u.warp_units + (g->num_roots - g->warp_roots_end);
    return u;
}

// Offers a launch's roots on the board (lane 0). False if no entry is free or it is too large:
// the caller cuts it into ranges as before.
__device__ bool board_offer(const Params& p, const GraphDev* g, uint32_t job, uint32_t roots) {
    const uint32_t units = graph_units(g).units;
    if (units >= BOARD_MAX_UNITS || job >= (1u << (64 - BOARD_JOB_SHIFT))) return false;
    uint32_t live = *(volatile uint32_t*)&grosr_board.live, e;
    // The bit goes up before the state: a warp that sees it early claims from the old,
    // exhausted state (nothing). The other order could lose the bit's clearing: late claims
    // from the entry's previous launch may take every unit, the last one included, before the
    // bit is set, and a bit that stays up sends every idle warp's add to an exhausted entry.
    // The OR's old value says whether another ring's ingest warp took the entry first.
    do {
        if (live == 0xffffffffu) return false;
        e = __ffs(~live) - 1;
        live = atomicOr(&grosr_board.live, 1u << e);
    } while (live & (1u << e));
    // Every root counted now, replacing the launch record's count: a claimed unit's run takes
    // its roots' counts away, so the job cannot complete while a unit is unclaimed.
    atomicAdd(&p.jobs[job].pending, (int32_t)roots - 1);
    // Release: the job's graph pointer, the count and the bit above come before any claim of
    // this state, so the claim of the last unit clears the bit after it was set.
    st_release_gpu_u64(&grosr_board.state[e], (uint64_t)job << BOARD_JOB_SHIFT | (uint64_t)units << BOARD_UNIT_BITS);
    return true;
}

// Claims a unit from the board entries in `live` (lane 0's value). Returns 1 with lane 0 holding
// a KIND_GRAPH_UNIT task (words[0] = the unit), else 0.
__device__ uint32_t board_claim(const Params& p, uint32_t live, uint32_t& kind, uint32_t& job,
                                uint32_t* words) {
    live = __shfl_sync(0xffffffffu, live, 0);
    if (live == 0) return 0;
    uint32_t got = 0;
    if (lane_id() == 0) {
        // Start the search at a bit of its own, so that warps spread over concurrent launches.
        const uint32_t rot = (blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / WARP) & (BOARD_ENTRIES - 1);
        const uint32_t turned = rot ? (live >> rot) | (live << (32 - rot)) : live;
        const uint32_t e = (__ffs(turned) - 1 + rot) & (BOARD_ENTRIES - 1);
        // Acquire pairs with board_offer's release (the job's graph and counts). The release
        // half is not needed (atom.acquire would do); acq_rel is what was measured.
        const uint64_t old = atom_add_acq_rel_gpu_u64(&grosr_board.state[e], 1);
        const uint32_t unit = (uint32_t)(old & BOARD_UNIT_MASK);
        const uint32_t units = (uint32_t)((old >> BOARD_UNIT_BITS) & BOARD_UNIT_MASK);
        if (unit + 1 == units) atomicAnd(&grosr_board.live, ~(1u << e));   // the last unit: no more
        if (unit < units) {
            got = 1;
            kind = KIND_GRAPH_UNIT;
            job = (uint32_t)(old >> BOARD_JOB_SHIFT);
            words[0] = unit;
        }
    }
    return __shfl_sync(0xffffffffu, got, 0);
}

// Runs a claimed unit: its roots were counted at the launch.
__device__ __noinline__ void run_graph_unit(const Params& p, WarpState* ws, uint32_t job, uint32_t unit) {
    __syncwarp();   // lane 0's claim acquired the launch; the barrier passes that on to the others
    const GraphDev* g = *(const GraphDev* volatile*)&p.jobs[job].graph;
    const GraphUnits u = graph_units(g);
    if (unit < u.lane_units) {
        const uint32_t b = unit * u.lane_per;
        run_graph_roots(p, ws, g, b, umin(b + u.lane_per, g->lane_roots), job, true);
        return;
    }
    if (unit < u.lane_units + u.warp_units) {
        const uint32_t b = g->lane_roots + (unit - u.lane_units) * u.warp_per;
        run_graph_roots(p, ws, g, b, umin(b + u.warp_per, g->warp_roots_end), job, true);
        return;
    }
    const uint32_t root = g->warp_roots_end + (unit - u.lane_units - u.warp_units);
    run_graph_roots(p, ws, g, root, root + 1, job, true);
    // A block root was spawned (and counted): its count from the launch goes now.
    account(p, ws, lane_id() == 0, KIND_GRAPH_UNIT, job, true);
}

}  // namespace grosr
