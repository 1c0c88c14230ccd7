#[grosr::task(cuda = "task.x[0] = 1.0f;")]
struct RawPointer {
    x: *const f32,
    y: *mut f32,
}

fn main() {}
