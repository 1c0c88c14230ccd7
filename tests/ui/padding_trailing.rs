// Fields in the right order, but the struct is rounded up to the alignment of its u64.
#[grosr::task(cuda = "")]
struct Tail {
    ptr: u64,
    n: u32,
}

fn main() {}
