// A u8 before a u32 leaves three bytes of padding: the GPU would read garbage there.
#[grosr::record]
struct Mixed {
    flag: u8,
    count: u32,
}

fn main() {}
