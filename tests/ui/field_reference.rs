#[grosr::record]
struct Borrowing {
    data: &'static [f32],
}

fn main() {}
