//! The report's workloads whose tasks have Rust bodies, on the CPU backend (`cargo test`, no GPU):
//! the ping-pong pairs in order, and ReLU+Softmax (one task a row, and ReLU → Softmax) against
//! its float64 reference, under every strategy: the checks tests/gpu_graph.rs makes of their
//! CUDA C twins on a GPU.

use std::time::Duration;

use grosr::{Backend, DeviceBuffer, Runtime};
use grosr_lab::workloads::graphs::{PingRs, PongRs, pingpong_graph_rs, pingpong_on_every_strategy};
use grosr_lab::workloads::relu_softmax::{
    Matrix, ReluRs, ReluSoftmaxRs, SoftmaxRs, check_on_every_strategy,
};

const T: Duration = Duration::from_secs(60);

fn executor() -> Runtime {
    Runtime::builder()
        .task::<PingRs>()
        .task::<PongRs>()
        .task::<ReluSoftmaxRs>()
        .task::<ReluRs>()
        .task::<SoftmaxRs>()
        .backend(Backend::Cpu)
        .cpu_threads(2)
        .build()
        .unwrap()
}

#[test]
fn rust_ping_pong_pairs_run_in_order_on_every_strategy() {
    let rt = executor();
    let n = 3000;
    let a = DeviceBuffer::<u32>::zeroed(rt.gpu(), n).unwrap();
    let b = DeviceBuffer::<u32>::zeroed(rt.gpu(), n).unwrap();
    let g = pingpong_graph_rs(&a, &b, n as u32).unwrap();
    pingpong_on_every_strategy(&rt, &g, (&a, &b), n as u32, T).unwrap();
}

#[test]
fn rust_relu_softmax_matches_the_float64_reference_on_every_strategy() {
    let rt = executor();
    for (rows, len) in [(33u32, 256u32), (4, 4096), (1, 32)] {
        let m = Matrix::new(&rt, rows, len).unwrap();
        check_on_every_strategy(
            &rt,
            &m,
            &[m.one_task_graph_rust(), m.two_task_graph_rust().unwrap()],
            T,
        )
        .unwrap();
    }
}
