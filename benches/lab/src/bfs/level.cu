// grosr BFS: the level-synchronous expansion, shared by the level-synchronous baseline (in the
// scheduler's module, after bfs.cu) and the WHILE-graph baseline (its own module, see while.cu).
// Self-contained: it needs only the uint32_t / uint64_t typedefs both units define.
//
// Warp w expands frontier vertices [32w, 32w + 32) (grid-stride), the vertices' edges dealt 32
// per round over its lanes (a warp prefix sum over the degrees, a binary search per lane); a
// vertex is discovered by the atomicMin that finds it unreached, and appended to `next` at a slot
// taken from `*count` (one relaxed atomicAdd per warp and round). Level depth writes level
// depth + 1; at depth 0 the first thread writes the root's word (level 0, its own parent).

__device__ __forceinline__ unsigned long long bfsl_load(const unsigned long long* p) {
    return *(const volatile unsigned long long*)p;
}

__device__ __forceinline__ uint32_t bfsl_lanemask_lt() {
    uint32_t m;
    asm("mov.u32 %0, %%lanemask_lt;" : "=r"(m));
    return m;
}

__device__ void bfs_level_expand(const uint64_t* offsets, const uint32_t* targets,
                                 unsigned long long* lp, const uint32_t* frontier, uint32_t n,
                                 uint32_t* next, uint32_t* count, uint32_t depth) {
    const unsigned long long inf = 0xFFFFFFFFFFFFFFFFull;
    const uint32_t lane = threadIdx.x & 31;
    const uint32_t warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const uint32_t warps = gridDim.x * blockDim.x / 32;
    if (depth == 0 && blockIdx.x == 0 && threadIdx.x == 0)
        lp[frontier[0]] = (unsigned long long)frontier[0];   // the root
    for (uint32_t base = warp * 32; base < n; base += warps * 32) {
        const bool has = base + lane < n;
        const uint32_t u = has ? frontier[base + lane] : 0u;
        const uint64_t start = has ? offsets[u] : 0;
        const uint32_t deg = has ? (uint32_t)(offsets[u + 1] - start) : 0u;
        uint32_t incl = deg;
        for (uint32_t o = 1; o < 32; o <<= 1) {
            const uint32_t x = __shfl_up_sync(0xffffffffu, incl, o);
            if (lane >= o) incl += x;
        }
        const uint32_t total = __shfl_sync(0xffffffffu, incl, 31);
        const uint32_t excl = incl - deg;
        for (uint32_t e = 0; e < total; e += 32) {
            const uint32_t j = e + lane;
            uint32_t s = 0;
            for (uint32_t step = 16; step > 0; step >>= 1) {
                const uint32_t x = __shfl_sync(0xffffffffu, excl, s + step);
                if (x <= j) s += step;
            }
            const uint32_t su = __shfl_sync(0xffffffffu, u, s);
            const unsigned long long sstart = __shfl_sync(0xffffffffu, (unsigned long long)start, s);
            const uint32_t sex = __shfl_sync(0xffffffffu, excl, s);
            bool found = false;
            uint32_t v = 0;
            if (j < total) {
                v = targets[sstart + (j - sex)];
                if (bfsl_load(&lp[v]) == inf) {
                    const unsigned long long cand = ((unsigned long long)(depth + 1) << 32) | su;
                    found = atomicMin(&lp[v], cand) == inf;
                }
            }
            const uint32_t m = __ballot_sync(0xffffffffu, found);
            uint32_t at = 0;
            // Relaxed: the kernel boundary orders these writes before the next level reads them.
            if (lane == 0 && m) at = atomicAdd(count, (uint32_t)__popc(m));
            at = __shfl_sync(0xffffffffu, at, 0);
            if (found) next[at + __popc(m & bfsl_lanemask_lt())] = v;
        }
    }
}

// ---- Level-synchronous baseline: one launch per level -------------------------------------------
// The first thread also clears counts[depth & 1], which level depth + 1 will fill (level depth
// fills counts[(depth + 1) & 1]); the host reads that count after the launch.
extern "C" __global__ void grosr_bfs_level(const uint64_t* offsets, const uint32_t* targets,
                                           unsigned long long* lp, const uint32_t* frontier,
                                           uint32_t n, uint32_t* next, uint32_t* counts,
                                           uint32_t depth) {
    if (blockIdx.x == 0 && threadIdx.x == 0) counts[depth & 1] = 0;
    bfs_level_expand(offsets, targets, lp, frontier, n, next, &counts[(depth + 1) & 1], depth);
}
