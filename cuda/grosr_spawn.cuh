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
// Holds `t` in the lane's row if it is empty (true). Otherwise this task fans out, and the
// caller spawns `t` with spawn_after_held.
template <class T> __device__ bool hold_task(Ctx& c, const T& t) {
    uint32_t* row = c.ws->held[lane_id()];
    if (row[RECORD_WORDS] != NO_KIND) return false;
    memcpy(row, &t, sizeof(T));                  // only the record's bytes: the reader copies as many
    row[RECORD_WORDS] = KindOf<T>::value;
    return true;
}

// A lane task's spawn of a lane task that it cannot hold (`fans_out`: its row holds one
// already, which now goes to the stack first, like any spawn, and holding ends for this task),
// or a spawn by a lane task that no longer holds. Pass 0: the fanning-out lanes stack their held
// tasks, alone in the call; pass 1: every lane its record. One spawn_words call serves both: a
// spawn site is compiled into every inlined lane round, and a second call was a second copy of
// spawn_words (with its queue path) in each (issue 19; benches/NOTES.md, "Start-up and compile
// time"). The passes group the lanes as two calls would, so the stack's order is unchanged.
__device__ void spawn_after_held(Ctx& c, uint32_t kind, const uint32_t* words, bool fans_out) {
    const bool any_fans = __any_sync(__activemask(), fans_out);
    for (uint32_t pass = any_fans ? 0u : 1u; pass < 2; ++pass) {
        const bool held = pass == 0 && fans_out;
        // Indexed by constants only: a pointer to either record would put both in local memory.
        alignas(16) uint32_t rec[RECORD_WORDS];
        uint32_t rec_kind = kind;
        if (held) {
            uint32_t* row = c.ws->held[lane_id()];
            for (uint32_t w = 0; w < RECORD_WORDS; ++w) rec[w] = row[w];
            rec_kind = row[RECORD_WORDS];
            row[RECORD_WORDS] = NO_KIND;
            c.hold = false;
        } else {
            for (uint32_t w = 0; w < RECORD_WORDS; ++w) rec[w] = words[w];
        }
        if (pass == 1 || held) spawn_words(c, rec_kind, rec, GROSR_SPAWN_NODE(c));
    }
}

template <class T> __device__ void Ctx::spawn(const T& t) {
    static_assert(sizeof(T) <= RECORD_WORDS * 4, "grosr: record too large");
#ifdef GROSR_CANCEL
    if (cancelled_once()) return;                // a cancelled job's spawns are dropped
#endif
    GROSR_SEQ(12);
    alignas(16) uint32_t words[RECORD_WORDS] = {0};
    if constexpr (KindOf<T>::gran == GROSR_LANE) {
        if (hold && hold_task(*this, t)) return;
        memcpy(words, &t, sizeof(T));
        spawn_after_held(*this, KindOf<T>::value, words, hold);
    } else {
        memcpy(words, &t, sizeof(T));
        spawn_words(*this, KindOf<T>::value, words, GROSR_SPAWN_NODE(*this));
    }
}

template <class T> __device__ void Ctx::spawn_queued(const T& t) {
    static_assert(sizeof(T) <= RECORD_WORDS * 4, "grosr: record too large");
#ifdef GROSR_CANCEL
    if (cancelled_once()) return;                // a cancelled job's spawns are dropped
#endif
    const uint32_t mask = __activemask();
    if (p == nullptr) {                          // baseline kernels have no scheduler
        if (status) atomicCAS(status, 0, ERR_SPAWN_OUTSIDE);
        return;
    }
    alignas(16) uint32_t words[RECORD_WORDS] = {0};
    memcpy(words, &t, sizeof(T));
    const uint32_t same_job = uniform ? mask : __match_any_sync(mask, job);
    spawn_to_queue(*this, mask, same_job, KindOf<T>::value, words, GROSR_SPAWN_NODE(*this));
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
