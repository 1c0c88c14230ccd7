//! Contention (issue 20): head-of-line blocking (how long a short job waits while a long task
//! runs), many host threads (submitting small jobs one at a time, and streaming slices) and
//! priorities (a short job's latency while background work saturates the GPU).
//!
//! Every wait is bounded: the long tasks stop by themselves after 250 ms if their release never
//! arrives, and every host wait has a timeout. Every task's result is checked after its case: a
//! short job's flag, a long task's outcome (released, or ran out), a small job's slots, a
//! streamed task's count.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use grosr::{DeviceBuffer, DevicePtr, Granularity, Job, Runtime, RuntimeBuilder};

use crate::{Error, Result};

use super::Stats;
use super::table::Table;

/// What a long task holds on to: marks itself started (`ctl[1] = epoch`), then spins until the
/// host releases it (`ctl[0] >= epoch`) or `max_ns` have passed, and records which in
/// `outcome[slot]` (1: released, 2: ran out). The bound keeps a lost release from holding the GPU
/// for good.
#[grosr::record]
pub struct Hold {
    /// `ctl[0]`: the released epoch (host-written); `ctl[1]`: the started epoch.
    pub ctl: DevicePtr<u32>,
    /// Per rep: 1 released, 2 ran out.
    pub outcome: DevicePtr<u32>,
    /// The most it spins, in ns.
    pub max_ns: u64,
    /// This rep's epoch (from 1).
    pub epoch: u32,
    /// This rep's outcome slot.
    pub slot: u32,
}

/// The spin every long task runs on one thread ([`Hold`]); returns the outcome it recorded.
const HOLD_CUDA: &str = r#"
__device__ uint32_t grosr_hold(const Hold& h) {
    volatile uint32_t* ctl = h.ctl;
    ctl[1] = h.epoch;
    __threadfence_system();  // the host polls ctl[1] to see the task started
    const unsigned long long start = grosr::globaltimer();
    uint32_t seen;
    while ((seen = ctl[0]) < h.epoch && grosr::globaltimer() - start < h.max_ns) __nanosleep(500);
    const uint32_t outcome = seen >= h.epoch ? 1u : 2u;
    h.outcome[h.slot] = outcome;
    return outcome;
}
"#;

/// A long lane task ([`Hold`]).
#[grosr::task(granularity = "lane", cuda = "grosr_hold(task.hold);")]
pub struct HolSpin {
    /// What it holds on to.
    pub hold: Hold,
}

/// A long warp task: lane 0 spins, the other lanes wait for its verdict, so the whole warp is
/// held.
#[grosr::task(
    granularity = "warp",
    cuda = r#"
    uint32_t outcome = ctx.lane() == 0 ? grosr_hold(task.hold) : 0u;
    outcome = __shfl_sync(0xffffffffu, outcome, 0);
"#
)]
pub struct HolSpinWarp {
    /// What it holds on to.
    pub hold: Hold,
}

/// A long block task: thread 0 spins, the block waits for it at a barrier, so the whole block is
/// held.
#[grosr::task(
    granularity = "block",
    cuda = r#"
    if (ctx.lane() == 0) grosr_hold(task.hold);
    __syncthreads();
"#
)]
pub struct HolSpinBlock {
    /// What it holds on to.
    pub hold: Hold,
}

/// The short job's task: sets one flag.
#[grosr::task(granularity = "lane", cuda = "task.flags[task.index] = 1u;")]
pub struct HolShort {
    /// Flag array.
    pub flags: DevicePtr<u32>,
    /// Which flag.
    pub index: u32,
    /// Keeps the record 16 bytes.
    pub pad: u32,
}

/// A small warp task: the lanes add up their lane ids (496 from a whole warp), and lane 0 writes
/// `slot + 1` corrected by that sum, so lane ids other than 0..32 show as a wrong value. (A warp
/// short of lanes would not get that far: a full-mask shuffle needs all 32; the waits are bounded.)
#[grosr::task(
    granularity = "warp",
    cuda = r#"
    uint32_t v = ctx.lane();
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (ctx.lane() == 0) task.out[task.slot] = task.slot + 1u + (v - 496u);
"#
)]
pub struct ThreadsWork {
    /// Output slots.
    pub out: DevicePtr<u32>,
    /// This task's slot.
    pub slot: u32,
    /// Keeps the record 16 bytes.
    pub pad: u32,
}

/// A tiny lane task for streaming: counts itself in `counts[index]` (an add, not a store, so a
/// slot hit once per round shows a lost or doubled task).
#[grosr::task(
    granularity = "lane",
    cuda = "atomicAdd(&task.counts[task.index], 1u);"
)]
pub struct ThreadsTick {
    /// Per-slot counts.
    pub counts: DevicePtr<u32>,
    /// Which count.
    pub index: u32,
    /// Keeps the record 16 bytes.
    pub pad: u32,
}

