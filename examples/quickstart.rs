//! Two task types with Rust bodies, one spawning the other: on the GPU with
//! `cargo run --release --example quickstart`, on host threads (no GPU needed) with
//! `GROSR_BACKEND=cpu cargo run --release --example quickstart`.

use std::process::ExitCode;

use grosr::{Backend, DeviceBuffer, DevicePtr, Runtime, RuntimeBuilder};

/// A warp task: its 32 lanes spawn one `Square` per number in [first, first + count).
#[grosr::task(rust = |task, ctx| {
    for i in (ctx.lane()..task.count).step_by(ctx.width() as usize) {
        ctx.spawn(Square { sum: task.sum, x: task.first + i, pad: 0u32 });
    }
})]
pub struct Squares {
    pub sum: DevicePtr<u64>,
    pub first: u32,
    pub count: u32,
}

/// A one-lane task: adds x² to the sum.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.atomic_add(task.sum, 0u32, (task.x as u64) * (task.x as u64));
})]
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
    match rt.backend() {
        Backend::Cpu => println!("{}: the CPU backend", info.device),
        _ => println!(
            "{} (sm_{}), {} scheduler blocks on {} SMs",
            info.device, info.arch, info.grid_blocks, info.sms_used
        ),
    }

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
