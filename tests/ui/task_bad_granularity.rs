#[grosr::task(cuda = "", granularity = "thread")]
struct Thread {
    x: u32,
}

#[grosr::task(cuda = "", granularity = warp)]
struct Bare {
    x: u32,
}

fn main() {}
