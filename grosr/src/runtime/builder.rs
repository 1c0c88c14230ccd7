//! [`RuntimeBuilder`]: what the runtime runs and how it is sized, the module's source, and
//! `build`, which compiles, sizes and launches the scheduler.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32 as StdAtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::alloc::{self, DeviceHeap};
use crate::codegen::{self, TaskInfo};
use crate::compile;
use crate::driver::{Gpu, Module, Stream};
use crate::error::{Error, Result};
use crate::record::{CudaBody, Task};

use super::memory::Memory;
use super::occupancy::occupancy_preferring_l1;
use super::sm_claim::SmClaim;
use super::startup::{self, CompileProgress, OnCompile, Startup};
use super::task_trace::TaskTraceBuffers;
use super::tuning::{DIAGNOSTICS, Optimize, Tuning, define_lines};
use super::{Engine, GpuRuntime, Kernels, Runtime, RuntimeInfo};

/// Where a runtime runs its tasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// The GPU: the scheduler kernel stays resident on it (the default).
    #[default]
    Gpu,
    /// Host threads: every task type needs a Rust body (`#[grosr::task(rust = ..)]`); no GPU,
    /// driver or NVRTC. For testing grosr programs anywhere: jobs, spawns, task graphs (any
    /// strategy) and bodies' `ctx.alloc` / `free` run as on a GPU; `DeviceBuffer`s are host
    /// memory there, and every access a body makes is checked. `__device__` variables and
    /// baseline kernels are `Error::Unsupported` there.
    Cpu,
}

impl Backend {
    /// `GROSR_BACKEND` from the environment: `cpu` or `gpu` (any case, spaces around ignored);
    /// [`Backend::Gpu`] when unset or empty. What a builder without [`RuntimeBuilder::backend`]
    /// runs on.
    pub fn from_env() -> Result<Backend> {
        match std::env::var("GROSR_BACKEND") {
            Err(std::env::VarError::NotPresent) => Ok(Backend::Gpu),
            Ok(v) if v.trim().is_empty() || v.trim().eq_ignore_ascii_case("gpu") => {
                Ok(Backend::Gpu)
            }
            Ok(v) if v.trim().eq_ignore_ascii_case("cpu") => Ok(Backend::Cpu),
            Ok(v) => Err(Error::Config(format!(
                "GROSR_BACKEND is {v:?}: set it to `cpu` or `gpu`, or unset it"
            ))),
            Err(e) => Err(Error::Config(format!("GROSR_BACKEND: {e}"))),
        }
    }
}

/// How the runtime is sized; see the builder's methods for each field.
#[derive(Clone, Debug)]
pub(super) struct Config {
    /// `None`: [`Backend::from_env`] at build.
    pub(super) backend: Option<Backend>,
    /// The CPU backend's worker threads; `None`: the machine's parallelism.
    pub(super) cpu_threads: Option<usize>,
    /// Trace events kept per track (0: not tracing).
    pub(super) trace_events: usize,
    pub(super) device: usize,
    pub(super) max_sms: Option<u32>,
    pub(super) queue_capacity: u32,
    pub(super) arena_bytes: usize,
    pub(super) desc_capacity: u32,
    pub(super) job_slots: u32,
    pub(super) submit_rings: u32,
    pub(super) submit_timeout: Duration,
    pub(super) start_timeout: Duration,
    pub(super) spin_limit: u32,
    pub(super) heap_bytes: Option<u64>,
    pub(super) tuning: Tuning,
    pub(super) diagnostics: bool,
    /// Compiles the cancellation checks in (`GROSR_CANCEL`).
    pub(super) cancellable: bool,
    pub(super) optimize: Optimize,
    /// The compile cache's folder; `None`: [`compile::cache_dir`]'s default.
    pub(super) cache_dir: Option<std::path::PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backend: None,
            cpu_threads: None,
            trace_events: 0,
            device: 0,
            max_sms: None,
            queue_capacity: 8192,
            arena_bytes: 64 << 20,
            desc_capacity: 4096,
            job_slots: 4096,
            submit_rings: 8,
            submit_timeout: Duration::from_secs(60),
            start_timeout: Duration::from_secs(10),
            spin_limit: 1 << 24,
            heap_bytes: None,
            tuning: Tuning::default(),
            diagnostics: false,
            cancellable: false,
            optimize: Optimize::Tiered,
            cache_dir: None,
        }
    }
}

/// Builds a [`Runtime`]: register task types, size it, then [`build`](RuntimeBuilder::build).
///
/// ```no_run
/// # #[grosr::task(cuda = "task.out[0] = 1;")] pub struct Hello { pub out: grosr::DevicePtr<u32> }
/// let rt = grosr::Runtime::builder().task::<Hello>().max_sms(16).build()?;
/// # Ok::<(), grosr::Error>(())
/// ```
#[derive(Default, Debug)]
pub struct RuntimeBuilder {
    tasks: Vec<TaskInfo>,
    extra: Vec<ExtraCuda>,
    prelude: Vec<String>,
    defines: Vec<(String, String)>,
    config: Config,
    on_compile: Option<Callback>,
}

