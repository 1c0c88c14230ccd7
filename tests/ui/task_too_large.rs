// 56 bytes: a queue slot holds 48.
#[grosr::task(cuda = "")]
struct Big {
    values: [f32; 14],
}

fn main() {}
