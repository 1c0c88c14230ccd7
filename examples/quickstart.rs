//! Two task types, one spawning the other on the GPU:
//! `cargo run --release --example quickstart`.

use std::process::ExitCode;

use grosr::{DeviceBuffer, DevicePtr, Runtime, RuntimeBuilder};

/// A warp-wide task: its 32 lanes spawn one `Square` per number in [first, first + count).
#[grosr::task(cuda = r#"
    for (uint32_t i = ctx.lane(); i < task.count; i += ctx.width())
        grosr_spawn_Square(ctx, Square{task.sum, task.first + i, 0});
"#)]
pub struct Squares {
    pub sum: DevicePtr<u64>,
    pub first: u32,
    pub count: u32,
}

/// A one-lane task: adds x² to the sum.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    atomicAdd(task.sum, (unsigned long long)task.x * task.x);
"#
)]
pub struct Square {
    pub sum: DevicePtr<u64>,
    pub x: u32,
    pub pad: u32,
}

/// The example's task types, registered (the NVRTC compile check builds this too).
pub fn builder() -> RuntimeBuilder {
    Runtime::builder().task::<Squares>().task::<Square>()
}

#[allow(dead_code)]
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The message, then each cause it does not already quote.
            let mut text = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                if !text.contains(&s.to_string()) {
                    text += &format!("\n  caused by: {s}");
                }
                source = s.source();
            }
            eprintln!("quickstart: {text}");
            ExitCode::FAILURE
        }
    }
}

#[allow(dead_code)]
fn run() -> Result<(), Box<dyn std::error::Error>> {
    let rt = builder().build()?;
    let info = rt.info();
    println!(
        "{} (sm_{}), {} scheduler blocks on {} SMs",
        info.device, info.arch, info.grid_blocks, info.sms_used
    );

    let n: u64 = 100_000;
    let sum = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1)?;
    rt.submit(&[Squares {
        sum: sum.ptr(),
        first: 1,
        count: n as u32,
    }])?
    .wait()?;

    let got = sum.to_vec()?[0];
    let expect = n * (n + 1) * (2 * n + 1) / 6;
    println!(
        "sum of squares 1..={n}: {got} (expected {expect}); {} Square tasks ran",
        rt.executed::<Square>()?
    );
    if got != expect {
        return Err(format!("wrong result: {got}, expected {expect}").into());
    }
    Ok(())
}
