//! The benchmark workloads that `cargo bench` and the report share, each checked for correct
//! results before it is timed (METHOD: correct first, then warm up, then the median of many).

pub mod alloc;
pub mod contention;
pub mod graphs;
pub mod many;
pub mod mixed_dag;
pub mod relu_softmax;
pub mod startup;
pub mod table;

use std::time::{Duration, Instant};

use crate::{Error, Result};
use grosr::DeviceBuffer;
use grosr::DevicePtr;
use grosr::unstable::Baselines;
use grosr::{Runtime, RuntimeBuilder};

/// The smallest useful task: sets one flag.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    GROSR_TRACE_LEVEL(11);
    task.flags[task.index] = 1u;
"#
)]
pub struct Tiny {
    /// Flag array.
    pub flags: DevicePtr<u32>,
    /// Which flag.
    pub index: u32,
    /// Keeps the record 16 bytes.
    pub pad: u32,
}

/// [`Tiny`] with its body in Rust (`grosr::body`): the throughput table times both (issue 21:
/// within 3%).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.write(task.flags, task.index, 1u32);
})]
pub struct TinyRs {
    /// Flag array.
    pub flags: DevicePtr<u32>,
    /// Which flag.
    pub index: u32,
    /// Keeps the record 16 bytes.
    pub pad: u32,
}

/// One hop of a dependent chain: spawns the next hop; the last one sets `done`.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    if (task.remaining > 0) grosr_spawn_Hop(ctx, Hop{.remaining = task.remaining - 1, .hop = task.hop + 1, .done = task.done});
    else *task.done = task.hop + 1;
"#
)]
pub struct Hop {
    /// Hops still to come.
    pub remaining: u32,
    /// This hop's index.
    pub hop: u32,
    /// Where the last hop writes the number of hops run.
    pub done: DevicePtr<u32>,
}

/// Spreads `count` Tiny tasks over a tree of fan-out `fanout` (at least 2), all spawned on the
/// GPU: each task spawns up to `fanout` children, the leaves one Tiny per flag.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    GROSR_TRACE_LEVEL(task.depth);
    const uint32_t fanout = task.fanout < 2u ? 2u : task.fanout;
    if (task.count <= fanout) {
        for (uint32_t i = 0; i < task.count; ++i) grosr_spawn_Tiny(ctx, Tiny{.flags = task.flags, .index = task.first + i});
    } else {
        const uint32_t part = (task.count + fanout - 1) / fanout;
        for (uint32_t i = 0; i < fanout; ++i) {
            const uint32_t lo = i * part;
            if (lo < task.count) {
                const uint32_t n = task.count - lo < part ? task.count - lo : part;
                grosr_spawn_Spread(ctx, Spread{.flags = task.flags, .first = task.first + lo, .count = n, .fanout = fanout, .depth = task.depth + 1});
            }
        }
    }
"#
)]
pub struct Spread {
    /// Flag array.
    pub flags: DevicePtr<u32>,
    /// First flag of the range.
    pub first: u32,
    /// Flags in the range.
    pub count: u32,
    /// Children per task.
    pub fanout: u32,
    /// Level in the tree (the root: 0).
    pub depth: u32,
}

/// A runtime builder with the workload tasks registered, after the environment's
/// [`GROSR_DEFINES`](crate::env_defines).
pub fn builder() -> RuntimeBuilder {
    crate::env_defines(Runtime::builder())
        .task::<Tiny>()
        .task::<Hop>()
        .task::<Spread>()
        .task::<graphs::Ping>()
        .task::<graphs::Pong>()
        .task::<graphs::PingSpawn>()
        .task::<relu_softmax::ReluSoftmax>()
        .task::<relu_softmax::Relu>()
        .task::<relu_softmax::Softmax>()
        .task::<relu_softmax::ReluSoftmaxRs>()
        .task::<relu_softmax::ReluRs>()
        .task::<relu_softmax::SoftmaxRs>()
        .task::<TinyRs>()
        .task::<graphs::PingRs>()
        .task::<graphs::PongRs>()
        .task::<graphs::PingSpawnRs>()
}

/// Median, spread and count of timed samples.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// Median.
    pub median: Duration,
    /// Fastest sample.
    pub min: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest sample.
    pub max: Duration,
    /// Samples taken.
    pub samples: usize,
}

