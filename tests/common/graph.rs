//! Task types of the graph tests and the checks both backends run on them: tests/gpu_graph.rs
//! on a GPU (with the lab's workloads beside them), tests/cpu_suite.rs on the CPU backend.
#![allow(dead_code)]

use std::time::Duration;

use grosr::graph::{Strategy, TaskGraph};
use grosr::{DeviceBuffer, DevicePtr, Error, Runtime, RuntimeBuilder};

const T: Duration = Duration::from_secs(60);

// A node's value: its own salt plus the sum of its predecessors' values, so a node that runs
// before any predecessor has finished gets a wrong value. `out` starts at zero and every thread
// adds its share atomically, so lane, warp and block nodes compute the same value.
macro_rules! node_task {
    ($name:ident, $gran:literal) => {
        #[grosr::task(granularity = $gran, rust = |task, ctx| {
                    let end = ctx.read(task.pred_off, task.node + 1);
                    let mut e = ctx.read(task.pred_off, task.node) + ctx.lane();
                    let mut part = 0u64;
                    while e < end {
                        part = part.wrapping_add(ctx.read(task.out, ctx.read(task.preds, e)));
                        e += ctx.width();
                    }
                    if ctx.lane() == 0 {
                        part = part.wrapping_add(salt(task.node));
                    }
                    if part != 0 {
                        ctx.atomic_add(task.out, task.node, part);
                    }
                })]
        pub struct $name {
            pub out: DevicePtr<u64>,
            pub pred_off: DevicePtr<u32>,
            pub preds: DevicePtr<u32>,
            pub node: u32,
            pub pad: u32,
        }
    };
}
node_task!(LaneNode, "lane");
node_task!(WarpNode, "warp");
node_task!(BlockNode, "block");

/// Node `node`'s own part of its value.
#[grosr::device]
fn salt(node: u32) -> u64 {
    0x9E37_79B9_7F4A_7C15u64.wrapping_mul(node as u64 + 1u64)
}

// Nodes of small graphs (16-byte records, so up to 4 travel in one launch descriptor): node in
// bits 0-7 of `node_preds`, a bit per predecessor above. Lanes of a warp node split the
// predecessors and add atomically, so lane and warp nodes compute the same value.
macro_rules! tiny_task {
    ($name:ident, $gran:literal) => {
        #[grosr::task(granularity = $gran, rust = |task, ctx| {
                                            let node = task.node_preds & 0xFFu32;
                                            let preds = task.node_preds >> 8u32;
                                            let mut part = 0u64;
                                            let mut p = ctx.lane();
                                            while p < 24u32 {
                                                if (preds >> p) & 1u32 == 1u32 {
                                                    part = part.wrapping_add(ctx.read(task.out, p));
                                                }
                                                p += ctx.width();
                                            }
                                            if ctx.lane() == 0 {
                                                part = part.wrapping_add(salt(node));
                                            }
                                            if part != 0 {
                                                ctx.atomic_add(task.out, node, part);
                                            }
                                        })]
        pub struct $name {
            pub out: DevicePtr<u64>,
            pub node_preds: u32,
            pub pad: u32,
        }
    };
}
tiny_task!(TinyLane, "lane");
tiny_task!(TinyWarp, "warp");

/// Fails its graph's job with code 7.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.fail(task.code as i32);
})]
pub struct FailNode {
    pub code: u32,
}

/// Never registered.
#[grosr::task(granularity = "lane", cuda = "")]
pub struct Stranger {
    pub x: u32,
}

/// `builder` with the node types above (and their helper) registered.
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .helper::<salt>()
        .task::<LaneNode>()
        .task::<WarpNode>()
        .task::<BlockNode>()
        .task::<FailNode>()
        .task::<TinyLane>()
        .task::<TinyWarp>()
        .task::<SlowMark>()
}

/// Spins `ns` nanoseconds, then writes 1 to `flags[index]`: a write that comes late.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let start = ctx.globaltimer();
    while ctx.globaltimer() - start < task.ns {}
    ctx.write(task.flags, task.index, 1u32);
})]
pub struct SlowMark {
    pub flags: DevicePtr<u32>,
    pub ns: u64,
    pub index: u32,
    pub pad: u32,
}

