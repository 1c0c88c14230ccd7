//! Soak (issue 18): 8 host threads submit for `GROSR_SOAK_SECS` seconds (default 60) jobs of
//! random sizes and kinds from a seeded generator (`GROSR_SOAK_SEED`): flat jobs of up to 40 000
//! tasks (inline, one arena chunk or several), spawn trees of random fan-out and depth, warp and
//! block tasks, tasks that allocate from the device heap and tasks that check and free it, and
//! launches of resident task graphs (large ones and ones small enough to travel whole). Every task
//! adds 1 to a counter of its own id; each thread checks its counters exactly (each id it handed
//! out counted once, no other) whenever its id range is used up and at the end, the graphs'
//! counters against their launches, the runtime's per-type counts against the host's tally, and
//! the heap is back to 0 bytes in use. Every wait is bounded, and a watchdog stops the runtime
//! and fails the test if the threads do not finish. A run of the default length must get
//! through 10 M tasks. Prints one summary line (threads, tasks, seconds, tasks/s).
//!
//! `GROSR_SOAK_SECS=60 cargo test --release -p grosr --test gpu_soak -- --ignored --nocapture`

#[path = "common/soak.rs"]
mod soak;

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use grosr::graph::{Prepared, Strategy, TaskGraph};
use grosr::{DeviceBuffer, Error, Job, Runtime, Task};
use soak::*;

const THREADS: usize = 8;
/// Every wait for a job or a graph launch.
const T: Duration = Duration::from_secs(60);
/// Ids a thread hands out before it drains its jobs, checks its counters and clears them.
const REGION: u32 = 1 << 22;
/// Jobs a thread keeps in flight before it waits for its oldest.
const IN_FLIGHT: usize = 8;
/// How long past the soak's end the threads may take to drain and check before the watchdog
/// stops the runtime.
const GRACE: Duration = Duration::from_secs(180);
/// The task types, in the order of [`Tally::by_type`].
const TYPES: [&str; 7] = [
    "SoakLeaf",
    "SoakTree",
    "SoakWarp",
    "SoakBlock",
    "SoakAlloc",
    "SoakAllocWarp",
    "SoakFree",
];
const LEAF: usize = 0;
const TREE: usize = 1;
const WARP: usize = 2;
const BLOCK: usize = 3;
const ALLOC: usize = 4;
const ALLOC_WARP: usize = 5;
const FREE: usize = 6;
/// A thread's steps, for the watchdog's message.
const STEPS: [&str; 6] = ["setup", "submit", "wait", "graph launch", "check", "done"];

/// xorshift64*: reproducible sizes without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % n as u64) as u32
    }
    /// In `1..=max`, each power of two about as likely as the next: many small, some large.
    fn sized(&mut self, max: u32) -> u32 {
        let bits = 32 - max.leading_zeros();
        let top = 1u32 << self.below(bits);
        (top + self.below(top)).clamp(1, max)
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What a thread did.
#[derive(Clone, Debug, Default)]
struct Tally {
    by_type: [u64; 7],
    jobs: u64,
    graph_launches: u64,
    epochs: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        for (a, b) in self.by_type.iter_mut().zip(other.by_type) {
            *a += b;
        }
        self.jobs += other.jobs;
        self.graph_launches += other.graph_launches;
        self.epochs += other.epochs;
    }
    fn tasks(&self) -> u64 {
        self.by_type.iter().sum()
    }
}

/// Nodes of a complete `fanout`-ary tree of `depth` levels below its root.
fn tree_nodes(depth: u32, fanout: u32) -> u32 {
    (0..=depth).map(|d| fanout.pow(d)).sum()
}

/// A resident graph of leaf and warp nodes with counters of its own: each launch counts every
/// node's ids once more.
struct SoakGraph<'rt> {
    counts: DeviceBuffer<u32>,
    prepared: Prepared<'rt>,
    /// Leaf and warp nodes.
    leaves: u64,
    warps: u64,
    launches: u32,
}

