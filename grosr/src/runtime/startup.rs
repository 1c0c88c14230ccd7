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

use super::Optimize;
use crate::compile::{self, Compiled};
use crate::error::Result;

/// Where [`RuntimeBuilder::build`](super::RuntimeBuilder::build) spent its time, and the module it
/// loaded ([`RuntimeInfo::startup`](super::RuntimeInfo::startup)). The parts do not add up to the
/// whole build: checking the settings, claiming the SMs and generating the source are left out.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct Startup {
    /// Opening the GPU: CUDA's own context creation, on a thread of its own beside the compile
    /// (or the cache's read), so a build takes about the longer of the two, not their sum.
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
    /// Sizing the grid, allocating the ring's page-locked memory, the scheduler's device memory
    /// and the heap (with the heap's init kernel); also the runtime's stream. Not the arena for
    /// submitted records: it is pinned on another thread meanwhile, and the first submission
    /// too large to travel in a descriptor waits for it.
    pub memory: Duration,
    /// Clearing the scheduler's device memory and launching the scheduler (two kernels), until
    /// `build` returned.
    pub launch: Duration,
    /// The module the runtime runs: `Speed` or `Compile` (with [`Optimize::Tiered`], `Compile`
    /// until a build finds `Speed` in the compile cache). `Compile` with NVRTC older than 12.8
    /// is `Speed`'s code under `Compile`'s name; the CPU backend, which compiles nothing, says
    /// `Speed`.
    pub tier: Optimize,
    /// Whether a `Speed` compile of this module, for later builds, runs in the background
    /// ([`Optimize::Tiered`], when this build ran `Compile`).
    pub optimizing: bool,
}

/// What a [`RuntimeBuilder::on_compile`](super::RuntimeBuilder::on_compile) callback hears about
/// a compile of the scheduler module. Nothing is sent for a compile shorter than
/// [`PROGRESS_AFTER`] (or a cache hit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompileProgress {
    /// NVRTC has been compiling for `elapsed` (sent once, from another thread).
    #[non_exhaustive]
    Running {
        /// Time since the compile began.
        elapsed: Duration,
        /// Registered task types in the module.
        tasks: usize,
        /// The target, `sm_<arch>`.
        arch: u32,
        /// How hard NVRTC works on it.
        optimize: Optimize,
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
        CompileProgress::Running {
            tasks,
            arch,
            optimize,
            ..
        } => {
            eprintln!(
                "grosr: compiling the scheduler module ({tasks} task types, sm_{arch}) with NVRTC; \
                 a module's first build takes seconds to minutes, later builds load it from the \
                 compile cache"
            );
            if optimize == Optimize::Speed {
                eprintln!(
                    "grosr: Optimize::Tiered (the default) starts in seconds on slower code and \
                     compiles this one in the background for the next run, given a usable compile \
                     cache folder and NVRTC 12.8 or newer on glibc Linux (else it compiles this); \
                     Optimize::Compile, for editing task bodies, compiles in seconds (slower hot \
                     paths)"
                );
            }
        }
        CompileProgress::Finished { elapsed } => {
            eprintln!("grosr: compiled in {:.1} s", elapsed.as_secs_f64())
        }
    }
}

/// The scheduler module a build loads, and how it got it.
pub(super) struct Built {
    pub(super) compiled: Compiled,
    /// The compile's (or the cache lookup's) time.
    pub(super) took: Duration,
    /// `Speed` or `Compile`: what `compiled` is.
    pub(super) tier: Optimize,
    /// A `Speed` compile for later builds runs in the background (`Optimize::Tiered`).
    pub(super) optimizing: bool,
}

