// Device heap: a slab's life cycle (pool, class, lists) and taking a fresh slab for a class.

namespace grosr {

// ---- Slab life cycle ------------------------------------------------------------------------------
// A detached slab of class c that has become wholly free goes back to the pool. The CAS succeeds
// only on exactly (all slots free, tag c, detached): no reservation, attachment or transient undo
// can be in flight. Whoever's add makes the count full again retries (after_add / detach).
// A run head (`run`) goes back with its whole run: inner tags cleared, then the pool bits.
__device__ void heap_try_retire(const Heap& h, uint32_t s, uint32_t c, u64 run) {
    const u64 full = ((u64)heap_cap(c, run) << 32) | run | (u64)(c + 1);
    // acq_rel: acquire makes every free of the slab (and so the data accesses before it) precede
    // the hand-over; release passes that on to whoever takes the slab from the pool.
    if (atom_cas_acq_rel_gpu_b64(&h.words[s], full, 0ull) != full) return;
    // Unlist it (keeps the lists short for the swappers; a bit set again by a late mark is stale
    // and dropped by its taker). Relaxed: the lists are hints.
    for (uint32_t list = c; list < 2 * HEAP_CLASSES; list += HEAP_CLASSES) {
        uint32_t* word = &h.partial[(u64)list * h.pool_words + (s >> 5)];
        const uint32_t bit = 1u << (s & 31);
        if ((ld_relaxed_gpu_u32(word) & bit) && (atomicAnd(word, ~bit) & bit))
            atomicSub(list < HEAP_CLASSES ? &h.ctl->partial_count[c] : &h.ctl->roomy_count[c], 1);
    }
    const uint32_t n = run ? heap_run_len(c) : 1u;
    // Relaxed (an and, not a store: a stale reserver's transient count stays intact): the pool
    // bits' release below orders these before the slabs can be taken again.
    for (uint32_t i = 1; i < n; ++i) atomicAnd(&h.words[s + i], ~HEAP_TAG_MASK);
    // release: the words are clean before the pool bits say the slabs can be taken. A run is
    // aligned inside one pool word, so one atomic puts it all back.
    atom_or_release_gpu_b32(&h.pool[s >> 5], (n == 32 ? 0xFFFFFFFFu : ((1u << n) - 1)) << (s & 31));
    // release: the pool bits are set before the counter says slabs can be found.
    red_add_release_gpu_s32(&h.ctl->free_slabs, (int32_t)n);
    GROSR_TRACE_HEAP_POOL(&h.ctl->free_slabs);
}

// Lists a detached slab of class c with free slots, so that any SM can attach it again: in the
// class's roomy list (at least a quarter of its slots free) or its low list (some free).
__device__ void heap_mark_listed(const Heap& h, uint32_t s, uint32_t c, bool roomy) {
    const uint32_t bit = 1u << (s & 31), list = roomy ? HEAP_CLASSES + c : c;
    int32_t* cnt = roomy ? &h.ctl->roomy_count[c] : &h.ctl->partial_count[c];
    // Relaxed: the lists are hints; the slab's word is re-checked by CAS when the bit is taken.
    if (!(atomicOr(&h.partial[(u64)list * h.pool_words + (s >> 5)], bit) & bit))
        atomicAdd(cnt, 1);                       // relaxed: a count of set bits (a lower bound)
}

__device__ __forceinline__ int32_t heap_roomy(uint32_t cap) {
    return (int32_t)(cap / 4);                   // slots >= 8, so at least 2
}

// Called after every add of `delta` free slots to slab s (a free, or a reservation given back)
// that returned `old`. Invariants kept: a detached class slab that is wholly free is retired; one
// that goes from no free slot to some is listed (low), one that reaches a quarter free is listed
// roomy.
__device__ void heap_after_add(const Heap& h, uint32_t s, u64 old, int32_t delta) {
    const uint32_t t = word_tag(old);
    if (t == 0 || t > HEAP_CLASSES || (old & HEAP_ATTACHED)) return;
    const uint32_t c = t - 1, cap = heap_cap(c, old);
    const int32_t before = word_count(old), after = before + delta, roomy = heap_roomy(cap);
    if (after == (int32_t)cap) heap_try_retire(h, s, c, old & HEAP_RUN);
    else if (before < roomy && after >= roomy) heap_mark_listed(h, s, c, true);
    else if (before <= 0 && after > 0) heap_mark_listed(h, s, c, false);
}

// Ends a slab's time as some SM's current slab: retire it if wholly free, list it if it has room.
// One atomic on the word, so a concurrent free sees either "attached" (and leaves the decision to
// us) or "detached" (and decides itself from its own result): never neither.
__device__ void heap_detach(const Heap& h, uint32_t s) {
    // acq_rel: orders the detach with the frees and reservations on the same word.
    const u64 old = atom_and_acq_rel_gpu_b64(&h.words[s], ~HEAP_ATTACHED);
    const uint32_t t = word_tag(old);
    if (t == 0 || t > HEAP_CLASSES) return;
    const uint32_t c = t - 1, cap = heap_cap(c, old);
    const int32_t n = word_count(old);
    if (n == (int32_t)cap) heap_try_retire(h, s, c, old & HEAP_RUN);
    else if (n > 0) heap_mark_listed(h, s, c, n >= heap_roomy(cap));
}

// Takes one slab from the pool; HEAP_NONE if the pool is empty. The counter is reserved first,
// so an empty pool costs one load, and a reserved slab is certain to exist.
__device__ uint32_t heap_take_pool(const Heap& h, uint32_t slot) {
    int32_t* fs = &h.ctl->free_slabs;
    if (*(volatile int32_t*)fs <= 0) return HEAP_NONE;
    if (atomicSub(fs, 1) <= 0) {                 // relaxed: a count; the pool bits carry the order
        atomicAdd(fs, 1);                        // relaxed: as above
        return HEAP_NONE;
    }
    volatile uint32_t* hint = &h.hints[slot];
    const uint32_t start = *hint % h.pool_words;
    // Bounded: two passes. A reserved slab's bit is there unless a large search holds it for an
    // instant; if we still miss it, the reservation goes back and this allocation fails.
    for (uint32_t i = 0; i < 2 * h.pool_words; ++i) {
        const uint32_t wi = (start + i) % h.pool_words;
        uint32_t v = ld_relaxed_gpu_u32(&h.pool[wi]);
        while (v) {
            const uint32_t b = __ffs(v) - 1;
            v &= v - 1;
            // acquire: pairs with the retiring release: the slab's word and bitmap are clean.
            if (atom_and_acquire_gpu_b32(&h.pool[wi], ~(1u << b)) & (1u << b)) {
                *hint = wi;
                GROSR_TRACE_HEAP_POOL(fs);
                return wi * 32 + b;
            }
        }
    }
    atomicAdd(fs, 1);                            // relaxed: a count, as above
    return HEAP_NONE;
}

// Takes an aligned run of n slabs (a power of two, 2..32) from the pool, looking at no more than
// HEAP_RUN_SCAN pool words from the entry's hint; HEAP_NONE if none (the caller takes a single
// slab instead). The counter is reserved first, as for one slab. Alignment keeps a run inside one
// pool word: one atomic claims it, one gives it back, and a freer finds the head by masking.
__device__ uint32_t heap_take_pool_run(const Heap& h, uint32_t slot, uint32_t n) {
    int32_t* fs = &h.ctl->free_slabs;
    if (*(volatile int32_t*)fs < (int32_t)umax(n, h.slabs / HEAP_RUN_POOL_FRACTION)) return HEAP_NONE;
    if (atomicSub(fs, (int32_t)n) < (int32_t)n) {   // relaxed: a count; the pool bits carry the order
        atomicAdd(fs, (int32_t)n);               // relaxed: as above
        return HEAP_NONE;
    }
    const uint32_t group = n == 32 ? 0xFFFFFFFFu : (1u << n) - 1;
    uint32_t align = 0;                          // bit i set for i a multiple of n
    for (uint32_t i = 0; i < 32; i += n) align |= 1u << i;
    volatile uint32_t* hint = &h.hints[slot];
    const uint32_t start = *hint % h.pool_words;
    const uint32_t words = umin(HEAP_RUN_SCAN, h.pool_words);
    for (uint32_t i = 0; i < words; ++i) {
        const uint32_t wi = (start + i) % h.pool_words;
        uint32_t m = ld_relaxed_gpu_u32(&h.pool[wi]);   // relaxed: a hint; the claim below decides
        for (uint32_t k = 1; k < n; k <<= 1) m &= m >> k;   // bit i: bits i .. i+n-1 all set
        m &= align;
        while (m) {
            const uint32_t b = __ffs(m) - 1;
            m &= m - 1;
            // acquire: pairs with the retiring release: the slabs' words and bitmaps are clean.
            const uint32_t old = atom_and_acquire_gpu_b32(&h.pool[wi], ~(group << b));
            if ((old & (group << b)) == (group << b)) {
                *hint = wi;
                GROSR_TRACE_HEAP_POOL(fs);
                return wi * 32 + b;
            }
            // release: put back the bits we took (keeps the chain from their retirer intact).
            if (old & (group << b)) atom_or_release_gpu_b32(&h.pool[wi], old & (group << b));
        }
    }
    atomicAdd(fs, (int32_t)n);                   // relaxed: a count, as above
    return HEAP_NONE;
}

// Attaches a listed slab if it is still detached, of class c and not full.
__device__ bool heap_attach_partial(const Heap& h, uint32_t s, uint32_t c) {
    u64 w = ld_relaxed_gpu_u64(&h.words[s]);
    for (uint32_t n = 0; n < 64; ++n) {          // bounded: frees may keep changing the count
        if (word_tag(w) != c + 1 || (w & HEAP_ATTACHED) || word_count(w) <= 0) return false;
        // acq_rel: a successful attach is ordered with the frees that made room.
        const u64 seen = atom_cas_acq_rel_gpu_b64(&h.words[s], w, w | HEAP_ATTACHED);
        if (seen == w) return true;
        w = seen;
    }
    heap_mark_listed(h, s, c, false);            // gave up: keep it listed for someone else
    return false;
}

// Takes a listed slab of class c from list `list` (c: low, HEAP_CLASSES + c: roomy), looking at
// no more than `words` bitmap words from `start`, eight loads in flight at a time (out of line:
// four call sites); the counter
// says "none" without a search. Stale bits (slab retired, reclassed, attached or full) are
// dropped on the way.
__device__ __noinline__ uint32_t heap_take_listed(const Heap& h, uint32_t list, int32_t* cnt,
                                                  uint32_t c, uint32_t start, uint32_t words) {
    uint32_t* bits = &h.partial[(u64)list * h.pool_words];
    words = umin(words, h.pool_words);
    for (uint32_t i = 0; i < words && *(volatile int32_t*)cnt > 0; i += 8) {
        uint32_t nz = 0;                         // which of the next eight words have bits
#pragma unroll
        for (uint32_t k = 0; k < 8; ++k)         // relaxed: hints, re-checked below
            if (i + k < words && ld_relaxed_gpu_u32(&bits[(start + i + k) % h.pool_words]) != 0u)
                nz |= 1u << k;
        while (nz) {
            const uint32_t wi = (start + i + __ffs(nz) - 1) % h.pool_words;
            nz &= nz - 1;
            uint32_t v = ld_relaxed_gpu_u32(&bits[wi]);   // relaxed: as above
            while (v) {
                const uint32_t b = __ffs(v) - 1;
                v &= v - 1;
                // Relaxed: the list is a hint; the attach CAS on the slab's word orders what matters.
                if (!(atomicAnd(&bits[wi], ~(1u << b)) & (1u << b))) continue;   // another took it
                atomicSub(cnt, 1);               // relaxed: a count of set bits
                if (heap_attach_partial(h, wi * 32 + b, c)) return wi * 32 + b;
            }
        }
    }
    return HEAP_NONE;
}

// A new slab for class c, attached to the caller: a roomy listed slab near where this SM works
// (reuse before growth), else a pool run (classes with runs), else a pool slab, else any listed
// slab of the class (the pool is empty: every free slot must stay reachable). HEAP_NONE only
// when all of them are empty.
__device__ __noinline__ uint32_t heap_acquire(const Heap& h, uint32_t c, uint32_t slot) {
    int32_t* roomy = &h.ctl->roomy_count[c];
    // Near (and a little behind) where this entry last took pool slabs: likely its own old slabs.
    const uint32_t start = (*(volatile uint32_t*)&h.hints[slot] + h.pool_words - 4) % h.pool_words;
    uint32_t s = heap_take_listed(h, HEAP_CLASSES + c, roomy, c, start, 8);
    if (s != HEAP_NONE) return s;
    const uint32_t n = heap_run_len(c);
    if (n > 1) {
        s = heap_take_pool_run(h, slot, n);
        if (s != HEAP_NONE) {
            // Relaxed adds (not stores: stale reservers' transient counts stay intact); the head's
            // release below publishes them with it, before any block of the run is handed out.
            for (uint32_t i = 1; i < n; ++i) atomicAdd(&h.words[s + i], (u64)(HEAP_TAG_INNER + c));
            // acq_rel: as for a single slab below.
            atom_add_acq_rel_gpu_u64(&h.words[s], ((u64)(heap_slots(c) * n) << 32) | (u64)(c + 1) |
                                                  HEAP_ATTACHED | HEAP_RUN);
            return s;
        }
    }
    s = heap_take_pool(h, slot);
    if (s != HEAP_NONE) {
        // The taker owns a pool slab alone: its word is 0 but for transient reservations that
        // will be undone, so an add sets count, tag and attachment at once. acq_rel: release
        // publishes the tag to reservers (acquire) on other SMs.
        atom_add_acq_rel_gpu_u64(&h.words[s], ((u64)heap_slots(c) << 32) | (u64)(c + 1) | HEAP_ATTACHED);
        return s;
    }
    s = heap_take_listed(h, HEAP_CLASSES + c, roomy, c, start, h.pool_words);
    if (s != HEAP_NONE) return s;
    return heap_take_listed(h, c, &h.ctl->partial_count[c], c, start, h.pool_words);
}

}  // namespace grosr
