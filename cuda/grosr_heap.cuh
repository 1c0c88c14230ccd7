// Device heap: claiming slots, serving a warp's requests, the large tier, and the API.

namespace grosr {

// Claims up to `want` free slots of slab s (reserved already, so they exist). Returns the bits
// taken in bitmap word `w`; 0 if a bounded search found none.
__device__ uint32_t heap_claim(const Heap& h, uint32_t s, uint32_t slots, uint32_t want,
                               uint32_t& cursor, uint32_t& w) {
    const uint32_t words = (slots + 31) / 32;
    const uint32_t valid = slots >= 32 ? 0xFFFFFFFFu : (1u << slots) - 1;
    uint32_t* bm = &h.bitmaps[(u64)s * HEAP_BITMAP_WORDS];
    // All of a word's free slots are wanted (a full warp, or a class with few slots): the first
    // try takes them with no look at the word (one round trip less); got <= valid <= want.
    const bool blind = want >= (uint32_t)__popc(valid);
    for (uint32_t i = 0; i < 4 * words + 4; ++i) {
        w = cursor % words;
        if (blind && i == 0) {
            // acquire: as below.
            const uint32_t got = valid & ~atom_or_acquire_gpu_b32(&bm[w], valid);
            if (got) return got;
            cursor = w + 1;
            continue;
        }
        const uint32_t free = ~ld_relaxed_gpu_u32(&bm[w]) & valid;
        if (free) {
            const uint32_t n = __popc(free);
            uint32_t take = free;
            if (n > want) {
                const uint32_t last = __fns(free, 0, (int)want);    // position of the want-th bit
                take = free & (last >= 31 ? 0xFFFFFFFFu : ((2u << last) - 1));
            }
            // acquire: pairs with the release of the free that cleared these bits: the previous
            // owner's accesses to the slots happen before ours.
            const uint32_t got = take & ~atom_or_acquire_gpu_b32(&bm[w], take);
            if (got) return got;
        }
        cursor = w + 1;
    }
    return 0;
}

__device__ void heap_give_back(const Heap& h, uint32_t s, uint32_t n) {
    const u64 old = atom_add_acq_rel_gpu_u64(&h.words[s], (u64)n << 32);   // acq_rel: as for a free
    heap_after_add(h, s, old, (int32_t)n);
}

// Serves every lane of `act` whose class `cls` is a size class, all classes side by side: the
// lanes of one class form a group (__match_any_sync) whose leader reserves and claims for it,
// and the leaders of different classes run the same steps together, so their loads and atomics
// are issued by the same instructions and their latencies overlap: a warp asking for k classes
// waits for about one chain of atomics instead of k (one class after another waited for k). Called by every lane of `act` alike (the loops' conditions
// are warp-uniform; the group values come from the leader by shuffles).
__device__ void heap_serve_classes(const Heap& h, uint32_t act, uint32_t cls, void*& result) {
    const uint32_t lane = lane_id();
    const uint32_t grp = __match_any_sync(act, cls), leader = __ffs(grp) - 1;
    uint32_t waiting = cls < HEAP_LARGE ? grp : 0u;   // the same value in every lane of a group
    uint32_t failed = 0;                          // lanes of the group the heap had nothing for
    for (uint32_t round = 0; round < 64 && __any_sync(act, waiting != 0); ++round) {
        HeapTake r = {HEAP_NONE, 0u, 0u, 0u};
        if (lane == leader && waiting) r = heap_reserve_fast(h, cls, __popc(waiting));
        // The swap protocol one leader at a time, the others waiting at the warp barrier: a
        // leader that waits (bounded) for another warp's swap must not share the warp with a
        // leader that holds a swap itself, or each warp's scheduler could keep running its
        // waiting lane while the other's swapper starves: with parallel classes, mixed 16-4096 B
        // runs built with the benchmark's profile option did not finish in minutes (H200).
        for (uint32_t slow = __ballot_sync(act, lane == leader && waiting && !r.have); slow;
             slow &= slow - 1) {
            if (lane == (uint32_t)(__ffs(slow) - 1)) r = heap_reserve_slow(h, cls, __popc(waiting), heap_cur_slot(h));
            __syncwarp(act);
        }
        const uint32_t s = __shfl_sync(act, r.s, leader);
        uint32_t have = __shfl_sync(act, r.have, leader), cursor = r.cursor;
        if (have == 0) {                         // out of memory (or a group already served)
            failed |= waiting;
            waiting = 0;
        }
        for (uint32_t t = 0; t < 64 && __any_sync(act, have > 0); ++t) {
            uint32_t w = 0, got = 0;
            if (lane == leader && have > 0) got = heap_claim(h, s, r.cap, have, cursor, w);
            got = __shfl_sync(act, got, leader);
            w = __shfl_sync(act, w, leader);
            const uint32_t n = __popc(got), rank = __popc(waiting & lanemask_lt());
            const bool mine = ((waiting >> lane) & 1u) && rank < n;
            if (mine) {
                const uint32_t slot = w * 32 + __fns(got, 0, (int)rank + 1);
                result = h.base + ((u64)s << HEAP_SLAB_SHIFT) + ((u64)slot << (HEAP_MIN_SHIFT + cls));
            }
            waiting &= ~__ballot_sync(act, mine);
            if (got == 0) {                      // not expected: a bounded search found nothing
                if (have > 0 && lane == leader) heap_give_back(h, s, have);
                have = 0;
            } else {
                have -= n;
            }
        }
        if (have > 0 && lane == leader) heap_give_back(h, s, have);   // not expected, as above
    }
    failed |= waiting;
    if (failed && lane == leader)                // relaxed: a statistic
        atomicAdd(&h.ctl->failures[cls], (unsigned long long)__popc(failed));
}

// ---- Large tier: runs of whole slabs -----------------------------------------------------------
// Claims pool bits [a, a + n) or nothing. Bits another taker got first are left to it.
__device__ bool heap_claim_run(const Heap& h, uint32_t a, uint32_t n) {
    for (uint32_t i = a; i < a + n;) {
        const uint32_t wi = i >> 5, lo = i & 31, cnt = umin(32 - lo, a + n - i);
        const uint32_t mask = (cnt == 32 ? 0xFFFFFFFFu : ((1u << cnt) - 1)) << lo;
        // acquire: pairs with the release of whoever put the slabs in the pool.
        const uint32_t old = atom_and_acquire_gpu_b32(&h.pool[wi], ~mask);
        if ((old & mask) != mask) {
            // release: our brief hold on the bits ends; put back those we took, then the earlier words.
            atom_or_release_gpu_b32(&h.pool[wi], old & mask);
            for (uint32_t j = a; j < i;) {
                const uint32_t wj = j >> 5, lj = j & 31, cj = umin(32 - lj, i - j);
                atom_or_release_gpu_b32(&h.pool[wj], (cj == 32 ? 0xFFFFFFFFu : ((1u << cj) - 1)) << lj);
                j += cj;
            }
            return false;
        }
        i += cnt;
    }
    return true;
}

// Reserves n slabs from free_slabs and takes a run of n consecutive pool slabs; HEAP_NONE (the
// reservation given back) if the pool has none.
__device__ uint32_t heap_large_take(const Heap& h, uint32_t n) {
    int32_t* fs = &h.ctl->free_slabs;
    if (*(volatile int32_t*)fs < (int32_t)n) return HEAP_NONE;   // counters first
    if (atomicSub(fs, (int32_t)n) < (int32_t)n) {   // relaxed: a count; bits carry the order
        atomicAdd(fs, (int32_t)n);               // relaxed: as above
        return HEAP_NONE;
    }
    // One large search at a time (small takers do not wait for it). Bounded spin.
    bool locked = false;
    for (uint32_t t = 0; t < h.spin_limit; ++t) {
        // acquire: the previous holder's claims are visible before we search.
        if (atomicCAS(&h.ctl->large_lock, 0u, 1u) == 0u) { __threadfence(); locked = true; break; }
        __nanosleep(128);
    }
    uint32_t found = HEAP_NONE;
    if (locked) {
        uint32_t start = 0, len = 0;
        for (uint32_t i = 0; i < h.slabs && found == HEAP_NONE;) {
            const uint32_t v = ld_relaxed_gpu_u32(&h.pool[i >> 5]) >> (i & 31);
            if ((i & 31) == 0 && v == 0xFFFFFFFFu && i + 32 <= h.slabs) {
                if (len == 0) start = i;
                len += 32;
                i += 32;
            } else if ((i & 31) == 0 && v == 0) {
                len = 0;
                i += 32;
            } else {
                if (v & 1u) { if (len == 0) start = i; ++len; } else { len = 0; }
                ++i;
            }
            if (len >= n) {
                if (heap_claim_run(h, start, n)) found = start;
                len = 0;
                i = start + 1 > i ? start + 1 : i;
            }
        }
        __threadfence();                         // release (with the exchange): our claims first
        atomicExch(&h.ctl->large_lock, 0u);      // the unlock (ordered by the fence above)
    }
    if (found == HEAP_NONE) atomicAdd(fs, (int32_t)n);   // relaxed: a count, as above
    else GROSR_TRACE_HEAP_POOL(fs);
    return found;
}

__device__ void* heap_large_alloc(const Heap& h, u64 bytes) {
    // Slabs needed, rounded up without overflow (bytes may be anything up to ~0).
    const u64 want = (bytes >> HEAP_SLAB_SHIFT) + ((bytes & (HEAP_SLAB_BYTES - 1)) != 0);
    if (want <= h.slabs) {
        const uint32_t n = (uint32_t)want;
        uint32_t found = heap_large_take(h, n);
        // Wholly free slabs (runs) parked as current slabs of the entries count for nothing here
        // unless given back: with 8 entries per SM and class runs they can hold most of a small
        // heap, so a large request that finds no room reclaims them and tries once more.
        if (found == HEAP_NONE && heap_reclaim(h) != 0) found = heap_large_take(h, n);
        if (found != HEAP_NONE) {
            h.run[found] = n;
            // acq_rel: release publishes run[found] to the freer, which reads the tag first.
            atom_or_acq_rel_gpu_b64(&h.words[found], HEAP_TAG_LARGE);
            return h.base + ((u64)found << HEAP_SLAB_SHIFT);
        }
    }
    atomicAdd(&h.ctl->failures[HEAP_LARGE], 1ull);   // relaxed: a statistic
    return nullptr;
}

__device__ void heap_large_free(const Heap& h, uint32_t s) {
    // acq_rel: acquire sees run[s] (published with the tag); clearing the tag (keeping any
    // transient count) makes a second free of the same run fail here.
    const u64 old = atom_and_acq_rel_gpu_b64(&h.words[s], ~HEAP_TAG_MASK);
    if (word_tag(old) != HEAP_TAG_LARGE) {
        atomicAdd(&h.ctl->bad_frees, 1ull);
        return;
    }
    const uint32_t n = h.run[s];
    for (uint32_t i = s; i < s + n;) {
        const uint32_t lo = i & 31, cnt = umin(32 - lo, s + n - i);
        // release: the run's data accesses precede its return to the pool.
        atom_or_release_gpu_b32(&h.pool[i >> 5], (cnt == 32 ? 0xFFFFFFFFu : ((1u << cnt) - 1)) << lo);
        i += cnt;
    }
    red_add_release_gpu_s32(&h.ctl->free_slabs, (int32_t)n);   // release: bits before the count
    GROSR_TRACE_HEAP_POOL(&h.ctl->free_slabs);
}

// Serves one lane alone: the leader's steps of heap_serve_classes for a group of one, with no
// warp-synchronous step (see heap_alloc).
__device__ __noinline__ void* heap_alloc_alone(const Heap& h, u64 bytes, uint32_t cls) {
    if (cls == HEAP_LARGE) return heap_large_alloc(h, bytes);
    for (uint32_t round = 0; round < 64; ++round) {
        const HeapTake r = heap_reserve(h, cls, 1);
        if (r.have == 0) break;                  // out of memory
        uint32_t cursor = r.cursor;
        for (uint32_t t = 0; t < 64; ++t) {
            uint32_t w = 0;
            const uint32_t got = heap_claim(h, r.s, r.cap, 1, cursor, w);
            if (got == 0) break;
            // got holds exactly one slot (want 1): ours, claimed with acquire.
            const uint32_t slot = w * 32 + __ffs(got) - 1;
            return h.base + ((u64)r.s << HEAP_SLAB_SHIFT) + ((u64)slot << (HEAP_MIN_SHIFT + cls));
        }
        heap_give_back(h, r.s, 1);               // not expected: a bounded search found nothing
    }
    atomicAdd(&h.ctl->failures[cls], 1ull);      // relaxed: a statistic
    return nullptr;
}

// Clears `bits` (slots of slab s, bitmap word w) and counts them free. One lane: the leader of
// the lanes that free in that word together, or a lane alone.
__device__ void heap_free_bits(const Heap& h, uint32_t s, uint32_t w, uint32_t bits) {
    // release: the slots' previous accesses precede their reuse (the claimer's acquire).
    const uint32_t old = atom_and_release_gpu_b32(&h.bitmaps[(u64)s * HEAP_BITMAP_WORDS + w], ~bits);
    const uint32_t freed = old & bits;
    if (freed != bits) atomicAdd(&h.ctl->bad_frees, (unsigned long long)__popc(bits & ~freed));
    if (!freed) return;
    const int32_t n = __popc(freed);
    // acq_rel: the cleared bits precede the count that lets a reserver look for them.
    const u64 o = atom_add_acq_rel_gpu_u64(&h.words[s], (u64)n << 32);
    heap_after_add(h, s, o, n);
}

// ---- The API ----------------------------------------------------------------------------------------
// Allocates `bytes` (16-byte aligned) from the device heap; nullptr if the heap is exhausted (the
// failure is counted) or bytes == 0. Any subset of a warp's lanes may call it together; a whole
// warp's requests are served together (one atomic per class), a partial warp's one by one.
// Whole warps only: aggregating any __activemask() group deadlocked (H200): lane tasks whose
// lanes allocate different numbers of times (tests/gpu_alloc.rs) hung, as did the benchmark's
// profile build when lanes done with their loop waited in a full-warp shuffle: lanes waiting in
// a full-warp barrier or shuffle and lanes running the heap's partial-mask warp operations must
// not meet.
__device__ void* heap_alloc(u64 bytes) {
    const Heap& h = grosr_heap;
    if (bytes == 0 || h.slabs == 0) return nullptr;
    const uint32_t act = __activemask();
    const uint32_t lane = lane_id(), cls = heap_class_of(bytes);
    if (act != 0xFFFFFFFFu) return heap_alloc_alone(h, bytes, cls);   // a partial warp: lane by lane
    void* result = nullptr;
    // Large requests first, one lane at a time: lanes of one warp never wait on each other's
    // lock. Then every size class at once.
    for (uint32_t m = __ballot_sync(act, cls == HEAP_LARGE); m; m &= m - 1) {
        if (lane == (uint32_t)(__ffs(m) - 1)) result = heap_large_alloc(h, bytes);
        __syncwarp(act);
    }
    heap_serve_classes(h, act, cls, result);
    // Memory ordering among the lanes: the leaders' acquiring claims precede every lane's use.
    __syncwarp(act);
    return result;
}

// Frees what heap_alloc returned (any lane, warp, SM or kernel of the module). nullptr is ignored;
// an address that is not a live allocation is counted in bad_frees, not trusted.
__device__ void heap_free(void* p) {
    const Heap& h = grosr_heap;
    const uint32_t act = __activemask();
    const u64 off = (u64)p - (u64)h.base;
    bool small = false;
    uint32_t s = 0, c = 0, w = 0, bit = 0;
    if (p != nullptr) {
        if ((u64)p < (u64)h.base || off >= ((u64)h.slabs << HEAP_SLAB_SHIFT) || (off & 15)) {
            atomicAdd(&h.ctl->bad_frees, 1ull);
        } else {
            s = (uint32_t)(off >> HEAP_SLAB_SHIFT);
            uint32_t t = word_tag(ld_relaxed_gpu_u64(&h.words[s]));
            if (t >= HEAP_TAG_INNER && t < HEAP_TAG_INNER + HEAP_CLASSES) {
                // Inside a class run: its head (runs are aligned) holds the word and bitmap. The
                // run is not retired while this block is live, so the tags read are its own.
                s &= ~(heap_run_len(t - HEAP_TAG_INNER) - 1);
                t = word_tag(ld_relaxed_gpu_u64(&h.words[s]));
            }
            const u64 in = off - ((u64)s << HEAP_SLAB_SHIFT);
            if (t == HEAP_TAG_LARGE && in == 0) {
                __threadfence();                 // our accesses to the run precede its release
                heap_large_free(h, s);
            } else if (t >= 1 && t <= HEAP_CLASSES && (in & ((16ull << (t - 1)) - 1)) == 0) {
                small = true;
                c = t - 1;
                const uint32_t slot = (uint32_t)(in >> (HEAP_MIN_SHIFT + c));
                w = slot >> 5;
                bit = 1u << (slot & 31);
            } else {
                atomicAdd(&h.ctl->bad_frees, 1ull);
            }
        }
    }
    if (act != 0xFFFFFFFFu) {                    // a lane alone (see heap_alloc)
        if (small) heap_free_bits(h, s, w, bit);
        return;
    }
    // Memory ordering among the lanes: every lane's accesses to its block precede the leader's
    // releasing atomic below (release is cumulative over what the barrier ordered before it).
    __syncwarp(act);
    const u64 key = small ? (u64)s * HEAP_BITMAP_WORDS + w : ~0ull;
    const uint32_t grp = __match_any_sync(act, key);
    if (!small) return;
#if __CUDA_ARCH__ >= 800
    const uint32_t bits = __reduce_or_sync(grp, bit);
#else
    uint32_t bits = 0;
    for (uint32_t m = grp; m; m &= m - 1) bits |= __shfl_sync(grp, bit, __ffs(m) - 1);
#endif
    if (lane_id() == (uint32_t)(__ffs(grp) - 1)) heap_free_bits(h, s, w, bits);
}

template <class T> __device__ __forceinline__ T* heap_alloc_n(u64 n) {
    return static_cast<T*>(heap_alloc(n > ~0ull / sizeof(T) ? ~0ull : n * sizeof(T)));   // as Ctx::alloc_n
}

// Ctx::alloc and Ctx::free (task bodies) call one out-of-line copy of the heap instead of
// inlining it. The scheduler dispatches every task type from several places, so a module with
// allocating tasks inlined the allocator 16 times into grosr_scheduler and drain_stack, which
// doubled NVRTC's time for tests/gpu_alloc's module (44 -> 82 s on a 2-core CI box, ptxas almost
// all of it; 24 s outlined); the free path likewise (issue 19). grosr::heap_alloc and
// grosr::heap_free (the benchmark, user kernels) stay inline.
__device__ __noinline__ void* heap_alloc_outlined(u64 bytes) { return heap_alloc(bytes); }
__device__ __noinline__ void heap_free_outlined(void* p) { heap_free(p); }

// Ctx members declared in grosr_warp.cuh.
__device__ void* Ctx::alloc(unsigned long long bytes) const { return heap_alloc_outlined(bytes); }
__device__ void Ctx::free(void* p) const { heap_free_outlined(p); }

}  // namespace grosr

