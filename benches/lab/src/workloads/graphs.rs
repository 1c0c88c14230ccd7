//! Task-graph workloads run under every [`Strategy`]: ping-pong (N dependent pairs) and
//! throughput (N independent tiny tasks), the seed's two experiments, larger.

use std::time::{Duration, Instant};

use crate::{Error, Result};
use grosr::DeviceBuffer;
use grosr::DevicePtr;
use grosr::Runtime;
use grosr::graph::{Prepared, Strategy, TaskGraph};

use super::table::Table;
use super::{Stats, Timing, Tiny, TinyRs, measure_within, tiny_tasks};

/// Stage 1 of a pair: writes `a[i] = i + 1`.
#[grosr::task(granularity = "lane", cuda = "task.a[task.i] = task.i + 1u;")]
pub struct Ping {
    /// Stage-1 output.
    pub a: DevicePtr<u32>,
    /// Stage-2 output.
    pub b: DevicePtr<u32>,
    /// The pair.
    pub i: u32,
    /// Keeps the record 24 bytes.
    pub pad: u32,
}

/// Stage 2 of a pair: reads stage 1's output, so it is wrong if it ran first.
#[grosr::task(
    granularity = "lane",
    cuda = "task.b[task.i] = 2u * task.a[task.i] + 1u;"
)]
pub struct Pong {
    /// Stage-1 output.
    pub a: DevicePtr<u32>,
    /// Stage-2 output.
    pub b: DevicePtr<u32>,
    /// The pair.
    pub i: u32,
    /// Keeps the record 24 bytes.
    pub pad: u32,
}

/// Stage 1 that spawns its stage 2 on the GPU (the seed's variant: no graph at all).
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    task.a[task.i] = task.i + 1u;
    grosr_spawn_Pong(ctx, Pong{.a = task.a, .b = task.b, .i = task.i});
"#
)]
pub struct PingSpawn {
    /// Stage-1 output.
    pub a: DevicePtr<u32>,
    /// Stage-2 output.
    pub b: DevicePtr<u32>,
    /// The pair.
    pub i: u32,
    /// Keeps the record 24 bytes.
    pub pad: u32,
}

/// [`Ping`] with its body in Rust (`grosr::body`): the ping-pong table times both (issue 21:
/// within 3%).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.write(task.a, task.i, task.i + 1);
})]
pub struct PingRs {
    /// Stage-1 output.
    pub a: DevicePtr<u32>,
    /// Stage-2 output.
    pub b: DevicePtr<u32>,
    /// The pair.
    pub i: u32,
    /// Keeps the record 24 bytes.
    pub pad: u32,
}

/// [`Pong`] with its body in Rust.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let a = ctx.read(task.a, task.i);
    ctx.write(task.b, task.i, 2 * a + 1);
})]
pub struct PongRs {
    /// Stage-1 output.
    pub a: DevicePtr<u32>,
    /// Stage-2 output.
    pub b: DevicePtr<u32>,
    /// The pair.
    pub i: u32,
    /// Keeps the record 24 bytes.
    pub pad: u32,
}

/// [`PingSpawn`] with its body in Rust: the spawned [`PongRs`] names its fields.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.write(task.a, task.i, task.i + 1);
    ctx.spawn(PongRs { a: task.a, b: task.b, i: task.i, pad: 0u32 });
})]
pub struct PingSpawnRs {
    /// Stage-1 output.
    pub a: DevicePtr<u32>,
    /// Stage-2 output.
    pub b: DevicePtr<u32>,
    /// The pair.
    pub i: u32,
    /// Keeps the record 24 bytes.
    pub pad: u32,
}

/// One strategy's figures for one graph.
#[derive(Clone, Copy, Debug)]
pub struct StrategyRun {
    /// Upload (Resident), instantiation (CUDA graphs) or plan upload (Fused) time.
    pub prepare: Duration,
    /// Time of one whole run of the graph.
    pub run: Stats,
}

