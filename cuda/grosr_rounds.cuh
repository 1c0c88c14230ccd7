// Rounds: a warp runs lane tasks 32 at a time, warp tasks one by one, and accounts for them.

namespace grosr {

// ---- Rounds: running tasks and accounting for them -----------------------------------------------
// Every lane calls account(); `has` lanes executed a task of `kind` for `job` this round.
__device__ void account(const Params& p, WarpState* ws, bool has, uint32_t kind, uint32_t job,
                        bool uniform) {
    const uint32_t lane = lane_id();
    __syncwarp();                                // bodies' spawns (ws->deferred) are complete
    GROSR_SEQ(11);
    const uint32_t done = __ballot_sync(0xffffffffu, has);
    if (done == 0) return;
    // Lanes of one kind (the usual round) need no match instruction.
    const uint32_t kind0 = __shfl_sync(0xffffffffu, kind, __ffs(done) - 1);
    const uint32_t same_kind = __all_sync(0xffffffffu, !has || kind == kind0)
                                   ? done : __match_any_sync(0xffffffffu, has ? kind : NO_KIND);
    if (has && kind < p.num_kinds && lane == (uint32_t)(__ffs(same_kind) - 1))
        atomicAdd((unsigned long long*)&p.executed[kind], (unsigned long long)__popc(same_kind));
    if (uniform) {
        const int32_t delta = ws->deferred - (int32_t)__popc(done);
        __syncwarp();
        // A round that spawned as many tasks (onto this warp's stack) as it ran changes no count:
        // a chain of spawns costs no fence and no atomic per hop.
        // No fence needed: the __syncwarp above orders every lane's results before the leader's
        // atom.acq_rel, whose release is cumulative over them.
        if (lane == (uint32_t)(__ffs(done) - 1)) {
            if (ws->owe_ok) {
                // Owe the round's net decrements (see settle_owed); another job's debt is paid
                // first. More children than debt: the excess is counted now.
                if (ws->owed != 0 && ws->owed_job != job) job_add(p, ws->owed_job, -ws->owed);
                const int32_t owed = (ws->owed_job == job ? ws->owed : 0) - delta;
                ws->owed_job = job;
                ws->owed = owed < 0 ? 0 : owed;
                if (owed < 0) job_add(p, job, -owed);
            } else if (delta != 0) {
                job_add(p, job, delta);
            }
        }
        if (lane == 0) ws->deferred = 0;
    } else {
        // As above: the __syncwarp at the top of account() orders the lanes' results first.
        const uint32_t same_job = __match_any_sync(0xffffffffu, has ? job : NO_KIND);
        if (has && lane == (uint32_t)(__ffs(same_job) - 1)) job_add(p, job, -(int32_t)__popc(same_job));
    }
    __syncwarp();
}

// Runs, on this lane, what the generated dispatch's own loop left held: a task of another kind,
// or one past the lane's hops (ws->bypass_hops a round, shared by both loops), which is stacked
// like any spawn. Held tasks are never counted: each takes over its parent's count, which
// account() settles once for the lane. Their executions are counted as they run.
__device__ void run_held(const Params& p, WarpState* ws, Ctx& c) {
    uint32_t* row = ws->held[lane_id()];
    while (row[RECORD_WORDS] != NO_KIND) {
        const uint32_t kind = row[RECORD_WORDS];
        row[RECORD_WORDS] = NO_KIND;
        if (c.hops_left == 0) {
            alignas(16) uint32_t words[RECORD_WORDS];
            for (uint32_t w = 0; w < RECORD_WORDS; ++w) words[w] = row[w];
            c.hold = false;
            spawn_words(c, kind, words, GROSR_SPAWN_NODE(c));
            return;
        }
        atomicAdd((unsigned long long*)&p.executed[kind], 1ull);
        Ctx h{&p, ws, c.job, kind, GROSR_LANE, c.uniform, nullptr, 0u, true, c.hops_left - 1};
#ifdef GROSR_TRACE_TASKS
        h.trace_origin = c.trace_id;             // held by the lane's last task
#endif
#ifdef GROSR_CANCEL
        h.cancel_seen = c.cancel_seen;           // the same job: what the chain saw holds
#endif
        // Straight from the row: the dispatch copies the record out before the body runs (and
        // may hold its own child in the row). Held only if its kind is a known lane kind.
        dispatch_lane(h, kind, row);
        c.hops_left = h.hops_left;
#ifdef GROSR_TRACE_TASKS
        c.trace_id = h.trace_id;                 // what it holds next (or spills) is its child
#endif
    }
}

__device__ void run_lane_round(const Params& p, WarpState* ws, bool has, uint32_t kind,
                                                  uint32_t job, uint32_t node, const uint32_t* words) {
    const uint32_t first = __ffs(__ballot_sync(0xffffffffu, has)) - 1;
    const uint32_t job0 = __shfl_sync(0xffffffffu, job, first & 31);
    const bool uniform = __all_sync(0xffffffffu, !has || job == job0);
    const uint32_t graph_lanes = __ballot_sync(0xffffffffu, has && GROSR_GRAPH_TAG(node));
    GROSR_SEQ(1);
    // Not needed for ordering (the votes above converged the warp), but without it ptxas
    // schedules the scheduler loop differently (see KIND_NOP); the difference is unmeasured.
    __syncwarp();
    if (has) {
        Ctx c{&p, ws, job, kind, GROSR_LANE, uniform, nullptr, GROSR_GRAPH_TAG(node), BYPASS_HOPS > 0, ws->bypass_hops};
        GROSR_TRACE_FROM(c, node);
        if (!dispatch_lane(c, kind, words)) {
            fail_job(p, job, ERR_UNKNOWN_KIND, kind);
        }
        GROSR_STAMP(5);
        GROSR_SEQ(2);
        // A lane task is one thread: its own writes precede, in program order, the release
        // fence that release_lane_successors puts before its decrements.
        if (GROSR_GRAPH_TAG(node)) release_lane_successors(c, graph_lanes);
        run_held(p, ws, c);
        GROSR_SEQ(3);
    }
    account(p, ws, has, kind, job, uniform);
    GROSR_SEQ(4);
}

// The lane round for a large graph's roots (a round per 32 roots, once per launch): out of line,
// so run_graph_range and run_graph_unit share one copy of the lane bodies instead of inlining
// one each (issue 19). The rounds of chains, spawns, ranges and lone tasks stay inline: out of
// line they cost speed (benches/NOTES.md, "Start-up and compile time").
__device__ __noinline__ void run_lane_round_outlined(const Params& p, WarpState* ws, bool has, uint32_t kind,
                                                     uint32_t job, uint32_t node, const uint32_t* words) {
    run_lane_round(p, ws, has, kind, job, node, words);
}

// Runs a warp task; if it stacked exactly one warp task (a chain's next hop), pops and runs that
// one right away, up to ws->bypass_hops times: the hop skips the take_work/process round trip.
// The popped task was counted when stacked, exactly as if take_work had popped it.
__device__ __noinline__ void run_warp_task(const Params& p, WarpState* ws, uint32_t kind, uint32_t job,
                              uint32_t node, const uint32_t* words) {
    alignas(16) uint32_t cur[RECORD_WORDS];
    for (uint32_t w = 0; w < RECORD_WORDS; ++w) cur[w] = words[w];
    for (uint32_t hops = 1;; ++hops) {
        const uint32_t top = ws->top;            // only this task pushes to the stack meanwhile
        Ctx c{&p, ws, job, kind, GROSR_WARP, true, nullptr, GROSR_GRAPH_TAG(node)};
        GROSR_TRACE_FROM(c, node);
        if (!dispatch_warp(c, kind, cur) && lane_id() == 0) {
            fail_job(p, job, ERR_UNKNOWN_KIND, kind);
        }
        if (GROSR_GRAPH_TAG(node)) {
            // Every lane's writes precede every lane's decrements (each release is cumulative over
            // what the warp barrier ordered before it).
            __syncwarp();
            release_successors(c);
        }
        account(p, ws, lane_id() == 0, kind, job, true);   // ends with a warp barrier
        if (hops >= ws->bypass_hops || ws->top != top + 1) return;
        const StackEntry& e = ws->stack[top];
        if (kind_gran(e.kind) != GROSR_WARP) return;
        kind = e.kind; job = e.job; node = e.node;
        for (uint32_t w = 0; w < RECORD_WORDS; ++w) cur[w] = e.words[w];
        __syncwarp();                            // every lane has read the entry
        if (lane_id() == 0) ws->top = top;
        __syncwarp();
    }
}

}  // namespace grosr
