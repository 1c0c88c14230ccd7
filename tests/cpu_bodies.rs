//! The CPU backend (`Backend::Cpu`) runs the Rust-body tasks of tests/gpu_rust_bodies.rs on
//! host threads, with the GPU's results: a warp task's softmax row (collectives across its 32
//! lanes) against the float64 reference, a 10 000-link spawn chain counted exactly, a block
//! task's barrier; and the faults a GPU would not report as clearly: an access outside every
//! allocation or after a free, lanes meeting at different collectives, `ctx.fail`; a CUDA C body
//! is refused at build. No GPU, NVRTC or driver is needed: these run in `cargo test`.

use std::time::Duration;

use grosr::{Backend, DeviceBuffer, DevicePtr, Error, Runtime, RuntimeBuilder};

#[path = "common/rust_bodies.rs"]
mod rust_bodies;
use rust_bodies::RsChain;
#[path = "common/heap.rs"]
mod heap;

const T: Duration = Duration::from_secs(60);

fn executor(builder: RuntimeBuilder) -> Runtime {
    executor_of(builder, 2)
}

/// `builder` on the CPU backend with `threads` workers.
fn executor_of(builder: RuntimeBuilder, threads: usize) -> Runtime {
    builder
        .backend(Backend::Cpu)
        .cpu_threads(threads)
        .build()
        .unwrap()
}

fn buffer<T: bytemuck::Pod>(rt: &Runtime, data: &[T]) -> DeviceBuffer<T> {
    DeviceBuffer::from_slice(rt.gpu(), data).unwrap()
}

/// `waited` is a [`Error::BodyFault`] of `task` saying each of `says`; its message otherwise.
fn fault_of(waited: Result<(), Error>, task: &str, says: &[&str]) -> String {
    match waited {
        Err(Error::BodyFault { task: t, what }) => {
            assert_eq!(t, task, "{what}");
            for s in says {
                assert!(what.contains(s), "{what}");
            }
            what
        }
        other => panic!("{task}: {other:?}"),
    }
}

// The GPU test's checks (tests/gpu_rust_bodies.rs), on the CPU backend.

#[test]
fn every_math_method_reduction_and_atomic_computes_what_rust_does() {
    rust_bodies::every_math_method_reduction_and_atomic_computes_what_rust_does(&executor(
        rust_bodies::builder(),
    ));
}

#[test]
fn a_spawn_chain_runs_every_link_exactly_once() {
    rust_bodies::a_spawn_chain_runs_every_link_once(&executor(rust_bodies::builder()));
}

#[test]
fn a_compound_assignment_evaluates_its_value_first() {
    rust_bodies::a_compound_assignment_evaluates_its_value_first(&executor(rust_bodies::builder()));
}

#[test]
fn a_warp_softmax_row_matches_the_float64_reference() {
    rust_bodies::softmax_rows_match_the_reference(&executor(rust_bodies::builder()), 8);
}

#[test]
fn a_block_task_meets_at_its_barrier() {
    rust_bodies::a_block_task_meets_at_its_barrier(&executor(rust_bodies::builder()));
}

#[test]
fn heap_tasks_allocate_fill_and_free() {
    rust_bodies::heap_tasks_allocate_fill_and_free(&executor(rust_bodies::builder()));
}

/// Reads `x[i]` for i in 0..n into `y`, so `n` past the end reads outside the allocation.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    for i in 0..task.n {
        let v = ctx.read(task.x, i);
        ctx.write(task.y, i, v);
    }
})]
pub struct Copy {
    pub x: DevicePtr<u32>,
    pub y: DevicePtr<u32>,
    pub n: u32,
    pub pad: u32,
}

/// Lanes below 16 sum, the others take the maximum: two different collectives.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let v = if ctx.lane() < 16 {
        ctx.warp_sum(1.0f32)
    } else {
        ctx.warp_max(1.0f32)
    };
    ctx.write(task.out, ctx.lane(), v);
})]
pub struct Diverge {
    pub out: DevicePtr<f32>,
}

/// Fails its job with `code`.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.fail(task.code);
})]
pub struct Fails {
    pub code: i32,
    pub pad: u32,
}

/// A CUDA C body: only a GPU runs it (a CPU runtime refuses to build with it).
#[grosr::task(granularity = "lane", cuda = "*task.out = 1u;")]
pub struct OnlyOnGpu {
    pub out: DevicePtr<u32>,
}

/// Ballot, any, all and shuffles across a warp, each lane writing what it got.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let l = ctx.lane();
    let b = ctx.ballot(l % 3 == 0);
    let any = ctx.any(l == 31);
    let all = ctx.all(l < 32);
    let from0 = ctx.shuffle(l * 10, 0u32);
    let mirror = ctx.shuffle_xor(l, 31u32);
    let base = l * 5;
    ctx.write(task.out, base, b);
    ctx.write(task.out, base + 1, if any { 1u32 } else { 0 });
    ctx.write(task.out, base + 2, if all { 1u32 } else { 0 });
    ctx.write(task.out, base + 3, from0);
    ctx.write(task.out, base + 4, mirror);
})]
pub struct Votes {
    pub out: DevicePtr<u32>,
}

/// Lane 31 returns; the others take a maximum, which on a GPU would wait for lane 31 forever.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    if ctx.lane() == 31 {
        return;
    }
    let v = ctx.warp_max(-1.0f32);
    ctx.write(task.out, ctx.lane(), v);
})]
pub struct EarlyReturn {
    pub out: DevicePtr<f32>,
}

/// Reads past its buffer, then spins on a flag nothing sets: the fault must end it first.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let v = ctx.read(task.x, 100u32);
    while ctx.read(task.x, 0u32) == 0 {}
    ctx.write(task.x, 1u32, v);
})]
pub struct FaultThenSpin {
    pub x: DevicePtr<u32>,
}