/// A random DAG of `nodes` nodes (edges from lower to higher index, up to 3 predecessors among
/// the 16 before), a fifth of them warp nodes, prepared to run resident.
fn soak_graph<'rt>(rt: &'rt Runtime, rng: &mut Rng, nodes: u32) -> Result<SoakGraph<'rt>, Error> {
    let warp: Vec<bool> = (0..nodes).map(|_| rng.below(5) == 0).collect();
    let ids: u32 = warp.iter().map(|&w| if w { 33 } else { 1 }).sum();
    let counts = DeviceBuffer::<u32>::zeroed(rt.gpu(), ids as usize)?;
    let c = counts.ptr();
    let mut g = TaskGraph::new();
    let mut next = 0;
    let mut node_ids = Vec::new();
    for &w in &warp {
        node_ids.push(if w {
            g.add(SoakWarp {
                counts: c,
                id: next,
                pad: 0,
            })
        } else {
            g.add(SoakLeaf {
                counts: c,
                id: next,
                pad: 0,
            })
        });
        next += if w { 33 } else { 1 };
    }
    for v in 1..nodes {
        let mut preds = Vec::new();
        for _ in 0..rng.below(4) {
            let u = v - 1 - rng.below(v.min(16));
            if !preds.contains(&u) {
                preds.push(u);
                g.add_edge(node_ids[u as usize], node_ids[v as usize])?;
            }
        }
    }
    let warps = warp.iter().filter(|&&w| w).count() as u64;
    Ok(SoakGraph {
        counts,
        prepared: g.prepare(rt, Strategy::Resident)?,
        leaves: nodes as u64 - warps,
        warps,
        launches: 0,
    })
}

/// One thread's counters, ids and jobs in flight.
struct Worker<'rt> {
    rt: &'rt Runtime,
    t: usize,
    counts: DeviceBuffer<u32>,
    stats: DeviceBuffer<u32>,
    /// Ids handed out in this epoch: `0..cursor`.
    cursor: u32,
    /// Each job of this epoch: its first id, its id count and what it was, for error messages.
    log: Vec<(u32, u32, &'static str)>,
    jobs: VecDeque<(Job<'rt>, &'static str)>,
    tally: Tally,
    step: &'rt AtomicUsize,
}

impl<'rt> Worker<'rt> {
    fn err(&self, what: &str, e: Error) -> String {
        format!("thread {}: {what}: {e}", self.t)
    }

    /// Ids for a job needing `n` of them, starting a new epoch first if this one has too few.
    fn ids(&mut self, n: u32, what: &'static str) -> Result<u32, String> {
        if self.cursor + n > REGION {
            self.check_epoch()?;
        }
        let first = self.cursor;
        self.cursor += n;
        self.log.push((first, n, what));
        Ok(first)
    }

