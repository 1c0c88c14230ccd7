//! The resident runtime: builds the scheduler kernel, keeps it running, takes submissions.
//!
//! Read top-down: `builder` (what to run and how big; compile and launch), `startup` (where
//! build's time goes, word of a long compile), `memory` (where the shared arrays live),
//! `occupancy` and `sm_claim` (how many blocks on which SMs), `lifecycle` (start, stop, health,
//! drop), `submit` (records onto the ring) and `job` (waiting for a submission).

mod builder;
pub(crate) mod cpu;
mod job;
mod lifecycle;
mod memory;
mod occupancy;
mod rings;
mod sm_claim;
mod startup;
mod submit;
mod task_trace;
pub(crate) use task_trace::GraphEdges;
mod tuning;

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32 as StdAtomicU32};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::alloc::{DeviceHeap, HeapStats};
use crate::codegen::TaskInfo;
use crate::driver::{Context, Function, Gpu, Module, Stream};
use crate::error::{Error, Result};
use crate::record::Task;

use builder::Config;
pub use builder::{Backend, Precompiled, RuntimeBuilder};
pub use job::Job;
use memory::Memory;
pub use rings::Priority;
use sm_claim::SmClaim;
pub use startup::{CompileProgress, PROGRESS_AFTER, Startup};
pub use tuning::{Optimize, Tuning};

/// Facts about a running runtime, for reports.
#[derive(Clone, Debug)]
pub struct RuntimeInfo {
    /// The GPU's name.
    pub device: String,
    /// Compute capability, major * 10 + minor.
    pub arch: u32,
    /// SMs on the GPU.
    pub sm_count: u32,
    /// SMs the scheduler was sized for.
    pub sms_used: u32,
    /// Resident scheduler blocks per SM (occupancy API).
    pub blocks_per_sm: u32,
    /// Blocks in the persistent grid.
    pub grid_blocks: u32,
    /// The driver's CUDA version (e.g. 13000).
    pub driver_version: i32,
    /// NVRTC's version.
    pub nvrtc_version: (i32, i32),
    /// Where `build` spent its time (compile, cache, load, launch) and the module's size.
    pub startup: Startup,
    /// The settings compiled in.
    pub tuning: Tuning,
    /// Whether the diagnostics are compiled in ([`RuntimeBuilder::diagnostics`]).
    pub diagnostics: bool,
    /// Whether jobs can be cancelled ([`RuntimeBuilder::cancellable`]; always on the CPU
    /// backend).
    pub cancellable: bool,
    /// What the module was compiled for ([`RuntimeBuilder::optimize`]), as asked: with NVRTC
    /// older than 12.8, `Compile` compiles as `Speed` would.
    pub optimize: Optimize,
    /// Submission rings, each with its own ingest warp ([`RuntimeBuilder::submit_rings`]; 0 on
    /// the CPU backend).
    pub submit_rings: u32,
}

/// A persistent task scheduler running on one GPU, or on host threads ([`Backend::Cpu`]).
///
/// Built by [`Runtime::builder`]. Many threads may [`submit`](Runtime::submit) at once; each
/// submission is a [`Job`] that completes when its tasks and everything they spawned have run.
/// Dropping the runtime stops the kernel and frees everything, unless the kernel never stops (a
/// task that never returns, or a lowered graph's kernel still running): then its memory, module
/// and context are kept for good, with a line on stderr (`examples/stuck_task.rs` shows it).
pub struct Runtime {
    engine: Engine,
}

/// What runs the tasks.
enum Engine {
    Gpu(Box<GpuRuntime>),
    Cpu(Box<cpu::CpuRuntime>),
}

impl Runtime {
    /// A builder with no task types and default sizes.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The backend this runtime runs on.
    pub fn backend(&self) -> Backend {
        match &self.engine {
            Engine::Gpu(_) => Backend::Gpu,
            Engine::Cpu(_) => Backend::Cpu,
        }
    }

    /// The GPU runtime, or an error naming `what` needs one (on the CPU backend).
    pub(crate) fn gpu_engine(&self, what: &str) -> Result<&GpuRuntime> {
        match &self.engine {
            Engine::Gpu(g) => Ok(g),
            Engine::Cpu(_) => Err(Error::Unsupported(format!(
                "{what} on the CPU backend (Backend::Cpu) yet"
            ))),
        }
    }

