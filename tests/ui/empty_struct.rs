#[grosr::record]
struct Unit;

#[grosr::task(cuda = "")]
struct Empty {}

fn main() {}
