// The allocator benchmark's kernels: benches/lab/src/workloads/alloc.rs compiles them into the
// runtime's module with RuntimeBuilder::cuda.
namespace grosr_bench {
struct Args {                      // mirrored by BenchArgs in benches/lab/src/workloads/alloc.rs
    unsigned long long* counters;  // [0] allocations served, [1] null returns, [2] mismatches,
                                   // [3] blocks outside grosr's arena, [4..6] GROSR_BENCH_PROFILE,
                                   // [7] loop threads stopped by budget_ns
    uint8_t* pool;                 // per-thread pool regions
    unsigned long long pool_per_thread;
    unsigned long long budget_ns;  // a loop thread stops after this long (a run that stalls ends)
    uint32_t pool_slot, iters, outstanding, kind, min_size, max_size, seed, check_stride;
};
__device__ __forceinline__ uint32_t hash(uint32_t x) {
    x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16; return x;
}
__device__ __forceinline__ uint32_t log2u(uint32_t x) { return 31u - __clz(x); }
// Size of allocation i of thread t: 0 fixed, 1 powers of two, 2 uniform, 3 skewed 90/10, 4 drift.
__device__ uint32_t size_of(const Args& a, uint32_t t, uint32_t i) {
    const uint32_t r = hash(a.seed ^ hash(t * 0x9E3779B9u + i));
    const uint32_t lo = log2u(a.min_size), hi = log2u(a.max_size);
    switch (a.kind) {
    case 0: return a.min_size;
    case 1: return 1u << (lo + r % (hi - lo + 1));
    case 2: return a.min_size + r % (a.max_size - a.min_size + 1);
    case 3: return r % 10 ? a.min_size : a.max_size;
    default: {
        const uint32_t step = lo + (uint32_t)(((unsigned long long)i * (hi - lo + 1)) / (a.iters ? a.iters : 1));
        return 1u << (step < hi ? step : hi);
    }
    }
}
__device__ __forceinline__ unsigned long long tag_of(uint32_t t, uint32_t i) {
    return ((unsigned long long)(t + 1) << 32) | (i + 1);
}
// A block's pattern: words at offsets 0, stride, 2 stride, ... and at its last whole word
// (n >= 16). A word is 16 bytes, or with GROSR_BENCH_WORD=32 a whole 32-byte sector where the
// block has one (an experiment: L2 evicts a partly written sector by a read-modify-write of DRAM;
// H200, a word every 256 B: the pool gained on 16-4096 B, 1.64 against 1.12 G/s,
// grosr did not, 0.50 against 0.55). Volatile: the check must read memory, not what the
// compiler remembers writing.
#ifndef GROSR_BENCH_WORD
#define GROSR_BENCH_WORD 16
#endif
__device__ __forceinline__ void st_pair(uint8_t* p, unsigned long long x, unsigned long long y) {
    asm volatile("st.volatile.global.v2.u64 [%0], {%1, %2};" ::"l"(p), "l"(x), "l"(y) : "memory");
}
__device__ __forceinline__ uint32_t pair_differs(const uint8_t* p, unsigned long long x, unsigned long long y) {
    unsigned long long u, v;
    asm volatile("ld.volatile.global.v2.u64 {%0, %1}, [%2];" : "=l"(u), "=l"(v) : "l"(p) : "memory");
    return (u != x) + (v != y);
}
__device__ __forceinline__ uint32_t word_of(uint32_t n) { return GROSR_BENCH_WORD == 32 && n >= 32 ? 32u : 16u; }
__device__ void write(const Args& a, uint8_t* p, uint32_t n, unsigned long long tag) {
    const uint32_t w = word_of(n), last = (n - w) & ~(w - 1);
    for (uint32_t o = 0; o < last; o += a.check_stride)
        for (uint32_t k = 0; k < w; k += 16) st_pair(p + o + k, tag ^ (o + k), ~tag ^ (o + k));
    for (uint32_t k = 0; k < w; k += 16) st_pair(p + last + k, tag ^ (last + k), ~tag ^ (last + k));
}
__device__ uint32_t check(const Args& a, const uint8_t* p, uint32_t n, unsigned long long tag) {
    const uint32_t w = word_of(n), last = (n - w) & ~(w - 1);
    uint32_t bad = 0;
    for (uint32_t o = 0; o < last; o += a.check_stride)
        for (uint32_t k = 0; k < w; k += 16) bad += pair_differs(p + o + k, tag ^ (o + k), ~tag ^ (o + k));
    for (uint32_t k = 0; k < w; k += 16) bad += pair_differs(p + last + k, tag ^ (last + k), ~tag ^ (last + k));
    return bad;
}
__device__ void count(const Args& a, unsigned long long ok, unsigned long long fail, unsigned long long bad) {
    if (ok) atomicAdd(&a.counters[0], ok);
    if (fail) atomicAdd(&a.counters[1], fail);
    if (bad) atomicAdd(&a.counters[2], bad);
}

// A block that does not lie wholly inside the heap's arena is never written: it is counted in
// counters[3] (the run fails) and treated as a null return.
__device__ void* in_arena(void* p, uint32_t n, unsigned long long* wild) {
    const grosr::Heap& h = grosr_heap;
    const unsigned long long lo = (unsigned long long)h.base, q = (unsigned long long)p;
    if (p == nullptr || (q >= lo && q + n <= lo + ((unsigned long long)h.slabs << grosr::HEAP_SLAB_SHIFT))) return p;
    atomicAdd(wild, 1ull);
    return nullptr;
}
struct Grosr {
    unsigned long long* wild;
    __device__ Grosr(const Args& a, uint32_t) : wild(&a.counters[3]) {}
    __device__ void* alloc(uint32_t n) { return in_arena(grosr::heap_alloc(n), n, wild); }
    __device__ void release(void* p) { grosr::heap_free(p); }
};
struct Cuda {
    __device__ Cuda(const Args&, uint32_t) {}
    __device__ void* alloc(uint32_t n) { return malloc(n); }
    __device__ void release(void* p) { free(p); }
};
// A private region per thread: `outstanding` slots of the largest size, a bit mask in a register.
struct Pool {
    uint8_t* region; uint32_t slot, slots, used;
    __device__ Pool(const Args& a, uint32_t t)
        : region(a.pool + (unsigned long long)t * a.pool_per_thread), slot(a.pool_slot),
          slots(a.outstanding), used(0) {}
    __device__ void* alloc(uint32_t n) {
        const uint32_t avail = ~used & (slots >= 32 ? 0xFFFFFFFFu : (1u << slots) - 1);
        if (n > slot || !avail) return nullptr;
        const uint32_t b = __ffs(avail) - 1;
        used |= 1u << b;
        return region + (unsigned long long)b * slot;
    }
    __device__ void release(void* p) { used &= ~(1u << (uint32_t)(((uint8_t*)p - region) / slot)); }
};

// GROSR_BENCH_PROFILE=1: each loop thread times (clock64) its allocations, frees and pattern
// writes and checks, and the warps add the sums to counters[4..6], so a slow shape shows whether
// the allocator or the harness's memory traffic takes the time. Off: no clock reads at all.
#ifndef GROSR_BENCH_PROFILE
#define GROSR_BENCH_PROFILE 0
#endif
struct Split {
    unsigned long long alloc = 0, release = 0, pattern = 0, t = 0;
    __device__ void start() { if (GROSR_BENCH_PROFILE) t = clock64(); }
    __device__ void lap(unsigned long long& into) {
        if (GROSR_BENCH_PROFILE) { const unsigned long long now = clock64(); into += now - t; t = now; }
    }
    // Per thread, no warp-synchronous step: lanes that finish their loop early must not wait in
    // a full-warp shuffle while others are still allocating (H200: with a __shfl_down_sync
    // reduction here the drifting row stalled for good with half a warp's blocks live; without
    // it every row finishes).
    __device__ void add_to(const Args& a) {
        if (!GROSR_BENCH_PROFILE) return;
        const unsigned long long v[3] = {alloc, release, pattern};
        for (uint32_t i = 0; i < 3; ++i)
            if (v[i]) atomicAdd(&a.counters[4 + i], v[i]);
    }
};

// Each thread keeps a ring of `outstanding` blocks: check and free the oldest, allocate anew.
// Every lane of the grid runs the loop the same number of times, and the warp meets before each
// free and each allocation (__syncwarp): a warp that left the last call apart would otherwise go
// on apart (independent thread scheduling does not reconverge it), and grosr's heap serves a
// partial warp's lanes one by one where a whole warp's are served together (cuda/ALLOCATOR.md). The same for all three allocators.
template <class A> __device__ void loop(const Args& a) {
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    A al(a, t);
    uint8_t* ring[16];
    uint32_t sizes[16];
    for (uint32_t k = 0; k < 16; ++k) ring[k] = nullptr;
    unsigned long long ok = 0, fail = 0, bad = 0;
    Split sp;
    const unsigned long long began = grosr::globaltimer();
    uint32_t iters = a.iters;
    for (uint32_t i = 0; i < iters; ++i) {
        // Every 16th iteration: past the budget, the whole warp stops (the host reports the run
        // as stalled).
        if ((i & 15) == 15 && __any_sync(0xffffffffu, grosr::globaltimer() - began > a.budget_ns)) {
            atomicAdd(&a.counters[7], 1ull);
            iters = i;
            break;
        }
        const uint32_t k = i % a.outstanding;
        uint8_t* old = ring[k];
        if (old) {
            sp.start();
            bad += check(a, old, sizes[k], tag_of(t, i - a.outstanding));
            sp.lap(sp.pattern);
        }
        __syncwarp();
        if (old) {
            sp.start();
            al.release(old);
            sp.lap(sp.release);
            ring[k] = nullptr;
        }
        const uint32_t n = size_of(a, t, i);
        __syncwarp();
        sp.start();
        uint8_t* p = (uint8_t*)al.alloc(n);
        sp.lap(sp.alloc);
        if (p) { write(a, p, n, tag_of(t, i)); ring[k] = p; sizes[k] = n; ++ok; } else { ++fail; }
        sp.lap(sp.pattern);
    }
    for (uint32_t i = iters > a.outstanding ? iters - a.outstanding : 0; i < iters; ++i) {
        const uint32_t k = i % a.outstanding;
        if (ring[k]) { bad += check(a, ring[k], sizes[k], tag_of(t, i)); al.release(ring[k]); }
    }
    count(a, ok, fail, bad);
    sp.add_to(a);
}

// Remote frees: thread t allocates ptrs[t]; in the next kernel thread t frees a permuted slot.
template <class A> __device__ void remote_alloc(const Args& a, uint8_t** ptrs, uint32_t n, uint32_t round) {
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    A al(a, t);
    const uint32_t sz = size_of(a, t, round);
    uint8_t* p = (uint8_t*)al.alloc(sz);
    if (p) write(a, p, sz, tag_of(t, round));
    ptrs[t] = p;
    count(a, p != nullptr, p == nullptr, 0);
}
template <class A> __device__ void remote_free(const Args& a, uint8_t** ptrs, uint32_t n, uint32_t round) {
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    A al(a, t);
    const uint32_t j = (uint32_t)(((unsigned long long)t * 1000003ull) % n);
    uint8_t* p = ptrs[j];
    if (!p) return;
    const uint32_t bad = check(a, p, size_of(a, j, round), tag_of(j, round));
    al.release(p);
    count(a, 0, 0, bad);
}
}  // namespace grosr_bench