/// What a workload supplies so each strategy can be checked before it is timed.
pub struct Checks<'a> {
    /// Called before the checked run: clear outputs, write fresh inputs.
    pub reset: &'a dyn Fn() -> Result<()>,
    /// Called after it: fails if any result is wrong.
    pub check: &'a dyn Fn(Strategy) -> Result<()>,
}

/// Runs `graph` under each strategy: the scheduler runs for Resident and is stopped for the
/// others (they get every SM). Each strategy is prepared (timed on its own), run once on fresh
/// inputs and checked, then timed, then checked again (every workload's runs are repeatable). A
/// strategy that cannot be prepared here (PDL before sm_90) gives `Err` in its place; a wrong
/// result is an error for the whole call.
pub fn compare(
    rt: &Runtime,
    graph: &TaskGraph,
    strategies: &[Strategy],
    checks: &Checks<'_>,
    timing: Timing,
) -> Result<Vec<(Strategy, Result<StrategyRun>)>> {
    const WAIT: Duration = Duration::from_secs(120);
    let mut out = Vec::new();
    for &s in strategies {
        ready_for(rt, s)?;
        let t = Instant::now();
        let mut prepared: Prepared<'_> = match graph.prepare(rt, s) {
            Ok(p) => p,
            Err(e @ (grosr::Error::Config(_) | grosr::Error::Cuda { .. })) => {
                out.push((s, Err(e.into())));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let prepare = t.elapsed();
        (checks.reset)()?;
        prepared.run(WAIT)?;
        (checks.check)(s)?;
        let run = measure_within(timing, || prepared.run(WAIT))?;
        (checks.check)(s)?;
        out.push((s, Ok(StrategyRun { prepare, run })));
    }
    Ok(out)
}

/// Readies `rt` for strategy `s`: started for Resident, stopped for the lowered strategies,
/// whose kernels need the SMs the scheduler holds.
pub fn ready_for(rt: &Runtime, s: Strategy) -> grosr::Result<()> {
    match (s.is_resident(), rt.is_running()) {
        (true, false) => rt.start(),
        (false, true) => rt.stop(),
        _ => Ok(()),
    }
}

/// The ping-pong graph: `n` pairs Ping → Pong over outputs `a` and `b`.
pub fn pingpong_graph(a: &DeviceBuffer<u32>, b: &DeviceBuffer<u32>, n: u32) -> Result<TaskGraph> {
    pingpong_graph_at(a.ptr(), b.ptr(), n)
}

/// [`pingpong_graph`] over outputs at `a` and `b`: with null pointers, a graph to look at
/// (nothing is read until it runs).
pub fn pingpong_graph_at(a: DevicePtr<u32>, b: DevicePtr<u32>, n: u32) -> Result<TaskGraph> {
    pairs(a, b, n, |a, b, i| {
        (Ping { a, b, i, pad: 0 }, Pong { a, b, i, pad: 0 })
    })
}

/// [`pingpong_graph`] with the Rust bodies ([`PingRs`] → [`PongRs`]).
pub fn pingpong_graph_rs(
    a: &DeviceBuffer<u32>,
    b: &DeviceBuffer<u32>,
    n: u32,
) -> Result<TaskGraph> {
    pairs(a.ptr(), b.ptr(), n, |a, b, i| {
        (PingRs { a, b, i, pad: 0 }, PongRs { a, b, i, pad: 0 })
    })
}

/// `n` pairs `stages(a, b, i)`, each stage 1 → stage 2.
fn pairs<P: grosr::Task + 'static, Q: grosr::Task + 'static>(
    a: DevicePtr<u32>,
    b: DevicePtr<u32>,
    n: u32,
    stages: impl Fn(DevicePtr<u32>, DevicePtr<u32>, u32) -> (P, Q),
) -> Result<TaskGraph> {
    let mut g = TaskGraph::new();
    for i in 0..n {
        let (ping, pong) = stages(a, b, i);
        let ping = g.add(ping);
        let pong = g.add(pong);
        g.add_edge(ping, pong)?;
    }
    Ok(g)
}

/// Resident's median run of `graph` (checked before and after, as [`compare`] does).
fn resident_run(
    rt: &Runtime,
    graph: &TaskGraph,
    checks: &Checks<'_>,
    timing: Timing,
) -> Result<Stats> {
    let runs = compare(rt, graph, &[Strategy::Resident], checks, timing)?;
    match runs.into_iter().next() {
        Some((_, Ok(r))) => Ok(r.run),
        Some((_, Err(e))) => Err(e),
        None => Err(Error::Invalid("no Resident run".into())),
    }
}

/// Checks that every pair ran in order: `b[i] = 2 (i + 1) + 1`.
pub fn check_pairs(b: &DeviceBuffer<u32>, n: u32, what: &str) -> Result<()> {
    let v = b.to_vec()?;
    match (0..n as usize).find(|&i| v[i] != 2 * (i as u32 + 1) + 1) {
        None => Ok(()),
        Some(i) => Err(Error::Invalid(format!(
            "{what}: pair {i} gave {} instead of {} (stage 2 ran before stage 1, or not at all)",
            v[i],
            2 * (i as u32 + 1) + 1
        ))),
    }
}

/// Runs ping-pong graph `g` (`n` pairs over `a` and `b`) under every strategy, the outputs
/// cleared before each, and checks that every pair ran in order (the tests' check, on either
/// backend and body syntax).
pub fn pingpong_on_every_strategy(
    rt: &Runtime,
    g: &TaskGraph,
    (a, b): (&DeviceBuffer<u32>, &DeviceBuffer<u32>),
    n: u32,
    timeout: Duration,
) -> Result<()> {
    for s in Strategy::ALL {
        ready_for(rt, s)?;
        let mut p = g.prepare(rt, s)?;
        a.write(&vec![0; n as usize])?;
        b.write(&vec![0; n as usize])?;
        p.run(timeout)?;
        check_pairs(b, n, s.name())?;
    }
    Ok(())
}

/// The throughput graph: `n` independent Tiny tasks.
pub fn throughput_graph(flags: &DeviceBuffer<u32>, n: u32) -> TaskGraph {
    let mut g = TaskGraph::new();
    for t in tiny_tasks(flags, n) {
        g.add(t);
    }
    g
}

/// Strategies that launch one kernel per task cost ~5–10 µs a task: above this many nodes they
/// are left out of the tables (and said so), or one report would take an hour.
pub const MAX_PER_TASK_NODES: usize = 100_000;

/// The strategies a graph of `nodes` nodes runs under, of `only` (all when `None`).
fn strategies_for(nodes: usize, only: Option<&[Strategy]>) -> Vec<Strategy> {
    Strategy::ALL
        .into_iter()
        .filter(|s| {
            (nodes <= MAX_PER_TASK_NODES || matches!(s, Strategy::Resident | Strategy::Fused))
                && only.is_none_or(|o| o.contains(s))
        })
        .collect()
}

fn columns() -> Vec<&'static str> {
    Strategy::ALL.iter().map(|s| s.name()).collect()
}

