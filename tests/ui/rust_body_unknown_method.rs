// A method on a value that the subset does not translate (a real `u32` method, so rustc accepts
// it): refused at the method's name.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let z = task.n.leading_zeros();
    ctx.fail(z as i32);
})]
struct LeadingZeros {
    n: u32,
}

fn main() {}
