//! Streams for the host's copies and stream-ordered allocations while a scheduler is resident.
//!
//! What was seen (H200, session 6): with 40 threads copying on their own per-thread streams while
//! the scheduler ran, copies stopped finishing until the scheduler stopped (gpu_graph's
//! concurrency test); routed through a few runtime streams, one copy at a time on each, the same
//! test passes, and so do 64 new threads copying at once (gpu_core). The driver does not say
//! why; streams share a few hardware queues (`CUDA_DEVICE_MAX_CONNECTIONS`), and work queued
//! behind a kernel that never ends would never run. So once the scheduler is up, the runtime
//! opens a few streams and keeps those that finish a 4-byte probe copy while it runs (a guard:
//! with one hardware queue forced, every probe still finished on the H200). Every copy,
//! allocation and free of device memory in the scheduler's context goes through one of them
//! until the scheduler stops ([`on_copy_stream`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cudarc::driver::{result as cu, sys};

use crate::driver::{MappedMem, Stream, per_thread_stream, query_stream};
use crate::error::{CudaContext as _, Error, Result};

/// Streams opened per scheduler start; each probe that finishes adds one to the pool.
const CANDIDATES: usize = 12;
/// Streams kept for copies (the others are parked until the scheduler stops).
const KEEP: usize = 4;
/// How long probes may take. A copy takes microseconds; one that waits behind the scheduler
/// never finishes, so this is only waited out when fewer than `KEEP` probes finish.
const PROBE_WAIT: Duration = Duration::from_millis(20);

/// The copy streams of one running scheduler.
pub(crate) struct CopyStreams {
    usable: Vec<Mutex<Stream>>,
    /// Streams not kept: their probe may still be waiting to write into `probe`, so both live
    /// until the scheduler has stopped (see Drop).
    parked: Vec<Stream>,
    probe: Option<MappedMem>,
}

impl CopyStreams {
    /// Opens streams in the current context and keeps those whose probe copy from device
    /// address `src` (4 readable bytes) finishes while the scheduler runs.
    pub(crate) fn probe(src: u64) -> Result<CopyStreams> {
        // Built first, so that an early return drops it through Drop, which keeps the probe's
        // memory alive for any copy still in flight.
        let mut streams = CopyStreams {
            usable: Vec::new(),
            parked: Vec::with_capacity(CANDIDATES),
            probe: Some(MappedMem::new(4 * CANDIDATES)?),
        };
        let probe = streams
            .probe
            .as_ref()
            .map_or(std::ptr::null_mut(), |m| m.host());
        for i in 0..CANDIDATES {
            let stream = Stream::new()?;
            // SAFETY: `probe` holds 4 bytes per candidate and outlives the copy (Drop frees it
            // only once every parked stream has drained).
            let dst = unsafe { std::slice::from_raw_parts_mut(probe.add(4 * i), 4) };
            // SAFETY: pinned destination, `src` readable per the caller.
            unsafe { cu::memcpy_dtoh_async(dst, src, stream.0) }.call("cuMemcpyDtoHAsync")?;
            streams.parked.push(stream);
        }
        let start = Instant::now();
        while !streams.parked.is_empty()
            && streams.usable.len() < KEEP
            && start.elapsed() < PROBE_WAIT
        {
            let mut i = 0;
            while i < streams.parked.len() {
                if query_stream(streams.parked[i].0)? {
                    let done = streams.parked.swap_remove(i);
                    streams.usable.push(Mutex::new(done));
                } else {
                    i += 1;
                }
            }
        }
        if streams.usable.is_empty() {
            return Err(Error::Config(format!(
                "none of {CANDIDATES} streams finished a 4-byte copy within {PROBE_WAIT:?} of the \
                 scheduler's start: copies would wait until it stops"
            )));
        }
        Ok(streams)
    }

    /// Runs `f` on one of the streams, held alone meanwhile: a free one if any, else the
    /// calling thread's own pick.
    fn run<R>(&self, f: impl FnOnce(sys::CUstream) -> Result<R>) -> Result<R> {
        thread_local!(static PICK: usize = NEXT_PICK.fetch_add(1, Ordering::Relaxed));
        static NEXT_PICK: AtomicUsize = AtomicUsize::new(0);
        let first = PICK.with(|p| *p) % self.usable.len();
        let n = self.usable.len();
        let free = (0..n).find_map(|k| self.usable[(first + k) % n].try_lock().ok());
        let stream = match free {
            Some(s) => s,
            None => self.usable[first].lock().unwrap_or_else(|e| e.into_inner()),
        };
        f(stream.0)
    }
}

impl Drop for CopyStreams {
    fn drop(&mut self) {
        // Dropped after the scheduler stopped, so parked probes can finish now (or after a
        // failed probe, while it still runs). A probe that does not finish may still write into
        // its destination, so then the page-locked memory is leaked, not freed.
        let deadline = Instant::now() + Duration::from_secs(1);
        let drained = self.parked.iter().all(|s| {
            loop {
                match query_stream(s.0) {
                    Ok(false) if Instant::now() < deadline => std::thread::yield_now(),
                    Ok(done) => break done,
                    Err(_) => break false,
                }
            }
        });
        if !drained {
            std::mem::forget(self.probe.take());
        }
    }
}

/// The contexts whose scheduler runs, with their copy streams.
static RESIDENT: RwLock<Vec<(usize, Arc<CopyStreams>)>> = RwLock::new(Vec::new());
/// `RESIDENT.len()`, read without the lock: copies with no scheduler running skip the lookup.
static RESIDENT_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Routes the copies of context `ctx` through `streams` until [`leave`] is called.
pub(crate) fn enter(ctx: sys::CUcontext, streams: CopyStreams) {
    let mut r = RESIDENT.write().unwrap_or_else(|e| e.into_inner());
    r.retain(|(c, _)| *c != ctx as usize);
    r.push((ctx as usize, Arc::new(streams)));
    RESIDENT_COUNT.store(r.len(), Ordering::Release);
}

/// Ends the routing of context `ctx`'s copies; returns its streams, to be dropped once the
/// scheduler has stopped (copies still running hold their own reference).
pub(crate) fn leave(ctx: sys::CUcontext) -> Option<Arc<CopyStreams>> {
    let mut r = RESIDENT.write().unwrap_or_else(|e| e.into_inner());
    let at = r.iter().position(|(c, _)| *c == ctx as usize)?;
    let (_, streams) = r.swap_remove(at);
    RESIDENT_COUNT.store(r.len(), Ordering::Release);
    Some(streams)
}

/// Runs `f` with a stream on which copies and allocations in the current context cannot wait
/// behind a resident scheduler: one of its copy streams, held alone while `f` runs, else the
/// calling thread's per-thread stream. `f` enqueues its work and waits for it; it must not ask
/// for a copy stream again (nor drop a `DeviceMem`, whose free asks for one): the lock is not
/// reentrant.
pub(crate) fn on_copy_stream<R>(f: impl FnOnce(sys::CUstream) -> Result<R>) -> Result<R> {
    if RESIDENT_COUNT.load(Ordering::Acquire) == 0 {
        return f(per_thread_stream());
    }
    let ctx = cu::ctx::get_current().call("cuCtxGetCurrent")?;
    let streams = ctx.and_then(|ctx| {
        let r = RESIDENT.read().unwrap_or_else(|e| e.into_inner());
        r.iter()
            .find(|(c, _)| *c == ctx as usize)
            .map(|(_, s)| Arc::clone(s))
    });
    match streams {
        Some(s) => s.run(f),
        None => f(per_thread_stream()),
    }
}
