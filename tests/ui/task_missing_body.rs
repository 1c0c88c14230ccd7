#[grosr::task]
struct NoBody {
    x: u32,
}

#[grosr::task(granularity = "lane")]
struct StillNoBody {
    x: u32,
}

fn main() {
    // The struct and its impls still exist, so this use reports nothing more.
    let _ = <NoBody as grosr::Task>::GRANULARITY;
}