impl Stats {
    /// Statistics of `samples` (at least one).
    pub fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        let n = samples.len().max(1);
        let at = |q: f64| {
            samples
                .get(((n - 1) as f64 * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        Stats {
            median: at(0.5),
            min: at(0.0),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
            samples: samples.len(),
        }
    }
    /// The median in microseconds.
    pub fn median_us(&self) -> f64 {
        self.median.as_secs_f64() * 1e6
    }
}

/// How long and how often to time one workload under one strategy.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Untimed runs after the checked one.
    pub warmup: usize,
    /// Timed runs at most.
    pub reps: usize,
    /// Stop taking samples after this long (at least 3 are taken).
    pub budget: Duration,
}

impl Timing {
    /// Short runs for `--quick`, longer ones otherwise.
    pub fn new(quick: bool) -> Timing {
        if quick {
            Timing {
                warmup: 2,
                reps: 30,
                budget: Duration::from_millis(400),
            }
        } else {
            Timing {
                warmup: 5,
                reps: 200,
                budget: Duration::from_secs(2),
            }
        }
    }
}

/// Times `f` per `timing`: warm-up runs, then samples until `reps` or the budget (at least 3).
pub fn measure_within<E>(
    timing: Timing,
    mut f: impl FnMut() -> std::result::Result<(), E>,
) -> std::result::Result<Stats, E> {
    for _ in 0..timing.warmup {
        f()?;
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < timing.reps.max(3)
        && (samples.len() < 3 || start.elapsed() < timing.budget)
    {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed());
    }
    Ok(Stats::of(samples))
}

/// Runs `f` `warmup` times untimed, then `reps` times timed (at least 3).
pub fn measure<E>(
    warmup: usize,
    reps: usize,
    f: impl FnMut() -> std::result::Result<(), E>,
) -> std::result::Result<Stats, E> {
    let timing = Timing {
        warmup,
        reps,
        budget: Duration::MAX,
    };
    measure_within(timing, f)
}

/// `n` Tiny tasks, task i setting flag i.
pub fn tiny_tasks(flags: &DeviceBuffer<u32>, n: u32) -> Vec<Tiny> {
    (0..n)
        .map(|index| Tiny {
            flags: flags.ptr(),
            index,
            pad: 0,
        })
        .collect()
}

const WAIT: Duration = Duration::from_secs(60);

fn check_flags(flags: &DeviceBuffer<u32>, n: usize, what: &str) -> Result<()> {
    let v = flags.to_vec()?;
    match v[..n].iter().position(|&f| f != 1) {
        None => Ok(()),
        Some(i) => Err(Error::Invalid(format!(
            "{what}: task {i} did not run (result check failed)"
        ))),
    }
}

/// Submit one tiny task and wait until the host sees it complete.
pub fn resident_one_task(rt: &Runtime, warmup: usize, reps: usize) -> Result<Stats> {
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
    let task = [Tiny {
        flags: flags.ptr(),
        index: 0,
        pad: 0,
    }];
    rt.submit(&task)?.wait_timeout(WAIT)?;
    check_flags(&flags, 1, "one task")?;
    Ok(measure(warmup, reps, || {
        rt.submit(&task)?.wait_timeout(WAIT)
    })?)
}

/// A chain of `hops` dependent tasks spawned on the GPU; the time is for the whole chain.
pub fn resident_chain(rt: &Runtime, hops: u32, warmup: usize, reps: usize) -> Result<Stats> {
    let done = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
    let task = [Hop {
        remaining: hops - 1,
        hop: 0,
        done: done.ptr(),
    }];
    rt.submit(&task)?.wait_timeout(WAIT)?;
    if done.to_vec()?[0] != hops {
        return Err(Error::Invalid(format!(
            "chain: {} hops ran, not {hops}",
            done.to_vec()?[0]
        )));
    }
    Ok(measure(warmup, reps, || {
        rt.submit(&task)?.wait_timeout(WAIT)
    })?)
}

/// `n` independent tiny tasks submitted from the host as one slice.
pub fn resident_host_tasks(rt: &Runtime, n: u32, warmup: usize, reps: usize) -> Result<Stats> {
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize)?;
    let tasks = tiny_tasks(&flags, n);
    rt.submit(&tasks)?.wait_timeout(WAIT)?;
    check_flags(&flags, n as usize, "host tasks")?;
    Ok(measure(warmup, reps, || {
        rt.submit(&tasks)?.wait_timeout(WAIT)
    })?)
}

/// The fan-outs the report and `cargo bench` measure spawned tasks with.
pub const SPREAD_FANOUTS: [u32; 4] = [32, 16, 8, 4];

/// `n` independent tiny tasks spawned on the GPU by a tree of fan-out `fanout` from one
/// submitted task.
pub fn resident_spawned_tasks(
    rt: &Runtime,
    n: u32,
    fanout: u32,
    warmup: usize,
    reps: usize,
) -> Result<Stats> {
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize)?;
    let root = [Spread {
        flags: flags.ptr(),
        first: 0,
        count: n,
        fanout,
        depth: 0,
    }];
    rt.submit(&root)?.wait_timeout(WAIT)?;
    check_flags(&flags, n as usize, "spawned tasks")?;
    Ok(measure(warmup, reps, || {
        rt.submit(&root)?.wait_timeout(WAIT)
    })?)
}

/// Baseline: launch one tiny task as a kernel and synchronise.
pub fn launch_sync_one_task(
    b: &Baselines,
    gpu_flags: &DeviceBuffer<u32>,
    warmup: usize,
    reps: usize,
) -> Result<Stats> {
    let task = tiny_tasks(gpu_flags, 1)[0];
    let stats = measure(warmup, reps, || {
        b.launch_single(&task)?;
        b.sync(WAIT)
    })?;
    b.status()?;
    Ok(stats)
}

/// Baseline: `n` dependent tiny launches back to back on one stream, one synchronise.
pub fn launch_chain(
    b: &Baselines,
    gpu_flags: &DeviceBuffer<u32>,
    n: u32,
    warmup: usize,
    reps: usize,
) -> Result<Stats> {
    let task = tiny_tasks(gpu_flags, 1)[0];
    Ok(measure(warmup, reps, || {
        for _ in 0..n {
            b.launch_single(&task)?;
        }
        b.sync(WAIT)
    })?)
}

/// Baseline: one bulk kernel over `n` tiny tasks already in device memory.
pub fn bulk_tasks(
    b: &Baselines,
    rt: &Runtime,
    n: u32,
    warmup: usize,
    reps: usize,
) -> Result<Stats> {
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize)?;
    let tasks = tiny_tasks(&flags, n);
    let records = DeviceBuffer::from_slice(rt.gpu(), &tasks)?;
    b.launch_bulk(records.ptr(), n)?;
    b.sync(WAIT)?;
    b.status()?;
    check_flags(&flags, n as usize, "bulk tasks")?;
    Ok(measure(warmup, reps, || {
        b.launch_bulk(records.ptr(), n)?;
        b.sync(WAIT)
    })?)
}