/// Frees its allocation twice (or, with `buffer` set, frees a buffer it did not allocate).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    if task.buffer != 0 {
        ctx.free(task.x);
    } else {
        let p = ctx.alloc::<u32>(4u32);
        ctx.write(p, 0u32, 1u32);
        ctx.free(p);
        ctx.free(p);
    }
})]
pub struct FreeTwice {
    pub x: DevicePtr<u32>,
    pub buffer: u32,
    pub pad: u32,
}

/// Spawns itself forever.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.spawn(Forever { n: task.n + 1, pad: 0u32 });
})]
pub struct Forever {
    pub n: u32,
    pub pad: u32,
}

fn faults() -> RuntimeBuilder {
    grosr::Runtime::builder()
        .task::<Copy>()
        .task::<Diverge>()
        .task::<Fails>()
        .task::<Votes>()
        .task::<EarlyReturn>()
        .task::<FaultThenSpin>()
        .task::<Forever>()
        .task::<FreeTwice>()
}

#[test]
fn freeing_twice_or_freeing_a_buffer_fails_the_job() {
    let ex = executor(faults());
    let x = buffer(&ex, &[0u32; 4]);
    for buffer in [0u32, 1] {
        let job = ex.submit(&[FreeTwice {
            x: x.ptr(),
            buffer,
            pad: 0,
        }]);
        fault_of(job.unwrap().wait_timeout(T), "FreeTwice", &["ctx.free"]);
    }
    // The buffer survived the attempt.
    assert_eq!(x.to_vec().unwrap(), vec![0; 4]);
}

#[test]
fn a_collective_that_some_lanes_skipped_by_returning_fails_the_task() {
    let ex = executor(faults());
    let out = buffer(&ex, &[0f32; 32]);
    let job = ex.submit(&[EarlyReturn { out: out.ptr() }]).unwrap();
    fault_of(job.wait_timeout(T), "EarlyReturn", &["returned"]);
}

#[test]
fn a_fault_stops_its_body_and_dropping_the_runtime_ends_endless_work() {
    let ex = executor(faults());
    let x = buffer(&ex, &[0u32; 4]);
    // The spin after the fault never runs: the job ends at once.
    let job = ex.submit(&[FaultThenSpin { x: x.ptr() }]).unwrap();
    fault_of(
        job.wait_timeout(Duration::from_secs(10)),
        "FaultThenSpin",
        &["outside"],
    );
    let endless = ex.submit(&[Forever { n: 0, pad: 0 }]).unwrap();
    assert!(matches!(
        endless.wait_timeout(Duration::from_millis(50)),
        Err(Error::Timeout(..))
    ));
    drop(endless);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(ex);
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(10)).is_ok(),
        "the runtime's drop did not return with a task still spawning"
    );
}

#[test]
fn an_access_outside_every_allocation_fails_its_job_and_not_others() {
    let ex = executor(faults());
    let x = buffer(&ex, &[1u32, 2, 3, 4]);
    let y = buffer(&ex, &[0u32; 8]);
    let bad = ex
        .submit(&[Copy {
            x: x.ptr(),
            y: y.ptr(),
            n: 6,
            pad: 0,
        }])
        .unwrap();
    let good = ex
        .submit(&[Copy {
            x: x.ptr(),
            y: y.ptr(),
            n: 4,
            pad: 0,
        }])
        .unwrap();
    fault_of(
        bad.wait_timeout(T),
        "Copy",
        &["outside every live allocation"],
    );
    good.wait_timeout(T).unwrap();
    assert_eq!(y.to_vec().unwrap()[..4], [1, 2, 3, 4]);
    // A freed buffer is no longer reachable either.
    let gone = buffer(&ex, &[7u32; 4]);
    let p = gone.ptr();
    drop(gone);
    let after_free = ex
        .submit(&[Copy {
            x: p,
            y: y.ptr(),
            n: 1,
            pad: 0,
        }])
        .unwrap();
    fault_of(after_free.wait_timeout(T), "Copy", &["outside"]);
}

#[test]
fn lanes_at_different_collectives_fail_the_task_instead_of_hanging() {
    let ex = executor(faults());
    let out = buffer(&ex, &[0f32; 32]);
    // The message names both sites.
    let job = ex.submit(&[Diverge { out: out.ptr() }]).unwrap();
    fault_of(
        job.wait_timeout(T),
        "Diverge",
        &["different collectives", "cpu_bodies.rs"],
    );
}

#[test]
fn warp_votes_and_shuffles_give_every_lane_the_gpus_answer() {
    let ex = executor(faults());
    let out = buffer(&ex, &[0u32; 32 * 5]);
    ex.submit(&[Votes { out: out.ptr() }])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    let v = out.to_vec().unwrap();
    let ballot = (0..32).filter(|l| l % 3 == 0).fold(0u32, |m, l| m | 1 << l);
    for l in 0..32usize {
        let got = &v[l * 5..l * 5 + 5];
        assert_eq!(got, [ballot, 1, 1, 0, 31 - l as u32], "lane {l}");
    }
}

#[test]
fn fail_codes_and_wrong_types_are_errors_that_name_the_task() {
    let ex = executor(faults());
    assert_eq!(
        ex.submit(&[Fails { code: 7, pad: 0 }])
            .unwrap()
            .wait_timeout(T),
        Err(Error::TaskFailed {
            task: "Fails".into(),
            code: 7
        })
    );
    assert!(matches!(
        ex.submit(&[RsChain {
            hits: DevicePtr::null(),
            n: 0,
            pad: 0
        }]),
        Err(Error::UnregisteredTask("RsChain"))
    ));
    assert_eq!(ex.backend(), Backend::Cpu);
    assert!(matches!(ex.global("x"), Err(Error::Unsupported(_))));
}

