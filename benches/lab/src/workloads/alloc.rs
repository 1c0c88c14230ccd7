//! The device-heap benchmark: grosr's heap against CUDA's device `malloc`/`free` and a
//! per-thread pool sub-allocator, in one process, on the same shapes.
//!
//! Every thread loops: pick a size, allocate, write a pattern over the block (16-byte words every
//! `check_stride` bytes, and the block's last whole 16 bytes), and before freeing check it: two
//! live blocks that overlapped would overwrite each other's pattern, so any mismatch fails the
//! run. The GPU tests check every 16 bytes of every block ([`DENSE_CHECK`]); the report checks a
//! word per [`BENCH_CHECK_STRIDE`] bytes, so that the harness's own loads and stores do not cap
//! what it measures (the per-thread pool, which does no allocator work, shows that ceiling).
//! The benchmark kernels run with the scheduler stopped, so they get every SM.

use std::time::{Duration, Instant};

use crate::workloads::table::Table;
use crate::workloads::{Stats, measure};
use crate::{Error, Result};
use grosr::Gpu;
use grosr::SlowPaths;
use grosr::unstable::Baselines;
use grosr::unstable::DeviceMem;
use grosr::{Runtime, RuntimeBuilder};

/// The benchmark kernels (compiled into the runtime's module with [`RuntimeBuilder::cuda`]).
pub const BENCH_CUDA: &str = include_str!("alloc.cu");

/// Kernels of [`BENCH_CUDA`] that the benchmark launches (preloaded at build).
pub const BENCH_KERNELS: &[&str] = &[
    "bench_loop_grosr",
    "bench_loop_cuda",
    "bench_loop_pool",
    "bench_remote_alloc_grosr",
    "bench_remote_free_grosr",
    "bench_remote_alloc_cuda",
    "bench_remote_free_cuda",
    "bench_oom_fill",
    "bench_oom_free",
];

/// The kernels' argument block. C: `grosr_bench::Args`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct BenchArgs {
    counters: u64,
    pool: u64,
    pool_per_thread: u64,
    budget_ns: u64,
    pool_slot: u32,
    iters: u32,
    outstanding: u32,
    kind: u32,
    min_size: u32,
    max_size: u32,
    seed: u32,
    check_stride: u32,
}

/// The three allocators compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// grosr's device heap.
    Grosr,
    /// CUDA's device `malloc` / `free`.
    CudaMalloc,
    /// A private region per thread with a bit mask of taken slots (no sharing, no remote frees).
    ThreadPool,
}

impl Allocator {
    fn suffix(self) -> &'static str {
        match self {
            Allocator::Grosr => "grosr",
            Allocator::CudaMalloc => "cuda",
            Allocator::ThreadPool => "pool",
        }
    }
}

/// How sizes are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sizes {
    /// Always `min`.
    Fixed,
    /// A power of two between `min` and `max`.
    Pow2,
    /// Uniform in `[min, max]`.
    Uniform,
    /// 90% `min`, 10% `max`.
    Skewed,
    /// Powers of two from `min` up to `max` over the run.
    Drift,
}

/// One benchmark shape: each thread runs `iters` allocations, keeping `outstanding` live.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Row label.
    pub name: &'static str,
    /// Size choice.
    pub sizes: Sizes,
    /// Smallest size (bytes, >= 16).
    pub min: u32,
    /// Largest size (bytes).
    pub max: u32,
    /// Live allocations per thread (1..=16).
    pub outstanding: u32,
}

/// What one run did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome {
    /// Allocations that returned memory.
    pub served: u64,
    /// Allocations that returned null.
    pub failed: u64,
    /// Clock cycles the loop kernel's threads spent allocating, freeing, and writing and checking
    /// blocks, summed over threads: zero unless built with `GROSR_BENCH_PROFILE=1`
    /// (`GROSR_DEFINES`).
    pub split: [u64; 3],
}

