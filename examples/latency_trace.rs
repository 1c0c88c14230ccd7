//! Where a lone task's latency goes: builds the workloads' runtime with `GROSR_TRACE`, submits
//! one tiny task at a time, and prints the median of each step the ingest warp stamped with
//! `%globaltimer` (cuda/grosr_trace.cuh, `GROSR_STAMP`) beside the host's submit → wait time.
//!
//! With `--relu`, the same for a resident graph launch: ReLU+Softmax 5000 × 256 (one warp task
//! per row): ingest, fan-out, the roots' run, completion. With `--pair`, one ping-pong pair.
//! With `--spawn F`, the timeline of 1M tiny tasks spawned by a tree of fan-out F.
//!
//! `cargo run --release --example latency_trace -- [--reps 2000] [--relu | --pair | --spawn 8]`
//! (needs a GPU)

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use grosr::DeviceBuffer;
use grosr::graph::Strategy;
use grosr_lab::workloads::graphs::{check_pairs, pingpong_graph};
use grosr_lab::workloads::relu_softmax::{Matrix, TOLERANCE};
use grosr_lab::workloads::{self, Tiny};

#[derive(Parser)]
#[command(about = "per-step latency of one task, submit to completion")]
struct Args {
    /// Timed submissions, 1..=1000000 (after 10% as many untimed ones).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    reps: u32,
    /// Trace a resident ReLU+Softmax graph launch (5000 × 256) instead of one tiny task.
    #[arg(long)]
    relu: bool,
    /// Trace a resident launch of one ping-pong pair (stage 1 → stage 2) instead.
    #[arg(long, conflicts_with = "relu")]
    pair: bool,
    /// Trace 1M tiny tasks spawned by a tree of this fan-out instead: when each level of the
    /// tree starts and stops starting (the report's "spawned on the GPU" row); 2..=1024.
    #[arg(long, conflicts_with_all = ["relu", "pair"], value_parser = clap::value_parser!(u32).range(2..=1024))]
    spawn: Option<u32>,
}

/// The stamps' meaning: (from, to, what happens between them).
const STEPS: &[(usize, usize, &str)] = &[
    (
        10,
        0,
        "poll period (issue of the last empty poll → issue of the hit)",
    ),
    (
        0,
        1,
        "the poll that saw the descriptor whole (32 cells, one round trip)",
    ),
    (1, 2, "descriptor fields shuffled out"),
    (2, 3, "job count added (relaxed, no wait)"),
    (3, 4, "records gathered (inline: shuffles)"),
    (4, 5, "the task ran"),
    (5, 6, "accounting up to the job's completion"),
    (6, 7, "completion published (st.release.sys)"),
    (7, 8, "round over"),
    (8, 9, "stack drained, desc_head stored"),
    (0, 7, "device total: poll issue → completion published"),
];

/// The steps of a graph launch.
const GRAPH_STEPS: &[(usize, usize, &str)] = &[
    (0, 12, "descriptor seen → graph ingest entered"),
    (12, 13, "roots offered on the board (or pieces pushed)"),
    (13, 14, "→ first root starts (claims)"),
    (14, 15, "first root start → last root end"),
    (15, 6, "last root end → job complete"),
    (6, 7, "completion published (st.release.sys)"),
    (0, 7, "device total: poll issue → completion published"),
];

/// The steps of a one-pair graph launch: a small graph, carried whole by its launch descriptor
/// and run level by level on the ingest warp (`run_small_graph`).
const PAIR_STEPS: &[(usize, usize, &str)] = &[
    (0, 12, "poll issue → small graph entered"),
    (12, 15, "stage 1 ran and was accounted (level 0)"),
    (15, 5, "stage 2 ran (level 1)"),
    (5, 6, "accounting up to the job's completion"),
    (6, 7, "completion published (st.release.sys)"),
    (0, 7, "device total: poll issue → completion published"),
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let args = Args::parse();
    grosr_lab::cli::exit("latency_trace", run(&args))
}

