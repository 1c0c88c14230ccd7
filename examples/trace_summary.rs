//! Where a user-shaped run's time goes: traces one Resident run (after a warm-up run of the same
//! prepared graph, whose events are left out) of a mixed DAG or of ReLU+Softmax as one task per row, checks its
//! results, prints `grosr_lab::trace_summary`'s text (the critical path's run time against the
//! time between its tasks, how busy the tracks were, each type's run times and waits) and writes
//! the Chrome trace for Perfetto.
//!
//! `cargo run --release -p grosr-lab --example trace_summary -- WHAT [OUT.json]`, WHAT one of
//! `dag-deep`, `dag-wide` (issue 20's mixed DAGs: CUDA bodies, a GPU only), `relu ROWSxLEN` and
//! `relu2 ROWSxLEN` (one task a row, or ReLU → Softmax: two), e.g. `relu 5000x256`, and
//! `threads N JOBS` (N host threads each submitting JOBS jobs of 1–3 warp tasks and waiting for
//! each: the report's `host_threads` shape, a GPU only); `GROSR_BACKEND=cpu` runs the
//! ReLU+Softmax ones on host threads (their Rust bodies).

use std::time::Duration;

use grosr::graph::{Prepared, Strategy};
use grosr::{Backend, Runtime};
use grosr_lab::trace_summary::summarize;
use grosr_lab::workloads::{self, contention, mixed_dag, relu_softmax};

const T: Duration = Duration::from_secs(60);
/// Events a warp keeps (the most a GPU trace takes): a traced run must drop nothing.
const EVENTS: usize = 1 << 16;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("dag-deep");
    // Before a runtime (and its compile) is built for it.
    if !["dag-deep", "dag-wide", "relu", "relu2", "threads"].contains(&what) {
        return Err(format!("{what}: dag-deep, dag-wide, relu, relu2 or threads").into());
    }
    let out = args
        .iter()
        .skip(1)
        .find(|a| a.ends_with(".json"))
        .cloned()
        .unwrap_or_else(|| format!("grosr-trace-{what}.json"));
    let cpu = Backend::from_env()? == Backend::Cpu;
    let rt = match (what, cpu) {
        ("dag-deep" | "dag-wide", _) => mixed_dag::builder(),
        ("threads", _) => contention::builder(),
        (_, false) => workloads::builder(),
        // Only the Rust bodies: the workloads' other types are CUDA C.
        (_, true) => Runtime::builder()
            .optimize(grosr::Optimize::Speed)
            .task::<relu_softmax::ReluSoftmaxRs>()
            .task::<relu_softmax::ReluRs>()
            .task::<relu_softmax::SoftmaxRs>(),
    }
    .trace(EVENTS)
    .build()?;
    let summary = match what {
        "dag-deep" | "dag-wide" => {
            let (shape, seed) = if what == "dag-deep" {
                (mixed_dag::DEEP, 20)
            } else {
                (mixed_dag::WIDE, 21)
            };
            let dag = mixed_dag::generate(&shape, seed)?;
            let gpu = mixed_dag::OnGpu::new(&rt, &dag)?;
            gpu.reset()?;
            let mut p = gpu.graph.prepare(&rt, Strategy::Resident)?;
            let trace = traced_run(&rt, &mut p)?;
            gpu.check(&dag, shape.name)?;
            println!("{} (seed {seed}), Resident, one run:", shape.name);
            trace
        }
        "relu" | "relu2" => {
            let shape = args
                .get(1)
                .ok_or("relu needs ROWSxLEN, e.g. relu 5000x256")?;
            let (rows, len): (u32, u32) = shape
                .split_once('x')
                .and_then(|(r, l)| Some((r.parse().ok()?, l.parse().ok()?)))
                .filter(|&(r, l)| r > 0 && l > 0)
                .ok_or_else(|| format!("{shape}: not ROWSxLEN, both above 0"))?;
            let m = relu_softmax::Matrix::new(&rt, rows, len)?;
            let graph = match (what, cpu) {
                ("relu", false) => m.one_task_graph(),
                ("relu", true) => m.one_task_graph_rust(),
                (_, false) => m.two_task_graph()?,
                (_, true) => m.two_task_graph_rust()?,
            };
            let x = m.randomize(7)?;
            let mut p = graph.prepare(&rt, Strategy::Resident)?;
            let trace = traced_run(&rt, &mut p)?;
            let err = m.max_relative_error(&x)?;
            if err > relu_softmax::tolerance(len) {
                return Err(format!("relative error {err:e}").into());
            }
            println!("ReLU+Softmax {rows}×{len}, {what}, Resident, one run:");
            trace
        }
        "threads" => {
            let arg = |i: usize, default: usize| {
                args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
            };
            let (threads, jobs) = (arg(1, 8), arg(2, 2000));
            // A warm-up round, its events dropped; then the traced one (every slot checked).
            contention::one_at_a_time(&rt, threads, 0, jobs)?;
            let _ = rt.trace()?;
            let (rate, _) = contention::one_at_a_time(&rt, threads, 0, jobs)?;
            println!(
                "{threads} host threads × {jobs} jobs of 1–3 warp tasks, each waited for: {:.3} M \
                 jobs/s (traced)",
                rate.unwrap_or(0.0) / 1e6
            );
            rt.trace()?
        }
        _ => return Err(format!("{what}: dag-deep, dag-wide, relu, relu2 or threads").into()),
    };
    if summary.dropped > 0 {
        println!(
            "warning: the trace dropped {} events (the figures miss them)",
            summary.dropped
        );
    }
    print!("{}", summarize(&summary));
    summary.write_chrome_json(&out)?;
    println!("trace: {out}");
    Ok(())
}

/// Runs `p` once (its first run: uploads done, caches warm) and drops its events, then once more,
/// and returns that run's trace.
fn traced_run(rt: &Runtime, p: &mut Prepared<'_>) -> Result<grosr::Trace, grosr::Error> {
    p.run(T)?;
    let _ = rt.trace()?;
    p.run(T)?;
    rt.trace()
}
