//! The GPU suite's checks on the CPU backend, in `cargo test`, with the same task types, bodies
//! and sizes: tests/gpu_core.rs's (`tests/common/suite.rs`: a million host submits from eight
//! threads, a fib(27) spawn tree, a 100k chain of warp tasks, held chains meeting fan-out,
//! spawn bursts, a failing task, stop and start, empty jobs, a late look at a job) and
//! tests/gpu_graph.rs's (`tests/common/graph.rs`: random DAGs of lane, warp and block nodes under
//! every strategy, small graphs, relaunches, 40 threads launching at once, a failing node,
//! cycles and unregistered types). About ten seconds in a debug build on two cores.

mod common;
#[path = "common/graph.rs"]
mod graph;

use common::suite;
use grosr::{Backend, DeviceBuffer, Runtime, RuntimeBuilder};

/// `builder` on the CPU backend, two workers.
fn on_cpu(builder: RuntimeBuilder) -> Runtime {
    let rt = builder
        .backend(Backend::Cpu)
        .cpu_threads(2)
        .build()
        .unwrap();
    assert_eq!(rt.backend(), Backend::Cpu);
    rt
}

/// The core tests' task types on the CPU backend.
fn runtime() -> Runtime {
    on_cpu(common::portable_builder())
}

#[test]
fn a_million_tasks_from_eight_host_threads_each_run_exactly_once() {
    suite::a_million_tasks_from_eight_host_threads_each_run_exactly_once(&runtime());
}

#[test]
fn a_recursive_spawn_tree_computes_fibonacci() {
    suite::a_recursive_spawn_tree_computes_fibonacci(&runtime());
}

#[test]
fn a_chain_of_100k_dependent_spawns_runs_every_hop() {
    suite::a_chain_of_100k_dependent_spawns_runs_every_hop(&runtime());
}

#[test]
fn held_lane_chains_of_two_types_run_every_hop_once_and_count_it() {
    let rt = runtime();
    let len = (suite::HELD_CHAINS * suite::HELD_LEN) as usize;
    let hits = DeviceBuffer::<u32>::zeroed(rt.gpu(), len).unwrap();
    suite::held_lane_chains_run_every_hop_once_and_count_it(&rt, &hits);
}

#[test]
fn spawn_bursts_past_the_stack_run_every_task_exactly_once() {
    suite::spawn_bursts_past_the_stack_run_every_task_exactly_once(&runtime());
}

#[test]
fn a_failing_task_fails_its_job_only() {
    suite::a_failing_task_fails_its_job_only(&runtime());
}

#[test]
fn stop_refuses_submits_and_start_runs_again() {
    suite::stop_refuses_submits_and_start_runs_again(&runtime());
}

#[test]
fn jobs_report_done_and_empty_jobs_are_done_at_once() {
    suite::jobs_report_done_and_empty_jobs_are_done_at_once(&runtime());
}

#[test]
fn a_job_looked_at_after_later_jobs_reports_its_own_outcome() {
    suite::a_job_looked_at_after_its_slot_was_reused_reports_its_own_outcome(&runtime());
}

#[test]
fn cancelling_a_spawn_tree_leaves_other_jobs_exact() {
    suite::cancelling_a_spawn_tree_leaves_other_jobs_exact(&runtime());
}

#[test]
fn a_running_body_sees_its_job_cancelled() {
    suite::a_running_body_sees_its_job_cancelled(&runtime());
}

/// The graph tests' node types on the CPU backend.
fn graph_runtime() -> Runtime {
    on_cpu(graph::register(grosr::Runtime::builder()))
}

#[test]
fn every_strategy_computes_the_same_values_on_random_dags_of_mixed_types() {
    graph::every_strategy_computes_the_same_values_on_random_dags_of_mixed_types(&graph_runtime());
}

#[test]
fn small_graphs_run_in_dependency_order() {
    graph::small_graphs_run_whole_on_one_warp_in_dependency_order(&graph_runtime());
}

#[test]
fn a_resident_graph_relaunches_many_times() {
    graph::a_resident_graph_relaunches_many_times_without_reupload(&graph_runtime());
}

#[test]
fn concurrent_large_launches_all_run_whole() {
    graph::concurrent_large_launches_all_run_whole_with_the_board_full(&graph_runtime());
}

#[test]
fn a_failing_node_fails_the_launch_and_the_next_launch_runs_clean() {
    graph::a_failing_node_fails_the_launch_and_the_next_launch_runs_clean(&graph_runtime());
}