/// `b` with `rings` submission rings (`None`: the builder's default).
pub fn with_rings(b: RuntimeBuilder, rings: Option<u32>) -> RuntimeBuilder {
    match rings {
        Some(n) => b.submit_rings(n),
        None => b,
    }
}

/// Background work for [`priority`]: spins `spin_ns` on one thread, then respawns itself until
/// the host sets `*stop` or it has run `max_hops` times (a chain that holds its lane for as long
/// as the measurement runs, with no host traffic). A chain (`max_hops` > 1) stores its hops so
/// far in its own `counts[index]` at every hop, a plain store to a word no other chain writes,
/// so the host can read how many ran over any window; a lone task (`max_hops` 1) adds 1 to its
/// stream's count.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    const unsigned long long start = grosr::globaltimer();
    while (grosr::globaltimer() - start < task.spin_ns) {}
    if (task.max_hops == 1u) {
        atomicAdd(&task.counts[task.index], 1ull);
    } else {
        // Plain: the host reads it while chains run, and a value one hop old is as good.
        task.counts[task.index] = (unsigned long long)task.hops + 1ull;
        // Volatile: the host's store to *stop is seen within a hop (a warp's lanes read it as one).
        if (task.hops + 1u < task.max_hops && *(volatile const unsigned int*)task.stop == 0u) {
            PrioBusy next = task;
            next.hops += 1u;
            grosr_spawn_PrioBusy(ctx, next);
        }
    }
"#
)]
pub struct PrioBusy {
    /// Hop counts: one per chain, then one per lone stream.
    pub counts: DevicePtr<u64>,
    /// Nonzero: chains end.
    pub stop: DevicePtr<u32>,
    /// How long it spins, in ns.
    pub spin_ns: u32,
    /// Which count: the chain's, or the lone stream's.
    pub index: u32,
    /// Hops run before this one.
    pub hops: u32,
    /// The most hops a chain runs.
    pub max_hops: u32,
}

/// A runtime builder with this module's tasks registered, after the environment's
/// [`GROSR_DEFINES`](crate::env_defines).
pub fn builder() -> RuntimeBuilder {
    crate::env_defines(grosr::Runtime::builder())
        .prelude(HOLD_CUDA)
        .task::<HolSpin>()
        .task::<HolSpinWarp>()
        .task::<HolSpinBlock>()
        .task::<HolShort>()
        .task::<ThreadsWork>()
        .task::<ThreadsTick>()
        .task::<PrioBusy>()
}

/// The longest wait for any one job that should finish promptly.
const WAIT: Duration = Duration::from_secs(10);
/// How long a long task spins at most without its release (far above a rep's few ms).
const MAX_HOLD: Duration = Duration::from_millis(250);
/// How long a long task runs, once seen started, before the short job goes in.
const SETTLE: Duration = Duration::from_millis(2);
/// How long a short job behind a long task may take before the long task is released for it.
const PATIENCE: Duration = Duration::from_millis(5);
/// The pause before each of the sporadic lone jobs.
const SPORADIC_GAP: Duration = Duration::from_millis(1);
/// How long a long task may take to start (a queued block task waits for a block).
const START_WAIT: Duration = Duration::from_secs(2);

/// Submits one long task of granularity `gran` as a job of its own.
fn submit_long<'rt>(
    rt: &'rt Runtime,
    gran: Granularity,
    ctl: DevicePtr<u32>,
    outcome: DevicePtr<u32>,
    epoch: u32,
) -> grosr::Result<Job<'rt>> {
    let hold = Hold {
        ctl,
        outcome,
        max_ns: MAX_HOLD.as_nanos() as u64,
        epoch,
        slot: epoch - 1,
    };
    match gran {
        Granularity::Lane => rt.submit(&[HolSpin { hold }]),
        Granularity::Warp => rt.submit(&[HolSpinWarp { hold }]),
        Granularity::Block => rt.submit(&[HolSpinBlock { hold }]),
    }
}

/// A granularity's name in the tables.
fn name(gran: Granularity) -> &'static str {
    match gran {
        Granularity::Lane => "lane",
        Granularity::Warp => "warp",
        Granularity::Block => "block",
    }
}

/// Releases every long task of a case when dropped (`ctl[0] = u32::MAX`), on the error paths too,
/// so none spins on until its bound.
struct ReleaseAll<'a>(&'a DeviceBuffer<u32>);