impl Outcome {
    /// Share of allocations that succeeded, in percent.
    pub fn success_pct(&self) -> f64 {
        100.0 * self.served as f64 / (self.served + self.failed).max(1) as f64
    }
}

const WAIT: Duration = Duration::from_secs(120);
/// How long a loop kernel's thread may run before it stops: runs take milliseconds, so a run
/// that reaches this has stalled, and the host reports it with the heap's slow-path counts
/// instead of waiting.
const LOOP_BUDGET: Duration = Duration::from_secs(10);
/// A run still going after this long prints the heap's state (at most [`STALL_NOTICES`] times).
const STALL_NOTICE: Duration = Duration::from_secs(4);
const STALL_NOTICES: usize = 4;
const BLOCK: u32 = 256;

/// Bytes between the checked 16-byte words of a block in the report and `cargo bench`: so far
/// apart that every block gets its first and last 16 bytes written and checked, and no more (what
/// an allocator benchmark can afford: a denser pattern's own memory traffic caps the rate, as
/// the per-thread pool, which does no allocator work, shows under [`FILLED_CHECK_STRIDE`]).
pub const BENCH_CHECK_STRIDE: u32 = 1 << 30;
/// A 16-byte word every 256 bytes: the report's second table, blocks used more as a task that
/// fills them would (a 4 KiB block: 17 words).
pub const FILLED_CHECK_STRIDE: u32 = 256;
/// Every 16 bytes of every block written and checked: what the GPU tests use.
pub const DENSE_CHECK: u32 = 16;

/// Launchers of the benchmark kernels on a runtime built by [`builder`] (scheduler stopped).
pub struct AllocBench<'rt> {
    rt: &'rt Runtime,
    base: Baselines<'rt>,
    counters: DeviceMem,
    pool: Option<DeviceMem>,
    ptrs: Option<DeviceMem>,
    check_stride: u32,
}

/// A runtime builder with the benchmark kernels and a heap of `heap_bytes`, after the
/// environment's [`GROSR_DEFINES`](crate::env_defines).
pub fn builder(heap_bytes: u64) -> RuntimeBuilder {
    crate::env_defines(Runtime::builder())
        .heap_bytes(heap_bytes)
        .cuda(BENCH_CUDA, BENCH_KERNELS)
}

/// Raises CUDA's device-malloc heap limit of `gpu`'s context. Call it before building a
/// runtime on that GPU (the limit cannot change beside a running kernel).
pub fn set_cuda_malloc_heap(gpu: &Gpu, bytes: usize) -> Result<()> {
    Ok(gpu.set_malloc_heap_size(bytes)?)
}

impl<'rt> AllocBench<'rt> {
    /// Stops the runtime's scheduler (benchmark kernels need every SM) and prepares launchers.
    pub fn new(rt: &'rt Runtime) -> Result<Self> {
        rt.stop()?;
        Ok(AllocBench {
            rt,
            base: rt.baselines()?,
            counters: DeviceMem::zeroed(grosr::unstable::context(rt.gpu())?, 64)?,
            pool: None,
            ptrs: None,
            check_stride: BENCH_CHECK_STRIDE,
        })
    }

    /// Sets how densely blocks are written and checked: a 16-byte word every `stride` bytes
    /// (a multiple of 16; [`DENSE_CHECK`] covers every byte) and each block's last 16 bytes.
    pub fn set_check_stride(&mut self, stride: u32) -> Result<()> {
        if stride == 0 || stride % 16 != 0 {
            return Err(grosr::Error::Config(format!(
                "check stride {stride} must be a positive multiple of 16 bytes"
            ))
            .into());
        }
        self.check_stride = stride;
        Ok(())
    }

    /// Blocks of 256 threads per SM that grosr's loop kernel keeps resident, as the occupancy API
    /// reports (kernels are built for at least `GROSR_BENCH_MIN_BLOCKS`, default 4).
    pub fn min_blocks(&self) -> Result<u32> {
        Ok(self.full_threads("bench_loop_grosr")? / self.rt.info().sm_count.max(1) / BLOCK)
    }

