#[grosr::record]
struct Sizes {
    len: usize,
    delta: isize,
}

fn main() {}