#[test]
fn a_cuda_c_body_is_refused_at_build_naming_its_type() {
    let e = grosr::Runtime::builder()
        .task::<Fails>()
        .task::<OnlyOnGpu>()
        .backend(Backend::Cpu)
        .build()
        .unwrap_err();
    match e {
        Error::Config(m) => assert!(m.contains("`OnlyOnGpu` has a CUDA C body"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stop_abandons_queued_work_and_start_takes_submits_again() {
    let ex = executor(rust_bodies::builder());
    ex.stop().unwrap();
    assert!(!ex.is_running());
    let hits = buffer(&ex, &[0u32; 2]);
    let chain = RsChain {
        hits: hits.ptr(),
        n: 1,
        pad: 0,
    };
    assert!(matches!(ex.submit(&[chain]), Err(Error::Stopped)));
    ex.start().unwrap();
    ex.submit(&[chain]).unwrap().wait().unwrap();
    assert_eq!(hits.to_vec().unwrap(), vec![1, 1]);
}

/// 1 + the sum of the values of predecessors `preds[first..first + count]`, or 0 if one of
/// them has not run yet.
#[grosr::device]
fn node_value(
    ctx: &grosr::body::Ctx,
    vals: DevicePtr<u64>,
    done: DevicePtr<u32>,
    preds: DevicePtr<u32>,
    first: u32,
    count: u32,
) -> u64 {
    let mut s = 1u64;
    for k in first..first + count {
        let p = ctx.read(preds, k);
        if ctx.read(done, p) == 0 {
            return 0u64;
        }
        s = s.wrapping_add(ctx.read(vals, p));
    }
    s
}

/// A graph node: its value is [`node_value`]; it fails its job (code 9) if a predecessor has
/// not run yet.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let s = node_value(ctx, task.vals, task.done, task.preds, task.first, task.count);
    if s == 0 {
        ctx.fail(9);
    }
    ctx.write(task.vals, task.me, s);
    ctx.write(task.done, task.me, 1u32);
})]
pub struct LaneNode {
    pub vals: DevicePtr<u64>,
    pub done: DevicePtr<u32>,
    pub preds: DevicePtr<u32>,
    pub first: u32,
    pub count: u32,
    pub me: u32,
    pub pad: u32,
}

/// [`LaneNode`] by a warp: lanes sum a share of the predecessors each, then a butterfly.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let mut s = 0u64;
    for k in (task.first + ctx.lane()..task.first + task.count).step_by(32) {
        let p = ctx.read(task.preds, k);
        if ctx.read(task.done, p) == 0 {
            ctx.fail(9);
        }
        s = s.wrapping_add(ctx.read(task.vals, p));
    }
    let mut m = 16u32;
    while m > 0 {
        s = s.wrapping_add(ctx.shuffle_xor(s, m));
        m = m / 2;
    }
    if ctx.lane() == 0 {
        ctx.write(task.vals, task.me, s.wrapping_add(1u64));
        ctx.write(task.done, task.me, 1u32);
    }
})]
pub struct WarpNode {
    pub vals: DevicePtr<u64>,
    pub done: DevicePtr<u32>,
    pub preds: DevicePtr<u32>,
    pub first: u32,
    pub count: u32,
    pub me: u32,
    pub pad: u32,
}

/// [`LaneNode`] by a block: thread 0 sums, then the block meets.
#[grosr::task(granularity = "block", rust = |task, ctx| {
    if ctx.lane() == 0 {
        let s = node_value(ctx, task.vals, task.done, task.preds, task.first, task.count);
        if s == 0 {
            ctx.fail(9);
        }
        ctx.write(task.vals, task.me, s);
        ctx.write(task.done, task.me, 1u32);
    }
    ctx.sync_threads();
})]
pub struct BlockNode {
    pub vals: DevicePtr<u64>,
    pub done: DevicePtr<u32>,
    pub preds: DevicePtr<u32>,
    pub first: u32,
    pub count: u32,
    pub me: u32,
    pub pad: u32,
}

#[test]
fn random_dags_of_mixed_nodes_run_in_order_under_every_strategy() {
    use grosr::graph::{Strategy, TaskGraph};
    let rt = executor(
        grosr::Runtime::builder()
            .helper::<node_value>()
            .task::<LaneNode>()
            .task::<WarpNode>()
            .task::<BlockNode>(),
    );
    let n = 300usize;
    let mut seed = 2024u32;
    let mut rnd = |m: u32| {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) % m
    };
    // Predecessors of node i: up to 3 earlier nodes.
    let mut preds: Vec<Vec<u32>> = Vec::new();
    for i in 0..n as u32 {
        let mut p: Vec<u32> = (0..rnd(4)).filter(|_| i > 0).map(|_| rnd(i)).collect();
        p.sort();
        p.dedup();
        preds.push(p);
    }
    let flat: Vec<u32> = preds.iter().flatten().copied().collect();
    let vals = buffer(&rt, &vec![0u64; n]);
    let done = buffer(&rt, &vec![0u32; n]);
    let pb = buffer(&rt, &flat);
    let mut want = vec![0u64; n];
    let mut g = TaskGraph::new();
    let mut ids = Vec::new();
    let mut first = 0u32;
    for (i, p) in preds.iter().enumerate() {
        want[i] = p
            .iter()
            .fold(1u64, |s, &q| s.wrapping_add(want[q as usize]));
        let (v, d, pp, count, me) = (vals.ptr(), done.ptr(), pb.ptr(), p.len() as u32, i as u32);
        let id = match rnd(10) {
            0..=5 => g.add(LaneNode {
                vals: v,
                done: d,
                preds: pp,
                first,
                count,
                me,
                pad: 0,
            }),
            6..=8 => g.add(WarpNode {
                vals: v,
                done: d,
                preds: pp,
                first,
                count,
                me,
                pad: 0,
            }),
            _ => g.add(BlockNode {
                vals: v,
                done: d,
                preds: pp,
                first,
                count,
                me,
                pad: 0,
            }),
        };
        for &q in p {
            g.add_edge(ids[q as usize], id).unwrap();
        }
        ids.push(id);
        first += count;
    }
    for s in Strategy::ALL {
        // The lowered strategies need the runtime stopped, as on a GPU.
        if s.is_resident() {
            rt.start().unwrap();
        } else {
            rt.stop().unwrap();
        }
        let mut prepared = g.prepare(&rt, s).unwrap();
        for round in 0..3 {
            done.write(&vec![0u32; n]).unwrap();
            vals.write(&vec![0u64; n]).unwrap();
            prepared
                .run(T)
                .unwrap_or_else(|e| panic!("{} round {round}: {e}", s.name()));
            assert_eq!(vals.to_vec().unwrap(), want, "{} round {round}", s.name());
            assert_eq!(done.to_vec().unwrap(), vec![1; n]);
        }
    }
}