impl Drop for ReleaseAll<'_> {
    fn drop(&mut self) {
        let _ = self.0.write(&[u32::MAX]);
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Fails naming the first of `flags[..n]` that is not 1.
fn check_set(flags: &DeviceBuffer<u32>, n: usize, what: &str) -> Result<()> {
    let v = flags.to_vec()?;
    match v[..n].iter().position(|&f| f != 1) {
        None => Ok(()),
        Some(i) => Err(Error::Invalid(format!(
            "{what}: short job {i} did not run (its flag is {})",
            v[i]
        ))),
    }
}

/// How many reps a case takes.
#[derive(Clone, Copy, Debug)]
struct Plan {
    warmup: usize,
    reps: usize,
    /// Stop taking samples after this long (at least 3 are taken).
    budget: Duration,
}

/// A lone short job, submit → done, `reps` times after `warmup` untimed ones, each `gap` after
/// the last one's done (zero: back to back).
fn lone(rt: &Runtime, warmup: usize, reps: usize, gap: Duration) -> Result<Vec<Duration>> {
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), warmup + reps)?;
    let mut samples = Vec::with_capacity(reps);
    for i in 0..warmup + reps {
        let task = [HolShort {
            flags: flags.ptr(),
            index: i as u32,
            pad: 0,
        }];
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
        let t = Instant::now();
        rt.submit(&task)?.wait_timeout(WAIT)?;
        let took = t.elapsed();
        if i >= warmup {
            samples.push(took);
        }
    }
    check_set(&flags, warmup + reps, "lone short job")?;
    Ok(samples)
}

/// A short job's latencies behind a running long task of one granularity.
#[derive(Debug)]
struct Behind {
    /// Submit → done of the reps whose long task was released (not ran out).
    samples: Vec<Duration>,
    /// Of those, how many were still unfinished after [`PATIENCE`].
    blocked: usize,
    /// Long tasks that ran out their bound instead of being released (their reps are left out).
    ran_out: usize,
}

