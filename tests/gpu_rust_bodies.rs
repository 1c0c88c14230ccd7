//! Rust-syntax task bodies (`grosr::body`) on the GPU: a warp task's softmax row (with a
//! `#[grosr::device]` helper) against a float64 reference, a lane task's spawn chain counted
//! exactly, a block task's barrier and writes; also under the graph layer's lowered strategies,
//! which run the same translation; every math method, warp reduction and atomic of the subset,
//! and the same task on both backends in one process, their results compared. The tasks and the
//! checks (which tests/cpu_bodies.rs runs on the CPU backend): tests/common/rust_bodies.rs.

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

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn every_math_method_reduction_and_atomic_computes_what_rust_does() {
    rust_bodies::every_math_method_reduction_and_atomic_computes_what_rust_does(&runtime());
}

/// The same task on the GPU and on the CPU backend: floats within 1e-5 relative of each other,
/// the rounding functions' results and every integer the same.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn the_gpu_and_the_cpu_backend_agree_on_the_same_task() {
    let (gpu_y, gpu_words) = rust_bodies::run_ops(&runtime());
    let cpu = builder()
        .backend(grosr::Backend::Cpu)
        .cpu_threads(2)
        .build()
        .unwrap();
    let (cpu_y, cpu_words) = rust_bodies::run_ops(&cpu);
    assert_eq!(gpu_words, cpu_words, "integers bit for bit");
    let slots = rust_bodies::OPS_SLOTS as usize;
    for (i, (g, c)) in gpu_y.iter().zip(&cpu_y).enumerate() {
        assert!(
            rust_bodies::close(*g, f64::from(*c)),
            "lane {}, slot {}: GPU {g}, CPU {c}",
            i / slots,
            i % slots
        );
        if rust_bodies::ROUNDING_SLOTS.contains(&(i % slots)) {
            assert_eq!(
                g,
                c,
                "lane {}, slot {}: roundings agree exactly",
                i / slots,
                i % slots
            );
        }
    }
}