/// The task whose body holds `at`, NVRTC's "the code at FILE(LINE)": the body's `#line` names
/// its file and first line, and its text (a Rust body's translation) counts the lines after.
/// `None` unless exactly one body does: a translation longer than its Rust, bodies shared
/// through `file = ..` or made by one macro can hold the same place, and a wrong name is worse
/// than none.
fn spawner(
    bodies: impl IntoIterator<Item = (&'static str, CudaBody)>,
    at: &str,
) -> Option<&'static str> {
    let (file, line) = at.strip_prefix("the code at ")?.rsplit_once('(')?;
    let line: u32 = line.strip_suffix(')')?.parse().ok()?;
    let mut holders = bodies.into_iter().filter(|(_, b)| {
        let lines = b.code.lines().count().max(1) as u32;
        codegen::normal_path(b.file) == file
            && (b.line..b.line.saturating_add(lines)).contains(&line)
    });
    match (holders.next(), holders.next()) {
        (Some((name, _)), None) => Some(name),
        _ => None,
    }
}

/// The builder's [`on_compile`](RuntimeBuilder::on_compile) callback (Debug for the builder).
#[derive(Clone)]
struct Callback(OnCompile);

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Callback")
    }
}

/// CUDA code compiled into the runtime's module after the task bodies (see
/// [`RuntimeBuilder::cuda`]).
#[derive(Clone, Debug)]
struct ExtraCuda {
    code: String,
    kernels: Vec<String>,
}

impl RuntimeBuilder {
    /// The most worker threads [`cpu_threads`](Self::cpu_threads) may ask for: each is an OS
    /// thread with its own per-kind counters and trace track, so the count is bounded.
    pub const MAX_CPU_THREADS: usize = 1024;