    /// Threads of a full-occupancy grid of `kernel` (resident blocks per SM × SMs × 256).
    pub fn full_threads(&self, kernel: &str) -> Result<u32> {
        let f = grosr::unstable::module(self.rt)?.function(kernel)?;
        let per_sm = f.occupancy(BLOCK, 0)?;
        Ok(per_sm.max(1) * self.rt.info().sm_count * BLOCK)
    }

    fn args(&mut self, shape: &Shape, iters: u32, threads: u32, a: Allocator) -> Result<BenchArgs> {
        self.counters.write(&[0u64; 8])?;
        let slot = shape.max.next_multiple_of(16);
        let per_thread = slot as u64 * shape.outstanding as u64;
        let mut pool = 0;
        if a == Allocator::ThreadPool {
            let need = (per_thread * threads as u64) as usize;
            if self.pool.as_ref().is_none_or(|p| p.len() < need) {
                self.pool = None;
                self.pool = Some(DeviceMem::uninit(
                    grosr::unstable::context(self.rt.gpu())?,
                    need,
                )?);
            }
            pool = self.pool.as_ref().map_or(0, |p| p.ptr());
        }
        Ok(BenchArgs {
            counters: self.counters.ptr(),
            pool,
            pool_per_thread: per_thread,
            budget_ns: LOOP_BUDGET.as_nanos() as u64,
            pool_slot: slot,
            iters,
            outstanding: shape.outstanding.clamp(1, 16),
            kind: shape.sizes as u32,
            min_size: shape.min.max(16),
            max_size: shape.max.max(shape.min.max(16)),
            seed: 0x5EED,
            check_stride: self.check_stride,
        })
    }

    fn outcome(&self, what: &str) -> Result<Outcome> {
        // Runs take milliseconds. One still running after a notice period prints the heap's
        // state, read on the copy stream beside it (slow-path counts that move: a slow loop;
        // that do not: a thread stuck elsewhere), a few times, then is waited out.
        for _ in 0..STALL_NOTICES {
            match self.base.sync(STALL_NOTICE) {
                Err(grosr::Error::Timeout(..)) => {
                    let heap = self.rt.heap_stats()?;
                    eprintln!(
                        "{what}: still running after {STALL_NOTICE:?}; heap: {} of {} slabs \
                         free, {} allocations in use, {} failures; slow paths: {:?}",
                        heap.free_slabs,
                        heap.slabs,
                        heap.allocations_in_use,
                        heap.failures,
                        heap.slow_paths
                    );
                }
                r => {
                    r?;
                    return self.counted(what);
                }
            }
        }
        self.base.sync(WAIT)?;
        self.counted(what)
    }

    /// The counters of a finished run, checked.
    fn counted(&self, what: &str) -> Result<Outcome> {
        let mut c = [0u64; 8];
        self.counters.read(&mut c)?;
        if c[7] != 0 {
            let heap = self.rt.heap_stats()?;
            return Err(Error::Invalid(format!(
                "{what}: {} threads stopped after {LOOP_BUDGET:?} (a stall); heap: {} of {} \
                 slabs free, {} allocations in use; slow paths since setup: {:?}",
                c[7], heap.free_slabs, heap.slabs, heap.allocations_in_use, heap.slow_paths
            )));
        }
        if c[3] != 0 {
            return Err(Error::Invalid(format!(
                "{what}: {} allocations returned blocks outside the heap's arena",
                c[3]
            )));
        }
        if c[2] != 0 {
            return Err(Error::Invalid(format!(
                "{what}: {} words of live allocations were overwritten (overlapping allocations)",
                c[2]
            )));
        }
        Ok(Outcome {
            served: c[0],
            failed: c[1],
            split: [c[4], c[5], c[6]],
        })
    }

