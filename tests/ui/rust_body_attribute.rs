// Attributes on statements (`#[cfg]` would need the translation to evaluate it): refused at the
// attribute.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    #[cfg(debug_assertions)]
    ctx.fail(task.n as i32);
    #[allow(unused_variables)]
    let twice = task.n * 2u32;
})]
struct Attributed {
    n: u32,
}

fn main() {}
