//! Where a lone task's latency goes: builds the workloads' runtime with `GROSR_TRACE`, submits
//! one tiny task at a time, and prints the median of each step the ingest warp stamped with
//! `%globaltimer` (cuda/grosr_runtime.cuh, `GROSR_STAMP`) beside the host's submit → wait time.
//!
//! `cargo run --release --example latency_trace -- [--reps 2000]` (needs a GPU)

use std::time::Instant;

use clap::Parser;
use grosr::DeviceBuffer;
use grosr::workloads::{self, Tiny};

#[derive(Parser)]
#[command(about = "per-step latency of one task, submit to completion")]
struct Args {
    /// Timed submissions (after 10% as many untimed ones).
    #[arg(long, default_value_t = 2000)]
    reps: usize,
}

/// The stamps' meaning: (from, to, what happens between them).
const STEPS: &[(usize, usize, &str)] = &[
    (
        10,
        0,
        "poll period (start of the last empty poll → start of the hit)",
    ),
    (0, 1, "the poll that saw the descriptor (ld.acquire.sys)"),
    (1, 2, "descriptor fields read"),
    (2, 3, "job count added (atom.acq_rel)"),
    (3, 4, "record loaded from mapped memory"),
    (4, 5, "the task ran"),
    (5, 6, "accounting up to the job's completion"),
    (6, 7, "completion published (st.release.sys)"),
    (7, 8, "records marked read (st.release.sys)"),
    (8, 9, "stack drained, desc_head released"),
    (0, 7, "device total: poll start → completion published"),
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> grosr::Result<()> {
    let args = Args::parse();
    let rt = workloads::builder().define("GROSR_TRACE", "1").build()?;
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
    let task = [Tiny {
        flags: flags.ptr(),
        index: 0,
        pad: 0,
    }];
    let mut host = Vec::with_capacity(args.reps);
    let mut steps = vec![Vec::with_capacity(args.reps); STEPS.len()];
    for rep in 0..args.reps + args.reps / 10 {
        let t0 = Instant::now();
        rt.submit(&task)?.wait()?;
        let total = t0.elapsed().as_secs_f64() * 1e6;
        let stamps: Vec<u64> = rt.read_global("grosr_trace")?;
        if rep < args.reps / 10 {
            continue;
        }
        host.push(total);
        for (i, &(from, to, _)) in STEPS.iter().enumerate() {
            steps[i].push(stamps[to].wrapping_sub(stamps[from]) as i64 as f64 / 1e3);
        }
    }
    if flags.to_vec()?[0] != 1 {
        return Err(grosr::Error::Config("the task did not run".into()));
    }
    println!("{} ({} submissions)", rt.gpu().name, args.reps);
    println!("{:>9}  step", "median µs");
    for (i, &(_, _, what)) in STEPS.iter().enumerate() {
        println!("{:>9.3}  {what}", median(steps[i].clone()));
    }
    println!("{:>9.3}  host: submit → wait returns", median(host));
    Ok(())
}
