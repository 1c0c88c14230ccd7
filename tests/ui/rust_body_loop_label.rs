// A labelled loop and a `break` to its label: each refused at its place.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    'rows: for i in 0..task.n {
        for j in 0..task.n {
            if i * j > task.n {
                break 'rows;
            }
        }
    }
    ctx.fail(1);
})]
struct Labelled {
    n: u32,
}

fn main() {}
