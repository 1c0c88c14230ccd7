//! The CPU executor (`grosr::unstable::cpu_executor`) runs the Rust-body tasks of
//! tests/gpu_rust_bodies.rs on host threads, with the GPU's results: a warp task's softmax row
//! (collectives across its 32 lanes) against the float64 reference, a 10 000-link spawn chain
//! counted exactly, a block task's barrier; and the faults a GPU would not report as clearly: an
//! access outside every allocation, lanes meeting at different collectives, a CUDA C body, a
//! panic, `ctx.fail`. No GPU, NVRTC or driver is needed: these run in `cargo test`.

use std::time::Duration;

use grosr::unstable::{CpuExecutor, cpu_executor};
use grosr::{DevicePtr, Error};

#[path = "common/rust_bodies.rs"]
mod rust_bodies;
use rust_bodies::{RsBlock, RsChain, RsRow};

const T: Duration = Duration::from_secs(60);

fn executor(builder: grosr::RuntimeBuilder) -> CpuExecutor {
    cpu_executor(&builder, 2).unwrap()
}

#[test]
fn a_spawn_chain_runs_every_link_exactly_once() {
    let ex = executor(rust_bodies::builder());
    let n = 10_000u32;
    let hits = ex.buffer(&vec![0u32; n as usize + 1]);
    ex.submit(&[RsChain {
        hits: hits.ptr(),
        n,
        pad: 0,
    }])
    .unwrap()
    .wait_timeout(T)
    .unwrap();
    assert_eq!(hits.to_vec(), vec![1; n as usize + 1]);
    assert_eq!(ex.executed::<RsChain>().unwrap(), u64::from(n) + 1);
}

#[test]
fn a_warp_softmax_row_matches_the_float64_reference() {
    let ex = executor(rust_bodies::builder());
    let (rows, len) = (8usize, 1000usize);
    let mut seed = 12345u32;
    let x: Vec<f32> = (0..rows * len)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 * 8.0 - 4.0
        })
        .collect();
    let xb = ex.buffer(&x);
    let yb = ex.buffer(&vec![0f32; rows * len]);
    let tasks: Vec<RsRow> = (0..rows as u32)
        .map(|row| RsRow {
            x: xb.ptr(),
            y: yb.ptr(),
            row,
            len: len as u32,
        })
        .collect();
    ex.submit(&tasks).unwrap().wait_timeout(T).unwrap();
    let y = yb.to_vec();
    for r in 0..rows {
        let row = &x[r * len..(r + 1) * len];
        let m = row
            .iter()
            .map(|&v| f64::from(v.max(0.0)))
            .fold(0.0, f64::max);
        let s: f64 = row.iter().map(|&v| (f64::from(v.max(0.0)) - m).exp()).sum();
        for i in 0..len {
            let want = (f64::from(row[i].max(0.0)) - m).exp() / s;
            let got = f64::from(y[r * len + i]);
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1e-30),
                "row {r} [{i}]: {got} against {want}"
            );
        }
    }
}

#[test]
fn a_block_task_meets_at_its_barrier() {
    let ex = executor(rust_bodies::builder());
    let n = 5000u32;
    let out = ex.buffer(&vec![0f64; n as usize]);
    let verdict = ex.buffer(&[0u32]);
    ex.submit(&[RsBlock {
        out: out.ptr(),
        verdict: verdict.ptr(),
        n,
        pad: 0,
    }])
    .unwrap()
    .wait_timeout(T)
    .unwrap();
    assert_eq!(
        verdict.to_vec(),
        vec![1],
        "thread 0 saw every thread's write"
    );
}

/// Reads `x[i]` for i in 0..n into `y`, so `n` past the end reads outside the allocation.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    for i in 0..task.n {
        let v = ctx.read(task.x, i);
        ctx.write(task.y, i, v);
    }
})]
pub struct Copy {
    pub x: DevicePtr<u32>,
    pub y: DevicePtr<u32>,
    pub n: u32,
    pub pad: u32,
}

/// Lanes below 16 sum, the others take the maximum: two different collectives.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let v = if ctx.lane() < 16 {
        ctx.warp_sum(1.0f32)
    } else {
        ctx.warp_max(1.0f32)
    };
    ctx.write(task.out, ctx.lane(), v);
})]
pub struct Diverge {
    pub out: DevicePtr<f32>,
}

/// Fails its job with `code`.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.fail(task.code);
})]
pub struct Fails {
    pub code: i32,
    pub pad: u32,
}

/// A CUDA C body: only a GPU runs it.
#[grosr::task(granularity = "lane", cuda = "*task.out = 1u;")]
pub struct OnlyOnGpu {
    pub out: DevicePtr<u32>,
}