/// A launch whose lane roots take two rounds on one warp (33 to 64 leaves: the receiving warp
/// runs them itself) completes only after its last round: every root's late write is seen
/// once the run returns (the launch's own count must outlast every round, not go with the
/// first).
pub fn a_launch_completes_only_after_its_last_round_of_roots(rt: &Runtime) {
    for roots in [33u32, 64] {
        let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), roots as usize).unwrap();
        let mut g = TaskGraph::new();
        for index in 0..roots {
            g.add(SlowMark {
                flags: flags.ptr(),
                ns: 200_000,
                index,
                pad: 0,
            });
        }
        let mut p = g.prepare(rt, Strategy::Resident).unwrap();
        for launch in 1..=3 {
            flags.write(&vec![0; roots as usize]).unwrap();
            p.run(T).unwrap();
            assert_eq!(
                flags.to_vec().unwrap(),
                vec![1; roots as usize],
                "{roots} roots, launch {launch}: a root wrote after the run returned"
            );
        }
    }
}

/// xorshift64*: reproducible random DAGs without a dependency.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random DAG over `n` nodes (edges only from lower to higher index, shuffled insertion
/// order of types) with its device-side predecessor lists and the expected values.
pub struct RandomDag {
    pub graph: TaskGraph,
    pub ids: Vec<grosr::graph::NodeId>,
    pub out: DeviceBuffer<u64>,
    _pred_off: DeviceBuffer<u32>,
    _preds: DeviceBuffer<u32>,
    pub expected: Vec<u64>,
}

pub fn random_dag(rt: &Runtime, n: u32, seed: u64) -> RandomDag {
    let mut rng = Rng(seed | 1);
    let mut preds: Vec<Vec<u32>> = vec![Vec::new(); n as usize];
    for v in 1..n {
        // 0–4 predecessors among the 64 nodes before v, sometimes a far one.
        for _ in 0..rng.below(5) {
            let u = if rng.below(8) == 0 {
                rng.below(v as u64) as u32
            } else {
                v - 1 - rng.below(v.min(64) as u64) as u32
            };
            if !preds[v as usize].contains(&u) {
                preds[v as usize].push(u);
            }
        }
    }
    let mut pred_off = vec![0u32];
    let mut flat = Vec::new();
    for p in &preds {
        flat.extend_from_slice(p);
        pred_off.push(flat.len() as u32);
    }
    flat.push(0); // never empty
    let out = DeviceBuffer::<u64>::zeroed(rt.gpu(), n as usize).unwrap();
    let pred_off_d = DeviceBuffer::from_slice(rt.gpu(), &pred_off).unwrap();
    let preds_d = DeviceBuffer::from_slice(rt.gpu(), &flat).unwrap();
    let mut expected = vec![0u64; n as usize];
    for v in 0..n as usize {
        let sum = preds[v]
            .iter()
            .fold(0u64, |s, &u| s.wrapping_add(expected[u as usize]));
        expected[v] = sum.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(v as u64 + 1));
    }
    let mut graph = TaskGraph::new();
    let (o, po, pr) = (out.ptr(), pred_off_d.ptr(), preds_d.ptr());
    let ids: Vec<_> = (0..n)
        .map(|node| match rng.below(10) {
            0..=5 => graph.add(LaneNode {
                out: o,
                pred_off: po,
                preds: pr,
                node,
                pad: 0,
            }),
            6..=8 => graph.add(WarpNode {
                out: o,
                pred_off: po,
                preds: pr,
                node,
                pad: 0,
            }),
            _ => graph.add(BlockNode {
                out: o,
                pred_off: po,
                preds: pr,
                node,
                pad: 0,
            }),
        })
        .collect();
    for (v, p) in preds.iter().enumerate() {
        for &u in p {
            graph.add_edge(ids[u as usize], ids[v]).unwrap();
        }
    }
    RandomDag {
        graph,
        ids,
        out,
        _pred_off: pred_off_d,
        _preds: preds_d,
        expected,
    }
}

