//! Task graphs on a real GPU: every strategy gives the same results on random DAGs of mixed
//! task types; Resident relaunches without re-upload; errors are reported, not hung on.
//! Run on the GPU machine with `bash .gpu/run tests` (ignored elsewhere).

use std::time::Duration;

use grosr::graph::{Strategy, TaskGraph};
use grosr::{DeviceBuffer, Error, Runtime};
use grosr_lab::workloads::graphs::{check_pairs, pingpong_graph};
use grosr_lab::workloads::relu_softmax::{Matrix, TOLERANCE};

#[path = "common/graph.rs"]
mod graph_tasks;
use graph_tasks::*;

fn runtime() -> Runtime {
    graph_tasks::builder().build().expect("runtime")
}

const T: Duration = Duration::from_secs(60);

/// xorshift64*: reproducible random DAGs without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random DAG over `n` nodes (edges only from lower to higher index, shuffled insertion
/// order of types) with its device-side predecessor lists and the expected values.
struct RandomDag {
    graph: TaskGraph,
    ids: Vec<grosr::graph::NodeId>,
    out: DeviceBuffer<u64>,
    _pred_off: DeviceBuffer<u32>,
    _preds: DeviceBuffer<u32>,
    expected: Vec<u64>,
}

fn random_dag(rt: &Runtime, n: u32, seed: u64) -> RandomDag {
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
fn tiny_dag(rt: &Runtime, n: u32, seed: u64) -> RandomDag {
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

fn run_checked(rt: &Runtime, dag: &RandomDag, s: Strategy, runs: usize) {
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

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn every_strategy_computes_the_same_values_on_random_dags_of_mixed_types() {
    let rt = runtime();
    for (n, seed) in [(1u32, 1u64), (37, 2), (2000, 3), (5000, 4)] {
        let dag = random_dag(&rt, n, seed);
        for s in Strategy::ALL {
            if s == Strategy::CudaGraphPdl && rt.info().arch < 90 {
                continue;
            }
            run_checked(&rt, &dag, s, 2);
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn small_graphs_run_whole_on_one_warp_in_dependency_order() {
    let rt = runtime();
    for seed in 0..200u64 {
        let dag = tiny_dag(&rt, 1 + (seed % 4) as u32, seed);
        run_checked(&rt, &dag, Strategy::Resident, 3);
    }
    // A failing node fails the launch; its successors still run, and the next launch too.
    let dag = tiny_dag(&rt, 3, 99);
    let mut g = dag.graph.clone();
    let fail = g.add(FailNode { code: 7 });
    g.add_edge(fail, dag.ids[0]).unwrap();
    let mut p = g.prepare(&rt, Strategy::Resident).unwrap();
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

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_resident_graph_relaunches_many_times_without_reupload() {
    let rt = runtime();
    let dag = random_dag(&rt, 3000, 11);
    run_checked(&rt, &dag, Strategy::Resident, 20);
}

/// 40 threads relaunch 40 different graphs at once, each with about 120 roots of every
/// granularity: more large launches in flight than the graph board has entries (32), so launches
/// take entries, give them back, reuse them, and fall back to ranges when none is free. A
/// watchdog bounds the whole test: past it, the runtime is stopped (every wait then returns) and
/// the failure names the step each unfinished thread was in.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn concurrent_large_launches_all_run_whole_with_the_board_full() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const STEPS: [&str; 5] = ["prepare", "write", "run", "read", "done"];
    let rt = runtime();
    let dags: Vec<RandomDag> = (0..40).map(|t| random_dag(&rt, 600, 100 + t)).collect();
    // Per thread: step * 100 + run.
    let progress: Vec<AtomicUsize> = dags.iter().map(|_| AtomicUsize::new(0)).collect();
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let threads: Vec<_> = dags
            .iter()
            .zip(&progress)
            .enumerate()
            .map(|(t, (dag, at))| {
                let rt = &rt;
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

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn ping_pong_pairs_run_in_order_on_every_strategy() {
    let rt = runtime();
    let n = 3000;
    let a = DeviceBuffer::<u32>::zeroed(rt.gpu(), n).unwrap();
    let b = DeviceBuffer::<u32>::zeroed(rt.gpu(), n).unwrap();
    let g = pingpong_graph(&a, &b, n as u32).unwrap();
    for s in Strategy::ALL {
        if s.is_resident() {
            rt.start().unwrap();
        } else {
            rt.stop().unwrap();
        }
        let mut p = g.prepare(&rt, s).unwrap();
        a.write(&vec![0; n]).unwrap();
        b.write(&vec![0; n]).unwrap();
        p.run(T).unwrap();
        check_pairs(&b, n as u32, s.name()).unwrap();
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn relu_softmax_matches_the_float64_reference_on_every_strategy() {
    let rt = runtime();
    for (rows, len) in [(333u32, 256u32), (40, 4096), (1, 32)] {
        let m = Matrix::new(&rt, rows, len).unwrap();
        for g in [m.one_task_graph(), m.two_task_graph().unwrap()] {
            for (i, s) in Strategy::ALL.into_iter().enumerate() {
                if s.is_resident() {
                    rt.start().unwrap();
                } else {
                    rt.stop().unwrap();
                }
                let mut p = g.prepare(&rt, s).unwrap();
                let x = m.randomize(i as u64 * 7919 + rows as u64).unwrap();
                p.run(T).unwrap();
                let e = m.max_relative_error(&x).unwrap();
                assert!(
                    e < TOLERANCE,
                    "{rows}×{len} on {}: relative error {e:e}",
                    s.name()
                );
            }
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_failing_node_fails_the_launch_and_the_next_launch_runs_clean() {
    let rt = runtime();
    let dag = random_dag(&rt, 200, 5);
    // The failing node feeds every other node of a copy of the DAG: its failure must not leave
    // successors' counters short for the next launch.
    let mut g = dag.graph.clone();
    let fail = g.add(FailNode { code: 7 });
    g.add_edge(fail, dag.ids[0]).unwrap();
    let mut p = g.prepare(&rt, Strategy::Resident).unwrap();
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

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn cycles_and_unregistered_types_are_refused_before_anything_runs() {
    let rt = runtime();
    let mut g = TaskGraph::new();
    let a = g.add(FailNode { code: 1 });
    let b = g.add(FailNode { code: 2 });
    g.add_edge(a, b).unwrap();
    g.add_edge(b, a).unwrap();
    for s in Strategy::ALL {
        match g.prepare(&rt, s) {
            Err(Error::Cycle(msg)) => assert!(msg.contains("FailNode#0"), "{msg}"),
            Err(e) => panic!("{}: expected a cycle error, got {e}", s.name()),
            Ok(_) => panic!("{}: a cyclic graph was prepared", s.name()),
        }
    }
    let mut g = TaskGraph::new();
    g.add(Stranger { x: 1 });
    match g.prepare(&rt, Strategy::Resident) {
        Err(Error::UnregisteredTask(name)) => assert_eq!(name, "Stranger"),
        Err(e) => panic!("expected UnregisteredTask, got {e}"),
        Ok(_) => panic!("a graph with an unregistered type was prepared"),
    }
    // The runtime is still fine.
    let dag = random_dag(&rt, 50, 9);
    run_checked(&rt, &dag, Strategy::Resident, 1);
}

/// For compute-sanitizer (memcheck only knows allocations made before a kernel starts): the
/// graph and its buffers are made with the scheduler stopped, then it runs a few launches.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_graph_prepared_while_stopped_runs_clean_under_the_sanitizer() {
    let rt = runtime();
    rt.stop().unwrap();
    // A large graph, and a small one (it travels whole in its launch descriptor).
    let dags = [random_dag(&rt, 600, 21), tiny_dag(&rt, 4, 22)];
    let mut prepared: Vec<_> = dags
        .iter()
        .map(|d| d.graph.prepare(&rt, Strategy::Resident).unwrap())
        .collect();
    rt.start().unwrap();
    for _ in 0..3 {
        for (dag, p) in dags.iter().zip(&mut prepared) {
            dag.out.write(&vec![0u64; dag.expected.len()]).unwrap();
            p.run(T).unwrap();
            assert_eq!(dag.out.to_vec().unwrap(), dag.expected);
        }
    }
}