/// Every lane writes its index: no collective, so the CPU runs the lanes one after another.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    ctx.write(task.out, ctx.lane(), ctx.lane() + 1);
    ctx.write(task.widths, ctx.lane(), ctx.width());
})]
pub struct EveryLane {
    pub out: DevicePtr<u32>,
    pub widths: DevicePtr<u32>,
}

/// The same for a block's threads.
#[grosr::task(granularity = "block", rust = |task, ctx| {
    ctx.write(task.out, ctx.lane(), ctx.lane() + 1);
    ctx.write(task.widths, ctx.lane(), ctx.width());
})]
pub struct EveryThread {
    pub out: DevicePtr<u32>,
    pub widths: DevicePtr<u32>,
}

#[test]
fn bodies_without_meetings_run_their_lanes_apart_with_every_lane_index() {
    use grosr::Task;
    // What the macro found, checked at compile time.
    const {
        assert!(EveryLane::CPU_LANES_APART && EveryThread::CPU_LANES_APART);
        assert!(!rust_bodies::RsRow::CPU_LANES_APART, "warp_max meets");
        assert!(!rust_bodies::RsBlock::CPU_LANES_APART, "sync_threads meets");
        assert!(!WarpNode::CPU_LANES_APART, "shuffle_xor meets");
    }
    let ex = executor(
        grosr::Runtime::builder()
            .task::<EveryLane>()
            .task::<EveryThread>(),
    );
    let out = buffer(&ex, &[0u32; 256]);
    let widths = buffer(&ex, &[0u32; 256]);
    ex.submit(&[EveryLane {
        out: out.ptr(),
        widths: widths.ptr(),
    }])
    .unwrap()
    .wait_timeout(T)
    .unwrap();
    let got = out.to_vec().unwrap();
    assert_eq!(got[..32], (1..=32).collect::<Vec<u32>>()[..]);
    assert!(got[32..].iter().all(|&x| x == 0));
    assert_eq!(widths.to_vec().unwrap()[..32], [32; 32]);
    ex.submit(&[EveryThread {
        out: out.ptr(),
        widths: widths.ptr(),
    }])
    .unwrap()
    .wait_timeout(T)
    .unwrap();
    assert_eq!(out.to_vec().unwrap(), (1..=256).collect::<Vec<u32>>());
    assert_eq!(widths.to_vec().unwrap(), vec![256; 256]);
}

/// Takes 4 words from the heap, writes 7 into the first, keeps the pointer in `out[i]`.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let p = ctx.alloc::<u32>(4u32);
    ctx.write(p, 0u32, 7u32);
    ctx.write(task.out, task.i, p);
})]
pub struct Keep {
    pub out: DevicePtr<DevicePtr<u32>>,
    pub i: u32,
    pub pad: u32,
}

/// One Keep per slot of `kept`.
fn keep_tasks(kept: &DeviceBuffer<DevicePtr<u32>>) -> Vec<Keep> {
    (0..kept.len() as u32)
        .map(|i| Keep {
            out: kept.ptr(),
            i,
            pad: 0,
        })
        .collect()
}

/// Reads the first word behind `p` into `out`.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let v = ctx.read(task.p, 0u32);
    ctx.write(task.out, 0u32, v);
})]
pub struct Peek {
    pub p: DevicePtr<u32>,
    pub out: DevicePtr<u32>,
}

/// tests/gpu_alloc.rs's task checks: lane and warp tasks allocate blocks that other tasks check
/// and free; lanes that allocate different numbers of times all finish; every block aligned and
/// intact, and the heap empty after.
#[test]
fn heap_tasks_of_the_gpu_alloc_tests_run_on_the_cpu() {
    let rt = executor(heap::portable_alloc_builder(256 << 20));
    let stats = buffer(&rt, &[0u32; 4]);
    heap::tasks_allocate_and_other_tasks_free(&rt, &stats);
    let stats = buffer(&rt, &[0u32; 4]);
    heap::lanes_that_allocate_different_numbers_of_times_all_finish(&rt, &stats);
}

