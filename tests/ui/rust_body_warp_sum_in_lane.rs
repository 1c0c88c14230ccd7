// A warp collective in a lane task: refused at the method, naming the granularity it needs.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let total = ctx.warp_sum(task.x);
    ctx.write(task.out, 0u32, total);
})]
struct LaneSum {
    out: grosr::DevicePtr<f32>,
    x: f32,
    pad: u32,
}

fn main() {}