    /// One run of `shape` on `threads` threads, `iters` allocations each; verified.
    pub fn run(
        &mut self,
        a: Allocator,
        shape: &Shape,
        threads: u32,
        iters: u32,
    ) -> Result<Outcome> {
        let args = self.args(shape, iters, threads, a)?;
        let name = format!("bench_loop_{}", a.suffix());
        // SAFETY: the kernel takes one Args by value (BenchArgs mirrors it); the counters and the
        // pool outlive the launch (we sync in outcome).
        unsafe {
            self.base
                .launch_with(&name, threads.div_ceil(BLOCK), BLOCK, 0, (&args,))?
        };
        self.outcome(&format!("{} {}", a.suffix(), shape.name))
    }

    /// Timed runs (median of `reps` after `warmup`): allocations per second and the outcome of
    /// the last run.
    pub fn rate(
        &mut self,
        a: Allocator,
        shape: &Shape,
        threads: u32,
        iters: u32,
        warmup: usize,
        reps: usize,
    ) -> Result<(f64, Outcome)> {
        let mut last = Outcome::default();
        let stats = measure(warmup, reps, || {
            last = self.run(a, shape, threads, iters)?;
            Ok::<_, Error>(())
        })?;
        Ok((per_second(last.served, &stats), last))
    }

    /// Remote frees: `rounds` × (every thread allocates; then every thread frees the block of a
    /// permuted other thread). Allocations per second over the whole, and the outcome.
    pub fn remote(
        &mut self,
        a: Allocator,
        shape: &Shape,
        threads: u32,
        rounds: u32,
    ) -> Result<(f64, Outcome)> {
        if a == Allocator::ThreadPool {
            return Err(
                grosr::Error::Config("a per-thread pool cannot free remotely".into()).into(),
            );
        }
        let args = self.args(shape, rounds, threads, a)?;
        self.ensure_ptrs(threads as usize)?;
        let ptrs = self.ptrs.as_ref().map_or(0, |p| p.ptr());
        let t = Instant::now();
        for round in 0..rounds {
            for kernel in ["bench_remote_alloc_", "bench_remote_free_"] {
                let name = format!("{kernel}{}", a.suffix());
                // SAFETY: (Args, uint8_t**, uint32_t, uint32_t) as the kernels declare; the
                // pointer array has `threads` entries and outlives the launches.
                unsafe {
                    self.base.launch_with(
                        &name,
                        threads.div_ceil(BLOCK),
                        BLOCK,
                        0,
                        (&args, &ptrs, &threads, &round),
                    )?
                };
            }
        }
        let out = self.outcome(&format!("{} remote frees", a.suffix()))?;
        let secs = t.elapsed().as_secs_f64();
        Ok((out.served as f64 / secs, out))
    }

    fn ensure_ptrs(&mut self, n: usize) -> Result<()> {
        if self.ptrs.as_ref().is_none_or(|p| p.len() < 8 * n) {
            self.ptrs = None;
            self.ptrs = Some(DeviceMem::zeroed(
                grosr::unstable::context(self.rt.gpu())?,
                8 * n,
            )?);
        }
        Ok(())
    }

    /// Out-of-memory round of grosr's heap: allocate `size`-byte blocks until null on every
    /// thread, then free them all. Returns (share of the heap handed out, in percent; bytes in
    /// use after the frees; failures counted).
    pub fn oom_round(&mut self, size: u32, threads: u32) -> Result<(f64, u64)> {
        let shape = Shape {
            name: "oom",
            sizes: Sizes::Fixed,
            min: size,
            max: size,
            outstanding: 1,
        };
        let args = self.args(&shape, u32::MAX, threads, Allocator::Grosr)?;
        self.ensure_ptrs(threads as usize)?;
        let heads = self.ptrs.as_ref().map_or(0, |p| p.ptr());
        let grid = threads.div_ceil(BLOCK);
        for kernel in ["bench_oom_fill", "bench_oom_free"] {
            // SAFETY: (Args, uint8_t**) as declared; heads has one entry per thread.
            unsafe {
                self.base
                    .launch_with(kernel, grid, BLOCK, 0, (&args, &heads))?
            };
            if kernel == "bench_oom_fill" {
                self.base.sync(WAIT)?;
            }
        }
        let out = self.outcome("grosr out-of-memory round")?;
        let after = self.rt.heap_stats()?.bytes_in_use;
        Ok((
            100.0 * (out.served * size as u64) as f64 / self.rt.heap_bytes().max(1) as f64,
            after,
        ))
    }
}

