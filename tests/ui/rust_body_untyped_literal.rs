// Unsuffixed literals whose type Rust infers from later uses, which the translation cannot see:
// a `let` of a lone literal, a range of two, a literal shifted.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let scale = 2;
    for i in 0..8 {
        ctx.write(task.out, i as u32, task.n as u64);
    }
    let mask: u64 = 1 << task.k;
    ctx.write(task.out, 0u32, mask);
})]
struct Untyped {
    out: grosr::DevicePtr<u64>,
    n: u32,
    k: u32,
}

fn main() {}
