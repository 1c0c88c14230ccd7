//! `cargo bench --bench bfs`: one BFS on the resident scheduler and with one launch per level,
//! on a Kronecker graph, a grid and a chain (results validated before anything is timed).

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use grosr_lab::bfs::generate::{chain, grid, kronecker, sample_roots};
use grosr_lab::bfs::gpu::{self, BfsOptions, DeviceGraph};
use grosr_lab::bfs::{Csr, validate};

fn bfs(c: &mut Criterion) {
    let rt = match gpu::builder().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bfs bench skipped: {e}");
            return;
        }
    };
    let sms = rt.info().sms_used;
    let graphs: Vec<(&str, Csr)> = vec![
        ("kronecker_s18", kronecker(18, 1).unwrap()),
        ("grid_1024", grid(1024, 1024).unwrap()),
        ("chain_100k", chain(100_000)),
    ];
    for (name, g) in &graphs {
        let dg = DeviceGraph::upload(&rt, g, BfsOptions::default()).unwrap();
        let root = sample_roots(g, 1, 7)[0];
        let run = dg.bfs_resident(&rt, root).unwrap();
        let depth = validate(g, root, &run.parent, Some(&run.level)).unwrap();
        let edges = grosr_lab::bfs::traversed_edges(g, &depth);
        let mut group = c.benchmark_group(format!("bfs_{name}"));
        group.throughput(Throughput::Elements(edges));
        group.measurement_time(Duration::from_secs(5));
        group.sample_size(10);
        group.bench_function("resident", |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| dg.bfs_resident(&rt, root).unwrap().time)
                    .sum()
            })
        });
        rt.stop().unwrap();
        {
            let base = rt.baselines().unwrap();
            let run = dg.bfs_level_sync(&base, sms, root).unwrap();
            validate(g, root, &run.parent, Some(&run.level)).unwrap();
            group.bench_function("level_sync", |b| {
                b.iter_custom(|n| {
                    (0..n)
                        .map(|_| dg.bfs_level_sync(&base, sms, root).unwrap().time)
                        .sum()
                })
            });
        }
        rt.start().unwrap();
        group.finish();
    }
}

criterion_group!(benches, bfs);
criterion_main!(benches);