/// A random DAG of `n` ≤ 4 tiny lane and warp nodes: small enough to launch whole in one
/// descriptor, so Resident runs it level by level on the warp that receives it.
pub fn tiny_dag(rt: &Runtime, n: u32, seed: u64) -> RandomDag {
    let mut rng = Rng(seed | 1);
    let out = DeviceBuffer::<u64>::zeroed(rt.gpu(), n as usize).unwrap();
    let mut graph = TaskGraph::new();
    let mut expected = vec![0u64; n as usize];
    let mut ids = Vec::new();
    let mut preds_of = Vec::new();
    for v in 0..n {
        let preds = (0..v)
            .filter(|_| rng.below(2) == 0)
            .fold(0u32, |m, u| m | 1 << u);
        expected[v as usize] = (0..v).filter(|u| preds >> u & 1 == 1).fold(
            0x9E37_79B9_7F4A_7C15u64.wrapping_mul(v as u64 + 1),
            |s, u| s.wrapping_add(expected[u as usize]),
        );
        let node_preds = v | preds << 8;
        ids.push(if rng.below(3) == 0 {
            graph.add(TinyWarp {
                out: out.ptr(),
                node_preds,
                pad: 0,
            })
        } else {
            graph.add(TinyLane {
                out: out.ptr(),
                node_preds,
                pad: 0,
            })
        });
        preds_of.push(preds);
    }
    for (v, &preds) in preds_of.iter().enumerate() {
        for u in (0..v).filter(|u| preds >> u & 1 == 1) {
            graph.add_edge(ids[u], ids[v]).unwrap();
        }
    }
    RandomDag {
        graph,
        ids,
        out,
        _pred_off: DeviceBuffer::zeroed(rt.gpu(), 1).unwrap(),
        _preds: DeviceBuffer::zeroed(rt.gpu(), 1).unwrap(),
        expected,
    }
}

pub fn run_checked(rt: &Runtime, dag: &RandomDag, s: Strategy, runs: usize) {
    if s.is_resident() {
        rt.start().unwrap();
    } else {
        rt.stop().unwrap();
    }
    let mut p = dag.graph.prepare(rt, s).unwrap();
    for run in 0..runs {
        dag.out.write(&vec![0u64; dag.expected.len()]).unwrap();
        p.run(T).unwrap();
        let got = dag.out.to_vec().unwrap();
        let wrong: Vec<usize> = (0..got.len())
            .filter(|&i| got[i] != dag.expected[i])
            .collect();
        assert!(
            wrong.is_empty(),
            "{} run {run}: {} of {} nodes wrong, first {:?}",
            s.name(),
            wrong.len(),
            got.len(),
            &wrong[..wrong.len().min(8)]
        );
    }
}

pub fn every_strategy_computes_the_same_values_on_random_dags_of_mixed_types(rt: &Runtime) {
    for (n, seed) in [(1u32, 1u64), (37, 2), (2000, 3), (5000, 4)] {
        let dag = random_dag(rt, n, seed);
        for s in Strategy::ALL {
            if s == Strategy::CudaGraphPdl && rt.info().arch < 90 {
                continue;
            }
            run_checked(rt, &dag, s, 2);
        }
    }
}

pub fn small_graphs_run_whole_on_one_warp_in_dependency_order(rt: &Runtime) {
    for seed in 0..200u64 {
        let dag = tiny_dag(rt, 1 + (seed % 4) as u32, seed);
        run_checked(rt, &dag, Strategy::Resident, 3);
    }
    // A failing node fails the launch; its successors still run, and the next launch too.
    let dag = tiny_dag(rt, 3, 99);
    let mut g = dag.graph.clone();
    let fail = g.add(FailNode { code: 7 });
    g.add_edge(fail, dag.ids[0]).unwrap();
    let mut p = g.prepare(rt, Strategy::Resident).unwrap();
    for _ in 0..3 {
        dag.out.write(&[0u64; 3]).unwrap();
        match p.run(T) {
            Err(Error::TaskFailed { task, code }) => {
                assert_eq!((task.as_str(), code), ("FailNode", 7));
            }
            other => panic!("expected FailNode's failure, got {other:?}"),
        }
        assert_eq!(dag.out.to_vec().unwrap(), dag.expected);
    }
}

pub fn a_resident_graph_relaunches_many_times_without_reupload(rt: &Runtime) {
    let dag = random_dag(rt, 3000, 11);
    run_checked(rt, &dag, Strategy::Resident, 20);
}

