#[grosr::task(cuda = "", threads = 32)]
struct Unknown {
    x: u32,
}

fn main() {}
