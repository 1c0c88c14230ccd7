// A closure inside a Rust task body: refused at the closure (a helper is a `#[grosr::device]`
// function).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let double = |x: u32| x * 2;
    ctx.fail(double(task.n) as i32);
})]
struct Closure {
    n: u32,
}

fn main() {}