pub fn concurrent_large_launches_all_run_whole_with_the_board_full(rt: &Runtime) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const STEPS: [&str; 5] = ["prepare", "write", "run", "read", "done"];
    let dags: Vec<RandomDag> = (0..40).map(|t| random_dag(rt, 600, 100 + t)).collect();
    // Per thread: step * 100 + run.
    let progress: Vec<AtomicUsize> = dags.iter().map(|_| AtomicUsize::new(0)).collect();
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let threads: Vec<_> = dags
            .iter()
            .zip(&progress)
            .enumerate()
            .map(|(t, (dag, at))| {
                s.spawn(move || -> Result<(), String> {
                    let err = |e: Error| format!("graph {t}: {e}");
                    let mut p = dag.graph.prepare(rt, Strategy::Resident).map_err(err)?;
                    for run in 0..10 {
                        at.store(100 + run, Ordering::Relaxed);
                        dag.out
                            .write(&vec![0u64; dag.expected.len()])
                            .map_err(err)?;
                        at.store(200 + run, Ordering::Relaxed);
                        p.run(Duration::from_secs(20)).map_err(err)?;
                        at.store(300 + run, Ordering::Relaxed);
                        let got = dag.out.to_vec().map_err(err)?;
                        let wrong = (0..got.len())
                            .filter(|&i| got[i] != dag.expected[i])
                            .count();
                        if wrong != 0 {
                            return Err(format!("graph {t} run {run}: {wrong} nodes wrong"));
                        }
                    }
                    at.store(400, Ordering::Relaxed);
                    Ok(())
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while threads.iter().any(|h| !h.is_finished()) {
            if std::time::Instant::now() > deadline {
                let stuck: Vec<String> = (0..threads.len())
                    .filter(|&t| !threads[t].is_finished())
                    .map(|t| {
                        let at = progress[t].load(Ordering::Relaxed);
                        format!("graph {t}: {} (run {})", STEPS[at / 100], at % 100)
                    })
                    .collect();
                let _ = rt.stop();
                panic!("unfinished after 120 s: {stuck:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        threads.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of 40 failed: {failed:?}",
        failed.len()
    );
}

pub fn a_failing_node_fails_the_launch_and_the_next_launch_runs_clean(rt: &Runtime) {
    let dag = random_dag(rt, 200, 5);
    // The failing node feeds every other node of a copy of the DAG: its failure must not leave
    // successors' counters short for the next launch.
    let mut g = dag.graph.clone();
    let fail = g.add(FailNode { code: 7 });
    g.add_edge(fail, dag.ids[0]).unwrap();
    let mut p = g.prepare(rt, Strategy::Resident).unwrap();
    for _ in 0..3 {
        dag.out.write(&vec![0u64; 200]).unwrap();
        match p.run(T) {
            Err(Error::TaskFailed { task, code }) => {
                assert_eq!((task.as_str(), code), ("FailNode", 7));
            }
            other => panic!("expected FailNode's failure, got {other:?}"),
        }
        // ctx.fail does not stop the graph: every node still ran, in order.
        assert_eq!(dag.out.to_vec().unwrap(), dag.expected);
    }
}

pub fn cycles_and_unregistered_types_are_refused_before_anything_runs(rt: &Runtime) {
    let mut g = TaskGraph::new();
    let a = g.add(FailNode { code: 1 });
    let b = g.add(FailNode { code: 2 });
    g.add_edge(a, b).unwrap();
    g.add_edge(b, a).unwrap();
    for s in Strategy::ALL {
        match g.prepare(rt, s) {
            Err(Error::Cycle(msg)) => assert!(msg.contains("FailNode#0"), "{msg}"),
            Err(e) => panic!("{}: expected a cycle error, got {e}", s.name()),
            Ok(_) => panic!("{}: a cyclic graph was prepared", s.name()),
        }
    }
    let mut g = TaskGraph::new();
    g.add(Stranger { x: 1 });
    match g.prepare(rt, Strategy::Resident) {
        Err(Error::UnregisteredTask(name)) => assert_eq!(name, "Stranger"),
        Err(e) => panic!("expected UnregisteredTask, got {e}"),
        Ok(_) => panic!("a graph with an unregistered type was prepared"),
    }
    // The runtime is still fine.
    let dag = random_dag(rt, 50, 9);
    run_checked(rt, &dag, Strategy::Resident, 1);
}

/// A lowered graph prepared while the scheduler was stopped, run after it was started again
/// (holding every SM): refused at the run, as at `prepare`, not launched to wait behind the
/// scheduler for SMs it never gives back (a timeout, with the kernels left queued on memory
/// that the caller may then free). After a stop it runs.
///
/// Then each is dropped beside the running scheduler: on an H100 that hung in
/// `cuGraphExecDestroy` (the driver's destroys now wait for the scheduler's stop).
///
/// The steps go to standard error (`--nocapture`). On an H100 this hung in `Runtime::start`
/// (`cuStreamCreate` for the copy streams, the scheduler running again, once a CUDA graph had
/// been instantiated while it was stopped); now the graph is uploaded at prepare and the copy
/// streams are opened before the scheduler launches (benches/NOTES.md, "Audits").
pub fn a_lowered_graph_is_refused_once_the_scheduler_holds_every_sm_again(rt: &Runtime) {
    let step = |s: Strategy, what: &str| eprintln!("lowered refusal: {}: {what}", s.name());
    let dag = random_dag(rt, 40, 10);
    rt.stop().unwrap();
    for s in Strategy::ALL.into_iter().filter(|s| !s.is_resident()) {
        if s == Strategy::CudaGraphPdl && rt.info().arch < 90 {
            continue;
        }
        step(s, "prepare");
        let mut p = dag.graph.prepare(rt, s).unwrap();
        step(s, "start");
        rt.start().unwrap();
        step(s, "run beside the scheduler");
        if rt.info().sms_used >= rt.info().sm_count {
            match p.run(Duration::from_secs(2)) {
                Err(Error::Busy(msg)) => assert!(msg.contains("Runtime::stop"), "{msg}"),
                other => panic!(
                    "{}: a lowered run beside the scheduler: {other:?}",
                    s.name()
                ),
            }
        }
        step(s, "stop");
        rt.stop().unwrap();
        step(s, "write");
        dag.out.write(&vec![0u64; dag.expected.len()]).unwrap();
        step(s, "run stopped");
        p.run(T).unwrap();
        step(s, "read");
        assert_eq!(dag.out.to_vec().unwrap(), dag.expected, "{}", s.name());
        step(s, "drop beside the scheduler");
        rt.start().unwrap();
        drop_within(p, Duration::from_secs(20), s.name());
        step(s, "run on the scheduler");
        run_checked(rt, &dag, Strategy::Resident, 1);
        step(s, "stop");
        rt.stop().unwrap();
    }
    rt.start().unwrap();
}

/// Lowered graphs run beside a scheduler capped to part of the SMs (`max_sms`; the caller builds
/// `rt` so), then dropped beside it: the driver's destroys, which wait for every kernel of the
/// context (the scheduler's too), are kept until its stop instead of waited for (bounded here);
/// a Resident launch and the stop go on. CUDA graphs are refused beside the running scheduler
/// (their instantiation would wait for it too) and prepared while it is stopped.
pub fn lowered_graphs_dropped_beside_a_capped_scheduler_go_at_its_stop(rt: &Runtime) {
    assert!(
        rt.info().sms_used < rt.info().sm_count,
        "build the runtime with max_sms"
    );
    // The steps go to standard error (`--nocapture`): a driver call that never returns shows
    // where.
    let step = |s: Strategy, what: &str| eprintln!("capped: {}: {what}", s.name());
    let dag = random_dag(rt, 40, 11);
    let run_beside = |mut p: grosr::graph::Prepared<'_>, s: Strategy| {
        dag.out.write(&vec![0u64; dag.expected.len()]).unwrap();
        step(s, "run beside the scheduler");
        p.run(T).unwrap();
        assert_eq!(dag.out.to_vec().unwrap(), dag.expected, "{}", s.name());
        step(s, "drop beside the scheduler");
        drop_within(p, Duration::from_secs(20), s.name());
        assert!(rt.is_running());
        step(s, "a Resident launch");
        run_checked(rt, &dag, Strategy::Resident, 1);
    };
    // CUDA graphs are instantiated with the scheduler stopped (the driver's instantiation would
    // wait for its kernel), then run and dropped beside it.
    let mut graphs = vec![Strategy::CudaGraph];
    if rt.info().arch >= 90 {
        graphs.push(Strategy::CudaGraphPdl);
    }
    for &s in &graphs {
        step(s, "prepare beside the scheduler: refused");
        match dag.graph.prepare(rt, s) {
            Err(Error::Busy(m)) => assert!(m.contains("Runtime::stop"), "{m}"),
            other => panic!("{}: {:?}", s.name(), other.map(|_| ())),
        }
    }
    rt.stop().unwrap();
    let prepared: Vec<_> = graphs
        .iter()
        .map(|&s| dag.graph.prepare(rt, s).unwrap())
        .collect();
    rt.start().unwrap();
    for (p, &s) in prepared.into_iter().zip(&graphs) {
        run_beside(p, s);
    }
    // Launch plans need nothing stopped.
    for s in [Strategy::Fused, Strategy::Batched] {
        step(s, "prepare beside the scheduler");
        run_beside(dag.graph.prepare(rt, s).unwrap(), s);
    }
    // The kept destroys run at the stop; the runtime prepares and runs as before.
    step(Strategy::Resident, "stop: the kept destroys run");
    rt.stop().unwrap();
    let mut p = dag.graph.prepare(rt, Strategy::CudaGraph).unwrap();
    rt.start().unwrap();
    dag.out.write(&vec![0u64; dag.expected.len()]).unwrap();
    p.run(T).unwrap();
    assert_eq!(dag.out.to_vec().unwrap(), dag.expected);
    drop(p);
    rt.stop().unwrap();
}

/// Lowered graphs beside a scheduler capped to part of the SMs (`max_sms`), on a GPU, the only
/// runtime of the process: those alive at once get a bounded number of streams
/// ([`Error::Busy`] past it, where CUDA's stream creation beside the running kernel would
/// hang), and graphs prepared and dropped one after another reuse their streams, far past that
/// bound.
pub fn many_lowered_graphs_beside_a_capped_scheduler(rt: &Runtime) {
    assert!(rt.info().sms_used < rt.info().sm_count);
    let dag = random_dag(rt, 12, 5);
    let check = |p: &mut grosr::graph::Prepared<'_>| {
        dag.out.write(&vec![0u64; dag.expected.len()]).unwrap();
        p.run(T).unwrap();
        assert_eq!(dag.out.to_vec().unwrap(), dag.expected);
    };
    let mut alive = Vec::new();
    let refused = loop {
        match dag.graph.prepare(rt, Strategy::Fused) {
            Ok(p) => alive.push(p),
            Err(Error::Busy(m)) => break m,
            Err(e) => panic!("{e}"),
        }
        // Without a bound, stream creation would hang near 20 of them (33 in the context).
        assert!(
            alive.len() <= 15,
            "more streams than grosr opens beside a scheduler"
        );
    };
    eprintln!("many: {} alive at once, then: {refused}", alive.len());
    assert!(refused.contains("Runtime::stop"), "{refused}");
    // 28 streams in the context, 13 of them the runtime's own (scheduler, copy candidates),
    // fewer if earlier tests of the process left streams open.
    assert!(!alive.is_empty(), "{refused}");
    for p in &mut alive {
        check(p);
    }
    drop(alive);
    for _ in 0..100 {
        check(&mut dag.graph.prepare(rt, Strategy::Fused).unwrap());
    }
    run_checked(rt, &dag, Strategy::Resident, 1);
    rt.stop().unwrap();
}

/// Drops `value` on a thread of its own; ends the process (naming `what`) if the drop has not
/// returned within `limit`: a drop that hangs would otherwise hang the test binary, and the
/// thread cannot be abandoned (it borrows the runtime).
fn drop_within<T: Send>(value: T, limit: Duration, what: &str) {
    std::thread::scope(|scope| {
        let dropping = scope.spawn(move || drop(value));
        let deadline = std::time::Instant::now() + limit;
        while !dropping.is_finished() {
            if std::time::Instant::now() > deadline {
                eprintln!("{what}: the drop has not returned in {limit:?}: it hangs");
                std::process::exit(1);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
}