/// `heap_bytes` bounds the CPU backend's heap as it sizes a GPU's: one slab holds 4096 of Keep's
/// 16-byte blocks and no more (the rest are null, counted as failures); `heap_bytes(0)` has no
/// heap at all; a size a GPU refuses is refused here too.
#[test]
fn heap_bytes_bounds_the_cpu_heap_as_on_a_gpu() {
    let slab = 1u64 << 16;
    let rt = executor(
        grosr::Runtime::builder()
            .task::<Keep>()
            .task::<rust_bodies::RsHeap>()
            .heap_bytes(slab),
    );
    assert_eq!(rt.heap_bytes(), slab);
    let kept = DeviceBuffer::<DevicePtr<u32>>::zeroed(rt.gpu(), 4096).unwrap();
    rt.submit(&keep_tasks(&kept))
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    let stats = rt.heap_stats().unwrap();
    assert_eq!((stats.bytes_in_use, stats.failures), (slab, 0));
    let sums = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1).unwrap();
    let more = rt
        .submit(&[rust_bodies::RsHeap {
            sums: sums.ptr(),
            i: 0,
            n: 1,
        }])
        .unwrap()
        .wait_timeout(T);
    assert_eq!(
        more,
        Err(Error::TaskFailed {
            task: "RsHeap".into(),
            code: 3
        }),
        "the heap is full: null"
    );
    assert_eq!(rt.heap_stats().unwrap().failures, 1);

    let none = executor(
        grosr::Runtime::builder()
            .task::<rust_bodies::RsHeap>()
            .heap_bytes(0),
    );
    assert_eq!(none.heap_bytes(), 0);
    assert!(matches!(none.heap_stats(), Err(Error::Config(_))));
    let sums = DeviceBuffer::<u64>::zeroed(none.gpu(), 1).unwrap();
    let e = none
        .submit(&[rust_bodies::RsHeap {
            sums: sums.ptr(),
            i: 0,
            n: 1,
        }])
        .unwrap()
        .wait_timeout(T);
    assert!(matches!(e, Err(Error::TaskFailed { code: 3, .. })), "{e:?}");
    let tiny = grosr::Runtime::builder()
        .backend(Backend::Cpu)
        .heap_bytes(1)
        .build();
    assert!(matches!(tiny, Err(Error::Config(_))), "{tiny:?}");
}

#[test]
fn heap_stats_count_what_bodies_keep_and_a_reset_frees_it_all() {
    let ex = executor(grosr::Runtime::builder().task::<Keep>().task::<Peek>());
    let kept = DeviceBuffer::<DevicePtr<u32>>::zeroed(ex.gpu(), 10).unwrap();
    ex.submit(&keep_tasks(&kept))
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    let stats = ex.heap_stats().unwrap();
    assert_eq!((stats.allocations_in_use, stats.bytes_in_use), (10, 160));
    let p = kept.to_vec().unwrap()[3];
    let out = buffer(&ex, &[0u32]);
    ex.submit(&[Peek { p, out: out.ptr() }])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    assert_eq!(out.to_vec().unwrap(), vec![7]);
    assert!(
        matches!(ex.heap_reset(), Err(Error::Config(_))),
        "only stopped"
    );
    ex.stop().unwrap();
    ex.heap_reset().unwrap();
    ex.start().unwrap();
    assert_eq!(ex.heap_stats().unwrap().allocations_in_use, 0);
    let job = ex.submit(&[Peek { p, out: out.ptr() }]).unwrap();
    fault_of(job.wait_timeout(T), "Peek", &["outside"]);
}

/// A warp prefix sum with `shuffle_up`, a rotation with `shuffle_down`, and a reversal through
/// `warp_shared` memory (every lane writes its slot, meets, reads its mirror's): each lane's
/// three results, as a GPU gives them.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let lane = ctx.lane();
    let mut incl = lane + 1u32;
    let mut o = 1u32;
    while o < 32u32 {
        let x = ctx.shuffle_up(incl, o);
        if lane >= o {
            incl += x;
        }
        o <<= 1u32;
    }
    let down = ctx.shuffle_down(lane * 10u32, 3u32);
    let mine = ctx.warp_shared::<u32, 32>();
    ctx.write(mine, lane, lane * lane);
    ctx.sync_warp();
    let mirror = ctx.read(mine, 31u32 - lane);
    ctx.write(task.out, lane * 4u32, incl);
    ctx.write(task.out, lane * 4u32 + 1u32, down);
    ctx.write(task.out, lane * 4u32 + 2u32, mirror);
    ctx.write(task.out, lane * 4u32 + 3u32, (incl as u64 * 0x0101u64).count_ones());
})]
pub struct Scan {
    pub out: DevicePtr<u32>,
}

/// The sum over the warp, by butterfly: a helper that meets its warp's other lanes.
#[grosr::device(granularity = "warp")]
fn warp_total(ctx: &grosr::body::Ctx, x: u32) -> u32 {
    let mut s = x;
    let mut m = 16u32;
    while m > 0u32 {
        s += ctx.shuffle_xor(s, m);
        m >>= 1u32;
    }
    s
}

/// Calls the warp helper from a warp task (fine) ...
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let s = warp_total(ctx, ctx.lane());
    if ctx.lane() == 0u32 {
        ctx.write(task.out, 0u32, s);
    }
})]
pub struct WarpTotal {
    pub out: DevicePtr<u32>,
}

/// ... and from a lane task, which has no other lanes: a GPU build refuses it (a static
/// assertion in the translation), the CPU fails the task when it gets there.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let s = warp_total(ctx, 1u32);
    ctx.write(task.out, 0u32, s);
})]
pub struct LoneTotal {
    pub out: DevicePtr<u32>,
}

#[test]
fn warp_shuffles_up_and_down_shared_scratch_and_warp_helpers_give_the_gpus_answers() {
    let ex = executor(
        grosr::Runtime::builder()
            .helper::<warp_total>()
            .task::<Scan>()
            .task::<WarpTotal>()
            .task::<LoneTotal>(),
    );
    let out = buffer(&ex, &[0u32; 32 * 4]);
    ex.submit(&[Scan { out: out.ptr() }])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    let v = out.to_vec().unwrap();
    for l in 0..32u32 {
        let incl = (1..=l + 1).sum::<u32>();
        // __shfl_down_sync: lanes 29..31 have no lane + 3 and keep their own.
        let down = if l + 3 < 32 { (l + 3) * 10 } else { l * 10 };
        let mirror = (31 - l) * (31 - l);
        let ones = (u64::from(incl) * 0x0101).count_ones();
        let got = &v[4 * l as usize..4 * l as usize + 4];
        assert_eq!(got, [incl, down, mirror, ones], "lane {l}");
    }
    let total = buffer(&ex, &[0u32]);
    ex.submit(&[WarpTotal { out: total.ptr() }])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    assert_eq!(total.to_vec().unwrap(), vec![(0..32).sum::<u32>()]);
    let waited = ex
        .submit(&[LoneTotal { out: total.ptr() }])
        .unwrap()
        .wait_timeout(T);
    fault_of(
        waited,
        "LoneTotal",
        &["`warp_total`, a warp helper", "from a lane task"],
    );
}

