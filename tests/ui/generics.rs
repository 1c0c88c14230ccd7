#[grosr::record]
struct Generic<'a, T> {
    value: T,
    name: &'a u8,
}

fn main() {}