// Every benchmark kernel is built for at least 4 resident blocks of 256 per SM (at most 64
// registers a thread). At 8 (all 2048 threads of an SM, 32 registers) grosr's allocation path
// spills and runs slower: H200, same run, 8 against 4: churn 11.6 against 13.3 G/s, mixed 64-512 B
// 4.4 against 8.4. GROSR_DEFINES=GROSR_BENCH_MIN_BLOCKS=8 (or =0, no bound) builds them otherwise.
#ifndef GROSR_BENCH_MIN_BLOCKS
#define GROSR_BENCH_MIN_BLOCKS 4
#endif
#if GROSR_BENCH_MIN_BLOCKS > 0
#define BENCH_BOUNDS __launch_bounds__(256, GROSR_BENCH_MIN_BLOCKS)
#else
#define BENCH_BOUNDS __launch_bounds__(256)   // GROSR_BENCH_MIN_BLOCKS=0: registers as needed
#endif

extern "C" __global__ void BENCH_BOUNDS bench_loop_grosr(grosr_bench::Args a) { grosr_bench::loop<grosr_bench::Grosr>(a); }
extern "C" __global__ void BENCH_BOUNDS bench_loop_cuda(grosr_bench::Args a) { grosr_bench::loop<grosr_bench::Cuda>(a); }
extern "C" __global__ void BENCH_BOUNDS bench_loop_pool(grosr_bench::Args a) { grosr_bench::loop<grosr_bench::Pool>(a); }
extern "C" __global__ void BENCH_BOUNDS bench_remote_alloc_grosr(grosr_bench::Args a, uint8_t** p, uint32_t n, uint32_t r) {
    grosr_bench::remote_alloc<grosr_bench::Grosr>(a, p, n, r);
}
extern "C" __global__ void BENCH_BOUNDS bench_remote_free_grosr(grosr_bench::Args a, uint8_t** p, uint32_t n, uint32_t r) {
    grosr_bench::remote_free<grosr_bench::Grosr>(a, p, n, r);
}
extern "C" __global__ void BENCH_BOUNDS bench_remote_alloc_cuda(grosr_bench::Args a, uint8_t** p, uint32_t n, uint32_t r) {
    grosr_bench::remote_alloc<grosr_bench::Cuda>(a, p, n, r);
}
extern "C" __global__ void BENCH_BOUNDS bench_remote_free_cuda(grosr_bench::Args a, uint8_t** p, uint32_t n, uint32_t r) {
    grosr_bench::remote_free<grosr_bench::Cuda>(a, p, n, r);
}
// Out-of-memory round: each thread allocates min_size blocks until null, chaining them through
// their first word (block: next pointer, then its tag); bench_oom_free walks, checks and frees.
extern "C" __global__ void BENCH_BOUNDS bench_oom_fill(grosr_bench::Args a, uint8_t** heads) {
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    uint8_t* head = nullptr;
    unsigned long long n = 0;
    for (; n < a.iters; ++n) {
        uint8_t* p = (uint8_t*)grosr_bench::in_arena(grosr::heap_alloc(a.min_size), a.min_size, &a.counters[3]);
        if (!p) break;
        ((uint8_t* volatile*)p)[0] = head;
        ((volatile unsigned long long*)p)[1] = grosr_bench::tag_of(t, 0);
        head = p;
    }
    heads[t] = head;
    grosr_bench::count(a, n, n < a.iters, 0);
}
extern "C" __global__ void BENCH_BOUNDS bench_oom_free(grosr_bench::Args a, uint8_t** heads) {
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    uint8_t* p = heads[t];
    unsigned long long bad = 0;
    for (uint32_t guard = 0; p && guard < a.iters; ++guard) {
        uint8_t* next = ((uint8_t* volatile*)p)[0];
        bad += ((volatile unsigned long long*)p)[1] != grosr_bench::tag_of(t, 0);
        grosr::heap_free(p);
        p = next;
    }
    grosr_bench::count(a, 0, 0, bad + (p != nullptr));
}
