//! `cargo bench --bench graph`: task graphs under every dispatch strategy, one criterion group per
//! workload, the strategies as the functions compared. Each strategy's results are checked once
//! (on fresh inputs) before it is timed; preparation (upload, instantiation) is not timed here
//! (the report prints it separately).

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use grosr::graph::{Strategy, TaskGraph};
use grosr::{DeviceBuffer, Runtime};
use grosr_lab::workloads::graphs::{Checks, check_pairs, pingpong_graph, throughput_graph};
use grosr_lab::workloads::relu_softmax::{Matrix, TOLERANCE};
use grosr_lab::{Error, workloads};

const WAIT: Duration = Duration::from_secs(120);

/// Benchmarks `graph` under every strategy in group `name`; `reset` clears outputs before the
/// one checked run and `check` verifies it.
fn group(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    graph: &TaskGraph,
    elements: u64,
    checks: &Checks<'_>,
) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(elements));
    g.sample_size(20);
    for s in Strategy::ALL {
        // Per-task launches of huge graphs take minutes; the report covers them with fewer runs.
        if graph.node_count() > 20_000 && matches!(s, Strategy::Batched | Strategy::Sync) {
            continue;
        }
        let state = if s.is_resident() {
            rt.start()
        } else {
            rt.stop()
        };
        if let Err(e) = state {
            eprintln!("{name}/{}: {e}", s.name());
            continue;
        }
        let mut p = match graph.prepare(rt, s) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{name}/{} skipped: {e}", s.name());
                continue;
            }
        };
        if let Err(e) = (checks.reset)()
            .and_then(|()| Ok(p.run(WAIT)?))
            .and_then(|()| (checks.check)(s))
        {
            panic!("{name}/{}: {e}", s.name());
        }
        g.bench_function(s.name(), |b| {
            b.iter_custom(|n| {
                let t = Instant::now();
                for _ in 0..n {
                    p.run(WAIT).unwrap();
                }
                t.elapsed()
            })
        });
    }
    g.finish();
}

fn graphs(c: &mut Criterion) {
    let rt = match workloads::builder().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("graph bench skipped: {e}");
            return;
        }
    };
    for n in [1u32, 10_000] {
        let a = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize).unwrap();
        let b = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize).unwrap();
        let g = pingpong_graph(&a, &b, n).unwrap();
        let reset = || Ok(b.write(&vec![0u32; n as usize])?);
        let check = |s: Strategy| check_pairs(&b, n, s.name());
        let checks = Checks {
            reset: &reset,
            check: &check,
        };
        group(c, &rt, &format!("pingpong_{n}"), &g, n as u64, &checks);
    }
    let n = 50_000u32;
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize).unwrap();
    let g = throughput_graph(&flags, n);
    let check = |_: Strategy| {
        let ok = flags.to_vec()?.iter().all(|&f| f == 1);
        ok.then_some(())
            .ok_or_else(|| Error::Invalid("a task did not run".into()))
    };
    let reset = || Ok(flags.write(&vec![0u32; n as usize])?);
    let checks = Checks {
        reset: &reset,
        check: &check,
    };
    group(c, &rt, "throughput_50k", &g, n as u64, &checks);
    let m = Matrix::new(&rt, 5000, 256).unwrap();
    let x = std::cell::RefCell::new(Vec::new());
    let g = m.one_task_graph();
    let check = |s: Strategy| {
        let e = m.max_relative_error(&x.borrow())?;
        if e < TOLERANCE {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "{}: relative error {e:e}",
                s.name()
            )))
        }
    };
    let seed = std::cell::Cell::new(0u64);
    let reset = || {
        seed.set(seed.get() + 1);
        *x.borrow_mut() = m.randomize(seed.get())?;
        Ok(())
    };
    let checks = Checks {
        reset: &reset,
        check: &check,
    };
    group(c, &rt, "relu_softmax_5000x256", &g, 5000, &checks);
}

criterion_group!(benches, graphs);
criterion_main!(benches);
