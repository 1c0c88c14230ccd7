#[grosr::record]
struct Flags {
    enabled: bool,
    many: [bool; 4],
}

fn main() {}
