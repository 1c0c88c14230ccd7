// Diagnostics: the latency trace, compiled in only with GROSR_TRACE defined.

// Latency trace (define GROSR_TRACE; the builder's diagnostics setting does): thread 0 of block 0,
// the ingest warp's lane 0, stamps %globaltimer at the steps of a lone task's path into this
// array (examples/latency_trace.rs reads it with Runtime::read_global). Off, it costs nothing.
// A graph launch also stamps: [12] ingest_graph entered, [13] its pieces pushed, [14] the first
// root started and [15] the last root ended (any warp, atomicMin / atomicMax), and the job's
// completion [6], [7] wherever it happens. A small graph stamps [12] when the ingest warp enters
// it and [15] when its last level starts.
// A spawn tree (latency_trace --spawn) stamps the first and last start of each level l < 12 in
// [16 + l] and [28 + l] (GROSR_TRACE_LEVEL; the host resets them before each launch).
#ifdef GROSR_TRACE
__device__ unsigned long long grosr_trace[40];
// A spawn tree's timeline (latency_trace --spawn), in 4.096 µs buckets of %globaltimer kept
// as a ring of 128 (524 µs; the host zeroes it before a launch and unwraps it from the root's
// start): [0] tiny tasks (level 11) started, [1] other tasks started, [2] worker warps' dry
// takes. Relaxed reductions with no result: the trace adds no round trip to what it times.
constexpr unsigned GROSR_HIST_BUCKETS = 128, GROSR_HIST_SHIFT = 12;
__device__ unsigned int grosr_hist[3][GROSR_HIST_BUCKETS];
__device__ __forceinline__ void grosr_hist_add(unsigned row, unsigned n) {
    atomicAdd(&grosr_hist[row][(grosr::globaltimer() >> GROSR_HIST_SHIFT) % GROSR_HIST_BUCKETS], n);
}
// Thread 0 of block 0 (the ingest warp's lane 0) from a spawn tree's root on: the first 64 of
// its steps, each `time << 8 | step` (latency_trace --spawn prints them). Plain stores. Steps:
// 1 lane round, 2 bodies ran, 3 held tasks ran, 4 accounted, 5 take_work, 6 took the stack,
// 7 spawn_words, 8 stacked, 9 push, 10 pushed, 11 account, 12 Ctx::spawn.
__shared__ unsigned grosr_seq_n;
__device__ unsigned long long grosr_seq[64];
#define GROSR_SEQ(id) do { if (blockIdx.x == 0 && threadIdx.x == 0 && grosr_seq_n < 64) grosr_seq[grosr_seq_n++] = grosr::globaltimer() << 8 | (id); } while (0)
// The first and last start of each level l < 12 go to [16 + l] and [28 + l], which the host
// resets before a launch: one lane per warp round, one reduction each (no loads: no round trip).
__device__ void grosr_trace_level(uint32_t level) {
    if (level >= 12) return;
    const unsigned long long now = grosr::globaltimer();
    const uint32_t active = __activemask();
    if ((threadIdx.x & 31u) != (uint32_t)(__ffs(active) - 1)) return;
    if (level == 0 && blockIdx.x == 0 && threadIdx.x == 0) grosr_seq_n = 0;
    atomicMin(&grosr_trace[16 + level], now);
    atomicMax(&grosr_trace[28 + level], now);
    grosr_hist_add(level == 11 ? 0u : 1u, __popc(active));
}
#define GROSR_TRACE_LEVEL(l) grosr_trace_level(l)
// Per worker warp (block * 8 + warp, < 8192), running sums the host reads before and after a
// launch (latency_trace --spawn): where a warp's time goes round by round. Each warp adds to its
// own row only. Slots: GROSR_WT_*.
__device__ unsigned long long grosr_warp_trace[8192][16];
enum : unsigned { GROSR_WT_STACK_ROUNDS, GROSR_WT_STACK_TAKE_NS, GROSR_WT_QUEUE_ROUNDS, GROSR_WT_QUEUE_TAKE_NS,
                  GROSR_WT_PROCESS_NS, GROSR_WT_DRY_TAKES, GROSR_WT_DRY_TAKE_NS, GROSR_WT_PUSHES,
                  GROSR_WT_PUSH_NS };
__device__ __forceinline__ void grosr_warp_add(uint32_t slot, unsigned long long v) {
    const uint32_t w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (w < 8192) atomicAdd(&grosr_warp_trace[w][slot], v);   // a reduction: no round trip
}
#define GROSR_STAMP(i) do { if (blockIdx.x == 0 && threadIdx.x == 0) grosr_trace[i] = grosr::globaltimer(); } while (0)
#define GROSR_STAMP_ANY(i) do { grosr_trace[i] = grosr::globaltimer(); } while (0)
#define GROSR_STAMP_MIN(i) do { if ((threadIdx.x & 31) == 0) atomicMin(&grosr_trace[i], grosr::globaltimer()); } while (0)
#define GROSR_STAMP_MAX(i) do { if ((threadIdx.x & 31) == 0) atomicMax(&grosr_trace[i], grosr::globaltimer()); } while (0)
#else
#define GROSR_STAMP(i) do {} while (0)
#define GROSR_STAMP_ANY(i) do {} while (0)
#define GROSR_STAMP_MIN(i) do {} while (0)
#define GROSR_STAMP_MAX(i) do {} while (0)
#define GROSR_TRACE_LEVEL(l) do {} while (0)
#define GROSR_SEQ(id) do {} while (0)
#endif
