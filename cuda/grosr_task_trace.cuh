// The task timeline (RuntimeBuilder::trace on a GPU defines GROSR_TRACE_TASKS; without it
// nothing here is compiled and the module is the same code as before): every task's start and
// end (%globaltimer), SM, kind, job and origin, one 32-byte event per task in a ring of its
// warp's. The host reads the rings (Runtime::trace; grosr/src/runtime/task_trace.rs).
//
// Rings: each lane of each scheduler warp has one, of lane_capacity events (a power of two),
// numbered by the lane's own count in shared memory (WarpState::trace_seq). Only that lane
// touches its count, so taking an event is a shared load and store: no atomic, no global round
// trip on a task's path (a returning global atomicAdd a task cost a dependent hop 0.14 → 0.6 µs,
// and a shared atomicAdd a warp serialises a lane round's 32 reservations: 3572 cycles, H100).
// A lane task records into its lane's ring; a warp task into the ring of a lane the warp turns
// round (trace_rot: warp tasks do not fill one lane's ring), a block task likewise in its first
// warp. The count is published with a plain store beside the event (the host reads after the
// traced jobs ended); a relaunch goes on from it. The host keeps how far it has read each ring
// and takes what is new, the newest lane_capacity when more came (the rest counted as dropped);
// an event carries its wrap count's low bits (`where`), so a slot the host expects to hold a
// newer event than it does (a task still running) is told apart.
//
// Ids and origins. A task's id is its warp, its ring's lane and its number there modulo 2048:
// (warp << 17) | (lane << 12) | ((seq & 2047) + 1), under 2^31 and never 0: unique among the at
// most lane_capacity <= 2048 events a take keeps of a ring, and repeated only 2048 events of the
// ring later (the host names an origin only if this take holds it, it started no later and its
// ring wrote fewer than 2048 since the last take). A spawned task carries its spawner's id to
// where it runs in the `node` word of its stack entry or queue slot, which graph nodes use for
// their tag: with TRACE_SPAWNED set, `node` holds an id, not a tag (graph_tag reads the tag). A
// task run right after its spawner on the same lane (a held chain's hop, run_held) takes its
// origin from the context, which each task's scope leaves holding its own id.

namespace grosr {

#ifdef GROSR_TRACE_TASKS
constexpr uint32_t TRACE_SPAWNED = 0x80000000u;  // in `node`: the rest is the spawner's id
constexpr uint32_t ORIGIN_GRAPH = 0x80000000u;   // in an event's origin: the rest is a graph tag
constexpr uint32_t TRACE_SLOT_BITS = 17;         // below the warp in an id: 5 bits of lane, 12
                                                 // of (seq & 2047) + 1; < 2^14 warps: ids stay
                                                 // under 2^31
constexpr uint32_t TRACE_LANE_SHIFT = 12;
constexpr uint32_t TRACE_SEQ_MASK = 2047;
constexpr uint32_t TRACE_GEN_SHIFT = 25;         // in `where`: the event's wrap count, 7 bits

struct TaskEvent {                // 32 bytes; the host's mirror: runtime/task_trace.rs
    unsigned long long start;     // %globaltimer, ns
    unsigned long long end;
    uint32_t id;                  // (warp << 17) | (ring's lane << 12) | ((seq & 2047) + 1)
    uint32_t origin;              // spawner's id, ORIGIN_GRAPH | graph tag, or 0 (the host)
    uint32_t where;               // kind (bits 0-11) | lane (12-16; lane tasks) | SM (17-24) |
                                  // the ring's wrap count (25-31)
    uint32_t job;                 // job slot
};
static_assert(sizeof(TaskEvent) == 32, "grosr: TaskEvent differs from task_trace.rs");

struct HeapSample {               // 16 bytes; the host's mirror: runtime/task_trace.rs
    unsigned long long at;        // %globaltimer, ns
    int32_t free_slabs;           // the heap pool's count then (HeapCounters::free_slabs)
    uint32_t pad;
};
static_assert(sizeof(HeapSample) == 16, "grosr: HeapSample differs from task_trace.rs");

struct TaskTraceDev {             // the host fills it before launch
    TaskEvent* events;            // warps × WARP lanes × lane_capacity: a ring per lane
    uint32_t* counts;             // per warp and lane: events written (never reset; wraps)
    uint32_t lane_capacity;       // a power of two, at most 2048
    uint32_t lane_shift;          // log2(lane_capacity)
    HeapSample* heap;             // heap_capacity samples of the heap's pool, or null (no heap)
    unsigned long long* heap_count;   // samples taken (past heap_capacity: dropped)
    uint32_t heap_capacity;
    uint32_t pad;
};
}  // namespace grosr
// The module global the host fills, at global scope so that its name is not mangled.
// Written once by the host before the first launch. Not __constant__: that put 400 more bytes of
// spill loads in the traced report module's scheduler kernel (ptxas, sm_90).
__device__ grosr::TaskTraceDev grosr_task_trace;

