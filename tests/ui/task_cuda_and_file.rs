#[grosr::task(cuda = "task;", file = "body.cu")]
struct Both {
    x: u32,
}

fn main() {}
