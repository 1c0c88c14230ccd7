// An unsuffixed integer literal beyond `i32` (a C `int` in the translation): refused at the
// literal, asking for a suffix.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let hash: u32 = task.n.wrapping_mul(2654435761);
    ctx.write(task.out, 0u32, hash);
})]
struct Big {
    out: grosr::DevicePtr<u32>,
    n: u32,
    pad: u32,
}

fn main() {}
