// grosr device heap: gpu_malloc / gpu_free for tasks and for any kernel of the runtime's module.
// Four files, embedded after the scheduler (codegen.rs): this one (sizes, the structs the host
// mirrors), grosr_heap_slabs.cuh, grosr_heap_reserve.cuh and grosr_heap.cuh (the API).
// ALLOCATOR.md beside them describes the layout and its invariants; every ordering in them
// carries a comment saying why it is needed.
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

typedef unsigned long long u64;

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

}  // namespace grosr
