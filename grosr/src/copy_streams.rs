//! Streams for the host's copies and stream-ordered allocations while a scheduler is resident.
//!
//! What was seen on an H200: with 40 threads copying on their own per-thread streams while
//! the scheduler ran, copies stopped finishing until the scheduler stopped (gpu_graph's
//! concurrency test); routed through a few runtime streams, one copy at a time on each, the same
//! test passes, and so do 64 new threads copying at once (gpu_core). The driver does not say
//! why; streams share a few hardware queues (`CUDA_DEVICE_MAX_CONNECTIONS`), and work queued
//! behind a kernel that never ends would never run. So the runtime opens a few streams before
//! the scheduler launches ([`CopyStreams::open`] says why then) and, once it is up, keeps those
//! that finish a 4-byte probe copy while it runs (a guard:
//! with one hardware queue forced, every probe still finished on the H200). Every copy,
//! allocation and free of device memory in the scheduler's context goes through one of them
//! until the scheduler stops ([`enter`], [`leave`]; the driver's `Context` does the routing).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::driver::{Context, CopyStreamPool, DeviceMem, MappedMem, Stream};
use crate::error::{Error, Result};

/// Streams opened per scheduler start; each probe that finishes adds one to the pool.
const CANDIDATES: usize = 12;
/// Streams kept for copies (the others are parked until the scheduler stops).
const KEEP: usize = 4;
/// How long probes may take. A copy takes microseconds; one that waits behind the scheduler
/// never finishes, so this is only waited out when fewer than `KEEP` probes finish.
const PROBE_WAIT: Duration = Duration::from_millis(20);

/// The copy streams of one running scheduler.
pub(crate) struct CopyStreams {
    ctx: Context,
    usable: Vec<Mutex<Stream>>,
    /// Streams not kept: their probe may still be waiting to write into `probe`, so both live
    /// until the scheduler has stopped (see Drop).
    parked: Vec<Stream>,
    probe: Option<MappedMem>,
    /// Set by [`abandon`](CopyStreamPool::abandon): a kernel that may never end still runs.
    abandoned: AtomicBool,
}

impl CopyStreams {
    /// Opens the candidate streams. Call it before the scheduler launches: on an H100,
    /// `cuStreamCreate` called while the scheduler ran, once a CUDA graph had been instantiated
    /// while it was stopped, never returned (a cuda-gdb backtrace of gpu_graph's lowered-refusal
    /// test, benches/NOTES.md, "Audits"). The probe's page-locked memory comes in
    /// [`probe`](Self::probe): held from here, it would be freed on a failed start's way out,
    /// and `cuMemFreeHost` waits for every kernel of the context (a lowered graph's left
    /// running, say).
    pub(crate) fn open(ctx: &Context) -> Result<CopyStreams> {
        let parked = (0..CANDIDATES)
            .map(|_| Stream::new(ctx))
            .collect::<Result<Vec<_>>>()?;
        Ok(CopyStreams {
            ctx: ctx.clone(),
            usable: Vec::new(),
            parked,
            probe: None,
            abandoned: AtomicBool::new(false),
        })
    }

