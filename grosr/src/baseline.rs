//! Baseline launches: the same task bodies run as ordinary kernels launched by the host.
//!
//! The persistent scheduler holds every SM it was sized for, so a baseline kernel could never
//! be scheduled beside it: baselines need the runtime stopped (or built with `max_sms` below
//! the GPU's SM count, leaving SMs free).

use std::mem::ManuallyDrop;
use std::time::Duration;

use crate::driver::{DeviceMem, Function, KernelArgs, RecordArg, Stream};
use crate::error::{Error, Result, from_device_code};
use crate::record::{DevicePtr, Granularity, Task};
use crate::runtime::GpuRuntime;

/// Launches `grosr_single_<T>` / `grosr_bulk_<T>` kernels on a stream of their own.
///
/// A [`sync`](Baselines::sync) that times out leaves its kernels running, on memory they read
/// and write: while the stream has work, frees of the context's device memory wait for it (a
/// fence over the stream), and dropping the launchers waits for it too (at most
/// 10 s). Past that the context keeps the stream and its fence until the kernels
/// end: frees wait for them still, and a runtime dropped meanwhile keeps its module and memory
/// (as it does for a scheduler that never stops).
pub struct Baselines<'rt> {
    rt: &'rt GpuRuntime,
    stream: ManuallyDrop<Stream>,
    status: DeviceMem,
    /// The context's fence over `stream`.
    fence: u64,
    /// Set by [`settle`](Baselines::settle): whether the stream's work all ended.
    settled: Option<bool>,
}

/// How long dropping the launchers waits for kernels a timed-out sync left running.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

impl GpuRuntime {
    /// Baseline launchers over this runtime's compiled module. Fails while the scheduler holds
    /// every SM (stop it first, or build it with `max_sms` below the SM count). Not part of the
    /// user API: the graph strategies use it, and grosr's lab and tests (whose launchers type,
    /// `unstable::Baselines`, needs the `unstable` feature).
    #[doc(hidden)]
    pub fn baselines(&self) -> Result<Baselines<'_>> {
        self.room_for_baselines()?;
        let ctx = self.context();
        let status = DeviceMem::zeroed(ctx, 4)?;
        let stream = ManuallyDrop::new(self.baseline_stream()?);
        Ok(Baselines {
            rt: self,
            fence: ctx.fence_stream(&stream),
            stream,
            status,
            settled: None,
        })
    }

    /// An idle baseline stream, else a new one (an [`Error::Busy`] where too many streams are
    /// open beside a running scheduler: [`Stream::new`]). A launcher's stream is reused once it
    /// drops and destroyed only with the runtime: beside a running kernel, `cuStreamCreate`
    /// stopped returning after about 33 streams in a row (H100, driver 580; benches/NOTES.md,
    /// "Audits"), so a stream is not made per launcher.
    fn baseline_stream(&self) -> Result<Stream> {
        let idle = self.idle_baseline_streams().pop();
        match idle {
            Some(stream) => Ok(stream),
            None => Stream::new(self.context()),
        }
    }

    fn idle_baseline_streams(&self) -> std::sync::MutexGuard<'_, Vec<Stream>> {
        self.idle_baseline_streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the idle baseline streams to the context to destroy once no kernel runs (a
    /// runtime's drop, after its stop).
    pub(crate) fn close_baseline_streams(&self) {
        let idle = std::mem::take(&mut *self.idle_baseline_streams());
        for stream in idle {
            self.context()
                .destroy_when_idle(Box::new(move || drop(stream)));
        }
    }

    /// An error while the scheduler runs on every SM: a kernel launched beside it would wait
    /// for SMs it never gives back (until a stop), still holding what it uses.
    pub(crate) fn room_for_baselines(&self) -> Result<()> {
        if self.is_running() && self.info().sms_used >= self.info().sm_count {
            return Err(crate::graph::lowered_beside_scheduler());
        }
        Ok(())
    }
}

fn threads(g: Granularity) -> u32 {
    match g {
        Granularity::Lane | Granularity::Warp => 32,
        Granularity::Block => crate::layout::BLOCK_THREADS,
    }
}

