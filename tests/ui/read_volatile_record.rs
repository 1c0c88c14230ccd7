// `ctx.read_volatile` loads one scalar or pointer: CUDA C++ has no volatile load of a record.

#[grosr::record]
pub struct Pair {
    pub a: u32,
    pub b: u32,
}

#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let p = ctx.read_volatile(task.src, 0u32);
    ctx.write(task.out, 0u32, p.a + p.b);
})]
pub struct ReadsPair {
    pub src: grosr::DevicePtr<Pair>,
    pub out: grosr::DevicePtr<u32>,
}

fn main() {}
