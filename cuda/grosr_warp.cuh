// Per-warp state in shared memory (the warp's stack, owed counts, held tasks), the block's
// mailbox, and the context a task body sees (Ctx).

namespace grosr {

#ifdef GROSR_TRACE_TASKS
struct TaskEvent;                 // grosr_task_trace.cuh
#endif

// ---- Per-warp state in shared memory ---------------------------------------------------------------
struct StackEntry { uint32_t kind, job, node, pad; alignas(16) uint32_t words[RECORD_WORDS]; };

struct WarpState {
    uint32_t top;                 // entries in use (shared atomics: divergent groups may push)
    int32_t deferred;             // spawns into this stack not yet added to the job's pending
    uint32_t bypass_hops;         // BYPASS_HOPS, or INGEST_BYPASS_HOPS on the ingest warp
    uint32_t spread;              // queued spawns so far: the next goes this many queues on
    int32_t owed;                 // decrements of job owed_job's pending not yet applied (owe_ok)
    uint32_t owed_job;
    uint32_t owe_ok;              // 0 on the ingest warp: it settles every round at once
    uint32_t graph_job;           // ingest warp, while it runs a small launch itself: its job ...
    const GraphDev* graph;        // ... and graph, so releases skip the DevJob::graph load
    uint32_t pad[7];              // keeps `stack` at byte 80 (its shared-memory banks unchanged)
    StackEntry stack[STACK_CAP];
    // Per lane: the one lane task a lane task spawned, run next by the same lane with no stack,
    // round or count (scheduler bypass). [RECORD_WORDS] holds its kind, NO_KIND when empty.
    // 13 words a row: lanes hit distinct banks.
    uint32_t held[WARP][RECORD_WORDS + 1];
#ifdef GROSR_TRACE_TASKS
    // The task timeline's rings (grosr_task_trace.cuh): per lane, the events its ring took; the
    // lane whose ring the next warp task records into.
    uint32_t trace_seq[WARP];
    uint32_t trace_rot;
    // The warp's constants of the timeline, set at the scheduler's start, so that a task's event
    // takes shared loads only (from the module global: two dependent rounds of global loads
    // and the block, warp and SM ids read again at every task).
    uint32_t trace_id_warp;       // the warp's bits of an id: w << TRACE_SLOT_BITS
    uint32_t trace_where_sm;      // the SM's bits of `where`: (SM & 0xFF) << 17
    uint32_t trace_mask;          // lane_capacity - 1
    uint32_t trace_shift;         // log2(lane_capacity)
    TaskEvent* trace_events;      // the warp's rings: slot s of lane r at trace_events[s * 32 + r]
    uint32_t* trace_counts;       // the warp's 32 counts
#endif
};

// Owed counts: a warp that runs uniform rounds does not decrement its job's pending count each
// round (every warp doing so makes that one counter the hottest address on the GPU); it owes the
// decrements (ws->owed) and pays children it spawns into the queues out of them (spawn_words).
// The stored count is then the true count plus what warps owe, never less, so a job completes
// only once every owed decrement is applied. A warp settles before it looks for work away from
// its own stack and home queue, before a round of another job, and before it exits: a job's
// completion waits at most for its last warps to find their home queues empty.
// Applies the warp's owed decrements. Called by all 32 lanes of the warp, converged.
__device__ void settle_owed(const Params& p, WarpState* ws) {
    // The warp barrier orders every lane's earlier results before the leader's release (job_add).
    __syncwarp();
    if (lane_id() == 0 && ws->owed != 0) {
        job_add(p, ws->owed_job, -ws->owed);
        ws->owed = 0;
    }
    __syncwarp();
}

// Pays for k queued children of `job` out of the warp's owed decrements if it owes that many
// (true); else the caller counts them on the job. Any lane; shared atomics (divergent groups).
__device__ bool pay_from_owed(WarpState* ws, uint32_t job, int32_t k) {
    if (!ws->owe_ok || ws->owed_job != job) return false;
    const int32_t old = atomicSub(&ws->owed, k);
    if (old >= k) return true;
    atomicAdd(&ws->owed, k);                     // not enough: undo (a racing payer may fall back too)
    return false;
}

struct Mailbox {                  // one block task at a time, run by all warps of the block
    volatile uint32_t epoch;      // bumped when a task is posted
    uint32_t busy;                // 1 from post until the poster has accounted for it
    uint32_t poster;              // warp index of the poster
    uint32_t kind, job, node;
    alignas(16) uint32_t words[RECORD_WORDS];
};

// ---- The context a task body sees ---------------------------------------------------------------------
struct Ctx {
    const Params* p;              // null in the baseline kernels (no scheduler)
    WarpState* ws;                // this warp's stack; null outside the scheduler
    uint32_t job;
    uint32_t kind;
    uint32_t gran;
    bool uniform;                 // all tasks of this round share `job`: spawns may defer counting
    int32_t* status;              // baseline kernels: where ctx.fail writes
    uint32_t node;                // graph node + 1 if this task is a node of the job's graph
    bool hold;                    // a lane task of the scheduler: its first lane-task spawn is held
    uint32_t hops_left;           // held tasks this lane may still run before it stacks the next
#ifdef GROSR_TRACE_TASKS
    uint32_t trace_id;            // the running task's id (grosr_task_trace.cuh)
    uint32_t trace_origin;        // the next task's origin: its spawner's id, or a graph tag
#endif
#ifdef GROSR_CANCEL
    mutable uint32_t cancel_seen = 0;  // 0: not read yet; 1: the job runs on; 2: it was cancelled
#endif

