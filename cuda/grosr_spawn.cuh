// Spawning: a task's children onto the warp's stack, else a queue, and the scheduler bypass.

namespace grosr {

// ---- Spawning --------------------------------------------------------------------------------------
// Step 2 of spawn_words: the `mask` lanes' tasks go to a queue (visible to every warp), so they
// are counted first (or paid out of what this warp owes the job: the stored count already covers
// them then). `same_job`: the lanes of mask spawning for this lane's job.
__device__ void spawn_to_queue(Ctx& c, uint32_t mask, uint32_t same_job, uint32_t kind,
                                                  const uint32_t* words, uint32_t node) {
    const Params& p = *c.p;
    WarpState* ws = c.ws;
    const bool job_leader = lane_id() == (uint32_t)(__ffs(same_job) - 1);
    if (job_leader && !(c.uniform && pay_from_owed(ws, c.job, (int32_t)__popc(same_job))))
        atomicAdd(&p.jobs[c.job].pending, (int32_t)__popc(same_job));
    // The count precedes the publishing lanes' release stores (warp barrier, then release).
    __syncwarp(mask);
    push_counted(p, spawn_queue(p, ws, mask), mask, kind, c.job, node, words);
}

__device__ void spawn_words(Ctx& c, uint32_t kind, const uint32_t* words, uint32_t node = 0) {
    const uint32_t mask = __activemask();
    if (c.p == nullptr) {                        // baseline kernels have no scheduler
        if (c.status) atomicCAS(c.status, 0, ERR_SPAWN_OUTSIDE);
        return;
    }
    const Params& p = *c.p;
    const uint32_t lane = lane_id(), leader = __ffs(mask) - 1, k = __popc(mask);
    const uint32_t rank = __popc(mask & lanemask_lt());
    WarpState* ws = c.ws;
    GROSR_SEQ(7);
    // 1. The warp's own stack: the child runs next on this warp, with no global traffic at all.
    uint32_t base = STACK_CAP;
    if (lane == leader) {
        uint32_t b = atomicAdd(&ws->top, k);     // shared atomic: divergent groups may race here
        if (b + k <= STACK_CAP) base = b; else atomicSub(&ws->top, k);
    }
    base = __shfl_sync(mask, base, leader);
    // Lanes of different jobs (a mixed lane round) count per job; one atomic per job per call.
    // A uniform round's lanes share one job: no match instruction then.
    const uint32_t same_job = c.uniform ? mask : __match_any_sync(mask, c.job);
    const bool job_leader = lane == (uint32_t)(__ffs(same_job) - 1);
    if (base != STACK_CAP) {
        StackEntry& e = ws->stack[base + rank];
        e.kind = kind;
        e.job = c.job;
        e.node = node;
        for (uint32_t w = 0; w < RECORD_WORDS; ++w) e.words[w] = words[w];
        if (c.uniform) {
            // The stack is private, so the child cannot finish before this round's account()
            // adds `deferred`: counting can wait, and a chain of spawns costs no atomics.
            if (lane == leader) atomicAdd(&ws->deferred, (int32_t)k);
        } else if (job_leader) {
            atomicAdd(&p.jobs[c.job].pending, (int32_t)__popc(same_job));
        }
        GROSR_SEQ(8);
        return;
    }
    // 2. The SM's queue (or any other).
    spawn_to_queue(c, mask, same_job, kind, words, node);
}

// Scheduler bypass: a lane task's first spawn of a lane task is held in the lane's row of
// ws->held instead of being stacked; as soon as its parent returns, the same lane runs it
// (the generated dispatch's take_held loop for its own kind, else run_held), uncounted (the
// parent's count passes to it). A second spawn sends the held task to the stack like any spawn,
// so tasks that fan out keep their breadth and only chains take the bypass.
// Holds `t` in the lane's row if it is empty (true); else this task fans out: the held task goes
// to the stack like any spawn, holding ends for this task, and the caller spawns `t` (false).
template <class T> __device__ bool hold_task(Ctx& c, const T& t) {
    uint32_t* row = c.ws->held[lane_id()];
    if (row[RECORD_WORDS] == NO_KIND) {
        memcpy(row, &t, sizeof(T));              // only the record's bytes: the reader copies as many
        row[RECORD_WORDS] = KindOf<T>::value;
        return true;
    }
    c.hold = false;
    alignas(16) uint32_t held[RECORD_WORDS];
    for (uint32_t w = 0; w < RECORD_WORDS; ++w) held[w] = row[w];
    const uint32_t held_kind = row[RECORD_WORDS];
    row[RECORD_WORDS] = NO_KIND;
    spawn_words(c, held_kind, held);
    return false;
}

template <class T> __device__ void Ctx::spawn(const T& t) {
    static_assert(sizeof(T) <= RECORD_WORDS * 4, "grosr: record too large");
    GROSR_SEQ(12);
    if (KindOf<T>::gran == GROSR_LANE && hold && hold_task(*this, t)) return;
    alignas(16) uint32_t words[RECORD_WORDS] = {0};
    memcpy(words, &t, sizeof(T));
    spawn_words(*this, KindOf<T>::value, words);
}

template <class T> __device__ void Ctx::spawn_queued(const T& t) {
    static_assert(sizeof(T) <= RECORD_WORDS * 4, "grosr: record too large");
    const uint32_t mask = __activemask();
    if (p == nullptr) {                          // baseline kernels have no scheduler
        if (status) atomicCAS(status, 0, ERR_SPAWN_OUTSIDE);
        return;
    }
    alignas(16) uint32_t words[RECORD_WORDS] = {0};
    memcpy(words, &t, sizeof(T));
    const uint32_t same_job = uniform ? mask : __match_any_sync(mask, job);
    spawn_to_queue(*this, mask, same_job, KindOf<T>::value, words, 0u);
}

// The generated lane dispatch runs a held task of its own kind in a tight loop (take_held), so
// a chain of one task type costs a body and a small copy per hop; run_held takes what is left.
// Takes the lane's held task into `t` if it is of kind `kind` and the lane has hops left
// (`hops` counts the loop's takes).
template <class T> __device__ bool take_held(Ctx& c, uint32_t kind, T& t, uint32_t& hops) {
    if (!c.hold || c.hops_left == 0) return false;
    uint32_t* row = c.ws->held[lane_id()];
    if (row[RECORD_WORDS] != kind) return false;
    memcpy(&t, row, sizeof(T));
    row[RECORD_WORDS] = NO_KIND;                 // the body may hold its own child here now
    --c.hops_left;
    ++hops;
    return true;
}
// Counts the executions of a take_held loop (the dispatched task itself is counted by account()).
__device__ __forceinline__ void count_held(const Ctx& c, uint32_t kind, uint32_t hops) {
    if (hops) atomicAdd((unsigned long long*)&c.p->executed[kind], (unsigned long long)hops);
}

}  // namespace grosr
