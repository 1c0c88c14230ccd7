//! Task graphs on a real GPU: every strategy gives the same results on random DAGs of mixed
//! task types; Resident relaunches without re-upload; errors are reported, not hung on.
//! Run on the GPU machine with `bash .gpu/run tests` (ignored elsewhere). The DAG checks and
//! their node types are in tests/common/graph.rs, which tests/cpu_suite.rs runs on the CPU.

use std::time::Duration;

use grosr::graph::Strategy;
use grosr::{DeviceBuffer, Runtime};
use grosr_lab::workloads::graphs::{pingpong_graph, pingpong_on_every_strategy};
use grosr_lab::workloads::relu_softmax::{Matrix, check_on_every_strategy};

#[path = "common/graph.rs"]
mod graph_tasks;
use graph_tasks::*;

/// The node types beside the lab's workloads (ping-pong and ReLU+Softmax, CUDA C bodies).
pub fn builder() -> grosr::RuntimeBuilder {
    graph_tasks::register(grosr_lab::workloads::builder())
}

fn runtime() -> Runtime {
    builder().build().expect("runtime")
}

const T: Duration = Duration::from_secs(60);

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn every_strategy_computes_the_same_values_on_random_dags_of_mixed_types() {
    graph_tasks::every_strategy_computes_the_same_values_on_random_dags_of_mixed_types(&runtime());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn small_graphs_run_whole_on_one_warp_in_dependency_order() {
    graph_tasks::small_graphs_run_whole_on_one_warp_in_dependency_order(&runtime());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_launch_completes_only_after_its_last_round_of_roots() {
    graph_tasks::a_launch_completes_only_after_its_last_round_of_roots(&runtime());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_resident_graph_relaunches_many_times_without_reupload() {
    graph_tasks::a_resident_graph_relaunches_many_times_without_reupload(&runtime());
}

/// 40 threads relaunch 40 different graphs at once, each with about 120 roots of every
/// granularity: more large launches in flight than the graph board has entries (32), so launches
/// take entries, give them back, reuse them, and fall back to ranges when none is free. A
/// watchdog bounds the whole test: past it, the runtime is stopped (every wait then returns) and
/// the failure names the step each unfinished thread was in.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn concurrent_large_launches_all_run_whole_with_the_board_full() {
    graph_tasks::concurrent_large_launches_all_run_whole_with_the_board_full(&runtime());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn ping_pong_pairs_run_in_order_on_every_strategy() {
    let rt = runtime();
    let n = 3000;
    let a = DeviceBuffer::<u32>::zeroed(rt.gpu(), n).unwrap();
    let b = DeviceBuffer::<u32>::zeroed(rt.gpu(), n).unwrap();
    let g = pingpong_graph(&a, &b, n as u32).unwrap();
    pingpong_on_every_strategy(&rt, &g, (&a, &b), n as u32, T).unwrap();
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn relu_softmax_matches_the_float64_reference_on_every_strategy() {
    let rt = runtime();
    for (rows, len) in [(333u32, 256u32), (40, 4096), (1, 32)] {
        let m = Matrix::new(&rt, rows, len).unwrap();
        check_on_every_strategy(
            &rt,
            &m,
            &[m.one_task_graph(), m.two_task_graph().unwrap()],
            T,
        )
        .unwrap();
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_failing_node_fails_the_launch_and_the_next_launch_runs_clean() {
    graph_tasks::a_failing_node_fails_the_launch_and_the_next_launch_runs_clean(&runtime());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn cycles_and_unregistered_types_are_refused_before_anything_runs() {
    graph_tasks::cycles_and_unregistered_types_are_refused_before_anything_runs(&runtime());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn lowered_graphs_dropped_beside_a_capped_scheduler_go_at_its_stop() {
    graph_tasks::lowered_graphs_dropped_beside_a_capped_scheduler_go_at_its_stop(&capped_runtime());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn many_lowered_graphs_beside_a_capped_scheduler_reuse_a_bounded_set_of_streams() {
    graph_tasks::many_lowered_graphs_beside_a_capped_scheduler(&capped_runtime());
}

/// A runtime whose scheduler holds half the SMs, leaving the rest to lowered graphs.
fn capped_runtime() -> grosr::Runtime {
    let sms = grosr::Gpu::open(0).unwrap().sm_count;
    builder().max_sms(sms / 2).build().expect("runtime")
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_lowered_graph_is_refused_once_the_scheduler_holds_every_sm_again() {
    graph_tasks::a_lowered_graph_is_refused_once_the_scheduler_holds_every_sm_again(&runtime());
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
