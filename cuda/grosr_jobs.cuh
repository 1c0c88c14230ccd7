// Job accounting: a job's pending count, its errors, and its completion record for the host.

namespace grosr {

// ---- Errors ---------------------------------------------------------------------------------------
// Errors of a task (ctx.fail, unknown kind, overflow) fail its job only (fail_job). The runtime-wide
// slot in HostCtl is kept for the one error that stops everything: a stalled queue protocol.
__device__ void report_protocol_stall(const Params& p, uint32_t detail) {
    if (atomicCAS(p.dev_err, 0, ERR_PROTOCOL_STUCK) == 0) {   // the first stall is reported
        p.host->err_detail = detail;
        __threadfence_system();                 // the detail reaches the host before the code
        *(volatile int32_t*)&p.host->err_code = ERR_PROTOCOL_STUCK;
    }
}

// Marks a job failed with `code` (first failure wins); the job still completes.
__device__ void fail_job(const Params& p, uint32_t job, int32_t code, uint32_t kind) {
    if (atomicCAS(&p.jobs[job].error, 0, code) == 0) p.jobs[job].error_kind = kind;
}

// Publishes a finished job to the host. Called by the one thread whose update made pending 0.
__device__ void complete_job(const Params& p, uint32_t job) {
    GROSR_STAMP_ANY(6);
    DevJob& j = p.jobs[job];
    volatile Completion* c = &p.completions[job];
    uint32_t seq = *(volatile uint32_t*)&j.seq;
    int32_t error = *(volatile int32_t*)&j.error;
#ifdef GROSR_CANCEL
    // A cancelled job ends Cancelled even when no task of it was skipped (its tasks had all
    // started, or stopped at ctx.cancelled()), recorded here with its outcome so that it stays
    // the job's after the slot is reused. Relaxed (L2): a cancel that lands after this read
    // came as the job ended, which may report either.
    if (error == 0 && ld_relaxed_gpu_u32(&j.cancel) == seq) error = ERR_CANCELLED;
#endif
    c->error = error;
    c->error_kind = *(volatile uint32_t*)&j.error_kind;
    j.error = 0;                                 // the slot starts clean for its next job
    j.error_kind = 0;
    // Release at system scope, cumulative: everything the job's tasks wrote (ordered before us
    // by the acq_rel chain on `pending`) and the error fields above are visible to the host
    // before it sees done_seq.
    st_release_sys_u32(&c->done_seq, seq);
    GROSR_STAMP_ANY(7);
}

// ---- Cancellation (RuntimeBuilder::cancellable: GROSR_CANCEL) ---------------------------------------
// Job::cancel copies the job's seq into its slot's `cancel` word. From then on every task of the
// job that starts is skipped (GROSR_CANCEL_POINT, at the top of each body wrapper: counted as not
// executed, the job failed with ERR_CANCELLED, first error wins), its spawns are dropped, and
// ctx.cancelled() is true. A later job in the slot has another seq, so a stale cancel touches it
// not. Without GROSR_CANCEL nothing here is compiled: the module is the same as before.
#ifdef GROSR_CANCEL
__device__ __forceinline__ bool job_cancelled(const Params& p, uint32_t job) {
    // Relaxed GPU-scope loads (L2, never a stale L1 line): the host's copy lands in device memory
    // while tasks run; seeing it late only runs a few more tasks. `seq` was written by the
    // ingest before any task of the job was pushed (release), so a task sees its own job's.
    const DevJob& j = p.jobs[job];
    return ld_relaxed_gpu_u32(&j.cancel) == ld_relaxed_gpu_u32(&j.seq);
}
#endif

// Adds `delta` to a job's pending count; the update that reaches zero completes the job.
__device__ void job_add(const Params& p, uint32_t job, int32_t delta) {
    if (delta == 0) return;
    if (delta > 0) {
        // Relaxed, with no result to wait for: a rise cannot complete the job (the count is never
        // below zero), and the tasks it counts reach other warps only through release stores
        // (queue pushes) that come after it, or run on this warp, whose later updates of the
        // count follow it in coherence order.
        atomicAdd(&p.jobs[job].pending, delta);
        return;
    }
    // acq_rel: release publishes this warp's task results before the count drops; acquire lets
    // the completing thread see every other warp's results (they released before their updates).
    int32_t old = atom_add_acq_rel_gpu_s32(&p.jobs[job].pending, delta);
    if (old + delta == 0) complete_job(p, job);
}

}  // namespace grosr
