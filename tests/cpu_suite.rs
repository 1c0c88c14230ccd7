//! The core checks of tests/gpu_core.rs (`tests/common/suite.rs`: the same task types, bodies
//! and sizes) on the CPU backend, in `cargo test`: a million host submits from eight threads,
//! a fib(27) spawn tree, a 100k chain of warp tasks, held chains meeting fan-out, spawn bursts,
//! a failing task, stop and start, empty jobs. Seconds in a debug build on two cores.

mod common;

use common::suite;
use grosr::{Backend, DeviceBuffer, Runtime};

fn runtime() -> Runtime {
    let rt = common::portable_builder()
        .backend(Backend::Cpu)
        .cpu_threads(2)
        .build()
        .unwrap();
    assert_eq!(rt.backend(), Backend::Cpu);
    rt
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
