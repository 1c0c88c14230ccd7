//! Launching, stopping and restarting the scheduler kernel; its health; dropping the runtime.

use std::sync::atomic::Ordering as StdOrdering;
use std::time::Duration;

use crate::copy_streams::{self, CopyStreams};
use crate::error::{Error, Result};
use crate::layout::{BLOCK_THREADS, HostCtl};
use crate::ring::Waiter;
use std::mem::offset_of;

use super::GpuRuntime;
use super::rings::RingFence;

impl GpuRuntime {
    /// Whether the module records a task timeline (`RuntimeBuilder::trace`).
    pub(crate) fn is_traced(&self) -> bool {
        self.task_trace.is_some()
    }

    /// Whether the kernel is running.
    pub fn is_running(&self) -> bool {
        self.running.load(StdOrdering::Acquire)
    }

    /// Stops the kernel (jobs still running are abandoned: waiting on them returns
    /// [`Error::Stopped`]). Waits at most 10 s for it to exit. An error once it has exited means
    /// its tasks' executed counts could not be read back (they are not counted).
    pub fn stop(&self) -> Result<()> {
        let _guard = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        if !self.running.swap(false, StdOrdering::AcqRel) {
            return Ok(());
        }
        self.generation.fetch_add(1, StdOrdering::AcqRel);
        // Dropped at the end of this function, once the kernel has exited (or been waited for).
        let _copy_streams = copy_streams::leave(&self.ctx, self.id);
        // Release: block 0's ingest warp polls this flag (ld volatile) and tells every block.
        self.memory
            .ctl_u32(offset_of!(HostCtl, stop))
            .store(1, StdOrdering::Release);
        match self
            .stream
            .wait(Duration::from_secs(10), "the scheduler to exit")
        {
            Err(Error::Timeout(..)) => {
                // The kernel still runs: freeing the copy streams' page-locked probe would wait
                // for it (cuMemFreeHost synchronises the context), so it is leaked, and their
                // streams' destroys are kept (CopyStreams' drop).
                if let Some(pool) = &_copy_streams {
                    pool.abandon();
                }
                let e = Error::DeviceFault(
                    "the scheduler did not exit within 10 s of stop (a task that never ends?)"
                        .into(),
                );
                let _ = self.fault.set(e.clone());
                Err(e)
            }
            Err(e) => {
                // The context faulted: no kernel runs in it any more.
                self.ctx.unfence(self.id);
                let _ = self.fault.set(Error::DeviceFault(e.to_string()));
                Err(self.fault.get().cloned().unwrap_or(e))
            }
            Ok(()) => {
                // No job runs any more: memory dropped meanwhile is freed now.
                self.ctx.unfence(self.id);
                if self.ctx.kernels_left_running() {
                    // A lowered graph's kernel left running would hold up the probe's free too.
                    if let Some(pool) = &_copy_streams {
                        pool.abandon();
                    }
                }
                // The next launch clears the device's counts: keep what this one ran.
                self.keep_executed()
            }
        }
    }

    /// Starts the kernel again after [`stop`](Runtime::stop).
    pub fn start(&self) -> Result<()> {
        {
            let _guard = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
            // A faulted runtime stays faulted, running or not (health asks the driver).
            self.health().or_else(|e| match e {
                Error::Stopped => Ok(()),
                e => Err(e),
            })?;
            if self.running.load(StdOrdering::Acquire) {
                return Ok(());
            }
        }
        self.launch()
    }