fn run(args: &Args) -> grosr_lab::Result<()> {
    // One submission ring: the stamps are ring 0's ingest warp's (cuda/grosr_trace.cuh).
    let rt = workloads::builder()
        .submit_rings(1)
        .diagnostics(true)
        .build()?;
    let reps = args.reps as usize;
    let warmup = reps / 10;
    if let Some(fanout) = args.spawn {
        return Ok(spawn_levels(&rt, fanout, warmup, reps)?);
    }
    let (host, steps, table) = if args.relu {
        let m = Matrix::new(&rt, 5000, 256)?;
        let x = m.randomize(1)?;
        let mut graph = m.one_task_graph().prepare(&rt, Strategy::Resident)?;
        graph.run(Duration::from_secs(10))?;
        let err = m.max_relative_error(&x)?;
        if err > TOLERANCE {
            return Err(grosr_lab::Error::Invalid(format!(
                "wrong softmax: error {err}"
            )));
        }
        let (host, steps) = trace(&rt, warmup, reps, GRAPH_STEPS, || {
            graph.run(Duration::from_secs(10))
        })?;
        (host, steps, GRAPH_STEPS)
    } else if args.pair {
        let a = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
        let b = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
        let mut graph = pingpong_graph(&a, &b, 1)?.prepare(&rt, Strategy::Resident)?;
        let (host, steps) = trace(&rt, warmup, reps, PAIR_STEPS, || {
            graph.run(Duration::from_secs(10))
        })?;
        check_pairs(&b, 1, "Resident")?;
        (host, steps, PAIR_STEPS)
    } else {
        let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
        let task = [Tiny {
            flags: flags.ptr(),
            index: 0,
            pad: 0,
        }];
        let (host, steps) = trace(&rt, warmup, reps, STEPS, || rt.submit(&task)?.wait())?;
        if flags.to_vec()?[0] != 1 {
            return Err(grosr_lab::Error::Invalid("the task did not run".into()));
        }
        (host, steps, STEPS)
    };
    println!("{} ({reps} launches)", rt.gpu().name);
    println!("{:>9}  step", "median µs");
    for (i, &(_, _, what)) in table.iter().enumerate() {
        println!("{:>9.3}  {what}", median(steps[i].clone()));
    }
    println!("{:>9.3}  host: submit → wait returns", median(host));
    Ok(())
}

/// Runs `launch` `warmup + reps` times; returns the host's times and, per step, the device's
/// (µs), from the stamps each launch left.
fn trace(
    rt: &grosr::Runtime,
    warmup: usize,
    reps: usize,
    table: &[(usize, usize, &str)],
    mut launch: impl FnMut() -> grosr::Result<()>,
) -> grosr::Result<(Vec<f64>, Vec<Vec<f64>>)> {
    let mut host = Vec::with_capacity(reps);
    let mut steps = vec![Vec::with_capacity(reps); table.len()];
    for rep in 0..warmup + reps {
        let t0 = Instant::now();
        launch()?;
        let total = t0.elapsed().as_secs_f64() * 1e6;
        let stamps: Vec<u64> = rt.read_global("grosr_trace")?;
        if rep < warmup {
            continue;
        }
        host.push(total);
        for (i, &(from, to, _)) in table.iter().enumerate() {
            steps[i].push(stamps[to].wrapping_sub(stamps[from]) as i64 as f64 / 1e3);
        }
    }
    Ok((host, steps))
}