/// Puts a strategy's value in its column (then `extra` columns); strategies that could not be
/// prepared become one note each.
pub(crate) fn fill(
    table: &mut Table,
    label: &str,
    runs: &[(Strategy, Result<StrategyRun>)],
    extra: &[Option<f64>],
    value: impl Fn(&StrategyRun) -> f64,
) {
    let mut values = vec![None; Strategy::ALL.len()];
    for (s, r) in runs {
        let col = Strategy::ALL.iter().position(|x| x == s).unwrap_or(0);
        match r {
            Ok(run) => values[col] = Some(value(run)),
            Err(e) => {
                let note = format!("{} not run: {e}", s.name());
                if !table.notes.contains(&note) {
                    table.notes.push(note);
                }
            }
        }
    }
    values.extend_from_slice(extra);
    table.push(label, values);
}

/// The prepare-cost table entries: per graph size, each strategy's one-off cost.
fn prepare_row(table: &mut Table, label: &str, runs: &[(Strategy, Result<StrategyRun>)]) {
    fill(table, label, runs, &[], |r| r.prepare.as_secs_f64() * 1e3);
}

/// Ping-pong: N dependent pairs under every strategy (of `only`, when given), and the GPU-spawn
/// variant on Resident. Returns the per-pair table and the preparation-cost table.
pub fn pingpong(rt: &Runtime, quick: bool, only: Option<&[Strategy]>) -> Result<Vec<Table>> {
    let sizes: &[u32] = &[1, 100, 1_000, 10_000, 50_000];
    let timing = Timing::new(quick);
    let mut cols = columns();
    cols.push("Resident, stage 2 spawned on GPU");
    cols.push("Resident, Rust bodies");
    cols.push("Resident, stage 2 spawned on GPU, Rust bodies");
    let mut table = Table::new(
        "pingpong",
        "Ping-pong: N dependent pairs (stage 1 → stage 2), time per pair",
        "µs per pair",
        false,
        &cols,
    );
    let mut prep = Table::new(
        "pingpong_prepare",
        "Ping-pong: one-off preparation (upload / instantiate / plan), not part of the runs",
        "ms",
        false,
        &columns(),
    );
    let n_max = *sizes.last().unwrap_or(&1);
    let a = DeviceBuffer::<u32>::zeroed(rt.gpu(), n_max as usize)?;
    let b = DeviceBuffer::<u32>::zeroed(rt.gpu(), n_max as usize)?;
    for &n in sizes {
        let g = pingpong_graph(&a, &b, n)?;
        let reset = || {
            a.write(&vec![0u32; n as usize])?;
            Ok(b.write(&vec![0u32; n as usize])?)
        };
        let check = |s: Strategy| check_pairs(&b, n, &format!("ping-pong {n} on {}", s.name()));
        let runs = compare(
            rt,
            &g,
            &strategies_for(g.node_count(), only),
            &Checks {
                reset: &reset,
                check: &check,
            },
            timing,
        )?;
        // The seed's variant: stage 1 spawns stage 2; one host submit of n PingSpawn records.
        let spawn: Vec<PingSpawn> = (0..n)
            .map(|i| PingSpawn {
                a: a.ptr(),
                b: b.ptr(),
                i,
                pad: 0,
            })
            .collect();
        let spawned = spawned_pairs(
            rt,
            &spawn,
            &reset,
            || check_pairs(&b, n, &format!("ping-pong {n}, GPU spawn")),
            timing,
        )?;
        // The same two with the Rust bodies (issue 21: within 3% of the CUDA bodies).
        let rs_graph = resident_run(
            rt,
            &pingpong_graph_rs(&a, &b, n)?,
            &Checks {
                reset: &reset,
                check: &check,
            },
            timing,
        )?;
        let spawn_rs: Vec<PingSpawnRs> = (0..n)
            .map(|i| PingSpawnRs {
                a: a.ptr(),
                b: b.ptr(),
                i,
                pad: 0,
            })
            .collect();
        let rs_spawned = spawned_pairs(
            rt,
            &spawn_rs,
            &reset,
            || check_pairs(&b, n, &format!("ping-pong {n}, GPU spawn, Rust bodies")),
            timing,
        )?;
        let per_pair = |s: &Stats| s.median.as_secs_f64() * 1e6 / n as f64;
        let label = if n == 1 {
            "1 pair (latency)".to_string()
        } else {
            format!("{n} pairs")
        };
        fill(
            &mut table,
            &label,
            &runs,
            &[
                Some(per_pair(&spawned)),
                Some(per_pair(&rs_graph)),
                Some(per_pair(&rs_spawned)),
            ],
            |r| per_pair(&r.run),
        );
        prepare_row(&mut prep, &label, &runs);
    }
    table.notes.push(format!(
        "Per-task strategies (CudaGraph, Batched, Sync) run up to {MAX_PER_TASK_NODES} nodes. \
         Targets: 1 pair on Resident ≥ 4× faster than Sync; ≤ 0.05 µs per pair at 50k pairs. \
         The Rust-body columns run the same pairs with their bodies in Rust (issue 21: within 3% \
         of the CUDA bodies)."
    ));
    Ok(vec![table, prep])
}

