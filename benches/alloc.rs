//! `cargo bench --bench alloc`: grosr's device heap next to CUDA's device malloc and a per-thread
//! pool, same process, same shapes (the report's allocator section runs the full set).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use grosr_lab::workloads::alloc::{self as bench, AllocBench, Allocator};

fn alloc(c: &mut Criterion) {
    let gpu = match grosr::Gpu::open(0) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("alloc bench skipped: {e}");
            return;
        }
    };
    if let Err(e) = bench::set_cuda_malloc_heap(&gpu, 1 << 30) {
        eprintln!("alloc bench skipped: {e}");
        return;
    }
    let rt = match bench::builder(2 << 30).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("alloc bench skipped: {e}");
            return;
        }
    };
    let mut b = AllocBench::new(&rt).unwrap();
    let iters = 200u32;
    for shape in bench::SEED_SHAPES.iter().chain(bench::MORE_SHAPES.iter()) {
        let mut g = c.benchmark_group(format!("alloc/{}", shape.name));
        g.sample_size(10);
        for a in [
            Allocator::Grosr,
            Allocator::ThreadPool,
            Allocator::CudaMalloc,
        ] {
            let kernel = match a {
                Allocator::Grosr => "bench_loop_grosr",
                Allocator::CudaMalloc => "bench_loop_cuda",
                Allocator::ThreadPool => "bench_loop_pool",
            };
            let threads = b.full_threads(kernel).unwrap();
            // CUDA's malloc is about 1000× slower: fewer iterations keep the bench short.
            let n = if a == Allocator::CudaMalloc { 2 } else { iters };
            // Checked once (every block written and verified) before timing.
            b.run(a, shape, threads, n).unwrap();
            g.throughput(Throughput::Elements(threads as u64 * n as u64));
            g.bench_function(format!("{a:?}"), |bn| {
                bn.iter(|| b.run(a, shape, threads, n).unwrap())
            });
        }
        g.finish();
    }
}

criterion_group!(benches, alloc);
criterion_main!(benches);