    /// The CPU runtime, on the CPU backend.
    pub(crate) fn cpu_engine(&self) -> Option<&cpu::CpuRuntime> {
        match &self.engine {
            Engine::Cpu(c) => Some(c),
            Engine::Gpu(_) => None,
        }
    }

    /// Facts about the GPU (or the CPU backend's threads) and the scheduler's size.
    pub fn info(&self) -> &RuntimeInfo {
        match &self.engine {
            Engine::Gpu(g) => &g.info,
            Engine::Cpu(c) => &c.info,
        }
    }

    /// Kind numbers by task type.
    pub(crate) fn kind_map(&self) -> &HashMap<TypeId, u32> {
        match &self.engine {
            Engine::Gpu(g) => &g.kinds,
            Engine::Cpu(c) => &c.kinds,
        }
    }

    /// The kind number of `T`, or an error if `T` is not registered.
    pub fn kind_of<T: Task + 'static>(&self) -> Result<u32> {
        self.kind_map()
            .get(&TypeId::of::<T>())
            .copied()
            .ok_or(Error::UnregisteredTask(T::C_NAME))
    }

    /// The compiled module (scheduler and baseline kernels); the GPU backend's only.
    pub(crate) fn module(&self) -> Result<&Module> {
        Ok(self.gpu_engine("a compiled module")?.module())
    }

    /// The device address and size in bytes of a `__device__` variable of the module (one
    /// declared in [`RuntimeBuilder::cuda`] code, say).
    pub fn global(&self, name: &str) -> Result<(u64, usize)> {
        self.gpu_engine("`__device__` variables")?.global(name)
    }

    /// Copies the `__device__` variable `name` to the host as elements of `T` (as many as fit
    /// its size); works while the scheduler runs.
    pub fn read_global<T: bytemuck::Pod>(&self, name: &str) -> Result<Vec<T>> {
        self.gpu_engine("`__device__` variables")?.read_global(name)
    }

    /// Copies `data` over the start of the `__device__` variable `name` (an error if it does not
    /// fit); works while the scheduler runs. For diagnostics, such as resetting a trace's
    /// counters between launches: the scheduler's own variables are not for overwriting.
    pub fn write_global<T: bytemuck::Pod>(&self, name: &str, data: &[T]) -> Result<()> {
        self.gpu_engine("`__device__` variables")?
            .write_global(name, data)
    }

    /// What the device heap holds: bytes and allocations in use per size class, failures.
    /// Works while the scheduler runs (by copies); an error if the runtime has no heap. On the
    /// CPU backend, the allocations and bytes in use only (the host heap has no classes).
    pub fn heap_stats(&self) -> Result<HeapStats> {
        match &self.engine {
            Engine::Gpu(g) => g.heap_stats(),
            Engine::Cpu(c) => c.heap_stats(),
        }
    }

    /// What the trace recorded since the last call ([`RuntimeBuilder::trace`] turns it on;
    /// [`Trace::to_chrome_json`](crate::Trace::to_chrome_json) writes it for Perfetto); the
    /// next call gives what came after: [`Error::Config`] when the runtime was built without
    /// tracing. On the CPU backend the tracks are its workers, on a GPU its scheduler warps
    /// (take it while the traced jobs are done: tasks running meanwhile are counted as
    /// dropped, or may be misread).
    pub fn trace(&self) -> Result<crate::Trace> {
        match &self.engine {
            Engine::Cpu(c) => c.executor().take_trace().ok_or_else(|| {
                Error::Config("tracing is off: build with RuntimeBuilder::trace(events)".into())
            }),
            Engine::Gpu(g) => match g.task_trace.as_ref() {
                Some(t) => t.take(g.tasks.iter().map(|t| t.name).collect()),
                None => Err(Error::Config(
                    "tracing is off: build with RuntimeBuilder::trace(events)".into(),
                )),
            },
        }
    }

    /// The device heap's size in bytes (0 without a heap); on the CPU backend, the most that
    /// bodies' `ctx.alloc` may hold at once.
    pub fn heap_bytes(&self) -> u64 {
        match &self.engine {
            Engine::Gpu(g) => g.heap_bytes(),
            Engine::Cpu(c) => c.heap_bytes(),
        }
    }

    /// How long carving and initialising the heap took at build (allocation included).
    pub fn heap_init_time(&self) -> Option<Duration> {
        self.gpu_engine("").ok().and_then(|g| g.heap_init_time())
    }

    /// Empties the device heap: every allocation is forgotten (pointers to it dangle; on the
    /// CPU backend, accesses through them fail their tasks). Only with the scheduler stopped and
    /// no kernel of yours running; returns how long it took.
    pub fn heap_reset(&self) -> Result<Duration> {
        match &self.engine {
            Engine::Gpu(g) => g.heap_reset(),
            Engine::Cpu(c) => c.heap_reset(),
        }
    }

    /// The GPU this runtime runs on, for allocating task data ([`DeviceBuffer`](crate::DeviceBuffer));
    /// on the CPU backend, the host memory its tasks address.
    pub fn gpu(&self) -> &Gpu {
        match &self.engine {
            Engine::Gpu(g) => &g.gpu,
            Engine::Cpu(c) => c.gpu(),
        }
    }

    /// How many tasks of type `T` have run since the runtime was built, across
    /// [`stop`](Runtime::stop) and [`start`](Runtime::start); readable while stopped.
    pub fn executed<T: Task + 'static>(&self) -> Result<u64> {
        let kind = self.kind_of::<T>()? as usize;
        Ok(self.executed_all()?[kind])
    }

    /// Tasks run per kind (in registration order), as [`executed`](Runtime::executed) counts them.
    pub fn executed_all(&self) -> Result<Vec<u64>> {
        match &self.engine {
            Engine::Gpu(g) => g.executed_all(),
            Engine::Cpu(c) => Ok(c.executed_all()),
        }
    }

    /// Submits `records` as one job and returns at once; waits only while the ring is full
    /// (at most the builder's `submit_timeout`).
    pub fn submit<T: Task + 'static>(&self, records: &[T]) -> Result<Job<'_>> {
        match &self.engine {
            Engine::Gpu(g) => g.submit(records),
            Engine::Cpu(c) => c.submit(self.kind_of::<T>()?, bytemuck::cast_slice(records)),
        }
    }

    /// [`submit`](Runtime::submit) at `priority`. On a GPU with three or more submission rings
    /// ([`RuntimeBuilder::submit_rings`]; 8 by default), the last ring is kept for
    /// [`Priority::High`] jobs: normal jobs never use it, and its block runs no block task, so a
    /// high job of up to 32 lane tasks or one warp task runs at once on that ring's ingest
    /// warp, however busy the GPU is with normal work. Larger high jobs, block tasks, and what
    /// high tasks spawn beyond a few rounds go through the queues like any work. With fewer
    /// rings, and on the CPU backend, it is [`submit`](Runtime::submit).
    ///
    /// ```
    /// use grosr::{DeviceBuffer, DevicePtr, Priority, Runtime};
    ///
    /// #[grosr::task(granularity = "lane", rust = |task, ctx| { ctx.write(task.out, 0u32, 1u32); })]
    /// pub struct Urgent { pub out: DevicePtr<u32> }
    ///
    /// let rt = Runtime::builder()
    /// #   .backend(grosr::Backend::Cpu) // doctests run on host threads: no GPU needed
    ///     .task::<Urgent>()
    ///     .build()?;
    /// let out = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
    /// rt.submit_priority(&[Urgent { out: out.ptr() }], Priority::High)?.wait()?;
    /// assert_eq!(out.to_vec()?, vec![1]);
    /// # Ok::<(), grosr::Error>(())
    /// ```
    pub fn submit_priority<T: Task + 'static>(
        &self,
        records: &[T],
        priority: Priority,
    ) -> Result<Job<'_>> {
        match &self.engine {
            Engine::Gpu(g) => g.submit_priority(records, priority),
            Engine::Cpu(c) => c.submit(self.kind_of::<T>()?, bytemuck::cast_slice(records)),
        }
    }

    /// [`submit`](Runtime::submit), waiting at most `timeout` for ring space (at most
    /// [`MAX_TIMEOUT`](crate::MAX_TIMEOUT): `Duration::MAX` waits that long, not forever).
    pub fn submit_timeout<T: Task + 'static>(
        &self,
        records: &[T],
        timeout: Duration,
    ) -> Result<Job<'_>> {
        match &self.engine {
            Engine::Gpu(g) => g.submit_timeout(records, timeout),
            Engine::Cpu(c) => c.submit(self.kind_of::<T>()?, bytemuck::cast_slice(records)),
        }
    }

    /// Submits `items` tasks of one record as one job: `task`'s body runs once per item with
    /// `ctx.index()` = 0, 1, .., `items` − 1 (each a task of its granularity), for
    /// data-parallel work; 0 items is a job that is done at once. The CPU backend runs it; a GPU
    /// runtime does not yet ([`Error::Unsupported`]).
    ///
    /// ```
    /// use grosr::{DeviceBuffer, DevicePtr, Runtime};
    ///
    /// #[grosr::task(granularity = "lane", rust = |task, ctx| {
    ///     ctx.write(task.out, ctx.index(), ctx.index() * ctx.index());
    /// })]
    /// pub struct Squares { pub out: DevicePtr<u32> }
    ///
    /// let rt = Runtime::builder()
    /// #   .backend(grosr::Backend::Cpu) // doctests run on host threads: no GPU needed
    ///     .task::<Squares>()
    ///     .build()?;
    /// let out = DeviceBuffer::<u32>::zeroed(rt.gpu(), 4)?;
    /// rt.submit_range(&Squares { out: out.ptr() }, 4)?.wait()?;
    /// assert_eq!(out.to_vec()?, vec![0, 1, 4, 9]);
    /// # Ok::<(), grosr::Error>(())
    /// ```
    pub fn submit_range<T: Task + 'static>(&self, task: &T, items: u32) -> Result<Job<'_>> {
        match &self.engine {
            Engine::Gpu(_) => Err(Error::Unsupported(format!(
                "range submits (here of `{}`) on a GPU: not yet; the CPU backend runs them",
                T::C_NAME
            ))),
            Engine::Cpu(c) => c.submit_range(self.kind_of::<T>()?, bytemuck::bytes_of(task), items),
        }
    }

    /// Submits raw records of kind `kind` (`record_size` bytes each). For tests of the GPU's
    /// handling of corrupt input (feature `unstable`); use [`submit`](Runtime::submit).
    #[cfg(feature = "unstable")]
    #[doc(hidden)]
    pub fn submit_raw(&self, kind: u32, record_size: usize, bytes: &[u8]) -> Result<Job<'_>> {
        self.gpu_engine("raw submissions")?
            .submit_raw(kind, record_size, bytes)
    }

    /// Whether the scheduler runs (the kernel, or the CPU backend's threads).
    pub fn is_running(&self) -> bool {
        match &self.engine {
            Engine::Gpu(g) => g.is_running(),
            Engine::Cpu(c) => c.is_running(),
        }
    }

    /// Stops the scheduler (jobs still running are abandoned: waiting on them returns
    /// [`Error::Stopped`]). On a GPU, waits at most 10 s for the kernel to exit.
    pub fn stop(&self) -> Result<()> {
        match &self.engine {
            Engine::Gpu(g) => g.stop(),
            Engine::Cpu(c) => c.stop(),
        }
    }

    /// Starts the scheduler again after [`stop`](Runtime::stop).
    pub fn start(&self) -> Result<()> {
        match &self.engine {
            Engine::Gpu(g) => g.start(),
            Engine::Cpu(c) => c.start(),
        }
    }

    /// Baseline launchers over this runtime's compiled module (the GPU backend's). Not part of
    /// the user API (feature `unstable`): the graph strategies use it, and grosr's lab and tests.
    #[cfg(feature = "unstable")]
    #[doc(hidden)]
    pub fn baselines(&self) -> Result<crate::baseline::Baselines<'_>> {
        self.gpu_engine("baseline kernels")?.baselines()
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.engine {
            Engine::Gpu(g) => g.fmt(f),
            Engine::Cpu(c) => c.fmt(f),
        }
    }
}

