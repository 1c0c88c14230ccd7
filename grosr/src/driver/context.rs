//! A shared handle to one GPU's primary context, which every driver object holds.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

use cudarc::driver::{result as cu, sys};

use super::stream::Stream;
use crate::error::{CudaContext as _, Result};

/// A GPU's retained primary context, shared by [`Gpu`](super::Gpu) and every object made in it.
/// Cloning is cheap (an `Arc`); the context is released when the last clone drops. Every `Gpu`
/// of one device shares one `Context`: memory made through one is routed like memory made
/// through another while a scheduler runs (two `Gpu::open(0)` share one primary context).
#[derive(Clone)]
pub struct Context(Arc<Primary>);

struct Primary {
    raw: sys::CUcontext,
    device: sys::CUdevice,
    ordinal: usize,
    /// While schedulers are resident: the streams this context's copies and allocations use
    /// instead of the per-thread stream (crate::copy_streams says why), by scheduler, newest
    /// last; copies use the newest (its streams were seen to pass every scheduler then running).
    copy_streams: RwLock<Vec<(u64, Arc<dyn CopyStreamPool>)>>,
    /// The running schedulers' jobs, and the device memory whose free waits for them.
    frees: Mutex<Frees>,
    /// Whether `frees` holds memory waiting to be freed (checked without the lock).
    frees_waiting: AtomicBool,
    /// Held across [`Context::while_no_scheduler`]'s work and a scheduler's fencing (before
    /// `frees`), so that no scheduler launches meanwhile; not `frees` itself, which the work's
    /// drops (a graph's, on an error) take.
    no_scheduler: Mutex<()>,
    /// Streams grosr holds open in this context ([`Stream`]'s new and drop count them).
    streams: AtomicUsize,
    /// Streams handed over by [`keep_streams`](Context::keep_streams), for the kept destroys.
    /// A lock of its own, taken last: a drop that hands them over may run under `frees`.
    kept_streams: Mutex<Vec<Stream>>,
}

// SAFETY: a CUcontext may be made current on any thread; Primary only holds handles and a lock.
unsafe impl Send for Primary {}
// SAFETY: as above; binding is per thread.
unsafe impl Sync for Primary {}

/// Streams that pass a resident scheduler (crate::copy_streams picks them).
pub(crate) trait CopyStreamPool: Send + Sync {
    /// One of the streams, held alone until the guard drops.
    fn hold(&self) -> MutexGuard<'_, Stream>;
    /// Marks the pool as dropped while a kernel that may never end still runs: its drop then
    /// leaks what such a kernel holds up and keeps the streams' destroys for later.
    fn abandon(&self);
}

/// A running scheduler's jobs, as device memory sees them: memory dropped while jobs submitted
/// before the drop may still run is freed only once they have finished, so that safe code
/// cannot free what a task still uses (`crate::runtime` implements it over its ring).
pub(crate) trait JobFence: Send {
    /// A mark above every job submitted so far.
    fn mark(&mut self) -> u64;
    /// Whether every job below `mark` has finished.
    fn passed(&mut self, mark: u64) -> bool;
}

/// Device memory waiting for jobs, and the fences of the schedulers running them.
#[derive(Default)]
struct Frees {
    fences: Vec<(u64, Box<dyn JobFence>)>,
    /// Device addresses, each with the marks (by fence) its free waits for.
    waiting: Vec<(u64, Vec<(u64, u64)>)>,
    /// Streams whose owners were dropped while kernels still ran on them, with their fences:
    /// kept until those kernels end ([`Context::orphan_stream`]).
    orphans: Vec<(u64, Stream)>,
    /// Destroys that wait for every kernel of the context, kept while one may run
    /// ([`Context::destroy_when_idle`]).
    deferred: Vec<Box<dyn FnOnce() + Send>>,
    /// Whether a scheduler was dropped still running ([`Context::leak_waiting`]): the kept
    /// destroys wait for good.
    scheduler_stuck: bool,
}

impl Frees {
    /// Whether a scheduler's kernel may run: its fence is up (schedulers' ids are below 2^63,
    /// [`Context::fence_stream`]'s above), or it was dropped still running.
    fn scheduler_may_run(&self) -> bool {
        self.scheduler_stuck || self.fences.iter().any(|(id, _)| *id >> 63 == 0)
    }
}