fn per_second(n: u64, s: &Stats) -> f64 {
    n as f64 / s.median.as_secs_f64().max(1e-9)
}

/// The seed's three shapes.
pub const SEED_SHAPES: [Shape; 3] = [
    Shape {
        name: "churn 64 B",
        sizes: Sizes::Fixed,
        min: 64,
        max: 64,
        outstanding: 1,
    },
    Shape {
        name: "16 outstanding, 64 B",
        sizes: Sizes::Fixed,
        min: 64,
        max: 64,
        outstanding: 16,
    },
    Shape {
        name: "mixed 64–512 B",
        sizes: Sizes::Pow2,
        min: 64,
        max: 512,
        outstanding: 1,
    },
];

/// The further shapes, run at full occupancy.
pub const MORE_SHAPES: [Shape; 3] = [
    Shape {
        name: "mixed 16–4096 B",
        sizes: Sizes::Uniform,
        min: 16,
        max: 4096,
        outstanding: 1,
    },
    Shape {
        name: "skewed 90% 64 B / 10% 4 KB",
        sizes: Sizes::Skewed,
        min: 64,
        max: 4096,
        outstanding: 1,
    },
    Shape {
        name: "drifting 16 B → 4 KB, 4 outstanding",
        sizes: Sizes::Drift,
        min: 16,
        max: 4096,
        outstanding: 4,
    },
];

