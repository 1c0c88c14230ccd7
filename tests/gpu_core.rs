//! The resident core on a real GPU: submission, spawning, completion, errors and faults.
//! Run on the GPU machine with `bash .gpu/run tests` (they are ignored elsewhere). The checks
//! of `tests/common/suite.rs` run here and on the CPU backend (tests/cpu_suite.rs).

mod common;

use std::time::Duration;

use common::suite::{self, T, assert_runtime_runs_tasks, fib};
use common::*;
use grosr::{DeviceBuffer, Error, Runtime};

fn new_rt() -> Runtime {
    common::builder().build().expect("runtime")
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_million_tasks_from_eight_host_threads_each_run_exactly_once() {
    suite::a_million_tasks_from_eight_host_threads_each_run_exactly_once(&new_rt());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn executed_counts_carry_across_a_stop_and_a_start() {
    suite::executed_counts_carry_across_a_stop_and_a_start(&new_rt());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_recursive_spawn_tree_computes_fibonacci() {
    suite::a_recursive_spawn_tree_computes_fibonacci(&new_rt());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_chain_of_100k_dependent_spawns_runs_every_hop() {
    suite::a_chain_of_100k_dependent_spawns_runs_every_hop(&new_rt());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn held_lane_chains_of_two_types_run_every_hop_once_and_count_it() {
    // Allocated before the scheduler starts, so compute-sanitizer can run this test (it flags
    // a running kernel's accesses to stream-ordered allocations made after its launch).
    let gpu = grosr::Gpu::open(0).unwrap();
    let len = (suite::HELD_CHAINS * suite::HELD_LEN) as usize;
    let hits = DeviceBuffer::<u32>::zeroed(&gpu, len).unwrap();
    suite::held_lane_chains_run_every_hop_once_and_count_it(&new_rt(), &hits);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn block_tasks_run_on_whole_blocks_from_host_and_from_spawns() {
    block_tasks_run_on_whole_blocks_from_host_and_from_spawns_on(&new_rt());
}

fn block_tasks_run_on_whole_blocks_from_host_and_from_spawns_on(rt: &Runtime) {
    let n = 200u32;
    let before = rt.executed::<BlockSum>().unwrap();
    let out = DeviceBuffer::<u32>::zeroed(rt.gpu(), 2 * n as usize).unwrap();
    let direct: Vec<BlockSum> = (0..n)
        .map(|i| BlockSum {
            out: out.ptr(),
            base: i,
            slot: i,
        })
        .collect();
    let spawned: Vec<SpawnBlock> = (0..n)
        .map(|i| SpawnBlock {
            out: out.ptr(),
            base: 1000 + i,
            slot: n + i,
        })
        .collect();
    let (a, b) = (rt.submit(&direct).unwrap(), rt.submit(&spawned).unwrap());
    a.wait_timeout(T).unwrap();
    b.wait_timeout(T).unwrap();
    let width = 256u32;
    let expect = |base: u32| (0..width).map(|l| base + l).sum::<u32>();
    let got = out.to_vec().unwrap();
    for i in 0..n as usize {
        assert_eq!(got[i], expect(i as u32), "direct block task {i}");
        assert_eq!(
            got[n as usize + i],
            expect(1000 + i as u32),
            "spawned block task {i}"
        );
    }
    assert_eq!(rt.executed::<BlockSum>().unwrap() - before, 2 * n as u64);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_failing_task_fails_its_job_only() {
    suite::a_failing_task_fails_its_job_only(&new_rt());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn an_unknown_kind_is_reported_and_the_runtime_goes_on() {
    let rt = new_rt();
    let err = rt
        .submit_raw(999, 8, &[0u8; 16])
        .unwrap()
        .wait_timeout(T)
        .unwrap_err();
    assert_eq!(err, Error::UnknownKind(999));
    assert_runtime_runs_tasks(&rt);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn overflowing_queues_fail_the_job_loudly_and_the_runtime_goes_on() {
    let rt = common::builder()
        .queue_capacity(64)
        .max_sms(2)
        .build()
        .unwrap();
    let err = rt
        .submit(&[Bomb { depth: 4 }])
        .unwrap()
        .wait_timeout(T)
        .unwrap_err();
    assert_eq!(err, Error::QueueOverflow("Bomb".into()));
    assert_runtime_runs_tasks(&rt);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn stop_abandons_work_and_start_runs_again() {
    suite::stop_refuses_submits_and_start_runs_again(&new_rt());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_second_runtime_that_cannot_fit_is_refused() {
    let first = new_rt();
    let err = common::builder().build().expect_err("the GPU is full");
    assert!(matches!(err, Error::DoesNotFit(_)), "{err}");
    let flags = DeviceBuffer::<u32>::zeroed(first.gpu(), 1).unwrap();
    first
        .submit(&[mark(&flags, 0)])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    assert_eq!(flags.to_vec().unwrap(), vec![1]);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_capped_scheduler_leaves_sms_for_ordinary_kernels() {
    let sms = grosr::Gpu::open(0).unwrap().sm_count;
    let rt = common::builder().max_sms(sms / 2).build().unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 2).unwrap();
    rt.submit(&[mark(&flags, 0)])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    // An ordinary kernel (the same task body, host-launched) runs while the scheduler runs.
    let base = rt.baselines().unwrap();
    base.launch_single(&mark(&flags, 1)).unwrap();
    base.sync(T).unwrap();
    base.status().unwrap();
    assert!(rt.is_running());
    assert_eq!(flags.to_vec().unwrap(), vec![1, 1]);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn jobs_report_done_and_empty_jobs_are_done_at_once() {
    suite::jobs_report_done_and_empty_jobs_are_done_at_once(&new_rt());
}

/// Every kind of task in one runtime whose buffers all exist before the scheduler launches:
/// compute-sanitizer's memcheck only knows allocations made before a kernel starts, so this is
/// the test to run under it (`compute-sanitizer --tool memcheck|racecheck gpu_core --ignored
/// --exact mixed_workload_with_buffers_allocated_before_launch`).
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn mixed_workload_with_buffers_allocated_before_launch() {
    mixed_workload_built_by(common::builder());
}

/// The same, optimized for compile time: with every buffer allocated before the launch,
/// compute-sanitizer can check the code `Optimize::Compile`'s fast-compile level generates
/// (benches/gpu_checks.sh).
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn mixed_workload_optimized_for_compile_time_with_buffers_allocated_before_launch() {
    mixed_workload_built_by(common::builder().optimize(grosr::Optimize::Compile));
}

fn mixed_workload_built_by(builder: grosr::RuntimeBuilder) {
    let gpu = grosr::Gpu::open(0).unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(&gpu, 4096).unwrap();
    let sum = DeviceBuffer::<u64>::zeroed(&gpu, 1).unwrap();
    let hops = DeviceBuffer::<u32>::zeroed(&gpu, 1).unwrap();
    let blocks = DeviceBuffer::<u32>::zeroed(&gpu, 64).unwrap();
    let rt = builder.build().expect("runtime");
    let marks: Vec<Mark> = (0..4096).map(|index| mark(&flags, index)).collect();
    let spawn_blocks: Vec<SpawnBlock> = (0..64)
        .map(|i| SpawnBlock {
            out: blocks.ptr(),
            base: i,
            slot: i,
        })
        .collect();
    let jobs = [
        rt.submit(&marks).unwrap(),
        rt.submit(&[Fib {
            n: 15,
            pad: 0,
            sum: sum.ptr(),
        }])
        .unwrap(),
        rt.submit(&[Chain {
            remaining: 1000,
            pad: 0,
            hops: hops.ptr(),
        }])
        .unwrap(),
        rt.submit(&spawn_blocks).unwrap(),
    ];
    for j in &jobs {
        j.wait_timeout(T).unwrap();
    }
    let failed = rt
        .submit(&[Failer { code: 3, pad: 0 }])
        .unwrap()
        .wait_timeout(T);
    assert_eq!(
        failed,
        Err(Error::TaskFailed {
            task: "Failer".into(),
            code: 3
        })
    );
    assert!(flags.to_vec().unwrap().iter().all(|&f| f == 1));
    assert_eq!(sum.to_vec().unwrap()[0], fib(15));
    assert_eq!(hops.to_vec().unwrap()[0], 1001);
    let got = blocks.to_vec().unwrap();
    for (i, g) in got.iter().enumerate() {
        assert_eq!(
            *g,
            (0..256u32).map(|l| i as u32 + l).sum::<u32>(),
            "block task {i}"
        );
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn copies_from_many_new_threads_finish_while_the_scheduler_runs() {
    // Each new thread would copy on a per-thread stream of its own: with 40 such threads, copies
    // stopped finishing while the scheduler ran (H200), so copies go through the runtime's
    // copy streams (grosr/src/copy_streams.rs). A stuck copy fails the test, it does not hang it.
    let rt = new_rt();
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..64u32)
            .map(|t| {
                let (rt, done) = (&rt, &done);
                s.spawn(move || {
                    let data: Vec<u32> = (0..1000).map(|i| i * 64 + t).collect();
                    let buf = DeviceBuffer::from_slice(rt.gpu(), &data).unwrap();
                    assert_eq!(buf.to_vec().unwrap(), data, "thread {t}");
                    assert_runtime_runs_tasks(rt);
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while threads.iter().any(|h| !h.is_finished()) {
            if std::time::Instant::now() > deadline {
                let _ = rt.stop(); // lets stuck copies finish, so the scope can end
                panic!(
                    "{} of 64 threads unfinished after 30 s",
                    64 - done.load(std::sync::atomic::Ordering::Relaxed)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    assert_eq!(done.into_inner(), 64);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn spawn_bursts_past_the_stack_run_every_task_exactly_once() {
    suite::spawn_bursts_past_the_stack_run_every_task_exactly_once(&new_rt());
}

/// `Optimize::Tiered` in a fresh cache folder: the first build runs the fast compile and starts
/// `Speed` in the background; once `Speed` is in the folder, a later build loads and runs it.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_tiered_build_runs_the_fast_compile_until_speed_is_in_the_cache() {
    struct Folder(std::path::PathBuf);
    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let folder =
        Folder(std::env::temp_dir().join(format!("grosr-tiered-gpu-{}", std::process::id())));
    let dir = folder.0.clone();
    let _ = std::fs::remove_dir_all(&dir);
    let build = || {
        Runtime::builder()
            .task::<Mark>()
            .cache_dir(&dir)
            .optimize(grosr::Optimize::Tiered)
            .build()
            .unwrap()
    };
    let marks_run = |rt: &Runtime| {
        let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 64).unwrap();
        let marks: Vec<Mark> = (0..64)
            .map(|index| Mark {
                flags: flags.ptr(),
                index,
                pad: 0,
            })
            .collect();
        rt.submit(&marks).unwrap().wait_timeout(T).unwrap();
        assert_eq!(flags.to_vec().unwrap(), vec![1; 64]);
    };
    let first = build();
    let s = first.info().startup;
    assert_eq!(first.info().optimize, grosr::Optimize::Tiered);
    if grosr::unstable::nvrtc_version().unwrap() < (12, 8) {
        assert_eq!(s.tier, grosr::Optimize::Speed, "{s:?}");
        return;
    }
    assert_eq!(s.tier, grosr::Optimize::Compile, "{s:?}");
    assert!(s.optimizing && !s.cached, "{s:?}");
    // Entries in the folder, `Compile`'s and then `Speed`'s (the cache writes an entry whole,
    // by rename, so a counted one is complete).
    let entries = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "entry"))
            })
            .count()
    };
    marks_run(&first);
    drop(first);
    // Bounded: this module's `Speed` takes seconds.
    let waited = std::time::Instant::now();
    while entries() < 2 {
        assert!(
            waited.elapsed() < Duration::from_secs(300),
            "{} entries after 300 s: Speed never reached the cache",
            entries()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let later = build();
    let s = later.info().startup;
    assert_eq!(s.tier, grosr::Optimize::Speed, "{s:?}");
    assert!(s.cached && !s.optimizing, "{s:?}");
    marks_run(&later);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_build_says_where_its_start_up_time_went_and_a_second_loads_the_cached_module() {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let first = new_rt();
    let before = first.info().startup;
    assert_runtime_runs_tasks(&first);
    drop(first);
    let rt = new_rt();
    let s = rt.info().startup;
    eprintln!(
        "cached start (ms): context {:.1}, lookup {:.1}, load {:.1}, memory {:.1}, launch {:.1}; beyond the context {:.1}",
        ms(s.context),
        ms(s.compile),
        ms(s.load),
        ms(s.memory),
        ms(s.launch),
        ms(s.compile + s.load + s.memory + s.launch)
    );
    assert_eq!(s.source_bytes, common::builder().source().len());
    // At the default, Optimize::Tiered, the second build loads `Speed` if the first one's
    // background compile stored it meanwhile, else the first one's module.
    assert!(s.module_bytes > 1024, "{s:?}");
    assert!(
        s.module_bytes == before.module_bytes
            || (before.tier, s.tier) == (grosr::Optimize::Compile, grosr::Optimize::Speed),
        "{before:?} then {s:?}"
    );
    for (what, d) in [
        ("load", s.load),
        ("launch", s.launch),
        ("context", s.context),
    ] {
        assert!(d > Duration::ZERO, "{what} took no time: {s:?}");
    }
    // The runner hands the tests a compile cache folder: the second build must have used it.
    if std::env::var_os("GROSR_CACHE_DIR").is_some_and(|d| !d.is_empty()) {
        assert!(
            s.cached,
            "a cache folder was set but the module was compiled again: {s:?}"
        );
    }
    assert_runtime_runs_tasks(&rt);
}

/// `Optimize::Compile` (NVRTC's fast-compile level: ptxas schedules and allocates differently)
/// runs the same tasks exactly: host submits from many threads, spawn trees, a long chain (the
/// bypass), block tasks, and spawn bursts past the stack, on one runtime.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_module_optimized_for_compile_time_runs_every_path_exactly() {
    let rt = common::builder()
        .optimize(grosr::Optimize::Compile)
        .build()
        .expect("runtime");
    assert_eq!(rt.info().optimize, grosr::Optimize::Compile);
    suite::a_million_tasks_from_eight_host_threads_each_run_exactly_once(&rt);
    suite::a_recursive_spawn_tree_computes_fibonacci(&rt);
    suite::a_chain_of_100k_dependent_spawns_runs_every_hop(&rt);
    block_tasks_run_on_whole_blocks_from_host_and_from_spawns_on(&rt);
    suite::spawn_bursts_past_the_stack_run_every_task_exactly_once(&rt);
}

/// A lowered graph run that times out leaves its kernels running: dropping the prepared graph
/// waits for them before their records, the launchers' status word or a CUDA graph go, a buffer
/// the spinning kernel writes, dropped meanwhile, is freed only once the kernel has ended, and
/// the runtime goes on (under compute-sanitizer memcheck: no access to freed memory).
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_timed_out_lowered_run_is_waited_for_before_its_memory_goes() {
    use grosr::graph::{Strategy, TaskGraph};
    let rt = new_rt();
    rt.stop().unwrap();
    for strategy in [Strategy::Fused, Strategy::CudaGraph, Strategy::Batched] {
        let seen = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
        let after = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
        let mut g = TaskGraph::new();
        let spin = g.add(Spin {
            seen: seen.ptr(),
            max_ns: 300_000_000,
        });
        let next = g.add(Spin {
            seen: after.ptr(),
            max_ns: 0,
        });
        g.add_edge(spin, next).unwrap();
        let mut p = g.prepare(&rt, strategy).unwrap();
        let r = p.run(Duration::from_millis(20));
        assert!(matches!(r, Err(Error::Timeout(..))), "{strategy:?}: {r:?}");
        drop(seen); // still written by the spinning kernel: freed once it has ended
        // Were `seen` freed now, this would likely take its block, and the kernel's last write
        // would land here.
        let probe = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
        drop(p);
        assert_eq!(
            after.to_vec().unwrap(),
            vec![2],
            "{strategy:?}: the launch had ended when the drop returned"
        );
        assert_eq!(
            probe.to_vec().unwrap(),
            vec![0],
            "{strategy:?}: no write into freed memory"
        );
    }
    rt.start().unwrap();
    assert_runtime_runs_tasks(&rt);
}
