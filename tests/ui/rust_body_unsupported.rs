// A Rust task body outside the subset: each error at its place, saying what is supported; and a
// spawn whose field names are wrong, which rustc reports at the field.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    match task.n {
        0 => {}
        _ => ctx.fail(1),
    }
})]
struct Matches {
    n: u32,
}

#[grosr::task(granularity = "lane", rust = |task, ctx| {
    if task.n > 0 {
        ctx.spawn(Child { count: task.n - 1 });
    }
})]
struct Parent {
    n: u32,
}

#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let _ = (task.n, 1);
})]
struct Child {
    n: u32,
}

fn main() {}
