//! The WHILE-graph BFS with `cudaGraphSetConditional` left for the driver to resolve in a
//! whole-program NVRTC CUBIN (no libcudadevrt.a). A test binary of its own: if the driver did
//! load such a module but not resolve the call, the fault would poison this process's context.
//! Whether the route works is the driver's to say: "not available" passes (and prints why); a
//! module that loads must give exact levels.
//! `cargo test --release --test gpu_while_direct -- --ignored --nocapture`.

use grosr_lab::bfs::gpu::{self, BfsOptions, DeviceGraph};
use grosr_lab::bfs::while_graph::{WhileBfs, WhileGraph, WhileRoute, default_grid};
use grosr_lab::bfs::{cpu_bfs, generate, validate};

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn while_graph_direct_route_works_or_says_why_not() {
    let rt = gpu::builder().build().expect("runtime");
    let g = generate::kronecker(11, 2).unwrap();
    let root = generate::sample_roots(&g, 1, 3)[0];
    let dg = DeviceGraph::upload(&rt, &g, BfsOptions::default()).unwrap();
    rt.stop().unwrap();
    let run = (|| -> grosr_lab::Result<Option<grosr_lab::bfs::BfsRun>> {
        let w = match WhileBfs::new(&rt, WhileRoute::Direct) {
            Ok(w) => w,
            Err(e @ grosr_lab::Error::Grosr(grosr::Error::Unsupported(_))) => {
                eprintln!("direct route: {e}");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        eprintln!("direct route works: {}", w.how());
        let b = rt.baselines()?;
        let wg = WhileGraph::new(&w, &dg, default_grid(rt.info().sms_used))?;
        Ok(Some(wg.bfs(&b, root)?))
    })();
    rt.start().unwrap();
    if let Some(run) = run.unwrap() {
        assert_eq!(run.level, cpu_bfs(&g, root).unwrap().1);
        validate(&g, root, &run.parent, Some(&run.level)).unwrap();
    }
}
