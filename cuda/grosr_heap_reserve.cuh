// Device heap: reserving slots on the SM's current slab of a class, and the swap protocol.

namespace grosr {

// A reservation: `have` slots of slab `s` (0: none), whose slots are `cap`; `cursor` = the
// bitmap word a bump order would be at. Returned by value (registers) from the out-of-line steps.
struct HeapTake {
    uint32_t s, have, cursor, cap;
};

// Reserves up to `need` slots of slab s for class c (have 0: dry or not class c). PEEK: load the
// word first, so that a dry slab costs no atomic (without: one round trip less when it has room,
// an undo when it is dry).
template <bool PEEK = true>
__device__ __forceinline__ HeapTake heap_try_reserve(const Heap& h, uint32_t s, uint32_t c,
                                                     uint32_t need) {
    HeapTake r = {s, 0u, 0u, 0u};
    u64* wp = &h.words[s];
    if (PEEK) {
        const u64 peek = ld_relaxed_gpu_u64(wp);     // counters first: a dry slab costs no atomic
        if (word_tag(peek) != c + 1 || word_count(peek) <= 0) return r;
    }
    // acq_rel: acquire pairs with the release of the taker that tagged the slab and of the frees
    // that made room; release orders a give-back after it.
    const u64 old = atom_add_acq_rel_gpu_u64(wp, (u64)0 - ((u64)need << 32));
    const int32_t before = word_count(old);
    r.have = (word_tag(old) != c + 1 || before <= 0) ? 0u : umin((uint32_t)before, need);
    if (r.have < need) {
        const uint32_t back = need - r.have;
        const u64 o2 = atom_add_acq_rel_gpu_u64(wp, (u64)back << 32);   // acq_rel: as for a free
        heap_after_add(h, s, o2, (int32_t)back);
    }
    if (r.have) {
        r.cap = heap_cap(c, old);
        r.cursor = (r.cap - umin((uint32_t)before, r.cap)) / 32;    // where a bump order would be
    }
    return r;
}

// The current-slab entry of the calling warp: one of the SM's cur_active entries (of HEAP_CUR_PER_SM),
// entries, keyed by the warp's slot on the SM (%warpid; it may change under preemption, which
// only costs locality), so that few warps share an entry and several swaps of one SM and class
// run at once. Only a hint: any entry is correct.
__device__ __forceinline__ uint32_t heap_cur_slot(const Heap& h) {
    const uint32_t w = warp_slot();
    const uint32_t active = h.cur_active;        // a power of two, >= 1
    return (sm_id() * HEAP_CUR_PER_SM + (w & (active - 1))) % h.cur_slots;
}

// Entries that can be in use: those of SM ids below %nsmid (an upper bound of %smid), so the
// scans below skip the entries of SM slots the GPU does not have (sm_slots is a power of two).
__device__ __forceinline__ uint32_t heap_live_entries(const Heap& h) {
    return umin(h.cur_slots, sm_id_bound() * HEAP_CUR_PER_SM);
}

// While the entry is being swapped: a reservation on a roomy listed slab near the entry's pool
// hint, without taking its list bit or attaching it (the slab's word decides, as for a stale
// pointer; the slab stays listed for the swappers). At most four slabs are tried.
__device__ __forceinline__ HeapTake heap_peek_listed(const Heap& h, uint32_t c, uint32_t slot,
                                                  uint32_t need) {
    HeapTake r = {HEAP_NONE, 0u, 0u, 0u};
    if (*(volatile int32_t*)&h.ctl->roomy_count[c] <= 0) return r;   // counter first
    const uint32_t* bits = &h.partial[(u64)(HEAP_CLASSES + c) * h.pool_words];
    const uint32_t pw = h.pool_words;
    const uint32_t start = (*(volatile uint32_t*)&h.hints[slot] + pw - 4) % pw;
    uint32_t nz = 0;                             // which of the next eight words have bits
#pragma unroll
    for (uint32_t k = 0; k < 8; ++k)             // relaxed: hints, the word decides
        if (k < pw && ld_relaxed_gpu_u32(&bits[(start + k) % pw]) != 0u) nz |= 1u << k;
    for (uint32_t tries = 0; nz && tries < 4;) {
        const uint32_t wi = (start + __ffs(nz) - 1) % pw;
        nz &= nz - 1;
        for (uint32_t v = ld_relaxed_gpu_u32(&bits[wi]); v && tries < 4; v &= v - 1, ++tries) {   // relaxed: as above
            r = heap_try_reserve(h, wi * 32 + __ffs(v) - 1, c, need);
            if (r.have) return r;
        }
    }
    return r;
}

// Last resort before failing: every entry's current slab of the class (the free slots that
// current slabs hold are reachable nowhere else). Eight entries, then their eight words, loaded
// together; only a slab with room costs an atomic.
__device__ __noinline__ HeapTake heap_reserve_any_current(const Heap& h, uint32_t c, uint32_t need) {
    HeapTake r = {HEAP_NONE, 0u, 0u, 0u};
    HEAP_COUNT_SLOW(h, HEAP_SLOW_ANY_CURRENT);
    const uint32_t live = heap_live_entries(h);
    for (uint32_t j = 0; j < live; j += 8) {
        uint32_t e[8];
        u64 w[8];
#pragma unroll
        for (uint32_t k = 0; k < 8; ++k)         // relaxed: pointers to try
            e[k] = j + k < live ? ld_relaxed_gpu_u32(&h.cur[(j + k) * HEAP_CLASSES + c]) : HEAP_NONE;
#pragma unroll
        for (uint32_t k = 0; k < 8; ++k)         // relaxed: a peek, as in heap_try_reserve
            w[k] = (e[k] < h.slabs) ? ld_relaxed_gpu_u64(&h.words[e[k]]) : 0ull;
        uint32_t room = 0;
#pragma unroll
        for (uint32_t k = 0; k < 8; ++k)
            if (word_tag(w[k]) == c + 1 && word_count(w[k]) > 0) room |= 1u << k;
        for (; room; room &= room - 1) {
            uint32_t s = HEAP_NONE;
#pragma unroll
            for (uint32_t k = 0; k < 8; ++k)     // select without indexing a local array
                if (k == (uint32_t)(__ffs(room) - 1)) s = e[k];
            r = heap_try_reserve(h, s, c, need);
            if (r.have) return r;
        }
    }
    r.s = HEAP_NONE;
    return r;
}

// The pool and the lists are empty: give back every current slab (any entry, any class) that is
// wholly free, so that memory parked in the entries of classes no longer in use serves the
// others (with 8 entries per SM, and runs, the entries could otherwise hold a small heap). An
// entry is taken away from its slab by a CAS to HEAP_NONE, so exactly one of it and a swapper
// detaches the slab; the next warp of the entry acquires anew. HEAP_RECLAIM_BATCH entries and
// their words are loaded together; only a wholly free attached slab costs atomics. Returns how
// many were taken away.
__device__ __noinline__ uint32_t heap_reclaim(const Heap& h) {
    uint32_t n = 0;
    // One scan at a time; a request that finds one running fails as it would have without it.
    // acq_rel: acquire sees the previous scan's detaches; release (on unlock) passes ours on.
    if (*(volatile uint32_t*)&h.ctl->reclaim_lock != 0u ||
        atom_cas_acq_rel_gpu_b32(&h.ctl->reclaim_lock, 0u, 1u) != 0u)
        return 0;
    HEAP_COUNT_SLOW(h, HEAP_SLOW_RECLAIMS);
    const uint32_t entries = heap_live_entries(h) * HEAP_CLASSES;
    for (uint32_t j = 0; j < entries; j += HEAP_RECLAIM_BATCH) {
        uint32_t e[HEAP_RECLAIM_BATCH];
        u64 w[HEAP_RECLAIM_BATCH];
#pragma unroll
        for (uint32_t k = 0; k < HEAP_RECLAIM_BATCH; ++k)   // relaxed: pointers to try; the CAS decides
            e[k] = j + k < entries ? ld_relaxed_gpu_u32(&h.cur[j + k]) : HEAP_NONE;
#pragma unroll
        for (uint32_t k = 0; k < HEAP_RECLAIM_BATCH; ++k)   // relaxed: a peek; the retire CAS decides
            w[k] = (e[k] < h.slabs) ? ld_relaxed_gpu_u64(&h.words[e[k]]) : 0ull;
#pragma unroll
        for (uint32_t k = 0; k < HEAP_RECLAIM_BATCH; ++k) {
            const uint32_t t = word_tag(w[k]);
            if (t == 0 || t > HEAP_CLASSES || !(w[k] & HEAP_ATTACHED) ||
                word_count(w[k]) != (int32_t)heap_cap(t - 1, w[k]))
                continue;
            // acq_rel: acquire pairs with the publish of e[k]; release orders nothing but keeps
            // the CAS symmetric with the swappers'. Winning it makes us the slab's detacher.
            if (atom_cas_acq_rel_gpu_b32(&h.cur[j + k], e[k], HEAP_NONE) == e[k]) {
                heap_detach(h, e[k]);            // retired if still wholly free, else listed
                ++n;
            }
        }
    }
    st_release_gpu_u32(&h.ctl->reclaim_lock, 0u);   // release: our detaches before the unlock
    return n;
}

// The leader's part of an allocation when its current slab could not serve it. Inline: as an
// out-of-line call it costs the allocating kernel registers (ptxas_probe --alloc).
//
// Swap protocol: a warp that finds its current slab dry CASes the entry from that slab to
// HEAP_BUSY; the one that wins acquires a fresh slab (roomy list, pool, any list), publishes it
// and then detaches the dry one; the others first try a roomy listed slab without attaching it
// (heap_peek_listed), then wait (bounded) until the entry changes and reserve on the new slab.
// Only one slab per entry is acquired at a time, so the pool counter is never drained by losers
// of a race, and a failure means every list and the pool were empty.
// The busy mark names the swapper's warp slot on the SM (%warpid; the entry is this SM's). Lanes
// of one warp that call heap_alloc apart (divergent task bodies) may meet here as swapper and
// waiter: the waiter then takes a slab of its own instead of waiting, since its warp's scheduler
// need not run the swapper's lanes while it spins.
__device__ __forceinline__ HeapTake heap_reserve_slow(const Heap& h, uint32_t c, uint32_t need,
                                                   uint32_t slot) {
    uint32_t* curp = &h.cur[slot * HEAP_CLASSES + c];
    const uint32_t limit = umin(h.spin_limit, 1u << 20);
    uint32_t ns = 32, swaps = 0, peeks = 0;
    const uint32_t me = HEAP_BUSY | warp_slot();
    u64 waited_since = 0;                        // %globaltimer when this wait began (0: none)
    const u64 entered = globaltimer();
    uint32_t moves = 0;                          // neighbour entries gone on to (below)
    bool patient = false;                        // no entry left to go on with: wait it out
    HeapTake r;
    for (uint32_t t = 0; t < limit && swaps < 16; ++t) {   // bounded: spins, swaps and time
        if (globaltimer() - entered > GROSR_HEAP_SLOW_MAX_NS) {
            HEAP_COUNT_SLOW(h, HEAP_SLOW_CUT_SHORT);
            if (HEAP_SLOW_COUNTS)          // relaxed: a statistic (the last one cut short)
                atomicExch(&h.ctl->slow[HEAP_SLOW_CUT_STATE],
                           ((u64)t << 32) | (swaps << 16) | (moves << 8) | peeks);
            break;
        }
        const uint32_t s = ld_relaxed_gpu_u32(curp);  // relaxed: a pointer to try; the word decides
        // Our own warp swaps this entry (no waiting, above), or another warp's swap outlasts
        // the wait: go on with the SM's next entry in use (any entry is correct; this one is
        // local and likely has a slab) instead of taking a whole slab for this one request.
        bool move = false;
        if (s == me) {
            HEAP_COUNT_SLOW(h, HEAP_SLOW_OWN_WARP);
            move = true;
        } else if ((s & ~0xFFu) == HEAP_BUSY) {  // another warp is swapping
            if (peeks < HEAP_BUSY_PEEKS) {       // a listed slab instead of waiting
                ++peeks;
                r = heap_peek_listed(h, c, slot, need);
                if (r.have) return r;
            }
            if (GROSR_HEAP_SWAP_WAIT_NS || HEAP_SLOW_COUNTS) {
                const u64 now = globaltimer();
                if (waited_since == 0) waited_since = now;
                if (GROSR_HEAP_SWAP_WAIT_NS && !patient && now - waited_since > GROSR_HEAP_SWAP_WAIT_NS) {
                    HEAP_COUNT_SLOW(h, HEAP_SLOW_WAIT_TIMEOUTS);
                    HEAP_COUNT_WAIT(h, now - waited_since);
                    waited_since = 0;
                    move = true;
                }
            }
        }
        if (move) {
            const uint32_t active = h.cur_active;   // a power of two; the SM's entries are aligned
            if (moves + 1 < active) {
                ++moves;
                slot = (slot & ~(active - 1)) | ((slot + 1) & (active - 1));
                curp = &h.cur[slot * HEAP_CLASSES + c];
                ns = 32;
                continue;
            }
            // Every entry of the SM tried. Our own warp's swap: fall back below (we cannot wait
            // for it). Another warp's slow swap: wait for it after all (going without would
            // fail requests near out of memory, where every swap is slow).
            if (s == me) break;
            patient = true;
        }
        if ((s & ~0xFFu) == HEAP_BUSY) {
            HEAP_COUNT_SLOW(h, HEAP_SLOW_BUSY_SLEEPS);
            __nanosleep(ns);                     // wait for its slab
            ns = umin(2 * ns, 256u);       // a swap takes a few atomics: poll often
            continue;
        }
        if (waited_since) {                      // the wait is over: the swap published
            HEAP_COUNT_WAIT(h, globaltimer() - waited_since);
            waited_since = 0;
        }
        if (s != HEAP_NONE) {
            r = heap_try_reserve(h, s, c, need);
            if (r.have) return r;
        }
        // acq_rel: acquire pairs with the release that published s (so the re-check below sees
        // its word as tagged and attached); release is not needed but keeps the CAS symmetric.
        if (atom_cas_acq_rel_gpu_b32(curp, s, me) != s) continue;   // someone else swaps
        ++swaps;
        HEAP_COUNT_SLOW(h, HEAP_SLOW_SWAPS);
        if (s != HEAP_NONE) {
            const u64 w = ld_relaxed_gpu_u64(&h.words[s]);
            if (word_tag(w) == c + 1 && word_count(w) > 0) {
                st_release_gpu_u32(curp, s);         // release: as for a publish; frees made room
                continue;
            }
        }
        const uint32_t fresh = heap_acquire(h, c, slot);
        if (fresh == HEAP_NONE) {
            // Out of slabs: keep the dry slab current (frees refill it) and fall back below.
            st_release_gpu_u32(curp, s);             // release: pairs with the next swapper's CAS
            break;
        }
        // release: the fresh slab's tagged word precedes its pointer (the next swapper's acquire).
        st_release_gpu_u32(curp, fresh);
        if (s != HEAP_NONE) heap_detach(h, s);   // listed or retired if frees made room meanwhile
    }
    if (waited_since) HEAP_COUNT_WAIT(h, globaltimer() - waited_since);
    // A slab of our own for this one request (the wait or the swaps ran out), then detached: it
    // is listed and serves everyone afterwards. Failing that, the current slabs of the class,
    // then wholly free current slabs of any class given back (heap_reclaim) and one more try.
    HEAP_COUNT_SLOW(h, HEAP_SLOW_FALLBACKS);
    for (uint32_t pass = 0; pass < 2; ++pass) {
        const uint32_t s = heap_acquire(h, c, slot);
        if (s != HEAP_NONE) {
            HEAP_COUNT_SLOW(h, HEAP_SLOW_PRIVATE_SLABS);
            r = heap_try_reserve(h, s, c, need);
            heap_detach(h, s);
            if (r.have) return r;
        }
        r = heap_reserve_any_current(h, c, need);
        if (r.have || pass > 0 || heap_reclaim(h) == 0) return r;
    }
    return r;
}

// The leader's fast part of an allocation: a reservation on the entry's current slab (have 0:
// none, the swap protocol above must serve it). No peek at the slab's word first: the chain is
// one L2 round trip shorter, and a dry slab (once per cap / 32 warp reservations) costs an undo.
// Later attempts (the swap loop) always look first.
__device__ __forceinline__ HeapTake heap_reserve_fast(const Heap& h, uint32_t c, uint32_t need) {
    const uint32_t s = ld_relaxed_gpu_u32(&h.cur[heap_cur_slot(h) * HEAP_CLASSES + c]);   // relaxed: a pointer to try
    if (s < h.slabs) return heap_try_reserve<false>(h, s, c, need);
    return HeapTake{s, 0u, 0u, 0u};
}

// The leader's part of an allocation: the fast part, else the swap protocol.
__device__ __forceinline__ HeapTake heap_reserve(const Heap& h, uint32_t c, uint32_t need) {
    const HeapTake r = heap_reserve_fast(h, c, need);
    return r.have ? r : heap_reserve_slow(h, c, need, heap_cur_slot(h));
}

}  // namespace grosr
