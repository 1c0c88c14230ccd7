// grosr device heap: gpu_malloc / gpu_free for tasks and for any kernel of the runtime's module.
//
// Embedded after grosr_runtime.cuh (codegen.rs). ALLOCATOR.md beside this file describes the
// layout and its invariants; every ordering below carries a comment saying why it is needed.
//
// In one sentence: the arena is cut into 64 KiB slabs; a slab is free (in the pool), serves one
// size class (16 B .. 8 KiB, power-of-two slots, a bitmap of taken slots), or is part of a large
// run (whole slabs, for anything bigger). The classes of 512 B and up take aligned runs of slabs
// (a "class run": one word and bitmap, HEAP_RUN_SLOTS slots) so that a slab lasts. Each SM keeps
// a current slab per class in up to 8 entries keyed by the warp's slot on the SM; when
// one runs dry exactly one warp swaps in a fresh one while the others of the entry reserve on a
// listed slab or wait for it (heap_reserve). A group of lanes
// asking for one class reserves its slots with one atomic on the slab's 64-bit word (free count
// and tag together), then claims bits (one atomic per 32 slots); `free` finds the slab from the
// address, clears the bits (one atomic per bitmap word per warp) and gives the count back.
#pragma once

namespace grosr {

constexpr uint32_t HEAP_SLAB_SHIFT = 16;                          // 64 KiB slabs
constexpr uint64_t HEAP_SLAB_BYTES = 1ull << HEAP_SLAB_SHIFT;
constexpr uint32_t HEAP_MIN_SHIFT = 4;                            // 16-byte slots, 16-byte alignment
constexpr uint32_t HEAP_CLASSES = 10;                             // 16, 32, ..., 8192 bytes
constexpr uint32_t HEAP_LARGE = HEAP_CLASSES;                     // class index of the large tier
constexpr uint32_t HEAP_BITMAP_WORDS = (1u << (HEAP_SLAB_SHIFT - HEAP_MIN_SHIFT)) / 32;   // 128
constexpr uint32_t HEAP_NONE = 0xFFFFFFFFu;
constexpr uint32_t HEAP_BUSY = 0xFFFFFE00u;   // | the swapper's %warpid: a current-slab entry being swapped
constexpr uint32_t HEAP_CUR_PER_SM = 8;                           // current-slab entries per SM and class

// ---- Sizes and bounds ------------------------------------------------------------------------------
// Entries of its HEAP_CUR_PER_SM that an SM uses: Heap::cur_active, which the host scales with
// the heap (8 for a large heap, fewer for a small one, so that the entries' current slabs of one
// class never hold more than an eighth of the heap). An entry is keyed by the warp's slot on the
// SM (%warpid).
// Classes with fewer slots per slab than this take aligned runs of slabs with (about) this many
// slots. At most HEAP_RUN_MAX slabs (a power of two <= 32) per run. The host's heap_stats mirrors
// both (RUN_SLOTS and RUN_MAX in alloc.rs).
constexpr uint32_t HEAP_RUN_SLOTS = 256;
constexpr uint32_t HEAP_RUN_MAX = 16;
// Pool words a run search looks at (from the entry's hint) before taking a single slab instead.
constexpr uint32_t HEAP_RUN_SCAN = 64;
// A warp that finds its entry being swapped first tries to reserve on a listed (roomy) slab
// without attaching it, up to this many times per allocation, before it sleeps.
constexpr uint32_t HEAP_BUSY_PEEKS = 4;
// A class run is taken only while the pool holds at least 1/HEAP_RUN_POOL_FRACTION of the heap
// (near out-of-memory the classes take single slabs: less parked in current runs).
constexpr uint32_t HEAP_RUN_POOL_FRACTION = 8;
// Entries heap_reclaim loads at a time (more: fewer round trips, more registers for every kernel
// that allocates, since the out-of-line callee's registers count).
constexpr uint32_t HEAP_RECLAIM_BATCH = 4;
// With GROSR_HEAP_SLOW_COUNTS defined (a diagnostic), the slow paths count their events in
// HeapCounters::slow (a relaxed atomic each; HeapStats::slow_paths on the host). Off: no code at all.
#ifdef GROSR_HEAP_SLOW_COUNTS
constexpr bool HEAP_SLOW_COUNTS = true;
#else
constexpr bool HEAP_SLOW_COUNTS = false;
#endif
enum : uint32_t { HEAP_SLOW_SWAPS, HEAP_SLOW_BUSY_SLEEPS, HEAP_SLOW_OWN_WARP, HEAP_SLOW_FALLBACKS,
                  HEAP_SLOW_PRIVATE_SLABS, HEAP_SLOW_ANY_CURRENT, HEAP_SLOW_RECLAIMS,
                  HEAP_SLOW_WAIT_TIMEOUTS, HEAP_SLOW_WAIT_NS, HEAP_SLOW_LONGEST_WAIT_NS,
                  HEAP_SLOW_CUT_SHORT, HEAP_SLOW_CUT_STATE };
#define HEAP_COUNT_SLOW(h, i) \
    do { if (HEAP_SLOW_COUNTS) atomicAdd(&(h).ctl->slow[i], 1ull); } while (0)
// A waiter's time for another warp's swap: summed, and the longest (relaxed: statistics).
#define HEAP_COUNT_WAIT(h, ns)                                                      \
    do {                                                                            \
        if (HEAP_SLOW_COUNTS) {                                               \
            atomicAdd(&(h).ctl->slow[HEAP_SLOW_WAIT_NS], (ns));                     \
            atomicMax(&(h).ctl->slow[HEAP_SLOW_LONGEST_WAIT_NS], (ns));             \
        }                                                                           \
    } while (0)
// A warp waits at most this long (ns, %globaltimer) for another warp's swap of its entry before
// it goes on with the SM's next entry (heap_reserve_slow); 0: only the spin bound, 2^20 sleeps
// of <= 256 ns. A swap takes microseconds, but on the H200 the slow-path counts showed waits of
// up to 4.8 ms in the drifting mix.
#ifndef GROSR_HEAP_SWAP_WAIT_NS
#define GROSR_HEAP_SWAP_WAIT_NS 20000
#endif
// The swap protocol of one request gives up after this long (ns) and goes to the fallbacks, which
// may fail the request: a bound on an allocation's time, far above any swap (they take
// microseconds; near out of memory a swap's list scans take up to about a millisecond).
#ifndef GROSR_HEAP_SLOW_MAX_NS
#define GROSR_HEAP_SLOW_MAX_NS 50000000
#endif
// heap_alloc and heap_free aggregate a warp's requests (shuffles, votes, warp barriers) only
// when all 32 lanes call together; lanes of a partial warp are served one by one with no
// warp-synchronous step at all. Aggregating any __activemask() group deadlocks (H200): lane
// tasks whose lanes allocate different numbers of times (tests/gpu_alloc.rs) hung, as did the
// benchmark's profile build when lanes done with their loop waited in a full-warp shuffle:
// lanes waiting in a full-warp barrier or shuffle and lanes running the heap's partial-mask
// warp operations must not meet.
static_assert(HEAP_RUN_MAX >= 1 && HEAP_RUN_MAX <= 32 && (HEAP_RUN_MAX & (HEAP_RUN_MAX - 1)) == 0,
              "HEAP_RUN_MAX: a power of two <= 32 (a run lies in one pool word)");
static_assert(HEAP_RUN_SLOTS <= 4096, "a run's slots fit its head's bitmap");
// A slab's word: bits 63..32 = free slots (signed; transiently low while a stale reservation is
// undone), bits 7..0 = tag (0 = in the pool or inside a large run, 1 + class, 0xE0 + class =
// inside a class run but not its head, 0xFF = large head), bit 8 = attached (some SM's current
// slab for its class), bit 9 = head of a class run (its count and bitmap serve the whole run).
constexpr uint64_t HEAP_TAG_MASK = 0xFFull;
constexpr uint64_t HEAP_TAG_LARGE = 0xFFull;
constexpr uint32_t HEAP_TAG_INNER = 0xE0u;
constexpr uint64_t HEAP_ATTACHED = 0x100ull;
constexpr uint64_t HEAP_RUN = 0x200ull;

struct HeapCounters {             // 640 bytes, device memory; mirrored in grosr/src/alloc.rs
    int32_t free_slabs;           // slabs in the pool not yet reserved by a taker
    uint32_t pad0[31];
    uint32_t large_lock;          // serialises large-run searches (bounded spin)
    uint32_t reclaim_lock;        // one heap_reclaim scan at a time (try-lock: others skip it)
    uint32_t pad1[30];
    int32_t partial_count[16];    // per class: bits set in its low list (a lower bound)
    int32_t roomy_count[16];      // per class: bits set in its roomy list (a lower bound)
    unsigned long long failures[16];   // per class, then [HEAP_LARGE]: allocations that got null
    unsigned long long bad_frees;      // frees of addresses that were not live allocations
    unsigned long long slow[12];       // GROSR_HEAP_SLOW_COUNTS: slow-path events (HEAP_SLOW_*)
    unsigned long long pad3[3];
};

struct Heap {                     // 96 bytes, the module global grosr_heap; mirrored in alloc.rs
    uint8_t* base;                // the arena: slabs * HEAP_SLAB_BYTES bytes
    unsigned long long* words;    // per slab: count << 32 | attached | tag
    uint32_t* bitmaps;            // per slab HEAP_BITMAP_WORDS words: bit set = slot taken
    uint32_t* pool;               // pool_words: bit set = slab free in the pool
    uint32_t* partial;            // 2 * HEAP_CLASSES * pool_words: lists of detached slabs with
                                  // free slots, per class: low (any free), then roomy (>= 1/4)
    uint32_t* run;                // per slab: slabs in the large run it heads
    uint32_t* cur;                // cur_slots * HEAP_CLASSES: current slab (HEAP_NONE = none,
                                  // HEAP_BUSY | warp = being swapped); HEAP_CUR_PER_SM entries per SM
    uint32_t* hints;              // cur_slots: where the entry last found a pool slab
    HeapCounters* ctl;
    uint32_t slabs, pool_words, cur_slots, spin_limit;
    uint32_t cur_active;          // entries per SM in use: a power of two <= HEAP_CUR_PER_SM
    uint32_t pad;
};

}  // namespace grosr