    /// Registers task type `T`; kinds are numbered in registration order. Registering a type
    /// twice is harmless.
    pub fn task<T: Task + 'static>(mut self) -> Self {
        if !self.tasks.iter().any(|t| t.type_id == TypeId::of::<T>()) {
            self.tasks.push(TaskInfo::of::<T>());
        }
        self
    }
    /// The GPU to run on (default 0).
    pub fn device(mut self, ordinal: usize) -> Self {
        self.config.device = ordinal;
        self
    }
    /// Where the tasks run (default: [`Backend::from_env`], which is the GPU unless
    /// `GROSR_BACKEND=cpu`).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.config.backend = Some(backend);
        self
    }
    /// Worker threads of the CPU backend (default: the machine's available parallelism), at
    /// least 1 (0 counts as 1) and at most [`MAX_CPU_THREADS`](Self::MAX_CPU_THREADS) (more is a
    /// [`Error::Config`] at build).
    pub fn cpu_threads(mut self, threads: usize) -> Self {
        self.config.cpu_threads = Some(threads.max(1));
        self
    }
    /// Records a timeline of the tasks run and the host's submits, waits and graph runs
    /// (`events` of them, and on a GPU at least 65 536); events past what is kept are counted
    /// as dropped. [`Runtime::trace`] takes it, for Perfetto (`grosr::trace`). Off (0) by
    /// default, and then nothing is recorded. On the CPU backend a track is a worker thread,
    /// which keeps its first `events` between takes. On a GPU a track is a scheduler warp, and
    /// a lane of it for lane tasks; each warp keeps `events` rounded down to a power of two (at
    /// least 32, at most 65 536), as a ring per lane of `events` / 32 events of 32 bytes (a
    /// quarter of the free memory in all at most): each lane's newest, shared with the warp
    /// and block tasks it records in turn. Each task records its start and end, SM, kind, job and
    /// spawner (a task a cancel skipped records nothing), the module is compiled with the
    /// recording in (without this setting it is the same code as before), the host's calls are
    /// stamped on the GPU's clock
    /// (set before each launch of the scheduler) and the take names each submitted task's
    /// submit and each graph node's releasing predecessor; the queued-tasks counter is derived
    /// from the events, and heap bytes are the heap's slabs in use (64 KiB each: classes' slabs
    /// and large runs), sampled whenever a slab leaves or rejoins the heap's pool (4 MiB of
    /// samples between takes; more are counted as dropped). The GPU's buffers take
    /// `events` × 32 bytes for each of the grid's warps (`RuntimeInfo::grid_blocks` × 8): on an
    /// H100 (132 SMs, 2 blocks each) `trace(4096)` takes 277 MB, `trace(65536)` 4.4 GB.
    ///
    /// ```
    /// use grosr::{DevicePtr, DeviceBuffer, Runtime};
    ///
    /// /// Adds `n` to the sum and spawns `n - 1`: a chain of `n` tasks.
    /// #[grosr::task(granularity = "lane", rust = |task, ctx| {
    ///     ctx.atomic_add(task.sum, 0u32, task.n);
    ///     if task.n > 1u32 { ctx.spawn(Countdown { sum: task.sum, n: task.n - 1u32, pad: 0u32 }); }
    /// })]
    /// pub struct Countdown { pub sum: DevicePtr<u32>, pub n: u32, pub pad: u32 }
    ///
    /// let rt = Runtime::builder()
    /// #   .backend(grosr::Backend::Cpu) // doctests run on host threads: no GPU needed
    ///     .task::<Countdown>()
    ///     .trace(1024)
    ///     .build()?;
    /// let sum = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
    /// rt.submit(&[Countdown { sum: sum.ptr(), n: 10, pad: 0 }])?.wait()?;
    /// let trace = rt.trace()?;
    /// assert_eq!(trace.tasks.len(), 10);
    /// // Each task but the first names the one that spawned it.
    /// let ids: Vec<u64> = trace.tasks.iter().map(|t| t.id).collect();
    /// assert_eq!(trace.tasks.iter().filter(|t| ids.contains(&t.parent)).count(), 9);
    /// let json = trace.to_chrome_json(); // for https://ui.perfetto.dev
    /// assert!(json.contains("\"Countdown\""));
    /// # Ok::<(), grosr::Error>(())
    /// ```
    pub fn trace(mut self, events: usize) -> Self {
        self.config.trace_events = events;
        self
    }
    /// Caps the SMs the scheduler occupies, leaving the rest to ordinary kernels (default: all;
    /// more than the GPU has counts as all, 0 is an [`Error::Config`] at build). The grid is
    /// `blocks per SM × max_sms` blocks; the hardware places them. Lowered graphs
    /// ([`Strategy`](crate::graph::Strategy) other than `Resident`) then run beside the
    /// scheduler, but the CUDA graphs of those dropped meanwhile are destroyed only at its next
    /// stop (the driver's destroy would wait for the scheduler's kernel; their streams are
    /// reused), the CUDA-graph strategies are prepared while it is stopped (the driver's
    /// instantiation would wait for it too), and about 15 lowered graphs prepared beside it may
    /// be alive at once ([`TaskGraph::prepare`](crate::graph::TaskGraph::prepare) says why).
    pub fn max_sms(mut self, sms: u32) -> Self {
        self.config.max_sms = Some(sms);
        self
    }
    /// Slots in each SM's work queue, a power of two (default 8192; 64 bytes each).
    pub fn queue_capacity(mut self, slots: u32) -> Self {
        self.config.queue_capacity = slots;
        self
    }
    /// Bytes of page-locked mapped memory that carry submitted records (default 64 MiB).
    pub fn arena_bytes(mut self, bytes: usize) -> Self {
        self.config.arena_bytes = bytes;
        self
    }
    /// How long `submit` waits for ring space before it fails (default 60 s), and `Job::wait`
    /// for its job; at most [`MAX_TIMEOUT`](crate::MAX_TIMEOUT) (a longer one is cut to it).
    pub fn submit_timeout(mut self, timeout: Duration) -> Self {
        self.config.submit_timeout = timeout;
        self
    }

    /// Bytes of device memory for the device heap (`ctx.alloc` / `ctx.free` in task bodies,
    /// `grosr::heap_alloc` / `grosr::heap_free` in any kernel of the module), carved once at
    /// build and kept across stop and start. Default: a quarter of the free device memory, at
    /// most 4 GiB; 0: no heap (allocations return null). Rounded down to whole 64 KiB slabs.
    pub fn heap_bytes(mut self, bytes: u64) -> Self {
        self.config.heap_bytes = Some(bytes);
        self
    }

    /// Adds CUDA code to the runtime's module, after the task bodies: device functions that CUDA
    /// C bodies call, `__device__` variables ([`Runtime::global`] reads and writes them), and
    /// `extern "C" __global__` kernels that may use the task types, spawn helpers and the device
    /// runtime. Those kernels are launched only through the `unstable` feature's baselines (grosr's
    /// lab does); `kernels` names the ones to load eagerly, every one that will be launched: a
    /// kernel loaded lazily beside the running scheduler could wait for SMs the scheduler never
    /// gives back.
    ///
    /// ```no_run
    /// let rt = grosr::Runtime::builder()
    ///     .cuda("__device__ unsigned long long grosr_demo_total;", &[])
    ///     .build()?;
    /// let (_address, bytes) = rt.global("grosr_demo_total")?;
    /// assert_eq!(bytes, 8);
    /// # Ok::<(), grosr::Error>(())
    /// ```
    pub fn cuda(mut self, code: impl Into<String>, kernels: &[&str]) -> Self {
        self.extra.push(ExtraCuda {
            code: code.into(),
            kernels: kernels.iter().map(|k| k.to_string()).collect(),
        });
        self
    }

    /// Adds CUDA code before the task bodies (after the records and their `grosr_spawn_*`
    /// helpers): `__device__` functions and constants that several bodies share. Code added
    /// with [`cuda`](RuntimeBuilder::cuda) comes after the bodies instead.
    ///
    /// ```
    /// #[grosr::task(cuda = "task.out[task.i] = grosr_square(task.i);")]
    /// pub struct Square { pub out: grosr::DevicePtr<u32>, pub i: u32, pub pad: u32 }
    ///
    /// let b = grosr::Runtime::builder()
    ///     .prelude("__device__ uint32_t grosr_square(uint32_t x) { return x * x; }")
    ///     .task::<Square>();
    /// let src = b.source();
    /// let (helper, body) = (src.find("grosr_square(uint32_t x)"), src.find("grosr_body_Square"));
    /// assert!(helper.unwrap() < body.unwrap());
    /// ```
    pub fn prelude(mut self, code: impl Into<String>) -> Self {
        self.prelude.push(code.into());
        self
    }

    /// Adds a `#[grosr::device]` helper for Rust bodies ([`body`](crate::body)) to the module,
    /// in the prelude: each helper once, before the helpers that call it (the order against
    /// [`task`](RuntimeBuilder::task) does not matter). A body that calls a helper not
    /// registered is [`Error::UnregisteredHelper`] at [`build`](RuntimeBuilder::build).
    pub fn helper<F: crate::body::DeviceFn>(self) -> Self {
        self.prelude(F::CUDA)
    }

    /// The scheduler's and the heap's [`Tuning`] (default: [`Tuning::default`]); checked at
    /// [`build`](RuntimeBuilder::build).
    pub fn tuning(mut self, tuning: Tuning) -> Self {
        self.config.tuning = tuning;
        self
    }

    /// Compiles in the diagnostics (default off): the scheduler's latency trace (`GROSR_TRACE`)
    /// and the heap's slow-path counts (`GROSR_HEAP_SLOW_COUNTS`, in
    /// [`HeapStats`](crate::HeapStats)). They cost time; [`RuntimeInfo::diagnostics`] reports them.
    pub fn diagnostics(mut self, on: bool) -> Self {
        self.config.diagnostics = on;
        self
    }

    /// Submission rings on a GPU (default 8; 1, 2, 4, 8 or 16): each has its own ingest warp
    /// (warp 0 of one of the first blocks, which then takes no queued work) and a share of the
    /// descriptors, job slots and arena. A submit takes its thread's ring, or another if that
    /// one's ingest warp is busy, so a short job is not held up behind a long task an ingest
    /// warp runs, and many threads submit side by side. With three or more, the last is kept
    /// for [`Priority::High`](crate::Priority) jobs ([`Runtime::submit_priority`](crate::Runtime::submit_priority)).
    /// Fewer if the grid has fewer blocks; [`RuntimeInfo::submit_rings`] says how many run. The
    /// CPU backend has no rings.
    pub fn submit_rings(mut self, rings: u32) -> Self {
        self.config.submit_rings = rings;
        self
    }

    /// Lets [`Job::cancel`](crate::Job::cancel) cancel this GPU runtime's jobs (default off):
    /// a task checks its job's cancel word before it starts, and before it spawns (two
    /// GPU-scope loads from one cache line, once per task context: a round's task and the chain
    /// it holds share one), which the default module leaves out (its code is the same as
    /// without this setting; on, H100: a dependent hop 0.14 → 0.24 µs, spawn trees −11 to
    /// −15%). The CPU backend always cancels.
    /// [`RuntimeInfo::cancellable`] reports it.
    pub fn cancellable(mut self, on: bool) -> Self {
        self.config.cancellable = on;
        self
    }

    /// How hard NVRTC works on the module: [`Optimize::Tiered`] (the default), `Compile` until
    /// `Speed`, compiled in the background, is in the compile cache; [`Optimize::Speed`], every
    /// optimization from the first build (a minute or more for many task types); or
    /// [`Optimize::Compile`], a first compile of seconds with slower hot paths (see
    /// [`Optimize`]). [`RuntimeInfo::optimize`] reports what was asked,
    /// [`Startup::tier`](crate::Startup::tier) what runs.
    pub fn optimize(mut self, optimize: Optimize) -> Self {
        self.config.optimize = optimize;
        self
    }

    /// The compile cache's folder (default: `$GROSR_CACHE_DIR`, else `$XDG_CACHE_HOME/grosr`, else
    /// `~/.cache/grosr`; README, "What you need"). Made if missing; a folder that cannot be used
    /// safely costs a compile, with a warning, not the build.
    pub fn cache_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config.cache_dir = Some(dir.into());
        self
    }

    /// Defines a preprocessor macro at the top of the module's source (before the runtime), for
    /// task bodies and [`cuda`](RuntimeBuilder::cuda) code that use macros. The scheduler's own
    /// settings go through [`tuning`](RuntimeBuilder::tuning) and
    /// [`diagnostics`](RuntimeBuilder::diagnostics): a define of one of their macros
    /// (`GROSR_BYPASS_HOPS`, `GROSR_TRACE`, ...) fails the build with an error saying which
    /// setting to use. A name that is not a C identifier fails the build with an NVRTC error
    /// naming it.
    ///
    /// ```
    /// let src = grosr::Runtime::builder().define("MY_SCALE", "3").source();
    /// assert!(src.starts_with("#define MY_SCALE 3\n"));
    /// ```
    pub fn define(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.defines.push((name.into(), value.into()));
        self
    }

    /// Where word of a long compile goes: a compile of the scheduler module that runs past
    /// [`PROGRESS_AFTER`](crate::PROGRESS_AFTER) (a module's first build; later builds load it
    /// from the compile cache) calls `f` with [`CompileProgress::Running`], then with
    /// [`CompileProgress::Finished`] when it ends. By default two lines go to stderr;
    /// `.on_compile(|_| {})` silences them. `f` runs on a thread of its own, and `build` waits
    /// for it to return: keep it short. [`Optimize::Tiered`]'s background compile of `Speed`
    /// is not announced (nothing waits for it).
    ///
    /// ```no_run
    /// use grosr::CompileProgress;
    /// let rt = grosr::Runtime::builder()
    ///     .on_compile(|p| {
    ///         if let CompileProgress::Running { elapsed, .. } = p {
    ///             println!("still compiling after {elapsed:?}");
    ///         }
    ///     })
    ///     .build()?;
    /// println!("compiled in {:?}", rt.info().startup.compile);
    /// # Ok::<(), grosr::Error>(())
    /// ```
    pub fn on_compile(mut self, f: impl Fn(CompileProgress) + Send + Sync + 'static) -> Self {
        self.on_compile = Some(Callback(Arc::new(f)));
        self
    }

    /// The CUDA source the runtime would compile (no GPU needed).
    pub fn source(&self) -> String {
        let mut settings = self.config.tuning.defines();
        if self.config.diagnostics {
            settings.extend(DIAGNOSTICS.map(|(n, v)| (n.to_string(), v.to_string())));
        }
        if self.config.trace_events > 0 {
            settings.push(("GROSR_TRACE_TASKS".into(), "1".into()));
        }
        if self.config.cancellable {
            settings.push(("GROSR_CANCEL".into(), "1".into()));
        }
        let mut s = define_lines(&settings, &self.defines);
        s.push_str(&codegen::generate(&self.tasks, &self.prelude));
        for (i, e) in self.extra.iter().enumerate() {
            s.push_str(&format!("\n// ---- Extra CUDA source {i} ----\n"));
            s.push_str(&e.code);
            s.push('\n');
        }
        s
    }

    /// Compiles the module for `sm_<arch>` (e.g. 90 for an H100 or H200) into the compile cache
    /// without a GPU (NVRTC only), so that a later [`build`](RuntimeBuilder::build) on a machine
    /// with that cache folder loads it instead of compiling: a small program of the crate's own,
    /// run in a container build or a CI job, pays the first compile (a build script cannot name
    /// the crate's own task types). Announced like `build`'s compile. At
    /// [`Optimize::Tiered`] it compiles `Speed`, the module a `Tiered` build looks for.
    ///
    /// ```no_run
    /// # #[grosr::task(cuda = "")] pub struct Step { pub x: grosr::DevicePtr<u32> }
    /// let ahead = grosr::Runtime::builder().task::<Step>().cache_dir("/opt/app/grosr-cache");
    /// let done = ahead.precompile(90)?;
    /// println!("{} bytes, cached before: {}", done.module_bytes, done.cached);
    /// # Ok::<(), grosr::Error>(())
    /// ```
    pub fn precompile(&self, arch: u32) -> Result<Precompiled> {
        self.validate()?;
        compile::nvrtc_available()?;
        self.check_gpu_trace()?;
        let source = self.source();
        // Ahead of time there is no first run to hurry: `Tiered` compiles what it will load.
        let optimize = match self.config.optimize {
            Optimize::Tiered => Optimize::Speed,
            asked => asked,
        };
        let built = self.compile(&source, arch, optimize)?;
        Ok(Precompiled {
            cached: built.compiled.cached,
            compile: built.took,
            module_bytes: built.compiled.cubin.len(),
        })
    }

    /// Compiles (or looks up) `source` for `arch` at `optimize` in the cache, announcing a long
    /// compile.
    fn compile(&self, source: &str, arch: u32, optimize: Optimize) -> Result<startup::Built> {
        let notify = match &self.on_compile {
            Some(Callback(f)) => Arc::clone(f),
            None => Arc::new(startup::print_progress),
        };
        let dir = match &self.config.cache_dir {
            Some(d) => Some(d.clone()),
            None => compile::cache_dir(),
        };
        let what = startup::Module {
            tasks: self.tasks.len(),
            arch,
            optimize,
        };
        startup::compile_announced(source, dir, what, notify).map_err(|e| self.name_caller(e))
    }

    /// An unregistered spawn or helper names the task whose body holds the line NVRTC points
    /// at ("task `Fib` (the code at src/fib.rs(12))"), when one does.
    fn name_caller(&self, e: Error) -> Error {
        let named = |by: String| {
            let bodies = self.tasks.iter().map(|t| (t.name, t.body));
            spawner(bodies, &by).map_or(by.clone(), |task| format!("task `{task}` ({by})"))
        };
        match e {
            Error::UnregisteredSpawn { by, spawned } => Error::UnregisteredSpawn {
                by: named(by),
                spawned,
            },
            Error::UnregisteredHelper { by, helper } => Error::UnregisteredHelper {
                by: named(by),
                helper,
            },
            e => e,
        }
    }

    /// A GPU trace's settings, checked before the compile (which may take a minute).
    fn check_gpu_trace(&self) -> Result<()> {
        match self.config.trace_events {
            0 => Ok(()),
            events => super::task_trace::check(events, self.tasks.len()),
        }
    }

    /// The checks `build` and `precompile` make before compiling.
    fn validate(&self) -> Result<()> {
        let c = &self.config;
        if !c.queue_capacity.is_power_of_two() || c.queue_capacity < 64 {
            return Err(Error::Config(format!(
                "queue_capacity must be a power of two >= 64, not {}",
                c.queue_capacity
            )));
        }
        if c.arena_bytes < 4096 {
            return Err(Error::Config(format!(
                "arena_bytes must be at least 4096, not {}",
                c.arena_bytes
            )));
        }
        if c.cpu_threads.is_some_and(|t| t > Self::MAX_CPU_THREADS) {
            return Err(Error::Config(format!(
                "cpu_threads must be at most {}, not {}",
                Self::MAX_CPU_THREADS,
                c.cpu_threads.unwrap_or(0)
            )));
        }
        if c.max_sms == Some(0) {
            return Err(Error::Config("max_sms must be at least 1".into()));
        }
        if !c.submit_rings.is_power_of_two() || c.submit_rings > super::rings::MAX_RINGS {
            return Err(Error::Config(format!(
                "submit_rings must be 1, 2, 4, 8 or 16, not {}",
                c.submit_rings
            )));
        }
        c.tuning.validate()?;
        if let Some((name, _)) = self
            .defines
            .iter()
            .find(|(n, _)| Tuning::MACROS.contains(&n.as_str()))
        {
            return Err(Error::Config(format!(
                "{name} is a setting of RuntimeBuilder::tuning (or ::diagnostics, ::optimize), not a define"
            )));
        }
        let mut names = HashMap::new();
        for t in &self.tasks {
            if names.insert(t.name, t.type_id).is_some() {
                return Err(Error::DuplicateTask(t.name));
            }
        }
        Ok(())
    }

    /// Compiles the scheduler (or loads it from the cache) and launches it on the GPU; on the
    /// CPU backend, starts its threads (nothing is compiled).
    pub fn build(self) -> Result<Runtime> {
        self.validate()?;
        let (backend, from_env) = match self.config.backend {
            Some(b) => (b, false),
            None => (Backend::from_env()?, true),
        };
        let engine = match backend {
            Backend::Gpu => Engine::Gpu(Box::new(self.build_gpu()?)),
            Backend::Cpu => {
                let c = &self.config;
                let threads = c
                    .cpu_threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
                    .min(Self::MAX_CPU_THREADS);
                let (tuning, optimize, max_sms) = (c.tuning, c.optimize, c.max_sms);
                let cpu = super::cpu::CpuRuntime::new(
                    self.tasks,
                    (
                        threads,
                        c.trace_events,
                        c.queue_capacity,
                        // As on a GPU, with the host's memory as the device's: no bound but the
                        // slab count (the default is the GPU's largest, 4 GiB).
                        crate::alloc::resolve_heap_bytes(c.heap_bytes, u64::MAX / 2)?,
                    ),
                    c.submit_timeout,
                    |gpu| super::cpu::info(gpu, tuning, optimize, max_sms),
                );
                Engine::Cpu(Box::new(cpu.map_err(|e| match e {
                    Error::Config(m) if from_env => {
                        Error::Config(format!("{m} (GROSR_BACKEND chose the CPU backend)"))
                    }
                    e => e,
                })?))
            }
        };
        Ok(Runtime { engine })
    }

    fn build_gpu(self) -> Result<GpuRuntime> {
        let c = &self.config;
        let probed = Gpu::probe(c.device)?;
        let (arch, sm_count) = (probed.arch, probed.sm_count);
        let sms = c.max_sms.unwrap_or(sm_count).min(sm_count);
        // Claim SMs before loading anything: loading a module beside a running scheduler of
        // this process is what the claim exists to avoid.
        let claim = SmClaim::new(c.device, sms, sm_count)?;
        compile::nvrtc_available()?;
        self.check_gpu_trace()?;
        let source = self.source();
        // The context (about 90 ms on an H100 host, a tenth of a cold quickstart's first
        // process) is retained on a thread of its own while NVRTC compiles (or the cache is read).
        let (opened, built) = std::thread::scope(|s| {
            let opening = std::thread::Builder::new()
                .name("grosr-context".into())
                .spawn_scoped(s, || {
                    let started = Instant::now();
                    probed.open().map(|gpu| (gpu, started.elapsed()))
                });
            let built = self.compile(&source, arch, c.optimize);
            let opened = match opening {
                Ok(handle) => handle.join().unwrap_or_else(|_| {
                    Err(Error::Config(
                        "the thread opening the CUDA context panicked".into(),
                    ))
                }),
                Err(e) => Err(Error::Config(format!(
                    "no thread could open the CUDA context: {e}"
                ))),
            };
            (opened, built)
        });
        // The GPU's error first: a compile error beside a broken context is the lesser news.
        let (gpu, context) = opened?;
        // Before anything goes into a ManuallyDrop field below (a `?` there would leak it).
        let ctx = gpu.context()?.clone();
        // Current on the calling thread too, as `Gpu::open` leaves it (for the caller's own
        // CUDA calls after the build).
        ctx.bind()?;
        let built = built?;
        let compiled = &built.compiled;
        let loading = Instant::now();
        let module = Module::load(gpu.context()?, &compiled.cubin)?;
        for t in &self.tasks {
            module.preload(&format!("grosr_single_{}", t.name))?;
            module.preload(&format!("grosr_bulk_{}", t.name))?;
        }
        for k in self.extra.iter().flat_map(|e| &e.kernels) {
            module.preload(k)?;
        }
        module.preload("grosr_scheduler")?;
        module.preload("grosr_init")?;
        module.preload("grosr_heap_init")?;
        let kernels = Kernels {
            scheduler: module.function("grosr_scheduler")?,
            init: module.function("grosr_init")?,
        };
        let load = loading.elapsed();
        let allocating = Instant::now();
        let blocks_per_sm =
            occupancy_preferring_l1(&kernels.scheduler, &gpu, c.tuning.smem_carveout)?;
        if blocks_per_sm == 0 {
            return Err(Error::DoesNotFit(
                "the scheduler block needs more registers or shared memory than one SM has".into(),
            ));
        }
        let grid = blocks_per_sm * sms;
        // A ring's ingest warp is warp 0 of block `ring`: no more rings than blocks.
        let rings = c.submit_rings.min(1 << grid.ilog2());
        let memory = Memory::new(gpu.context()?, c, sms, self.tasks.len(), rings)?;
        let stream = Stream::new(gpu.context()?)?;
        let heap = build_heap(&gpu, &module, &stream, c)?;
        let task_trace = match c.trace_events {
            0 => None,
            events => Some(TaskTraceBuffers::new(
                gpu.context()?,
                &module,
                (
                    grid * (crate::layout::BLOCK_THREADS / 32),
                    self.tasks.len(),
                    gpu.sm_count,
                ),
                events,
                heap.as_ref().map(|h| h.desc.slabs),
                gpu.memory_info()?.0,
            )?),
        };
        let kinds = self
            .tasks
            .iter()
            .enumerate()
            .map(|(k, t)| (t.type_id, k as u32))
            .collect();
        let rings_host = Arc::new(super::rings::Rings::new(rings, memory.ring_arena_bytes()));
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let mut rt = GpuRuntime {
            info: RuntimeInfo {
                device: gpu.name.clone(),
                arch: gpu.arch,
                sm_count: gpu.sm_count,
                sms_used: sms,
                blocks_per_sm,
                grid_blocks: grid,
                driver_version: gpu.driver_version,
                nvrtc_version: compile::nvrtc_version()?,
                startup: Startup {
                    context,
                    compile: built.took,
                    cached: compiled.cached,
                    source_bytes: source.len(),
                    module_bytes: compiled.cubin.len(),
                    load,
                    memory: allocating.elapsed(),
                    launch: Duration::ZERO,
                    tier: built.tier,
                    optimizing: built.optimizing,
                },
                tuning: c.tuning,
                diagnostics: c.diagnostics,
                cancellable: c.cancellable,
                optimize: c.optimize,
                submit_rings: rings,
            },
            executed_before: Mutex::new(vec![0; self.tasks.len()]),
            tasks: self.tasks,
            kinds,
            config: self.config,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            rings: rings_host,
            running: AtomicBool::new(false),
            generation: StdAtomicU32::new(0),
            fault: OnceLock::new(),
            lifecycle: Mutex::new(()),
            cancelling: std::sync::Mutex::new(()),
            idle_baseline_streams: Default::default(),
            stream,
            kernels,
            memory: std::mem::ManuallyDrop::new(memory),
            heap: std::mem::ManuallyDrop::new(heap),
            task_trace: std::mem::ManuallyDrop::new(task_trace),
            _module: std::mem::ManuallyDrop::new(module),
            claim: std::mem::ManuallyDrop::new(claim),
            ctx,
            gpu,
        };
        let launching = Instant::now();
        rt.launch()?;
        rt.info.startup.launch = launching.elapsed();
        Ok(rt)
    }
}

