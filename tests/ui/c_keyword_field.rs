#[grosr::task(cuda = "")]
struct Keywords {
    int: u32,
    class: u32,
    r#new: u32,
    task: u32,
    __count: u32,
}

#[grosr::record]
struct GrosrQueue {
    x: u32,
}

fn main() {}