/// Keeps its `warp_shared` array's address past its end, in a child it spawns ...
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let b = ctx.warp_shared::<u64, 64>();
    ctx.write(b, ctx.lane(), 7u64);
    ctx.sync_warp();
    if ctx.lane() == 0u32 {
        ctx.spawn(StaleReader { stale: b, out: task.out });
    }
})]
pub struct KeepsScratch {
    pub out: DevicePtr<u64>,
}

/// ... which reads through it, its own array written first (the host allocator might well put
/// the new array where the old one was).
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let mine = ctx.warp_shared::<u64, 64>();
    ctx.write(mine, ctx.lane(), 5u64);
    ctx.sync_warp();
    let v = ctx.read(task.stale, ctx.lane());
    ctx.write(task.out, ctx.lane(), v);
})]
pub struct StaleReader {
    pub stale: DevicePtr<u64>,
    pub out: DevicePtr<u64>,
}

/// A block task calling the warp helper: a GPU build refuses it; the CPU fails the task.
#[grosr::task(granularity = "block", rust = |task, ctx| {
    let s = warp_total(ctx, 1u32);
    ctx.write(task.out, ctx.lane(), s);
})]
pub struct BlockTotal {
    pub out: DevicePtr<u32>,
}

/// `shuffle_up` and `shuffle_down` take the delta's low 5 bits, as `shfl` does.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let up = ctx.shuffle_up(ctx.lane(), 33u32);
    let down = ctx.shuffle_down(ctx.lane(), 34u32);
    ctx.write(task.out, ctx.lane() * 2u32, up);
    ctx.write(task.out, ctx.lane() * 2u32 + 1u32, down);
})]
pub struct WideDeltas {
    pub out: DevicePtr<u32>,
}

/// A graph node that spawns: under a lowered strategy there is no scheduler to spawn into.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.spawn(Scan { out: task.out });
})]
pub struct SpawningNode {
    pub out: DevicePtr<u32>,
}

#[test]
fn kept_scratch_granular_helpers_wide_deltas_and_lowered_spawns_behave_as_on_a_gpu() {
    let ex = executor(
        grosr::Runtime::builder()
            .helper::<warp_total>()
            .task::<KeepsScratch>()
            .task::<StaleReader>()
            .task::<BlockTotal>()
            .task::<WideDeltas>()
            .task::<SpawningNode>()
            .task::<Scan>(),
    );
    for _ in 0..20 {
        let out = buffer(&ex, &[0u64; 32]);
        let waited = ex
            .submit(&[KeepsScratch { out: out.ptr() }])
            .unwrap()
            .wait_timeout(T);
        // Its parent's array either is gone (after the parent ended) or is another task's.
        let why = fault_of(waited, "StaleReader", &[]);
        assert!(
            why.contains("outside every live allocation")
                || why.contains("another task's warp_shared"),
            "{why}"
        );
    }
    let out = buffer(&ex, &[0u32; 256]);
    let waited = ex
        .submit(&[BlockTotal { out: out.ptr() }])
        .unwrap()
        .wait_timeout(T);
    fault_of(
        waited,
        "BlockTotal",
        &["`warp_total`, a warp helper", "from a block task"],
    );
    let out = buffer(&ex, &[0u32; 64]);
    ex.submit(&[WideDeltas { out: out.ptr() }])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    let v = out.to_vec().unwrap();
    for l in 0..32u32 {
        let up = if l >= 1 { l - 1 } else { l };
        let down = if l + 2 < 32 { l + 2 } else { l };
        assert_eq!(
            v[2 * l as usize..2 * l as usize + 2],
            [up, down],
            "lane {l}"
        );
    }
    let out = buffer(&ex, &[0u32; 128]);
    let mut g = grosr::graph::TaskGraph::new();
    g.add(SpawningNode { out: out.ptr() });
    let mut p = g.prepare(&ex, grosr::graph::Strategy::Fused).unwrap();
    let beside = p.run(T);
    assert!(
        matches!(&beside, Err(Error::Busy(m)) if m.contains("Runtime::stop")),
        "a lowered launch beside the running executor is refused, as on a GPU: {beside:?}"
    );
    ex.stop().unwrap();
    assert_eq!(
        p.run(T),
        Err(Error::TaskFailed {
            task: "SpawningNode".into(),
            code: -4
        })
    );
    ex.start().unwrap();
    let mut p = g.prepare(&ex, grosr::graph::Strategy::Resident).unwrap();
    p.run(T).unwrap();
}

/// Lane 0 waits for what lane 31 writes (a volatile read in a loop, as a GPU's independent
/// thread scheduling lets a warp do): lanes give way to each other at memory accesses, so it
/// ends.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    if ctx.lane() == 0u32 {
        let mut spins = 0u32;
        while ctx.read_volatile(task.flag, 0u32) == 0u32 {
            spins += 1u32;
        }
        ctx.write(task.flag, 1u32, spins);
    }
    if ctx.lane() == 31u32 {
        let mut busy = 0u32;
        for i in 0..5000u32 {
            busy = busy.wrapping_add(ctx.read(task.flag, 2u32).wrapping_add(i));
        }
        ctx.write(task.flag, 2u32, busy);
        ctx.atomic_exchange(task.flag, 0u32, 1u32);
    }
})]
pub struct WaitsForLane {
    pub flag: DevicePtr<u32>,
}

