// A block barrier in a warp task: refused at the method, naming the granularity it needs.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    ctx.write(task.out, ctx.lane(), task.n);
    ctx.sync_threads();
})]
struct WarpBarrier {
    out: grosr::DevicePtr<u32>,
    n: u32,
    pad: u32,
}

fn main() {}
