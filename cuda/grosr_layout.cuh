// The structs and constants the device shares with the host: grosr/src/layout.rs mirrors every
// struct here (field by field, same offsets), and the generated code checks the task records.

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

namespace grosr {

// Kinds the runtime reserves for itself (task kinds are 0, 1, ... in registration order).
constexpr uint32_t KIND_RANGE = 0xFFFFFFF0u;     // internal: a range of host-submitted records
constexpr uint32_t KIND_GRAPH = 0xFFFFFFF1u;     // host-submitted: launch a resident task graph
constexpr uint32_t KIND_GRAPH_RANGE = 0xFFFFFFF2u;  // internal: roots of a graph launch to spawn
constexpr uint32_t KIND_GRAPH_UNIT = 0xFFFFFFF3u;   // internal: a unit claimed from the graph board
constexpr uint32_t KIND_GRAPH_SMALL = 0xFFFFFFF4u;  // host-submitted: a whole small graph, inline
// No slot carries KIND_NOP any more (it marked a reserved slot left unfilled), but process()
// still skips it: without that test ptxas schedules the whole scheduler loop differently (sm_90,
// NVRTC 13.0: 10 462 SASS lines of the allocator module differ); whether that is faster or
// slower is unmeasured, so the machine code every figure was taken with stays.
constexpr uint32_t KIND_NOP = 0xFFFFFFF5u;
constexpr uint32_t NO_KIND = 0xFFFFFFFFu;

enum Gran : uint32_t { GROSR_LANE = 0, GROSR_WARP = 1, GROSR_BLOCK = 2, GROSR_NO_GRAN = 3,
                       GRAN_RANGE = 4 /* internal */ };

// Error codes; grosr/src/error.rs turns them into grosr::Error variants.
enum ErrorCode : int32_t {
    ERR_NONE = 0,
    ERR_UNKNOWN_KIND = -1,        // a slot named a kind this kernel was not built with
    ERR_QUEUE_OVERFLOW = -2,      // a spawn found every queue full: the task was dropped
    ERR_PROTOCOL_STUCK = -3,      // a bounded spin ran out (a slot never filled or freed)
    ERR_SPAWN_OUTSIDE = -4,       // ctx.spawn in a kernel without a scheduler (baselines)
    ERR_CANCELLED = -5,           // the host cancelled the job (Job::cancel)
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
// warp has the descriptor whole when every cell carries the tag (grosr/src/ring/mod.rs, `publish`).
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
    uint32_t started_blocks;      uint32_t exited_blocks; uint32_t pad2[30];
    int32_t err_code;  uint32_t err_detail; uint32_t pad3[30];   // a stalled protocol
};

struct DescHead {                 // mapped host memory, one line per submission ring
    uint64_t head;                uint32_t pad[30];    // device: the ring's descriptors consumed
};

struct GraphDev;

struct DevJob {                   // device memory, one per job slot
    int32_t pending;              // tasks of the job not yet finished (queued, stacked or running)
    int32_t error;                // first error (0 = none)
    uint32_t error_kind;
    uint32_t seq;                 // job_seq of the job now using the slot
    const GraphDev* graph;        // the graph a graph launch runs (set at ingest), else stale
    uint32_t cancel;              // the host's copy of a cancelled job's seq (Job::cancel)
    uint32_t pad;
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
    Desc* descs;                  // mapped, desc_cap entries per ring, ring after ring
    uint32_t* desc_done;          // mapped, as descs: index + 1 once its records were read
    Completion* completions;      // mapped, job_slots entries
    DevJob* jobs;                 // device
    int32_t* desc_reads;          // device, as descs: records of a descriptor not yet read
    uint64_t* executed;           // device, one counter per kind
    Queue* queues;                // device, num_queues
    Slot* slots;                  // device, num_queues * queue_cap
    uint32_t* dev_stop;           // device: ingest copies the host's stop flag here
    int32_t* dev_err;             // device: first runtime error (CAS target)
    DescHead* desc_heads;         // mapped, one per ring: its start at launch, then its progress
    uint32_t num_queues, queue_cap, desc_cap, job_slots;   // desc_cap: per ring; job_slots: all
    uint32_t num_kinds, spin_limit;
    uint32_t num_rings, pad;      // submission rings: ring r's ingest warp is block r's warp 0
};

}  // namespace grosr