#[test]
fn a_lane_waiting_for_another_through_memory_is_not_stuck() {
    let ex = executor(grosr::Runtime::builder().task::<WaitsForLane>());
    let flag = buffer(&ex, &[0u32; 3]);
    ex.submit(&[WaitsForLane { flag: flag.ptr() }])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    let f = flag.to_vec().unwrap();
    assert_eq!(f[0], 1);
    assert!(f[1] > 0, "lane 0 did wait: {f:?}");
}

/// Lane 3 faults (a write outside every allocation) while the others meet at a warp_sum and
/// then write: they stop at the collective instead of going on without it.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    if ctx.lane() == 3u32 {
        ctx.write(task.out, 1u32 << 30u32, 1u32);
    }
    let s = ctx.warp_sum(1.0f32);
    ctx.write(task.out, ctx.lane(), s as u32);
})]
pub struct OneLaneFaults {
    pub out: DevicePtr<u32>,
}

/// Lane 0 waits on an atomic that lane 31 sets after a while (as a GPU's independent thread
/// scheduling lets a warp): the lanes run on a gang and give way, so it ends.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    if ctx.lane() == 0u32 {
        while ctx.atomic_add(task.flag, 0u32, 0u32) == 0u32 {}
    }
    if ctx.lane() == 31u32 {
        let mut busy = 0u32;
        for i in 0..3000u32 {
            busy = busy.wrapping_add(ctx.read(task.flag, 1u32).wrapping_add(i));
        }
        ctx.write(task.flag, 1u32, busy);
        ctx.atomic_add(task.flag, 0u32, 1u32);
    }
})]
pub struct SpinsOnAnAtomic {
    pub flag: DevicePtr<u32>,
}

/// Asks the heap for 2^60 bytes (past any host's address space, whatever its overcommit
/// setting): a null pointer, as an exhausted GPU heap answers.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let p = ctx.alloc::<u64>(1u64 << 57u32);
    ctx.write(task.out, 0u32, if p.is_null() { 1u32 } else { 2u32 });
})]
pub struct Greedy {
    pub out: DevicePtr<u32>,
}

#[test]
fn a_faulting_lane_stops_its_gang_spins_on_atomics_end_and_huge_allocations_are_null() {
    let ex = executor(
        grosr::Runtime::builder()
            .task::<OneLaneFaults>()
            .task::<SpinsOnAnAtomic>()
            .task::<Greedy>(),
    );
    let out = buffer(&ex, &[0u32; 32]);
    let waited = ex
        .submit(&[OneLaneFaults { out: out.ptr() }])
        .unwrap()
        .wait_timeout(T);
    fault_of(waited, "OneLaneFaults", &["outside every live allocation"]);
    assert_eq!(
        out.to_vec().unwrap(),
        vec![0; 32],
        "no lane went on past the collective"
    );
    let flag = buffer(&ex, &[0u32; 2]);
    ex.submit(&[SpinsOnAnAtomic { flag: flag.ptr() }])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    assert_eq!(flag.to_vec().unwrap()[0], 1);
    ex.submit(&[Greedy { out: out.ptr() }])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    assert_eq!(out.to_vec().unwrap()[0], 1, "the heap said null");
    let huge = DeviceBuffer::<u64>::zeroed(ex.gpu(), 1 << 57);
    assert!(matches!(huge, Err(Error::DoesNotFit(_))), "{huge:?}");
}

/// A warp task whose locals (a 512 KiB array) overflow a lane's 256 KiB stack ...
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let mut big = [0u64; 65536];
    big[(ctx.lane() * 7u32) as usize] = 1u64;
    let s = ctx.warp_sum(big[3] as f32);
    ctx.write(task.out, ctx.lane(), s as u32);
})]
pub struct TooDeep {
    pub out: DevicePtr<u32>,
}

#[test]
fn a_lane_stack_overflow_fails_its_task_and_the_worker_goes_on() {
    // One worker: were it lost, the next job would never run.
    let ex = executor_of(
        grosr::Runtime::builder()
            .task::<TooDeep>()
            .task::<rust_bodies::RsChain>(),
        1,
    );
    let out = buffer(&ex, &[0u32; 32]);
    let waited = ex
        .submit(&[TooDeep { out: out.ptr() }])
        .unwrap()
        .wait_timeout(T);
    fault_of(waited, "TooDeep", &["stack (256 KiB) overflowed"]);
    rust_bodies::a_spawn_chain_runs_every_link_once(&ex);
}

/// Digs `depth` calls deep (256 bytes of locals a call), then reads and takes warp scratch;
/// 5 (`p[0]`) at every depth.
#[grosr::device(granularity = "warp")]
fn dig(ctx: &grosr::body::Ctx, p: DevicePtr<u32>, depth: u32) -> u32 {
    if depth == 0u32 {
        let s = ctx.warp_shared::<u32, 32>();
        return ctx.read(p, 0u32).max(ctx.read(s, ctx.lane()).min(5u32));
    }
    // 64 reads kept across the call: a frame of their own at every level, which an optimizer
    // cannot fold into a loop (a release build did, when one slot of the array was used).
    let mut pad = [0u32; 64];
    for i in 0u32..64u32 {
        pad[i as usize] = ctx.read(p, 0u32) + depth + i;
    }
    let mut m = dig(ctx, p, depth - 1u32);
    for i in 0u32..64u32 {
        m = m.min(pad[i as usize] - i);
    }
    m
}

/// A warp task whose lanes dig `depth` deep.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let v = dig(ctx, task.p, task.depth);
    ctx.write(task.p, ctx.lane() + 1u32, v);
})]
pub struct Digs {
    pub p: DevicePtr<u32>,
    pub depth: u32,
    pub pad: u32,
}

