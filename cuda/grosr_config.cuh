// grosr device runtime, part 1 of the unit codegen.rs assembles: types, sizes and tuning.
//
// The device runtime is embedded in the grosr library and prepended to the generated code (task
// structs, bodies, dispatch switches) before NVRTC compiles it, one file per concept in the order
// codegen.rs lists them; each file uses only what the files before it define. README.md beside
// it describes the host <-> GPU protocol; every ordering carries a comment saying why it is needed.
//
// Vocabulary: a *slot* is one queued task (kind, job, 48-byte record); a *queue* is a ring of
// slots in device memory, one per SM; a *warp stack* is a small LIFO of slots in shared memory,
// private to one warp; a *job* is what one host submit started plus everything it spawned.

typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long long int64_t;


namespace grosr {

// ---- Sizes ----------------------------------------------------------------------------------------
constexpr uint32_t WARP = 32;
constexpr uint32_t RECORD_WORDS = 12;            // 48-byte records (MAX_RECORD_BYTES)
constexpr uint32_t STACK_CAP = 32;               // slots in each warp's private stack
static_assert(STACK_CAP >= WARP, "a warp's stack takes a whole round of spawns");
constexpr uint32_t BLOCK_THREADS = 256;          // threads per scheduler block (block-task width)
// With this many submission rings or more, the last is kept for high-priority jobs
// (grosr/src/runtime/rings.rs), and its block runs no block task (process).
constexpr uint32_t HIGH_RING_FROM = 3;
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
// An ingest warp whose ring found nothing this many times in a row (about 0.1 ms) sleeps this
// long between polls: 8 rings' idle polls cost a lone job 5.42-5.59 µs against 5.25-5.34 with
// it, and a job 1 ms after the last is no slower for it (H100; NOTES, "Submission rings").
constexpr uint32_t INGEST_COLD_POLLS = 64;
constexpr uint32_t INGEST_COLD_SLEEP_NS = 2000;
// A graph lane task's successor decrements in flight at once (release_lane_successors).
constexpr uint32_t RELEASE_BATCH = 4;

__device__ __forceinline__ uint32_t umin(uint32_t a, uint32_t b) { return a < b ? a : b; }
__device__ __forceinline__ uint32_t umax(uint32_t a, uint32_t b) { return a > b ? a : b; }

}  // namespace grosr
