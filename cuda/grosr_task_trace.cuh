// The task timeline (RuntimeBuilder::trace on a GPU defines GROSR_TRACE_TASKS; without it
// nothing here is compiled and the module is the same code as before): every task's start and
// end (%globaltimer), SM, kind, job and origin, one 32-byte event per task in its warp's buffer.
// The host reads the buffers (Runtime::trace; grosr/src/runtime/task_trace.rs).
//
// Ids and origins. A task's id is its warp's index and its slot in the warp's buffer:
// (warp << 17) | (slot + 1), under 2^31 and never 0. A spawned task carries its spawner's id to
// where it runs in the `node` word of its stack entry or queue slot, which graph nodes use for
// their tag: with TRACE_SPAWNED set, `node` holds an id, not a tag (graph_tag reads the tag). A
// task run right after its spawner on the same lane (a held chain's hop, run_held) takes its
// origin from the context, which each task's scope leaves holding its own id.

namespace grosr {

#ifdef GROSR_TRACE_TASKS
constexpr uint32_t TRACE_SPAWNED = 0x80000000u;  // in `node`: the rest is the spawner's id
constexpr uint32_t ORIGIN_GRAPH = 0x80000000u;   // in an event's origin: the rest is a graph tag
constexpr uint32_t TRACE_SLOT_BITS = 17;         // a warp's buffer holds < 2^17 events, and
                                                 // there are < 2^14 warps: ids stay under 2^31

struct TaskEvent {                // 32 bytes; the host's mirror: runtime/task_trace.rs
    unsigned long long start;     // %globaltimer, ns
    unsigned long long end;
    uint32_t id;                  // (warp << 17) | (slot + 1)
    uint32_t origin;              // spawner's id, ORIGIN_GRAPH | graph tag, or 0 (the host)
    uint32_t where;               // kind (bits 0-11) | lane (12-16; lane tasks) | SM << 17
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
    TaskEvent* events;            // warps × capacity
    unsigned long long* counts;   // per warp: events taken (past capacity: dropped); 64 bits,
                                  // so that a busy warp's count never wraps to a slot again
    uint32_t capacity;
    uint32_t warps;
    HeapSample* heap;             // heap_capacity samples of the heap's pool, or null (no heap)
    unsigned long long* heap_count;   // samples taken (past heap_capacity: dropped)
    uint32_t heap_capacity;
    uint32_t pad;
};
}  // namespace grosr
// The module global the host fills, at global scope so that its name is not mangled.
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

// One task's event, at the top of its body wrapper (codegen): taken by its first thread, written
// when the body returns (the destructor: early returns included). The id reaches every thread
// of a warp or block task (a shuffle, or shared memory and a barrier that every thread of a
// block task reaches at its start), so that any of them may spawn.
template <Gran G> struct TaskTraceScope {
    Ctx& c;
    TaskEvent e;
    uint32_t at;                  // index into events, or ~0u: dropped (or not the first thread)
    __device__ TaskTraceScope(Ctx& ctx, uint32_t kind) : c(ctx), at(~0u) {
        if (c.p == nullptr) return;              // a baseline kernel: no scheduler, no trace
        uint32_t id = 0;
        if (G == GROSR_LANE || c.lane() == 0) {
            const uint32_t w = blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / WARP;
            // Relaxed: the host reads counts and events only after the jobs it traces ended.
            const unsigned long long slot = atomicAdd(&grosr_task_trace.counts[w], 1ull);
            const uint32_t cap = grosr_task_trace.capacity;
            id = (w << TRACE_SLOT_BITS) | ((slot < cap ? (uint32_t)slot : cap) + 1);
            if (slot < cap) at = w * cap + (uint32_t)slot;
            e.id = id;
            e.origin = c.trace_origin;
            // Lane tasks of a round run side by side on one warp: the lane tells them apart.
            e.where = (kind & 0xFFFu) | (G == GROSR_LANE ? lane_id() : 0u) << 12 | sm_id() << 17;
            e.job = c.job;
        }
        if (G == GROSR_WARP) id = __shfl_sync(0xffffffffu, id, 0);
        if (G == GROSR_BLOCK) {
            __shared__ uint32_t grosr_block_task_id;
            if (c.lane() == 0) grosr_block_task_id = id;
            __syncthreads();                     // the id is visible to every thread
            id = grosr_block_task_id;
        }
        c.trace_id = id;
        if (at != ~0u) e.start = globaltimer();
    }
    __device__ ~TaskTraceScope() {
        if (at != ~0u) {
            e.end = globaltimer();
            grosr_task_trace.events[at] = e;
        }
        c.trace_origin = c.trace_id;             // a held task run next with this context is its child
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
