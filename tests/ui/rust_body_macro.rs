// A macro call (here `println!`) in a Rust task body: refused at the macro.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    println!("n = {}", task.n);
    ctx.fail(1);
})]
struct Prints {
    n: u32,
}

fn main() {}
