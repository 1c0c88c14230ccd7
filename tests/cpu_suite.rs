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
#[path = "common/ranges.rs"]
mod ranges;

use common::Mark;
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
fn executed_counts_carry_across_a_stop_and_a_start() {
    suite::executed_counts_carry_across_a_stop_and_a_start(&runtime());
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

#[test]
fn cancelled_warp_and_block_tasks_stop_and_the_slot_serves_the_next_jobs() {
    suite::cancelled_warp_and_block_tasks_stop_and_the_slot_serves_the_next_jobs(&runtime());
}

/// The range checks' task types on the CPU backend.
fn range_runtime() -> Runtime {
    on_cpu(ranges::register(grosr::Runtime::builder()))
}

#[test]
fn range_submits_run_each_item_once_with_its_index() {
    ranges::range_submits_run_each_item_once_with_its_index(&range_runtime());
}

#[test]
fn range_nodes_release_their_successors_after_every_item() {
    ranges::range_nodes_release_their_successors_after_every_item(&range_runtime());
}

#[test]
fn cancelling_a_range_leaves_its_count_and_other_jobs_exact() {
    ranges::cancelling_a_range_leaves_its_count_and_other_jobs_exact(&range_runtime());
}

#[test]
fn stopping_ends_a_running_range_with_stopped() {
    ranges::stopping_ends_a_running_range_with_stopped(&range_runtime());
}

#[test]
fn a_few_long_lane_tasks_run_side_by_side() {
    ranges::a_few_long_lane_tasks_run_side_by_side(&range_runtime());
}

#[test]
fn a_cancelled_huge_range_ends_promptly() {
    ranges::a_cancelled_huge_range_ends_promptly(&range_runtime());
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
fn a_launch_completes_only_after_its_last_round_of_roots() {
    graph::a_launch_completes_only_after_its_last_round_of_roots(&graph_runtime());
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

#[test]
fn a_lowered_graph_is_refused_once_the_scheduler_holds_every_sm_again() {
    graph::a_lowered_graph_is_refused_once_the_scheduler_holds_every_sm_again(&graph_runtime());
}

#[test]
fn lowered_graphs_dropped_beside_a_capped_executor_go_at_its_stop() {
    let rt = graph::register(grosr::Runtime::builder())
        .backend(Backend::Cpu)
        .cpu_threads(4)
        .max_sms(2)
        .build()
        .expect("runtime");
    graph::lowered_graphs_dropped_beside_a_capped_scheduler_go_at_its_stop(&rt);
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

/// A graph of a node that spins until its job is cancelled (writing 1 to `seen` then) and a
/// Mark of `flags[0]` after it: (seen, flags, graph).
fn spin_then_mark(
    rt: &Runtime,
) -> (
    DeviceBuffer<u32>,
    DeviceBuffer<u32>,
    grosr::graph::TaskGraph,
) {
    let seen = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let mut g = grosr::graph::TaskGraph::new();
    let spin = g.add(common::Spin {
        seen: seen.ptr(),
        max_ns: 30_000_000_000,
    });
    let after = g.add(common::mark(&flags, 0));
    g.add_edge(spin, after).unwrap();
    (seen, flags, g)
}

/// A Resident graph launch that runs past its time is cancelled: its running node sees
/// `ctx.cancelled()` and stops, its successor never runs, and the executor goes on.
#[test]
fn a_graph_launch_past_its_time_is_cancelled() {
    use grosr::graph::Strategy;
    let rt = runtime();
    let (seen, flags, g) = spin_then_mark(&rt);
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

/// A launch that a plain `run` left running when it timed out is cancelled afterwards with
/// `Prepared::cancel`: its spinning node stops, its successor never runs, and once it has ended
/// the graph runs again.
#[test]
fn a_launch_left_running_by_a_timed_out_run_can_be_cancelled_later() {
    use grosr::graph::Strategy;
    let rt = runtime();
    let (seen, flags, g) = spin_then_mark(&rt);
    let mut p = g.prepare(&rt, Strategy::Resident).unwrap();
    p.cancel().unwrap(); // nothing running: nothing to do
    let stopped = |seen: &DeviceBuffer<u32>| {
        let deadline = std::time::Instant::now() + suite::T;
        while seen.to_vec().unwrap()[0] == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the spinning node never stopped"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(seen.to_vec().unwrap(), vec![1], "the node saw the cancel");
    };
    let e = p.run(std::time::Duration::from_millis(50));
    assert!(matches!(e, Err(grosr::Error::Timeout(..))), "{e:?}");
    p.cancel().unwrap();
    stopped(&seen);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(flags.to_vec().unwrap(), vec![0], "the successor never ran");
    // Once the cancelled launch has ended, the graph launches again (cancelled the same way).
    seen.write(&[0]).unwrap();
    let deadline = std::time::Instant::now() + suite::T;
    loop {
        match p.run(std::time::Duration::from_millis(20)) {
            Err(grosr::Error::Busy(m)) if m.contains("not finished") => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the launch never ended"
                );
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(grosr::Error::Timeout(..)) => break,
            other => panic!("{other:?}"),
        }
    }
    p.cancel().unwrap();
    stopped(&seen);
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
        matches!(e, Err(grosr::Error::Busy(ref m)) if m.contains("not finished")),
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

/// Spawns `n` Marks in a loop: a body that spawns without end, in effect.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let mut i = 0u32;
    while i < task.n {
        ctx.spawn(Mark { flags: task.flags, index: 0u32, pad: 0u32 });
        i += 1;
    }
})]
pub struct SpawnLoop {
    pub flags: grosr::DevicePtr<u32>,
    pub n: u32,
    pub pad: u32,
}

/// A body spawning far more tasks than the queues hold fails its job with `QueueOverflow`
/// naming the spawned type (as a GPU's full queues do), instead of growing the host's memory
/// until the process aborts; the runtime goes on.
#[test]
fn spawning_past_the_queues_fails_the_job_instead_of_exhausting_memory() {
    // 64 slots × 128 queues: 8192 queued tasks at most. One worker: nothing takes the Marks
    // while the loop runs, so they pile up (as they do on a GPU whose warps are all busy).
    let rt = common::portable_builder()
        .task::<SpawnLoop>()
        .queue_capacity(64)
        .backend(Backend::Cpu)
        .cpu_threads(1)
        .build()
        .unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let e = rt
        .submit(&[SpawnLoop {
            flags: flags.ptr(),
            n: 200_000,
            pad: 0,
        }])
        .unwrap()
        .wait_timeout(suite::T);
    assert!(
        matches!(e, Err(grosr::Error::QueueOverflow(ref t)) if t == "Mark"),
        "{e:?}"
    );
    suite::assert_runtime_runs_tasks(&rt);
}

/// More worker threads than the CPU backend allows is a configuration error, not a panic or an
/// abort while starting them.
#[test]
fn too_many_cpu_threads_is_a_config_error() {
    for threads in [RuntimeBuilder::MAX_CPU_THREADS + 1, usize::MAX] {
        let e = common::portable_builder()
            .backend(Backend::Cpu)
            .cpu_threads(threads)
            .trace(1)
            .build();
        assert!(
            matches!(e, Err(grosr::Error::Config(ref m)) if m.contains("cpu_threads")),
            "{threads}: {e:?}"
        );
    }
}

/// A pointer into one runtime's buffer, used by another runtime's task, faults there: the two
/// runtimes' memory never shares an address, so it cannot read what the other keeps.
#[test]
fn a_pointer_from_another_runtime_faults_instead_of_reading_its_memory() {
    let a = runtime();
    let b = runtime();
    let theirs = DeviceBuffer::<u32>::from_slice(a.gpu(), &[7]).unwrap();
    let _ours = DeviceBuffer::<u32>::from_slice(b.gpu(), &[0xdead_beef]).unwrap();
    let e = b
        .submit(&[common::Mark {
            flags: theirs.ptr(),
            index: 0,
            pad: 0,
        }])
        .unwrap()
        .wait_timeout(suite::T);
    assert!(matches!(e, Err(grosr::Error::BodyFault { .. })), "{e:?}");
    assert_eq!(theirs.to_vec().unwrap(), vec![7], "untouched");
}

/// Tasks queued behind a long task of another job do not wait for it while a worker is free:
/// idle workers take them from the busy worker's deque.
#[test]
fn tasks_queued_behind_a_long_task_run_on_a_free_worker() {
    let rt = on_cpu(common::portable_builder().task::<Busy>());
    let done = DeviceBuffer::<u32>::zeroed(rt.gpu(), 2).unwrap();
    let busy = |i, ms: u64| Busy {
        done: done.ptr().add(i),
        ns: ms * 1_000_000,
    };
    let seen = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    // Both workers busy for a moment; then a task that runs until cancelled (30 s at most), and
    // 100 short ones queued behind it.
    let warm = rt.submit(&[busy(0, 50), busy(1, 100)]).unwrap();
    let long = rt
        .submit(&[common::Spin {
            seen: seen.ptr(),
            max_ns: 30_000_000_000,
        }])
        .unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 100).unwrap();
    let short: Vec<Mark> = (0..100).map(|i| common::mark(&flags, i)).collect();
    let short = rt.submit(&short).unwrap();
    warm.wait_timeout(suite::T).unwrap();
    short
        .wait_timeout(std::time::Duration::from_secs(10))
        .expect("the short job ran on the free worker, not after the long task");
    assert_eq!(flags.to_vec().unwrap(), vec![1; 100]);
    assert_eq!(
        seen.to_vec().unwrap(),
        vec![0],
        "the long task was still running"
    );
    long.cancel().unwrap();
    assert_eq!(long.wait_timeout(suite::T), Err(grosr::Error::Cancelled));
}

/// A lowered strategy beside the running executor is refused while it holds every worker, as a
/// GPU refuses one beside a scheduler on every SM; with `max_sms` below the workers it runs.
#[test]
fn lowered_launches_beside_a_running_executor_follow_the_gpus_rule() {
    use grosr::graph::{Strategy, TaskGraph};
    for (max_sms, refused) in [(None, true), (Some(1), false)] {
        let mut b = common::portable_builder();
        if let Some(m) = max_sms {
            b = b.max_sms(m);
        }
        let rt = on_cpu(b);
        let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
        let mut g = TaskGraph::new();
        g.add(common::mark(&flags, 0));
        let e = g.prepare(&rt, Strategy::Fused).unwrap().run(suite::T);
        assert_eq!(
            matches!(e, Err(grosr::Error::Busy(ref m)) if m.contains("Runtime::stop")),
            refused,
            "max_sms {max_sms:?}: {e:?}"
        );
        assert_eq!(flags.to_vec().unwrap(), vec![u32::from(!refused)]);
    }
}
