// A `let` that copies a whole array: refused at the `let`, saying to read elements instead
// (C++ cannot declare one array from another; NVRTC would fail at build).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let a: [u32; 4] = [task.n; 4];
    let b = a;
    ctx.fail(b[0] as i32);
})]
struct Copies {
    n: u32,
}

fn main() {}
