//! Tasks with Rust bodies (`grosr::body`) and the checks of what they compute, shared by
//! tests/gpu_rust_bodies.rs (on a GPU), tests/cpu_bodies.rs (on the CPU backend, in `cargo test`)
//! and tests/nvrtc_compile.rs (their module compiled, and in the cache fill): one suite, both
//! backends.
#![allow(dead_code)]

use std::time::Duration;

use grosr::graph::{Strategy, TaskGraph};
use grosr::{DeviceBuffer, DevicePtr, Runtime, RuntimeBuilder};

const T: Duration = Duration::from_secs(60);

/// A helper the softmax row calls (`#[grosr::device]`).
#[grosr::device]
fn relu(x: f32) -> f32 {
    x.max(0.0)
}

/// One row of `y = softmax(relu(x))` per warp.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let base = task.row * task.len;
    let mut m = 0.0f32;
    for i in (ctx.lane()..task.len).step_by(32) {
        m = m.max(ctx.read(task.x, base + i).max(0.0));
    }
    m = ctx.warp_max(m);
    let mut s = 0.0f32;
    for i in (ctx.lane()..task.len).step_by(32) {
        s += (relu(ctx.read(task.x, base + i)) - m).exp();
    }
    s = ctx.warp_sum(s);
    for i in (ctx.lane()..task.len).step_by(32) {
        let v = (relu(ctx.read(task.x, base + i)) - m).exp() / s;
        ctx.write(task.y, base + i, v);
    }
})]
pub struct RsRow {
    pub x: DevicePtr<f32>,
    pub y: DevicePtr<f32>,
    pub row: u32,
    pub len: u32,
}

/// Counts itself, then spawns the next link by field names until `n` is 0.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.atomic_add(task.hits, task.n, 1u32);
    if task.n > 0 {
        ctx.spawn(RsChain { n: task.n - 1, hits: task.hits, pad: 7 });
    }
})]
pub struct RsChain {
    pub hits: DevicePtr<u32>,
    pub n: u32,
    pub pad: u32,
}

/// Every thread writes its share, the block meets, then thread 0 checks every slot.
#[grosr::task(granularity = "block", rust = |task, ctx| {
    for i in (ctx.lane()..task.n).step_by(ctx.width() as usize) {
        ctx.write(task.out, i, (i as f64).sqrt());
    }
    ctx.sync_threads();
    if ctx.lane() == 0 {
        let mut bad = 0u32;
        for i in 0..task.n {
            if ctx.read(task.out, i) != (i as f64).sqrt() {
                bad += 1;
            }
        }
        ctx.write(task.verdict, 0u32, if bad == 0 { 1u32 } else { 2 });
    }
})]
pub struct RsBlock {
    pub out: DevicePtr<f64>,
    pub verdict: DevicePtr<u32>,
    pub n: u32,
    pub pad: u32,
}

/// Takes `n` words from the heap, fills them with i², sums them into `sums[i]`, frees them.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let p = ctx.alloc::<u32>(task.n);
    if p.is_null() {
        ctx.fail(3);
        return;
    }
    for i in 0..task.n {
        ctx.write(p, i, i * i);
    }
    let mut s = 0u64;
    for i in 0..task.n {
        s += ctx.read(p, i) as u64;
    }
    ctx.write(task.sums, task.i, s);
    ctx.free(p);
})]
pub struct RsHeap {
    pub sums: DevicePtr<u64>,
    pub i: u32,
    pub n: u32,
}

/// Asks the heap for more than it can have: `count` u64s, whose bytes overflow a u64 (2^61 + 1
/// of them), and `bytes` bytes (u64::MAX, whose slab count overflowed when rounded up); writes
/// 1 to `out[i]` if both came back null.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let a = ctx.alloc::<u64>(task.count);
    let b = ctx.alloc::<u8>(task.bytes);
    ctx.write(task.out, task.i, if a.is_null() && b.is_null() { 1u32 } else { 2u32 });
    if !a.is_null() {
        ctx.free(a);
    }
    if !b.is_null() {
        ctx.free(b);
    }
})]
pub struct RsOverAsk {
    pub out: DevicePtr<u32>,
    pub count: u64,
    pub bytes: u64,
    pub i: u32,
    pub pad: u32,
}

/// A compound assignment whose place and value both take a ticket: Rust evaluates the value
/// first when both are primitive (`counts[1] += 0`), then the place.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let mut counts = [0u32; 2];
    counts[ctx.atomic_add(task.tickets, 0u32, 1u32) as usize] += ctx.atomic_add(task.tickets, 0u32, 1u32) + 5u32;
    ctx.write(task.out, 0u32, counts[0]);
    ctx.write(task.out, 1u32, counts[1]);
})]
pub struct RsOrder {
    pub tickets: DevicePtr<u32>,
    pub out: DevicePtr<u32>,
}