    /// Keeps the streams whose probe copy from `src` (its first 4 bytes) finishes while the
    /// scheduler runs. Once only, after [`open`](Self::open). On an error, drop `self` only once
    /// the scheduler has stopped: a probe copy may still wait behind it (Drop then waits for
    /// it, or leaks its memory).
    pub(crate) fn probe(&mut self, src: &DeviceMem) -> Result<()> {
        if src.len() < 4 {
            return Err(Error::Config(
                "the copy streams' probe needs 4 device bytes".into(),
            ));
        }
        if self.probe.is_some() {
            return Err(Error::Config("the copy streams were probed already".into()));
        }
        let probe = self
            .probe
            .insert(MappedMem::new(&self.ctx, 4 * CANDIDATES)?)
            .host();
        for (i, stream) in self.parked.iter().enumerate() {
            // SAFETY: `probe` holds 4 bytes per candidate and outlives the copy (Drop frees it
            // only once every parked stream has drained).
            let dst = unsafe { std::slice::from_raw_parts_mut(probe.add(4 * i), 4) };
            // SAFETY: pinned destination; `src` holds at least 4 bytes (checked above) of the
            // stream's context.
            unsafe { stream.read_async(src.ptr(), dst) }?;
        }
        let start = Instant::now();
        while !self.parked.is_empty() && self.usable.len() < KEEP && start.elapsed() < PROBE_WAIT {
            let mut i = 0;
            while i < self.parked.len() {
                if self.parked[i].query()? {
                    let done = self.parked.swap_remove(i);
                    self.usable.push(Mutex::new(done));
                } else {
                    i += 1;
                }
            }
        }
        if self.usable.is_empty() {
            return Err(Error::Config(format!(
                "none of {CANDIDATES} streams finished a 4-byte copy within {PROBE_WAIT:?} of the \
                 scheduler's start: copies would wait until it stops"
            )));
        }
        Ok(())
    }
}

impl CopyStreamPool for CopyStreams {
    /// A free stream if any, else the calling thread's own pick.
    fn hold(&self) -> MutexGuard<'_, Stream> {
        thread_local!(static PICK: usize = NEXT_PICK.fetch_add(1, Ordering::Relaxed));
        static NEXT_PICK: AtomicUsize = AtomicUsize::new(0);
        let n = self.usable.len();
        let first = PICK.with(|p| *p) % n;
        let free = (0..n).find_map(|k| self.usable[(first + k) % n].try_lock().ok());
        match free {
            Some(s) => s,
            None => self.usable[first].lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    fn abandon(&self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }
}

impl Drop for CopyStreams {
    fn drop(&mut self) {
        if self.abandoned.load(Ordering::Relaxed) {
            // A kernel that may never end still runs: the probe's page-locked memory is leaked
            // (cuMemFreeHost would wait for it; a probe copy behind it may still write there),
            // and the streams go to the context's kept destroys, which run once no such kernel
            // may (counted open until then, as they are). The last holder may drop the pool
            // under the frees' lock (a free's copy): keep_streams takes a lock of its own.
            std::mem::forget(self.probe.take());
            let streams = std::mem::take(&mut self.usable)
                .into_iter()
                .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
                .chain(std::mem::take(&mut self.parked));
            self.ctx.keep_streams(streams);
            return;
        }
        // Dropped before any probe (a start that failed first: nothing to wait for) or after the
        // scheduler stopped, so parked probes can finish now. A probe that does not finish may
        // still write into its destination, so then the page-locked memory is leaked, not freed.
        // A stream that answers with an error belongs to a faulted context, which runs nothing
        // any more: its probe is over (and leaking the memory would keep the faulted context
        // retained, so a new runtime would be built in it instead of being refused).
        let deadline = Instant::now() + Duration::from_secs(1);
        let drained = self.parked.iter().all(|s| {
            loop {
                match s.query() {
                    Ok(false) if Instant::now() < deadline => std::thread::yield_now(),
                    Ok(done) => break done,
                    Err(_) => break true,
                }
            }
        });
        if !drained {
            std::mem::forget(self.probe.take());
        }
    }
}

impl std::fmt::Debug for CopyStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyStreams")
            .field("usable", &self.usable.len())
            .field("parked", &self.parked.len())
            .finish()
    }
}

/// Routes the copies of context `ctx` through `streams`, those of scheduler `id`, until
/// [`leave`] is called.
pub(crate) fn enter(ctx: &Context, id: u64, streams: CopyStreams) {
    ctx.route_copies(id, Arc::new(streams));
}

/// Ends the routing of context `ctx`'s copies through scheduler `id`'s streams; returns them,
/// to be dropped once the scheduler has stopped (copies still running hold their own
/// reference). Until then they hold a handle of the context, which therefore stays retained.
pub(crate) fn leave(ctx: &Context, id: u64) -> Option<Arc<dyn CopyStreamPool>> {
    ctx.unroute_copies(id)
}
