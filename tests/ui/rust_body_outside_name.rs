// A name from outside the body (a `const` rustc can see): refused at the name, saying to pass
// it in the record.
const SCALE: u32 = 3;

#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.fail((task.n * SCALE) as i32);
})]
struct Scaled {
    n: u32,
}

fn main() {}
