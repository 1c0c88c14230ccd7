//! Start-up: where [`RuntimeBuilder::build`](super::RuntimeBuilder::build) spends its time
//! ([`Startup`]), and word of a compile that takes a while ([`CompileProgress`]).
//!
//! A module's first build runs NVRTC (seconds: `cargo bench --bench compile` and the report's
//! start-up section give the figures); later builds of the same module load it from the compile
//! cache. A compile that runs past [`PROGRESS_AFTER`] is announced, so a first run does not look
//! like a hang: by default on stderr, or to the callback given to
//! [`RuntimeBuilder::on_compile`](super::RuntimeBuilder::on_compile).

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::compile::{self, Compiled};
use crate::error::Result;

/// Where [`RuntimeBuilder::build`](super::RuntimeBuilder::build) spent its time, and the module it
/// loaded ([`RuntimeInfo::startup`](super::RuntimeInfo::startup)).
#[derive(Clone, Copy, Debug, Default)]
pub struct Startup {
    /// Opening the GPU: CUDA's own context creation.
    pub context: Duration,
    /// Compiling the scheduler module with NVRTC, or looking it up when it was `cached`.
    pub compile: Duration,
    /// Whether the module came from the compile cache.
    pub cached: bool,
    /// Bytes of the generated CUDA source.
    pub source_bytes: usize,
    /// Bytes of the module's CUBIN.
    pub module_bytes: usize,
    /// Loading the module and its kernels onto the GPU.
    pub load: Duration,
    /// Sizing the grid, and allocating (and clearing) the ring's page-locked memory, the
    /// scheduler's device memory and the heap.
    pub memory: Duration,
    /// Initialising the queues and launching the scheduler, until `build` returned.
    pub launch: Duration,
}

/// What a [`RuntimeBuilder::on_compile`](super::RuntimeBuilder::on_compile) callback hears about
/// a compile of the scheduler module. Nothing is sent for a compile shorter than
/// [`PROGRESS_AFTER`] (or a cache hit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompileProgress {
    /// NVRTC has been compiling for `elapsed` (sent once, from another thread).
    Running {
        /// Time since the compile began.
        elapsed: Duration,
        /// Registered task types in the module.
        tasks: usize,
        /// The target, `sm_<arch>`.
        arch: u32,
    },
    /// The compile announced by `Running` ended (compiled or failed) after `elapsed`.
    Finished {
        /// The compile's whole time.
        elapsed: Duration,
    },
}

/// How long a compile runs before it is announced.
pub const PROGRESS_AFTER: Duration = Duration::from_secs(1);

/// A progress callback (the builder's, or the default that writes to stderr).
pub(super) type OnCompile = Arc<dyn Fn(CompileProgress) + Send + Sync>;

/// The default: two lines on stderr around a compile longer than [`PROGRESS_AFTER`].
pub(super) fn print_progress(p: CompileProgress) {
    match p {
        CompileProgress::Running { tasks, arch, .. } => eprintln!(
            "grosr: compiling the scheduler module ({tasks} task types, sm_{arch}) with NVRTC; \
             a module's first build takes seconds, later builds load it from the compile cache"
        ),
        CompileProgress::Finished { elapsed } => {
            eprintln!("grosr: compiled in {:.1} s", elapsed.as_secs_f64())
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

/// [`compile::compile_cached`], announcing it to `notify` when it runs past [`PROGRESS_AFTER`];
/// returns the module and the time it took.
pub(super) fn compile_announced(
    source: &str,
    arch: u32,
    tasks: usize,
    notify: OnCompile,
) -> Result<(Compiled, Duration)> {
    compile_announced_after(PROGRESS_AFTER, source, arch, tasks, notify)
}

fn compile_announced_after(
    after: Duration,
    source: &str,
    arch: u32,
    tasks: usize,
    notify: OnCompile,
) -> Result<(Compiled, Duration)> {
    let started = Instant::now();
    let (done, finished) = mpsc::channel::<()>();
    // The watcher only waits and calls back: it holds nothing the compile needs, and it ends as
    // soon as the compile does (the channel disconnects).
    let watcher = std::thread::Builder::new()
        .name("grosr-compile-progress".into())
        .spawn(move || {
            if finished.recv_timeout(after) == Err(mpsc::RecvTimeoutError::Timeout) {
                notify(CompileProgress::Running {
                    elapsed: started.elapsed(),
                    tasks,
                    arch,
                });
                let _ = finished.recv();
                notify(CompileProgress::Finished {
                    elapsed: started.elapsed(),
                });
            }
        });
    let compiled = compile::compile_cached(source, arch);
    let took = started.elapsed();
    drop(done);
    // A watcher that could not start only costs the announcement.
    if let Ok(w) = watcher {
        let _ = w.join();
    }
    Ok((compiled?, took))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_compile_past_the_bound_is_announced_then_its_end_even_when_it_fails() {
        if compile::nvrtc_available().is_err() {
            eprintln!("skipping: no NVRTC");
            return;
        }
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        let notify: OnCompile = Arc::new(move |p| sink.lock().unwrap().push(p));
        // A bound of zero: any compile (tens of ms at least) runs past it.
        let r = compile_announced_after(Duration::ZERO, "this_is_not_cuda;", 90, 3, notify);
        assert!(r.is_err(), "the source was accepted");
        let heard = heard.lock().unwrap();
        assert_eq!(heard.len(), 2, "{heard:?}");
        assert!(matches!(
            heard[0],
            CompileProgress::Running {
                tasks: 3,
                arch: 90,
                ..
            }
        ));
        assert!(matches!(heard[1], CompileProgress::Finished { .. }));
    }

    #[test]
    fn a_compile_within_the_bound_is_not_announced() {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        let notify: OnCompile = Arc::new(move |p| sink.lock().unwrap().push(p));
        // Without NVRTC the compile fails at once; with it, the hour is never reached.
        let _ = compile_announced_after(Duration::from_secs(3600), "int x;", 90, 1, notify);
        assert!(heard.lock().unwrap().is_empty());
    }
}