/// The GPU backend: the scheduler kernel and everything it runs with.
pub(crate) struct GpuRuntime {
    info: RuntimeInfo,
    tasks: Vec<TaskInfo>,
    kinds: HashMap<TypeId, u32>,
    config: Config,
    /// This runtime among the context's schedulers (copy streams, fences).
    id: u64,
    /// The submission rings' host sides (`rings`).
    rings: Arc<rings::Rings>,
    running: AtomicBool,
    generation: StdAtomicU32,
    fault: OnceLock<Error>,
    /// Held by `stop`, `launch` and the executed counts' reads: a read never sees a stop or a
    /// start half done.
    lifecycle: Mutex<()>,
    /// Tasks run per kind by the scheduler's earlier launches (the init kernel clears the
    /// device's counts at every launch; `stop` adds them here once the kernel has exited).
    executed_before: Mutex<Vec<u64>>,
    /// Held across a cancel's check and its copy: two cancels of jobs in one slot (the first
    /// job's ending meanwhile) land in the order they checked, so the older never overwrites
    /// the newer job's cancel word.
    cancelling: std::sync::Mutex<()>,
    /// Baseline launchers' streams not in use (`crate::baseline`): reused, not destroyed.
    pub(crate) idle_baseline_streams: Mutex<Vec<Stream>>,
    // Every driver object holds its context, so the context outlives them in any drop order.
    // Memory, heap and module are dropped in Drop once the kernel has exited, or leaked there
    // while it still runs (the module unloads when its last holder, it or `kernels`, goes).
    stream: Stream,
    kernels: Kernels,
    memory: std::mem::ManuallyDrop<Memory>,
    heap: std::mem::ManuallyDrop<Option<DeviceHeap>>,
    /// The task timeline's buffers (`RuntimeBuilder::trace`), which the kernel writes.
    task_trace: std::mem::ManuallyDrop<Option<task_trace::TaskTraceBuffers>>,
    _module: std::mem::ManuallyDrop<Module>,
    /// Kept for good with the rest when the kernel never stops: it still holds the SMs, and a
    /// runtime built beside it would hang.
    claim: std::mem::ManuallyDrop<SmClaim>,
    gpu: Gpu,
    /// The GPU's context (what `gpu.context()` gives a GPU runtime's `gpu`).
    ctx: Context,
}