/// How many streams grosr opens in a context while a scheduler may run there. Beside a running
/// kernel, `cuStreamCreate` stopped returning at the 33rd to 40th stream made in a row (a
/// cooperative spin kernel on half an H100's SMs, driver 580; benches/NOTES.md, "Audits"). A
/// running runtime holds 13 (its scheduler's and 12 copy candidates until its stop), so this
/// leaves 15 for lowered graphs beside it.
pub(crate) const STREAMS_BESIDE_SCHEDULER: usize = 28;

/// How many kept destroys ([`Context::destroy_when_idle`]) are said once on stderr.
const DEFERRED_WARNING: usize = 1024;

/// The per-thread default stream. With no scheduler running, device memory is allocated, copied
/// and freed in stream order on it: `cuMemAlloc`/`cuMemFree` synchronise the whole device, which
/// would wait forever for the persistent scheduler kernel.
const PER_THREAD_STREAM: sys::CUstream = 0x2 as sys::CUstream; // CU_STREAM_PER_THREAD

/// The live contexts, at most one per device (see [`Context::primary`]).
static LIVE: Mutex<Vec<Weak<Primary>>> = Mutex::new(Vec::new());

impl Context {
    /// The handle of `device`'s primary context: the live one if any, else a new one holding
    /// the retain made here (released when its last clone drops). Retains either way, so that
    /// a context an earlier fault left unusable is reported here (the retain fails).
    pub(super) fn primary(
        device: sys::CUdevice,
        ordinal: usize,
    ) -> std::result::Result<Context, cudarc::driver::DriverError> {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: device is a valid device handle; the retain is balanced below or in
        // Primary's drop.
        let raw = unsafe { cu::primary_ctx::retain(device) }?;
        live.retain(|p| p.strong_count() > 0);
        if let Some(p) = live
            .iter()
            .filter_map(Weak::upgrade)
            .find(|p| p.device == device)
        {
            // SAFETY: balances the retain above; the live handle holds its own.
            let _ = unsafe { cu::primary_ctx::release(device) };
            return Ok(Context(p));
        }
        let p = Arc::new(Primary {
            raw,
            device,
            ordinal,
            copy_streams: RwLock::new(Vec::new()),
            frees: Mutex::new(Frees::default()),
            frees_waiting: AtomicBool::new(false),
            no_scheduler: Mutex::new(()),
            kept_streams: Mutex::new(Vec::new()),
            streams: AtomicUsize::new(0),
        });
        live.push(Arc::downgrade(&p));
        Ok(Context(p))
    }

