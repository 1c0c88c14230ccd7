//! What happens to a process whose task never returns: the job's wait times out, `stop` reports
//! that the scheduler did not exit, dropping the runtime leaks its memory, and the process exits.
//! Each step is printed as it starts, so a step that blocks is the last line printed.
//!
//! `cargo run --release --example stuck_task` (a GPU; run it under `timeout`)

use std::process::ExitCode;
use std::time::{Duration, Instant};

use grosr::{DeviceBuffer, DevicePtr, Runtime};

/// Spins until its flag is set, which nobody does.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    while (*(volatile uint32_t*)task.flag == 0u) __nanosleep(1000);
"#
)]
pub struct Stuck {
    /// The flag it waits for.
    pub flag: DevicePtr<u32>,
    /// Keeps the record 16 bytes.
    pub pad: u64,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The message, then each cause it does not already quote.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                if !text.contains(&s.to_string()) {
                    text += &format!("\n  caused by: {s}");
                }
                source = s.source();
            }
            eprintln!("stuck_task: {text}");
            ExitCode::FAILURE
        }
    }
}

/// "ok", or the error's message.
fn outcome(r: grosr::Result<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("error: {e}"),
    }
}

fn run() -> grosr::Result<()> {
    let start = Instant::now();
    let step = |what: &str| eprintln!("[{:7.2} s] {what}", start.elapsed().as_secs_f64());
    step("building the runtime");
    let rt = Runtime::builder().task::<Stuck>().build()?;
    let flag = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
    step("submitting the stuck task");
    let job = rt.submit(&[Stuck {
        flag: flag.ptr(),
        pad: 0,
    }])?;
    step("waiting 1 s for it");
    step(&format!(
        "wait: {}",
        outcome(job.wait_timeout(Duration::from_secs(1)))
    ));
    step("stopping the scheduler");
    step(&format!("stop: {}", outcome(rt.stop())));
    step("dropping the job and the runtime");
    drop(job);
    drop(rt);
    step("dropping the flag's buffer");
    drop(flag);
    step("returning from main");
    Ok(())
}