/// Carves the device heap and points the module's `grosr_heap` at it, before any kernel runs.
fn build_heap(
    gpu: &Gpu,
    module: &Module,
    stream: &Stream,
    c: &Config,
) -> Result<Option<DeviceHeap>> {
    let (free, _) = gpu.memory_info()?;
    let bytes = alloc::resolve_heap_bytes(c.heap_bytes, free as u64)?;
    if bytes == 0 {
        return Ok(None);
    }
    let (addr, size) = module.global("grosr_heap")?;
    if size != size_of::<alloc::HeapDesc>() {
        return Err(Error::Config(format!(
            "grosr_heap is {size} bytes on the device, not {}",
            size_of::<alloc::HeapDesc>()
        )));
    }
    let heap = DeviceHeap::new(
        gpu.context()?,
        module.function("grosr_heap_init")?,
        stream,
        bytes,
        gpu.sm_count.next_power_of_two(),
        c.spin_limit,
    )?;
    // SAFETY: addr is the module's grosr_heap (size checked above); no kernel runs yet.
    unsafe { crate::driver::write_device(gpu.context()?, addr, std::slice::from_ref(&heap.desc)) }?;
    Ok(Some(heap))
}

/// What [`RuntimeBuilder::precompile`] did.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Precompiled {
    /// The module was in the cache already (nothing compiled).
    pub cached: bool,
    /// The compile's time (or the lookup's, when `cached`).
    pub compile: Duration,
    /// Bytes of the module's CUBIN.
    pub module_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::spawner;
    use crate::record::CudaBody;

    const fn body(file: &'static str, line: u32, code: &'static str) -> CudaBody {
        CudaBody { code, file, line }
    }

    #[test]
    fn an_unregistered_spawn_names_the_one_body_that_holds_its_line() {
        let fib = ("Fib", body("grosr/../tests/x.rs", 10, "\n    a;\n    b;\n"));
        let other = ("Other", body("src/y.rs", 10, "\n    a;\n"));
        let at = |s: &str| spawner([fib, other], s);
        // The path as the #line names it (`dir/..` steps out); lines 10..=12 are Fib's.
        assert_eq!(at("the code at tests/x.rs(11)"), Some("Fib"));
        assert_eq!(at("the code at tests/x.rs(12)"), Some("Fib"));
        assert_eq!(at("the code at tests/x.rs(13)"), None);
        assert_eq!(at("the code at src/y.rs(10)"), Some("Other"));
        // A parenthesis in the path: the line is the last one.
        let paren = ("Paren", body("a (copy)/z.rs", 5, "x;"));
        assert_eq!(
            spawner([paren], "the code at a (copy)/z.rs(5)"),
            Some("Paren")
        );
        assert_eq!(at("not NVRTC's form"), None);
        assert_eq!(at("the code at tests/x.rs(eleven)"), None);
    }

    #[test]
    fn a_place_two_bodies_hold_names_no_task() {
        // A Rust body's translation runs past the next body's first line.
        let first = ("First", body("t.rs", 38, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10"));
        let second = ("Second", body("t.rs", 40, "1\n2\n3"));
        assert_eq!(spawner([first, second], "the code at t.rs(40)"), None);
        assert_eq!(
            spawner([first, second], "the code at t.rs(38)"),
            Some("First")
        );
    }
}