impl Baselines<'_> {
    fn function(&self, prefix: &str, name: &str) -> Result<Function> {
        self.rt.module().function(&format!("{prefix}_{name}"))
    }

    /// Launches one task as its own kernel (no synchronisation).
    pub fn launch_single<T: Task + 'static>(&self, task: &T) -> Result<()> {
        let kind = self.rt.kind_of::<T>()?;
        self.launch_single_kind(kind, bytemuck::bytes_of(task))
    }

    /// Launches one kernel over `n` tasks stored at `tasks` (no synchronisation).
    pub fn launch_bulk<T: Task + 'static>(&self, tasks: DevicePtr<T>, n: u32) -> Result<()> {
        let kind = self.rt.kind_of::<T>()?;
        self.launch_bulk_kind(kind, tasks.addr(), n)
    }

    /// The single-task kernel of `kind` and its block size.
    pub(crate) fn single_kernel(&self, kind: u32) -> Result<(Function, u32)> {
        let t = self.task(kind)?;
        Ok((
            self.function("grosr_single", t.name)?,
            threads(t.granularity),
        ))
    }

    /// Where baseline tasks' `ctx.fail` codes land (a kernel parameter).
    pub(crate) fn status_ptr(&self) -> u64 {
        self.status.ptr()
    }

    fn task(&self, kind: u32) -> Result<&crate::codegen::TaskInfo> {
        self.rt
            .tasks()
            .get(kind as usize)
            .ok_or(Error::UnknownKind(kind))
    }

    /// [`launch_single`](Baselines::launch_single) of a record given as bytes (at least the
    /// kind's record size).
    pub(crate) fn launch_single_kind(&self, kind: u32, record: &[u8]) -> Result<()> {
        let (f, block) = self.single_kernel(kind)?;
        if record.len() < self.task(kind)?.size {
            return Err(Error::Config("record shorter than its task type".into()));
        }
        let status = self.status.ptr();
        // SAFETY: the kernel's parameters are (T by value, int32_t*); `record` holds at least
        // size_of::<T>() bytes (checked above) and the driver copies them at launch.
        unsafe {
            self.stream
                .launch(&f, 1, block, 0, (RecordArg(record), &status))
        }
    }

    /// [`launch_bulk`](Baselines::launch_bulk) over `n` records of `kind` at device address
    /// `records`.
    pub(crate) fn launch_bulk_kind(&self, kind: u32, records: u64, n: u32) -> Result<()> {
        let t = self.task(kind)?;
        if n == 0 {
            return Ok(());
        }
        let f = self.function("grosr_bulk", t.name)?;
        // Task i runs on thread i (lane), warp i (warp) or block i (block) of 256-thread blocks.
        let block = crate::layout::BLOCK_THREADS;
        let grid = match t.granularity {
            Granularity::Lane => n.div_ceil(block),
            Granularity::Warp => n.div_ceil(block / 32),
            Granularity::Block => n,
        };
        let status = self.status.ptr();
        // SAFETY: the kernel's parameters are (const T*, uint32_t, int32_t*), matching args;
        // the caller keeps `records` alive until the launch completes.
        unsafe {
            self.stream
                .launch(&f, grid, block, 0, (&records, &n, &status))
        }
    }

    /// Launches kernel `name` of the runtime's module (a task's baseline kernel, or one added
    /// with [`RuntimeBuilder::cuda`](crate::RuntimeBuilder::cuda)) on the baselines' stream,
    /// with `args` a tuple of references, one per kernel parameter: `(&ptr, &n)`.
    ///
    /// # Safety
    /// `args` must match the kernel's parameters in number and type; whatever the kernel reads
    /// or writes through them must stay valid until the launch completes.
    pub unsafe fn launch_with(
        &self,
        name: &str,
        grid: u32,
        block: u32,
        shared_bytes: u32,
        args: impl KernelArgs,
    ) -> Result<()> {
        let f = self.rt.module().function(name)?;
        // SAFETY: the caller vouches for args (see above).
        unsafe { self.stream.launch(&f, grid, block, shared_bytes, args) }
    }

    /// An error while the runtime's scheduler holds every SM (it may have been started again
    /// since these launchers were made).
    pub(crate) fn room(&self) -> Result<()> {
        self.rt.room_for_baselines()
    }

    /// Waits for every launch so far (at most `timeout`), like `cudaStreamSynchronize`.
    pub fn sync(&self, timeout: Duration) -> Result<()> {
        self.stream.wait(timeout, "baseline kernels")
    }

    /// The first `ctx.fail` code any baseline task reported since these launchers were made.
    pub fn status(&self) -> Result<()> {
        let mut status = [0i32];
        self.status.read(&mut status)?;
        match status[0] {
            0 => Ok(()),
            code => Err(from_device_code(code, 0, 0, |_| "a baseline task".into())),
        }
    }

    /// The stream the baselines launch on (to launch a CUDA graph on, say).
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Waits (at most [`SETTLE_WAIT`]) for whatever a timed-out sync left running, before what
    /// it uses is freed: true if it all ended. If not, the stream goes to the context with its
    /// fence ([`Context::orphan_stream`](crate::driver::Context)), which keeps it until its
    /// kernels end. Once; the answer is kept.
    fn settle(&mut self) -> bool {
        if let Some(settled) = self.settled {
            return settled;
        }
        let ctx = self.rt.context();
        // A faulted context runs no kernel any more (the query's error): nothing to wait for.
        // Any other failure (the context not bound, the wait's timeout) may leave them running.
        let ended = matches!(
            self.stream
                .wait_sleeping(SETTLE_WAIT, "baseline kernels left running"),
            Ok(())
                | Err(Error::Cuda {
                    call: "cuStreamQuery",
                    ..
                })
        );
        if ended {
            ctx.unfence(self.fence);
        } else {
            eprintln!(
                "grosr: baseline kernels still ran {} s after their launchers were dropped; \
                 memory freed since waits for them",
                SETTLE_WAIT.as_secs()
            );
            // SAFETY: taken once, here (`settled` is set below); the drop leaves it alone then.
            let stream = unsafe { ManuallyDrop::take(&mut self.stream) };
            ctx.orphan_stream(self.fence, stream);
        }
        self.settled = Some(ended);
        ended
    }
}

impl Drop for Baselines<'_> {
    fn drop(&mut self) {
        if self.settle() {
            // SAFETY: its work has ended and its fence is gone; taken once, here.
            let stream = unsafe { ManuallyDrop::take(&mut self.stream) };
            // Reused by the next launchers (baseline_stream says why not destroyed).
            self.rt.idle_baseline_streams().push(stream);
        }
        // Else the context holds the stream now, with the fence that frees the status word
        // (dropped next) once the kernels end.
    }
}

impl std::fmt::Debug for Baselines<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Baselines")
            .field("stream", &self.stream)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}