// Keeps grosr_heap in every module (the host looks it up by name) and lets a test read it back.
extern "C" __global__ void grosr_heap_probe(grosr::Heap* out) {
    if (threadIdx.x == 0 && blockIdx.x == 0) *out = grosr_heap;
}

// Writes the metadata of an empty heap `h` (`meta_words` 32-bit words from h.ctl, its start):
// zeros, but every slab in the pool (bit set), no current slabs (HEAP_NONE) and the pool's count
// of free slabs. Runs before any kernel uses the heap: at build and at heap_reset (scheduler
// stopped). On the GPU because the metadata of a 4 GiB heap is 34 MB, mostly zeros: building it
// on the host and copying it took a large share of a cached start (alloc.rs, `empty_meta`,
// states the same image; a GPU test compares the two).
extern "C" __global__ void grosr_heap_init(grosr::Heap h, unsigned long long meta_words) {
    uint32_t* meta = reinterpret_cast<uint32_t*>(h.ctl);
    const uint64_t cur_words = (uint64_t)h.cur_slots * grosr::HEAP_CLASSES;
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < meta_words;
         i += (uint64_t)gridDim.x * blockDim.x) {
        uint32_t* at = meta + i;
        uint32_t v = 0u;
        if (i == 0) {
            v = h.slabs;                                    // HeapCounters::free_slabs, word 0
        } else if (at >= h.pool && at < h.pool + h.pool_words) {
            const uint32_t w = (uint32_t)(at - h.pool);
            v = (w + 1) * 32 <= h.slabs ? 0xFFFFFFFFu : (1u << (h.slabs & 31)) - 1u;
        } else if (at >= h.cur && at < h.cur + cur_words) {
            v = grosr::HEAP_NONE;
        }
        *at = v;
    }
}