impl GpuRuntime {
    /// The GPU's context.
    pub(crate) fn context(&self) -> &Context {
        &self.ctx
    }

    /// Facts about the GPU and the scheduler's size.
    pub fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    /// The registered task types in kind order.
    pub fn tasks(&self) -> &[TaskInfo] {
        &self.tasks
    }

    /// The kind number of `T`, or an error if `T` is not registered.
    pub fn kind_of<T: Task + 'static>(&self) -> Result<u32> {
        self.kinds
            .get(&TypeId::of::<T>())
            .copied()
            .ok_or(Error::UnregisteredTask(T::C_NAME))
    }

    /// The compiled module (scheduler and baseline kernels).
    pub(crate) fn module(&self) -> &Module {
        &self._module
    }

    /// The device address and size in bytes of a `__device__` variable of the module (one
    /// declared in [`RuntimeBuilder::cuda`] code, say).
    pub fn global(&self, name: &str) -> Result<(u64, usize)> {
        self._module.global(name)
    }

    /// Copies the `__device__` variable `name` to the host as elements of `T` (as many as fit
    /// its size); works while the scheduler runs.
    pub fn read_global<T: bytemuck::Pod>(&self, name: &str) -> Result<Vec<T>> {
        let (addr, size) = self.global(name)?;
        let mut out = vec![T::zeroed(); size / std::mem::size_of::<T>().max(1)];
        // SAFETY: the module owns `size` bytes at `addr`, and out covers at most that many.
        unsafe { crate::driver::read_device(&self.ctx, addr, &mut out) }?;
        Ok(out)
    }

    /// Copies `data` over the start of the `__device__` variable `name` (an error if it does not
    /// fit); works while the scheduler runs. For diagnostics, such as resetting a trace's
    /// counters between launches: the scheduler's own variables are not for overwriting.
    pub fn write_global<T: bytemuck::Pod>(&self, name: &str, data: &[T]) -> Result<()> {
        let (addr, size) = self.global(name)?;
        if std::mem::size_of_val(data) > size {
            return Err(Error::Config(format!(
                "{name} holds {size} bytes, not {}",
                std::mem::size_of_val(data)
            )));
        }
        // SAFETY: the module owns `size` bytes at `addr`, and data covers at most that many.
        unsafe { crate::driver::write_device(&self.ctx, addr, data) }
    }

    /// What the device heap holds: bytes and allocations in use per size class, failures.
    /// Works while the scheduler runs (by copies); an error if the runtime has no heap.
    pub fn heap_stats(&self) -> Result<HeapStats> {
        let heap = self.heap()?;
        heap.stats()
    }

    /// The device heap's size in bytes (0 without a heap).
    pub fn heap_bytes(&self) -> u64 {
        self.heap.as_ref().map_or(0, |h| h.bytes())
    }

    /// How long carving and initialising the heap took at build (allocation included).
    pub fn heap_init_time(&self) -> Option<Duration> {
        self.heap.as_ref().map(|h| h.init_time)
    }

    /// Empties the device heap: every allocation is forgotten (pointers to it dangle). Only
    /// with the scheduler stopped and no kernel of yours running; returns how long it took.
    pub fn heap_reset(&self) -> Result<Duration> {
        let heap = self.heap()?;
        // Held across the check and the reset: a start meanwhile would launch onto the heap.
        let _guard = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_running() {
            return Err(Error::Config(
                "heap_reset needs the scheduler stopped: call Runtime::stop first".into(),
            ));
        }
        heap.init(&self.stream)
    }

    fn heap(&self) -> Result<&DeviceHeap> {
        self.heap
            .as_ref()
            .ok_or_else(|| Error::Config("this runtime was built with heap_bytes(0)".into()))
    }

    /// Tasks run per kind (in registration order) since the build, across stops and starts;
    /// while stopped, what the earlier launches ran.
    pub fn executed_all(&self) -> Result<Vec<u64>> {
        let _guard = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        let before = self
            .executed_before
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match self.health() {
            Err(Error::Stopped) => return Ok(before),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let mut counts = self.launch_executed()?;
        for (c, b) in counts.iter_mut().zip(before) {
            *c = c.saturating_add(b);
        }
        Ok(counts)
    }

    /// What the scheduler's current (or last) launch counted per kind.
    fn launch_executed(&self) -> Result<Vec<u64>> {
        let mut counts = vec![0u64; self.tasks.len()];
        self.memory
            .device
            .read_at(self.memory.executed_off, &mut counts)?;
        // A task skipped by a cancel takes its count back before the round adds it: read in
        // between, a count of 0 shows as -1 (cuda/grosr_warp.cuh, `skip_cancelled`).
        for c in &mut counts {
            if *c > i64::MAX as u64 {
                *c = 0;
            }
        }
        Ok(counts)
    }

    /// Folds the launch's counts into `executed_before` once its kernel has exited (`stop`,
    /// under the lifecycle lock: the next launch clears them).
    pub(super) fn keep_executed(&self) -> Result<()> {
        let counts = self.launch_executed()?;
        let mut before = self
            .executed_before
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (b, c) in before.iter_mut().zip(counts) {
            *b = b.saturating_add(c);
        }
        Ok(())
    }

    fn kind_name(&self, kind: u32) -> String {
        self.tasks
            .get(kind as usize)
            .map_or_else(|| format!("kind {kind}"), |t| t.name.to_string())
    }
}

