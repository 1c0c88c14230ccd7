// A plain struct (not declared with #[grosr::record]) has no C twin.
#[derive(Clone, Copy)]
struct Plain {
    x: f32,
}

#[grosr::record]
struct HoldsPlain {
    plain: Plain,
}

// Not even Copy: still one error for the field.
struct NotCopy {
    x: f32,
}

#[grosr::task(cuda = "")]
struct HoldsNotCopy {
    value: NotCopy,
}

fn main() {}