/// Ballot, any, all and shuffles across a warp, each lane writing what it got.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let l = ctx.lane();
    let b = ctx.ballot(l % 3 == 0);
    let any = ctx.any(l == 31);
    let all = ctx.all(l < 32);
    let from0 = ctx.shuffle(l * 10, 0u32);
    let mirror = ctx.shuffle_xor(l, 31u32);
    let base = l * 5;
    ctx.write(task.out, base, b);
    ctx.write(task.out, base + 1, if any { 1u32 } else { 0 });
    ctx.write(task.out, base + 2, if all { 1u32 } else { 0 });
    ctx.write(task.out, base + 3, from0);
    ctx.write(task.out, base + 4, mirror);
})]
pub struct Votes {
    pub out: DevicePtr<u32>,
}

fn faults() -> grosr::RuntimeBuilder {
    grosr::Runtime::builder()
        .task::<Copy>()
        .task::<Diverge>()
        .task::<Fails>()
        .task::<OnlyOnGpu>()
        .task::<Votes>()
}

#[test]
fn an_access_outside_every_allocation_fails_its_job_and_not_others() {
    let ex = executor(faults());
    let x = ex.buffer(&[1u32, 2, 3, 4]);
    let y = ex.buffer(&[0u32; 8]);
    let bad = ex
        .submit(&[Copy {
            x: x.ptr(),
            y: y.ptr(),
            n: 6,
            pad: 0,
        }])
        .unwrap();
    let good = ex
        .submit(&[Copy {
            x: x.ptr(),
            y: y.ptr(),
            n: 4,
            pad: 0,
        }])
        .unwrap();
    match bad.wait_timeout(T) {
        Err(Error::BodyFault { task, what }) => {
            assert_eq!(task, "Copy");
            assert!(what.contains("outside every live allocation"), "{what}");
        }
        other => panic!("the read past the end: {other:?}"),
    }
    good.wait_timeout(T).unwrap();
    assert_eq!(y.to_vec()[..4], [1, 2, 3, 4]);
    // A freed buffer is no longer reachable either.
    let gone = ex.buffer(&[7u32; 4]);
    let p = gone.ptr();
    drop(gone);
    let after_free = ex
        .submit(&[Copy {
            x: p,
            y: y.ptr(),
            n: 1,
            pad: 0,
        }])
        .unwrap();
    assert!(matches!(
        after_free.wait_timeout(T),
        Err(Error::BodyFault { .. })
    ));
}

#[test]
fn lanes_at_different_collectives_fail_the_task_instead_of_hanging() {
    let ex = executor(faults());
    let out = ex.buffer(&[0f32; 32]);
    match ex
        .submit(&[Diverge { out: out.ptr() }])
        .unwrap()
        .wait_timeout(T)
    {
        Err(Error::BodyFault { task, what }) => {
            assert_eq!(task, "Diverge");
            assert!(what.contains("different collectives"), "{what}");
            assert!(what.contains("cpu_bodies.rs"), "names the sites: {what}");
        }
        other => panic!("divergent collectives: {other:?}"),
    }
}

#[test]
fn warp_votes_and_shuffles_give_every_lane_the_gpus_answer() {
    let ex = executor(faults());
    let out = ex.buffer(&[0u32; 32 * 5]);
    ex.submit(&[Votes { out: out.ptr() }])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    let v = out.to_vec();
    let ballot = (0..32).filter(|l| l % 3 == 0).fold(0u32, |m, l| m | 1 << l);
    for l in 0..32usize {
        let got = &v[l * 5..l * 5 + 5];
        assert_eq!(got, [ballot, 1, 1, 0, 31 - l as u32], "lane {l}");
    }
}

#[test]
fn fail_codes_cuda_bodies_and_wrong_types_are_errors_that_name_the_task() {
    let ex = executor(faults());
    assert_eq!(
        ex.submit(&[Fails { code: 7, pad: 0 }])
            .unwrap()
            .wait_timeout(T),
        Err(Error::TaskFailed {
            task: "Fails".into(),
            code: 7
        })
    );
    let out = ex.buffer(&[0u32]);
    match ex
        .submit(&[OnlyOnGpu { out: out.ptr() }])
        .unwrap()
        .wait_timeout(T)
    {
        Err(Error::BodyFault { task, what }) => {
            assert_eq!(task, "OnlyOnGpu");
            assert!(what.contains("only a GPU runs"), "{what}");
        }
        other => panic!("a CUDA C body on the CPU: {other:?}"),
    }
    assert_eq!(out.to_vec(), vec![0]);
    assert!(matches!(
        ex.submit(&[RsChain {
            hits: DevicePtr::null(),
            n: 0,
            pad: 0
        }]),
        Err(Error::UnregisteredTask("RsChain"))
    ));
}
