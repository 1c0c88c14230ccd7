// What a task-trace event costs on this GPU, piece by piece (issue 22's overhead): back-to-back
// %globaltimer and %clock64 reads, returning global and shared atomicAdd (dependent chains), a
// 32-byte store, and %globaltimer's resolution. One warp of one block, lanes 1..31 idle or all 32
// active. Build and run on the GPU machine:
//   nvcc -O3 -arch=sm_90 -o /tmp/trace_costs benches/probes/trace_costs.cu && /tmp/trace_costs
#include <cstdint>
#include <cstdio>
#include <initializer_list>

__device__ __forceinline__ uint64_t globaltimer() { uint64_t t; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); return t; }
__device__ __forceinline__ uint64_t clock64v() { uint64_t t; asm volatile("mov.u64 %0, %%clock64;" : "=l"(t)); return t; }

struct Ev { unsigned long long a, b; unsigned c, d, e, f; };

// out: cycles per op for [globaltimer, clock64, global atomic, shared atomic, 32 B store],
// then the smallest nonzero globaltimer step (ns) and ns per 1000 cycles.
__global__ void probe(unsigned long long* out, unsigned long long* counter, Ev* events, int n, int lanes) {
    __shared__ unsigned long long sh[4];
    const int lane = threadIdx.x;
    if (lane < 4) sh[lane] = 0;
    __syncwarp();
    if (lane >= lanes) return;
    uint64_t acc = 0, x = 0;
    uint64_t t0 = clock64v(), g0 = globaltimer();
    for (int i = 0; i < n; ++i) acc += globaltimer();
    uint64_t t1 = clock64v();
    for (int i = 0; i < n; ++i) acc += clock64v();
    uint64_t t2 = clock64v();
    for (int i = 0; i < n; ++i) x += atomicAdd(counter + (x >> 62), 1ull);   // the next address waits for the result
    uint64_t t3 = clock64v();
    for (int i = 0; i < n; ++i) x += atomicAdd(sh + (x >> 62), 1ull);
    uint64_t t4 = clock64v();
    for (int i = 0; i < n; ++i) events[(i * 32 + lane) % (1 << 16)] = Ev{acc, x, (unsigned)i, 0, 0, 0};
    __threadfence();
    uint64_t t5 = clock64v(), g5 = globaltimer();
    uint64_t step = ~0ull, prev = globaltimer();
    for (int i = 0; i < 20000; ++i) { uint64_t g = globaltimer(); if (g != prev && g - prev < step) step = g - prev; prev = g; }
    if (lane == 0) {
        out[0] = (t1 - t0) / n; out[1] = (t2 - t1) / n; out[2] = (t3 - t2) / n; out[3] = (t4 - t3) / n;
        out[4] = (t5 - t4) / n; out[5] = step; out[6] = (g5 - g0) * 1000 / (t5 - t0); out[7] = acc + x;
    }
}

int main() {
    unsigned long long *out, *counter; Ev* events;
    cudaMalloc(&out, 8 * 8); cudaMalloc(&counter, 4 * 8); cudaMalloc(&events, sizeof(Ev) << 16);
    cudaMemset(counter, 0, 32);
    for (int lanes : {1, 32}) {
        for (int rep = 0; rep < 3; ++rep) {
            probe<<<1, 32>>>(out, counter, events, 4096, lanes);
            unsigned long long h[8];
            if (cudaMemcpy(h, out, sizeof h, cudaMemcpyDeviceToHost) != cudaSuccess) { printf("CUDA error\n"); return 1; }
            if (rep == 2)
                printf("lanes %2d: cycles per op: globaltimer %llu, clock64 %llu, global atomicAdd %llu, shared atomicAdd %llu, 32 B store %llu; globaltimer step %llu ns; %llu ns per 1000 cycles\n",
                       lanes, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
        }
    }
    return 0;
}
