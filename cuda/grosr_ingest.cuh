// Ingest: the host's descriptors and record ranges, taken in by the ingest warp and run.

namespace grosr {

// Loads one record of `size` bytes (any alignment) from mapped memory into words. Each load is
// a PCIe round trip, and the loads of one record are independent: wide ones, issued together.
__device__ void load_record(uint32_t* words, const uint8_t* src, uint32_t size) {
    for (uint32_t w = 0; w < RECORD_WORDS; ++w) words[w] = 0;
    if ((size & 15) == 0 && (((uint64_t)src) & 15) == 0) {
        // 16, 32 or 48-byte records (at multiples of their size in a 16-byte aligned arena).
        uint4 v[RECORD_WORDS / 4];
        for (uint32_t q = 0; q < RECORD_WORDS / 4; ++q)
            if (q * 16 < size) v[q] = ld_relaxed_sys_v4(src + q * 16);
        for (uint32_t q = 0; q < RECORD_WORDS / 4; ++q)
            if (q * 16 < size) {
                words[4 * q] = v[q].x; words[4 * q + 1] = v[q].y;
                words[4 * q + 2] = v[q].z; words[4 * q + 3] = v[q].w;
            }
    } else if ((size & 3) == 0 && (((uint64_t)src) & 3) == 0) {
        uint32_t v[RECORD_WORDS];
        for (uint32_t w = 0; w < RECORD_WORDS; ++w) if (w * 4 < size) v[w] = ld_relaxed_sys_u32(src + w * 4);
        for (uint32_t w = 0; w < RECORD_WORDS; ++w) if (w * 4 < size) words[w] = v[w];
    } else {
        uint8_t* d = reinterpret_cast<uint8_t*>(words);
        const volatile uint8_t* s = src;
        for (uint32_t b = 0; b < size; ++b) d[b] = s[b];
    }
}

// A range of records the host submitted: split it so other warps can steal halves, then run it.
// Ranges are accounting-neutral: the job's pending count already includes all their records.
// `desc` is the index of the descriptor that brought them, on submission ring `ring`.
struct Range { uint32_t kind, begin, end, desc, ring, pad; uint64_t base; };

// Descriptor `desc`'s cell of ring `ring` in the per-ring arrays (descs, desc_done, desc_reads).
__device__ __forceinline__ uint32_t desc_cell(const Params& p, uint32_t ring, uint64_t desc) {
    return ring * p.desc_cap + (uint32_t)(desc & (p.desc_cap - 1));
}

__device__ void range_records_read(const Params& p, uint32_t ring, uint32_t desc, uint32_t n) {
    if (lane_id() != 0) return;
    const uint32_t cell = desc_cell(p, ring, desc);
    // Relaxed atomic, then a system-scope release store: our loads of the mapped records have
    // completed (they were consumed into registers) before the host may reuse the arena space.
    if (atomicSub(&p.desc_reads[cell], (int32_t)n) == (int32_t)n)
        st_release_sys_u32(&p.desc_done[cell], desc + 1);
}

__device__ __noinline__ void run_range(const Params& p, WarpState* ws, Range r, uint32_t job) {
    const uint32_t lane = lane_id();
    const uint32_t gran = kind_gran(r.kind), size = kind_size(r.kind);
    if (gran == GROSR_NO_GRAN) {
        if (lane == 0) {
            fail_job(p, job, ERR_UNKNOWN_KIND, r.kind);
        }
        range_records_read(p, r.ring, r.desc, r.end - r.begin);
        if (lane == 0) job_add(p, job, -(int32_t)(r.end - r.begin));
        return;
    }
    const uint32_t per = gran == GROSR_LANE ? WARP : 1u;
    const uint32_t keep = gran == GROSR_LANE ? 8 * WARP : 4u;   // below this, run it here
    while (r.end - r.begin > keep) {
        uint32_t mid = r.begin + ((r.end - r.begin) / 2 + per - 1) / per * per;
        Range right{r.kind, mid, r.end, r.desc, r.ring, 0u, r.base};
        alignas(16) uint32_t words[RECORD_WORDS] = {0};
        memcpy(words, &right, sizeof(Range));
        // One slot for the warp: pushed by lane 0 alone (mask 1), not once per lane.
        uint32_t pushed = 0;
        if (lane == 0) pushed = push_to(p, home_queue(p), 1u, KIND_RANGE, job, 0u, words);
        if (!__shfl_sync(0xffffffffu, pushed, 0)) break;
        r.end = mid;
    }
    const uint8_t* base = reinterpret_cast<const uint8_t*>(r.base);
    for (uint32_t b = r.begin; b < r.end; b += per) {
        const uint32_t n = umin(per, r.end - b);
        alignas(16) uint32_t words[RECORD_WORDS];
        if (gran == GROSR_LANE) {
            const bool has = lane < n;
            if (has) load_record(words, base + (uint64_t)(b + lane) * size, size);
            GROSR_STAMP(4);
            __syncwarp();
            run_lane_round(p, ws, has, r.kind, job, 0u, words);
            // After the round, not before: a lone task's completion then reaches the host one
            // system-scope release earlier; the records were in registers all along.
            range_records_read(p, r.ring, r.desc, n);
            GROSR_STAMP(8);
        } else {
            load_record(words, base + (uint64_t)b * size, size);
            __syncwarp();
            if (gran == GROSR_WARP) {
                run_warp_task(p, ws, r.kind, job, 0u, words);
            } else if (lane == 0) {
                // Block tasks reach a block's mailbox through a queue; they are counted already.
                push_counted(p, home_queue(p), 1u, r.kind, job, 0u, words);
            }
            __syncwarp();
            range_records_read(p, r.ring, r.desc, 1);
        }
    }
}

// Moves every entry of the warp's stack to the queues (they are counted already).
__device__ __noinline__ void requeue_stack(const Params& p, WarpState* ws) {
    __syncwarp();
    const uint32_t top = ws->top;
    for (uint32_t base = 0; base < top; base += WARP) {
        const uint32_t n = umin(WARP, top - base);
        if (lane_id() < n) {
            const StackEntry& e = ws->stack[base + lane_id()];
            alignas(16) uint32_t words[RECORD_WORDS];
            for (uint32_t w = 0; w < RECORD_WORDS; ++w) words[w] = e.words[w];
            const uint32_t mask = __activemask();
            push_counted(p, spawn_queue(p, ws, mask), mask, e.kind, e.job, e.node, words);
        }
        __syncwarp();
    }
    __syncwarp();                                // every lane has read top
    if (lane_id() == 0) ws->top = 0;
    __syncwarp();
}

// ---- Ingest: host descriptors -> ranges in the SM queues ------------------------------------------
// The scheduler's steps (grosr_scheduler.cuh), which drain_stack runs on the ingest warp's stack.
__device__ uint32_t take_work(const Params& p, WarpState* ws, uint32_t& kind, uint32_t& job,
                              uint32_t& node, uint32_t* words, uint32_t& rng);
__device__ void process(const Params& p, WarpState* ws, Mailbox& mbox, uint32_t n, uint32_t kind,
                        uint32_t job, uint32_t node, const uint32_t* words);

// Rounds the ingest warp runs of its own spawns.
constexpr uint32_t INGEST_DRAIN_ROUNDS = 16;

// After running a small submission, the ingest warp runs what it spawned onto its own stack for
// a few rounds (a short chain or a small graph then completes with no queue hop at all), then
// moves the rest to the queues, since the ingest warp takes no work from them.
__device__ __noinline__ void drain_stack(const Params& p, WarpState* ws, Mailbox& mbox) {
    uint32_t rng = 1;
    for (uint32_t round = 0; round < INGEST_DRAIN_ROUNDS && ws->top > 0; ++round) {
        uint32_t kind = NO_KIND, job = 0, node = 0;
        alignas(16) uint32_t words[RECORD_WORDS];   // read_slot stores it as uint4s
        // The stack is non-empty, so take_work takes from it and never touches a queue.
        const uint32_t n = take_work(p, ws, kind, job, node, words, rng);
        process(p, ws, mbox, n, kind, job, node, words);
    }
    requeue_stack(p, ws);
}

// Runs a small launch right here on the ingest warp, with the graph cached in the warp's state for
// the releases of the tasks it runs meanwhile (all of this job: its stack was empty before).
__device__ void run_launch_here(const Params& p, WarpState* ws, Mailbox& mbox, uint32_t job,
                                const GraphDev* g, uint32_t root_tag, uint32_t root_kind,
                                const uint32_t* root_words) {
    const uint32_t lane = lane_id();
    if (lane == 0) { ws->graph = g; ws->graph_job = job; }
    __syncwarp();
    if (root_tag != 0) {
        // The launch carried its only root: it runs on the launch record's count, with no load
        // of the graph's header, roots or records first.
        const uint32_t node = root_tag - 1, kind = node_kind(root_kind), tag = node_tag(node, root_kind);
        GROSR_STAMP_MIN(14);
        const uint32_t gran = kind_gran(kind);
        if (gran == GROSR_LANE) {
            run_lane_round(p, ws, lane == 0, kind, job, tag, root_words);
        } else if (gran == GROSR_WARP) {
            run_warp_task(p, ws, kind, job, tag, root_words);
        } else {
            // A block root needs a block's mailbox: spawned (counted), the record's count goes.
            Ctx c{&p, ws, job, KIND_GRAPH_RANGE, GROSR_WARP, true, nullptr};
            if (lane == 0) spawn_words(c, kind, root_words, tag);
            account(p, ws, lane == 0, KIND_GRAPH_RANGE, job, true);
        }
        GROSR_STAMP_MAX(15);
    } else {
        GraphRange r{(uint64_t)g, 0, g->num_roots};
        run_graph_range(p, ws, r, job);   // accounts for itself
    }
    drain_stack(p, ws, mbox);
    __syncwarp();
    if (lane == 0) ws->graph_job = NO_KIND;
    __syncwarp();
}

// A graph launch: the descriptor's one record names the uploaded GraphDev. Few roots run right
// here; more go on the graph board, where idle warps claim them; if the board is full, they are
// cut into up to one graph range per SM queue, which the lanes push in parallel.
// `root_tag` (node + 1, else 0), `root_kind` and `root_words`: a launch of a graph with one root
// carries that root (grosr/src/graph/resident.rs), so it starts without a load of the graph.
__device__ __noinline__ void ingest_graph(const Params& p, WarpState* ws, Mailbox& mbox, uint32_t job,
                             uint64_t graph, uint32_t root_tag, uint32_t root_kind,
                             const uint32_t* root_words, uint32_t& next_queue) {
    const uint32_t lane = lane_id();
    uint32_t roots = 0, weight = 0;
    GROSR_STAMP(12);
#ifdef GROSR_TRACE
    // Ring 0's only, as every stamp (published by the pushes below).
    if (lane == 0 && blockIdx.x == 0) { grosr_trace[14] = ~0ull; grosr_trace[15] = 0; }
#endif
    if (root_tag != 0) {
        // Every node task of the job reads the graph from DevJob::graph (the other warps); the
        // pushes that publish those tasks (release) come after this store in program order.
        if (lane == 0) p.jobs[job].graph = reinterpret_cast<const GraphDev*>(graph);
        run_launch_here(p, ws, mbox, job, reinterpret_cast<const GraphDev*>(graph), root_tag,
                        root_kind, root_words);
        return;
    }
    if (lane == 0) {
        const GraphDev* g = reinterpret_cast<const GraphDev*>(graph);
        roots = g->num_roots;
        weight = graph_weight(g, 0, roots);
        // Every node task of the job reads the graph from here; the pushes that publish those
        // tasks (release) come after this store in program order.
        p.jobs[job].graph = g;
    }
    roots = __shfl_sync(0xffffffffu, roots, 0);
    weight = __shfl_sync(0xffffffffu, weight, 0);
    if (weight <= GRAPH_LEAF_WEIGHT) {
        run_launch_here(p, ws, mbox, job, reinterpret_cast<const GraphDev*>(graph), 0u, 0u, root_words);
        return;
    }
    uint32_t offered = 0;
    if (lane == 0) offered = board_offer(p, reinterpret_cast<const GraphDev*>(graph), job, roots);
    if (__shfl_sync(0xffffffffu, offered, 0)) {
        GROSR_STAMP(13);
        return;
    }
    // No board entry free: one piece per SM queue at most (each then splits among that SM's
    // warps, which look at their home queue first); the lanes push them in parallel.
    const uint32_t pieces = umin(p.num_queues, (weight + GRAPH_LEAF_WEIGHT - 1) / GRAPH_LEAF_WEIGHT);
    // The launch record was counted as one task; the pieces replace it (counted before pushed).
    if (lane == 0) atomicAdd(&p.jobs[job].pending, (int32_t)pieces - 1);
    __syncwarp();
    for (uint32_t piece = lane; piece < pieces; piece += WARP) {
        GraphRange r{graph, (uint32_t)((uint64_t)roots * piece / pieces),
                     (uint32_t)((uint64_t)roots * (piece + 1) / pieces)};
        alignas(16) uint32_t words[RECORD_WORDS] = {0};
        memcpy(words, &r, sizeof(GraphRange));
        // The mask names the calling lane alone: lanes push to different queues.
        if (!push_any(p, (next_queue + piece) % p.num_queues, 1u << lane, KIND_GRAPH_RANGE, job, 0u, words)) {
            fail_job(p, job, ERR_QUEUE_OVERFLOW, KIND_GRAPH_RANGE);
            job_add(p, job, -1);
        }
    }
    __syncwarp();
    GROSR_STAMP(13);
    next_queue = (next_queue + pieces) % p.num_queues;
}

// Polls descriptor `head`, twice back to back, then goes back to the loop (mailbox, stop flag).
// Each poll is one PCIe round trip for all 32 cells. (Several polls in flight at once, spaced a
// third of a round trip apart, were slower: 4.6 against 1.3 µs from the hit's issue to its use.)
// True if seen whole; `cell` is then this lane's cell.
__device__ __forceinline__ bool desc_whole(uint64_t cell, uint64_t head) {
    return __all_sync(0xffffffffu, (uint32_t)(cell >> 32) == (uint32_t)(head + 1));
}
__device__ bool poll_desc(const Params& p, uint32_t ring, uint64_t head, uint64_t& cell) {
    const uint64_t* src = &p.descs[desc_cell(p, ring, head)].cell[lane_id()];
    for (uint32_t poll = 0; poll < 2; ++poll) {
#ifdef GROSR_TRACE
        const unsigned long long issued = globaltimer();
#endif
        cell = ld_relaxed_sys_u64(src);
        if (desc_whole(cell, head)) {
#ifdef GROSR_TRACE
            if (blockIdx.x == 0 && threadIdx.x == 0) grosr_trace[0] = issued;
#endif
            return true;
        }
#ifdef GROSR_TRACE
        if (blockIdx.x == 0 && threadIdx.x == 0) grosr_trace[10] = issued;   // the last empty poll
#endif
    }
    return false;
}

// Record `first`.. of an inline descriptor into words: lane l holds payload word l.
__device__ __forceinline__ void inline_record(uint32_t word, uint32_t first, uint32_t size_words,
                                              uint32_t* words) {
#pragma unroll
    for (uint32_t w = 0; w < RECORD_WORDS; ++w) {
        const uint32_t v = __shfl_sync(0xffffffffu, word, (first + w) & (WARP - 1));
        words[w] = w < size_words ? v : 0u;
    }
}

// A small graph's launch carries the whole graph in its descriptor (grosr/src/graph/resident.rs,
// `small_launch`): cell DESC_INLINE_FIRST holds n, the next n cells one word per node (kind in
// bits 0-15, level in 16-23, the cell of its record in 24-31), then the records. The host orders
// the nodes by level (longest path from a root), lane nodes before warp nodes within a level, and
// counted the job as n tasks. The warp runs it level by level, a level's lane nodes in one round:
// a node runs after all of its predecessors (earlier levels) have returned, as in a graph launch,
// with no graph in memory, no counter and no queue. Tags are 0: no successor is released.
__device__ __noinline__ void run_small_graph(const Params& p, WarpState* ws, uint32_t job, uint32_t word) {
    const uint32_t lane = lane_id();
    const uint32_t n = __shfl_sync(0xffffffffu, word, DESC_INLINE_FIRST);
    const uint32_t first = DESC_INLINE_FIRST + 1;   // node 0's word
    GROSR_STAMP(12);
    for (uint32_t i = 0; i < n;) {
        GROSR_STAMP(15);                             // the last level's start remains
        const uint32_t level = __shfl_sync(0xffffffffu, word, first + i) >> 16 & 0xFFu;
        // Lane l looks at node i + l; its level's nodes are a prefix of the lanes.
        const uint32_t me = umin(i + lane, n - 1);
        const uint32_t nw = __shfl_sync(0xffffffffu, word, (first + me) & (WARP - 1));
        const bool mine = i + lane < n && (nw >> 16 & 0xFFu) == level;
        const uint32_t kind = nw & 0xFFFFu;
        const uint32_t gran = kind_gran(kind);
        alignas(16) uint32_t words[RECORD_WORDS];
        inline_record(word, nw >> 24, mine ? kind_size(kind) / 4 : 0u, words);
        // Unknown kinds go to the lane round, whose dispatch fails the job with their kind.
        const bool lane_node = mine && gran != GROSR_WARP;
        if (__any_sync(0xffffffffu, lane_node)) run_lane_round(p, ws, lane_node, kind, job, 0u, words);
        uint32_t warp_nodes = __ballot_sync(0xffffffffu, mine && gran == GROSR_WARP);
        while (warp_nodes) {
            const uint32_t src = __ffs(warp_nodes) - 1;
            warp_nodes &= warp_nodes - 1;
            alignas(16) uint32_t w[RECORD_WORDS];
            for (uint32_t k = 0; k < RECORD_WORDS; ++k) w[k] = __shfl_sync(0xffffffffu, words[k], src);
            run_warp_task(p, ws, __shfl_sync(0xffffffffu, kind, src), job, 0u, w);
        }
        // account() ended each round with a warp barrier: this level's writes are ordered
        // before the next level's reads.
        i += __popc(__ballot_sync(0xffffffffu, mine));
    }
}

// Runs the records an inline descriptor carried (counted already): up to 24 lane tasks in one
// round, or one warp task, right here; several warp tasks, or block tasks, go to a queue.
__device__ __noinline__ void run_inline(const Params& p, WarpState* ws, uint32_t kind, uint32_t count,
                                        uint32_t job, uint32_t word, uint32_t& next_queue) {
    const uint32_t lane = lane_id();
    const uint32_t gran = kind_gran(kind), size = kind_size(kind);
    if (gran == GROSR_NO_GRAN || size % 4 != 0 || count * size > (DESC_CELLS - DESC_INLINE_FIRST) * 4) {
        // An unknown kind (or a size the host could not have sent inline): the job fails.
        if (lane == 0) {
            fail_job(p, job, ERR_UNKNOWN_KIND, kind);
            job_add(p, job, -(int32_t)count);
        }
        __syncwarp();
        return;
    }
    const uint32_t sw = size / 4;
    alignas(16) uint32_t words[RECORD_WORDS];
    if (gran == GROSR_WARP && count == 1) {
        inline_record(word, DESC_INLINE_FIRST, sw, words);
        run_warp_task(p, ws, kind, job, 0u, words);
        return;
    }
    const bool has = lane < count;
    inline_record(word, DESC_INLINE_FIRST + lane * sw, sw, words);
    GROSR_STAMP(4);
    if (gran == GROSR_LANE) {
        run_lane_round(p, ws, has, kind, job, 0u, words);
    } else {
        // The mask first, by all lanes (a ballot inside the branch would leave lanes out).
        const uint32_t mask = __ballot_sync(0xffffffffu, has);
        if (has) push_counted(p, next_queue, mask, kind, job, 0u, words);
        __syncwarp();
        next_queue = (next_queue + 1) % p.num_queues;
    }
}

// Run by ring `ring`'s ingest warp (warp 0 of block `ring`), the ring's only reader. Returns how
// many descriptors it took.
__device__ __noinline__ uint32_t ingest(const Params& p, WarpState* ws, Mailbox& mbox, uint32_t ring,
                                        uint64_t& head, uint32_t& next_queue) {
    const uint32_t lane = lane_id();
    uint32_t taken = 0;
    for (; taken < 32; ++taken) {
        uint64_t cell = 0;
        if (!poll_desc(p, ring, head, cell)) break;
        GROSR_STAMP(1);
        const uint32_t word = (uint32_t)cell;
        const uint32_t kind = __shfl_sync(0xffffffffu, word, DESC_KIND);
        const uint32_t count = __shfl_sync(0xffffffffu, word, DESC_COUNT);
        const uint32_t job = __shfl_sync(0xffffffffu, word, DESC_JOB_SLOT);
        const uint32_t job_seq = __shfl_sync(0xffffffffu, word, DESC_JOB_SEQ);
        const int32_t adjust = (int32_t)__shfl_sync(0xffffffffu, word, DESC_ADJUST);
        const bool in_desc = __shfl_sync(0xffffffffu, word, DESC_INLINE) == 1;
        const uint64_t records = (uint64_t)__shfl_sync(0xffffffffu, word, DESC_RECORDS_LO) |
                                 (uint64_t)__shfl_sync(0xffffffffu, word, DESC_RECORDS_HI) << 32;
        GROSR_STAMP(2);
        if (lane == 0) {
            // Acquire by fence (the relaxed load of cell 0 saw the host's release store of it):
            // the records the host copied into the arena before publishing are visible to this
            // warp, and through its releases (queue pushes) to the warps that run them. Inline
            // records need none: they came in the cells themselves.
            if (!in_desc) fence_acq_rel_sys();
            p.jobs[job].seq = job_seq;
            if (!in_desc) p.desc_reads[desc_cell(p, ring, head)] = (int32_t)count;
            // Count the records before any of them can run (the push below publishes them, and
            // its release orders this add first; this warp's own later updates of the count
            // follow it in coherence order). A relaxed add with no result: it cannot complete
            // the job (pending >= 0 before it, and count + adjust >= 0), so nothing waits for it.
            // A close (no records, adjust -1: the host gave up on a split job between chunks)
            // lowers the count and may complete the job: job_add, acq_rel like any task's end.
            if (count == 0) job_add(p, job, adjust);
            else if (count + adjust != 0) atomicAdd(&p.jobs[job].pending, (int32_t)count + adjust);
            GROSR_STAMP(3);
        }
        __syncwarp();
        const uint64_t desc = head++;
        if (count == 0) {
            // A close carries nothing to run (the host sends it inline: no arena, no desc_done).
        } else if (kind == KIND_GRAPH && count == 1) {
            uint64_t graph;
            // A launch record: graph address, then (a one-root graph) the root's node + 1, its
            // kind and its record; the arena form (never sent by this host) has the address only.
            uint32_t root_tag = 0, root_kind = 0;
            alignas(16) uint32_t root_words[RECORD_WORDS] = {0};
            if (in_desc) {
                graph = (uint64_t)__shfl_sync(0xffffffffu, word, DESC_INLINE_FIRST) |
                        (uint64_t)__shfl_sync(0xffffffffu, word, DESC_INLINE_FIRST + 1) << 32;
                root_tag = __shfl_sync(0xffffffffu, word, DESC_INLINE_FIRST + 2);
                root_kind = __shfl_sync(0xffffffffu, word, DESC_INLINE_FIRST + 3);
                inline_record(word, DESC_INLINE_FIRST + 4, RECORD_WORDS, root_words);
            } else {
                uint32_t lo = 0, hi = 0;
                if (lane == 0) { lo = ld_relaxed_sys_u32((const void*)records); hi = ld_relaxed_sys_u32((const void*)(records + 4)); }
                graph = (uint64_t)__shfl_sync(0xffffffffu, lo, 0) | (uint64_t)__shfl_sync(0xffffffffu, hi, 0) << 32;
                range_records_read(p, ring, (uint32_t)desc, 1);
            }
            ingest_graph(p, ws, mbox, job, graph, root_tag, root_kind, root_words, next_queue);
        } else if (kind == KIND_GRAPH_SMALL && in_desc) {
            run_small_graph(p, ws, job, word);
            drain_stack(p, ws, mbox);
        } else if (in_desc) {
            run_inline(p, ws, kind, count, job, word, next_queue);
            GROSR_STAMP(8);
            drain_stack(p, ws, mbox);
        } else {
            Range r{kind, 0, count, (uint32_t)desc, ring, 0u, records};
            const uint32_t gran = kind_gran(kind);
            if ((gran == GROSR_LANE && count <= WARP) || (gran == GROSR_WARP && count == 1)) {
                // A small submission runs right here: no queue hop and no sleeping warp to wake.
                run_range(p, ws, r, job);
                drain_stack(p, ws, mbox);
            } else {
                alignas(16) uint32_t words[RECORD_WORDS] = {0};
                memcpy(words, &r, sizeof(Range));
                // Ranges go round-robin over the SM queues so that work starts spread out. One
                // slot: lane 0 pushes it alone (mask 1).
                if (lane == 0 && !push_any(p, next_queue, 1u, KIND_RANGE, job, 0u, words)) {
                    fail_job(p, job, ERR_QUEUE_OVERFLOW, kind);
                    range_records_read(p, ring, (uint32_t)desc, count);
                    job_add(p, job, -(int32_t)count);
                }
                __syncwarp();
                next_queue = (next_queue + 1) % p.num_queues;
            }
        }
        // Relaxed (system scope): the host may now rewrite this descriptor. Our loads of its cells
        // are done (their values were used above); and a load that saw a later write would have
        // seen a later tag, so no reordering can hand us a mix.
        if (lane == 0) st_relaxed_sys_u64(&p.desc_heads[ring].head, head);
        GROSR_STAMP(9);
    }
    return taken;
}

}  // namespace grosr
