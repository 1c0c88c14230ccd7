// grosr BFS: the CUDA-graph WHILE-node baseline (its own module, not the scheduler's; see
// benches/lab/src/bfs/while_graph.rs). Follows level.cu in the unit. The graph is
//   WHILE(handle) { grosr_bfs_while_level  ->  grosr_bfs_while_next }
// with the handle's default value 1 (the body runs at least once per launch). Everything a level
// needs that changes from level to level lives in a BfsWhileState in device memory, since a
// graph's kernel parameters are fixed at instantiation.

// The device runtime's setter (cuda_device_runtime_api.h, CUDA 12.4+:
//   extern "C" __device__ __cudart_builtin__ void CUDARTAPI
//   cudaGraphSetConditional(cudaGraphConditionalHandle handle, unsigned int value);
// with typedef unsigned long long cudaGraphConditionalHandle). Declared here by hand because
// NVRTC has no CUDA runtime headers; extern "C", so the handle's spelled type does not matter
// to the symbol. NVRTC leaves it an undefined symbol: resolved by linking libcudadevrt.a with
// the driver's linker (the -rdc=true route) or, in a whole-program CUBIN, by the driver when it
// loads the module (the direct route).
extern "C" __device__ void cudaGraphSetConditional(unsigned long long handle, unsigned int value);

struct BfsWhileState {
    uint32_t depth;        // the level being expanded
    uint32_t n;            // its frontier's size
    uint32_t next_count;   // the next frontier's size (filled by the level kernel)
    uint32_t overflow;     // set when the loop ran more levels than `limit` (then it stops)
};
static_assert(sizeof(BfsWhileState) == 16, "grosr: BfsWhileState differs from while_graph.rs");

// One level: expands frontiers[depth & 1] into frontiers[(depth + 1) & 1] (grid-stride, so any
// fixed grid covers any frontier).
extern "C" __global__ void grosr_bfs_while_level(const uint64_t* offsets, const uint32_t* targets,
                                                 unsigned long long* lp, uint32_t* frontier0,
                                                 uint32_t* frontier1, BfsWhileState* st) {
    const uint32_t depth = st->depth;
    const uint32_t n = st->n;
    const uint32_t* frontier = (depth & 1) ? frontier1 : frontier0;
    uint32_t* next = (depth & 1) ? frontier0 : frontier1;
    bfs_level_expand(offsets, targets, lp, frontier, n, next, &st->next_count, depth);
}

// After a level (one thread): the next frontier becomes the current one, and the loop goes on
// while it is non-empty. `limit` bounds the levels (more than the vertex count means a bug), so
// a broken search ends instead of looping forever.
extern "C" __global__ void grosr_bfs_while_next(BfsWhileState* st, unsigned long long handle,
                                                uint32_t limit) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const uint32_t n = st->next_count;
    const uint32_t depth = st->depth + 1;
    st->n = n;
    st->next_count = 0;
    st->depth = depth;
    const bool over = n != 0 && depth > limit;
    if (over) st->overflow = 1;
    cudaGraphSetConditional(handle, (n != 0 && !over) ? 1u : 0u);
}

// A self-test of the conditional node before any BFS relies on it: the body runs while
// --counter[0] > 0, counting its runs in counter[1]; the host launches it with counter = {3, 0}
// and expects {0, 3}.
extern "C" __global__ void grosr_while_probe(uint32_t* counter, unsigned long long handle) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    counter[1] += 1;
    const uint32_t left = counter[0] - 1;
    counter[0] = left;
    cudaGraphSetConditional(handle, left != 0 ? 1u : 0u);
}