/// The spawn tree's timeline: per level, when its first and its last task started (µs after the
/// root started; median over `reps` launches), then the host's submit → wait.
fn spawn_levels(rt: &grosr::Runtime, fanout: u32, warmup: usize, reps: usize) -> grosr::Result<()> {
    const N: u32 = 1 << 20;
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), N as usize)?;
    let root = [workloads::Spread {
        flags: flags.ptr(),
        first: 0,
        count: N,
        fanout,
        depth: 0,
    }];
    let (mut host, mut first, mut last) = (Vec::new(), vec![Vec::new(); 12], vec![Vec::new(); 12]);
    let mut warp_sums = [0u64; WARP_SLOTS];
    let mut hist = vec![0u64; 3 * HIST_BUCKETS];
    for rep in 0..warmup + reps {
        // The device only lowers the first starts, raises the last ones and adds to the ring.
        let mut reset: Vec<u64> = rt.read_global("grosr_trace")?;
        reset[16..28].fill(u64::MAX);
        reset[28..40].fill(0);
        rt.write_global("grosr_trace", &reset)?;
        rt.write_global("grosr_seq", &[0u64; 64])?;
        let before = warp_totals(rt)?;
        // Zeroed just before the launch and read just after it: the ring (524 µs) then holds
        // little of the idle time around the launch.
        rt.write_global("grosr_hist", &[0u32; 3 * HIST_BUCKETS])?;
        let t0 = Instant::now();
        rt.submit(&root)?.wait_timeout(Duration::from_secs(10))?;
        let total = t0.elapsed().as_secs_f64() * 1e6;
        let stamps: Vec<u64> = rt.read_global("grosr_trace")?;
        let h: Vec<u32> = rt.read_global("grosr_hist")?;
        let after = warp_totals(rt)?;
        if rep < warmup {
            continue;
        }
        host.push(total);
        // The ring's bucket of the root's start comes first.
        let start = ((stamps[16] >> HIST_SHIFT) % HIST_BUCKETS as u64) as usize;
        for (row, sums) in hist.chunks_mut(HIST_BUCKETS).enumerate() {
            for (i, sum) in sums.iter_mut().enumerate() {
                *sum += u64::from(h[row * HIST_BUCKETS + (start + i) % HIST_BUCKETS]);
            }
        }
        for (sum, (a, b)) in warp_sums.iter_mut().zip(after.iter().zip(before)) {
            *sum += a.wrapping_sub(b);
        }
        for l in 0..12 {
            if stamps[28 + l] != 0 {
                first[l].push(stamps[16 + l].wrapping_sub(stamps[16]) as i64 as f64 / 1e3);
                last[l].push(stamps[28 + l].wrapping_sub(stamps[16]) as i64 as f64 / 1e3);
            }
        }
    }
    let set = flags.to_vec()?.iter().filter(|&&f| f == 1).count();
    if set != N as usize {
        return Err(grosr::Error::Config(format!("{set} of {N} tiny tasks ran")));
    }
    println!(
        "{} ({reps} launches of 1M tiny tasks, tree of fan-out {fanout})",
        rt.gpu().name
    );
    println!(
        "{:>5}  {:>14}  {:>14}",
        "level", "first start µs", "last start µs"
    );
    for l in 0..12 {
        if !first[l].is_empty() {
            let name = if l == 11 {
                "tiny".to_string()
            } else {
                l.to_string()
            };
            println!(
                "{name:>5}  {:>14.2}  {:>14.2}",
                median(first[l].clone()),
                median(last[l].clone())
            );
        }
    }
    let host_us = median(host);
    println!("host: submit → wait returns {host_us:.2} µs");
    print_timeline(&hist, reps, host_us);
    print_root_steps(rt)?;
    // Worker warps' time, summed over them, per launch (GROSR_WT_* in cuda/grosr_trace.cuh).
    let per = |slot: usize| warp_sums[slot] as f64 / reps.max(1) as f64;
    let mean_us = |ns: usize, n: usize| per(ns) / per(n).max(1.0) / 1e3;
    let rounds = per(0) + per(2);
    let workers = (rt.info().grid_blocks * 8).saturating_sub(1) as f64;
    println!("worker warps ({workers}), per launch:");
    println!(
        "  rounds from the warp's stack {:>9.0}, take {:.3} µs each",
        per(0),
        mean_us(1, 0)
    );
    println!(
        "  rounds from queues / board   {:>9.0}, take {:.3} µs each",
        per(2),
        mean_us(3, 2)
    );
    println!(
        "  a round's run (process)      {:>9} {:.3} µs each",
        "",
        per(4) / rounds.max(1.0) / 1e3
    );
    println!(
        "  dry takes (nothing found)    {:>9.0}, {:.3} µs each",
        per(5),
        mean_us(6, 5)
    );
    println!(
        "  queue pushes                 {:>9.0}, {:.3} µs each",
        per(7),
        mean_us(8, 7)
    );
    println!(
        "  share of warp time running rounds: {:.0}% (process time / (host time × warps))",
        100.0 * per(4) / 1e3 / (host_us * workers).max(1.0)
    );
    Ok(())
}

