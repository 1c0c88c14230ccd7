// The scheduler: every warp's loop (take work, run it, back off when idle) and the kernels.

namespace grosr {

// ---- The scheduler ------------------------------------------------------------------------------
__device__ void requeue(const Params& p, WarpState* ws, bool has, uint32_t kind, uint32_t job,
                        uint32_t node, const uint32_t* words) {
    // Puts already-counted tasks back (block tasks waiting for the mailbox): stack, else queue.
    const uint32_t m = __ballot_sync(0xffffffffu, has);
    if (!m) return;
    uint32_t base = STACK_CAP;
    if (lane_id() == 0) {
        uint32_t t = ws->top;
        if (t + __popc(m) <= STACK_CAP) { base = t; ws->top = t + __popc(m); }
    }
    base = __shfl_sync(0xffffffffu, base, 0);
    if (base != STACK_CAP) {
        if (has) {
            StackEntry& e = ws->stack[base + __popc(m & lanemask_lt())];
            e.kind = kind; e.job = job; e.node = node;
            for (uint32_t w = 0; w < RECORD_WORDS; ++w) e.words[w] = words[w];
        }
    } else if (has) {
        push_counted(p, home_queue(p), __activemask(), kind, job, node, words);
    }
    __syncwarp();
}

// Takes up to 32 tasks: own stack first (locality), then the SM's queue, then other SMs' queues.
__device__ uint32_t take_work(const Params& p, WarpState* ws, uint32_t& kind, uint32_t& job,
                              uint32_t& node, uint32_t* words, uint32_t& rng) {
    const uint32_t lane = lane_id();
    GROSR_SEQ(5);
    const uint32_t top = ws->top;
    if (top > 0) {
        const uint32_t n = umin(top, WARP);
        if (lane < n) {
            const StackEntry& e = ws->stack[top - n + lane];
            kind = e.kind; job = e.job; node = e.node;
            for (uint32_t w = 0; w < RECORD_WORDS; ++w) words[w] = e.words[w];
        }
        __syncwarp();
        if (lane == 0) ws->top = top - n;
        __syncwarp();
        GROSR_SEQ(6);
        return n;
    }
    const uint32_t home = home_queue(p);
    // Issued now, used only if the home queue is empty: both loads are in flight together.
    const uint32_t live = lane == 0 ? *(volatile uint32_t*)&grosr_board.live : 0u;
    uint32_t n = pop_from(p, home, WARP, kind, job, node, words);
    if (n) return n;
    settle_owed(p, ws);                          // the home queue is dry: pay what we owe first
    n = board_claim(p, live, kind, job, words);
    if (n) return n;
    for (uint32_t t = 0; t < GROSR_STEALS && p.num_queues > 1; ++t) {   // steal from random victims
        rng = rng * 1664525u + 1013904223u;
        const uint32_t victim = (home + 1 + (rng >> 8) % (p.num_queues - 1)) % p.num_queues;
        n = pop_from(p, victim, WARP, kind, job, node, words);
        if (n) return n;
    }
    return 0;
}

__device__ void process(const Params& p, WarpState* ws, Mailbox& mbox, uint32_t n, uint32_t kind,
                        uint32_t job, uint32_t node, const uint32_t* words) {
    const uint32_t lane = lane_id(), warp = threadIdx.x / WARP;
    const bool has = lane < n && kind != KIND_NOP;   // see KIND_NOP
    const bool internal_range = kind == KIND_RANGE || kind == KIND_GRAPH_RANGE || kind == KIND_GRAPH_UNIT;
    const uint32_t gran = !has ? GROSR_NO_GRAN : (internal_range ? GRAN_RANGE : kind_gran(kind));
    // Lane tasks (and unknown kinds, which dispatch_lane reports) all at once.
    const bool lane_task = has && (gran == GROSR_LANE || gran == GROSR_NO_GRAN);
    if (__any_sync(0xffffffffu, lane_task)) run_lane_round(p, ws, lane_task, kind, job, node, words);
    // Warp tasks and ranges one after another, the record broadcast from its lane.
    uint32_t serial = __ballot_sync(0xffffffffu, has && (gran == GROSR_WARP || gran == GRAN_RANGE));
    while (serial) {
        const uint32_t src = __ffs(serial) - 1;
        serial &= serial - 1;
        uint32_t k = __shfl_sync(0xffffffffu, kind, src), j = __shfl_sync(0xffffffffu, job, src);
        const uint32_t nd = __shfl_sync(0xffffffffu, node, src);
        alignas(16) uint32_t w[RECORD_WORDS];
        for (uint32_t i = 0; i < RECORD_WORDS; ++i) w[i] = __shfl_sync(0xffffffffu, words[i], src);
        if (k == KIND_RANGE) {
            Range r;
            memcpy(&r, w, sizeof(Range));
            run_range(p, ws, r, j);
        } else if (k == KIND_GRAPH_RANGE) {
            GraphRange r;
            memcpy(&r, w, sizeof(GraphRange));
            run_graph_range(p, ws, r, j);   // accounts for itself
        } else if (k == KIND_GRAPH_UNIT) {
            run_graph_unit(p, ws, j, w[0]);
        } else {
            run_warp_task(p, ws, k, j, nd, w);
        }
    }
    // Block tasks: post one to the block's mailbox, keep the others for later.
    bool block_task = has && gran == GROSR_BLOCK;
    const uint32_t blocks = __ballot_sync(0xffffffffu, block_task);
    if (blocks && is_high_ring_block(p) && p.num_queues > 1) {
        // The high-priority ring's block runs no block task: every warp of a block runs one,
        // its ingest warp too, which would leave high jobs waiting meanwhile. They go to the
        // next SM's queue, which other blocks serve (only this block is exempt); if every queue
        // is full, back on the stack, to be tried again.
        bool pushed = false;
        if (block_task) pushed = push_any(p, (home_queue(p) + 1) % p.num_queues, blocks, kind, job, node, words);
        requeue(p, ws, block_task && !pushed, kind, job, node, words);
        return;
    }
    if (blocks) {
        const uint32_t src = __ffs(blocks) - 1;
        uint32_t posted = 0;
        if (lane == 0) posted = atomicCAS(&mbox.busy, 0u, 1u) == 0u;
        posted = __shfl_sync(0xffffffffu, posted, 0);
        if (posted) {
            if (lane == src) { mbox.kind = kind; mbox.job = job; mbox.node = node; mbox.poster = warp; }
            for (uint32_t i = 0; i < RECORD_WORDS; ++i) {
                uint32_t v = __shfl_sync(0xffffffffu, words[i], src);
                if (lane == 0) mbox.words[i] = v;
            }
            __syncwarp();
            // Order the mailbox contents before the epoch bump that other warps poll.
            if (lane == 0) { __threadfence_block(); atomicAdd((uint32_t*)&mbox.epoch, 1u); }
            if (lane == src) block_task = false;
        }
        requeue(p, ws, block_task, kind, job, node, words);
    }
}

// All warps of the block meet here to run a posted block task, or to exit together.
// Returns true when the block must exit.
__device__ __noinline__ bool block_collective(const Params& p, WarpState* ws, Mailbox& mbox,
                                 uint32_t& blk_stop, uint32_t& my_epoch) {
    named_barrier(1);
    // Read both decisions between two barriers: no warp can post or stop while all are here,
    // so every warp decides alike (a warp that exited alone would leave the others waiting).
    const bool stop = atomicAdd(&blk_stop, 0u) != 0;
    const bool task = mbox.epoch != my_epoch;
    // Copied before the second barrier: once the poster frees the mailbox after it, another
    // warp may post and overwrite these fields.
    const uint32_t kind = mbox.kind, job = mbox.job, node = mbox.node, poster = mbox.poster;
    if (task) {
        alignas(16) uint32_t words[RECORD_WORDS];
        for (uint32_t i = 0; i < RECORD_WORDS; ++i) words[i] = mbox.words[i];
        // Spawns count immediately here (uniform = false): the poster's decrement below must not
        // overtake children that other warps put on their own stacks.
        Ctx c{&p, ws, job, kind, GROSR_BLOCK, false, nullptr, GROSR_GRAPH_TAG(node)};
        GROSR_TRACE_FROM(c, node);
        if (!dispatch_block(c, kind, words) && threadIdx.x == 0) {
            fail_job(p, job, ERR_UNKNOWN_KIND, kind);
        }
        my_epoch = mbox.epoch;
        __threadfence();                          // the body's writes precede the decrement
        if (GROSR_GRAPH_TAG(node)) {
            // Every thread's body writes precede every thread's successor decrements; and the
            // successors' counts (spawns count at once here) precede the poster's job_add below.
            named_barrier(2);
            release_successors(c);
        }
    }
    named_barrier(1);
    if (task && threadIdx.x / WARP == poster && lane_id() == 0) {
        if (kind < p.num_kinds) atomicAdd((unsigned long long*)&p.executed[kind], 1ull);
        job_add(p, job, -1);
        atomicExch(&mbox.busy, 0u);              // from here another block task may be posted
    }
    return stop;
}

__device__ void scheduler(const Params& kernel_params) {
    __shared__ WarpState warp_states[WARPS_PER_BLOCK];
    __shared__ Mailbox mbox;
    __shared__ uint32_t blk_stop;
    // The parameters, one copy per block. Everything below takes their address (Ctx::p, the
    // out-of-line paths), and the address of a kernel parameter makes the compiler copy it into
    // every thread's local memory: 128 bytes a thread, 64 KB of each SM's L1, read on every hop.
    __shared__ Params block_params;
    if (threadIdx.x == 0) block_params = kernel_params;
    const Params& p = block_params;              // read after the __syncthreads below
    const uint32_t lane = lane_id(), warp = threadIdx.x / WARP;
    WarpState* ws = &warp_states[warp];
    // Warp 0 of blocks 0..num_rings-1 ingest, each its own submission ring (ring = block); the
    // host keeps num_rings at most the grid. Block 0's also watches the host's stop flag.
    // (From the kernel's own parameter: the block's copy is read only after the barrier below.)
    const bool ingest_warp = warp == 0 && blockIdx.x < kernel_params.num_rings;
    const bool stop_watcher = warp == 0 && blockIdx.x == 0;
    if (lane == 0) {
        ws->top = 0;
        ws->deferred = 0;
        ws->bypass_hops = ingest_warp ? INGEST_BYPASS_HOPS : BYPASS_HOPS;
        ws->spread = 0;
        ws->owed = 0;
        ws->owed_job = 0;
        ws->owe_ok = !ingest_warp;
        ws->graph_job = NO_KIND;
    }
    ws->held[lane][RECORD_WORDS] = NO_KIND;
#ifdef GROSR_TRACE_TASKS
    // Each ring goes on from the events of this warp's earlier launches (their counts are final:
    // a relaunch follows a stop, which waited for the kernel to end).
    ws->trace_seq[lane] = grosr_task_trace.counts[(blockIdx.x * WARPS_PER_BLOCK + warp) * WARP + lane];
    if (lane == 0) {
        const uint32_t w = blockIdx.x * WARPS_PER_BLOCK + warp;
        ws->trace_rot = 0;
        ws->trace_id_warp = w << TRACE_SLOT_BITS;
        ws->trace_where_sm = (sm_id() & 0xFFu) << 17;
        ws->trace_mask = grosr_task_trace.lane_capacity - 1u;
        ws->trace_shift = grosr_task_trace.lane_shift;
        ws->trace_events = grosr_task_trace.events + (unsigned long long)w * grosr_task_trace.lane_capacity * WARP;
        ws->trace_counts = grosr_task_trace.counts + w * WARP;
    }
#endif
    if (threadIdx.x == 0) { mbox.epoch = 0; mbox.busy = 0; blk_stop = 0; }
#ifdef GROSR_TRACE
    if (threadIdx.x == 0) grosr_seq_n = 64;      // until a spawn tree's root starts
#endif
    __syncthreads();
    if (threadIdx.x == 0) atomicAdd((uint32_t*)&p.host->started_blocks, 1u);  // host waits for all
    // Relaxed: the host stored the ring's start before the launch, which orders it first.
    uint64_t head = ingest_warp ? ld_relaxed_sys_u64(&p.desc_heads[blockIdx.x].head) : 0;
    // Each ring's ingest warp starts its round-robin of the queues at its own share of them.
    uint32_t next_queue = ingest_warp ? blockIdx.x * p.num_queues / p.num_rings : 0;
    uint32_t my_epoch = 0, idle_ns = 0, turns = 0, cold_polls = 0;
    uint32_t rng = 0x9E3779B9u * (blockIdx.x * 64 + warp + 1);
    // Shared flags polled by every warp go through shared-memory atomics: cheap, and exact
    // about which write a read sees (a plain flag would be a data race, racecheck says).
    auto set_stop = [&]() { if (lane == 0) atomicExch(&blk_stop, 1u); __syncwarp(); };
    while (true) {
        // The stop flag is read every few turns even when busy, so endless work cannot pin us.
        if (++turns % STOP_CHECK_PERIOD == 0 && *(volatile uint32_t*)p.dev_stop) set_stop();
        uint32_t meet = 0;
        if (lane == 0) meet = atomicAdd((uint32_t*)&mbox.epoch, 0u) != my_epoch || atomicAdd(&blk_stop, 0u) != 0;
        if (__shfl_sync(0xffffffffu, meet, 0)) {
            if (block_collective(p, ws, mbox, blk_stop, my_epoch)) break;
            continue;
        }
        if (ingest_warp) {
            // Block tasks spawn from all their threads, warp 0 included: what lands on the ingest
            // warp's own stack goes to the queues, since the ingest warp takes no queued work.
            if (ws->top > 0) requeue_stack(p, ws);
            uint32_t stop = 0;
            // The host's flag is one PCIe read away: look at it every 64th turn only.
            if (stop_watcher && lane == 0 && turns % 64 == 0) stop = *(volatile uint32_t*)&p.host->stop;
            if (__shfl_sync(0xffffffffu, stop, 0)) {
                if (lane == 0) *(volatile uint32_t*)p.dev_stop = 1;
                set_stop();
                continue;
            }
            if (ingest(p, ws, mbox, blockIdx.x, head, next_queue)) { idle_ns = cold_polls = 0; continue; }
        } else {
            uint32_t kind = NO_KIND, job = 0, node = 0;
            alignas(16) uint32_t words[RECORD_WORDS];   // read_slot stores it as uint4s
#ifdef GROSR_TRACE
            const bool from_stack = ws->top > 0;
            const unsigned long long t0 = globaltimer();
#endif
            const uint32_t n = take_work(p, ws, kind, job, node, words, rng);
#ifdef GROSR_TRACE
            const unsigned long long t1 = globaltimer();
            if (lane == 0 && n == 0) { grosr_warp_add(GROSR_WT_DRY_TAKES, 1); grosr_warp_add(GROSR_WT_DRY_TAKE_NS, t1 - t0); grosr_hist_add(2, 1); }
#endif
            if (n) {
                process(p, ws, mbox, n, kind, job, node, words);
#ifdef GROSR_TRACE
                if (lane == 0) {
                    grosr_warp_add(from_stack ? GROSR_WT_STACK_ROUNDS : GROSR_WT_QUEUE_ROUNDS, 1);
                    grosr_warp_add(from_stack ? GROSR_WT_STACK_TAKE_NS : GROSR_WT_QUEUE_TAKE_NS, t1 - t0);
                    grosr_warp_add(GROSR_WT_PROCESS_NS, globaltimer() - t1);
                }
#endif
                idle_ns = 0;
                continue;
            }
        }
        // The stop watcher itself copies the host's stop flag to dev_stop (above): no need to read it.
        if (!stop_watcher && *(volatile uint32_t*)p.dev_stop) { set_stop(); continue; }
        // Idle: back off so polling does not steal L2 bandwidth from busy warps.
        idle_ns = idle_ns ? umin(idle_ns * 2, (uint32_t)GROSR_IDLE_MAX_NS) : 32u;
        uint32_t sleep_ns = idle_ns;
        if (ingest_warp) {
            // A ring that found nothing for INGEST_COLD_POLLS calls in a row polls less often,
            // leaving PCIe to the busy rings' polls and completions; the high ring always polls
            // at once (a high job must not wait for a sleep).
            const bool high = is_high_ring_block(p);
            sleep_ns = ++cold_polls > INGEST_COLD_POLLS && !high ? INGEST_COLD_SLEEP_NS : 32u;
        }
        __nanosleep(sleep_ns);
    }
    settle_owed(p, ws);
    __syncthreads();
    if (threadIdx.x == 0) atomicAdd((uint32_t*)&p.host->exited_blocks, 1u);
}

// Prepares the device block for a launch (grosr/src/runtime/memory.rs lays it out): everything
// before the slots (jobs, descriptor reads, counters, flags, queue heads) starts at zero, and slot
// i of every ring is free for index i. A slot's other words need no clearing: they are read only
// after its seq says a push wrote them. Here, not by host copies: at 3 TB/s the 69 MB block of a
// 132-SM H200 takes microseconds, copies of zeros took milliseconds of every build and restart.
__device__ void init_queues(const Params& p) {
    const uint64_t first = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x;
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    uint32_t* front = reinterpret_cast<uint32_t*>(p.jobs);
    const uint64_t front_words = (reinterpret_cast<uint64_t>(p.slots) - reinterpret_cast<uint64_t>(p.jobs)) / 4;
    for (uint64_t i = first; i < front_words; i += stride) front[i] = 0u;
    const uint64_t total = (uint64_t)p.num_queues * p.queue_cap;
    for (uint64_t i = first; i < total; i += stride) {
        p.slots[i].seq = (uint32_t)(i & (p.queue_cap - 1));
    }
    // A launch abandoned by a stop must not be claimed after the restart.
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t < BOARD_ENTRIES) grosr_board.state[t] = 0;
    if (t == 0) grosr_board.live = 0;
}

}  // namespace grosr

// ---- Kernels ------------------------------------------------------------------------------------
extern "C" __global__ void __launch_bounds__(grosr::BLOCK_THREADS, GROSR_MIN_BLOCKS_PER_SM) grosr_scheduler(grosr::Params p) {
    grosr::scheduler(p);
}
extern "C" __global__ void grosr_init(grosr::Params p) { grosr::init_queues(p); }