#[test]
fn cycles_and_unregistered_types_are_refused_before_anything_runs() {
    graph::cycles_and_unregistered_types_are_refused_before_anything_runs(&graph_runtime());
}

/// As on a GPU, where lowered strategies are ordinary kernels beside the scheduler: with the
/// executor stopped, a lowered graph runs and a Resident one is refused.
#[test]
fn a_stopped_executor_runs_lowered_graphs_and_refuses_resident_ones() {
    use grosr::graph::Strategy;
    let rt = graph_runtime();
    let dag = graph::random_dag(&rt, 300, 8);
    rt.stop().unwrap();
    let mut resident = dag.graph.prepare(&rt, Strategy::Resident).unwrap();
    assert_eq!(resident.run(suite::T), Err(grosr::Error::Stopped));
    let mut fused = dag.graph.prepare(&rt, Strategy::Fused).unwrap();
    dag.out.write(&vec![0u64; dag.expected.len()]).unwrap();
    fused.run(suite::T).unwrap();
    assert_eq!(dag.out.to_vec().unwrap(), dag.expected);
    rt.start().unwrap();
    dag.out.write(&vec![0u64; dag.expected.len()]).unwrap();
    resident.run(suite::T).unwrap();
    assert_eq!(dag.out.to_vec().unwrap(), dag.expected);
}

/// A Resident graph launch that runs past its time is cancelled: its running node sees
/// `ctx.cancelled()` and stops, its successor never runs, and the executor goes on.
#[test]
fn a_graph_launch_past_its_time_is_cancelled() {
    use grosr::graph::{Strategy, TaskGraph};
    let rt = runtime();
    let seen = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let mut g = TaskGraph::new();
    let spin = g.add(common::Spin {
        seen: seen.ptr(),
        max_ns: 30_000_000_000,
    });
    let after = g.add(common::mark(&flags, 0));
    g.add_edge(spin, after).unwrap();
    let mut p = g.prepare(&rt, Strategy::Resident).unwrap();
    let e = p.run_or_cancel(std::time::Duration::from_millis(50));
    assert!(matches!(e, Err(grosr::Error::Timeout(..))), "{e:?}");
    let deadline = std::time::Instant::now() + suite::T;
    while seen.to_vec().unwrap()[0] == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the spinning node never stopped"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(seen.to_vec().unwrap(), vec![1], "the node saw the cancel");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(flags.to_vec().unwrap(), vec![0], "the successor never ran");
    suite::assert_runtime_runs_tasks(&rt);
}

/// Runs for `ns` nanoseconds whatever happens (no look at `ctx.cancelled()`).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let start = ctx.globaltimer();
    while ctx.globaltimer() - start < task.ns {}
    ctx.write(task.done, 0u32, 1u32);
})]
pub struct Busy {
    pub done: grosr::DevicePtr<u32>,
    pub ns: u64,
}

/// While a cancelled launch's running node finishes, the graph's next run is refused; once it
/// has, the next run goes; a lowered strategy's launch cannot be cancelled.
#[test]
fn a_cancelled_launch_is_waited_for_and_lowered_launches_refuse_to_cancel() {
    use grosr::graph::{Strategy, TaskGraph};
    let rt = on_cpu(grosr::Runtime::builder().task::<Busy>());
    let done = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let mut g = TaskGraph::new();
    g.add(Busy {
        done: done.ptr(),
        ns: 300_000_000,
    });
    let mut p = g.prepare(&rt, Strategy::Resident).unwrap();
    let e = p.run_or_cancel(std::time::Duration::from_millis(20));
    assert!(matches!(e, Err(grosr::Error::Timeout(..))), "{e:?}");
    let e = p.run(suite::T);
    assert!(
        matches!(e, Err(grosr::Error::Config(ref m)) if m.contains("not finished")),
        "{e:?}"
    );
    let deadline = std::time::Instant::now() + suite::T;
    while done.to_vec().unwrap()[0] == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the running node never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    done.write(&[0]).unwrap();
    p.run(suite::T).unwrap();
    assert_eq!(done.to_vec().unwrap(), vec![1]);
    let mut fused = g.prepare(&rt, Strategy::Fused).unwrap();
    let e = fused.run_or_cancel(suite::T);
    assert!(matches!(e, Err(grosr::Error::Unsupported(_))), "{e:?}");
}