/// One host submit of `records` (stage 1s that spawn their stage 2), checked, then timed and
/// checked again, on the running scheduler.
fn spawned_pairs<T: grosr::Task + 'static>(
    rt: &Runtime,
    records: &[T],
    reset: &dyn Fn() -> Result<()>,
    check: impl Fn() -> Result<()>,
    timing: Timing,
) -> Result<Stats> {
    rt.start()?;
    reset()?;
    rt.submit(records)?.wait_timeout(Duration::from_secs(60))?;
    check()?;
    let stats = measure_within(timing, || {
        rt.submit(records)?.wait_timeout(Duration::from_secs(60))
    })?;
    check()?;
    Ok(stats)
}

/// Throughput: N independent tiny tasks under every strategy (of `only`, when given), in M tasks/s.
pub fn throughput(rt: &Runtime, quick: bool, only: Option<&[Strategy]>) -> Result<Vec<Table>> {
    let sizes: &[u32] = &[1_000, 10_000, 50_000, 1 << 20];
    let timing = Timing::new(quick);
    let mut cols = columns();
    cols.push("Resident, host submit (no graph)");
    cols.push("Resident, Rust body");
    cols.push("Resident, host submit, Rust body");
    let mut table = Table::new(
        "throughput",
        "Throughput: N independent tiny tasks",
        "M tasks/s",
        true,
        &cols,
    );
    let mut prep = Table::new(
        "throughput_prepare",
        "Throughput: one-off preparation (upload / instantiate / plan)",
        "ms",
        false,
        &columns(),
    );
    let n_max = *sizes.last().unwrap_or(&1);
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), n_max as usize)?;
    for &n in sizes {
        let g = throughput_graph(&flags, n);
        let reset = || Ok(flags.write(&vec![0u32; n as usize])?);
        let check = |s: Strategy| {
            super::check_flags(
                &flags,
                n as usize,
                &format!("throughput {n} on {}", s.name()),
            )
        };
        let runs = compare(
            rt,
            &g,
            &strategies_for(g.node_count(), only),
            &Checks {
                reset: &reset,
                check: &check,
            },
            timing,
        )?;
        rt.start()?;
        let tasks: Vec<Tiny> = tiny_tasks(&flags, n);
        reset()?;
        rt.submit(&tasks)?.wait_timeout(Duration::from_secs(60))?;
        check(Strategy::Resident)?;
        let submitted = measure_within(timing, || {
            rt.submit(&tasks)?.wait_timeout(Duration::from_secs(60))
        })?;
        // The same with the Rust body (issue 21: within 3% of the CUDA body).
        let tasks_rs: Vec<TinyRs> = tasks
            .iter()
            .map(|t| TinyRs {
                flags: t.flags,
                index: t.index,
                pad: 0,
            })
            .collect();
        let mut g_rs = TaskGraph::new();
        for &t in &tasks_rs {
            g_rs.add(t);
        }
        let checks = Checks {
            reset: &reset,
            check: &check,
        };
        let rs_graph = resident_run(rt, &g_rs, &checks, timing)?;
        rt.start()?;
        reset()?;
        rt.submit(&tasks_rs)?
            .wait_timeout(Duration::from_secs(60))?;
        check(Strategy::Resident)?;
        let rs_submitted = measure_within(timing, || {
            rt.submit(&tasks_rs)?.wait_timeout(Duration::from_secs(60))
        })?;
        let rate = |s: &Stats| n as f64 / s.median.as_secs_f64() / 1e6;
        let label = format!("{n} tasks");
        fill(
            &mut table,
            &label,
            &runs,
            &[
                Some(rate(&submitted)),
                Some(rate(&rs_graph)),
                Some(rate(&rs_submitted)),
            ],
            |r| rate(&r.run),
        );
        prepare_row(&mut prep, &label, &runs);
    }
    table.notes.push(
        "Targets: at 50k tasks Resident ≥ 100× CudaGraph; ≥ 200 M tasks/s at 1M tasks. The \
         Rust-body columns run the same tasks with the body in Rust (issue 21: within 3% of the \
         CUDA body)."
            .into(),
    );
    Ok(vec![table, prep])
}
