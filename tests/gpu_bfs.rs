//! BFS on a real GPU: the resident BFS (its CUDA bodies and their Rust twins) and the
//! level-synchronous baseline on graphs of several shapes, levels equal to the CPU BFS's,
//! parents valid under the Graph500 rules; and the
//! CUDA-graph WHILE-node baseline (`while_*`, linked with the toolkit's libcudadevrt.a).
//! Run on the GPU machine with `cargo test --release --test gpu_bfs -- --ignored`.

use grosr_lab::bfs::generate::{chain, grid, kronecker, sample_roots, star};
use grosr_lab::bfs::gpu::{self, BfsOptions, Bodies, DeviceGraph};
use grosr_lab::bfs::while_graph::{WhileBfs, WhileGraph, WhileRoute, default_grid, find_cudadevrt};
use grosr_lab::bfs::{BfsRun, Csr, cpu_bfs, validate};

/// Runs both GPU strategies (the resident one with either bodies) from each root and checks
/// them against the CPU BFS.
fn check(g: &Csr, roots: &[u32], opts: BfsOptions) {
    let rt = gpu::builder().build().expect("runtime");
    let dg = DeviceGraph::upload(&rt, g, opts).unwrap();
    let mut runs = Vec::new();
    for &root in roots {
        runs.push((root, "resident", dg.bfs_resident(&rt, root).unwrap()));
        let rust = dg.bfs_resident_with(&rt, root, Bodies::Rust).unwrap();
        runs.push((root, "resident, Rust bodies", rust));
    }
    rt.stop().unwrap();
    {
        let b = rt.baselines().unwrap();
        for &root in roots {
            let run = dg.bfs_level_sync(&b, rt.info().sms_used, root).unwrap();
            runs.push((root, "level-sync", run));
        }
    }
    rt.start().unwrap();
    for (root, what, run) in runs {
        assert_matches_cpu(g, root, what, &run);
    }
    // The runtime still runs ordinary work after the baselines.
    let again = dg.bfs_resident(&rt, roots[0]).unwrap();
    assert_eq!(again.level, cpu_bfs(g, roots[0]).unwrap().1);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn kronecker_scale_14() {
    let g = kronecker(14, 3).unwrap();
    check(&g, &sample_roots(&g, 4, 1), BfsOptions::default());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn kronecker_with_tiny_edge_chunks_exercises_bfs_edges_tasks() {
    let g = kronecker(12, 5).unwrap();
    let opts = BfsOptions {
        big: 32,
        edge_chunk: 32,
        local_limit: 0,
    };
    check(&g, &sample_roots(&g, 3, 2), opts);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn grid_256() {
    let g = grid(256, 256).unwrap();
    check(&g, &[0, 256 * 128 + 77], BfsOptions::default());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn chain_100k_from_an_end_and_the_middle() {
    let g = chain(100_000);
    check(&g, &[0, 50_000], BfsOptions::default());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn star_with_one_huge_degree_vertex() {
    let g = star(300_000);
    check(&g, &[0, 12_345], BfsOptions::default());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn disconnected_graph_leaves_other_components_unreached() {
    // A grid, a chain and isolated vertices side by side.
    let mut edges = Vec::new();
    let gr = grid(40, 40).unwrap();
    for u in 0..gr.vertices() {
        edges.extend(gr.neighbours(u).iter().map(|&v| (u, v)));
    }
    edges.extend((1600..1999).map(|v| (v, v + 1)));
    let g = Csr::from_edges(2100, &edges);
    check(&g, &[5, 1700], BfsOptions::default());
}

/// Levels equal to the CPU BFS's and Graph500-valid parents.
fn assert_matches_cpu(g: &Csr, root: u32, what: &str, run: &BfsRun) {
    let (_, want) = cpu_bfs(g, root).unwrap();
    let bad = (0..want.len()).find(|&v| want[v] != run.level[v]);
    assert!(
        bad.is_none(),
        "{what} from {root}: vertex {} has level {} (CPU: {})",
        bad.unwrap(),
        run.level[bad.unwrap()],
        want[bad.unwrap()]
    );
    validate(g, root, &run.parent, Some(&run.level))
        .unwrap_or_else(|e| panic!("{what} from {root}: {e}"));
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn while_graph_matches_the_cpu_on_a_grid_a_kronecker_graph_and_a_chain() {
    // The only accepted reason to skip: the toolkit's device runtime library is absent.
    let Some(lib) = find_cudadevrt() else {
        eprintln!(
            "skipping: libcudadevrt.a not found (set CUDA_HOME or GROSR_CUDADEVRT); the WHILE \
             graph's device-runtime link cannot be tested here"
        );
        return;
    };
    eprintln!("linking with {}", lib.display());
    let rt = gpu::builder().build().expect("runtime");
    let sms = rt.info().sms_used;
    let cases = [
        {
            let g = grid(64, 64).unwrap();
            (g, vec![0, 64 * 32 + 17], "grid 64x64")
        },
        {
            let g = kronecker(12, 3).unwrap();
            let roots = sample_roots(&g, 3, 5);
            (g, roots, "Kronecker SCALE 12")
        },
        (chain(3000), vec![0, 1500], "chain 3000"),
    ];
    let uploaded: Vec<DeviceGraph> = cases
        .iter()
        .map(|(g, _, _)| DeviceGraph::upload(&rt, g, BfsOptions::default()).unwrap())
        .collect();
    rt.stop().unwrap();
    let runs = (|| -> grosr_lab::Result<Vec<(usize, u32, BfsRun)>> {
        let w = WhileBfs::new(&rt, WhileRoute::DeviceRuntime)?;
        eprintln!("WHILE module: {}", w.how());
        let b = rt.baselines()?;
        let mut runs = Vec::new();
        for (i, ((_, roots, _), dg)) in cases.iter().zip(&uploaded).enumerate() {
            let wg = WhileGraph::new(&w, dg, default_grid(sms))?;
            for &root in roots {
                runs.push((i, root, wg.bfs(&b, root)?));
                // Relaunching the same executable graph from the same root gives the same levels.
                let again = wg.bfs(&b, root)?;
                assert_eq!(again.level, runs.last().unwrap().2.level);
            }
        }
        Ok(runs)
    })();
    rt.start().unwrap();
    for (i, root, run) in runs.unwrap() {
        let (g, _, label) = &cases[i];
        assert_matches_cpu(g, root, &format!("WHILE graph on {label}"), &run);
    }
    // The runtime still runs ordinary work after the WHILE graphs.
    let again = uploaded[0].bfs_resident(&rt, 0).unwrap();
    assert_eq!(again.level, cpu_bfs(&cases[0].0, 0).unwrap().1);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn while_graph_with_a_small_grid_still_covers_wide_frontiers() {
    if find_cudadevrt().is_none() {
        eprintln!("skipping: libcudadevrt.a not found (set CUDA_HOME or GROSR_CUDADEVRT)");
        return;
    }
    let rt = gpu::builder().build().expect("runtime");
    let g = kronecker(13, 9).unwrap();
    let roots = sample_roots(&g, 2, 4);
    let dg = DeviceGraph::upload(&rt, &g, BfsOptions::default()).unwrap();
    rt.stop().unwrap();
    let runs = (|| -> grosr_lab::Result<Vec<(u32, BfsRun)>> {
        let w = WhileBfs::new(&rt, WhileRoute::DeviceRuntime)?;
        let b = rt.baselines()?;
        // One block: every level is a grid-stride loop over the whole frontier.
        let wg = WhileGraph::new(&w, &dg, 1)?;
        roots.iter().map(|&r| Ok((r, wg.bfs(&b, r)?))).collect()
    })();
    rt.start().unwrap();
    for (root, run) in runs.unwrap() {
        assert_matches_cpu(&g, root, "WHILE graph (1 block)", &run);
    }
}
