// The path is relative to the crate's Cargo.toml directory; the error points at it.
#[grosr::task(file = "no/such/body.cu")]
struct Missing {
    x: u32,
}

#[grosr::task(file = "/abs/body.cu")]
struct Absolute {
    x: u32,
}

fn main() {}