/// Waits until the long task of `epoch` has marked itself started (bounded by [`START_WAIT`]).
fn wait_started(ctl: &DeviceBuffer<u32>, long: &Job<'_>, epoch: u32, what: &str) -> Result<()> {
    let deadline = Instant::now() + START_WAIT;
    loop {
        if ctl.to_vec()?[1] >= epoch {
            return Ok(());
        }
        if long.is_done()? {
            return Err(Error::Invalid(format!(
                "{what}: the long task finished without marking itself started"
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::Invalid(format!(
                "{what}: the long task had not started after {START_WAIT:?}"
            )));
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Per rep: one long task of `gran` submitted alone and seen running, [`SETTLE`] later a one-task
/// short job timed submit → done (released for after [`PATIENCE`] if still blocked), then the long
/// task released and waited for.
fn behind(rt: &Runtime, gran: Granularity, plan: Plan) -> Result<Behind> {
    let what = format!("short job behind a long {} task", name(gran));
    let n = plan.warmup + plan.reps;
    let ctl = DeviceBuffer::<u32>::zeroed(rt.gpu(), 2)?;
    let _release_all = ReleaseAll(&ctl);
    let outcome = DeviceBuffer::<u32>::zeroed(rt.gpu(), n)?;
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), n)?;
    // (rep, submit → done, blocked)
    let mut taken: Vec<(usize, Duration, bool)> = Vec::with_capacity(plan.reps);
    let start = Instant::now();
    let mut ran = 0;
    for i in 0..n {
        if taken.len() >= 3 && start.elapsed() > plan.budget {
            break;
        }
        let epoch = i as u32 + 1;
        let long = submit_long(rt, gran, ctl.ptr(), outcome.ptr(), epoch)?;
        wait_started(&ctl, &long, epoch, &what)?;
        std::thread::sleep(SETTLE);
        let short = [HolShort {
            flags: flags.ptr(),
            index: i as u32,
            pad: 0,
        }];
        let t = Instant::now();
        let job = rt.submit(&short)?;
        let blocked = match job.wait_timeout(PATIENCE) {
            Ok(()) => false,
            Err(grosr::Error::Timeout(..)) => {
                // Head-of-line blocked: it can only finish once the long task is released.
                ctl.write(&[epoch])?;
                job.wait_timeout(WAIT)?;
                true
            }
            Err(e) => return Err(e.into()),
        };
        let took = t.elapsed();
        ctl.write(&[epoch])?;
        long.wait_timeout(WAIT)?;
        ran = i + 1;
        if i >= plan.warmup {
            taken.push((i, took, blocked));
        }
    }
    check_set(&flags, ran, &what)?;
    let outcome = outcome.to_vec()?;
    if let Some(i) = outcome[..ran].iter().position(|&o| o != 1 && o != 2) {
        return Err(Error::Invalid(format!(
            "{what}: long task {i} finished with outcome {} (neither released nor ran out)",
            outcome[i]
        )));
    }
    let released: Vec<(Duration, bool)> = taken
        .iter()
        .filter(|&&(i, ..)| outcome[i] == 1)
        .map(|&(_, d, b)| (d, b))
        .collect();
    Ok(Behind {
        samples: released.iter().map(|&(d, _)| d).collect(),
        blocked: released.iter().filter(|&&(_, b)| b).count(),
        ran_out: outcome[..ran].iter().filter(|&&o| o == 2).count(),
    })
}

/// Head-of-line blocking: a lone short job's submit → done latency, then the same short job
/// submitted while one long task of each granularity (lane, warp, block) runs. Table
/// `head_of_line`: median, p99 and max in µs per case, with the blocked and timed reps.
pub fn head_of_line(quick: bool, rings: Option<u32>) -> Result<Vec<Table>> {
    let rt = with_rings(builder(), rings).build()?;
    let plan = if quick {
        Plan {
            warmup: 2,
            reps: 30,
            budget: Duration::from_secs(2),
        }
    } else {
        Plan {
            warmup: 5,
            reps: 200,
            budget: Duration::from_secs(10),
        }
    };
    let (lone_warmup, lone_reps) = if quick { (100, 1_000) } else { (1_000, 10_000) };
    let mut table = Table::new(
        "head_of_line",
        "Head-of-line blocking: a one-task short job's submit → done, alone and behind one running \
         long task",
        "µs (blocked, reps: counts)",
        false,
        &["median µs", "p99 µs", "max µs", "blocked", "reps"],
    );
    table.ratios = false;
    let row = |table: &mut Table, label: &str, samples: Vec<Duration>, blocked: usize| {
        let reps = samples.len();
        let tail = (reps > 0).then(|| Stats::of(samples));
        table.push(
            label,
            vec![
                tail.map(|t| us(t.median)),
                tail.map(|t| us(t.p99)),
                tail.map(|t| us(t.max)),
                Some(blocked as f64),
                Some(reps as f64),
            ],
        );
    };
    let alone = lone(&rt, lone_warmup, lone_reps, Duration::ZERO)?;
    row(&mut table, "lone short job", alone, 0);
    // A job now and then, as an event-driven caller submits: the GPU side has been idle for a
    // while (an idle ring's ingest warp may poll less often then).
    let sporadic = lone(&rt, 10, lone_reps / 5, SPORADIC_GAP)?;
    row(&mut table, "lone short job, 1 ms apart", sporadic, 0);
    let mut ran_out = Vec::new();
    for gran in [Granularity::Lane, Granularity::Warp, Granularity::Block] {
        let b = behind(&rt, gran, plan)?;
        let label = format!("behind a long {} task", name(gran));
        row(&mut table, &label, b.samples, b.blocked);
        ran_out.push(format!("{} {}", name(gran), b.ran_out));
    }
    table.notes.push(format!(
        "Per rep: one long task submitted as a job of its own, seen running, {SETTLE:?} later a \
         one-task short job submitted and timed to done; then the long task released and waited \
         for. A short job not done {PATIENCE:?} after its submit is blocked: the long task is \
         released for it, and its time (≥ {PATIENCE:?}) counts in the median and p99: where \
         `blocked` equals `reps`, the row measures that patience, not the job."
    ));
    table.notes.push(format!(
        "Long tasks that ran out their {MAX_HOLD:?} bound instead of being released (their reps \
         left out): {}.",
        ran_out.join(", ")
    ));
    table
        .notes
        .push("Targets (issue 20): behind a long task ≤ 10 µs median; lone task ≤ 5 µs.".into());
    Ok(vec![table])
}

/// One submitting thread's timed part.
#[derive(Debug)]
struct ThreadRun {
    start: Instant,
    end: Instant,
    /// Submit → done per timed job (empty when streaming).
    latencies: Vec<Duration>,
}

/// Joins scoped threads, turning a panic into an error.
fn join_all<T>(handles: Vec<std::thread::ScopedJoinHandle<'_, Result<T>>>) -> Result<Vec<T>> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::Invalid("a submitting thread panicked".into())))
        })
        .collect()
}

/// Aggregate rate: `items` over the span from the first thread's start to the last one's end.
fn rate(runs: &[ThreadRun], items: usize) -> Option<f64> {
    let start = runs.iter().map(|r| r.start).min()?;
    let end = runs.iter().map(|r| r.end).max()?;
    Some(items as f64 / end.duration_since(start).as_secs_f64())
}

/// Tasks in job `job` of thread `thread`: 1, 2 or 3, varied deterministically.
fn tasks_in(thread: usize, job: usize) -> usize {
    1 + (thread + job) % 3
}

/// One thread of [`one_at_a_time`]: `warmup` untimed jobs, the barrier, `count` timed ones, each
/// submitted and waited for before the next. Job `j` of thread `t` owns slots
/// `((t * jobs) + j) * 3 ..` of `out`, `jobs = warmup + count`.
fn submit_and_wait(
    rt: &Runtime,
    out: DevicePtr<u32>,
    thread: usize,
    (warmup, count): (usize, usize),
    barrier: &Barrier,
) -> Result<ThreadRun> {
    let first_slot = thread * (warmup + count) * 3;
    let job = |j: usize| -> Result<Duration> {
        let first = (first_slot + j * 3) as u32;
        let tasks: [ThreadsWork; 3] = std::array::from_fn(|k| ThreadsWork {
            out,
            slot: first + k as u32,
            pad: 0,
        });
        let tasks = &tasks[..tasks_in(thread, j)];
        let t = Instant::now();
        rt.submit(tasks)?.wait_timeout(WAIT)?;
        Ok(t.elapsed())
    };
    let warm = (0..warmup).try_for_each(|j| job(j).map(drop));
    // Every thread reaches the barrier, a failed warm-up's too, so none waits there for good.
    barrier.wait();
    warm?;
    let start = Instant::now();
    let latencies = (warmup..warmup + count)
        .map(job)
        .collect::<Result<Vec<_>>>()?;
    Ok(ThreadRun {
        start,
        end: Instant::now(),
        latencies,
    })
}

/// `threads` threads each submitting `count` small jobs one at a time (after `warmup`); checks
/// every slot. Returns (jobs/s, per-job latencies). On `rt` built from [`builder`].
pub fn one_at_a_time(
    rt: &Runtime,
    threads: usize,
    warmup: usize,
    count: usize,
) -> Result<(Option<f64>, Vec<Duration>)> {
    let jobs = warmup + count;
    let out = DeviceBuffer::<u32>::zeroed(rt.gpu(), threads * jobs * 3)?;
    let barrier = Barrier::new(threads);
    let (ptr, barrier) = (out.ptr(), &barrier);
    let runs = std::thread::scope(|s| {
        let handles = (0..threads)
            .map(|t| s.spawn(move || submit_and_wait(rt, ptr, t, (warmup, count), barrier)))
            .collect();
        join_all(handles)
    })?;
    let got = out.to_vec()?;
    for t in 0..threads {
        for j in 0..jobs {
            for k in 0..3 {
                let slot = (t * jobs + j) * 3 + k;
                let want = if k < tasks_in(t, j) {
                    slot as u32 + 1
                } else {
                    0
                };
                if got[slot] != want {
                    return Err(Error::Invalid(format!(
                        "{threads} host threads: thread {t}, job {j}, task {k} wrote {} instead \
                         of {want}",
                        got[slot]
                    )));
                }
            }
        }
    }
    let rate = rate(&runs, threads * count);
    Ok((rate, runs.into_iter().flat_map(|r| r.latencies).collect()))
}

/// Records per streamed job.
const SLICE: usize = 4096;
/// Records (and count slots) per streaming thread: one round.
const PER_THREAD: usize = 64 * SLICE;

/// One thread of [`streaming`]: a warm-up round waited for, the barrier, then `rounds` rounds of
/// [`PER_THREAD`] tasks in slices of [`SLICE`], all submitted before any is waited for.
fn stream(
    rt: &Runtime,
    counts: DevicePtr<u32>,
    rounds: usize,
    barrier: &Barrier,
) -> Result<ThreadRun> {
    let records: Vec<ThreadsTick> = (0..PER_THREAD as u32)
        .map(|index| ThreadsTick {
            counts,
            index,
            pad: 0,
        })
        .collect();
    let run = |rounds: usize| -> Result<()> {
        let mut jobs = Vec::with_capacity(rounds * PER_THREAD / SLICE);
        for _ in 0..rounds {
            for slice in records.chunks(SLICE) {
                jobs.push(rt.submit(slice)?);
            }
        }
        // One deadline for all: each wait gets what is left of it.
        let deadline = Instant::now() + WAIT;
        for j in &jobs {
            j.wait_timeout(deadline.saturating_duration_since(Instant::now()))?;
        }
        Ok(())
    };
    let warm = run(1);
    // Every thread reaches the barrier, a failed warm-up's too, so none waits there for good.
    barrier.wait();
    warm?;
    let start = Instant::now();
    run(rounds)?;
    Ok(ThreadRun {
        start,
        end: Instant::now(),
        latencies: Vec::new(),
    })
}

/// `threads` threads each streaming `rounds` × [`PER_THREAD`] tiny tasks; checks that every task
/// ran exactly once. Returns tasks/s.
fn streaming(rt: &Runtime, threads: usize, rounds: usize) -> Result<Option<f64>> {
    let counts = DeviceBuffer::<u32>::zeroed(rt.gpu(), threads * PER_THREAD)?;
    let barrier = Barrier::new(threads);
    let (ptr, barrier) = (counts.ptr(), &barrier);
    let runs = std::thread::scope(|s| {
        let handles = (0..threads)
            .map(|t| {
                let mine = ptr.add((t * PER_THREAD) as u64);
                s.spawn(move || stream(rt, mine, rounds, barrier))
            })
            .collect();
        join_all(handles)
    })?;
    // The warm-up round and the timed ones.
    let want = rounds as u32 + 1;
    let got = counts.to_vec()?;
    if let Some(i) = got.iter().position(|&c| c != want) {
        return Err(Error::Invalid(format!(
            "streaming from {threads} threads: task {} of thread {} ran {} times, not {want}",
            i % PER_THREAD,
            i / PER_THREAD,
            got[i]
        )));
    }
    Ok(rate(&runs, threads * rounds * PER_THREAD))
}

fn threads_label(n: usize) -> String {
    if n == 1 {
        "1 thread".into()
    } else {
        format!("{n} threads")
    }
}

/// Many host threads sharing one runtime: (a) for 1–16 threads, each submitting small jobs (1–3
/// warp tasks) one at a time and waiting for each; (b) 1 and 8 threads streaming tiny lane tasks
/// in slices, waiting only at the end. Tables `host_threads` (M jobs/s and submit → done latency
/// per thread count) and `host_streaming` (M tasks/s).
///
/// The threads share `&Runtime`: [`Runtime::submit`] takes `&self`, and `Runtime` is `Sync`
/// (many threads may submit at once).
pub fn host_threads(quick: bool, rings: Option<u32>) -> Result<Vec<Table>> {
    let rt = with_rings(builder(), rings).build()?;
    let (warmup, count) = if quick { (50, 2_000) } else { (200, 20_000) };
    let rounds = if quick { 4 } else { 32 };
    let targets = "Targets (issue 20): 8 threads ≥ 1 M jobs/s aggregate, submit→done p99 ≤ 20 µs; \
                   8 threads streaming ≥ 1 G tasks/s.";
    let mut jobs = Table::new(
        "host_threads",
        "Many host threads: each submits small jobs (1–3 warp tasks) one at a time, waiting for \
         each",
        "M jobs/s (aggregate); µs (submit → done)",
        true,
        &["M jobs/s", "p50 µs", "p99 µs", "max µs"],
    );
    jobs.ratios = false;
    for threads in [1usize, 2, 4, 8, 16] {
        let (rate, latencies) = one_at_a_time(&rt, threads, warmup, count)?;
        let tail = (!latencies.is_empty()).then(|| Stats::of(latencies));
        jobs.push(
            threads_label(threads),
            vec![
                rate.map(|r| r / 1e6),
                tail.map(|t| us(t.median)),
                tail.map(|t| us(t.p99)),
                tail.map(|t| us(t.max)),
            ],
        );
    }
    jobs.notes.push(format!(
        "{count} timed jobs per thread after {warmup} untimed, job j of thread t holding 1 + \
         (t + j) mod 3 tasks; jobs/s over the span from the first thread's start to the last \
         one's end; every task's output slot checked."
    ));
    jobs.notes.push(targets.into());

    let mut stream = Table::new(
        "host_streaming",
        "Many host threads streaming: each submits tiny lane tasks in slices of 4096, waiting \
         only at the end",
        "M tasks/s",
        true,
        &["M tasks/s"],
    );
    stream.ratios = false;
    for threads in [1usize, 8] {
        let rate = streaming(&rt, threads, rounds)?;
        stream.push(threads_label(threads), vec![rate.map(|r| r / 1e6)]);
    }
    stream.notes.push(format!(
        "{:.2} M tasks per thread ({rounds} rounds of {PER_THREAD}, {SLICE} a job), after a \
         warm-up round; every task's count checked.",
        (rounds * PER_THREAD) as f64 / 1e6
    ));
    stream.notes.push(targets.into());
    Ok(vec![jobs, stream])
}

/// The background of [`priority`]: the bulk stream submits [`BULK_JOBS`] jobs that between them
/// start a chain of [`BULK_NS`] busy tasks on every lane of the scheduler, which run until the
/// measurement ends: every worker lane busy by construction, and the rest queued. (Streams of
/// finite jobs left lanes idle, 21-65% busy on an H100 in sessions 34-35, however many were in
/// flight: a job's chains start on one SM's queue, and a job ends with its slowest chain.)
/// Many small jobs, since the ingest warps hand each job to the next SM's queue. The lone
/// streams submit one [`LONE_NS`] task a job, one job at a time (they keep the normal
/// submission rings' ingest warps busy).
const BULK_JOBS: usize = 128;
const BULK_NS: u32 = 20_000;
/// A chain's bound, should the host's stop never arrive: 10 s of hops.
const BULK_MAX_HOPS: u32 = (WAIT.as_nanos() / BULK_NS as u128) as u32;
const LONE_THREADS: usize = 2;
const LONE_NS: u32 = 1_000_000;

/// The bulk stream: [`BULK_JOBS`] jobs of `per_job` chains, chain i counting in `counts[i]`,
/// which run until `stop`, then `stop_flag` ends them. Returns the chains it started.
fn bulk_stream(
    rt: &Runtime,
    counts: DevicePtr<u64>,
    stop_flag: &DeviceBuffer<u32>,
    per_job: usize,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<u64> {
    use std::sync::atomic::Ordering;
    let root = PrioBusy {
        counts,
        stop: stop_flag.ptr(),
        spin_ns: BULK_NS,
        index: 0,
        hops: 0,
        max_hops: BULK_MAX_HOPS,
    };
    let mut jobs = Vec::with_capacity(BULK_JOBS);
    let result = (|| {
        for j in 0..BULK_JOBS {
            let roots: Vec<PrioBusy> = (0..per_job)
                .map(|i| PrioBusy {
                    index: (j * per_job + i) as u32,
                    ..root
                })
                .collect();
            jobs.push(rt.submit(&roots)?);
        }
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    })();
    // A failed stream stops the measurement (and the other streams) too; the chains end either
    // way.
    stop.store(true, Ordering::Relaxed);
    let ended = stop_flag.write(&[1]).map_err(Error::from);
    let waited: Result<()> = jobs
        .iter()
        .try_for_each(|j| j.wait_timeout(WAIT).map_err(Error::from));
    result
        .and(ended)
        .and(waited)
        .map(|()| (jobs.len() * per_job) as u64)
}

/// A lone stream until `stop`: returns the jobs it submitted.
fn lone_stream(
    rt: &Runtime,
    counts: DevicePtr<u64>,
    index: u32,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<u64> {
    use std::sync::atomic::Ordering;
    let task = [PrioBusy {
        counts,
        stop: DevicePtr::null(),
        spin_ns: LONE_NS,
        index,
        hops: 0,
        max_hops: 1,
    }];
    let mut submitted = 0;
    let result = (|| {
        while !stop.load(Ordering::Relaxed) {
            rt.submit(&task)?.wait_timeout(WAIT)?;
            submitted += 1;
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    result.map(|()| submitted)
}

/// One-task short jobs, normal and high priority in turn, submit → done: `reps` of each after
/// `warmup`, flags from `first` (two per rep). Stops early (an error) if `stop` is raised.
fn short_jobs(
    rt: &Runtime,
    flags: &DeviceBuffer<u32>,
    first: usize,
    (warmup, reps): (usize, usize),
    stop: Option<&std::sync::atomic::AtomicBool>,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    use grosr::Priority;
    let (mut normal, mut high) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for i in 0..warmup + reps {
        if stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
            return Err(Error::Invalid(
                "priority: the background stopped before the short jobs were done".into(),
            ));
        }
        for (k, priority) in [Priority::Normal, Priority::High].into_iter().enumerate() {
            let task = [HolShort {
                flags: flags.ptr(),
                index: (first + 2 * i + k) as u32,
                pad: 0,
            }];
            let t = Instant::now();
            rt.submit_priority(&task, priority)?.wait_timeout(WAIT)?;
            if i >= warmup {
                if k == 0 { &mut normal } else { &mut high }.push(t.elapsed());
            }
        }
    }
    Ok((normal, high))
}

/// Priorities: a one-task short job's submit → done at normal and at high priority (in turn),
/// idle and while the GPU is saturated: chains of busy tasks on every lane, and lone busy jobs on
/// the normal rings' ingest warps. Table `priority`: median, p99, max in µs, and the
/// background's occupancy of the lanes. Every short job's flag and every background task's run
/// is checked.
pub fn priority(quick: bool, rings: Option<u32>) -> Result<Vec<Table>> {
    use std::sync::atomic::AtomicBool;
    let rt = with_rings(builder(), rings).build()?;
    let (warmup, reps) = if quick { (20, 300) } else { (100, 3_000) };
    let per = 2 * (warmup + reps);
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 2 * per)?;
    let stop_flag = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
    let lanes = (rt.info().grid_blocks * 256) as usize;
    // One chain for each lane (a few more: whole jobs); their counts, then the lone streams'.
    let per_job = lanes.div_ceil(BULK_JOBS);
    let chains = per_job * BULK_JOBS;
    let counts = DeviceBuffer::<u64>::zeroed(rt.gpu(), chains + LONE_THREADS)?;
    let (idle_normal, idle_high) = short_jobs(&rt, &flags, 0, (warmup, reps), None)?;
    let stop = AtomicBool::new(false);
    // From a read of the counts: the chains' hops so far, and how many chains have started.
    let hops_and_started = |c: &[u64]| {
        let c = &c[..chains];
        (c.iter().sum::<u64>(), c.iter().filter(|&&h| h > 0).count())
    };
    let (measured, bulk, lone) = std::thread::scope(|s| {
        let (rt, stop, ptr, stop_flag) = (&rt, &stop, counts.ptr(), &stop_flag);
        let bulk = s.spawn(move || bulk_stream(rt, ptr, stop_flag, per_job, stop));
        let lone: Vec<_> = (0..LONE_THREADS)
            .map(|t| s.spawn(move || lone_stream(rt, ptr, (chains + t) as u32, stop)))
            .collect();
        // The background saturates the GPU before the short jobs go in; its occupancy is what
        // the chains ran between the first and the last short job.
        std::thread::sleep(Duration::from_millis(20));
        let measured = (|| -> Result<_> {
            let before = (Instant::now(), counts.to_vec()?);
            let jobs = short_jobs(rt, &flags, per, (warmup, reps), Some(stop))?;
            let after = (Instant::now(), counts.to_vec()?);
            Ok((jobs, before, after))
        })();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let panicked = || Err(Error::Invalid("a background thread panicked".into()));
        let bulk = bulk.join().unwrap_or_else(|_| panicked());
        let lone: Vec<Result<u64>> = lone
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panicked()))
            .collect();
        (measured, bulk, lone)
    });
    // The background's errors first: they are usually why a measurement failed.
    let bulk = bulk?;
    let lone = lone.into_iter().collect::<Result<Vec<u64>>>()?;
    let ((loaded_normal, loaded_high), before, after) = measured?;
    check_set(&flags, 2 * per, "priority short jobs")?;
    let got = counts.to_vec()?;
    // Every chain ended (its job completed) having run at least its first hop; the lone
    // streams' tasks each once.
    if let Some(i) = got[..chains].iter().position(|&h| h == 0) {
        return Err(Error::Invalid(format!(
            "priority background: chain {i} of {bulk} never ran"
        )));
    }
    for (i, (&got, want)) in got[chains..].iter().zip(lone).enumerate() {
        if got != want {
            return Err(Error::Invalid(format!(
                "priority lone stream {i}: {got} tasks ran of {want}"
            )));
        }
    }
    // Lane time the chains used between the first and the last short job (a count read is up
    // to a hop old at either end, 20 µs of a window of milliseconds).
    let ((t0, counts0), (t1, counts1)) = (before, after);
    let ((h0, started), (h1, _)) = (hops_and_started(&counts0), hops_and_started(&counts1));
    let occupancy = h1.saturating_sub(h0) as f64 * f64::from(BULK_NS) * 1e-9
        / (lanes as f64 * (t1 - t0).as_secs_f64());
    let mut table = Table::new(
        "priority",
        "Priorities: a one-task short job's submit → done, idle and with the GPU saturated by \
         background work",
        "µs",
        false,
        &["median µs", "p99 µs", "max µs", "p99 / idle median"],
    );
    table.ratios = false;
    let idle = Stats::of(idle_high.clone()).median;
    for (label, samples) in [
        ("idle, normal priority", idle_normal),
        ("idle, high priority", idle_high),
        ("loaded, normal priority", loaded_normal),
        ("loaded, high priority", loaded_high),
    ] {
        let st = Stats::of(samples);
        table.push(
            label,
            vec![
                Some(us(st.median)),
                Some(us(st.p99)),
                Some(us(st.max)),
                Some(st.p99.as_secs_f64() / idle.as_secs_f64()),
            ],
        );
    }
    if rt.info().submit_rings < 3 {
        table.notes.push(format!(
            "{} submission ring(s): too few to keep one for high jobs, so both rows pick alike.",
            rt.info().submit_rings
        ));
    }
    table.notes.push(format!(
        "{reps} timed jobs per row after {warmup}, normal and high in turn. Background: {bulk} \
         chains of busy lane tasks of {} µs, at least one for each of the {lanes} lanes, in \
         {BULK_JOBS} jobs, running until the loaded rows are done ({started} had started \
         when they began, and they held {:.0}% of the lanes' time while they ran), and {LONE_THREADS} threads submitting one-task jobs \
         of {} ms one at a time. p99 / idle median: against the idle high-priority median. \
         Target (issue 20): loaded, high priority p99 ≤ 3× its idle latency.",
        BULK_NS / 1000,
        occupancy * 100.0,
        LONE_NS / 1_000_000
    ));
    Ok(vec![table])
}