    // Index of this thread within the task (0 for lane tasks) and the number of threads in it.
    __device__ uint32_t lane() const {
        return gran == GROSR_LANE ? 0u : (gran == GROSR_WARP ? lane_id() : threadIdx.x);
    }
    __device__ uint32_t width() const {
        return gran == GROSR_LANE ? 1u : (gran == GROSR_WARP ? WARP : blockDim.x);
    }
    // The task's item in its range (Runtime::submit_range, TaskGraph::add_range), 0 outside
    // one. GPU runtimes refuse ranges for now (the host checks), so no task here is in one.
    __device__ uint32_t index() const { return 0u; }
    // Fails the task's job with a positive code; the job still completes and Job::wait reports it.
    __device__ void fail(int32_t code) const {
        int32_t c = code > 0 ? code : 1;
        if (p) fail_job(*p, job, c, kind);
        else if (status) atomicCAS(status, 0, c);
    }
    // Whether the task's job was cancelled (Job::cancel; a runtime built cancellable): read
    // afresh each call, for a body that polls it.
    __device__ bool cancelled() const {
#ifdef GROSR_CANCEL
        return p && job_cancelled(*p, job);
#else
        return false;                            // the host refuses to cancel: no job ever is
#endif
    }
#ifdef GROSR_CANCEL
    // The same, read once per context: a task's start and its spawns ask it, and a context serves
    // a round's task on this lane and the chain it holds (up to BYPASS_HOPS hops), so a cancel
    // is seen by the next round or chain rather than the next task, for one pair of L2 loads a
    // round instead of a pair per task and per spawn.
    __device__ bool cancelled_once() const {
        if (cancel_seen == 0) cancel_seen = cancelled() ? 2u : 1u;
        return cancel_seen == 2u;
    }
#endif
    // Spawns a task of a registered type (generated grosr_spawn_<T> helpers call this).
    template <class T> __device__ void spawn(const T& t);
    // Spawns into a queue, where any warp of any SM may take it, instead of this warp's stack
    // (which runs the child next, here): for wide fan-out whose children should spread.
    template <class T> __device__ void spawn_queued(const T& t);
    // The device heap (grosr_heap*.cuh): 16-byte aligned, nullptr when exhausted; any task,
    // warp or SM may free what another allocated. A whole warp's calls are served together,
    // a partial warp's lane by lane.
    __device__ void* alloc(unsigned long long bytes) const;
    __device__ void free(void* p) const;
    template <class T> __device__ T* alloc_n(unsigned long long n) const {
        // A count whose bytes overflow asks for the most bytes instead: null, counted as a
        // failure, and every lane still calls alloc (the heap serves a warp's calls together).
        return static_cast<T*>(alloc(n > ~0ull / sizeof(T) ? ~0ull : n * sizeof(T)));
    }
};

// At the top of every body wrapper (codegen): a task of a cancelled job is skipped, which all
// its threads decide together (the first thread reads the word and tells the others: a shuffle,
// or shared memory and a barrier every thread of a block task reaches at its start), since
// threads that went different ways would meet at different barriers. The job fails as
// cancelled (first error wins), and the executed count account() adds for the task is taken
// back (an unsigned add of -1, before that add: a read in between is one short).
#ifdef GROSR_CANCEL
template <Gran G> __device__ bool task_cancelled(const Ctx& c) {
    bool mine = (G == GROSR_LANE || c.lane() == 0) && c.cancelled_once();
    if constexpr (G == GROSR_WARP) mine = __shfl_sync(0xffffffffu, mine, 0);
    if constexpr (G == GROSR_BLOCK) {
        __shared__ uint32_t grosr_block_task_cancelled;
        if (c.lane() == 0) grosr_block_task_cancelled = mine;
        // Every thread reads the first one's answer. Every thread of the block reaches this
        // barrier and, when tracing, the trace scope's after it (both unconditional, and the
        // answer is the same for all), so none waits at a barrier the others skipped; the word
        // is next written by the next block task, after block_collective's named barriers.
        __syncthreads();
        mine = grosr_block_task_cancelled != 0;
    }
    return mine;
}
__device__ void skip_cancelled(const Ctx& c, uint32_t kind) {
    if (c.lane() == 0) {
        // Read first (relaxed: a stale 0 only costs the CAS): after a large cancel, millions of
        // skips would otherwise serialise on the one error word's CAS in L2.
        if (ld_relaxed_gpu_u32((const uint32_t*)&c.p->jobs[c.job].error) == 0)
            fail_job(*c.p, c.job, ERR_CANCELLED, kind);
        atomicAdd((unsigned long long*)&c.p->executed[kind], ~0ull);
    }
}
#define GROSR_CANCEL_POINT(ctx, kind) \
    do { if (grosr::task_cancelled<grosr_granularity>(ctx)) { grosr::skip_cancelled(ctx, kind); return; } } while (0)
#else
#define GROSR_CANCEL_POINT(ctx, kind) do {} while (0)
#endif

template <class T> struct KindOf;   // specialised by the generated code for every task type

// Generated by codegen: per-kind tables and dispatch switches.
__device__ uint32_t kind_gran(uint32_t kind);
__device__ uint32_t kind_size(uint32_t kind);
__device__ bool dispatch_lane(Ctx& ctx, uint32_t kind, const uint32_t* words);
__device__ bool dispatch_warp(Ctx& ctx, uint32_t kind, const uint32_t* words);
__device__ bool dispatch_block(Ctx& ctx, uint32_t kind, const uint32_t* words);

// Warp-wide reductions for task bodies of warp granularity: all 32 lanes call, all get the result.
__device__ __forceinline__ float warp_max(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float warp_min(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v = fminf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

}  // namespace grosr
