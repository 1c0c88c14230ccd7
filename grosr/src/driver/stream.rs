//! Streams, and waiting for a stream's work without blocking forever.

use std::time::{Duration, Instant};

use cudarc::driver::{result as cu, sys};

use super::args::KernelArgs;
use super::context::{Context, JobFence};
use super::module::Function;
use crate::error::{CudaCode, CudaContext as _, Error, Result};

/// A non-blocking stream (it never synchronises with the legacy default stream).
pub struct Stream {
    raw: sys::CUstream,
    ctx: Context,
}

// SAFETY: stream handles may be used from any thread; every use binds the stream's context.
unsafe impl Send for Stream {}
// SAFETY: as above.
unsafe impl Sync for Stream {}

impl Stream {
    /// Creates a stream in `ctx`.
    ///
    /// With 28 streams of grosr's open in the context already, while a scheduler (or a lowered
    /// kernel left running) may run, an [`Error::Busy`] instead: the driver's stream creation
    /// could hang there.
    pub fn new(ctx: &Context) -> Result<Stream> {
        ctx.bind()?;
        let raw = ctx.open_stream(
            || cu::stream::create(cu::stream::StreamKind::NonBlocking).call("cuStreamCreate"),
            |open| {
                Error::Busy(format!(
                    "grosr has {open} CUDA streams open while a kernel that may never end runs \
                     (a scheduler, or a lowered graph's kernel left running), the most it opens \
                     then (CUDA's stream creation beside a running kernel stopped returning \
                     past about 33): drop lowered graphs (Prepared), or stop the scheduler \
                     (Runtime::stop)"
                ))
            },
        )?;
        Ok(Stream {
            raw,
            ctx: ctx.clone(),
        })
    }

    /// The context the stream belongs to.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The raw stream, for the driver calls of this module.
    pub(crate) fn raw(&self) -> sys::CUstream {
        self.raw
    }

    /// `Ok(true)` once all work is done, `Ok(false)` while some runs, `Err` if it faulted.
    pub fn query(&self) -> Result<bool> {
        self.ctx.bind()?;
        query_stream(self.raw)
    }

    /// Waits for the stream's work, at most `timeout` (polls, so a hang cannot block forever).
    /// Spins first (short kernels), then gives the core away. No sleeping: the baselines'
    /// launch-and-wait times go through here.
    pub fn wait(&self, timeout: Duration, what: &'static str) -> Result<()> {
        self.ctx.bind()?;
        poll_stream(self.raw, timeout, what, 1000, std::thread::yield_now)
    }

    /// [`wait`](Self::wait) for a wait that may be long: sleeps a millisecond between queries
    /// instead of holding a core.
    pub fn wait_sleeping(&self, timeout: Duration, what: &'static str) -> Result<()> {
        self.ctx.bind()?;
        poll_stream(self.raw, timeout, what, 0, || {
            std::thread::sleep(Duration::from_millis(1))
        })
    }

    /// Launches `f` on `grid` blocks of `block` threads with `shared_bytes` of dynamic shared
    /// memory.
    ///
    /// # Safety
    /// `args` must match the kernel's parameters in number and type, and whatever the kernel
    /// reads or writes through them must stay valid until the launch completes.
    pub unsafe fn launch(
        &self,
        f: &Function,
        grid: u32,
        block: u32,
        shared_bytes: u32,
        args: impl KernelArgs,
    ) -> Result<()> {
        self.ctx.bind()?;
        let mut ptrs = args.pointers();
        // SAFETY: the caller vouches for the arguments; f keeps its module loaded.
        unsafe {
            cu::launch_kernel(
                f.raw(),
                (grid, 1, 1),
                (block, 1, 1),
                shared_bytes,
                self.raw,
                ptrs.as_mut(),
            )
        }
        .call("cuLaunchKernel")
    }