impl std::fmt::Debug for GpuRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tasks: Vec<&str> = self.tasks.iter().map(|t| t.name).collect();
        f.debug_struct("Runtime")
            .field("info", &self.info)
            .field("tasks", &tasks)
            .field("running", &self.is_running())
            .field("fault", &self.fault.get())
            .finish_non_exhaustive()
    }
}

/// The scheduler's kernels, loaded eagerly at build.
struct Kernels {
    scheduler: Function,
    init: Function,
}

#[cfg(test)]
mod gpu_tests {
    /// The heap's init kernel writes, at build and at `heap_reset`, exactly the empty heap the
    /// host's `empty_meta` describes (a heap of 40 slabs: a partial pool word).
    #[test]
    #[ignore = "needs an NVIDIA GPU"]
    fn the_heap_init_kernel_writes_the_empty_heap_at_build_and_reset() {
        let rt = crate::Runtime::builder()
            .max_sms(2)
            .heap_bytes(40 << crate::alloc::SLAB_SHIFT)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let heap = rt.gpu_engine("the heap").unwrap().heap().unwrap();
        let (now, empty) = heap.meta_now_and_empty().unwrap();
        assert!(
            now == empty,
            "the metadata after build is not an empty heap's"
        );
        rt.stop().unwrap();
        // Scribble over it, then reset.
        heap.meta_fill_for_test(0xA5).unwrap();
        rt.heap_reset().unwrap();
        let (now, empty) = heap.meta_now_and_empty().unwrap();
        assert!(
            now == empty,
            "the metadata after heap_reset is not an empty heap's"
        );
    }
}
