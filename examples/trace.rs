//! A timeline of a small program, for Perfetto: `cargo run --release --example trace` runs the
//! quickstart's tasks and a task graph with tracing on and writes `grosr-trace.json` (or the path
//! given); `GROSR_BACKEND=cpu` runs it without a GPU. Open it at <https://ui.perfetto.dev> ("Open
//! trace file"): a track per scheduler warp and lane (on the CPU backend, per worker thread)
//! with a slice per task and an arrow to each task from its spawner, the graph predecessor that
//! released it or the host's submit; the host's submits, waits and graph runs on host tracks;
//! a counter of queued tasks (and of heap bytes, when tasks allocate: these do not).

#[path = "quickstart.rs"]
mod quickstart;

use std::time::Duration;

use grosr::DeviceBuffer;
use grosr::graph::{Strategy, TaskGraph};
use quickstart::{Square, Squares};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "grosr-trace.json".into());
    let rt = quickstart::builder().trace(1 << 16).build()?;
    let sum = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1)?;
    // A spawn tree: one warp task, 1000 lane tasks.
    rt.submit(&[Squares {
        sum: sum.ptr(),
        first: 1,
        count: 1000,
    }])?
    .wait()?;
    // A small graph: two warp tasks, then a lane task after both.
    let mut g = TaskGraph::new();
    let a = g.add(Squares {
        sum: sum.ptr(),
        first: 1,
        count: 40,
    });
    let b = g.add(Squares {
        sum: sum.ptr(),
        first: 41,
        count: 40,
    });
    let c = g.add(Square {
        sum: sum.ptr(),
        x: 0,
        pad: 0,
    });
    g.add_edge(a, c)?;
    g.add_edge(b, c)?;
    g.prepare(&rt, Strategy::Resident)?
        .run(Duration::from_secs(10))?;
    let n = 1000u64;
    let want = n * (n + 1) * (2 * n + 1) / 6 + 80 * 81 * 161 / 6;
    let got = sum.to_vec()?[0];
    if got != want {
        return Err(format!("the sum is {got}, not {want}").into());
    }
    let trace = rt.trace()?;
    trace.write_chrome_json(&path)?;
    println!(
        "{} tasks on {} tracks ({} dropped), checked sum {got}: open {path} at https://ui.perfetto.dev",
        trace.tasks.len(),
        trace.tracks.len(),
        trace.dropped
    );
    Ok(())
}