    /// [`launch`](Self::launch) as a cooperative launch: every block is resident at once, or
    /// the launch fails (`CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE`).
    ///
    /// # Safety
    /// As for [`launch`](Self::launch).
    pub unsafe fn launch_cooperative(
        &self,
        f: &Function,
        grid: u32,
        block: u32,
        shared_bytes: u32,
        args: impl KernelArgs,
    ) -> Result<()> {
        self.ctx.bind()?;
        let mut ptrs = args.pointers();
        // SAFETY: as in launch.
        unsafe {
            cu::launch_cooperative_kernel(
                f.raw(),
                (grid, 1, 1),
                (block, 1, 1),
                shared_bytes,
                self.raw,
                ptrs.as_mut(),
            )
        }
        .call("cuLaunchCooperativeKernel")
    }

    /// Enqueues a copy of `out.len()` elements from device address `src` to the host, in
    /// stream order (after the work enqueued before it). Wait for the stream before reading
    /// `out`.
    ///
    /// # Safety
    /// `src` must point at `size_of_val(out)` bytes of device memory of this stream's context,
    /// and `out` must be neither used nor dropped until the stream's work is done.
    pub unsafe fn read_async<T: bytemuck::Pod>(&self, src: u64, out: &mut [T]) -> Result<()> {
        self.ctx.bind()?;
        // SAFETY: passed on from the caller.
        unsafe { cu::memcpy_dtoh_async(out, src, self.raw) }.call("cuMemcpyDtoHAsync")
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.ctx.bind();
        // SAFETY: destroyed once; pending work still completes (the driver defers the release).
        let _ = unsafe { cu::stream::destroy(self.raw) };
        self.ctx.closed_stream();
    }
}

/// The work queued on a stream, as device memory sees it (a [`JobFence`]): memory dropped while
/// some of it may still run is freed once the stream has none left. For the baselines' stream,
/// whose wait can give up (a timeout) with kernels still running on memory they use.
pub(crate) struct StreamFence {
    raw: sys::CUstream,
}

// SAFETY: a stream handle may be used from any thread; the context's frees bind it first.
unsafe impl Send for StreamFence {}

impl StreamFence {
    /// A fence over `stream`, which must outlive it: unfence it before the stream drops.
    pub(crate) fn new(stream: &Stream) -> StreamFence {
        StreamFence { raw: stream.raw }
    }
}

impl JobFence for StreamFence {
    fn mark(&mut self) -> u64 {
        0 // one mark: the stream idle (work queued later only makes a free wait longer)
    }

    fn passed(&mut self, _mark: u64) -> bool {
        // A faulted context runs no kernel any more: its memory may go.
        query_stream(self.raw).unwrap_or(true)
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("raw", &self.raw)
            .field("ordinal", &self.ctx.ordinal())
            .finish()
    }
}

/// `Ok(true)` once all of `stream`'s work is done, `Ok(false)` while some runs, `Err` on a
/// fault. The stream's context must be current.
pub(super) fn query_stream(stream: sys::CUstream) -> Result<bool> {
    // SAFETY: the stream is live (or the per-thread default stream).
    match unsafe { sys::cuStreamQuery(stream) } {
        sys::CUresult::CUDA_SUCCESS => Ok(true),
        sys::CUresult::CUDA_ERROR_NOT_READY => Ok(false),
        code => Err(Error::Cuda {
            call: "cuStreamQuery",
            code: CudaCode(code),
        }),
    }
}

/// Queries `stream` until its work is done: `spin` queries back to back, then `pause()` between
/// queries; gives up after `timeout` (at most [`crate::MAX_TIMEOUT`]). The stream's context must
/// be current.
pub(super) fn poll_stream(
    stream: sys::CUstream,
    timeout: Duration,
    what: &'static str,
    spin: u32,
    pause: impl Fn(),
) -> Result<()> {
    let timeout = timeout.min(crate::MAX_TIMEOUT);
    let start = Instant::now();
    let mut turns = 0u32;
    while !query_stream(stream)? {
        turns = turns.saturating_add(1);
        if turns > spin {
            if start.elapsed() > timeout {
                return Err(Error::Timeout(timeout, what));
            }
            pause();
        }
    }
    Ok(())
}
