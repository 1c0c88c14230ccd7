#[grosr::record]
#[repr(C, packed)]
struct Packed {
    flag: u8,
    count: u32,
}

#[grosr::record]
#[repr(align(16))]
struct Aligned {
    count: u32,
}

fn main() {}