/// The report's allocator section: builds its own runtime (8 GiB heap, or less where memory is
/// short; CUDA's malloc heap raised to 6 GiB), runs every shape on the three allocators, and
/// returns the tables (throughput, success, the shapes with large blocks under a denser pattern,
/// usable heap, init time). `quick` cuts iterations and repetitions (about 15 s instead of about
/// 60 s). `step` hears of each row as it is measured (a progress line). `GROSR_BENCH_CHECK_STRIDE` (bytes, a multiple of 16) replaces
/// [`BENCH_CHECK_STRIDE`], to see how much the harness's own memory traffic weighs.
pub fn report(quick: bool, step: &dyn Fn(&str)) -> Result<Vec<Table>> {
    let gpu = Gpu::open(0)?;
    let (free, _) = gpu.memory_info()?;
    let free = free as u64;
    let heap = (8u64 << 30).min(free / 3);
    let cuda_heap = (6u64 << 30).min(free / 4);
    set_cuda_malloc_heap(&gpu, cuda_heap as usize)?;
    let rt = builder(heap).build()?;
    let mut b = AllocBench::new(&rt)?;
    let stride = match std::env::var("GROSR_BENCH_CHECK_STRIDE") {
        Ok(v) => v.parse().map_err(|_| {
            grosr::Error::Config(format!(
                "GROSR_BENCH_CHECK_STRIDE={v:?} is not a number of bytes"
            ))
        })?,
        Err(_) => BENCH_CHECK_STRIDE,
    };
    b.set_check_stride(stride)?;
    let cold = rt.heap_init_time().unwrap_or_default();

    let (warm, reps) = if quick { (1, 3) } else { (2, 7) };
    let seed_iters = 200;
    let (cuda_seed_iters, cuda_full_iters) = if quick { (20, 2) } else { (200, 4) };
    let small = 16_384;
    let cols = ["grosr", "CUDA malloc", "per-thread pool"];
    let mut rate = Table::new(
        "alloc_rate",
        "Device allocators: allocations per second (alloc → write → check → free)",
        "M allocs/s",
        true,
        &cols,
    );
    let mut success = Table::new(
        "alloc_success",
        "Device allocators: allocations served",
        "%",
        true,
        &cols,
    );
    let allocators = [
        Allocator::Grosr,
        Allocator::CudaMalloc,
        Allocator::ThreadPool,
    ];
    let mut splits = Vec::new();
    // Slow-path counts exist only in a diagnostics build (GROSR_DEFINES=GROSR_HEAP_SLOW_COUNTS
    // here, since this section builds its own runtime).
    let count_slow = rt.info().diagnostics;
    let mut row = |b: &mut AllocBench, label: String, shape: &Shape, full: bool| -> Result<()> {
        let (mut r, mut s) = (Vec::new(), Vec::new());
        for a in allocators {
            let threads = if full {
                b.full_threads(&format!("bench_loop_{}", a.suffix()))?
            } else {
                small
            };
            let (iters, w, n) = match (a, full) {
                (Allocator::CudaMalloc, false) => (cuda_seed_iters, 0, 1),
                (Allocator::CudaMalloc, true) => (cuda_full_iters, 0, 1),
                _ => (seed_iters, warm, reps),
            };
            let count_slow = count_slow && a == Allocator::Grosr;
            let slow_before = if count_slow {
                rt.heap_stats()?.slow_paths
            } else {
                SlowPaths::default()
            };
            let (v, out) = b.rate(a, shape, threads, iters, w, n)?;
            if count_slow {
                let slow = rt.heap_stats()?.slow_paths.since(&slow_before);
                let line = format!("{label} (grosr), all runs: {slow:?}");
                step(&line); // now: a later row may not finish
                splits.push(line);
            }
            step(&format!(
                "{label} ({}): {:.1} M allocs/s",
                a.suffix(),
                v / 1e6
            ));
            if out.split.iter().any(|&c| c > 0) {
                let per = |c: u64| c as f64 / (out.served + out.failed).max(1) as f64;
                splits.push(format!(
                    "{label} ({}): clocks per allocation: allocate {:.0}, free {:.0}, write + check {:.0}",
                    a.suffix(),
                    per(out.split[0]),
                    per(out.split[1]),
                    per(out.split[2])
                ));
            }
            r.push(Some(v / 1e6));
            s.push(Some(out.success_pct()));
        }
        rate.push(label.clone(), r);
        success.push(label, s);
        Ok(())
    };
    // The seed's three modes at its 16 384 threads, then every mode at full occupancy.
    let runs = SEED_SHAPES.iter().map(|s| (s, false)).chain(
        SEED_SHAPES
            .iter()
            .chain(MORE_SHAPES.iter())
            .map(|s| (s, true)),
    );
    for (shape, full) in runs {
        let threads = if full {
            "full occupancy"
        } else {
            "16 384 threads"
        };
        row(&mut b, format!("{}, {threads}", shape.name), shape, full)?;
    }
    // Remote frees (a per-thread pool cannot do them).
    let remote_shape = SEED_SHAPES[2];
    let threads = b.full_threads("bench_remote_alloc_grosr")?;
    let rounds = if quick { 4 } else { 20 };
    let (g, go) = b.remote(Allocator::Grosr, &remote_shape, threads, rounds)?;
    let (c, co) = b.remote(Allocator::CudaMalloc, &remote_shape, threads, 1)?;
    step("remote frees: done");
    let label = "remote frees, mixed 64–512 B, full occupancy".to_string();
    rate.push(label.clone(), vec![Some(g / 1e6), Some(c / 1e6), None]);
    success.push(
        label,
        vec![Some(go.success_pct()), Some(co.success_pct()), None],
    );
    // The shapes with large blocks again, a word every 256 B: the harness's traffic now weighs.
    b.set_check_stride(FILLED_CHECK_STRIDE)?;
    let mut filled = Table::new(
        "alloc_rate_filled",
        "Device allocators, large blocks more filled: a 16-byte word every 256 B written and checked",
        "M allocs/s",
        true,
        &["grosr", "per-thread pool"],
    );
    for shape in SEED_SHAPES[2..].iter().chain(MORE_SHAPES.iter()) {
        let mut r = Vec::new();
        for a in [Allocator::Grosr, Allocator::ThreadPool] {
            let threads = b.full_threads(&format!("bench_loop_{}", a.suffix()))?;
            let (v, _) = b.rate(a, shape, threads, seed_iters, warm, reps)?;
            step(&format!(
                "{}, every 256 B ({}): {:.1} M allocs/s",
                shape.name,
                a.suffix(),
                v / 1e6
            ));
            r.push(Some(v / 1e6));
        }
        filled.push(format!("{}, full occupancy", shape.name), r);
    }
    filled.notes.push(
        "Same shapes and runs as the first table but for the pattern. The pool's column is the \
         harness's own ceiling; the pool reuses one slot per thread, while an allocator hands out \
         blocks spread over its slabs."
            .into(),
    );
    b.set_check_stride(stride)?;
    rate.notes.extend(splits);
    rate.notes.push(format!(
        "Same process, same GPU ({}). grosr and the pool: {seed_iters} iterations per thread, median of {reps}; \
         CUDA malloc: {cuda_seed_iters} iterations (16 384 threads) or {cuda_full_iters} (full occupancy), one run \
         (it is three orders of magnitude slower). Full occupancy = the occupancy API's grid for each kernel \
         (each built for at least 4 blocks of 256 threads per SM; grosr's loop kernel gets {}). grosr heap {} MiB, CUDA malloc heap {} MiB. \
         Every allocation is written and checked: {} (the GPU tests check every 16 bytes of every block; the \
         last table, a word every 256 B); the per-thread pool does no allocator work, so its column is the \
         harness's own ceiling. \
         Targets (H200): full occupancy churn 64 B ≥ 4500, 16 outstanding ≥ 6200, mixed 64–512 B ≥ 1600, \
         mixed 16–4096 B ≥ 1000 M allocs/s, each ≥ 1000× CUDA malloc.",
        rt.info().device,
        b.min_blocks()?,
        heap >> 20,
        cuda_heap >> 20,
        if stride == BENCH_CHECK_STRIDE {
            "the block's first and last 16 bytes".to_string()
        } else {
            format!("16-byte words {stride} bytes apart and the block's last 16 bytes")
        }
    ));

    let mut oom = Table::new(
        "alloc_oom",
        "grosr heap: share usable before out-of-memory (allocate until null, then free all)",
        "%",
        true,
        &["usable", "in use after frees"],
    );
    let threads = b.full_threads("bench_oom_fill")?;
    for size in [64u32, 1024] {
        rt.heap_reset()?;
        let (share, after) = b.oom_round(size, threads)?;
        step(&format!(
            "out-of-memory round, {size} B: {share:.1}% usable"
        ));
        oom.push(
            format!("{size} B blocks"),
            vec![
                Some(share),
                Some(100.0 * after as f64 / rt.heap_bytes().max(1) as f64),
            ],
        );
    }
    oom.notes.push(
        "Target: ≥ 95% usable at 64 B; 0% in use after the frees (the heap recovers).".into(),
    );

    let warm_init = measure(1, if quick { 3 } else { 10 }, || {
        rt.heap_reset().map(|_| ())
    })?;
    let mut init = Table::new(
        "alloc_init",
        "grosr heap initialisation",
        "ms",
        false,
        &["time"],
    );
    init.push(
        "cold (allocate + initialise, at build)",
        vec![Some(cold.as_secs_f64() * 1e3)],
    );
    init.push(
        "warm (re-initialise, median)",
        vec![Some(warm_init.median.as_secs_f64() * 1e3)],
    );
    init.notes.push(format!(
        "Heap of {} MiB: metadata written by host copies (no kernel beside the scheduler).",
        heap >> 20
    ));
    drop(b);
    drop(gpu);
    Ok(vec![rate, success, filled, oom, init])
}