// Filled by the host (Runtime build) before any kernel of the module runs; zero = no heap.
extern "C" {
__device__ grosr::Heap grosr_heap;
}

namespace grosr {

// ---- Primitives ---------------------------------------------------------------------------------
typedef unsigned long long u64;
__device__ __forceinline__ u64 atom_add_acq_rel_u64(u64* p, u64 v) {
    u64 old;
    asm volatile("atom.acq_rel.gpu.global.add.u64 %0, [%1], %2;" : "=l"(old) : "l"(p), "l"(v) : "memory");
    return old;
}
__device__ __forceinline__ u64 atom_and_acq_rel_u64(u64* p, u64 v) {
    u64 old;
    asm volatile("atom.acq_rel.gpu.global.and.b64 %0, [%1], %2;" : "=l"(old) : "l"(p), "l"(v) : "memory");
    return old;
}
__device__ __forceinline__ u64 atom_or_acq_rel_u64(u64* p, u64 v) {
    u64 old;
    asm volatile("atom.acq_rel.gpu.global.or.b64 %0, [%1], %2;" : "=l"(old) : "l"(p), "l"(v) : "memory");
    return old;
}
__device__ __forceinline__ u64 atom_cas_acq_rel_u64(u64* p, u64 cmp, u64 v) {
    u64 old;
    asm volatile("atom.acq_rel.gpu.global.cas.b64 %0, [%1], %2, %3;"
                 : "=l"(old) : "l"(p), "l"(cmp), "l"(v) : "memory");
    return old;
}
__device__ __forceinline__ uint32_t atom_or_acquire(uint32_t* p, uint32_t v) {
    uint32_t old;
    asm volatile("atom.acquire.gpu.global.or.b32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
    return old;
}
__device__ __forceinline__ uint32_t atom_or_release(uint32_t* p, uint32_t v) {
    uint32_t old;
    asm volatile("atom.release.gpu.global.or.b32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
    return old;
}
__device__ __forceinline__ uint32_t atom_and_acquire(uint32_t* p, uint32_t v) {
    uint32_t old;
    asm volatile("atom.acquire.gpu.global.and.b32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
    return old;
}
__device__ __forceinline__ uint32_t atom_and_release(uint32_t* p, uint32_t v) {
    uint32_t old;
    asm volatile("atom.release.gpu.global.and.b32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
    return old;
}
__device__ __forceinline__ uint32_t atom_cas_acq_rel_u32(uint32_t* p, uint32_t cmp, uint32_t v) {
    uint32_t old;
    asm volatile("atom.acq_rel.gpu.global.cas.b32 %0, [%1], %2, %3;"
                 : "=r"(old) : "l"(p), "r"(cmp), "r"(v) : "memory");
    return old;
}
__device__ __forceinline__ void st_release_u32(uint32_t* p, uint32_t v) {
    asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ void red_add_release_s32(int32_t* p, int32_t v) {
    asm volatile("red.release.gpu.global.add.s32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ u64 ld_relaxed_u64(const u64* p) {
    u64 v;
    asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ uint32_t ld_relaxed_u32(const uint32_t* p) {
    uint32_t v;
    asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

__device__ __forceinline__ u64 heap_now() {    // ns; for bounded waits and statistics
    u64 t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
__device__ __forceinline__ uint32_t heap_slots(uint32_t c) {
    return (uint32_t)(HEAP_SLAB_BYTES >> (HEAP_MIN_SHIFT + c));
}
__device__ __forceinline__ uint32_t heap_class_of(u64 bytes) {
    if (bytes <= (1u << HEAP_MIN_SHIFT)) return 0;
    const uint32_t c = (64u - (uint32_t)__clzll((long long)(bytes - 1))) - HEAP_MIN_SHIFT;
    return c < HEAP_CLASSES ? c : HEAP_LARGE;
}
__device__ __forceinline__ int32_t word_count(u64 w) { return (int32_t)(uint32_t)(w >> 32); }
__device__ __forceinline__ uint32_t word_tag(u64 w) { return (uint32_t)(w & HEAP_TAG_MASK); }
// Slabs in a run of class c (1: the class takes single slabs).
__device__ __forceinline__ uint32_t heap_run_len(uint32_t c) {
    const uint32_t slots = heap_slots(c);
    return slots >= HEAP_RUN_SLOTS ? 1u : umin(HEAP_RUN_SLOTS / slots, HEAP_RUN_MAX);
}
// Slots of a class-c slab whose word is w (a run head serves the whole run).
__device__ __forceinline__ uint32_t heap_cap(uint32_t c, u64 w) {
    return (w & HEAP_RUN) ? heap_slots(c) * heap_run_len(c) : heap_slots(c);
}

// ---- Slab life cycle ------------------------------------------------------------------------------
// A detached slab of class c that has become wholly free goes back to the pool. The CAS succeeds
// only on exactly (all slots free, tag c, detached): no reservation, attachment or transient undo
// can be in flight. Whoever's add makes the count full again retries (after_add / detach).
// A run head (`run`) goes back with its whole run: inner tags cleared, then the pool bits.
__device__ void heap_try_retire(const Heap& h, uint32_t s, uint32_t c, u64 run) {
    const u64 full = ((u64)heap_cap(c, run) << 32) | run | (u64)(c + 1);
    // acq_rel: acquire makes every free of the slab (and so the data accesses before it) precede
    // the hand-over; release passes that on to whoever takes the slab from the pool.
    if (atom_cas_acq_rel_u64(&h.words[s], full, 0ull) != full) return;
    // Unlist it (keeps the lists short for the swappers; a bit set again by a late mark is stale
    // and dropped by its taker). Relaxed: the lists are hints.
    for (uint32_t list = c; list < 2 * HEAP_CLASSES; list += HEAP_CLASSES) {
        uint32_t* word = &h.partial[(u64)list * h.pool_words + (s >> 5)];
        const uint32_t bit = 1u << (s & 31);
        if ((ld_relaxed_u32(word) & bit) && (atomicAnd(word, ~bit) & bit))
            atomicSub(list < HEAP_CLASSES ? &h.ctl->partial_count[c] : &h.ctl->roomy_count[c], 1);
    }
    const uint32_t n = run ? heap_run_len(c) : 1u;
    // Relaxed (an and, not a store: a stale reserver's transient count stays intact): the pool
    // bits' release below orders these before the slabs can be taken again.
    for (uint32_t i = 1; i < n; ++i) atomicAnd(&h.words[s + i], ~HEAP_TAG_MASK);
    // release: the words are clean before the pool bits say the slabs can be taken. A run is
    // aligned inside one pool word, so one atomic puts it all back.
    atom_or_release(&h.pool[s >> 5], (n == 32 ? 0xFFFFFFFFu : ((1u << n) - 1)) << (s & 31));
    // release: the pool bits are set before the counter says slabs can be found.
    red_add_release_s32(&h.ctl->free_slabs, (int32_t)n);
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
    const u64 old = atom_and_acq_rel_u64(&h.words[s], ~HEAP_ATTACHED);
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
        uint32_t v = ld_relaxed_u32(&h.pool[wi]);
        while (v) {
            const uint32_t b = __ffs(v) - 1;
            v &= v - 1;
            // acquire: pairs with the retiring release: the slab's word and bitmap are clean.
            if (atom_and_acquire(&h.pool[wi], ~(1u << b)) & (1u << b)) {
                *hint = wi;
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
        uint32_t m = ld_relaxed_u32(&h.pool[wi]);   // relaxed: a hint; the claim below decides
        for (uint32_t k = 1; k < n; k <<= 1) m &= m >> k;   // bit i: bits i .. i+n-1 all set
        m &= align;
        while (m) {
            const uint32_t b = __ffs(m) - 1;
            m &= m - 1;
            // acquire: pairs with the retiring release: the slabs' words and bitmaps are clean.
            const uint32_t old = atom_and_acquire(&h.pool[wi], ~(group << b));
            if ((old & (group << b)) == (group << b)) {
                *hint = wi;
                return wi * 32 + b;
            }
            // release: put back the bits we took (keeps the chain from their retirer intact).
            if (old & (group << b)) atom_or_release(&h.pool[wi], old & (group << b));
        }
    }
    atomicAdd(fs, (int32_t)n);                   // relaxed: a count, as above
    return HEAP_NONE;
}

// Attaches a listed slab if it is still detached, of class c and not full.
__device__ bool heap_attach_partial(const Heap& h, uint32_t s, uint32_t c) {
    u64 w = ld_relaxed_u64(&h.words[s]);
    for (uint32_t n = 0; n < 64; ++n) {          // bounded: frees may keep changing the count
        if (word_tag(w) != c + 1 || (w & HEAP_ATTACHED) || word_count(w) <= 0) return false;
        // acq_rel: a successful attach is ordered with the frees that made room.
        const u64 seen = atom_cas_acq_rel_u64(&h.words[s], w, w | HEAP_ATTACHED);
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
            if (i + k < words && ld_relaxed_u32(&bits[(start + i + k) % h.pool_words]) != 0u)
                nz |= 1u << k;
        while (nz) {
            const uint32_t wi = (start + i + __ffs(nz) - 1) % h.pool_words;
            nz &= nz - 1;
            uint32_t v = ld_relaxed_u32(&bits[wi]);   // relaxed: as above
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
            atom_add_acq_rel_u64(&h.words[s], ((u64)(heap_slots(c) * n) << 32) | (u64)(c + 1) |
                                                  HEAP_ATTACHED | HEAP_RUN);
            return s;
        }
    }
    s = heap_take_pool(h, slot);
    if (s != HEAP_NONE) {
        // The taker owns a pool slab alone: its word is 0 but for transient reservations that
        // will be undone, so an add sets count, tag and attachment at once. acq_rel: release
        // publishes the tag to reservers (acquire) on other SMs.
        atom_add_acq_rel_u64(&h.words[s], ((u64)heap_slots(c) << 32) | (u64)(c + 1) | HEAP_ATTACHED);
        return s;
    }
    s = heap_take_listed(h, HEAP_CLASSES + c, roomy, c, start, h.pool_words);
    if (s != HEAP_NONE) return s;
    return heap_take_listed(h, c, &h.ctl->partial_count[c], c, start, h.pool_words);
}

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
        const u64 peek = ld_relaxed_u64(wp);     // counters first: a dry slab costs no atomic
        if (word_tag(peek) != c + 1 || word_count(peek) <= 0) return r;
    }
    // acq_rel: acquire pairs with the release of the taker that tagged the slab and of the frees
    // that made room; release orders a give-back after it.
    const u64 old = atom_add_acq_rel_u64(wp, (u64)0 - ((u64)need << 32));
    const int32_t before = word_count(old);
    r.have = (word_tag(old) != c + 1 || before <= 0) ? 0u : umin((uint32_t)before, need);
    if (r.have < need) {
        const uint32_t back = need - r.have;
        const u64 o2 = atom_add_acq_rel_u64(wp, (u64)back << 32);   // acq_rel: as for a free
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
    uint32_t w;
    asm volatile("mov.u32 %0, %%warpid;" : "=r"(w));
    const uint32_t active = h.cur_active;        // a power of two, >= 1
    return (sm_id() * HEAP_CUR_PER_SM + (w & (active - 1))) % h.cur_slots;
}

// Entries that can be in use: those of SM ids below %nsmid (an upper bound of %smid), so the
// scans below skip the entries of SM slots the GPU does not have (sm_slots is a power of two).
__device__ __forceinline__ uint32_t heap_live_entries(const Heap& h) {
    uint32_t n;
    asm("mov.u32 %0, %%nsmid;" : "=r"(n));
    return umin(h.cur_slots, n * HEAP_CUR_PER_SM);
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
        if (k < pw && ld_relaxed_u32(&bits[(start + k) % pw]) != 0u) nz |= 1u << k;
    for (uint32_t tries = 0; nz && tries < 4;) {
        const uint32_t wi = (start + __ffs(nz) - 1) % pw;
        nz &= nz - 1;
        for (uint32_t v = ld_relaxed_u32(&bits[wi]); v && tries < 4; v &= v - 1, ++tries) {   // relaxed: as above
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
            e[k] = j + k < live ? ld_relaxed_u32(&h.cur[(j + k) * HEAP_CLASSES + c]) : HEAP_NONE;
#pragma unroll
        for (uint32_t k = 0; k < 8; ++k)         // relaxed: a peek, as in heap_try_reserve
            w[k] = (e[k] < h.slabs) ? ld_relaxed_u64(&h.words[e[k]]) : 0ull;
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
        atom_cas_acq_rel_u32(&h.ctl->reclaim_lock, 0u, 1u) != 0u)
        return 0;
    HEAP_COUNT_SLOW(h, HEAP_SLOW_RECLAIMS);
    const uint32_t entries = heap_live_entries(h) * HEAP_CLASSES;
    for (uint32_t j = 0; j < entries; j += HEAP_RECLAIM_BATCH) {
        uint32_t e[HEAP_RECLAIM_BATCH];
        u64 w[HEAP_RECLAIM_BATCH];
#pragma unroll
        for (uint32_t k = 0; k < HEAP_RECLAIM_BATCH; ++k)   // relaxed: pointers to try; the CAS decides
            e[k] = j + k < entries ? ld_relaxed_u32(&h.cur[j + k]) : HEAP_NONE;
#pragma unroll
        for (uint32_t k = 0; k < HEAP_RECLAIM_BATCH; ++k)   // relaxed: a peek; the retire CAS decides
            w[k] = (e[k] < h.slabs) ? ld_relaxed_u64(&h.words[e[k]]) : 0ull;
#pragma unroll
        for (uint32_t k = 0; k < HEAP_RECLAIM_BATCH; ++k) {
            const uint32_t t = word_tag(w[k]);
            if (t == 0 || t > HEAP_CLASSES || !(w[k] & HEAP_ATTACHED) ||
                word_count(w[k]) != (int32_t)heap_cap(t - 1, w[k]))
                continue;
            // acq_rel: acquire pairs with the publish of e[k]; release orders nothing but keeps
            // the CAS symmetric with the swappers'. Winning it makes us the slab's detacher.
            if (atom_cas_acq_rel_u32(&h.cur[j + k], e[k], HEAP_NONE) == e[k]) {
                heap_detach(h, e[k]);            // retired if still wholly free, else listed
                ++n;
            }
        }
    }
    st_release_u32(&h.ctl->reclaim_lock, 0u);   // release: our detaches before the unlock
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
    uint32_t ns = 32, swaps = 0, peeks = 0, me;
    asm volatile("mov.u32 %0, %%warpid;" : "=r"(me));
    me |= HEAP_BUSY;
    u64 waited_since = 0;                        // %globaltimer when this wait began (0: none)
    const u64 entered = heap_now();
    uint32_t moves = 0;                          // neighbour entries gone on to (below)
    bool patient = false;                        // no entry left to go on with: wait it out
    HeapTake r;
    for (uint32_t t = 0; t < limit && swaps < 16; ++t) {   // bounded: spins, swaps and time
        if (heap_now() - entered > GROSR_HEAP_SLOW_MAX_NS) {
            HEAP_COUNT_SLOW(h, HEAP_SLOW_CUT_SHORT);
            if (HEAP_SLOW_COUNTS)          // relaxed: a statistic (the last one cut short)
                atomicExch(&h.ctl->slow[HEAP_SLOW_CUT_STATE],
                           ((u64)t << 32) | (swaps << 16) | (moves << 8) | peeks);
            break;
        }
        const uint32_t s = ld_relaxed_u32(curp);  // relaxed: a pointer to try; the word decides
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
                const u64 now = heap_now();
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
            HEAP_COUNT_WAIT(h, heap_now() - waited_since);
            waited_since = 0;
        }
        if (s != HEAP_NONE) {
            r = heap_try_reserve(h, s, c, need);
            if (r.have) return r;
        }
        // acq_rel: acquire pairs with the release that published s (so the re-check below sees
        // its word as tagged and attached); release is not needed but keeps the CAS symmetric.
        if (atom_cas_acq_rel_u32(curp, s, me) != s) continue;   // someone else swaps
        ++swaps;
        HEAP_COUNT_SLOW(h, HEAP_SLOW_SWAPS);
        if (s != HEAP_NONE) {
            const u64 w = ld_relaxed_u64(&h.words[s]);
            if (word_tag(w) == c + 1 && word_count(w) > 0) {
                st_release_u32(curp, s);         // release: as for a publish; frees made room
                continue;
            }
        }
        const uint32_t fresh = heap_acquire(h, c, slot);
        if (fresh == HEAP_NONE) {
            // Out of slabs: keep the dry slab current (frees refill it) and fall back below.
            st_release_u32(curp, s);             // release: pairs with the next swapper's CAS
            break;
        }
        // release: the fresh slab's tagged word precedes its pointer (the next swapper's acquire).
        st_release_u32(curp, fresh);
        if (s != HEAP_NONE) heap_detach(h, s);   // listed or retired if frees made room meanwhile
    }
    if (waited_since) HEAP_COUNT_WAIT(h, heap_now() - waited_since);
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
    const uint32_t s = ld_relaxed_u32(&h.cur[heap_cur_slot(h) * HEAP_CLASSES + c]);   // relaxed: a pointer to try
    if (s < h.slabs) return heap_try_reserve<false>(h, s, c, need);
    return HeapTake{s, 0u, 0u, 0u};
}

// The leader's part of an allocation: the fast part, else the swap protocol.
__device__ __forceinline__ HeapTake heap_reserve(const Heap& h, uint32_t c, uint32_t need) {
    const HeapTake r = heap_reserve_fast(h, c, need);
    return r.have ? r : heap_reserve_slow(h, c, need, heap_cur_slot(h));
}

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
            const uint32_t got = valid & ~atom_or_acquire(&bm[w], valid);
            if (got) return got;
            cursor = w + 1;
            continue;
        }
        const uint32_t free = ~ld_relaxed_u32(&bm[w]) & valid;
        if (free) {
            const uint32_t n = __popc(free);
            uint32_t take = free;
            if (n > want) {
                const uint32_t last = __fns(free, 0, (int)want);    // position of the want-th bit
                take = free & (last >= 31 ? 0xFFFFFFFFu : ((2u << last) - 1));
            }
            // acquire: pairs with the release of the free that cleared these bits: the previous
            // owner's accesses to the slots happen before ours.
            const uint32_t got = take & ~atom_or_acquire(&bm[w], take);
            if (got) return got;
        }
        cursor = w + 1;
    }
    return 0;
}

__device__ void heap_give_back(const Heap& h, uint32_t s, uint32_t n) {
    const u64 old = atom_add_acq_rel_u64(&h.words[s], (u64)n << 32);   // acq_rel: as for a free
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
        const uint32_t old = atom_and_acquire(&h.pool[wi], ~mask);
        if ((old & mask) != mask) {
            // release: our brief hold on the bits ends; put back those we took, then the earlier words.
            atom_or_release(&h.pool[wi], old & mask);
            for (uint32_t j = a; j < i;) {
                const uint32_t wj = j >> 5, lj = j & 31, cj = umin(32 - lj, i - j);
                atom_or_release(&h.pool[wj], (cj == 32 ? 0xFFFFFFFFu : ((1u << cj) - 1)) << lj);
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
            const uint32_t v = ld_relaxed_u32(&h.pool[i >> 5]) >> (i & 31);
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
    return found;
}

__device__ void* heap_large_alloc(const Heap& h, u64 bytes) {
    const u64 want = (bytes + HEAP_SLAB_BYTES - 1) >> HEAP_SLAB_SHIFT;
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
            atom_or_acq_rel_u64(&h.words[found], HEAP_TAG_LARGE);
            return h.base + ((u64)found << HEAP_SLAB_SHIFT);
        }
    }
    atomicAdd(&h.ctl->failures[HEAP_LARGE], 1ull);   // relaxed: a statistic
    return nullptr;
}

__device__ void heap_large_free(const Heap& h, uint32_t s) {
    // acq_rel: acquire sees run[s] (published with the tag); clearing the tag (keeping any
    // transient count) makes a second free of the same run fail here.
    const u64 old = atom_and_acq_rel_u64(&h.words[s], ~HEAP_TAG_MASK);
    if (word_tag(old) != HEAP_TAG_LARGE) {
        atomicAdd(&h.ctl->bad_frees, 1ull);
        return;
    }
    const uint32_t n = h.run[s];
    for (uint32_t i = s; i < s + n;) {
        const uint32_t lo = i & 31, cnt = umin(32 - lo, s + n - i);
        // release: the run's data accesses precede its return to the pool.
        atom_or_release(&h.pool[i >> 5], (cnt == 32 ? 0xFFFFFFFFu : ((1u << cnt) - 1)) << lo);
        i += cnt;
    }
    red_add_release_s32(&h.ctl->free_slabs, (int32_t)n);   // release: bits before the count
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
    const uint32_t old = atom_and_release(&h.bitmaps[(u64)s * HEAP_BITMAP_WORDS + w], ~bits);
    const uint32_t freed = old & bits;
    if (freed != bits) atomicAdd(&h.ctl->bad_frees, (unsigned long long)__popc(bits & ~freed));
    if (!freed) return;
    const int32_t n = __popc(freed);
    // acq_rel: the cleared bits precede the count that lets a reserver look for them.
    const u64 o = atom_add_acq_rel_u64(&h.words[s], (u64)n << 32);
    heap_after_add(h, s, o, n);
}

// ---- The API ----------------------------------------------------------------------------------------
// Allocates `bytes` (16-byte aligned) from the device heap; nullptr if the heap is exhausted (the
// failure is counted) or bytes == 0. Any subset of a warp's lanes may call it together; a whole
// warp's requests are served together (one atomic per class), a partial warp's one by one.
__device__ void* heap_alloc(u64 bytes) {
    const Heap& h = grosr_heap;
    if (bytes == 0 || h.slabs == 0) return nullptr;
    const uint32_t act = __activemask();
    const uint32_t lane = lane_id(), cls = heap_class_of(bytes);
    // A partial warp: lane by lane (see the whole-warp note at the top).
    if (act != 0xFFFFFFFFu) return heap_alloc_alone(h, bytes, cls);
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
            uint32_t t = word_tag(ld_relaxed_u64(&h.words[s]));
            if (t >= HEAP_TAG_INNER && t < HEAP_TAG_INNER + HEAP_CLASSES) {
                // Inside a class run: its head (runs are aligned) holds the word and bitmap. The
                // run is not retired while this block is live, so the tags read are its own.
                s &= ~(heap_run_len(t - HEAP_TAG_INNER) - 1);
                t = word_tag(ld_relaxed_u64(&h.words[s]));
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
    return static_cast<T*>(heap_alloc(n * sizeof(T)));
}

// Ctx::alloc (task bodies) calls one out-of-line copy of heap_alloc instead of inlining it. The
// scheduler dispatches every task type from several places, so a module with allocating tasks
// inlined the allocator 16 times into grosr_scheduler and drain_stack, which doubled NVRTC's time
// for tests/gpu_alloc's module (44 -> 82 s on a 2-core CI box, ptxas almost all of it; 24 s
// outlined). grosr::heap_alloc (the benchmark, user kernels) stays inline.
__device__ __noinline__ void* heap_alloc_outlined(u64 bytes) { return heap_alloc(bytes); }

// Ctx members declared in grosr_runtime.cuh.
__device__ void* Ctx::alloc(unsigned long long bytes) const { return heap_alloc_outlined(bytes); }
__device__ void Ctx::free(void* p) const { heap_free(p); }

}  // namespace grosr

// Keeps grosr_heap in every module (the host looks it up by name) and lets a test read it back.
extern "C" __global__ void grosr_heap_probe(grosr::Heap* out) {
    if (threadIdx.x == 0 && blockIdx.x == 0) *out = grosr_heap;
}