/// Buckets of `grosr_hist` per row, and the width of one: 2^HIST_SHIFT ns (cuda/grosr_trace.cuh).
const HIST_BUCKETS: usize = 128;
const HIST_SHIFT: u32 = 12;
const HIST_BUCKET_US: f64 = (1u64 << HIST_SHIFT) as f64 / 1e3;

/// The tree's timeline per launch: tasks started and worker warps' dry takes per bucket, up to
/// the host's median time.
fn print_timeline(hist: &[u64], reps: usize, host_us: f64) {
    let per = |v: u64| v as f64 / reps.max(1) as f64;
    println!(
        "timeline per launch (buckets of {HIST_BUCKET_US} µs; the first holds the root's start):"
    );
    println!(
        "{:>8}  {:>10}  {:>10}  {:>10}",
        "from µs", "tiny", "other", "dry takes"
    );
    let last = ((host_us / HIST_BUCKET_US) as usize + 1).min(HIST_BUCKETS);
    for b in 0..last {
        let (tiny, other, dry) = (hist[b], hist[HIST_BUCKETS + b], hist[2 * HIST_BUCKETS + b]);
        println!(
            "{:>8.1}  {:>10.0}  {:>10.0}  {:>10.0}",
            b as f64 * HIST_BUCKET_US,
            per(tiny),
            per(other),
            per(dry)
        );
    }
}

/// The last launch's first steps on the ingest warp's lane 0 from the root's start
/// (`grosr_seq`: `time << 8 | step`, the time's low 56 bits; steps: GROSR_SEQ in
/// cuda/grosr_trace.cuh).
fn print_root_steps(rt: &grosr::Runtime) -> grosr::Result<()> {
    const STEPS: [&str; 13] = [
        "?",
        "lane round",
        "bodies ran",
        "held ran",
        "accounted",
        "take_work",
        "took stack",
        "spawn_words",
        "stacked",
        "push",
        "pushed",
        "account",
        "ctx.spawn",
    ];
    let seq: Vec<u64> = rt.read_global("grosr_seq")?;
    let stamps: Vec<u64> = rt.read_global("grosr_trace")?;
    println!("the root's warp, step by step (µs from the root's start):");
    let mut line = String::new();
    for &e in seq.iter().take_while(|&&e| e != 0) {
        // The shift dropped the timer's top 8 bits: compare the low 56.
        let at = ((e >> 8) as i64 - (stamps[16] & ((1 << 56) - 1)) as i64) as f64 / 1e3;
        let step = STEPS.get((e & 0xFF) as usize).copied().unwrap_or("?");
        line.push_str(&format!("{at:.2} {step}; "));
    }
    println!("{line}");
    Ok(())
}

/// Slots per warp of `grosr_warp_trace`, and those the trace fills.
const WARP_ROW: usize = 16;
const WARP_SLOTS: usize = 9;

/// `grosr_warp_trace` summed over warps, per slot (running totals).
fn warp_totals(rt: &grosr::Runtime) -> grosr::Result<[u64; WARP_SLOTS]> {
    let rows: Vec<u64> = rt.read_global("grosr_warp_trace")?;
    let mut sums = [0u64; WARP_SLOTS];
    for row in rows.chunks(WARP_ROW) {
        for (sum, v) in sums.iter_mut().zip(row) {
            *sum = sum.wrapping_add(*v);
        }
    }
    Ok(sums)
}
