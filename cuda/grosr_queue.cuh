// The SM queues: one bounded MPMC ring of slots per SM.

namespace grosr {

// ---- Queues: one bounded MPMC ring per SM ----------------------------------------------------------
// Pushers reserve capacity (size), then indices (tail); poppers claim items (count), then indices
// (head). One atomic per warp per operation, never a CAS retry loop. Each slot's seq says whose
// turn it is, so a claimed index waits (boundedly) only for a partner that is mid-write.

__device__ __forceinline__ Slot* slot_at(const Params& p, uint32_t q, uint32_t i) {
    return &p.slots[(uint64_t)q * p.queue_cap + (i & (p.queue_cap - 1))];
}

// A task into a slot the caller owns (its seq read the slot's index), and one out of a slot the
// caller claimed (its seq read index + 1). The callers publish with the seq.
__device__ __forceinline__ void write_slot(Slot* s, uint32_t kind, uint32_t job, uint32_t node,
                                           const uint32_t* words) {
    s->kind = kind;
    s->job = job;
    s->node = node;
    uint4* dst = reinterpret_cast<uint4*>(s->words);
    const uint4* src = reinterpret_cast<const uint4*>(words);
    dst[0] = src[0]; dst[1] = src[1]; dst[2] = src[2];
}
__device__ __forceinline__ void read_slot(const Slot* s, uint32_t& kind, uint32_t& job,
                                          uint32_t& node, uint32_t* words) {
    kind = s->kind;
    job = s->job;
    node = s->node;
    const uint4* src = reinterpret_cast<const uint4*>(s->words);
    uint4* dst = reinterpret_cast<uint4*>(words);
    dst[0] = src[0]; dst[1] = src[1]; dst[2] = src[2];
}

// Waits until *seq == want. Bounded: a partner mid-write finishes in nanoseconds; if it never does,
// the protocol is broken and we report instead of hanging.
__device__ bool wait_seq(const Params& p, volatile uint32_t* seq, uint32_t want) {
    for (uint32_t n = 0; n < p.spin_limit; ++n) {
        if (ld_acquire_gpu_u32(seq) == want) return true;   // acquire: the slot's contents are ready
        if (n > 64) __nanosleep(64);
    }
    report_protocol_stall(p, want);
    return false;
}

// Pushes one slot per lane of `mask` (the calling, converged lanes) into queue q.
// Returns false (for all lanes) if q has no room for all of them.
__device__ bool push_to(const Params& p, uint32_t q, uint32_t mask, uint32_t kind, uint32_t job,
                        uint32_t node, const uint32_t* words) {
    const uint32_t lane = lane_id(), leader = __ffs(mask) - 1, k = __popc(mask);
    const uint32_t rank = __popc(mask & lanemask_lt());
    Queue& Q = p.queues[q];
    uint32_t base = 0;
    bool ok = true;
#ifdef GROSR_TRACE
    const unsigned long long traced = globaltimer();
#endif
    GROSR_SEQ(9);
    if (lane == leader) {
        // Relaxed is enough for size: it only bounds occupancy; slot seqs carry the data ordering.
        uint32_t s = atomicAdd(&Q.size.value, k);
        if (s + k > p.queue_cap) {
            atomicSub(&Q.size.value, k);
            ok = false;
        } else {
            base = atomicAdd(&Q.tail.value, k);
        }
    }
    ok = __shfl_sync(mask, ok, leader);
    if (!ok) return false;
    base = __shfl_sync(mask, base, leader);
    const uint32_t i = base + rank;
    Slot* s = slot_at(p, q, i);
    if (wait_seq(p, &s->seq, i)) {               // the previous lap's popper has released it
        write_slot(s, kind, job, node, words);
        // release: the record and header above become visible before the slot reads as full.
        st_release_gpu_u32(&s->seq, i + 1);
    }
    __syncwarp(mask);
    // Relaxed: count only lets poppers claim; they still wait for each slot's seq (acquire).
    if (lane == leader) atomicAdd((int32_t*)&Q.count.value, (int32_t)k);
#ifdef GROSR_TRACE
    if (lane == leader) { grosr_warp_add(GROSR_WT_PUSHES, 1); grosr_warp_add(GROSR_WT_PUSH_NS, globaltimer() - traced); }
#endif
    GROSR_SEQ(10);
    return true;
}

// Pops up to `want` (<= 32) slots from queue q into lanes 0..got-1; returns got. All 32 lanes
// call it.
__device__ uint32_t pop_from(const Params& p, uint32_t q, uint32_t want, uint32_t& kind,
                             uint32_t& job, uint32_t& node, uint32_t* words) {
    const uint32_t lane = lane_id();
    Queue& Q = p.queues[q];
    uint32_t got = 0, base = 0;
    const int32_t seen = lane == 0 ? *(volatile int32_t*)&Q.count.value : 0;
    if (lane == 0 && seen > 0) {
        int32_t old = atomicSub((int32_t*)&Q.count.value, (int32_t)want);
        got = old <= 0 ? 0u : (old >= (int32_t)want ? want : (uint32_t)old);
        if (got < want) atomicAdd((int32_t*)&Q.count.value, (int32_t)(want - got));  // undo excess
        if (got) base = atomicAdd(&Q.head.value, got);
    }
    got = __shfl_sync(0xffffffffu, got, 0);
    if (got == 0) return 0;
    base = __shfl_sync(0xffffffffu, base, 0);
    if (lane < got) {
        const uint32_t i = base + lane;
        Slot* s = slot_at(p, q, i);
        if (wait_seq(p, &s->seq, i + 1)) {       // the pusher has finished writing index i
            read_slot(s, kind, job, node, words);
            // release: our reads of the slot complete before a next-lap pusher may overwrite it.
            st_release_gpu_u32(&s->seq, i + p.queue_cap);
        } else {
            kind = NO_KIND;                       // the stall is reported already
        }
    }
    __syncwarp();                                // every lane has freed its slot before the room returns
    if (lane == 0) atomicSub(&Q.size.value, got);  // relaxed: capacity bookkeeping only
    __syncwarp();
    return umin(got, WARP);                      // at most a round (got <= want <= WARP)
}

// Pushes into q, else into the other queues in turn. Accounting is the caller's business.
__device__ bool push_any(const Params& p, uint32_t q, uint32_t mask, uint32_t kind, uint32_t job,
                         uint32_t node, const uint32_t* words) {
    for (uint32_t t = 0; t < p.num_queues; ++t) {
        if (push_to(p, (q + t) % p.num_queues, mask, kind, job, node, words)) return true;
    }
    return false;
}

__device__ __forceinline__ uint32_t home_queue(const Params& p) { return sm_id() % p.num_queues; }

// Whether this block ingests the high-priority ring: with HIGH_RING_FROM rings or more the last
// is kept for Priority::High jobs (grosr/src/runtime/rings.rs), and ring r is block r's.
__device__ __forceinline__ bool is_high_ring_block(const Params& p) {
    return p.num_rings >= HIGH_RING_FROM && blockIdx.x == p.num_rings - 1;
}

// The queue for a warp's next queued spawns (the calling lanes, `mask`): each call goes one
// queue further round from the SM's own, so a burst of children lands on every SM at once
// instead of waiting on one SM's queue to be found by thieves.
__device__ uint32_t spawn_queue(const Params& p, WarpState* ws, uint32_t mask) {
    const uint32_t home = home_queue(p);
    if (ws == nullptr) return home;
    const uint32_t leader = __ffs(mask) - 1;
    uint32_t k = 0;
    if (lane_id() == leader) k = atomicAdd(&ws->spread, 1u);   // shared: divergent groups may race
    return (home + __shfl_sync(mask, k, leader)) % p.num_queues;
}

// Pushes already-counted tasks (one per lane of `mask`) to the SM's queue, else any queue. If
// every queue is full each task is dropped, but never silently: its job fails with
// ERR_QUEUE_OVERFLOW and the task is uncounted, so the job still completes.
__device__ void push_counted(const Params& p, uint32_t q, uint32_t mask, uint32_t kind, uint32_t job,
                             uint32_t node, const uint32_t* words) {
    if (!push_any(p, q, mask, kind, job, node, words)) {
        fail_job(p, job, ERR_QUEUE_OVERFLOW, kind);
        job_add(p, job, -1);
    }
}

}  // namespace grosr
