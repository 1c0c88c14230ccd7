// Every other Rust type without a C twin, each reported at its own field, all at once.
#[grosr::record]
struct Unsupported {
    letter: char,
    pair: (u32, u32),
    name: String,
    items: Vec<u32>,
    boxed: Box<u32>,
    maybe: Option<u32>,
    wide: u128,
    ptrs: grosr::DevicePtr<usize>,
}

fn main() {}