/// [`compile::compile_cached_in`] with the cache folder `dir`, announcing it to `notify` when
/// it runs past [`PROGRESS_AFTER`]. [`Optimize::Tiered`] loads `Speed` from the cache, or else
/// compiles `Compile` and starts `Speed` in the background.
pub(super) fn compile_announced(
    source: &str,
    dir: Option<std::path::PathBuf>,
    module: Module,
    notify: OnCompile,
) -> Result<Built> {
    // Tiers need a fast-compile level, a thread that can be left running at exit, and a
    // folder to leave `Speed` in; without one of them `Tiered` is `Speed`.
    let tiered = module.optimize == Optimize::Tiered
        && compile::fast_compile_known()?
        && compile::background_possible()
        && dir.as_deref().is_some_and(compile::cache_usable);
    let started = Instant::now();
    let speed = Optimize::Speed.nvrtc_options();
    if tiered {
        if let Some(cubin) = compile::cached_in(dir.clone(), source, module.arch, speed)? {
            let compiled = Compiled {
                cubin,
                cached: true,
            };
            return Ok(Built {
                compiled,
                took: started.elapsed(),
                tier: Optimize::Speed,
                optimizing: false,
            });
        }
    }
    let tier = match module.optimize {
        Optimize::Tiered if tiered => Optimize::Compile,
        Optimize::Tiered => Optimize::Speed,
        asked => asked,
    };
    let what = Module {
        optimize: tier,
        ..module
    };
    let (compiled, took) = announced(PROGRESS_AFTER, what, notify, || {
        compile::compile_cached_in(dir.clone(), source, module.arch, tier.nvrtc_options())
    })?;
    let optimizing = match (tiered, dir) {
        (true, Some(dir)) => {
            compile::compile_in_background(dir, source.to_string(), module.arch, speed)
                != compile::Background::Not
        }
        _ => false,
    };
    Ok(Built {
        compiled,
        took,
        tier,
        optimizing,
    })
}

/// The module a compile is for, as [`CompileProgress::Running`] describes it.
#[derive(Clone, Copy)]
pub(super) struct Module {
    pub(super) tasks: usize,
    pub(super) arch: u32,
    pub(super) optimize: Optimize,
}

