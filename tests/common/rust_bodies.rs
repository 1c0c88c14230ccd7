//! Tasks with Rust bodies (`grosr::body`), shared by tests/gpu_rust_bodies.rs (run on a GPU) and
//! tests/nvrtc_compile.rs (their module compiled, and in the cache fill).
#![allow(dead_code)]

use grosr::{DevicePtr, RuntimeBuilder};

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

/// A builder with these tasks and their helper registered.
pub fn builder() -> RuntimeBuilder {
    grosr::Runtime::builder()
        .helper::<relu>()
        .task::<RsRow>()
        .task::<RsChain>()
        .task::<RsBlock>()
}
