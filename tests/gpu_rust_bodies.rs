//! Rust-syntax task bodies (`grosr::body`) on the GPU: a warp task's softmax row (with a
//! `#[grosr::device]` helper) against a float64 reference, a lane task's spawn chain counted
//! exactly, a block task's barrier and writes; also under the graph layer's lowered strategies,
//! which run the same translation. The tasks: tests/common/rust_bodies.rs.

use std::time::Duration;

use grosr::graph::{Strategy, TaskGraph};
use grosr::{DeviceBuffer, Runtime};

#[path = "common/rust_bodies.rs"]
mod rust_bodies;
use rust_bodies::{RsBlock, RsChain, RsRow, builder};

const T: Duration = Duration::from_secs(60);

fn runtime() -> Runtime {
    builder().build().unwrap()
}

/// Softmax of relu, in f64.
fn reference(x: &[f32], rows: usize, len: usize) -> Vec<f64> {
    let mut y = vec![0.0; rows * len];
    for r in 0..rows {
        let row = &x[r * len..(r + 1) * len];
        let m = row
            .iter()
            .map(|&v| f64::from(v.max(0.0)))
            .fold(0.0, f64::max);
        let s: f64 = row.iter().map(|&v| (f64::from(v.max(0.0)) - m).exp()).sum();
        for i in 0..len {
            y[r * len + i] = (f64::from(row[i].max(0.0)) - m).exp() / s;
        }
    }
    y
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_rust_softmax_row_matches_the_float64_reference_resident_and_fused() {
    let rt = runtime();
    let (rows, len) = (64usize, 1000usize);
    let mut seed = 12345u32;
    let x: Vec<f32> = (0..rows * len)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 * 8.0 - 4.0
        })
        .collect();
    let xb = DeviceBuffer::from_slice(rt.gpu(), &x).unwrap();
    let want = reference(&x, rows, len);
    for strategy in [Strategy::Resident, Strategy::Fused] {
        let yb = DeviceBuffer::<f32>::zeroed(rt.gpu(), rows * len).unwrap();
        let mut g = TaskGraph::new();
        for r in 0..rows {
            g.add(RsRow {
                x: xb.ptr(),
                y: yb.ptr(),
                row: r as u32,
                len: len as u32,
            });
        }
        if !strategy.is_resident() {
            rt.stop().unwrap();
        }
        g.prepare(&rt, strategy).unwrap().run(T).unwrap();
        if !strategy.is_resident() {
            rt.start().unwrap();
        }
        let y = yb.to_vec().unwrap();
        let worst = y
            .iter()
            .zip(&want)
            .map(|(&g, &w)| (f64::from(g) - w).abs() / w.max(1e-30))
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "{strategy:?}: relative error {worst:e}");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_rust_spawn_chain_runs_every_link_once() {
    let rt = runtime();
    let n = 10_000u32;
    let hits = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize + 1).unwrap();
    rt.submit(&[RsChain {
        hits: hits.ptr(),
        n,
        pad: 0,
    }])
    .unwrap()
    .wait_timeout(T)
    .unwrap();
    assert_eq!(hits.to_vec().unwrap(), vec![1; n as usize + 1]);
    assert_eq!(rt.executed::<RsChain>().unwrap(), u64::from(n) + 1);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_rust_block_task_meets_at_its_barrier() {
    let rt = runtime();
    let n = 5000u32;
    let out = DeviceBuffer::<f64>::zeroed(rt.gpu(), n as usize).unwrap();
    let verdict = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    rt.submit(&[RsBlock {
        out: out.ptr(),
        verdict: verdict.ptr(),
        n,
        pad: 0,
    }])
    .unwrap()
    .wait_timeout(T)
    .unwrap();
    assert_eq!(
        verdict.to_vec().unwrap(),
        vec![1],
        "thread 0 saw every write"
    );
    let got = out.to_vec().unwrap();
    assert!((0..n as usize).all(|i| got[i] == (i as f64).sqrt()));
}