    /// Makes the context current on the calling thread (a no-op when it already is).
    pub fn bind(&self) -> Result<()> {
        if cu::ctx::get_current().call("cuCtxGetCurrent")? == Some(self.0.raw) {
            return Ok(());
        }
        // SAFETY: the context is retained while self lives.
        unsafe { cu::ctx::set_current(self.0.raw) }.call("cuCtxSetCurrent")
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> usize {
        self.0.ordinal
    }

    /// The raw context, for driver calls that name it.
    pub(crate) fn raw(&self) -> sys::CUcontext {
        self.0.raw
    }

    /// Binds the context and runs `f` with a stream on which copies and allocations cannot wait
    /// behind a resident scheduler: one of the copy streams, held alone while `f` runs, else the
    /// calling thread's per-thread stream. `f` enqueues its work and waits for it; it must not
    /// ask for a copy stream again (nor drop a `DeviceMem`, whose free asks for one): the lock
    /// is not reentrant.
    pub(crate) fn on_copy_stream<R>(
        &self,
        f: impl FnOnce(sys::CUstream) -> Result<R>,
    ) -> Result<R> {
        self.bind()?;
        let pool = self
            .0
            .copy_streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .map(|(_, pool)| pool.clone());
        match pool {
            Some(pool) => {
                let stream = pool.hold();
                f(stream.raw())
            }
            None => f(PER_THREAD_STREAM),
        }
    }

    /// Routes this context's copies through `pool`, the streams of scheduler `id`, until
    /// [`unroute_copies`](Self::unroute_copies).
    pub(crate) fn route_copies(&self, id: u64, pool: Arc<dyn CopyStreamPool>) {
        self.0
            .copy_streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, pool));
    }

    /// Ends the routing through scheduler `id`'s streams; returns them, to be dropped once the
    /// scheduler has stopped.
    pub(crate) fn unroute_copies(&self, id: u64) -> Option<Arc<dyn CopyStreamPool>> {
        let mut pools = self
            .0
            .copy_streams
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let at = pools.iter().position(|(i, _)| *i == id)?;
        Some(pools.remove(at).1)
    }

    fn frees(&self) -> MutexGuard<'_, Frees> {
        self.0.frees.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes frees of this context's device memory wait for scheduler `id`'s jobs, from now
    /// until [`unfence`](Self::unfence). Called before the scheduler launches: from then on
    /// [`destroy_when_idle`](Self::destroy_when_idle) keeps what it is given.
    pub(crate) fn fence(&self, id: u64, fence: Box<dyn JobFence>) {
        // A scheduler's (ids below 2^63) waits for a `while_no_scheduler` in progress.
        let _gate = (id >> 63 == 0).then(|| self.no_scheduler_gate());
        self.frees().fences.push((id, fence));
    }

    fn no_scheduler_gate(&self) -> MutexGuard<'_, ()> {
        self.0
            .no_scheduler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the waiting for scheduler `id`'s jobs (its kernel has exited: none runs any more)
    /// and frees what waited only for them.
    pub(crate) fn unfence(&self, id: u64) {
        let mut frees = self.frees();
        frees.fences.retain(|(i, _)| *i != id);
        for (_, marks) in &mut frees.waiting {
            marks.retain(|(i, _)| *i != id);
        }
        self.free_passed(&mut frees);
    }

    /// Runs `destroy`, a driver object's destroy, now if no kernel may run in this context, else
    /// once none may (never, if a scheduler never stops: its context is kept too). Some destroys
    /// wait for every kernel of the context, a scheduler's that never ends included:
    /// `cuGraphExecDestroy` beside a running scheduler never returned on an H100 (cuda-gdb,
    /// benches/NOTES.md, "Audits"). `destroy` runs with the context current and must not call
    /// back into the context's frees (it runs under their lock). Kept destroys build up while
    /// a scheduler runs (on part of the SMs, `max_sms`, beside lowered graphs): they run at its
    /// stop.
    pub(crate) fn destroy_when_idle(&self, destroy: Box<dyn FnOnce() + Send>) {
        let mut frees = self.frees();
        frees.deferred.push(destroy);
        if frees.deferred.len() == DEFERRED_WARNING {
            eprintln!(
                "grosr: {DEFERRED_WARNING} CUDA graphs or streams dropped beside a running \
                 scheduler wait for its stop to be destroyed (Runtime::stop lets them go)"
            );
        }
        self.free_passed(&mut frees);
    }

    /// Whether a scheduler's kernel may run in this context now (its fence is up, or it was
    /// dropped running).
    pub(crate) fn scheduler_may_run(&self) -> bool {
        self.frees().scheduler_may_run()
    }

    /// Runs `f` (with the context current) only while no scheduler kernel may run, and lets none
    /// launch meanwhile (a scheduler's [`fence`](Self::fence) goes up before its launch and
    /// waits for `f`); else the error `busy` returns. For driver calls that wait for every
    /// kernel of the context: `cuGraphInstantiate` of a lowered graph beside a scheduler capped
    /// by `max_sms` never returned on an H100 (driver 580, benches/NOTES.md, "Audits"). `f` may
    /// free and drop (the frees' lock is not held), but neither start a scheduler nor open a
    /// stream past the bound (both wait at the gate `f` holds).
    pub(crate) fn while_no_scheduler<R>(
        &self,
        busy: impl FnOnce() -> crate::error::Error,
        f: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        let _gate = self.no_scheduler_gate();
        let busy_now = {
            let frees = self.frees();
            frees.scheduler_may_run() || !frees.orphans.is_empty()
        };
        if busy_now {
            return Err(busy());
        }
        self.bind()?;
        f()
    }

    /// Counts a stream about to be created ([`Stream::new`]) and says whether it may be: below
    /// [`STREAMS_BESIDE_SCHEDULER`] open streams always; past it only while no scheduler may
    /// run, and then `create` runs at the gate, so that none launches meanwhile. The count is
    /// taken back if the creation is refused or fails.
    pub(super) fn open_stream<R>(
        &self,
        create: impl FnOnce() -> Result<R>,
        busy: impl FnOnce(usize) -> crate::error::Error,
    ) -> Result<R> {
        let open = self.0.streams.fetch_add(1, Ordering::Relaxed);
        let made = if open < STREAMS_BESIDE_SCHEDULER {
            create()
        } else {
            self.while_no_scheduler(|| busy(open), create)
        };
        if made.is_err() {
            self.closed_stream();
        }
        made
    }

    /// Uncounts a stream ([`Stream`]'s drop).
    pub(super) fn closed_stream(&self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }

    /// Keeps `streams`, dropped while a kernel that may never end still runs, to be destroyed
    /// with the kept destroys ([`destroy_when_idle`](Self::destroy_when_idle)) once none may:
    /// at the next free, lowered run or stop that finds none. Takes only a lock of its own, so
    /// that a drop under the frees' lock may call it.
    pub(crate) fn keep_streams(&self, streams: impl IntoIterator<Item = Stream>) {
        self.0
            .kept_streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(streams);
        // Relaxed, as the frees' own flag: a stale answer only defers them to a later call.
        self.0.frees_waiting.store(true, Ordering::Relaxed);
    }

    /// Whether a kernel may run in the context: a scheduler (its fence is up, or it never
    /// ended), a lowered graph's kernels left running (an orphaned stream), or work queued on a
    /// stream with a fence (the baselines'). Asks the driver for the last; false only if it
    /// answered. The context must be current.
    fn kernels_may_run(frees: &mut Frees) -> bool {
        frees.scheduler_may_run()
            || !frees.orphans.is_empty()
            || frees.fences.iter_mut().any(|(_, fence)| {
                let mark = fence.mark();
                !fence.passed(mark)
            })
    }

    /// Runs the kept destroys if no kernel may run. Under the frees' lock: a scheduler's fence
    /// goes up before its launch, so none launches until they have returned.
    fn run_deferred(&self, frees: &mut Frees) {
        let kept = std::mem::take(
            &mut *self
                .0
                .kept_streams
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for stream in kept {
            frees.deferred.push(Box::new(move || drop(stream)));
        }
        if frees.deferred.is_empty() || self.bind().is_err() || Self::kernels_may_run(frees) {
            return;
        }
        for destroy in std::mem::take(&mut frees.deferred) {
            destroy();
        }
    }

    /// Forgets the memory waiting for scheduler `id` without freeing it: its kernel never ended
    /// and may use any of it (`running`), or a lowered graph's kernels still run. With `running`,
    /// the kept destroys wait for good, marked under the same lock as the fence comes down (else
    /// a destroy could slip in between, beside the kernel).
    pub(crate) fn leak_waiting(&self, id: u64, running: bool) {
        let mut frees = self.frees();
        frees.scheduler_stuck |= running;
        frees.fences.retain(|(i, _)| *i != id);
        frees
            .waiting
            .retain(|(_, marks)| marks.iter().all(|(i, _)| *i != id));
    }

    /// Makes frees of this context's device memory wait for the work queued on `stream` (see
    /// [`StreamFence`](super::stream::StreamFence)) until [`unfence`](Self::unfence) of the id
    /// returned; the stream must outlive that.
    pub(crate) fn fence_stream(&self, stream: &Stream) -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        // Above every scheduler's id (runtimes count up from 0).
        let id = 1 << 63 | NEXT.fetch_add(1, Ordering::Relaxed);
        self.fence(id, Box::new(super::stream::StreamFence::new(stream)));
        id
    }

    /// Keeps `stream`, whose owner is gone while kernels still run on it, and its fence `fence`
    /// ([`fence_stream`](Self::fence_stream)), until those kernels end: frees keep waiting for
    /// them, and [`kernels_left_running`](Self::kernels_left_running) says so.
    pub(crate) fn orphan_stream(&self, fence: u64, stream: Stream) {
        self.frees().orphans.push((fence, stream));
    }

    /// Whether kernels of an orphaned stream still run (those that ended are let go first): a
    /// runtime then keeps the module, memory and page-locked memory they may use, whose free
    /// would wait for them.
    pub(crate) fn kernels_left_running(&self) -> bool {
        let mut frees = self.frees();
        if frees.orphans.is_empty() {
            return false;
        }
        self.free_passed(&mut frees);
        !frees.orphans.is_empty()
    }

    /// Frees device memory at `ptr` (from `cuMemAllocAsync` in this context) once every job
    /// submitted so far has finished: now, if none may still run.
    pub(crate) fn free_device(&self, ptr: u64) {
        let mut frees = self.frees();
        // A stream's fence asks the driver, so the context is bound once some fence is asked;
        // a failed bind reads as work still running.
        let mut bound = None;
        let marks: Vec<(u64, u64)> = frees
            .fences
            .iter_mut()
            .filter_map(|(id, fence)| {
                let mark = fence.mark();
                let bound = *bound.get_or_insert_with(|| self.bind().is_ok());
                (!bound || !fence.passed(mark)).then_some((*id, mark))
            })
            .collect();
        if marks.is_empty() {
            self.free_now(ptr);
        } else {
            frees.waiting.push((ptr, marks));
            self.0.frees_waiting.store(true, Ordering::Relaxed);
        }
        self.free_passed(&mut frees);
    }

    /// Frees the waiting memory whose jobs have finished, and runs the kept destroys once no
    /// kernel may run (cheap when nothing waits).
    pub(crate) fn free_finished(&self) {
        // Relaxed: a stale answer only defers the frees to a later call.
        if self.0.frees_waiting.load(Ordering::Relaxed) {
            self.free_passed(&mut self.frees());
        }
    }

    fn free_passed(&self, frees: &mut Frees) {
        // A stream's fence asks the driver, for which the context must be current (a failed
        // bind leaves the frees for a later call).
        if (!frees.waiting.is_empty() || !frees.orphans.is_empty()) && self.bind().is_err() {
            return;
        }
        let Frees {
            fences,
            waiting,
            orphans,
            deferred,
            ..
        } = frees;
        // Orphaned streams whose kernels have ended go, with their fences (a faulted context
        // runs none); their destroys are kept like any other (a scheduler may run).
        let mut k = 0;
        while k < orphans.len() {
            if !orphans[k].1.query().unwrap_or(true) {
                k += 1;
                continue;
            }
            let (id, stream) = orphans.swap_remove(k);
            fences.retain(|(i, _)| *i != id);
            deferred.push(Box::new(move || drop(stream)));
        }
        waiting.retain_mut(|(ptr, marks)| {
            marks.retain(|&(id, mark)| {
                fences
                    .iter_mut()
                    .find(|(i, _)| *i == id)
                    .is_some_and(|(_, fence)| !fence.passed(mark))
            });
            if marks.is_empty() {
                self.free_now(*ptr);
            }
            !marks.is_empty()
        });
        self.run_deferred(frees);
        // Kept destroys count as waiting (free_finished, after each lowered run, retries them)
        // unless a scheduler holds them: its stop runs them (unfence), and a retry at every
        // job's wait and allocation meanwhile would take this lock for nothing.
        self.0.frees_waiting.store(
            !frees.waiting.is_empty() || (!frees.deferred.is_empty() && !frees.scheduler_may_run()),
            Ordering::Relaxed,
        );
    }

    fn free_now(&self, ptr: u64) {
        let _ = self.on_copy_stream(|stream| {
            // SAFETY: ptr came from cuMemAllocAsync in this context and is freed once, here,
            // in stream order; no job that may use it still runs.
            unsafe { cu::free_async(ptr, stream) }.call("cuMemFreeAsync")
        });
    }

    /// Retains the primary context once more, never to be released: for a kernel that never
    /// ends, whose context must outlive every handle (releasing the last would wait for it).
    pub(super) fn leak(&self) {
        // SAFETY: a retain with no matching release; the context lives until the process ends.
        let _ = unsafe { cu::primary_ctx::retain(self.0.device) };
    }
}

impl Drop for Primary {
    fn drop(&mut self) {
        // SAFETY: balances the retain in Context::primary.
        let _ = unsafe { cu::primary_ctx::release(self.device) };
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("ordinal", &self.0.ordinal)
            .field("raw", &self.0.raw)
            .field("handles", &Arc::strong_count(&self.0))
            .finish()
    }
}