// The host's clock against %globaltimer (task_trace.rs, `Clock`), run alone before each launch
// of the scheduler: one thread says it started (words[1]), then answers `rounds` pings through
// mapped memory, waiting for ping r (`words[0] == r + 1`) and stamping %globaltimer into
// stamps[r]; the host brackets each answer with its own clock and keeps the tightest. A host
// that sends no ping for 100 ms is given up.
extern "C" __global__ void grosr_trace_clock(volatile uint32_t* words,
                                             volatile unsigned long long* stamps, uint32_t rounds) {
    words[1] = 1;
    // System scope: "started" is ordered before the stamps the host will read after it.
    __threadfence_system();
    unsigned long long give_up = grosr::globaltimer() + 100000000ull;
    for (uint32_t r = 0; r < rounds; ++r) {
        // Volatile: every read goes to host memory, so the host's ping is seen once it lands.
        while (words[0] < r + 1)
            if (grosr::globaltimer() > give_up) return;
        stamps[r] = grosr::globaltimer();
        // System scope: the stamp is ordered before anything this thread writes the host later.
        __threadfence_system();
        give_up = grosr::globaltimer() + 100000000ull;
    }
}
namespace grosr {

// The graph tag in a task's `node` word (0 for a spawned task carrying its spawner's id).
__device__ __forceinline__ uint32_t graph_tag(uint32_t node) { return node & TRACE_SPAWNED ? 0u : node; }
// An event's origin from a task's `node` word.
__device__ __forceinline__ uint32_t trace_origin_of(uint32_t node) {
    return node & TRACE_SPAWNED ? node & ~TRACE_SPAWNED : (node ? ORIGIN_GRAPH | node : 0u);
}
// The `node` word a spawn of `c`'s task passes on: its id.
__device__ __forceinline__ uint32_t spawn_node(const Ctx& c) { return c.trace_id ? TRACE_SPAWNED | c.trace_id : 0u; }
// A task context made from a `node` word: its graph tag and origin.
#define GROSR_TRACE_FROM(c, node) ((c).trace_origin = grosr::trace_origin_of(node))

// One task's event, at the top of its body wrapper (codegen): taken by the thread that records
// it (see the rings above), which writes the event's header and start at once and its end when
// the body returns (the destructor: early returns included). Nothing but the slot's address is
// kept across the body, and no reference to the task's context: a scope that held its 32-byte
// event and the context across an inlined body put both in local memory (the report's traced
// module: the scheduler's stack frame 2352 against 400 bytes untraced). The id reaches every
// thread of a warp or block task (a shuffle, or shared memory and a barrier that every thread of
// a block task reaches at its start), so that any of them may spawn.
template <Gran G> struct TaskTraceScope {
    TaskEvent* ev;                // the task's event, or null: not the recording thread
    __device__ TaskTraceScope(Ctx& c, uint32_t kind) : ev(nullptr) {
        if (c.p == nullptr) return;              // a baseline kernel: no scheduler, no trace
        uint32_t id = 0;
        // The ring's lane: a lane task's own; a warp task's, and a block task's in its first
        // warp, turn round the lanes (lane 0 reads and advances trace_rot, the warp's own word,
        // its lanes converged here), so that they do not fill one lane's ring.
        uint32_t r = G == GROSR_LANE ? lane_id() : 0u;
        if (G == GROSR_WARP || (G == GROSR_BLOCK && threadIdx.x < WARP)) {
            if (lane_id() == 0) {
                r = c.ws->trace_rot & (WARP - 1);
                c.ws->trace_rot = r + 1;
            }
            r = __shfl_sync(0xffffffffu, r, 0);
        }
        const bool records =
            G == GROSR_LANE || (G == GROSR_WARP ? lane_id() == r : threadIdx.x == r);
        if (records) {
            // Shared memory, this lane's own (see the rings above): plain accesses. The warp's
            // constants too (WarpState): no global load on a task's path.
            WarpState* ws = c.ws;
            uint32_t* const counts = ws->trace_counts;   // read before the stores below
            const uint32_t seq = ws->trace_seq[r];
            ws->trace_seq[r] = seq + 1;
            id = ws->trace_id_warp | (r << TRACE_LANE_SHIFT) | ((seq & TRACE_SEQ_MASK) + 1);
            // The warp's rings interleaved by lane (slot s of lane r at s * 32 + r): a round's
            // lanes, whose counts go up together, write neighbouring events (rings laid end to
            // end cost spawn trees 27% against main's 20% traced, H100).
            ev = ws->trace_events + ((seq & ws->trace_mask) * WARP + r);
            // Lane tasks of a round run side by side on one warp: the lane tells them apart.
            const uint32_t where = (kind & 0xFFFu) | (G == GROSR_LANE ? r : 0u) << 12 |
                                   ws->trace_where_sm |
                                   (seq >> ws->trace_shift) << TRACE_GEN_SHIFT;
            // Plain stores, unordered: the host reads the event and the count after the jobs
            // it traces ended (the jobs' completions, a system-scope release, order them before
            // the host's reads). A take while tasks run may read a slot half rewritten: its wrap
            // count drops most such events, not all (Runtime::trace says so).
            ev->start = globaltimer();
            *reinterpret_cast<uint4*>(&ev->id) = make_uint4(id, c.trace_origin, where, c.job);
            counts[r] = seq + 1;
        }
        if (G == GROSR_WARP) id = __shfl_sync(0xffffffffu, id, r);
        if (G == GROSR_BLOCK) {
            __shared__ uint32_t grosr_block_task_id;
            if (records) grosr_block_task_id = id;
            __syncthreads();                     // the id is visible to every thread
            id = grosr_block_task_id;
        }
        c.trace_id = id;
        c.trace_origin = id;                     // a held task run next with this context is its child
    }
    __device__ ~TaskTraceScope() {
        if (ev) ev->end = globaltimer();
    }
};
#define GROSR_TRACE_TASK(ctx, kind) grosr::TaskTraceScope<grosr_granularity> grosr_trace_scope(ctx, kind)

// The heap's use over time: the thread whose atomic changed the pool's count of free slabs (a
// slab or run taken for a class or a large allocation, or given back) samples it. Only the
// heap's slow paths change that count, so a sample costs nothing on the fast ones; out of line,
// so that the callers' code stays as it was around the call.
__device__ __noinline__ void trace_heap_pool(const int32_t* free_slabs) {
    if (grosr_task_trace.heap == nullptr) return;
    const unsigned long long at = globaltimer();
    // Relaxed: the host reads samples only after the jobs it traces ended.
    const unsigned long long i = atomicAdd(grosr_task_trace.heap_count, 1ull);
    if (i >= grosr_task_trace.heap_capacity) return;   // counted: the host says it was dropped
    // Volatile: the count as it is now (this thread's own change included), not a cached one.
    const int32_t free_now = *(volatile const int32_t*)free_slabs;
    // Plain store: read by the host after the traced jobs ended (a sample caught half-written
    // has `at` 0 and is left out).
    grosr_task_trace.heap[i] = HeapSample{at, free_now, 0u};
}
#define GROSR_TRACE_HEAP_POOL(free_slabs) grosr::trace_heap_pool(free_slabs)
#define GROSR_GRAPH_TAG(node) grosr::graph_tag(node)
#define GROSR_SPAWN_NODE(c) grosr::spawn_node(c)
#else
// Off, macros rather than inline functions: the source the compiler sees is the untraced one
// (inline identities changed ptxas's register allocation; SASS compared, quickstart module).
#define GROSR_TRACE_FROM(c, node) ((void)0)
#define GROSR_TRACE_TASK(ctx, kind) do {} while (0)
#define GROSR_TRACE_HEAP_POOL(free_slabs) ((void)0)
#define GROSR_GRAPH_TAG(node) (node)
#define GROSR_SPAWN_NODE(c) 0u
#endif

}  // namespace grosr