/// Lane 31 faults before it sets the flag lane 0 spins on.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    if ctx.lane() == 31u32 {
        ctx.write(task.flag, 1u32 << 30u32, 1u32);
        ctx.atomic_add(task.flag, 0u32, 1u32);
    }
    if ctx.lane() == 0u32 {
        while ctx.atomic_add(task.flag, 0u32, 0u32) == 0u32 {}
    }
})]
pub struct SpinsOnAFaultedLane {
    pub flag: DevicePtr<u32>,
}

#[test]
fn deep_lanes_fault_before_their_stack_runs_out_and_a_fault_ends_a_spin() {
    // One worker: a lane stuck holding a lock would stop everything after it.
    let ex = executor_of(
        grosr::Runtime::builder()
            .helper::<dig>()
            .task::<Digs>()
            .task::<SpinsOnAFaultedLane>()
            .task::<rust_bodies::RsChain>(),
        1,
    );
    let p = buffer(&ex, &[5u32; 33]);
    let mut faulted = 0;
    for depth in [10u32, 300, 600, 900, 1200, 2000, 3000, 5000] {
        match ex
            .submit(&[Digs {
                p: p.ptr(),
                depth,
                pad: 0,
            }])
            .unwrap()
            .wait_timeout(T)
        {
            Ok(()) => assert_eq!(p.to_vec().unwrap()[1..], [5; 32], "depth {depth}"),
            Err(Error::BodyFault { what, .. }) => {
                assert!(what.contains("stack"), "depth {depth}: {what}");
                faulted += 1;
            }
            Err(e) => panic!("depth {depth}: {e}"),
        }
        rust_bodies::a_spawn_chain_runs_every_link_once(&ex);
    }
    assert!(faulted > 0, "no depth reached the stack's end");
    let flag = buffer(&ex, &[0u32]);
    let waited = ex
        .submit(&[SpinsOnAFaultedLane { flag: flag.ptr() }])
        .unwrap()
        .wait_timeout(T);
    fault_of(
        waited,
        "SpinsOnAFaultedLane",
        &["outside every live allocation"],
    );
    rust_bodies::a_spawn_chain_runs_every_link_once(&ex);
}

/// Recurses `depth` deep, reading `p[0]` at every level (on a GPU, past its stack: a fault).
#[grosr::device]
fn descend(ctx: &grosr::body::Ctx, p: DevicePtr<u32>, depth: u32) -> u32 {
    if depth == 0u32 {
        return ctx.read(p, 0u32);
    }
    // Kept across the call, as in `dig`: every level holds a frame, in release builds too.
    let mut pad = [0u32; 64];
    for i in 0u32..64u32 {
        pad[i as usize] = ctx.read(p, 0u32) + i;
    }
    let mut m = descend(ctx, p, depth - 1u32);
    for i in 0u32..64u32 {
        m = m.max(pad[i as usize] - i);
    }
    m
}

/// A lane task, on a worker's own stack, that descends `depth` deep.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let v = descend(ctx, task.p, task.depth);
    ctx.write(task.p, 1u32, v);
})]
pub struct Descends {
    pub p: DevicePtr<u32>,
    pub depth: u32,
    pub pad: u32,
}

/// The child process of [`a_lane_task_that_runs_out_of_stack_fails_its_job_not_the_process`]:
/// a lane task recursing far past a worker's stack faults, and the worker goes on.
#[test]
#[ignore = "run by a_lane_task_that_runs_out_of_stack_fails_its_job_not_the_process"]
fn lane_task_stack_overflow_child() {
    // One worker: were it lost, the next job would never run.
    let ex = executor_of(
        grosr::Runtime::builder()
            .helper::<descend>()
            .task::<Descends>()
            .task::<rust_bodies::RsChain>(),
        1,
    );
    let p = buffer(&ex, &[5u32, 0]);
    ex.submit(&[Descends {
        p: p.ptr(),
        depth: 10,
        pad: 0,
    }])
    .unwrap()
    .wait_timeout(T)
    .unwrap();
    assert_eq!(p.to_vec().unwrap(), [5, 5]);
    let waited = ex
        .submit(&[Descends {
            p: p.ptr(),
            depth: 1 << 20,
            pad: 0,
        }])
        .unwrap()
        .wait_timeout(T);
    fault_of(waited, "Descends", &["stack"]);
    rust_bodies::a_spawn_chain_runs_every_link_once(&ex);
}

#[test]
fn a_lane_task_that_runs_out_of_stack_fails_its_job_not_the_process() {
    // In a process of its own: a stack overflow that is not caught aborts the process.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "lane_task_stack_overflow_child",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the child ended {:?}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A compound assignment whose value calls something is translated in the form that evaluates
/// the value first (`op_to(place) = value`); one whose value calls nothing keeps the plain
/// helper, whose machine code is the measured one (either order reads the same there).
#[test]
fn compound_assignments_order_their_value_first_only_where_it_can_matter() {
    use grosr::Task;
    let ordered = <rust_bodies::RsOrder as Task>::BODY.code;
    assert!(ordered.contains("grosr::rs::add_to("), "{ordered}");
    assert!(!ordered.contains("add_assign"), "{ordered}");
    let plain = <Accumulates as Task>::BODY.code;
    assert!(plain.contains("grosr::rs::add_assign("), "{plain}");
    assert!(plain.contains("grosr::rs::mul_assign("), "{plain}");
    assert!(!plain.contains("_to("), "{plain}");
}

/// Compound assignments whose values only compute (a local, a field, a cast, a math method).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let mut s = task.a;
    s += task.b as u32;
    s *= s.count_ones() + 1u32;
    ctx.write(task.out, 0u32, s);
})]
pub struct Accumulates {
    pub out: DevicePtr<u32>,
    pub a: u32,
    pub b: u32,
}
