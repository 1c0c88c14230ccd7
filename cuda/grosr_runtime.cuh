// grosr device runtime: the persistent scheduler's data structures and protocols.
//
// This file is embedded in the grosr library and prepended to the generated code (task structs,
// bodies, dispatch switches) before NVRTC compiles it. README.md beside it describes the
// host <-> GPU protocol; every ordering below carries a comment saying why it is needed.
//
// Vocabulary: a *slot* is one queued task (kind, job, 48-byte record); a *queue* is a ring of
// slots in device memory, one per SM; a *warp stack* is a small LIFO of slots in shared memory,
// private to one warp; a *job* is what one host submit started plus everything it spawned.
#pragma once

typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long long int64_t;

// Layout checks of the generated record structs against Rust. Sizes are always checked; offsets
// where the compiler has a constant offsetof (NVRTC 13.0 has none; the Rust side then guarantees
// no padding, so equal sizes in the same order mean equal offsets).
#if defined(offsetof)
#define GROSR_OFFSETOF(T, f) offsetof(T, f)
#elif defined(__has_builtin)
#if __has_builtin(__builtin_offsetof)
#define GROSR_OFFSETOF(T, f) __builtin_offsetof(T, f)
#endif
#endif
#ifdef GROSR_OFFSETOF
#define GROSR_FIELD(T, f, off, size)                                                  \
    static_assert(sizeof(T::f) == size, "grosr: size of " #T "::" #f " differs from Rust"); \
    static_assert(GROSR_OFFSETOF(T, f) == off, "grosr: offset of " #T "::" #f " differs from Rust")
#else
#define GROSR_FIELD(T, f, off, size) \
    static_assert(sizeof(T::f) == size, "grosr: size of " #T "::" #f " differs from Rust")
#endif

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
__device__ __forceinline__ unsigned long long grosr_now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
// A spawn tree's timeline (latency_trace --spawn), in 4.096 µs buckets of %globaltimer kept
// as a ring of 128 (524 µs; the host zeroes it before a launch and unwraps it from the root's
// start): [0] tiny tasks (level 11) started, [1] other tasks started, [2] worker warps' dry
// takes. Relaxed reductions with no result: the trace adds no round trip to what it times.
constexpr unsigned GROSR_HIST_BUCKETS = 128, GROSR_HIST_SHIFT = 12;
__device__ unsigned int grosr_hist[3][GROSR_HIST_BUCKETS];
__device__ __forceinline__ void grosr_hist_add(unsigned row, unsigned n) {
    atomicAdd(&grosr_hist[row][(grosr_now() >> GROSR_HIST_SHIFT) % GROSR_HIST_BUCKETS], n);
}
// Thread 0 of block 0 (the ingest warp's lane 0) from a spawn tree's root on: the first 64 of
// its steps, each `time << 8 | step` (latency_trace --spawn prints them). Plain stores. Steps:
// 1 lane round, 2 bodies ran, 3 held tasks ran, 4 accounted, 5 take_work, 6 took the stack,
// 7 spawn_words, 8 stacked, 9 push, 10 pushed, 11 account, 12 Ctx::spawn.
__shared__ unsigned grosr_seq_n;
__device__ unsigned long long grosr_seq[64];
#define GROSR_SEQ(id) do { if (blockIdx.x == 0 && threadIdx.x == 0 && grosr_seq_n < 64) grosr_seq[grosr_seq_n++] = grosr_now() << 8 | (id); } while (0)
// The first and last start of each level l < 12 go to [16 + l] and [28 + l], which the host
// resets before a launch: one lane per warp round, one reduction each (no loads: no round trip).
__device__ void grosr_trace_level(uint32_t level) {
    if (level >= 12) return;
    const unsigned long long now = grosr_now();
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
#define GROSR_STAMP(i) do { if (blockIdx.x == 0 && threadIdx.x == 0) grosr_trace[i] = grosr_now(); } while (0)
#define GROSR_STAMP_ANY(i) do { grosr_trace[i] = grosr_now(); } while (0)
#define GROSR_STAMP_MIN(i) do { if ((threadIdx.x & 31) == 0) atomicMin(&grosr_trace[i], grosr_now()); } while (0)
#define GROSR_STAMP_MAX(i) do { if ((threadIdx.x & 31) == 0) atomicMax(&grosr_trace[i], grosr_now()); } while (0)
#else
#define GROSR_STAMP(i) do {} while (0)
#define GROSR_STAMP_ANY(i) do {} while (0)
#define GROSR_STAMP_MIN(i) do {} while (0)
#define GROSR_STAMP_MAX(i) do {} while (0)
#define GROSR_TRACE_LEVEL(l) do {} while (0)
#define GROSR_SEQ(id) do {} while (0)
#endif

namespace grosr {

// ---- Sizes shared with the host (grosr/src/layout.rs mirrors every struct below) ----------------
constexpr uint32_t WARP = 32;
constexpr uint32_t RECORD_WORDS = 12;            // 48-byte records (MAX_RECORD_BYTES)
constexpr uint32_t STACK_CAP = 32;               // slots in each warp's private stack
static_assert(STACK_CAP >= WARP, "a warp's stack takes a whole round of spawns");
constexpr uint32_t KIND_RANGE = 0xFFFFFFF0u;     // internal: a range of host-submitted records
constexpr uint32_t KIND_GRAPH = 0xFFFFFFF1u;     // host-submitted: launch a resident task graph
constexpr uint32_t KIND_GRAPH_RANGE = 0xFFFFFFF2u;  // internal: roots of a graph launch to spawn
constexpr uint32_t KIND_GRAPH_UNIT = 0xFFFFFFF3u;   // internal: a unit claimed from the graph board
constexpr uint32_t KIND_GRAPH_SMALL = 0xFFFFFFF4u;  // host-submitted: a whole small graph, inline
constexpr uint32_t NO_KIND = 0xFFFFFFFFu;
constexpr uint32_t BLOCK_THREADS = 256;          // threads per scheduler block (block-task width)
constexpr uint32_t WARPS_PER_BLOCK = BLOCK_THREADS / WARP;
constexpr uint32_t STOP_CHECK_PERIOD = 256;      // loop turns between reads of the stop flag
// Tuning (the builder's Tuning settings define these; the defaults below otherwise).
#ifndef GROSR_BYPASS_HOPS
#define GROSR_BYPASS_HOPS 128                    // 0 turns the scheduler bypass off
#endif
#ifndef GROSR_MIN_BLOCKS_PER_SM
#define GROSR_MIN_BLOCKS_PER_SM 2
#endif
#ifndef GROSR_IDLE_MAX_NS
#define GROSR_IDLE_MAX_NS 1024                   // longest back-off of an idle warp between polls
#endif
#ifndef GROSR_STEALS
#define GROSR_STEALS 4                           // random victims an idle warp tries per turn
#endif
constexpr uint32_t BYPASS_HOPS = GROSR_BYPASS_HOPS;   // chained tasks a worker runs in one go (run_held)
// The same on the ingest warp, which must get back to the host's descriptors soon.
constexpr uint32_t INGEST_BYPASS_HOPS = BYPASS_HOPS < 8 ? BYPASS_HOPS : 8;

enum Gran : uint32_t { GROSR_LANE = 0, GROSR_WARP = 1, GROSR_BLOCK = 2, GROSR_NO_GRAN = 3,
                       GRAN_RANGE = 4 /* internal */ };

__device__ __forceinline__ uint32_t umin(uint32_t a, uint32_t b) { return a < b ? a : b; }
__device__ __forceinline__ uint32_t umax(uint32_t a, uint32_t b) { return a > b ? a : b; }

// Error codes; grosr/src/error.rs turns them into grosr::Error variants.
enum ErrorCode : int32_t {
    ERR_NONE = 0,
    ERR_UNKNOWN_KIND = -1,        // a slot named a kind this kernel was not built with
    ERR_QUEUE_OVERFLOW = -2,      // a spawn found every queue full: the task was dropped
    ERR_PROTOCOL_STUCK = -3,      // a bounded spin ran out (a slot never filled or freed)
    ERR_SPAWN_OUTSIDE = -4,       // ctx.spawn in a kernel without a scheduler (baselines)
    // >= 1: a task called ctx.fail(code)
};

struct Slot {                     // 64 bytes: one queued task
    uint32_t seq;                 // ring protocol: i = free for index i, i+1 = holds index i
    uint32_t kind;
    uint32_t job;                 // job slot
    uint32_t node;                // graph node + 1 when the task is a node of the job's graph, else 0
    alignas(16) uint32_t words[RECORD_WORDS];
};

struct alignas(128) Counter { uint32_t value; uint32_t pad[31]; };

struct Queue {                    // header of one SM's ring; slots live in Params::slots
    Counter size;                 // slots reserved by pushers and not yet released by poppers
    Counter count;                // published-or-being-published items not yet claimed (int)
    Counter head;                 // next index to pop
    Counter tail;                 // next index to push
};

// One submitted slice, 256 bytes of mapped host memory: 32 cells of `payload | tag << 32`, each
// written by the host with one 8-byte store, tag = descriptor index + 1. Lane i loads cell i; the
// warp has the descriptor whole when every cell carries the tag (grosr/src/ring.rs, `publish`).
constexpr uint32_t DESC_CELLS = 32;
constexpr uint32_t DESC_KIND = 0, DESC_COUNT = 1, DESC_JOB_SLOT = 2, DESC_JOB_SEQ = 3,
                   DESC_ADJUST = 4, DESC_RECORDS_LO = 5, DESC_RECORDS_HI = 6,
                   DESC_INLINE = 7,         // 1: the records are in words DESC_INLINE_FIRST..
                   DESC_INLINE_FIRST = 8;
struct Desc { uint64_t cell[DESC_CELLS]; };

struct Completion {               // 16 bytes, mapped: one job slot's outcome
    uint32_t done_seq;            // the job_seq of the last job of this slot that finished
    int32_t error;
    uint32_t error_kind;
    uint32_t pad;
};

struct HostCtl {                  // mapped host memory, one cache line per writer
    uint32_t stop;                uint32_t pad0[31];   // host writes 1: kernel exits
    uint64_t desc_head;           uint32_t pad1[30];   // device: descriptors consumed
    uint32_t started_blocks;      uint32_t exited_blocks; uint32_t pad2[30];
    int32_t err_code;  uint32_t err_detail; uint32_t pad3[30];   // a stalled protocol
};

struct GraphDev;

struct DevJob {                   // device memory, one per job slot
    int32_t pending;              // tasks of the job not yet finished (queued, stacked or running)
    int32_t error;                // first error (0 = none)
    uint32_t error_kind;
    uint32_t seq;                 // job_seq of the job now using the slot
    const GraphDev* graph;        // the graph a graph launch runs (set at ingest), else stale
    uint64_t pad;
};

// A task graph uploaded once (grosr/src/graph/resident.rs): nodes with records, successor lists
// in CSR form, and per-node counters of predecessors still to finish in the current launch.
// In GraphDev::kinds: the node has no successors. It runs untagged (node 0, like any task), so
// no successor lookup follows it.
constexpr uint32_t NODE_LEAF = 0x80000000u;
__device__ __forceinline__ uint32_t node_kind(uint32_t k) { return k & ~NODE_LEAF; }
__device__ __forceinline__ uint32_t node_tag(uint32_t node, uint32_t k) { return k & NODE_LEAF ? 0u : node + 1; }

struct GraphDev {                 // device memory, 80 bytes
    const uint32_t* kinds;        // per node
    const uint32_t* words;        // per node, RECORD_WORDS words
    const uint32_t* succ_off;     // nodes + 1 offsets into succ
    const uint32_t* succ;         // successor node indices
    const uint32_t* indeg;        // per node: predecessors
    uint32_t* remaining;          // per node: predecessors not yet finished; back to indeg on release
    const uint32_t* roots;        // nodes without predecessors: lane tasks, then warp, then block
    uint32_t num_roots, num_nodes;
    uint32_t lane_roots;          // roots[0, lane_roots) are lane tasks
    uint32_t warp_roots_end;      // roots[lane_roots, warp_roots_end) warp tasks; the rest block
    uint32_t pad[2];
};

struct Params {                   // passed by value to every kernel
    HostCtl* host;                // mapped
    Desc* descs;                  // mapped, desc_cap entries
    uint32_t* desc_done;          // mapped, desc_cap entries: index + 1 once its records were read
    Completion* completions;      // mapped, job_slots entries
    DevJob* jobs;                 // device
    int32_t* desc_reads;          // device, desc_cap entries: records of a descriptor not yet read
    uint64_t* executed;           // device, one counter per kind
    Queue* queues;                // device, num_queues
    Slot* slots;                  // device, num_queues * queue_cap
    uint32_t* dev_stop;           // device: ingest copies the host's stop flag here
    int32_t* dev_err;             // device: first runtime error (CAS target)
    uint64_t desc_start;          // descriptor index to start ingesting at (restart)
    uint32_t num_queues, queue_cap, desc_cap, job_slots;
    uint32_t num_kinds, spin_limit;
};

// ---- Memory-model primitives (PTX, sm_70+) -------------------------------------------------------
// Sixteen bytes of mapped host memory in one PCIe read. Relaxed at system scope: callers have
// synchronised with the host's release already (an acquire load before it in program order).
__device__ __forceinline__ uint4 ld_relaxed_sys_v4(const void* p) {
    uint4 v;
    asm volatile("ld.relaxed.sys.global.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p) : "memory");
    return v;
}
// One descriptor cell. Relaxed, not acquire: an acquire would hold back the polls after it, and
// the tags make the cells self-validating (the callers fence where they need more; see ingest).
__device__ __forceinline__ uint64_t ld_relaxed_sys_u64(const void* p) {
    uint64_t v;
    asm volatile("ld.relaxed.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void st_relaxed_sys64(volatile uint64_t* p, uint64_t v) {
    asm volatile("st.relaxed.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ void fence_acq_rel_sys() {
    asm volatile("fence.acq_rel.sys;" ::: "memory");
}
__device__ __forceinline__ uint32_t ld_relaxed_sys(const void* p) {
    uint32_t v;
    asm volatile("ld.relaxed.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void st_release_sys(volatile uint32_t* p, uint32_t v) {
    asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ void st_release_sys64(volatile uint64_t* p, uint64_t v) {
    asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ uint32_t ld_acquire_gpu(const volatile uint32_t* p) {
    uint32_t v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void st_release_gpu(volatile uint32_t* p, uint32_t v) {
    asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ int32_t atom_add_acq_rel_gpu(int32_t* p, int32_t v) {
    int32_t old;
    asm volatile("atom.acq_rel.gpu.global.add.s32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
    return old;
}
__device__ __forceinline__ uint32_t lane_id() { return threadIdx.x & (WARP - 1); }
__device__ __forceinline__ uint32_t lanemask_lt() {
    uint32_t m;
    asm("mov.u32 %0, %%lanemask_lt;" : "=r"(m));
    return m;
}
__device__ __forceinline__ uint32_t sm_id() {
    uint32_t s;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
    return s;
}
__device__ __forceinline__ void named_barrier(uint32_t id) {
    // bar.sync orders shared-memory accesses of all the block's threads (the mailbox protocol).
    asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(blockDim.x) : "memory");
}

// Warp-wide reductions for task bodies of warp granularity: all 32 lanes call, all get the result.
__device__ __forceinline__ float warp_max(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Programmatic Dependent Launch (sm_90+): no-ops unless the launch asked for it.
__device__ __forceinline__ void pdl_wait() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_launch_dependents() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// ---- Errors ---------------------------------------------------------------------------------------
// Errors of a task (ctx.fail, unknown kind, overflow) fail its job only (fail_job). The runtime-wide
// slot in HostCtl is kept for the one error that stops everything: a stalled queue protocol.
__device__ void report_protocol_stall(const Params& p, uint32_t detail) {
    if (atomicCAS(p.dev_err, 0, ERR_PROTOCOL_STUCK) == 0) {   // the first stall is reported
        p.host->err_detail = detail;
        __threadfence_system();                 // the detail reaches the host before the code
        *(volatile int32_t*)&p.host->err_code = ERR_PROTOCOL_STUCK;
    }
}

// Marks a job failed with `code` (first failure wins); the job still completes.
__device__ void fail_job(const Params& p, uint32_t job, int32_t code, uint32_t kind) {
    if (atomicCAS(&p.jobs[job].error, 0, code) == 0) p.jobs[job].error_kind = kind;
}

// Publishes a finished job to the host. Called by the one thread whose update made pending 0.
__device__ void complete_job(const Params& p, uint32_t job) {
    GROSR_STAMP_ANY(6);
    DevJob& j = p.jobs[job];
    volatile Completion* c = &p.completions[job];
    c->error = *(volatile int32_t*)&j.error;
    c->error_kind = *(volatile uint32_t*)&j.error_kind;
    uint32_t seq = *(volatile uint32_t*)&j.seq;
    j.error = 0;                                 // the slot starts clean for its next job
    j.error_kind = 0;
    // Release at system scope, cumulative: everything the job's tasks wrote (ordered before us
    // by the acq_rel chain on `pending`) and the error fields above are visible to the host
    // before it sees done_seq.
    st_release_sys(&c->done_seq, seq);
    GROSR_STAMP_ANY(7);
}

// Adds `delta` to a job's pending count; the update that reaches zero completes the job.
__device__ void job_add(const Params& p, uint32_t job, int32_t delta) {
    if (delta == 0) return;
    if (delta > 0) {
        // Relaxed, with no result to wait for: a rise cannot complete the job (the count is never
        // below zero), and the tasks it counts reach other warps only through release stores
        // (queue pushes) that come after it, or run on this warp, whose later updates of the
        // count follow it in coherence order.
        atomicAdd(&p.jobs[job].pending, delta);
        return;
    }
    // acq_rel: release publishes this warp's task results before the count drops; acquire lets
    // the completing thread see every other warp's results (they released before their updates).
    int32_t old = atom_add_acq_rel_gpu(&p.jobs[job].pending, delta);
    if (old + delta == 0) complete_job(p, job);
}

// ---- Per-warp state in shared memory ---------------------------------------------------------------
struct StackEntry { uint32_t kind, job, node, pad; alignas(16) uint32_t words[RECORD_WORDS]; };

struct WarpState {
    uint32_t top;                 // entries in use (shared atomics: divergent groups may push)
    int32_t deferred;             // spawns into this stack not yet added to the job's pending
    uint32_t bypass_hops;         // BYPASS_HOPS, or INGEST_BYPASS_HOPS on the ingest warp
    uint32_t spread;              // queued spawns so far: the next goes this many queues on
    int32_t owed;                 // decrements of job owed_job's pending not yet applied (owe_ok)
    uint32_t owed_job;
    uint32_t owe_ok;              // 0 on the ingest warp: it settles every round at once
    uint32_t graph_job;           // ingest warp, while it runs a small launch itself: its job ...
    const GraphDev* graph;        // ... and graph, so releases skip the DevJob::graph load
    uint32_t pad[7];              // keeps `stack` at byte 80, the layout every figure was taken with
    StackEntry stack[STACK_CAP];
    // Per lane: the one lane task a lane task spawned, run next by the same lane with no stack,
    // round or count (scheduler bypass). [RECORD_WORDS] holds its kind, NO_KIND when empty.
    // 13 words a row: lanes hit distinct banks.
    uint32_t held[WARP][RECORD_WORDS + 1];
};

// Owed counts: a warp that runs uniform rounds does not decrement its job's pending count each
// round (every warp doing so makes that one counter the hottest address on the GPU); it owes the
// decrements (ws->owed) and pays children it spawns into the queues out of them (spawn_words).
// The stored count is then the true count plus what warps owe, never less, so a job completes
// only once every owed decrement is applied. A warp settles before it looks for work away from
// its own stack and home queue, before a round of another job, and before it exits: a job's
// completion waits at most for its last warps to find their home queues empty.
// Applies the warp's owed decrements. Called by all 32 lanes of the warp, converged.
__device__ void settle_owed(const Params& p, WarpState* ws) {
    // The warp barrier orders every lane's earlier results before the leader's release (job_add).
    __syncwarp();
    if (lane_id() == 0 && ws->owed != 0) {
        job_add(p, ws->owed_job, -ws->owed);
        ws->owed = 0;
    }
    __syncwarp();
}

// Pays for k queued children of `job` out of the warp's owed decrements if it owes that many
// (true); else the caller counts them on the job. Any lane; shared atomics (divergent groups).
__device__ bool pay_from_owed(WarpState* ws, uint32_t job, int32_t k) {
    if (!ws->owe_ok || ws->owed_job != job) return false;
    const int32_t old = atomicSub(&ws->owed, k);
    if (old >= k) return true;
    atomicAdd(&ws->owed, k);                     // not enough: undo (a racing payer may fall back too)
    return false;
}

struct Mailbox {                  // one block task at a time, run by all warps of the block
    volatile uint32_t epoch;      // bumped when a task is posted
    uint32_t busy;                // 1 from post until the poster has accounted for it
    uint32_t poster;              // warp index of the poster
    uint32_t kind, job, node;
    alignas(16) uint32_t words[RECORD_WORDS];
};

// ---- The context a task body sees ---------------------------------------------------------------------
struct Ctx {
    const Params* p;              // null in the baseline kernels (no scheduler)
    WarpState* ws;                // this warp's stack; null outside the scheduler
    uint32_t job;
    uint32_t kind;
    uint32_t gran;
    bool uniform;                 // all tasks of this round share `job`: spawns may defer counting
    int32_t* status;              // baseline kernels: where ctx.fail writes
    uint32_t node;                // graph node + 1 if this task is a node of the job's graph
    bool hold;                    // a lane task of the scheduler: its first lane-task spawn is held
    uint32_t hops_left;           // held tasks this lane may still run before it stacks the next

    // Index of this thread within the task (0 for lane tasks) and the number of threads in it.
    __device__ uint32_t lane() const {
        return gran == GROSR_LANE ? 0u : (gran == GROSR_WARP ? lane_id() : threadIdx.x);
    }
    __device__ uint32_t width() const {
        return gran == GROSR_LANE ? 1u : (gran == GROSR_WARP ? WARP : blockDim.x);
    }
    // Fails the task's job with a positive code; the job still completes and Job::wait reports it.
    __device__ void fail(int32_t code) const {
        int32_t c = code > 0 ? code : 1;
        if (p) fail_job(*p, job, c, kind);
        else if (status) atomicCAS(status, 0, c);
    }
    // Spawns a task of a registered type (generated grosr_spawn_<T> helpers call this).
    template <class T> __device__ void spawn(const T& t);
    // The device heap (grosr_alloc.cuh): 16-byte aligned, nullptr when exhausted; any task,
    // warp or SM may free what another allocated. A whole warp's calls are served together,
    // a partial warp's lane by lane.
    __device__ void* alloc(unsigned long long bytes) const;
    __device__ void free(void* p) const;
    template <class T> __device__ T* alloc_n(unsigned long long n) const {
        return static_cast<T*>(alloc(n * sizeof(T)));
    }
};

template <class T> struct KindOf;   // specialised by the generated code for every task type

// Generated by codegen: per-kind tables and dispatch switches.
__device__ uint32_t kind_gran(uint32_t kind);
__device__ uint32_t kind_size(uint32_t kind);
__device__ bool dispatch_lane(Ctx& ctx, uint32_t kind, const uint32_t* words);
__device__ bool dispatch_warp(Ctx& ctx, uint32_t kind, const uint32_t* words);
__device__ bool dispatch_block(Ctx& ctx, uint32_t kind, const uint32_t* words);

// ---- Queues: one bounded MPMC ring per SM ----------------------------------------------------------
// Pushers reserve capacity (size), then indices (tail); poppers claim items (count), then indices
// (head). One atomic per warp per operation, never a CAS retry loop. Each slot's seq says whose
// turn it is, so a claimed index waits (boundedly) only for a partner that is mid-write.

__device__ __forceinline__ Slot* slot_at(const Params& p, uint32_t q, uint32_t i) {
    return &p.slots[(uint64_t)q * p.queue_cap + (i & (p.queue_cap - 1))];
}

// A task into a slot the caller owns (its seq read the slot's index), and one out of a slot the
// caller claimed (its seq read index + 1). The callers publish with the seq.
__device__ __forceinline__ void write_slot(Slot* s, uint32_t kind, uint32_t job, uint32_t node,
                                           const uint32_t* words) {
    s->kind = kind;
    s->job = job;
    s->node = node;
    uint4* dst = reinterpret_cast<uint4*>(s->words);
    const uint4* src = reinterpret_cast<const uint4*>(words);
    dst[0] = src[0]; dst[1] = src[1]; dst[2] = src[2];
}
__device__ __forceinline__ void read_slot(const Slot* s, uint32_t& kind, uint32_t& job,
                                          uint32_t& node, uint32_t* words) {
    kind = s->kind;
    job = s->job;
    node = s->node;
    const uint4* src = reinterpret_cast<const uint4*>(s->words);
    uint4* dst = reinterpret_cast<uint4*>(words);
    dst[0] = src[0]; dst[1] = src[1]; dst[2] = src[2];
}

// Waits until *seq == want. Bounded: a partner mid-write finishes in nanoseconds; if it never does,
// the protocol is broken and we report instead of hanging.
__device__ bool wait_seq(const Params& p, volatile uint32_t* seq, uint32_t want) {
    for (uint32_t n = 0; n < p.spin_limit; ++n) {
        if (ld_acquire_gpu(seq) == want) return true;   // acquire: the slot's contents are ready
        if (n > 64) __nanosleep(64);
    }
    report_protocol_stall(p, want);
    return false;
}

// Pushes one slot per lane of `mask` (the calling, converged lanes) into queue q.
// Returns false (for all lanes) if q has no room for all of them.
__device__ bool push_to(const Params& p, uint32_t q, uint32_t mask, uint32_t kind, uint32_t job,
                        uint32_t node, const uint32_t* words) {
    const uint32_t lane = lane_id(), leader = __ffs(mask) - 1, k = __popc(mask);
    const uint32_t rank = __popc(mask & lanemask_lt());
    Queue& Q = p.queues[q];
    uint32_t base = 0;
    bool ok = true;
#ifdef GROSR_TRACE
    const unsigned long long traced = grosr_now();
#endif
    GROSR_SEQ(9);
    if (lane == leader) {
        // Relaxed is enough for size: it only bounds occupancy; slot seqs carry the data ordering.
        uint32_t s = atomicAdd(&Q.size.value, k);
        if (s + k > p.queue_cap) {
            atomicSub(&Q.size.value, k);
            ok = false;
        } else {
            base = atomicAdd(&Q.tail.value, k);
        }
    }
    ok = __shfl_sync(mask, ok, leader);
    if (!ok) return false;
    base = __shfl_sync(mask, base, leader);
    const uint32_t i = base + rank;
    Slot* s = slot_at(p, q, i);
    if (wait_seq(p, &s->seq, i)) {               // the previous lap's popper has released it
        write_slot(s, kind, job, node, words);
        // release: the record and header above become visible before the slot reads as full.
        st_release_gpu(&s->seq, i + 1);
    }
    __syncwarp(mask);
    // Relaxed: count only lets poppers claim; they still wait for each slot's seq (acquire).
    if (lane == leader) atomicAdd((int32_t*)&Q.count.value, (int32_t)k);
#ifdef GROSR_TRACE
    if (lane == leader) { grosr_warp_add(GROSR_WT_PUSHES, 1); grosr_warp_add(GROSR_WT_PUSH_NS, grosr_now() - traced); }
#endif
    GROSR_SEQ(10);
    return true;
}

// Pops up to `want` (<= 32) slots from queue q into lanes 0..got-1; returns got. All 32 lanes
// call it.
__device__ uint32_t pop_from(const Params& p, uint32_t q, uint32_t want, uint32_t& kind,
                             uint32_t& job, uint32_t& node, uint32_t* words) {
    const uint32_t lane = lane_id();
    Queue& Q = p.queues[q];
    uint32_t got = 0, base = 0;
    const int32_t seen = lane == 0 ? *(volatile int32_t*)&Q.count.value : 0;
    if (lane == 0 && seen > 0) {
        int32_t old = atomicSub((int32_t*)&Q.count.value, (int32_t)want);
        got = old <= 0 ? 0u : (old >= (int32_t)want ? want : (uint32_t)old);
        if (got < want) atomicAdd((int32_t*)&Q.count.value, (int32_t)(want - got));  // undo excess
        if (got) base = atomicAdd(&Q.head.value, got);
    }
    got = __shfl_sync(0xffffffffu, got, 0);
    if (got == 0) return 0;
    base = __shfl_sync(0xffffffffu, base, 0);
    if (lane < got) {
        const uint32_t i = base + lane;
        Slot* s = slot_at(p, q, i);
        if (wait_seq(p, &s->seq, i + 1)) {       // the pusher has finished writing index i
            read_slot(s, kind, job, node, words);
            // release: our reads of the slot complete before a next-lap pusher may overwrite it.
            st_release_gpu(&s->seq, i + p.queue_cap);
        } else {
            kind = NO_KIND;                       // the stall is reported already
        }
    }
    __syncwarp();                                // every lane has freed its slot before the room returns
    if (lane == 0) atomicSub(&Q.size.value, got);  // relaxed: capacity bookkeeping only
    __syncwarp();
    return got;
}

// Pushes into q, else into the other queues in turn. Accounting is the caller's business.
__device__ bool push_any(const Params& p, uint32_t q, uint32_t mask, uint32_t kind, uint32_t job,
                         uint32_t node, const uint32_t* words) {
    for (uint32_t t = 0; t < p.num_queues; ++t) {
        if (push_to(p, (q + t) % p.num_queues, mask, kind, job, node, words)) return true;
    }
    return false;
}

__device__ __forceinline__ uint32_t home_queue(const Params& p) { return sm_id() % p.num_queues; }

// The queue for a warp's next queued spawns (the calling lanes, `mask`): each call goes one
// queue further round from the SM's own, so a burst of children lands on every SM at once
// instead of waiting on one SM's queue to be found by thieves.
__device__ uint32_t spawn_queue(const Params& p, WarpState* ws, uint32_t mask) {
    const uint32_t home = home_queue(p);
    if (ws == nullptr) return home;
    const uint32_t leader = __ffs(mask) - 1;
    uint32_t k = 0;
    if (lane_id() == leader) k = atomicAdd(&ws->spread, 1u);   // shared: divergent groups may race
    return (home + __shfl_sync(mask, k, leader)) % p.num_queues;
}

// Pushes already-counted tasks (one per lane of `mask`) to the SM's queue, else any queue. If
// every queue is full each task is dropped, but never silently: its job fails with
// ERR_QUEUE_OVERFLOW and the task is uncounted, so the job still completes.
__device__ void push_counted(const Params& p, uint32_t q, uint32_t mask, uint32_t kind, uint32_t job,
                             uint32_t node, const uint32_t* words) {
    if (!push_any(p, q, mask, kind, job, node, words)) {
        fail_job(p, job, ERR_QUEUE_OVERFLOW, kind);
        job_add(p, job, -1);
    }
}

// ---- Spawning --------------------------------------------------------------------------------------
__device__ void spawn_words(Ctx& c, uint32_t kind, const uint32_t* words, uint32_t node = 0) {
    const uint32_t mask = __activemask();
    if (c.p == nullptr) {                        // baseline kernels have no scheduler
        if (c.status) atomicCAS(c.status, 0, ERR_SPAWN_OUTSIDE);
        return;
    }
    const Params& p = *c.p;
    const uint32_t lane = lane_id(), leader = __ffs(mask) - 1, k = __popc(mask);
    const uint32_t rank = __popc(mask & lanemask_lt());
    WarpState* ws = c.ws;
    GROSR_SEQ(7);
    // 1. The warp's own stack: the child runs next on this warp, with no global traffic at all.
    uint32_t base = STACK_CAP;
    if (lane == leader) {
        uint32_t b = atomicAdd(&ws->top, k);     // shared atomic: divergent groups may race here
        if (b + k <= STACK_CAP) base = b; else atomicSub(&ws->top, k);
    }
    base = __shfl_sync(mask, base, leader);
    // Lanes of different jobs (a mixed lane round) count per job; one atomic per job per call.
    // A uniform round's lanes share one job: no match instruction then.
    const uint32_t same_job = c.uniform ? mask : __match_any_sync(mask, c.job);
    const bool job_leader = lane == (uint32_t)(__ffs(same_job) - 1);
    if (base != STACK_CAP) {
        StackEntry& e = ws->stack[base + rank];
        e.kind = kind;
        e.job = c.job;
        e.node = node;
        for (uint32_t w = 0; w < RECORD_WORDS; ++w) e.words[w] = words[w];
        if (c.uniform) {
            // The stack is private, so the child cannot finish before this round's account()
            // adds `deferred`: counting can wait, and a chain of spawns costs no atomics.
            if (lane == leader) atomicAdd(&ws->deferred, (int32_t)k);
        } else if (job_leader) {
            atomicAdd(&p.jobs[c.job].pending, (int32_t)__popc(same_job));
        }
        GROSR_SEQ(8);
        return;
    }
    // 2. The SM's queue (or any other): visible to every warp, so count before publishing (or
    // pay out of what this warp owes the job: the stored count already covers them then).
    if (job_leader && !(c.uniform && pay_from_owed(ws, c.job, (int32_t)__popc(same_job))))
        atomicAdd(&p.jobs[c.job].pending, (int32_t)__popc(same_job));
    // The count precedes the publishing lanes' release stores (warp barrier, then release).
    __syncwarp(mask);
    push_counted(p, spawn_queue(p, ws, mask), mask, kind, c.job, node, words);
}

// Scheduler bypass: a lane task's first spawn of a lane task is held in the lane's row of
// ws->held instead of being stacked; as soon as its parent returns, the same lane runs it
// (the generated dispatch's take_held loop for its own kind, else run_held), uncounted (the
// parent's count passes to it). A second spawn sends the held task to the stack like any spawn,
// so tasks that fan out keep their breadth and only chains take the bypass.
// Holds `t` in the lane's row if it is empty (true); else this task fans out: the held task goes
// to the stack like any spawn, holding ends for this task, and the caller spawns `t` (false).
template <class T> __device__ bool hold_task(Ctx& c, const T& t) {
    uint32_t* row = c.ws->held[lane_id()];
    if (row[RECORD_WORDS] == NO_KIND) {
        memcpy(row, &t, sizeof(T));              // only the record's bytes: the reader copies as many
        row[RECORD_WORDS] = KindOf<T>::value;
        return true;
    }
    c.hold = false;
    alignas(16) uint32_t held[RECORD_WORDS];
    for (uint32_t w = 0; w < RECORD_WORDS; ++w) held[w] = row[w];
    const uint32_t held_kind = row[RECORD_WORDS];
    row[RECORD_WORDS] = NO_KIND;
    spawn_words(c, held_kind, held);
    return false;
}

template <class T> __device__ void Ctx::spawn(const T& t) {
    static_assert(sizeof(T) <= RECORD_WORDS * 4, "grosr: record too large");
    GROSR_SEQ(12);
    if (KindOf<T>::gran == GROSR_LANE && hold && hold_task(*this, t)) return;
    alignas(16) uint32_t words[RECORD_WORDS] = {0};
    memcpy(words, &t, sizeof(T));
    spawn_words(*this, KindOf<T>::value, words);
}

// The generated lane dispatch runs a held task of its own kind in a tight loop (take_held), so
// a chain of one task type costs a body and a small copy per hop; run_held takes what is left.
// Takes the lane's held task into `t` if it is of kind `kind` and the lane has hops left
// (`hops` counts the loop's takes).
template <class T> __device__ bool take_held(Ctx& c, uint32_t kind, T& t, uint32_t& hops) {
    if (!c.hold || c.hops_left == 0) return false;
    uint32_t* row = c.ws->held[lane_id()];
    if (row[RECORD_WORDS] != kind) return false;
    memcpy(&t, row, sizeof(T));
    row[RECORD_WORDS] = NO_KIND;                 // the body may hold its own child here now
    --c.hops_left;
    ++hops;
    return true;
}
// Counts the executions of a take_held loop (the dispatched task itself is counted by account()).
__device__ __forceinline__ void count_held(const Ctx& c, uint32_t kind, uint32_t hops) {
    if (hops) atomicAdd((unsigned long long*)&c.p->executed[kind], (unsigned long long)hops);
}

// ---- Resident task graphs ------------------------------------------------------------------------------
// A graph launch is one host-submitted record naming a GraphDev. Its roots are spawned as tasks
// tagged with their node; when a node's task has run, each successor's `remaining` counter drops,
// and the update that reaches zero spawns the successor (in the same job). Counters reset to
// `indeg` as they reach zero, so the next launch finds them ready with no host work.

// Spawns node `node` of graph g (counted like any spawn: onto this warp's stack, else a queue).
__device__ void spawn_node(Ctx& c, const GraphDev* g, uint32_t node) {
    alignas(16) uint32_t words[RECORD_WORDS];
    const uint4* src = reinterpret_cast<const uint4*>(g->words + (uint64_t)node * RECORD_WORDS);
    uint4* dst = reinterpret_cast<uint4*>(words);
    dst[0] = src[0]; dst[1] = src[1]; dst[2] = src[2];
    const uint32_t k = g->kinds[node];
    spawn_words(c, node_kind(k), words, node_tag(node, k));
}

// Called by every thread of a task (ctx.lane() / ctx.width() split the work) after the body ran
// and its writes were ordered before this call (the callers' barriers): releases the successors
// of node c.node - 1 whose last predecessor this was.
__device__ void release_successors(Ctx& c) {
    const GraphDev* g = c.ws && c.ws->graph_job == c.job ? c.ws->graph : c.p->jobs[c.job].graph;
    const uint32_t node = c.node - 1;
    const uint32_t end = g->succ_off[node + 1];
    for (uint32_t e = g->succ_off[node] + c.lane(); e < end; e += c.width()) {
        const uint32_t s = g->succ[e];
        // acq_rel: the release publishes this node's results (ordered before us by the caller's
        // barrier) to whoever runs s; the acquire of the last decrement sees every other
        // predecessor's results before s is spawned.
        if (atom_add_acq_rel_gpu((int32_t*)&g->remaining[s], -1) == 1) {
            // Plain store: the next launch's decrements come after this job has completed.
            g->remaining[s] = g->indeg[s];
            spawn_node(c, g, s);
        }
    }
}

// ---- Rounds: running tasks and accounting for them -----------------------------------------------
// Every lane calls account(); `has` lanes executed a task of `kind` for `job` this round.
__device__ void account(const Params& p, WarpState* ws, bool has, uint32_t kind, uint32_t job,
                        bool uniform) {
    const uint32_t lane = lane_id();
    __syncwarp();                                // bodies' spawns (ws->deferred) are complete
    GROSR_SEQ(11);
    const uint32_t done = __ballot_sync(0xffffffffu, has);
    if (done == 0) return;
    // Lanes of one kind (the usual round) need no match instruction.
    const uint32_t kind0 = __shfl_sync(0xffffffffu, kind, __ffs(done) - 1);
    const uint32_t same_kind = __all_sync(0xffffffffu, !has || kind == kind0)
                                   ? done : __match_any_sync(0xffffffffu, has ? kind : NO_KIND);
    if (has && kind < p.num_kinds && lane == (uint32_t)(__ffs(same_kind) - 1))
        atomicAdd((unsigned long long*)&p.executed[kind], (unsigned long long)__popc(same_kind));
    if (uniform) {
        const int32_t delta = ws->deferred - (int32_t)__popc(done);
        __syncwarp();
        // A round that spawned as many tasks (onto this warp's stack) as it ran changes no count:
        // a chain of spawns costs no fence and no atomic per hop.
        // No fence needed: the __syncwarp above orders every lane's results before the leader's
        // atom.acq_rel, whose release is cumulative over them.
        if (lane == (uint32_t)(__ffs(done) - 1)) {
            if (ws->owe_ok) {
                // Owe the round's net decrements (see settle_owed); another job's debt is paid
                // first. More children than debt: the excess is counted now.
                if (ws->owed != 0 && ws->owed_job != job) job_add(p, ws->owed_job, -ws->owed);
                const int32_t owed = (ws->owed_job == job ? ws->owed : 0) - delta;
                ws->owed_job = job;
                ws->owed = owed < 0 ? 0 : owed;
                if (owed < 0) job_add(p, job, -owed);
            } else if (delta != 0) {
                job_add(p, job, delta);
            }
        }
        if (lane == 0) ws->deferred = 0;
    } else {
        // As above: the __syncwarp at the top of account() orders the lanes' results first.
        const uint32_t same_job = __match_any_sync(0xffffffffu, has ? job : NO_KIND);
        if (has && lane == (uint32_t)(__ffs(same_job) - 1)) job_add(p, job, -(int32_t)__popc(same_job));
    }
    __syncwarp();
}

// Runs, on this lane, what the generated dispatch's own loop left held: a task of another kind,
// or one past the lane's hops (ws->bypass_hops a round, shared by both loops), which is stacked
// like any spawn. Held tasks are never counted: each takes over its parent's count, which
// account() settles once for the lane. Their executions are counted as they run.
__device__ void run_held(const Params& p, WarpState* ws, Ctx& c) {
    uint32_t* row = ws->held[lane_id()];
    while (row[RECORD_WORDS] != NO_KIND) {
        const uint32_t kind = row[RECORD_WORDS];
        row[RECORD_WORDS] = NO_KIND;
        if (c.hops_left == 0) {
            alignas(16) uint32_t words[RECORD_WORDS];
            for (uint32_t w = 0; w < RECORD_WORDS; ++w) words[w] = row[w];
            c.hold = false;
            spawn_words(c, kind, words);
            return;
        }
        atomicAdd((unsigned long long*)&p.executed[kind], 1ull);
        Ctx h{&p, ws, c.job, kind, GROSR_LANE, c.uniform, nullptr, 0u, true, c.hops_left - 1};
        // Straight from the row: the dispatch copies the record out before the body runs (and
        // may hold its own child in the row). Held only if its kind is a known lane kind.
        dispatch_lane(h, kind, row);
        c.hops_left = h.hops_left;
    }
}

__device__ void run_lane_round(const Params& p, WarpState* ws, bool has, uint32_t kind,
                               uint32_t job, uint32_t node, const uint32_t* words) {
    const uint32_t first = __ffs(__ballot_sync(0xffffffffu, has)) - 1;
    const uint32_t job0 = __shfl_sync(0xffffffffu, job, first & 31);
    const bool uniform = __all_sync(0xffffffffu, !has || job == job0);
    GROSR_SEQ(1);
    if (has) {
        Ctx c{&p, ws, job, kind, GROSR_LANE, uniform, nullptr, node, BYPASS_HOPS > 0, ws->bypass_hops};
        if (!dispatch_lane(c, kind, words)) {
            fail_job(p, job, ERR_UNKNOWN_KIND, kind);
        }
        GROSR_STAMP(5);
        GROSR_SEQ(2);
        // A lane task is one thread: its own writes precede its decrements in program order.
        if (node) release_successors(c);
        run_held(p, ws, c);
        GROSR_SEQ(3);
    }
    account(p, ws, has, kind, job, uniform);
    GROSR_SEQ(4);
}

// Runs a warp task; if it stacked exactly one warp task (a chain's next hop), pops and runs that
// one right away, up to ws->bypass_hops times: the hop skips the take_work/process round trip.
// The popped task was counted when stacked, exactly as if take_work had popped it.
__device__ __noinline__ void run_warp_task(const Params& p, WarpState* ws, uint32_t kind, uint32_t job,
                              uint32_t node, const uint32_t* words) {
    alignas(16) uint32_t cur[RECORD_WORDS];
    for (uint32_t w = 0; w < RECORD_WORDS; ++w) cur[w] = words[w];
    for (uint32_t hops = 1;; ++hops) {
        const uint32_t top = ws->top;            // only this task pushes to the stack meanwhile
        Ctx c{&p, ws, job, kind, GROSR_WARP, true, nullptr, node};
        if (!dispatch_warp(c, kind, cur) && lane_id() == 0) {
            fail_job(p, job, ERR_UNKNOWN_KIND, kind);
        }
        if (node) {
            // Every lane's writes precede every lane's decrements (each release is cumulative over
            // what the warp barrier ordered before it).
            __syncwarp();
            release_successors(c);
        }
        account(p, ws, lane_id() == 0, kind, job, true);   // ends with a warp barrier
        if (hops >= ws->bypass_hops || ws->top != top + 1) return;
        const StackEntry& e = ws->stack[top];
        if (kind_gran(e.kind) != GROSR_WARP) return;
        kind = e.kind; job = e.job; node = e.node;
        for (uint32_t w = 0; w < RECORD_WORDS; ++w) cur[w] = e.words[w];
        __syncwarp();                            // every lane has read the entry
        if (lane_id() == 0) ws->top = top;
        __syncwarp();
    }
}

// ---- Graph ranges: the roots of a graph launch ----------------------------------------------------
// A graph range [begin, end) of the roots is one counted task of the job. The warp that takes
// one pushes halves (counted first) for other warps to steal until little is left, then runs the
// roots right there: 32 lane roots per round, warp roots one by one (each counted through the
// round's deferred count just before it runs, so a root costs no queue push and no atomic);
// block roots are spawned, since they need the block's mailbox. The range settles its own count.
struct GraphRange { uint64_t graph; uint32_t begin, end; };

// Scheduling weight of roots [b, e): lane roots count 1 per 32, warp and block roots 1 each.
__device__ __forceinline__ uint32_t graph_weight(const GraphDev* g, uint32_t b, uint32_t e) {
    const uint32_t lane_e = umin(e, g->lane_roots), lanes = lane_e > b ? lane_e - b : 0u;
    return (lanes + WARP - 1) / WARP + (e - b - lanes);
}

constexpr uint32_t GRAPH_LEAF_WEIGHT = 2;   // a warp runs at most this much of a range itself

// Runs roots [begin, end) of g right here. `counted`: the launch counted every root already (the
// board), so a root's run only takes its count away; otherwise (a range, counted once as a whole)
// each root is counted through the round's deferred count just before it runs. Block roots are
// spawned (they need a block's mailbox); the caller's account() settles the range or unit.
__device__ void run_graph_roots(const Params& p, WarpState* ws, const GraphDev* g, uint32_t begin,
                                uint32_t end, uint32_t job, bool counted) {
    const uint32_t lane = lane_id();
    // The part of each class: [begin, lane_end) lane roots, [lane_end, warp_end) warp
    // roots, [warp_end, end) block roots (any part may be empty).
    const uint32_t lane_end = umax(begin, umin(end, g->lane_roots));
    const uint32_t warp_end = umax(lane_end, umin(end, g->warp_roots_end));
    GROSR_STAMP_MIN(14);
    // Lane roots: 32 per round, each lane its own node (kinds may differ).
    for (uint32_t b = begin; b < lane_end; b += WARP) {
        const uint32_t n = umin(WARP, lane_end - b);
        const bool has = lane < n;
        uint32_t tag = 0, kind = NO_KIND;
        alignas(16) uint32_t words[RECORD_WORDS];
        if (has) {
            const uint32_t node = g->roots[b + lane];
            const uint32_t k = g->kinds[node];
            kind = node_kind(k);
            tag = node_tag(node, k);
            const uint4* src = reinterpret_cast<const uint4*>(g->words + (uint64_t)node * RECORD_WORDS);
            uint4* dst = reinterpret_cast<uint4*>(words);
            dst[0] = src[0]; dst[1] = src[1]; dst[2] = src[2];
        }
        // The round's account() subtracts the n roots it ran: count them there, not here.
        if (lane == 0 && !counted) ws->deferred += (int32_t)n;
        __syncwarp();
        run_lane_round(p, ws, has, kind, job, tag, words);
    }
    // Warp roots one by one, the record loaded by all lanes (a broadcast read).
    for (uint32_t b = lane_end; b < warp_end; ++b) {
        const uint32_t node = g->roots[b];
        alignas(16) uint32_t words[RECORD_WORDS];
        const uint4* src = reinterpret_cast<const uint4*>(g->words + (uint64_t)node * RECORD_WORDS);
        uint4* dst = reinterpret_cast<uint4*>(words);
        dst[0] = src[0]; dst[1] = src[1]; dst[2] = src[2];
        const uint32_t k = g->kinds[node];
        if (lane == 0 && !counted) ws->deferred += 1;
        __syncwarp();
        run_warp_task(p, ws, node_kind(k), job, node_tag(node, k), words);
    }
    // Block roots: spawned (counted by the range's own account()).
    Ctx c{&p, ws, job, KIND_GRAPH_RANGE, GROSR_WARP, true, nullptr};
    for (uint32_t b = warp_end; b < end; b += WARP) {
        if (b + lane < end) spawn_node(c, g, g->roots[b + lane]);
        __syncwarp();
    }
    GROSR_STAMP_MAX(15);
}

__device__ __noinline__ void run_graph_range(const Params& p, WarpState* ws, GraphRange r, uint32_t job) {
    const uint32_t lane = lane_id();
    const GraphDev* g = reinterpret_cast<const GraphDev*>(r.graph);
    while (graph_weight(g, r.begin, r.end) > GRAPH_LEAF_WEIGHT) {
        uint32_t mid = r.begin + (r.end - r.begin) / 2;
        if (mid < g->lane_roots) mid = r.begin + (mid - r.begin + WARP - 1) / WARP * WARP;  // whole rounds
        if (mid <= r.begin || mid >= r.end) break;
        GraphRange right{r.graph, mid, r.end};
        alignas(16) uint32_t words[RECORD_WORDS] = {0};
        memcpy(words, &right, sizeof(GraphRange));
        if (lane == 0) {
            // Counted before it is published: the right half is a task of the job until it runs.
            atomicAdd(&p.jobs[job].pending, 1);
            push_counted(p, home_queue(p), 1u, KIND_GRAPH_RANGE, job, 0u, words);
        }
        __syncwarp();
        r.end = mid;
    }
    // The range's own count goes with its first round's: that round's account() adds
    // deferred - executed once, so a root that spawns one successor changes no count at all
    // (before, the round added +1 and the range's own account -1: two atomics in a row).
    if (lane == 0) ws->deferred -= 1;
    __syncwarp();
    run_graph_roots(p, ws, g, r.begin, r.end, job, false);
    // What no round took (block roots' spawns, or the -1 if no round ran) is settled here.
    __syncwarp();
    if (lane == 0) {
        const int32_t d = ws->deferred;
        ws->deferred = 0;
        if (d != 0) job_add(p, job, d);
    }
    __syncwarp();
}

// ---- The graph board: a large launch's roots, claimed by every idle warp -----------------------
// A launch with more roots than a warp runs alone takes one board entry instead of being cut into
// ranges: its roots are counted at ingest, and any warp whose own queue is empty claims the next
// *unit* (32 lane roots, or one warp or block root) with one atomic add on the entry's state.
// state = job << 44 | units << 22 | next claimed unit. A claim returns the job and the total with
// the unit, so a claim never reads a field a newer launch may have rewritten; a late claim that
// lands on a reused entry claims a unit of that newer launch (its roots are counted too) or none.
// `live` has a bit per entry with units left: set by the ingest warp (the only one that fills
// entries, and only entries whose bit is clear), cleared by whoever claims an entry's last unit.
// A warp claims once per look at `live`, so claims past the last unit stay below one per warp.
constexpr uint32_t BOARD_ENTRIES = 32;
constexpr uint32_t BOARD_UNIT_BITS = 22, BOARD_JOB_SHIFT = 44;
constexpr uint64_t BOARD_UNIT_MASK = (1ull << BOARD_UNIT_BITS) - 1;
// Claims past the last unit (at most one per warp) must not carry into the units field.
constexpr uint32_t BOARD_MAX_UNITS = (1u << BOARD_UNIT_BITS) - (1u << 17);
struct GraphBoard {
    uint32_t live; uint32_t pad[31];             // its own line: read by every idle warp
    unsigned long long state[BOARD_ENTRIES];
};
__device__ GraphBoard grosr_board;               // zeroed by grosr_init before every start

__device__ __forceinline__ uint64_t atom_add_acq_rel_gpu_u64(unsigned long long* p, uint64_t v) {
    uint64_t old;
    asm volatile("atom.acq_rel.gpu.global.add.u64 %0, [%1], %2;" : "=l"(old) : "l"(p), "l"(v) : "memory");
    return old;
}
__device__ __forceinline__ void st_release_gpu_u64(unsigned long long* p, uint64_t v) {
    asm volatile("st.release.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

// Units of a launch: lane roots 32 to a unit, then one per warp or block root.
__device__ __forceinline__ uint32_t graph_units(const GraphDev* g) {
    return (g->lane_roots + WARP - 1) / WARP + (g->num_roots - g->lane_roots);
}

// Offers a launch's roots on the board (lane 0). False if no entry is free or it is too large:
// the caller cuts it into ranges as before.
__device__ bool board_offer(const Params& p, const GraphDev* g, uint32_t job, uint32_t roots) {
    const uint32_t units = graph_units(g);
    if (units >= BOARD_MAX_UNITS || job >= (1u << (64 - BOARD_JOB_SHIFT))) return false;
    const uint32_t live = *(volatile uint32_t*)&grosr_board.live;
    if (live == 0xffffffffu) return false;
    const uint32_t e = __ffs(~live) - 1;
    // Every root counted now, replacing the launch record's count: a claimed unit's run takes
    // its roots' counts away, so the job cannot complete while a unit is unclaimed.
    atomicAdd(&p.jobs[job].pending, (int32_t)roots - 1);
    // The bit goes up before the state: a warp that sees it early claims from the old,
    // exhausted state (nothing). The other order could lose the bit's clearing: late claims
    // from the entry's previous launch may take every unit, the last one included, before the
    // bit is set, and a bit that stays up sends every idle warp's add to an exhausted entry.
    atomicOr(&grosr_board.live, 1u << e);
    // Release: the job's graph pointer, the count and the bit above come before any claim of
    // this state, so the claim of the last unit clears the bit after it was set.
    st_release_gpu_u64(&grosr_board.state[e], (uint64_t)job << BOARD_JOB_SHIFT | (uint64_t)units << BOARD_UNIT_BITS);
    return true;
}

// Claims a unit from the board entries in `live` (lane 0's value). Returns 1 with lane 0 holding
// a KIND_GRAPH_UNIT task (words[0] = the unit), else 0.
__device__ uint32_t board_claim(const Params& p, uint32_t live, uint32_t& kind, uint32_t& job,
                                uint32_t* words) {
    live = __shfl_sync(0xffffffffu, live, 0);
    if (live == 0) return 0;
    uint32_t got = 0;
    if (lane_id() == 0) {
        // Start the search at a bit of its own, so that warps spread over concurrent launches.
        const uint32_t rot = (blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / WARP) & (BOARD_ENTRIES - 1);
        const uint32_t turned = rot ? (live >> rot) | (live << (32 - rot)) : live;
        const uint32_t e = (__ffs(turned) - 1 + rot) & (BOARD_ENTRIES - 1);
        // Acquire pairs with board_offer's release (the job's graph and counts). The release
        // half is not needed (atom.acquire would do); acq_rel is what was measured.
        const uint64_t old = atom_add_acq_rel_gpu_u64(&grosr_board.state[e], 1);
        const uint32_t unit = (uint32_t)(old & BOARD_UNIT_MASK);
        const uint32_t units = (uint32_t)((old >> BOARD_UNIT_BITS) & BOARD_UNIT_MASK);
        if (unit + 1 == units) atomicAnd(&grosr_board.live, ~(1u << e));   // the last unit: no more
        if (unit < units) {
            got = 1;
            kind = KIND_GRAPH_UNIT;
            job = (uint32_t)(old >> BOARD_JOB_SHIFT);
            words[0] = unit;
        }
    }
    return __shfl_sync(0xffffffffu, got, 0);
}

// Runs a claimed unit: its roots were counted at the launch.
__device__ __noinline__ void run_graph_unit(const Params& p, WarpState* ws, uint32_t job, uint32_t unit) {
    __syncwarp();   // lane 0's claim acquired the launch; the barrier passes that on to the others
    const GraphDev* g = *(const GraphDev* volatile*)&p.jobs[job].graph;
    const uint32_t lane_units = (g->lane_roots + WARP - 1) / WARP;
    if (unit < lane_units) {
        run_graph_roots(p, ws, g, unit * WARP, umin(unit * WARP + WARP, g->lane_roots), job, true);
        return;
    }
    const uint32_t root = g->lane_roots + (unit - lane_units);
    run_graph_roots(p, ws, g, root, root + 1, job, true);
    // A block root was spawned (and counted): its count from the launch goes now.
    if (root >= g->warp_roots_end) account(p, ws, lane_id() == 0, KIND_GRAPH_UNIT, job, true);
}

// Loads one record of `size` bytes (any alignment) from mapped memory into words. Each load is
// a PCIe round trip, and the loads of one record are independent: wide ones, issued together.
__device__ void load_record(uint32_t* words, const uint8_t* src, uint32_t size) {
    for (uint32_t w = 0; w < RECORD_WORDS; ++w) words[w] = 0;
    if ((size & 15) == 0 && (((uint64_t)src) & 15) == 0) {
        // 16, 32 or 48-byte records (at multiples of their size in a 16-byte aligned arena).
        uint4 v[RECORD_WORDS / 4];
        for (uint32_t q = 0; q < RECORD_WORDS / 4; ++q)
            if (q * 16 < size) v[q] = ld_relaxed_sys_v4(src + q * 16);
        for (uint32_t q = 0; q < RECORD_WORDS / 4; ++q)
            if (q * 16 < size) {
                words[4 * q] = v[q].x; words[4 * q + 1] = v[q].y;
                words[4 * q + 2] = v[q].z; words[4 * q + 3] = v[q].w;
            }
    } else if ((size & 3) == 0 && (((uint64_t)src) & 3) == 0) {
        uint32_t v[RECORD_WORDS];
        for (uint32_t w = 0; w < RECORD_WORDS; ++w) if (w * 4 < size) v[w] = ld_relaxed_sys(src + w * 4);
        for (uint32_t w = 0; w < RECORD_WORDS; ++w) if (w * 4 < size) words[w] = v[w];
    } else {
        uint8_t* d = reinterpret_cast<uint8_t*>(words);
        const volatile uint8_t* s = src;
        for (uint32_t b = 0; b < size; ++b) d[b] = s[b];
    }
}

// A range of records the host submitted: split it so other warps can steal halves, then run it.
// Ranges are accounting-neutral: the job's pending count already includes all their records.
struct Range { uint32_t kind, begin, end, desc; uint64_t base; };

__device__ void range_records_read(const Params& p, uint32_t desc, uint32_t n) {
    if (lane_id() != 0) return;
    int32_t* reads = &p.desc_reads[desc & (p.desc_cap - 1)];
    // Relaxed atomic, then a system-scope release store: our loads of the mapped records have
    // completed (they were consumed into registers) before the host may reuse the arena space.
    if (atomicSub(reads, (int32_t)n) == (int32_t)n)
        st_release_sys(&p.desc_done[desc & (p.desc_cap - 1)], desc + 1);
}

__device__ __noinline__ void run_range(const Params& p, WarpState* ws, Range r, uint32_t job) {
    const uint32_t lane = lane_id();
    const uint32_t gran = kind_gran(r.kind), size = kind_size(r.kind);
    if (gran == GROSR_NO_GRAN) {
        if (lane == 0) {
            fail_job(p, job, ERR_UNKNOWN_KIND, r.kind);
        }
        range_records_read(p, r.desc, r.end - r.begin);
        if (lane == 0) job_add(p, job, -(int32_t)(r.end - r.begin));
        return;
    }
    const uint32_t per = gran == GROSR_LANE ? WARP : 1u;
    const uint32_t keep = gran == GROSR_LANE ? 8 * WARP : 4u;   // below this, run it here
    while (r.end - r.begin > keep) {
        uint32_t mid = r.begin + ((r.end - r.begin) / 2 + per - 1) / per * per;
        Range right{r.kind, mid, r.end, r.desc, r.base};
        alignas(16) uint32_t words[RECORD_WORDS] = {0};
        memcpy(words, &right, sizeof(Range));
        // One slot for the warp: pushed by lane 0 alone (mask 1), not once per lane.
        uint32_t pushed = 0;
        if (lane == 0) pushed = push_to(p, home_queue(p), 1u, KIND_RANGE, job, 0u, words);
        if (!__shfl_sync(0xffffffffu, pushed, 0)) break;
        r.end = mid;
    }
    const uint8_t* base = reinterpret_cast<const uint8_t*>(r.base);
    for (uint32_t b = r.begin; b < r.end; b += per) {
        const uint32_t n = umin(per, r.end - b);
        alignas(16) uint32_t words[RECORD_WORDS];
        if (gran == GROSR_LANE) {
            const bool has = lane < n;
            if (has) load_record(words, base + (uint64_t)(b + lane) * size, size);
            GROSR_STAMP(4);
            __syncwarp();
            run_lane_round(p, ws, has, r.kind, job, 0u, words);
            // After the round, not before: a lone task's completion then reaches the host one
            // system-scope release earlier; the records were in registers all along.
            range_records_read(p, r.desc, n);
            GROSR_STAMP(8);
        } else {
            load_record(words, base + (uint64_t)b * size, size);
            __syncwarp();
            if (gran == GROSR_WARP) {
                run_warp_task(p, ws, r.kind, job, 0u, words);
            } else if (lane == 0) {
                // Block tasks reach a block's mailbox through a queue; they are counted already.
                push_counted(p, home_queue(p), 1u, r.kind, job, 0u, words);
            }
            __syncwarp();
            range_records_read(p, r.desc, 1);
        }
    }
}

// Moves every entry of the warp's stack to the queues (they are counted already).
__device__ __noinline__ void requeue_stack(const Params& p, WarpState* ws) {
    __syncwarp();
    const uint32_t top = ws->top;
    for (uint32_t base = 0; base < top; base += WARP) {
        const uint32_t n = umin(WARP, top - base);
        if (lane_id() < n) {
            const StackEntry& e = ws->stack[base + lane_id()];
            alignas(16) uint32_t words[RECORD_WORDS];
            for (uint32_t w = 0; w < RECORD_WORDS; ++w) words[w] = e.words[w];
            const uint32_t mask = __activemask();
            push_counted(p, spawn_queue(p, ws, mask), mask, e.kind, e.job, e.node, words);
        }
        __syncwarp();
    }
    __syncwarp();                                // every lane has read top
    if (lane_id() == 0) ws->top = 0;
    __syncwarp();
}

// ---- Ingest: host descriptors -> ranges in the SM queues ------------------------------------------
__device__ uint32_t take_work(const Params& p, WarpState* ws, uint32_t& kind, uint32_t& job,
                              uint32_t& node, uint32_t* words, uint32_t& rng);
__device__ void process(const Params& p, WarpState* ws, Mailbox& mbox, uint32_t n, uint32_t kind,
                        uint32_t job, uint32_t node, const uint32_t* words);

// Rounds the ingest warp runs of its own spawns.
constexpr uint32_t INGEST_DRAIN_ROUNDS = 16;

// After running a small submission, the ingest warp runs what it spawned onto its own stack for
// a few rounds (a short chain or a small graph then completes with no queue hop at all), then
// moves the rest to the queues, since the ingest warp takes no work from them.
__device__ __noinline__ void drain_stack(const Params& p, WarpState* ws, Mailbox& mbox) {
    uint32_t rng = 1;
    for (uint32_t round = 0; round < INGEST_DRAIN_ROUNDS && ws->top > 0; ++round) {
        uint32_t kind = NO_KIND, job = 0, node = 0, words[RECORD_WORDS];
        // The stack is non-empty, so take_work takes from it and never touches a queue.
        const uint32_t n = take_work(p, ws, kind, job, node, words, rng);
        process(p, ws, mbox, n, kind, job, node, words);
    }
    requeue_stack(p, ws);
}

// Runs a small launch right here on the ingest warp, with the graph cached in the warp's state for
// the releases of the tasks it runs meanwhile (all of this job: its stack was empty before).
__device__ void run_launch_here(const Params& p, WarpState* ws, Mailbox& mbox, uint32_t job,
                                const GraphDev* g, uint32_t root_tag, uint32_t root_kind,
                                const uint32_t* root_words) {
    const uint32_t lane = lane_id();
    if (lane == 0) { ws->graph = g; ws->graph_job = job; }
    __syncwarp();
    if (root_tag != 0) {
        // The launch carried its only root: it runs on the launch record's count, with no load
        // of the graph's header, roots or records first.
        const uint32_t node = root_tag - 1, kind = node_kind(root_kind), tag = node_tag(node, root_kind);
        GROSR_STAMP_MIN(14);
        const uint32_t gran = kind_gran(kind);
        if (gran == GROSR_LANE) {
            run_lane_round(p, ws, lane == 0, kind, job, tag, root_words);
        } else if (gran == GROSR_WARP) {
            run_warp_task(p, ws, kind, job, tag, root_words);
        } else {
            // A block root needs a block's mailbox: spawned (counted), the record's count goes.
            Ctx c{&p, ws, job, KIND_GRAPH_RANGE, GROSR_WARP, true, nullptr};
            if (lane == 0) spawn_words(c, kind, root_words, tag);
            account(p, ws, lane == 0, KIND_GRAPH_RANGE, job, true);
        }
        GROSR_STAMP_MAX(15);
    } else {
        GraphRange r{(uint64_t)g, 0, g->num_roots};
        run_graph_range(p, ws, r, job);   // accounts for itself
    }
    drain_stack(p, ws, mbox);
    __syncwarp();
    if (lane == 0) ws->graph_job = NO_KIND;
    __syncwarp();
}

// A graph launch: the descriptor's one record names the uploaded GraphDev. Few roots run right
// here; more go on the graph board, where idle warps claim them; if the board is full, they are
// cut into up to one graph range per SM queue, which the lanes push in parallel.
// `root_tag` (node + 1, else 0), `root_kind` and `root_words`: a launch of a graph with one root
// carries that root (grosr/src/graph/resident.rs), so it starts without a load of the graph.
__device__ __noinline__ void ingest_graph(const Params& p, WarpState* ws, Mailbox& mbox, uint32_t job,
                             uint64_t graph, uint32_t root_tag, uint32_t root_kind,
                             const uint32_t* root_words, uint32_t& next_queue) {
    const uint32_t lane = lane_id();
    uint32_t roots = 0, weight = 0;
    GROSR_STAMP(12);
#ifdef GROSR_TRACE
    if (lane == 0) { grosr_trace[14] = ~0ull; grosr_trace[15] = 0; }   // published by the pushes below
#endif
    if (root_tag != 0) {
        // Every node task of the job reads the graph from DevJob::graph (the other warps); the
        // pushes that publish those tasks (release) come after this store in program order.
        if (lane == 0) p.jobs[job].graph = reinterpret_cast<const GraphDev*>(graph);
        run_launch_here(p, ws, mbox, job, reinterpret_cast<const GraphDev*>(graph), root_tag,
                        root_kind, root_words);
        return;
    }
    if (lane == 0) {
        const GraphDev* g = reinterpret_cast<const GraphDev*>(graph);
        roots = g->num_roots;
        weight = graph_weight(g, 0, roots);
        // Every node task of the job reads the graph from here; the pushes that publish those
        // tasks (release) come after this store in program order.
        p.jobs[job].graph = g;
    }
    roots = __shfl_sync(0xffffffffu, roots, 0);
    weight = __shfl_sync(0xffffffffu, weight, 0);
    if (weight <= GRAPH_LEAF_WEIGHT) {
        run_launch_here(p, ws, mbox, job, reinterpret_cast<const GraphDev*>(graph), 0u, 0u, root_words);
        return;
    }
    uint32_t offered = 0;
    if (lane == 0) offered = board_offer(p, reinterpret_cast<const GraphDev*>(graph), job, roots);
    if (__shfl_sync(0xffffffffu, offered, 0)) {
        GROSR_STAMP(13);
        return;
    }
    // No board entry free: one piece per SM queue at most (each then splits among that SM's
    // warps, which look at their home queue first); the lanes push them in parallel.
    const uint32_t pieces = umin(p.num_queues, (weight + GRAPH_LEAF_WEIGHT - 1) / GRAPH_LEAF_WEIGHT);
    // The launch record was counted as one task; the pieces replace it (counted before pushed).
    if (lane == 0) atomicAdd(&p.jobs[job].pending, (int32_t)pieces - 1);
    __syncwarp();
    for (uint32_t piece = lane; piece < pieces; piece += WARP) {
        GraphRange r{graph, (uint32_t)((uint64_t)roots * piece / pieces),
                     (uint32_t)((uint64_t)roots * (piece + 1) / pieces)};
        alignas(16) uint32_t words[RECORD_WORDS] = {0};
        memcpy(words, &r, sizeof(GraphRange));
        // The mask names the calling lane alone: lanes push to different queues.
        if (!push_any(p, (next_queue + piece) % p.num_queues, 1u << lane, KIND_GRAPH_RANGE, job, 0u, words)) {
            fail_job(p, job, ERR_QUEUE_OVERFLOW, KIND_GRAPH_RANGE);
            job_add(p, job, -1);
        }
    }
    __syncwarp();
    GROSR_STAMP(13);
    next_queue = (next_queue + pieces) % p.num_queues;
}

// Polls descriptor `head`, twice back to back, then goes back to the loop (mailbox, stop flag).
// Each poll is one PCIe round trip for all 32 cells. (Several polls in flight at once, spaced a
// third of a round trip apart, were slower: 4.6 against 1.3 µs from the hit's issue to its use.)
// True if seen whole; `cell` is then this lane's cell.
__device__ __forceinline__ bool desc_whole(uint64_t cell, uint64_t head) {
    return __all_sync(0xffffffffu, (uint32_t)(cell >> 32) == (uint32_t)(head + 1));
}
__device__ bool poll_desc(const Params& p, uint64_t head, uint64_t& cell) {
    const uint64_t* src = &p.descs[head & (p.desc_cap - 1)].cell[lane_id()];
    for (uint32_t poll = 0; poll < 2; ++poll) {
#ifdef GROSR_TRACE
        const unsigned long long issued = grosr_now();
#endif
        cell = ld_relaxed_sys_u64(src);
        if (desc_whole(cell, head)) {
#ifdef GROSR_TRACE
            if (threadIdx.x == 0) grosr_trace[0] = issued;
#endif
            return true;
        }
#ifdef GROSR_TRACE
        if (threadIdx.x == 0) grosr_trace[10] = issued;   // the last poll that found nothing
#endif
    }
    return false;
}

// Record `first`.. of an inline descriptor into words: lane l holds payload word l.
__device__ __forceinline__ void inline_record(uint32_t word, uint32_t first, uint32_t size_words,
                                              uint32_t* words) {
#pragma unroll
    for (uint32_t w = 0; w < RECORD_WORDS; ++w) {
        const uint32_t v = __shfl_sync(0xffffffffu, word, (first + w) & (WARP - 1));
        words[w] = w < size_words ? v : 0u;
    }
}

// A small graph's launch carries the whole graph in its descriptor (grosr/src/graph/resident.rs,
// `small_launch`): cell DESC_INLINE_FIRST holds n, the next n cells one word per node (kind in
// bits 0-15, level in 16-23, the cell of its record in 24-31), then the records. The host orders
// the nodes by level (longest path from a root), lane nodes before warp nodes within a level, and
// counted the job as n tasks. The warp runs it level by level, a level's lane nodes in one round:
// a node runs after all of its predecessors (earlier levels) have returned, as in a graph launch,
// with no graph in memory, no counter and no queue. Tags are 0: no successor is released.
__device__ __noinline__ void run_small_graph(const Params& p, WarpState* ws, uint32_t job, uint32_t word) {
    const uint32_t lane = lane_id();
    const uint32_t n = __shfl_sync(0xffffffffu, word, DESC_INLINE_FIRST);
    const uint32_t first = DESC_INLINE_FIRST + 1;   // node 0's word
    GROSR_STAMP(12);
    for (uint32_t i = 0; i < n;) {
        GROSR_STAMP(15);                             // the last level's start remains
        const uint32_t level = __shfl_sync(0xffffffffu, word, first + i) >> 16 & 0xFFu;
        // Lane l looks at node i + l; its level's nodes are a prefix of the lanes.
        const uint32_t me = umin(i + lane, n - 1);
        const uint32_t nw = __shfl_sync(0xffffffffu, word, (first + me) & (WARP - 1));
        const bool mine = i + lane < n && (nw >> 16 & 0xFFu) == level;
        const uint32_t kind = nw & 0xFFFFu;
        const uint32_t gran = kind_gran(kind);
        alignas(16) uint32_t words[RECORD_WORDS];
        inline_record(word, nw >> 24, mine ? kind_size(kind) / 4 : 0u, words);
        // Unknown kinds go to the lane round, whose dispatch fails the job with their kind.
        const bool lane_node = mine && gran != GROSR_WARP;
        if (__any_sync(0xffffffffu, lane_node)) run_lane_round(p, ws, lane_node, kind, job, 0u, words);
        uint32_t warp_nodes = __ballot_sync(0xffffffffu, mine && gran == GROSR_WARP);
        while (warp_nodes) {
            const uint32_t src = __ffs(warp_nodes) - 1;
            warp_nodes &= warp_nodes - 1;
            alignas(16) uint32_t w[RECORD_WORDS];
            for (uint32_t k = 0; k < RECORD_WORDS; ++k) w[k] = __shfl_sync(0xffffffffu, words[k], src);
            run_warp_task(p, ws, __shfl_sync(0xffffffffu, kind, src), job, 0u, w);
        }
        // account() ended each round with a warp barrier: this level's writes are ordered
        // before the next level's reads.
        i += __popc(__ballot_sync(0xffffffffu, mine));
    }
}

// Runs the records an inline descriptor carried (counted already): up to 24 lane tasks in one
// round, or one warp task, right here; several warp tasks, or block tasks, go to a queue.
__device__ __noinline__ void run_inline(const Params& p, WarpState* ws, uint32_t kind, uint32_t count,
                                        uint32_t job, uint32_t word, uint32_t& next_queue) {
    const uint32_t lane = lane_id();
    const uint32_t gran = kind_gran(kind), size = kind_size(kind);
    if (gran == GROSR_NO_GRAN || size % 4 != 0 || count * size > (DESC_CELLS - DESC_INLINE_FIRST) * 4) {
        // An unknown kind (or a size the host could not have sent inline): the job fails.
        if (lane == 0) {
            fail_job(p, job, ERR_UNKNOWN_KIND, kind);
            job_add(p, job, -(int32_t)count);
        }
        __syncwarp();
        return;
    }
    const uint32_t sw = size / 4;
    alignas(16) uint32_t words[RECORD_WORDS];
    if (gran == GROSR_WARP && count == 1) {
        inline_record(word, DESC_INLINE_FIRST, sw, words);
        run_warp_task(p, ws, kind, job, 0u, words);
        return;
    }
    const bool has = lane < count;
    inline_record(word, DESC_INLINE_FIRST + lane * sw, sw, words);
    GROSR_STAMP(4);
    if (gran == GROSR_LANE) {
        run_lane_round(p, ws, has, kind, job, 0u, words);
    } else {
        // The mask first, by all lanes (a ballot inside the branch would leave lanes out).
        const uint32_t mask = __ballot_sync(0xffffffffu, has);
        if (has) push_counted(p, next_queue, mask, kind, job, 0u, words);
        __syncwarp();
        next_queue = (next_queue + 1) % p.num_queues;
    }
}

// Run by one warp (block 0, warp 0). Returns how many descriptors it took.
__device__ __noinline__ uint32_t ingest(const Params& p, WarpState* ws, Mailbox& mbox, uint64_t& head,
                           uint32_t& next_queue) {
    const uint32_t lane = lane_id();
    uint32_t taken = 0;
    for (; taken < 32; ++taken) {
        uint64_t cell = 0;
        if (!poll_desc(p, head, cell)) break;
        GROSR_STAMP(1);
        const uint32_t word = (uint32_t)cell;
        const uint32_t kind = __shfl_sync(0xffffffffu, word, DESC_KIND);
        const uint32_t count = __shfl_sync(0xffffffffu, word, DESC_COUNT);
        const uint32_t job = __shfl_sync(0xffffffffu, word, DESC_JOB_SLOT);
        const uint32_t job_seq = __shfl_sync(0xffffffffu, word, DESC_JOB_SEQ);
        const int32_t adjust = (int32_t)__shfl_sync(0xffffffffu, word, DESC_ADJUST);
        const bool in_desc = __shfl_sync(0xffffffffu, word, DESC_INLINE) == 1;
        const uint64_t records = (uint64_t)__shfl_sync(0xffffffffu, word, DESC_RECORDS_LO) |
                                 (uint64_t)__shfl_sync(0xffffffffu, word, DESC_RECORDS_HI) << 32;
        GROSR_STAMP(2);
        if (lane == 0) {
            // Acquire by fence (the relaxed load of cell 0 saw the host's release store of it):
            // the records the host copied into the arena before publishing are visible to this
            // warp, and through its releases (queue pushes) to the warps that run them. Inline
            // records need none: they came in the cells themselves.
            if (!in_desc) fence_acq_rel_sys();
            p.jobs[job].seq = job_seq;
            if (!in_desc) p.desc_reads[head & (p.desc_cap - 1)] = (int32_t)count;
            // Count the records before any of them can run (the push below publishes them, and
            // its release orders this add first; this warp's own later updates of the count
            // follow it in coherence order). A relaxed add with no result: it cannot complete
            // the job (pending >= 0 before it, and count + adjust >= 0), so nothing waits for it.
            if (count + adjust != 0) atomicAdd(&p.jobs[job].pending, (int32_t)count + adjust);
            GROSR_STAMP(3);
        }
        __syncwarp();
        const uint64_t desc = head++;
        if (kind == KIND_GRAPH && count == 1) {
            uint64_t graph;
            // A launch record: graph address, then (a one-root graph) the root's node + 1, its
            // kind and its record; the arena form (never sent by this host) has the address only.
            uint32_t root_tag = 0, root_kind = 0;
            alignas(16) uint32_t root_words[RECORD_WORDS] = {0};
            if (in_desc) {
                graph = (uint64_t)__shfl_sync(0xffffffffu, word, DESC_INLINE_FIRST) |
                        (uint64_t)__shfl_sync(0xffffffffu, word, DESC_INLINE_FIRST + 1) << 32;
                root_tag = __shfl_sync(0xffffffffu, word, DESC_INLINE_FIRST + 2);
                root_kind = __shfl_sync(0xffffffffu, word, DESC_INLINE_FIRST + 3);
                inline_record(word, DESC_INLINE_FIRST + 4, RECORD_WORDS, root_words);
            } else {
                uint32_t lo = 0, hi = 0;
                if (lane == 0) { lo = ld_relaxed_sys((const void*)records); hi = ld_relaxed_sys((const void*)(records + 4)); }
                graph = (uint64_t)__shfl_sync(0xffffffffu, lo, 0) | (uint64_t)__shfl_sync(0xffffffffu, hi, 0) << 32;
                range_records_read(p, (uint32_t)desc, 1);
            }
            ingest_graph(p, ws, mbox, job, graph, root_tag, root_kind, root_words, next_queue);
        } else if (kind == KIND_GRAPH_SMALL && in_desc) {
            run_small_graph(p, ws, job, word);
            drain_stack(p, ws, mbox);
        } else if (in_desc) {
            run_inline(p, ws, kind, count, job, word, next_queue);
            GROSR_STAMP(8);
            drain_stack(p, ws, mbox);
        } else {
            Range r{kind, 0, count, (uint32_t)desc, records};
            const uint32_t gran = kind_gran(kind);
            if ((gran == GROSR_LANE && count <= WARP) || (gran == GROSR_WARP && count == 1)) {
                // A small submission runs right here: no queue hop and no sleeping warp to wake.
                run_range(p, ws, r, job);
                drain_stack(p, ws, mbox);
            } else {
                alignas(16) uint32_t words[RECORD_WORDS] = {0};
                memcpy(words, &r, sizeof(Range));
                // Ranges go round-robin over the SM queues so that work starts spread out. One
                // slot: lane 0 pushes it alone (mask 1).
                if (lane == 0 && !push_any(p, next_queue, 1u, KIND_RANGE, job, 0u, words)) {
                    fail_job(p, job, ERR_QUEUE_OVERFLOW, kind);
                    range_records_read(p, (uint32_t)desc, count);
                    job_add(p, job, -(int32_t)count);
                }
                __syncwarp();
                next_queue = (next_queue + 1) % p.num_queues;
            }
        }
        // Relaxed (system scope): the host may now rewrite this descriptor. Our loads of its cells
        // are done (their values were used above); and a load that saw a later write would have
        // seen a later tag, so no reordering can hand us a mix.
        if (lane == 0) st_relaxed_sys64(&p.host->desc_head, head);
        GROSR_STAMP(9);
    }
    return taken;
}

// ---- The scheduler ------------------------------------------------------------------------------
__device__ void requeue(const Params& p, WarpState* ws, bool has, uint32_t kind, uint32_t job,
                        uint32_t node, const uint32_t* words) {
    // Puts already-counted tasks back (block tasks waiting for the mailbox): stack, else queue.
    const uint32_t m = __ballot_sync(0xffffffffu, has);
    if (!m) return;
    uint32_t base = STACK_CAP;
    if (lane_id() == 0) {
        uint32_t t = ws->top;
        if (t + __popc(m) <= STACK_CAP) { base = t; ws->top = t + __popc(m); }
    }
    base = __shfl_sync(0xffffffffu, base, 0);
    if (base != STACK_CAP) {
        if (has) {
            StackEntry& e = ws->stack[base + __popc(m & lanemask_lt())];
            e.kind = kind; e.job = job; e.node = node;
            for (uint32_t w = 0; w < RECORD_WORDS; ++w) e.words[w] = words[w];
        }
    } else if (has) {
        push_counted(p, home_queue(p), __activemask(), kind, job, node, words);
    }
    __syncwarp();
}

// Takes up to 32 tasks: own stack first (locality), then the SM's queue, then other SMs' queues.
__device__ uint32_t take_work(const Params& p, WarpState* ws, uint32_t& kind, uint32_t& job,
                              uint32_t& node, uint32_t* words, uint32_t& rng) {
    const uint32_t lane = lane_id();
    GROSR_SEQ(5);
    const uint32_t top = ws->top;
    if (top > 0) {
        const uint32_t n = umin(top, WARP);
        if (lane < n) {
            const StackEntry& e = ws->stack[top - n + lane];
            kind = e.kind; job = e.job; node = e.node;
            for (uint32_t w = 0; w < RECORD_WORDS; ++w) words[w] = e.words[w];
        }
        __syncwarp();
        if (lane == 0) ws->top = top - n;
        __syncwarp();
        GROSR_SEQ(6);
        return n;
    }
    const uint32_t home = home_queue(p);
    // Issued now, used only if the home queue is empty: both loads are in flight together.
    const uint32_t live = lane == 0 ? *(volatile uint32_t*)&grosr_board.live : 0u;
    uint32_t n = pop_from(p, home, WARP, kind, job, node, words);
    if (n) return n;
    settle_owed(p, ws);                          // the home queue is dry: pay what we owe first
    n = board_claim(p, live, kind, job, words);
    if (n) return n;
    for (uint32_t t = 0; t < GROSR_STEALS && p.num_queues > 1; ++t) {   // steal from random victims
        rng = rng * 1664525u + 1013904223u;
        const uint32_t victim = (home + 1 + (rng >> 8) % (p.num_queues - 1)) % p.num_queues;
        n = pop_from(p, victim, WARP, kind, job, node, words);
        if (n) return n;
    }
    return 0;
}

__device__ void process(const Params& p, WarpState* ws, Mailbox& mbox, uint32_t n, uint32_t kind,
                        uint32_t job, uint32_t node, const uint32_t* words) {
    const uint32_t lane = lane_id(), warp = threadIdx.x / WARP;
    const bool has = lane < n;
    const bool internal_range = kind == KIND_RANGE || kind == KIND_GRAPH_RANGE || kind == KIND_GRAPH_UNIT;
    const uint32_t gran = !has ? GROSR_NO_GRAN : (internal_range ? GRAN_RANGE : kind_gran(kind));
    // Lane tasks (and unknown kinds, which dispatch_lane reports) all at once.
    const bool lane_task = has && (gran == GROSR_LANE || gran == GROSR_NO_GRAN);
    if (__any_sync(0xffffffffu, lane_task)) run_lane_round(p, ws, lane_task, kind, job, node, words);
    // Warp tasks and ranges one after another, the record broadcast from its lane.
    uint32_t serial = __ballot_sync(0xffffffffu, has && (gran == GROSR_WARP || gran == GRAN_RANGE));
    while (serial) {
        const uint32_t src = __ffs(serial) - 1;
        serial &= serial - 1;
        uint32_t k = __shfl_sync(0xffffffffu, kind, src), j = __shfl_sync(0xffffffffu, job, src);
        const uint32_t nd = __shfl_sync(0xffffffffu, node, src);
        alignas(16) uint32_t w[RECORD_WORDS];
        for (uint32_t i = 0; i < RECORD_WORDS; ++i) w[i] = __shfl_sync(0xffffffffu, words[i], src);
        if (k == KIND_RANGE) {
            Range r;
            memcpy(&r, w, sizeof(Range));
            run_range(p, ws, r, j);
        } else if (k == KIND_GRAPH_RANGE) {
            GraphRange r;
            memcpy(&r, w, sizeof(GraphRange));
            run_graph_range(p, ws, r, j);   // accounts for itself
        } else if (k == KIND_GRAPH_UNIT) {
            run_graph_unit(p, ws, j, w[0]);
        } else {
            run_warp_task(p, ws, k, j, nd, w);
        }
    }
    // Block tasks: post one to the block's mailbox, keep the others for later.
    bool block_task = has && gran == GROSR_BLOCK;
    const uint32_t blocks = __ballot_sync(0xffffffffu, block_task);
    if (blocks) {
        const uint32_t src = __ffs(blocks) - 1;
        uint32_t posted = 0;
        if (lane == 0) posted = atomicCAS(&mbox.busy, 0u, 1u) == 0u;
        posted = __shfl_sync(0xffffffffu, posted, 0);
        if (posted) {
            if (lane == src) { mbox.kind = kind; mbox.job = job; mbox.node = node; mbox.poster = warp; }
            for (uint32_t i = 0; i < RECORD_WORDS; ++i) {
                uint32_t v = __shfl_sync(0xffffffffu, words[i], src);
                if (lane == 0) mbox.words[i] = v;
            }
            __syncwarp();
            // Order the mailbox contents before the epoch bump that other warps poll.
            if (lane == 0) { __threadfence_block(); atomicAdd((uint32_t*)&mbox.epoch, 1u); }
            if (lane == src) block_task = false;
        }
        requeue(p, ws, block_task, kind, job, node, words);
    }
}

// All warps of the block meet here to run a posted block task, or to exit together.
// Returns true when the block must exit.
__device__ __noinline__ bool block_collective(const Params& p, WarpState* ws, Mailbox& mbox,
                                 uint32_t& blk_stop, uint32_t& my_epoch) {
    named_barrier(1);
    // Read both decisions between two barriers: no warp can post or stop while all are here,
    // so every warp decides alike (a warp that exited alone would leave the others waiting).
    const bool stop = atomicAdd(&blk_stop, 0u) != 0;
    const bool task = mbox.epoch != my_epoch;
    // Copied before the second barrier: once the poster frees the mailbox after it, another
    // warp may post and overwrite these fields.
    const uint32_t kind = mbox.kind, job = mbox.job, node = mbox.node, poster = mbox.poster;
    if (task) {
        alignas(16) uint32_t words[RECORD_WORDS];
        for (uint32_t i = 0; i < RECORD_WORDS; ++i) words[i] = mbox.words[i];
        // Spawns count immediately here (uniform = false): the poster's decrement below must not
        // overtake children that other warps put on their own stacks.
        Ctx c{&p, ws, job, kind, GROSR_BLOCK, false, nullptr, node};
        if (!dispatch_block(c, kind, words) && threadIdx.x == 0) {
            fail_job(p, job, ERR_UNKNOWN_KIND, kind);
        }
        my_epoch = mbox.epoch;
        __threadfence();                          // the body's writes precede the decrement
        if (node) {
            // Every thread's body writes precede every thread's successor decrements; and the
            // successors' counts (spawns count at once here) precede the poster's job_add below.
            named_barrier(2);
            release_successors(c);
        }
    }
    named_barrier(1);
    if (task && threadIdx.x / WARP == poster && lane_id() == 0) {
        if (kind < p.num_kinds) atomicAdd((unsigned long long*)&p.executed[kind], 1ull);
        job_add(p, job, -1);
        atomicExch(&mbox.busy, 0u);              // from here another block task may be posted
    }
    return stop;
}

__device__ void scheduler(const Params& kernel_params) {
    __shared__ WarpState warp_states[WARPS_PER_BLOCK];
    __shared__ Mailbox mbox;
    __shared__ uint32_t blk_stop;
    // The parameters, one copy per block. Everything below takes their address (Ctx::p, the
    // out-of-line paths), and the address of a kernel parameter makes the compiler copy it into
    // every thread's local memory: 120 bytes a thread, 60 KB of each SM's L1, read on every hop.
    __shared__ Params block_params;
    if (threadIdx.x == 0) block_params = kernel_params;
    const Params& p = block_params;              // read after the __syncthreads below
    const uint32_t lane = lane_id(), warp = threadIdx.x / WARP;
    WarpState* ws = &warp_states[warp];
    const bool ingest_warp = blockIdx.x == 0 && warp == 0;
    if (lane == 0) {
        ws->top = 0;
        ws->deferred = 0;
        ws->bypass_hops = ingest_warp ? INGEST_BYPASS_HOPS : BYPASS_HOPS;
        ws->spread = 0;
        ws->owed = 0;
        ws->owed_job = 0;
        ws->owe_ok = !ingest_warp;
        ws->graph_job = NO_KIND;
    }
    ws->held[lane][RECORD_WORDS] = NO_KIND;
    if (threadIdx.x == 0) { mbox.epoch = 0; mbox.busy = 0; blk_stop = 0; }
#ifdef GROSR_TRACE
    if (threadIdx.x == 0) grosr_seq_n = 64;      // until a spawn tree's root starts
#endif
    __syncthreads();
    if (threadIdx.x == 0) atomicAdd((uint32_t*)&p.host->started_blocks, 1u);  // host waits for all
    uint64_t head = p.desc_start;
    uint32_t next_queue = 0, my_epoch = 0, idle_ns = 0, turns = 0;
    uint32_t rng = 0x9E3779B9u * (blockIdx.x * 64 + warp + 1);
    // Shared flags polled by every warp go through shared-memory atomics: cheap, and exact
    // about which write a read sees (a plain flag would be a data race, racecheck says).
    auto set_stop = [&]() { if (lane == 0) atomicExch(&blk_stop, 1u); __syncwarp(); };
    while (true) {
        // The stop flag is read every few turns even when busy, so endless work cannot pin us.
        if (++turns % STOP_CHECK_PERIOD == 0 && *(volatile uint32_t*)p.dev_stop) set_stop();
        uint32_t meet = 0;
        if (lane == 0) meet = atomicAdd((uint32_t*)&mbox.epoch, 0u) != my_epoch || atomicAdd(&blk_stop, 0u) != 0;
        if (__shfl_sync(0xffffffffu, meet, 0)) {
            if (block_collective(p, ws, mbox, blk_stop, my_epoch)) break;
            continue;
        }
        if (ingest_warp) {
            // Block tasks spawn from all their threads, warp 0 included: what lands on the ingest
            // warp's own stack goes to the queues, since the ingest warp takes no queued work.
            if (ws->top > 0) requeue_stack(p, ws);
            uint32_t stop = 0;
            // The host's flag is one PCIe read away: look at it every 64th turn only.
            if (lane == 0 && turns % 64 == 0) stop = *(volatile uint32_t*)&p.host->stop;
            if (__shfl_sync(0xffffffffu, stop, 0)) {
                if (lane == 0) *(volatile uint32_t*)p.dev_stop = 1;
                set_stop();
                continue;
            }
            if (ingest(p, ws, mbox, head, next_queue)) { idle_ns = 0; continue; }
        } else {
            uint32_t kind = NO_KIND, job = 0, node = 0, words[RECORD_WORDS];
#ifdef GROSR_TRACE
            const bool from_stack = ws->top > 0;
            const unsigned long long t0 = grosr_now();
#endif
            const uint32_t n = take_work(p, ws, kind, job, node, words, rng);
#ifdef GROSR_TRACE
            const unsigned long long t1 = grosr_now();
            if (lane == 0 && n == 0) { grosr_warp_add(GROSR_WT_DRY_TAKES, 1); grosr_warp_add(GROSR_WT_DRY_TAKE_NS, t1 - t0); grosr_hist_add(2, 1); }
#endif
            if (n) {
                process(p, ws, mbox, n, kind, job, node, words);
#ifdef GROSR_TRACE
                if (lane == 0) {
                    grosr_warp_add(from_stack ? GROSR_WT_STACK_ROUNDS : GROSR_WT_QUEUE_ROUNDS, 1);
                    grosr_warp_add(from_stack ? GROSR_WT_STACK_TAKE_NS : GROSR_WT_QUEUE_TAKE_NS, t1 - t0);
                    grosr_warp_add(GROSR_WT_PROCESS_NS, grosr_now() - t1);
                }
#endif
                idle_ns = 0;
                continue;
            }
        }
        // The ingest warp itself copies the host's stop flag to dev_stop (above): no need to read it.
        if (!ingest_warp && *(volatile uint32_t*)p.dev_stop) { set_stop(); continue; }
        // Idle: back off so polling does not steal L2 bandwidth from busy warps.
        idle_ns = idle_ns ? umin(idle_ns * 2, (uint32_t)GROSR_IDLE_MAX_NS) : 32u;
        __nanosleep(ingest_warp ? 32u : idle_ns);
    }
    settle_owed(p, ws);
    __syncthreads();
    if (threadIdx.x == 0) atomicAdd((uint32_t*)&p.host->exited_blocks, 1u);
}

// Prepares the queues: slot i of every ring is free for index i.
__device__ void init_queues(const Params& p) {
    const uint64_t total = (uint64_t)p.num_queues * p.queue_cap;
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < total;
         i += (uint64_t)gridDim.x * blockDim.x) {
        p.slots[i].seq = (uint32_t)(i & (p.queue_cap - 1));
    }
    // A launch abandoned by a stop must not be claimed after the restart.
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t < BOARD_ENTRIES) grosr_board.state[t] = 0;
    if (t == 0) grosr_board.live = 0;
}

}  // namespace grosr

// ---- Kernels ------------------------------------------------------------------------------------
extern "C" __global__ void __launch_bounds__(grosr::BLOCK_THREADS, GROSR_MIN_BLOCKS_PER_SM) grosr_scheduler(grosr::Params p) {
    grosr::scheduler(p);
}
extern "C" __global__ void grosr_init(grosr::Params p) { grosr::init_queues(p); }
