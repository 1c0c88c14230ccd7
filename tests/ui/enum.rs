#[grosr::record]
enum Mode {
    Fast,
    Slow,
}

fn main() {}
