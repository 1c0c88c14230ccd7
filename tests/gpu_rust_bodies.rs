//! Rust-syntax task bodies (`grosr::body`) on the GPU: a warp task's softmax row (with a
//! `#[grosr::device]` helper) against a float64 reference, a lane task's spawn chain counted
//! exactly, a block task's barrier and writes; also under the graph layer's lowered strategies,
//! which run the same translation. The tasks and the checks (which tests/cpu_bodies.rs runs on
//! the CPU backend): tests/common/rust_bodies.rs.

#[path = "common/rust_bodies.rs"]
mod rust_bodies;
use rust_bodies::builder;

/// On the GPU whatever `GROSR_BACKEND` says (the checks would pass on the CPU backend too).
fn runtime() -> grosr::Runtime {
    let rt = builder().backend(grosr::Backend::Gpu).build().unwrap();
    assert_eq!(rt.backend(), grosr::Backend::Gpu);
    rt
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_rust_softmax_row_matches_the_float64_reference_resident_and_fused() {
    rust_bodies::softmax_rows_match_the_reference(&runtime(), 64);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_rust_spawn_chain_runs_every_link_once() {
    rust_bodies::a_spawn_chain_runs_every_link_once(&runtime());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_rust_block_task_meets_at_its_barrier() {
    rust_bodies::a_block_task_meets_at_its_barrier(&runtime());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn rust_tasks_allocate_fill_and_free_heap_memory() {
    rust_bodies::heap_tasks_allocate_fill_and_free(&runtime());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_rust_compound_assignment_evaluates_its_value_first() {
    rust_bodies::a_compound_assignment_evaluates_its_value_first(&runtime());
}