/// Slots of [`RsOps`]' output per lane.
pub const OPS_SLOTS: u32 = 24;
/// The slots of `floor`, `ceil`, `round` and `trunc`: exact on every backend.
pub const ROUNDING_SLOTS: std::ops::RangeInclusive<usize> = 11..=14;

/// Every math method, the warp reductions, the atomics and pointer offsets of the subset: lane
/// `l` of the warp reads `x[l]` and writes its results at `y.add(l * OPS_SLOTS)`.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let l = ctx.lane();
    let x = ctx.read(task.x, l);
    let out = task.y.add((l * 24u32) as u64);
    ctx.write(out, 0u32, (x - 3.0f32).abs());
    ctx.write(out, 1u32, x.sqrt());
    ctx.write(out, 2u32, x.exp());
    ctx.write(out, 3u32, x.exp2());
    ctx.write(out, 4u32, x.ln());
    ctx.write(out, 5u32, x.log2());
    ctx.write(out, 6u32, x.log10());
    ctx.write(out, 7u32, x.sin());
    ctx.write(out, 8u32, x.cos());
    ctx.write(out, 9u32, x.tan());
    ctx.write(out, 10u32, x.tanh());
    ctx.write(out, 11u32, (x * 3.7f32).floor());
    ctx.write(out, 12u32, (x * 3.7f32).ceil());
    ctx.write(out, 13u32, (x * 3.7f32).round());
    ctx.write(out, 14u32, (x * -3.7f32).trunc());
    ctx.write(out, 15u32, x.cbrt());
    ctx.write(out, 16u32, x.recip());
    ctx.write(out, 17u32, x.powf(1.5f32));
    ctx.write(out, 18u32, x.powi(3i32));
    ctx.write(out, 19u32, x.mul_add(2.0f32, 0.25f32));
    ctx.write(out, 20u32, ctx.warp_min(x));
    ctx.write(out, 21u32, ctx.warp_max(x));
    ctx.write(out, 22u32, ctx.warp_sum(x));
    ctx.write(out, 23u32, (x as f64).exp().ln().sqrt() as f32);
    ctx.atomic_max(task.words, 0u32, l);
    ctx.atomic_min(task.words, 1u32, l + 5u32);
    if l == 0u32 {
        let old = ctx.atomic_exchange(task.words, 2u32, 11u32);
        ctx.write(task.words, 3u32, old);
        let first = ctx.atomic_cas(task.words, 4u32, 0u32, 7u32);
        let second = ctx.atomic_cas(task.words, 4u32, 0u32, 9u32);
        ctx.write(task.words, 5u32, first + second * 100u32);
    }
})]
pub struct RsOps {
    pub x: DevicePtr<f32>,
    pub y: DevicePtr<f32>,
    pub words: DevicePtr<u32>,
    pub pad: u64,
}

/// A builder with these tasks and their helper registered.
pub fn builder() -> RuntimeBuilder {
    grosr::Runtime::builder()
        .helper::<relu>()
        .task::<RsRow>()
        .task::<RsChain>()
        .task::<RsBlock>()
        .task::<RsHeap>()
        .task::<RsOverAsk>()
        .task::<RsOrder>()
        .task::<RsOps>()
}