    pub(super) fn launch(&self) -> Result<()> {
        let _guard = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = self.fault.get() {
            return Err(e.clone());
        }
        // Two starts at once: the second finds the first's kernel running (checked under the
        // lock `start` let go of), and must not reset the ring and the device block under it.
        if self.running.load(StdOrdering::Acquire) {
            return Ok(());
        }
        let m = &self.memory;
        // Fresh device state: the init kernel below clears the device block and sets the slots'
        // sequences.
        self.rings.restart(m)?;
        for field in [
            m.ctl_u32(offset_of!(HostCtl, stop)),
            m.ctl_u32(offset_of!(HostCtl, started_blocks)),
            m.ctl_u32(offset_of!(HostCtl, exited_blocks)),
            m.ctl_u32(offset_of!(HostCtl, err_code)),
        ] {
            field.store(0, StdOrdering::Release);
        }
        let params = m.params;
        // The trace's clock, while the SMs are free (the clock kernel runs alone).
        if let Some(trace) = self.task_trace.as_ref() {
            trace.calibrate(&self.stream)?;
        }
        let init_blocks = (m.params.num_queues * m.params.queue_cap)
            .div_ceil(BLOCK_THREADS)
            .min(4096);
        // SAFETY: grosr_init takes one Params by value, and every address in it lives as long as
        // the runtime.
        unsafe {
            self.stream.launch(
                &self.kernels.init,
                init_blocks,
                BLOCK_THREADS,
                0,
                (&params,),
            )
        }?;
        self.stream
            .wait(self.config.start_timeout, "the queues to be initialised")?;
        let grid = self.info.grid_blocks;
        // The copy streams are opened now, while no scheduler runs (CopyStreams::open says why),
        // and probed once it does.
        let mut streams = CopyStreams::open(&self.ctx)?;
        // From now until the kernel has exited, frees of device memory wait for its jobs, and
        // destroys that would wait for the kernel wait for its stop. Before the launch, so that
        // no such destroy runs beside it.
        self.ctx.fence(
            self.id,
            Box::new(RingFence::new(self.rings.clone(), &self.memory)),
        );
        // SAFETY: as above; a cooperative launch guarantees every block is resident at once.
        let launched = unsafe {
            self.stream.launch_cooperative(
                &self.kernels.scheduler,
                grid,
                BLOCK_THREADS,
                0,
                (&params,),
            )
        };
        if launched.is_err() {
            // No kernel runs.
            self.ctx.unfence(self.id);
        }
        match launched {
            Err(Error::Cuda { code, .. })
                if code.0
                    == cudarc::driver::sys::CUresult::CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE =>
            {
                return Err(Error::DoesNotFit(format!(
                    "{grid} blocks cannot all be resident ({code:?})"
                )));
            }
            launched => launched?,
        }
        // Every block checks in; if some never become resident (another kernel holds the SMs),
        // refuse rather than run a scheduler that could wait on absent blocks.
        let started = m.ctl_u32(offset_of!(HostCtl, started_blocks));
        let mut wait = Waiter::new(self.config.start_timeout);
        let waited = wait.until(
            || started.load(StdOrdering::Acquire) >= grid,
            &|| self.stream.query().map(|_| ()),
            "scheduler blocks",
        );
        self.running.store(true, StdOrdering::Release);
        if let Err(e) = waited {
            let n = started.load(StdOrdering::Acquire);
            drop(_guard);
            let _ = self.stop();
            return Err(match e {
                Error::Timeout(..) => Error::DoesNotFit(format!(
                    "only {n} of {grid} scheduler blocks became resident: another kernel or runtime holds the GPU"
                )),
                e => e,
            });
        }
        // From now on the context's copies go through streams seen to pass the scheduler
        // (copy_streams.rs); any 4 device bytes serve as the probe's source.
        match streams.probe(&m.device) {
            Ok(()) => copy_streams::enter(&self.ctx, self.id, streams),
            Err(e) => {
                drop(_guard);
                let stopped = self.stop().is_ok() && !self.ctx.kernels_left_running();
                if stopped {
                    // Only now: a probe copy still waiting behind the kernel has ended with it.
                    drop(streams);
                } else {
                    // A kernel still runs: freeing the probe's page-locked memory would wait for
                    // it (cuMemFreeHost synchronises the context), so it is leaked, and the
                    // streams' destroys are kept (CopyStreams' drop).
                    crate::driver::CopyStreamPool::abandon(&streams);
                    drop(streams);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// `Ok` while the runtime can take work; otherwise the error that stopped it. Also asks
    /// the driver whether the kernel still runs (waits call this; submit uses `state`).
    pub(super) fn health(&self) -> Result<()> {
        self.state()?;
        match self.stream.query() {
            Ok(false) => Ok(()),
            Ok(true) => {
                let e = Error::DeviceFault("the scheduler kernel exited unexpectedly".into());
                Err(self.fault.get_or_init(|| e).clone())
            }
            Err(Error::Cuda { code, .. }) => Err(self
                .fault
                .get_or_init(|| Error::DeviceFault(format!("{code:?}")))
                .clone()),
            Err(e) => Err(e),
        }
    }

    /// What the host knows without a driver call: a recorded fault, a stop, a stalled protocol.
    pub(super) fn state(&self) -> Result<()> {
        if let Some(e) = self.fault.get() {
            return Err(e.clone());
        }
        if !self.running.load(StdOrdering::Acquire) {
            return Err(Error::Stopped);
        }
        // A stalled device protocol stops everything; other device errors belong to their jobs.
        let code = self
            .memory
            .ctl_u32(offset_of!(HostCtl, err_code))
            .load(StdOrdering::Acquire) as i32;
        if code == -3 {
            // Acquire above: the GPU wrote the detail before the code (a system fence between).
            let detail = self
                .memory
                .ctl_u32(offset_of!(HostCtl, err_detail))
                .load(StdOrdering::Relaxed);
            let _ = self.fault.set(Error::Protocol(detail));
            return Err(Error::Protocol(detail));
        }
        Ok(())
    }
}

impl Drop for GpuRuntime {
    fn drop(&mut self) {
        let _ = self.stop();
        self.close_baseline_streams();
        // Whether the kernel still runs decides, not how stop() went: after an explicit stop()
        // that timed out (a task that never returns), this stop() returns that fault at once,
        // and the kernel still uses the memory, so it must be leaked rather than freed. A faulted
        // context answers the query with an error: no kernel runs in it any more.
        let running = !self.stream.query().unwrap_or(true);
        // A lowered graph's kernel left running (`Baselines::settle`) may use the module and
        // the heap too.
        if running || self.ctx.kernels_left_running() {
            // So are the module and the context: unloading the one or releasing the other
            // would wait for the kernel, which never ends; and so is the memory that waits
            // for its jobs.
            eprintln!(
                "grosr: {}; the runtime's memory, module and context are leaked",
                if running {
                    "the scheduler did not stop"
                } else {
                    "a lowered graph's kernel left running has not ended"
                }
            );
            // With the scheduler still running, destroys that wait for the context's kernels
            // now wait for good.
            self.ctx.leak_waiting(self.id, running);
            self.gpu.keep_context();
            return;
        }
        self.ctx.unfence(self.id);
        // SAFETY: the kernel has exited (or the context faulted); nothing uses the memory now,
        // and it is dropped exactly once, here. After a fault the frees fail harmlessly.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.memory) };
        // SAFETY: as above: no kernel runs, and the heap is dropped once, here.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.heap) };
        // SAFETY: as above: no kernel writes the trace's buffers now; dropped once, here.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.task_trace) };
        // SAFETY: as above; dropped once, here, before the context it lives in (a field below).
        unsafe { std::mem::ManuallyDrop::drop(&mut self._module) };
        // SAFETY: dropped once, here: the kernel has given the SMs back.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.claim) };
    }
}
