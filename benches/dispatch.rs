//! `cargo bench --bench dispatch`: the resident scheduler's core costs next to the host-launched
//! baselines of the same run (one tiny task, a dependent chain, many independent tasks).

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use grosr::DeviceBuffer;
use grosr_lab::workloads::{self, Hop, Spread, Tiny};

fn timed(iters: u64, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed()
}

const WAIT: Duration = Duration::from_secs(60);

fn dispatch(c: &mut Criterion) {
    let rt = match workloads::builder().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dispatch bench skipped: {e}");
            return;
        }
    };
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1 << 20).unwrap();
    let done = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    // Results are checked by the workloads' own functions before anything is timed.
    workloads::resident_one_task(&rt, 1, 1).unwrap();
    workloads::resident_chain(&rt, 1000, 1, 1).unwrap();
    workloads::resident_host_tasks(&rt, 1 << 20, 1, 1).unwrap();
    for fanout in workloads::SPREAD_FANOUTS {
        workloads::resident_spawned_tasks(&rt, 1 << 20, fanout, 1, 1).unwrap();
    }

    let one = [Tiny {
        flags: flags.ptr(),
        index: 0,
        pad: 0,
    }];
    let hops = 100_000u32;
    let chain = [Hop {
        remaining: hops - 1,
        hop: 0,
        done: done.ptr(),
    }];
    let many = workloads::tiny_tasks(&flags, 1 << 20);
    let spread = |fanout| {
        [Spread {
            flags: flags.ptr(),
            first: 0,
            count: 1 << 20,
            fanout,
            depth: 0,
        }]
    };

    let mut g = c.benchmark_group("one_task");
    g.bench_function("resident", |b| {
        b.iter_custom(|n| timed(n, || rt.submit(&one).unwrap().wait_timeout(WAIT).unwrap()))
    });
    g.finish();
    let mut g = c.benchmark_group("chain_100k");
    g.throughput(Throughput::Elements(hops as u64))
        .sample_size(10);
    g.bench_function("resident", |b| {
        b.iter_custom(|n| timed(n, || rt.submit(&chain).unwrap().wait_timeout(WAIT).unwrap()))
    });
    g.finish();
    let mut g = c.benchmark_group("tasks_1m");
    g.throughput(Throughput::Elements(1 << 20)).sample_size(10);
    g.bench_function("resident_host", |b| {
        b.iter_custom(|n| timed(n, || rt.submit(&many).unwrap().wait_timeout(WAIT).unwrap()))
    });
    for fanout in workloads::SPREAD_FANOUTS {
        let root = spread(fanout);
        g.bench_function(format!("resident_spawned_fanout{fanout}"), |b| {
            b.iter_custom(|n| timed(n, || rt.submit(&root).unwrap().wait_timeout(WAIT).unwrap()))
        });
    }
    g.finish();

    // Baselines need the SMs the scheduler holds.
    rt.stop().unwrap();
    let base = rt.baselines().unwrap();
    let records = DeviceBuffer::from_slice(rt.gpu(), &many).unwrap();
    let mut g = c.benchmark_group("one_task");
    g.bench_function("launch_sync", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                base.launch_single(&one[0]).unwrap();
                base.sync(WAIT).unwrap();
            })
        })
    });
    g.finish();
    let mut g = c.benchmark_group("chain_100k");
    g.throughput(Throughput::Elements(hops as u64))
        .sample_size(10);
    g.bench_function("launches", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                for _ in 0..hops {
                    base.launch_single(&one[0]).unwrap();
                }
                base.sync(WAIT).unwrap();
            })
        })
    });
    g.finish();
    let mut g = c.benchmark_group("tasks_1m");
    g.throughput(Throughput::Elements(1 << 20)).sample_size(10);
    g.bench_function("bulk_kernel", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                base.launch_bulk(records.ptr(), 1 << 20).unwrap();
                base.sync(WAIT).unwrap();
            })
        })
    });
    g.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