/// An [`RsOrder`]: the compound assignment's value (ticket 0, plus 5) lands in its place
/// (ticket 1), as Rust orders them.
pub fn a_compound_assignment_evaluates_its_value_first(rt: &Runtime) {
    let tickets = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let out = DeviceBuffer::<u32>::zeroed(rt.gpu(), 2).unwrap();
    rt.submit(&[RsOrder {
        tickets: tickets.ptr(),
        out: out.ptr(),
    }])
    .unwrap()
    .wait_timeout(T)
    .unwrap();
    assert_eq!(
        out.to_vec().unwrap(),
        [0, 5],
        "counts[ticket] += ticket + 5"
    );
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

/// `rows` softmax rows ([`RsRow`], a warp task each) as a graph under Resident and Fused, each
/// within 1e-5 relative of the float64 reference.
pub fn softmax_rows_match_the_reference(rt: &Runtime, rows: usize) {
    let len = 1000usize;
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
        // The lowered strategies launch kernels of their own: the scheduler stops.
        let lowered = !strategy.is_resident();
        if lowered {
            rt.stop().unwrap();
        }
        g.prepare(rt, strategy).unwrap().run(T).unwrap();
        if lowered {
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

/// A 10 000-link [`RsChain`]: every link counted once, and `executed` agrees.
pub fn a_spawn_chain_runs_every_link_once(rt: &Runtime) {
    let n = 10_000u32;
    let hits = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize + 1).unwrap();
    let before = rt.executed::<RsChain>().unwrap();
    rt.submit(&[RsChain {
        hits: hits.ptr(),
        n,
        pad: 0,
    }])
    .unwrap()
    .wait_timeout(T)
    .unwrap();
    assert_eq!(hits.to_vec().unwrap(), vec![1; n as usize + 1]);
    assert_eq!(rt.executed::<RsChain>().unwrap() - before, u64::from(n) + 1);
}

/// An [`RsBlock`]: every thread's write seen by thread 0 after the barrier.
pub fn a_block_task_meets_at_its_barrier(rt: &Runtime) {
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

/// 2000 [`RsHeap`] tasks of 1..=64 words each: every sum right (every allocation private).
pub fn heap_tasks_allocate_fill_and_free(rt: &Runtime) {
    let n = 2000u32;
    let sums = DeviceBuffer::<u64>::zeroed(rt.gpu(), n as usize).unwrap();
    let tasks: Vec<RsHeap> = (0..n)
        .map(|i| RsHeap {
            sums: sums.ptr(),
            i,
            n: 1 + i % 64,
        })
        .collect();
    rt.submit(&tasks).unwrap().wait_timeout(T).unwrap();
    let got = sums.to_vec().unwrap();
    for i in 0..n {
        let m = u64::from(1 + i % 64);
        let want: u64 = (0..m).map(|k| k * k).sum();
        assert_eq!(got[i as usize], want, "task {i}");
    }
    // Requests past any heap are null, from a whole warp's lanes and from a lane alone.
    let out = DeviceBuffer::<u32>::zeroed(rt.gpu(), 33).unwrap();
    let ask = |i| RsOverAsk {
        out: out.ptr(),
        count: (1 << 61) + 1,
        bytes: u64::MAX,
        i,
        pad: 0,
    };
    rt.submit(&(0..32).map(ask).collect::<Vec<_>>())
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    rt.submit(&[ask(32)]).unwrap().wait_timeout(T).unwrap();
    assert_eq!(
        out.to_vec().unwrap(),
        vec![1; 33],
        "every over-large request is null"
    );
}

/// [`RsOps`]' inputs: 32 values in (0.55, 2.5), none where a rounding is a tie.
pub fn ops_inputs() -> Vec<f32> {
    (0..32).map(|l| 0.55 + 0.061 * l as f32).collect()
}

/// One [`RsOps`] task over [`ops_inputs`]: its `OPS_SLOTS` floats a lane and its six words.
pub fn run_ops(rt: &Runtime) -> (Vec<f32>, Vec<u32>) {
    let x = DeviceBuffer::from_slice(rt.gpu(), &ops_inputs()).unwrap();
    let y = DeviceBuffer::<f32>::zeroed(rt.gpu(), 32 * OPS_SLOTS as usize).unwrap();
    let words = DeviceBuffer::from_slice(rt.gpu(), &[0u32, u32::MAX, 3, 0, 0, 0]).unwrap();
    rt.submit(&[RsOps {
        x: x.ptr(),
        y: y.ptr(),
        words: words.ptr(),
        pad: 0,
    }])
    .unwrap()
    .wait_timeout(T)
    .unwrap();
    (y.to_vec().unwrap(), words.to_vec().unwrap())
}

/// Whether `got` is within 1e-5 relative of `want` (1e-6 absolute near zero).
pub fn close(got: f32, want: f64) -> bool {
    (f64::from(got) - want).abs() <= 1e-5 * want.abs().max(0.1)
}

/// [`RsOps`]: every result within 1e-5 relative of Rust's f64 math on the same input, the
/// rounding functions and the atomics' words exact.
pub fn every_math_method_reduction_and_atomic_computes_what_rust_does(rt: &Runtime) {
    let (y, words) = run_ops(rt);
    let xs = ops_inputs();
    let (min, max) = (f64::from(xs[0]), f64::from(xs[31]));
    // The warp sum adds in butterfly order; f64's sum of the same f32 values is within 1e-5.
    let sum: f64 = xs.iter().map(|&v| f64::from(v)).sum();
    for (l, &x32) in xs.iter().enumerate() {
        let x = f64::from(x32);
        let scaled = f64::from(x32 * 3.7);
        let neg = f64::from(x32 * -3.7);
        let want = [
            (f64::from(x32 - 3.0)).abs(),
            x.sqrt(),
            x.exp(),
            x.exp2(),
            x.ln(),
            x.log2(),
            x.log10(),
            x.sin(),
            x.cos(),
            x.tan(),
            x.tanh(),
            scaled.floor(),
            scaled.ceil(),
            scaled.round(),
            neg.trunc(),
            x.cbrt(),
            x.recip(),
            x.powf(1.5),
            x.powi(3),
            x.mul_add(2.0, 0.25),
            min,
            max,
            sum,
            x.exp().ln().sqrt(),
        ];
        for (k, w) in want.iter().enumerate() {
            let got = y[l * OPS_SLOTS as usize + k];
            assert!(close(got, *w), "lane {l}, slot {k}: {got} against {w}");
            if ROUNDING_SLOTS.contains(&k) {
                assert_eq!(
                    f64::from(got),
                    *w,
                    "lane {l}, slot {k}: a rounding is exact"
                );
            }
        }
    }
    assert_eq!(words, [31, 5, 11, 3, 7, 700], "max, min, exchange, CAS");
}