    fn submit<R: Task + 'static>(
        &mut self,
        records: &[R],
        what: &'static str,
    ) -> Result<(), String> {
        self.step.store(1, Ordering::Relaxed);
        let job = self.rt.submit(records).map_err(|e| self.err(what, e))?;
        self.tally.jobs += 1;
        self.jobs.push_back((job, what));
        if self.jobs.len() > IN_FLIGHT {
            self.wait_oldest()?;
        }
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<(), String> {
        self.step.store(2, Ordering::Relaxed);
        if let Some((job, what)) = self.jobs.pop_front() {
            job.wait_timeout(T)
                .map_err(|e| self.err(&format!("waiting for a {what} job"), e))?;
        }
        Ok(())
    }

    /// Waits for every job, checks that ids `0..cursor` were counted once and the rest not at
    /// all, and clears them for the next epoch.
    fn check_epoch(&mut self) -> Result<(), String> {
        while !self.jobs.is_empty() {
            self.wait_oldest()?;
        }
        self.step.store(4, Ordering::Relaxed);
        let got = self
            .counts
            .to_vec()
            .map_err(|e| self.err("reading counters", e))?;
        let used = self.cursor as usize;
        let wrong: Vec<usize> = (0..got.len())
            .filter(|&i| got[i] != (i < used) as u32)
            .collect();
        if let Some(&first) = wrong.first() {
            let job = |i: usize| {
                let i = i as u32;
                self.log
                    .iter()
                    .find(|&&(s, n, _)| (s..s + n).contains(&i))
                    .map_or("no job".to_string(), |&(s, n, w)| {
                        format!("{w} job of ids {s}..{}", s + n)
                    })
            };
            let examples: Vec<String> = wrong
                .iter()
                .take(6)
                .map(|&i| format!("id {i} = {} ({})", got[i], job(i)))
                .collect();
            let heap = self.stats.to_vec().unwrap_or_default();
            return Err(format!(
                "thread {} epoch {}: {} of {used} ids not counted exactly once (first {first}): {} \
                 (heap tasks: {heap:?} [null allocations, changed blocks])",
                self.t,
                self.tally.epochs,
                wrong.len(),
                examples.join("; ")
            ));
        }
        self.counts
            .write(&vec![0u32; used])
            .map_err(|e| self.err("clearing counters", e))?;
        self.cursor = 0;
        self.log.clear();
        self.tally.epochs += 1;
        Ok(())
    }

    /// One random job (or graph launch).
    fn one_job(&mut self, rng: &mut Rng, graphs: &mut [SoakGraph<'rt>]) -> Result<(), String> {
        let c = self.counts.ptr();
        let s = self.stats.ptr();
        match rng.below(100) {
            0..30 => {
                let n = rng.sized(40_000);
                let first = self.ids(n, "leaf")?;
                let r: Vec<SoakLeaf> = (first..first + n)
                    .map(|id| SoakLeaf {
                        counts: c,
                        id,
                        pad: 0,
                    })
                    .collect();
                self.tally.by_type[LEAF] += n as u64;
                self.submit(&r, "leaf")
            }
            30..50 => {
                let shapes: Vec<(u32, u32)> = (0..1 + rng.below(32))
                    .map(|_| {
                        let fanout = 1 + rng.below(4);
                        let mut depth = rng.below(7);
                        while tree_nodes(depth, fanout) > 4096 {
                            depth -= 1;
                        }
                        (depth, fanout)
                    })
                    .collect();
                let need: u32 = shapes.iter().map(|&(d, f)| tree_nodes(d, f)).sum();
                let mut base = self.ids(need, "spawn tree")?;
                let r: Vec<SoakTree> = shapes
                    .iter()
                    .map(|&(depth, fanout)| {
                        let root = SoakTree {
                            counts: c,
                            base,
                            node: 0,
                            depth,
                            fanout,
                        };
                        base += tree_nodes(depth, fanout);
                        root
                    })
                    .collect();
                self.tally.by_type[TREE] += need as u64;
                self.submit(&r, "spawn tree")
            }
            50..60 => {
                let n = rng.sized(512);
                let first = self.ids(33 * n, "warp")?;
                let r: Vec<SoakWarp> = (0..n)
                    .map(|i| SoakWarp {
                        counts: c,
                        id: first + 33 * i,
                        pad: 0,
                    })
                    .collect();
                self.tally.by_type[WARP] += n as u64;
                self.tally.by_type[LEAF] += 32 * n as u64;
                self.submit(&r, "warp")
            }
            60..65 => {
                let n = rng.sized(64);
                let first = self.ids(n, "block")?;
                let r: Vec<SoakBlock> = (first..first + n)
                    .map(|id| SoakBlock {
                        counts: c,
                        id,
                        pad: 0,
                    })
                    .collect();
                self.tally.by_type[BLOCK] += n as u64;
                self.submit(&r, "block")
            }
            65..80 => {
                let n = rng.sized(4096);
                let first = self.ids(2 * n, "heap")?;
                let r: Vec<SoakAlloc> = (0..n)
                    .map(|i| SoakAlloc {
                        counts: c,
                        stats: s,
                        id: first + 2 * i,
                        words: rng.sized(256),
                    })
                    .collect();
                self.tally.by_type[ALLOC] += n as u64;
                self.tally.by_type[FREE] += n as u64;
                self.submit(&r, "heap")
            }
            80..85 => {
                let n = rng.sized(128);
                let first = self.ids(33 * n, "warp heap")?;
                let r: Vec<SoakAllocWarp> = (0..n)
                    .map(|i| SoakAllocWarp {
                        counts: c,
                        stats: s,
                        id: first + 33 * i,
                        words: rng.sized(64),
                    })
                    .collect();
                self.tally.by_type[ALLOC_WARP] += n as u64;
                self.tally.by_type[FREE] += 32 * n as u64;
                self.submit(&r, "warp heap")
            }
            roll => {
                // 85..95: the large graph; 95..100: the one that travels whole.
                let g = &mut graphs[(roll >= 95) as usize];
                self.step.store(3, Ordering::Relaxed);
                g.prepared
                    .run(T)
                    .map_err(|e| self.err(&format!("graph launch {}", g.launches), e))?;
                g.launches += 1;
                self.tally.graph_launches += 1;
                self.tally.by_type[LEAF] += g.leaves + 32 * g.warps;
                self.tally.by_type[WARP] += g.warps;
                Ok(())
            }
        }
    }
}

/// One host thread of the soak: random jobs until `until` (or `abort`), then the last checks.
fn soak_thread(
    rt: &Runtime,
    t: usize,
    seed: u64,
    until: Instant,
    abort: &AtomicBool,
    step: &AtomicUsize,
) -> Result<Tally, String> {
    let err = |what: &str, e: Error| format!("thread {t}: {what}: {e}");
    let mut rng = Rng::new(seed ^ (t as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let big = 64 + rng.below(512);
    let tiny = 1 + rng.below(4);
    let mut graphs = [
        soak_graph(rt, &mut rng, big).map_err(|e| err("preparing a graph", e))?,
        soak_graph(rt, &mut rng, tiny).map_err(|e| err("preparing a small graph", e))?,
    ];
    let mut w = Worker {
        rt,
        t,
        counts: DeviceBuffer::zeroed(rt.gpu(), REGION as usize).map_err(|e| err("counters", e))?,
        stats: DeviceBuffer::zeroed(rt.gpu(), 2).map_err(|e| err("stats", e))?,
        cursor: 0,
        log: Vec::new(),
        jobs: VecDeque::new(),
        tally: Tally::default(),
        step,
    };
    while Instant::now() < until && !abort.load(Ordering::Relaxed) {
        w.one_job(&mut rng, &mut graphs)?;
    }
    w.check_epoch()?;
    for (i, g) in graphs.iter().enumerate() {
        let got = g
            .counts
            .to_vec()
            .map_err(|e| err("reading graph counters", e))?;
        if let Some(id) = got.iter().position(|&c| c != g.launches) {
            return Err(format!(
                "thread {t}: graph {i} ({} nodes): id {id} counted {} times in {} launches",
                g.leaves + g.warps,
                got[id],
                g.launches
            ));
        }
    }
    let stats = w.stats.to_vec().map_err(|e| err("reading heap stats", e))?;
    if stats != [0, 0] {
        return Err(format!(
            "thread {t}: {} allocations returned null, {} blocks changed before their free",
            stats[0], stats[1]
        ));
    }
    step.store(5, Ordering::Relaxed);
    Ok(w.tally)
}

/// Tasks run per type, in [`TYPES`] order.
fn executed(rt: &Runtime) -> [u64; 7] {
    [
        rt.executed::<SoakLeaf>(),
        rt.executed::<SoakTree>(),
        rt.executed::<SoakWarp>(),
        rt.executed::<SoakBlock>(),
        rt.executed::<SoakAlloc>(),
        rt.executed::<SoakAllocWarp>(),
        rt.executed::<SoakFree>(),
    ]
    .map(|r| r.expect("executed counts"))
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn soak_of_random_jobs_spawns_graphs_and_heap_use_counts_every_task_once() {
    let secs: f64 = env_or("GROSR_SOAK_SECS", 60.0);
    let seed: u64 = env_or("GROSR_SOAK_SEED", 18);
    let rt = Arc::new(soak::builder().build().expect("runtime"));
    let before = executed(&rt);
    let abort = Arc::new(AtomicBool::new(false));
    let steps: Arc<Vec<AtomicUsize>> =
        Arc::new((0..THREADS).map(|_| AtomicUsize::new(0)).collect());
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let (tx, rx) = mpsc::channel();
    for t in 0..THREADS {
        let (rt, abort, steps, tx) = (rt.clone(), abort.clone(), steps.clone(), tx.clone());
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                soak_thread(&rt, t, seed, until, &abort, &steps[t])
            }))
            .unwrap_or_else(|p| {
                let why = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(format!("thread {t} panicked: {why}"))
            });
            let _ = tx.send((t, r));
        });
    }
    drop(tx);
    // Threads stop at `until` and then drain; past the grace the runtime is stopped (every wait
    // then ends) and the test fails naming where each unfinished thread was.
    let mut results: Vec<Option<Result<Tally, String>>> = vec![None; THREADS];
    let mut deadline = until + GRACE;
    let mut stopped = false;
    while results.iter().any(Option::is_none) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((t, r)) => {
                if r.is_err() {
                    abort.store(true, Ordering::Relaxed);
                }
                results[t] = Some(r);
            }
            Err(_) if !stopped => {
                abort.store(true, Ordering::Relaxed);
                let _ = rt.stop();
                stopped = true;
                deadline = Instant::now() + Duration::from_secs(30);
            }
            Err(_) => break,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let unfinished: Vec<String> = (0..THREADS)
        .filter(|&t| results[t].is_none())
        .map(|t| format!("thread {t} in {}", STEPS[steps[t].load(Ordering::Relaxed)]))
        .collect();
    assert!(
        !stopped && unfinished.is_empty(),
        "the soak did not finish {GRACE:?} after its {secs} s (runtime stopped): unfinished {unfinished:?}, finished {:?}",
        results
            .iter()
            .flatten()
            .filter_map(|r| r.as_ref().err())
            .collect::<Vec<_>>()
    );
    let errors: Vec<&String> = results
        .iter()
        .flatten()
        .filter_map(|r| r.as_ref().err())
        .collect();
    assert!(errors.is_empty(), "seed {seed}: {errors:#?}");
    let mut total = Tally::default();
    for r in results.iter().flatten().flatten() {
        total.add(r);
    }
    let after = executed(&rt);
    for (i, name) in TYPES.iter().enumerate() {
        assert_eq!(
            after[i] - before[i],
            total.by_type[i],
            "{name} tasks the runtime ran against the host's tally"
        );
    }
    let heap = rt.heap_stats().unwrap();
    assert_eq!(
        (heap.bytes_in_use, heap.allocations_in_use),
        (0, 0),
        "the heap after the soak: {heap:?}"
    );
    assert_eq!((heap.failures, heap.bad_frees), (0, 0), "{heap:?}");
    let tasks = total.tasks();
    println!(
        "soak: {THREADS} threads, {tasks} tasks in {elapsed:.1} s = {:.0} tasks/s ({} jobs, {} graph launches, {} counter checks; seed {seed}; {})",
        tasks as f64 / elapsed,
        total.jobs,
        total.graph_launches,
        total.epochs,
        TYPES
            .iter()
            .zip(total.by_type)
            .map(|(n, c)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if secs >= 60.0 {
        assert!(tasks >= 10_000_000, "only {tasks} tasks in {elapsed:.1} s");
    }
}
