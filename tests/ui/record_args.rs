#[grosr::record(cuda = "")]
struct WithArgs {
    x: u32,
}

fn main() {}
