//! The device heap on a real GPU: no overlap under churn, mixes and remote frees; out of memory
//! returns null and the heap recovers; large blocks round-trip; tasks allocate and other tasks
//! free; host stats agree; lanes that leave the heap at different times all finish. Ignored
//! without a GPU.

#[path = "common/heap.rs"]
mod heap;

use std::time::Duration;

use grosr::{DeviceBuffer, Runtime};
use grosr_lab::workloads::alloc::{self as bench, AllocBench, Allocator, Shape, Sizes};
use heap::*;

const T: Duration = Duration::from_secs(120);

/// Allocates sizes[t] on thread t (t_alloc), then frees block (t * stride) % n on thread t.
/// Returns (nulls, bad words) after both kernels; the runtime must be stopped.
fn alloc_then_free(rt: &Runtime, sizes: &[u64], stride: u32, free: bool) -> (u32, u32) {
    let b = rt.baselines().unwrap();
    let n = sizes.len() as u32;
    let sz = DeviceBuffer::from_slice(rt.gpu(), sizes).unwrap();
    let ptrs = DeviceBuffer::<u64>::zeroed(rt.gpu(), sizes.len()).unwrap();
    let counts = DeviceBuffer::<u32>::zeroed(rt.gpu(), 2).unwrap();
    let (s, p) = (sz.ptr().addr(), ptrs.ptr().addr());
    let (nulls, bad) = (counts.ptr().addr(), counts.ptr().addr() + 4);
    // SAFETY: t_alloc(const u64*, u32, u64**, u32*, u32*); buffers outlive the sync below.
    unsafe {
        b.launch_with(
            "t_alloc",
            n.div_ceil(256),
            256,
            0,
            (&s, &n, &p, &nulls, &bad),
        )
        .unwrap()
    };
    b.sync(T).unwrap();
    if free {
        // SAFETY: t_free(const u64*, u32, u64**, u32, u32*).
        unsafe {
            b.launch_with(
                "t_free",
                n.div_ceil(256),
                256,
                0,
                (&s, &n, &p, &stride, &bad),
            )
            .unwrap()
        };
        b.sync(T).unwrap();
    }
    let c = counts.to_vec().unwrap();
    (c[0], c[1])
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn no_two_live_allocations_overlap_under_churn_mixes_and_remote_frees() {
    let rt = bench::builder(8 << 30).build().unwrap();
    let mut b = AllocBench::new(&rt).unwrap();
    b.set_check_stride(bench::DENSE_CHECK).unwrap(); // every 16 bytes of every block
    let full = b.full_threads("bench_loop_grosr").unwrap();
    let shapes = bench::SEED_SHAPES.iter().chain(bench::MORE_SHAPES.iter());
    for shape in shapes {
        // run() fails on any overwritten word; every allocation must be served.
        let out = b.run(Allocator::Grosr, shape, full, 50).unwrap();
        assert_eq!(out.failed, 0, "{}: {out:?}", shape.name);
        assert_eq!(out.served, full as u64 * 50, "{}", shape.name);
    }
    let (_, out) = b
        .remote(Allocator::Grosr, &bench::SEED_SHAPES[2], full, 4)
        .unwrap();
    assert_eq!(out.failed, 0);
    let s = rt.heap_stats().unwrap();
    assert_eq!(s.allocations_in_use, 0, "{s:?}");
    assert_eq!((s.failures, s.bad_frees), (0, 0));
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn out_of_memory_returns_null_and_the_heap_recovers_after_frees() {
    let heap = 64u64 << 20;
    let rt = alloc_builder_with(heap).build().unwrap();
    rt.stop().unwrap();
    // Twice the heap in 1 KiB blocks: about half must fail, none may overlap.
    let n = (2 * heap / 1024) as usize;
    let sizes = vec![1024u64; n];
    let (nulls, bad) = alloc_then_free(&rt, &sizes, 1, false);
    assert_eq!(bad, 0);
    assert!(
        nulls as usize >= n / 2 && (nulls as usize) < n * 53 / 100,
        "{nulls} of {n}"
    );
    let s = rt.heap_stats().unwrap();
    assert_eq!(s.failures, nulls as u64);
    assert!(s.bytes_in_use >= heap * 95 / 100, "{s:?}");
    // A request larger than the heap fails at once.
    let (nulls, _) = alloc_then_free(&rt, &[heap + 1], 1, false);
    assert_eq!(nulls, 1);
    // After a reset-free cycle the heap serves the same again: free everything, then refill.
    rt.heap_reset().unwrap();
    let (nulls, bad) = alloc_then_free(&rt, &sizes[..n / 2 - 4096], 7, true);
    assert_eq!((nulls, bad), (0, 0));
    let s = rt.heap_stats().unwrap();
    assert_eq!(s.allocations_in_use, 0, "{s:?}");
    // Every slab is back in the pool but the SMs' current ones (kept attached, empty).
    let attached: u32 = s.classes.iter().map(|c| c.attached_slabs).sum();
    assert_eq!(s.free_slabs + attached, s.slabs, "{s:?}");
    let (nulls, bad) = alloc_then_free(&rt, &sizes[..n / 2 - 4096], 3, true);
    assert_eq!((nulls, bad), (0, 0));
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn large_allocations_round_trip_up_to_most_of_the_heap() {
    let heap = 256u64 << 20;
    let rt = alloc_builder_with(heap).build().unwrap();
    rt.stop().unwrap();
    let sizes = [8193u64, 65_536, 65_537, 1 << 20, 3 << 20, 17 << 20];
    let (nulls, bad) = alloc_then_free(&rt, &sizes, 5, true);
    assert_eq!((nulls, bad), (0, 0));
    let s = rt.heap_stats().unwrap();
    assert_eq!((s.large.in_use, s.free_slabs), (0, s.slabs), "{s:?}");
    // One block of 90% of the heap, then the whole heap.
    assert_eq!(alloc_then_free(&rt, &[heap * 9 / 10], 1, true), (0, 0));
    assert_eq!(alloc_then_free(&rt, &[heap], 1, true), (0, 0));
    // Small and large together.
    let mixed: Vec<u64> = (0..4096u64)
        .map(|i| if i % 64 == 0 { 100_000 } else { 16 + i % 4000 })
        .collect();
    assert_eq!(alloc_then_free(&rt, &mixed, 17, true), (0, 0));
    assert_eq!(rt.heap_stats().unwrap().allocations_in_use, 0);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn tasks_allocate_and_other_tasks_free_and_host_stats_agree() {
    // The buffer is allocated before the scheduler starts: compute-sanitizer's memcheck flags a
    // running kernel's accesses to allocations made after its launch.
    let gpu = grosr::Gpu::open(0).unwrap();
    let stats = DeviceBuffer::<u32>::zeroed(&gpu, 4).unwrap();
    let rt = alloc_builder().build().unwrap();
    heap::tasks_allocate_and_other_tasks_free(&rt, &stats);

    // Blocks held by host-visible kernels show up per class.
    rt.stop().unwrap();
    let sizes = vec![64u64; 10_000];
    let (nulls, bad) = alloc_then_free(&rt, &sizes, 1, false);
    assert_eq!((nulls, bad), (0, 0));
    let h = rt.heap_stats().unwrap();
    assert_eq!(h.classes[2].in_use, 10_000, "{h:?}");
    assert_eq!(h.bytes_in_use, 640_000);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_traced_heap_samples_its_slabs_while_the_tasks_that_use_them_run() {
    let gpu = grosr::Gpu::open(0).unwrap();
    let stats = DeviceBuffer::<u32>::zeroed(&gpu, 4).unwrap();
    let rt = alloc_builder().trace(1 << 16).build().unwrap();
    let _ = rt.trace().unwrap(); // whatever the build's own checks ran
    heap::tasks_allocate_and_other_tasks_free(&rt, &stats);
    let trace = rt.trace().unwrap();
    let heap: Vec<_> = trace
        .counters
        .iter()
        .filter(|c| c.name == "heap bytes")
        .collect();
    assert!(
        !heap.is_empty(),
        "no heap samples among {} counters",
        trace.counters.len()
    );
    assert!(heap.windows(2).all(|w| w[0].at_ns < w[1].at_ns));
    // Whole slabs, never more than the heap.
    let slab = rt.heap_stats().unwrap().slab_bytes as f64;
    for c in &heap {
        assert!(c.value >= 0.0 && c.value <= rt.heap_bytes() as f64, "{c:?}");
        assert_eq!(c.value % slab, 0.0, "{c:?}");
    }
    assert!(heap.iter().any(|c| c.value >= slab));
    // Slabs are taken and given back by `ctx.alloc` and `ctx.free` inside the bodies: each
    // sample lies within the traced tasks' time, on the same clock.
    let first = trace.tasks.iter().map(|t| t.start_ns).min().unwrap();
    let last = trace.tasks.iter().map(|t| t.end_ns).max().unwrap();
    assert!(
        heap.iter().all(|c| c.at_ns >= first && c.at_ns <= last),
        "tasks {first}..{last} ns, heap samples {:?}",
        heap.iter().map(|c| c.at_ns).collect::<Vec<_>>()
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn lanes_that_allocate_different_numbers_of_times_all_finish() {
    // Consecutive lane tasks run in one round, so the lanes of a round leave the heap at
    // different times and wait in the scheduler's warp barrier (account) while others still
    // allocate with a partial warp; likewise the lanes of a warp task. A mask mix-up between
    // the heap's warp operations and the scheduler's would hang here (bounded by T).
    let gpu = grosr::Gpu::open(0).unwrap();
    let stats = DeviceBuffer::<u32>::zeroed(&gpu, 4).unwrap();
    let rt = alloc_builder().build().unwrap();
    heap::lanes_that_allocate_different_numbers_of_times_all_finish(&rt, &stats);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn the_heap_is_usable_from_a_runtime_without_tasks_and_absent_when_disabled() {
    let rt = Runtime::builder().heap_bytes(0).build().unwrap();
    assert_eq!(rt.heap_bytes(), 0);
    assert!(rt.heap_stats().is_err());
    drop(rt);
    let rt = Runtime::builder().build().unwrap();
    assert!(rt.heap_bytes() > 0);
    let s = rt.heap_stats().unwrap();
    assert_eq!((s.free_slabs, s.allocations_in_use), (s.slabs, 0));
    let _ = Shape {
        name: "x",
        sizes: Sizes::Fixed,
        min: 16,
        max: 16,
        outstanding: 1,
    };
}