/// Runs `work` (a compile), announcing it to `notify` from another thread if it runs past
/// `after`; returns its result and its time. `notify` runs on that thread, and this returns only
/// once `notify` has.
fn announced<T>(
    after: Duration,
    module: Module,
    notify: OnCompile,
    work: impl FnOnce() -> Result<T>,
) -> Result<(T, Duration)> {
    let started = Instant::now();
    let (done, finished) = mpsc::channel::<Duration>();
    // The watcher only waits and calls back: it holds nothing the work needs. The work's own
    // time comes over the channel, so a slow callback does not lengthen what Finished reports.
    let watcher = std::thread::Builder::new()
        .name("grosr-compile-progress".into())
        .spawn(move || {
            if finished.recv_timeout(after) == Err(mpsc::RecvTimeoutError::Timeout) {
                notify(CompileProgress::Running {
                    elapsed: started.elapsed(),
                    tasks: module.tasks,
                    arch: module.arch,
                    optimize: module.optimize,
                });
                let elapsed = finished.recv().unwrap_or_else(|_| started.elapsed());
                notify(CompileProgress::Finished { elapsed });
            }
        });
    let result = work();
    let took = started.elapsed();
    let _ = done.send(took);
    // A watcher that could not start only costs the announcement.
    if let Ok(w) = watcher {
        let _ = w.join();
    }
    Ok((result?, took))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::Scratch;
    use crate::error::Error;
    use std::sync::{Condvar, Mutex};

    /// What a callback heard, and a way to wait for it.
    #[derive(Default)]
    struct Heard {
        events: Mutex<Vec<CompileProgress>>,
        changed: Condvar,
    }

    fn module(tasks: usize) -> Module {
        Module {
            tasks,
            arch: 90,
            optimize: Optimize::Compile,
        }
    }

    fn listener() -> (Arc<Heard>, OnCompile) {
        let heard = Arc::new(Heard::default());
        let sink = Arc::clone(&heard);
        let notify: OnCompile = Arc::new(move |p| {
            sink.events.lock().unwrap().push(p);
            sink.changed.notify_all();
        });
        (heard, notify)
    }

    #[test]
    fn work_past_the_bound_is_announced_then_its_end_with_its_own_time_even_when_it_fails() {
        let (heard, notify) = listener();
        let waiting = Arc::clone(&heard);
        // The work ends only after Running was heard (at most 10 s), so the order is certain.
        let r: Result<((), Duration)> =
            announced(Duration::from_millis(1), module(3), notify, || {
                let events = waiting.events.lock().unwrap();
                let (events, _) = waiting
                    .changed
                    .wait_timeout_while(events, Duration::from_secs(10), |e| e.is_empty())
                    .unwrap();
                assert_eq!(events.len(), 1, "Running was not heard within 10 s");
                Err(Error::Config("this compile fails".into()))
            });
        let Err(Error::Config(_)) = r else {
            panic!("the work's error was not returned: {r:?}")
        };
        let events = heard.events.lock().unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(
            events[0],
            CompileProgress::Running {
                tasks: 3,
                arch: 90,
                optimize: Optimize::Compile,
                ..
            }
        ));
        assert!(matches!(events[1], CompileProgress::Finished { .. }));
    }

    /// `source` built at `Optimize::Tiered` for sm_75 with the cache folder `dir`, quietly.
    fn tiered(source: &str, dir: Option<std::path::PathBuf>) -> Built {
        let module = Module {
            tasks: 0,
            arch: 75,
            optimize: Optimize::Tiered,
        };
        let (_, quiet) = listener();
        compile_announced(source, dir, module, quiet).unwrap()
    }

    #[test]
    fn tiered_runs_compile_first_then_a_later_build_loads_speed_from_the_cache() {
        if compile::nvrtc_available().is_err() {
            eprintln!("skipping: no NVRTC");
            return;
        }
        let scratch = Scratch::new("tiered");
        let dir = scratch.0.clone();
        let source = "extern \"C\" __global__ void grosr_tier_probe(int *p) { *p = 2; }";
        let first = tiered(source, Some(dir.clone()));
        if !compile::fast_compile_known().unwrap() {
            // NVRTC before 12.8: no fast tier, so `Speed` at once.
            assert_eq!(first.tier, Optimize::Speed);
            assert!(!first.optimizing);
            return;
        }
        assert_eq!(first.tier, Optimize::Compile);
        assert!(!first.compiled.cached);
        assert!(first.optimizing, "no Speed compile was started");
        // The background compile lands in the cache (bounded: a small kernel takes a second).
        let waited = std::time::Instant::now();
        let speed = loop {
            if let Some(cubin) = compile::cached_in(Some(dir.clone()), source, 75, &[]).unwrap() {
                break cubin;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(300),
                "Speed never reached the cache"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let later = tiered(source, Some(dir));
        assert_eq!(later.tier, Optimize::Speed);
        assert!(later.compiled.cached && !later.optimizing);
        assert_eq!(later.compiled.cubin, speed);
        // What `Speed` itself compiles, byte for byte (the fast tier's module differs).
        let asked = compile::compile_with(source, 75, &[]).unwrap();
        assert_eq!(later.compiled.cubin, asked);
    }

    #[test]
    fn tiered_without_a_folder_it_can_use_compiles_speed_and_nothing_in_the_background() {
        if compile::nvrtc_available().is_err() {
            eprintln!("skipping: no NVRTC");
            return;
        }
        // No folder; a file where the folder should be.
        let scratch = Scratch::new("tiered-unusable");
        std::fs::write(&scratch.0, b"not a folder").unwrap();
        for (case, dir) in [("none", None), ("a file", Some(scratch.0.clone()))] {
            let source = format!(
                "extern \"C\" __global__ void grosr_tier_{}(int *p) {{ *p = 3; }}",
                case.len()
            );
            let built = tiered(&source, dir);
            assert_eq!(built.tier, Optimize::Speed, "{case}");
            assert!(!built.compiled.cached && !built.optimizing, "{case}");
            assert_eq!(
                built.compiled.cubin,
                compile::compile_with(&source, 75, &[]).unwrap(),
                "{case}"
            );
        }
    }

    #[test]
    fn work_within_the_bound_is_not_announced() {
        let (heard, notify) = listener();
        let (value, took) =
            announced(Duration::from_secs(3600), module(1), notify, || Ok(7)).unwrap();
        assert_eq!(value, 7);
        assert!(took < Duration::from_secs(3600));
        assert!(heard.events.lock().unwrap().is_empty());
    }
}
