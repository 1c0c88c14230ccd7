//! BFS on a real GPU: the resident BFS and the level-synchronous baseline on graphs of several
//! shapes, levels equal to the CPU BFS's, parents valid under the Graph500 rules.
//! Run on the GPU machine with `cargo test --release --test gpu_bfs -- --ignored`.

use grosr::bfs::generate::{chain, grid, kronecker, sample_roots, star};
use grosr::bfs::gpu::{self, BfsOptions, DeviceGraph};
use grosr::bfs::{Csr, cpu_bfs, validate};

/// Runs both GPU strategies from each root and checks them against the CPU BFS.
fn check(g: &Csr, roots: &[u32], opts: BfsOptions) {
    let rt = gpu::builder().build().expect("runtime");
    let dg = DeviceGraph::upload(&rt, g, opts).unwrap();
    let mut runs = Vec::new();
    for &root in roots {
        runs.push((root, "resident", dg.bfs_resident(&rt, root).unwrap()));
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
        let (_, want) = cpu_bfs(g, root);
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
    // The runtime still runs ordinary work after the baselines.
    let again = dg.bfs_resident(&rt, roots[0]).unwrap();
    assert_eq!(again.level, cpu_bfs(g, roots[0]).1);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn kronecker_scale_14() {
    let g = kronecker(14, 3);
    check(&g, &sample_roots(&g, 4, 1), BfsOptions::default());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn kronecker_with_tiny_edge_chunks_exercises_bfs_edges_tasks() {
    let g = kronecker(12, 5);
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
    let g = grid(256, 256);
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
    let gr = grid(40, 40);
    for u in 0..gr.vertices() {
        edges.extend(gr.neighbours(u).iter().map(|&v| (u, v)));
    }
    edges.extend((1600..1999).map(|v| (v, v + 1)));
    let g = Csr::from_edges(2100, &edges);
    check(&g, &[5, 1700], BfsOptions::default());
}
