//! The resident runtime: builds the scheduler kernel, keeps it running, takes submissions.

use std::any::TypeId;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU32 as StdAtomicU32, Ordering as StdOrdering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use cudarc::driver::result as cu;

use crate::alloc::{self, DeviceHeap, HeapStats};
use crate::codegen::{self, TaskInfo};
use crate::compile;
use crate::copy_streams::{self, CopyStreams};
use crate::driver::{Context, DeviceMem, Gpu, MappedMem, Module, Stream};
use crate::error::{CudaContext as _, Error, Result, from_device_code};
use crate::layout::{self, BLOCK_THREADS, Completion, Desc, HostCtl, Params};
use crate::record::Task;
use crate::ring::{
    self, ABANDONED, CompletionCells, DescCells, DescFields, JobTicket, Producer, Records, Ring,
    Waiter,
};

/// How the runtime is sized; see the builder's methods for each field.
#[derive(Clone, Debug)]
struct Config {
    device: usize,
    max_sms: Option<u32>,
    queue_capacity: u32,
    arena_bytes: usize,
    desc_capacity: u32,
    job_slots: u32,
    submit_timeout: Duration,
    start_timeout: Duration,
    spin_limit: u32,
    heap_bytes: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            device: 0,
            max_sms: None,
            queue_capacity: 8192,
            arena_bytes: 64 << 20,
            desc_capacity: 4096,
            job_slots: 4096,
            submit_timeout: Duration::from_secs(60),
            start_timeout: Duration::from_secs(10),
            spin_limit: 1 << 24,
            heap_bytes: None,
        }
    }
}

/// The `#define` lines that open the module's source: `env`'s (`GROSR_DEFINES`:
/// `NAME=VALUE,NAME=VALUE`, a bare `NAME` defines it empty), then the builder's own, which win
/// where both name a macro. A name that is not a C identifier, or a value spanning lines, becomes
/// an `#error` line instead, so the build fails with NVRTC's message naming it.
fn define_lines(env: &str, own: &[(String, String)]) -> String {
    let mut defined: Vec<(String, String)> = env
        .split(',')
        .filter(|d| !d.trim().is_empty())
        .map(|d| {
            let (name, value) = d.split_once('=').unwrap_or((d, ""));
            (name.trim().to_string(), value.trim().to_string())
        })
        .collect();
    for (name, value) in own {
        defined.retain(|(n, _)| n != name);
        defined.push((name.clone(), value.clone()));
    }
    let identifier = |n: &str| {
        n.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let mut s = String::new();
    for (name, value) in &defined {
        if identifier(name) && !value.contains(['\n', '\r']) {
            s.push_str(&format!("#define {name} {value}\n"));
        } else {
            let shown: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '?'
                    }
                })
                .collect();
            s.push_str(&format!(
                "#error grosr cannot define {shown} (GROSR_DEFINES or RuntimeBuilder::define): \
                 a macro name is a C identifier and its value one line\n"
            ));
        }
    }
    s
}

/// Builds a [`Runtime`]: register task types, size it, then [`build`](RuntimeBuilder::build).
///
/// ```no_run
/// # #[grosr::task(cuda = "task.out[0] = 1;")] pub struct Hello { pub out: grosr::DevicePtr<u32> }
/// let rt = grosr::Runtime::builder().task::<Hello>().max_sms(16).build()?;
/// # Ok::<(), grosr::Error>(())
/// ```
#[derive(Default)]
pub struct RuntimeBuilder {
    tasks: Vec<TaskInfo>,
    extra: Vec<ExtraCuda>,
    defines: Vec<(String, String)>,
    config: Config,
}

/// CUDA code compiled into the runtime's module after the task bodies (see
/// [`RuntimeBuilder::cuda`]).
#[derive(Clone, Debug)]
struct ExtraCuda {
    code: String,
    kernels: Vec<String>,
}

impl RuntimeBuilder {
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
    /// Caps the SMs the scheduler occupies, leaving the rest to ordinary kernels (default: all).
    /// The grid is `blocks per SM × max_sms` blocks; the hardware places them.
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
    /// How long `submit` waits for ring space before it fails (default 60 s).
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

    /// Adds CUDA code to the runtime's module, after the task bodies: device functions and
    /// `extern "C" __global__` kernels that may use the task types, spawn helpers and the device
    /// runtime. `kernels` names the kernels to load eagerly (every kernel you will launch with
    /// [`Baselines::launch`](crate::baseline::Baselines::launch)): a kernel loaded lazily beside
    /// the running scheduler could wait for SMs the scheduler never gives back.
    ///
    /// ```no_run
    /// let rt = grosr::Runtime::builder()
    ///     .cuda(r#"extern "C" __global__ void fill(uint32_t* x, uint32_t n) {
    ///         uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] = i; }"#, &["fill"])
    ///     .build()?;
    /// # Ok::<(), grosr::Error>(())
    /// ```
    pub fn cuda(mut self, code: impl Into<String>, kernels: &[&str]) -> Self {
        self.extra.push(ExtraCuda {
            code: code.into(),
            kernels: kernels.iter().map(|k| k.to_string()).collect(),
        });
        self
    }

    /// Defines a preprocessor macro at the top of the module's source (before the runtime), for
    /// task bodies that use macros and for the runtime's tuning knobs: `GROSR_BYPASS_HOPS`
    /// (chained tasks a warp runs without a scheduling round, default 64, 0 = off) and
    /// `GROSR_MIN_BLOCKS_PER_SM` (the scheduler's `__launch_bounds__` minimum, default 2).
    /// The environment variable `GROSR_DEFINES` (`NAME=VALUE,NAME=VALUE`) adds more, for
    /// experiments without a rebuild; the builder's own come last and win. A name that is not a
    /// C identifier fails the build with an NVRTC error naming it.
    ///
    /// ```
    /// let src = grosr::Runtime::builder().define("GROSR_BYPASS_HOPS", "0").source();
    /// assert!(src.starts_with("#define GROSR_BYPASS_HOPS 0\n"));
    /// ```
    pub fn define(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.defines.push((name.into(), value.into()));
        self
    }

    /// The CUDA source the runtime would compile (no GPU needed).
    pub fn source(&self) -> String {
        let env = std::env::var("GROSR_DEFINES").unwrap_or_default();
        let mut s = define_lines(&env, &self.defines);
        s.push_str(&codegen::generate(&self.tasks));
        for (i, e) in self.extra.iter().enumerate() {
            s.push_str(&format!("\n// ---- Extra CUDA source {i} ----\n"));
            s.push_str(&e.code);
            s.push('\n');
        }
        s
    }

    /// Compiles the scheduler (or loads it from the cache) and launches it on the GPU.
    pub fn build(self) -> Result<Runtime> {
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
        if c.max_sms == Some(0) {
            return Err(Error::Config("max_sms must be at least 1".into()));
        }
        let mut names = HashMap::new();
        for t in &self.tasks {
            if names.insert(t.name, t.type_id).is_some() {
                return Err(Error::DuplicateTask(t.name));
            }
        }
        let gpu = Gpu::open(c.device)?;
        let sms = c.max_sms.unwrap_or(gpu.sm_count).min(gpu.sm_count);
        // Claim SMs before loading anything: loading a module beside a running scheduler of
        // this process is what the claim exists to avoid.
        let claim = SmClaim::new(c.device, sms, gpu.sm_count)?;
        compile::nvrtc_available()?;
        let source = self.source();
        let compiled = compile::compile_cached(&source, gpu.arch)?;
        let module = Module::load(gpu.context(), &compiled.cubin)?;
        for t in &self.tasks {
            module.preload(&format!("grosr_single_{}", t.name))?;
            module.preload(&format!("grosr_bulk_{}", t.name))?;
        }
        for k in self.extra.iter().flat_map(|e| &e.kernels) {
            module.preload(k)?;
        }
        module.preload("grosr_scheduler")?;
        module.preload("grosr_init")?;
        let kernels = Kernels {
            scheduler: module.function("grosr_scheduler")?.raw(),
            init: module.function("grosr_init")?.raw(),
        };
        let blocks_per_sm = occupancy_preferring_l1(kernels.scheduler, &gpu)?;
        if blocks_per_sm == 0 {
            return Err(Error::DoesNotFit(
                "the scheduler block needs more registers or shared memory than one SM has".into(),
            ));
        }
        let grid = blocks_per_sm * sms;
        let memory = Memory::new(gpu.context(), c, sms, self.tasks.len())?;
        let heap = build_heap(&gpu, &module, c)?;
        let stream = Stream::new(gpu.context())?;
        let kinds = self
            .tasks
            .iter()
            .enumerate()
            .map(|(k, t)| (t.type_id, k as u32))
            .collect();
        let producer = Producer::new(c.arena_bytes as u64, 0, 0);
        let rt = Runtime {
            info: RuntimeInfo {
                device: gpu.name.clone(),
                arch: gpu.arch,
                sm_count: gpu.sm_count,
                sms_used: sms,
                blocks_per_sm,
                grid_blocks: grid,
                driver_version: gpu.driver_version,
                nvrtc_version: compile::nvrtc_version()?,
                compiled_from_cache: compiled.cached,
            },
            tasks: self.tasks,
            kinds,
            config: self.config,
            producer: Mutex::new(producer),
            running: AtomicBool::new(false),
            generation: StdAtomicU32::new(0),
            fault: OnceLock::new(),
            lifecycle: Mutex::new(()),
            stream,
            kernels,
            memory: std::mem::ManuallyDrop::new(memory),
            heap: std::mem::ManuallyDrop::new(heap),
            _module: std::mem::ManuallyDrop::new(module),
            _claim: claim,
            gpu,
        };
        rt.launch()?;
        Ok(rt)
    }
}

/// Carves the device heap and points the module's `grosr_heap` at it, before any kernel runs.
fn build_heap(gpu: &Gpu, module: &Module, c: &Config) -> Result<Option<DeviceHeap>> {
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
        gpu.context(),
        bytes,
        gpu.sm_count.next_power_of_two(),
        c.spin_limit,
    )?;
    // SAFETY: addr is the module's grosr_heap (size checked above); no kernel runs yet.
    unsafe { crate::driver::write_device(gpu.context(), addr, std::slice::from_ref(&heap.desc)) }?;
    Ok(Some(heap))
}

struct Kernels {
    scheduler: cudarc::driver::sys::CUfunction,
    init: cudarc::driver::sys::CUfunction,
}

// SAFETY: function handles are plain identifiers valid in the runtime's context on any thread.
unsafe impl Send for Kernels {}
// SAFETY: as above.
unsafe impl Sync for Kernels {}

/// The mapped host block and the device block, and where each array lives in them.
struct Memory {
    host: MappedMem,
    arena: MappedMem,
    device: DeviceMem,
    params: Params,
    descs_off: usize,
    desc_done_off: usize,
    completions_off: usize,
    executed_off: usize,
}

impl Memory {
    fn new(ctx: &Context, c: &Config, queues: u32, kinds: usize) -> Result<Memory> {
        let (dc, js) = (c.desc_capacity as usize, c.job_slots as usize);
        let descs_off = size_of::<HostCtl>();
        let desc_done_off = descs_off + dc * size_of::<Desc>();
        let completions_off = (desc_done_off + dc * 4).next_multiple_of(16);
        let host = MappedMem::new(ctx, completions_off + js * size_of::<Completion>())?;
        let arena = MappedMem::new(ctx, c.arena_bytes)?;
        // Device block: jobs | desc_reads | executed | stop, err | queues | slots.
        let jobs_off = 0;
        let reads_off = js * layout::DEV_JOB_BYTES;
        let executed_off = (reads_off + dc * 4).next_multiple_of(8);
        let flags_off = (executed_off + kinds.max(1) * 8).next_multiple_of(128);
        let queues_off = (flags_off + 128).next_multiple_of(512);
        let slots_off = queues_off + queues as usize * layout::QUEUE_HEADER_BYTES;
        let total = slots_off + queues as usize * c.queue_capacity as usize * layout::SLOT_BYTES;
        let device = DeviceMem::zeroed(ctx, total)?;
        let (h, d) = (host.device(), device.ptr());
        let params = Params {
            host: h,
            descs: h + descs_off as u64,
            desc_done: h + desc_done_off as u64,
            completions: h + completions_off as u64,
            jobs: d + jobs_off as u64,
            desc_reads: d + reads_off as u64,
            executed: d + executed_off as u64,
            queues: d + queues_off as u64,
            slots: d + slots_off as u64,
            dev_stop: d + flags_off as u64,
            dev_err: d + flags_off as u64 + 4,
            desc_start: 0,
            num_queues: queues,
            queue_cap: c.queue_capacity,
            desc_cap: c.desc_capacity,
            job_slots: c.job_slots,
            num_kinds: kinds as u32,
            spin_limit: c.spin_limit,
        };
        Ok(Memory {
            host,
            arena,
            device,
            params,
            descs_off,
            desc_done_off,
            completions_off,
            executed_off,
        })
    }

    fn ctl(&self) -> *mut HostCtl {
        self.host.host() as *mut HostCtl
    }

    /// The submission cells as atomics over the mapped memory.
    fn ring(&self) -> Ring<'_> {
        let p = self.params;
        let base = self.host.host();
        // SAFETY: the offsets were laid out in `new` inside one live allocation; each array has
        // the length given and the atomics' layout of the C structs (ring.rs); the GPU accesses
        // the same bytes only with the matching protocol.
        unsafe {
            Ring {
                desc_head: &*(std::ptr::addr_of_mut!((*self.ctl()).desc_head)
                    as *const ring::AtomicU64),
                descs: std::slice::from_raw_parts(
                    base.add(self.descs_off) as *const DescCells,
                    p.desc_cap as usize,
                ),
                desc_done: std::slice::from_raw_parts(
                    base.add(self.desc_done_off) as *const ring::AtomicU32,
                    p.desc_cap as usize,
                ),
                completions: std::slice::from_raw_parts(
                    base.add(self.completions_off) as *const CompletionCells,
                    p.job_slots as usize,
                ),
            }
        }
    }

    /// An atomic view of one 32-bit field of the control block.
    fn ctl_u32(&self, field: impl FnOnce(*mut HostCtl) -> *mut u32) -> &ring::AtomicU32 {
        // SAFETY: the field lies inside the live mapped allocation and is 4-byte aligned.
        unsafe { &*(field(self.ctl()) as *const ring::AtomicU32) }
    }
}

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
    /// Whether the CUBIN came from the disk cache.
    pub compiled_from_cache: bool,
}

/// Resident scheduler blocks per SM (the occupancy API), after asking the driver to give the
/// scheduler's SMs only the shared memory that many blocks need and the rest to L1 (its own
/// choice splits the storage about evenly): worker warps spill registers and keep records in
/// local memory, which L1 caches. H200, session 10, 1M spawned tasks, fan-out 8: 4810 and 4842
/// M/s with the computed carveout (27%) against 4772 and 4766 with the driver's choice; 3658
/// and 3709 with 100% (all shared). `GROSR_SMEM_CARVEOUT` (percent) overrides it for
/// experiments. Should fewer blocks fit then, the driver's choice is restored.
fn occupancy_preferring_l1(scheduler: cudarc::driver::sys::CUfunction, gpu: &Gpu) -> Result<u32> {
    use cudarc::driver::sys::CUfunction_attribute as F;
    // SAFETY (all calls below): the function exists in the loaded module; attributes are ints.
    let set = |pct: i32| {
        unsafe {
            cu::function::set_function_attribute(
                scheduler,
                F::CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT,
                pct,
            )
        }
        .call("cuFuncSetAttribute(PREFERRED_SHARED_MEMORY_CARVEOUT)")
    };
    let occupancy = || {
        unsafe {
            cu::occupancy::max_active_block_per_multiprocessor(scheduler, BLOCK_THREADS as i32, 0)
        }
        .call("cuOccupancyMaxActiveBlocksPerMultiprocessor")
        .map(|b| b as u32)
    };
    let blocks = occupancy()?;
    let forced = std::env::var("GROSR_SMEM_CARVEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<i32>().ok());
    let pct = match forced {
        Some(pct) => pct,
        None if blocks == 0 || gpu.smem_per_sm == 0 => return Ok(blocks),
        None => {
            let static_smem = unsafe {
                cu::function::get_function_attribute(
                    scheduler,
                    F::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
                )
            }
            .call("cuFuncGetAttribute(SHARED_SIZE_BYTES)")? as u64;
            let need = blocks as u64 * (static_smem + gpu.smem_reserved_per_block as u64);
            (need * 100).div_ceil(gpu.smem_per_sm as u64).min(100) as i32
        }
    };
    set(pct)?;
    let now = occupancy()?;
    if now < blocks && forced.is_none() {
        set(-1)?; // the driver's own choice again: occupancy first
        return occupancy();
    }
    Ok(now)
}

/// SMs that runtimes of this process hold per device, so a second runtime that cannot fit is
/// refused at once instead of waiting for blocks that will never become resident.
static SM_CLAIMS: Mutex<Vec<(usize, u32)>> = Mutex::new(Vec::new());

struct SmClaim {
    device: usize,
    sms: u32,
}

impl SmClaim {
    fn new(device: usize, sms: u32, total: u32) -> Result<SmClaim> {
        let mut claims = SM_CLAIMS.lock().unwrap_or_else(|e| e.into_inner());
        let held: u32 = claims
            .iter()
            .filter(|(d, _)| *d == device)
            .map(|(_, s)| s)
            .sum();
        if held + sms > total {
            return Err(Error::DoesNotFit(format!(
                "grosr runtimes of this process already occupy {held} of the {total} SMs of device {device}; \
                 this one needs {sms}: cap them with RuntimeBuilder::max_sms"
            )));
        }
        claims.push((device, sms));
        Ok(SmClaim { device, sms })
    }
}

impl Drop for SmClaim {
    fn drop(&mut self) {
        let mut claims = SM_CLAIMS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = claims
            .iter()
            .position(|&(d, s)| d == self.device && s == self.sms)
        {
            claims.swap_remove(i);
        }
    }
}

/// A persistent task scheduler running on one GPU.
///
/// Built by [`Runtime::builder`]. Many threads may [`submit`](Runtime::submit) at once; each
/// submission is a [`Job`] that completes when its tasks and everything they spawned have run.
/// Dropping the runtime stops the kernel and frees everything.
pub struct Runtime {
    info: RuntimeInfo,
    tasks: Vec<TaskInfo>,
    kinds: HashMap<TypeId, u32>,
    config: Config,
    producer: Mutex<Producer>,
    running: AtomicBool,
    generation: StdAtomicU32,
    fault: OnceLock<Error>,
    lifecycle: Mutex<()>,
    // Field order is drop order: the stream goes before the context (gpu); memory, heap and
    // module go in Drop first, or are leaked there while the kernel still runs.
    stream: Stream,
    kernels: Kernels,
    memory: std::mem::ManuallyDrop<Memory>,
    heap: std::mem::ManuallyDrop<Option<DeviceHeap>>,
    _module: std::mem::ManuallyDrop<Module>,
    _claim: SmClaim,
    gpu: Gpu,
}

impl Runtime {
    /// A builder with no task types and default sizes.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Facts about the GPU and the scheduler's size.
    pub fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    /// The registered task types in kind order.
    pub fn tasks(&self) -> &[TaskInfo] {
        &self.tasks
    }

    /// Kind numbers by task type.
    pub(crate) fn kind_map(&self) -> &HashMap<TypeId, u32> {
        &self.kinds
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
        self.gpu.bind()?;
        self._module.global(name)
    }

    /// Copies the `__device__` variable `name` to the host as elements of `T` (as many as fit
    /// its size); works while the scheduler runs.
    pub fn read_global<T: bytemuck::Pod>(&self, name: &str) -> Result<Vec<T>> {
        let (addr, size) = self.global(name)?;
        let mut out = vec![T::zeroed(); size / std::mem::size_of::<T>().max(1)];
        // SAFETY: the module owns `size` bytes at `addr`, and out covers at most that many.
        unsafe { crate::driver::read_device(self.gpu.context(), addr, &mut out) }?;
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
        unsafe { crate::driver::write_device(self.gpu.context(), addr, data) }
    }

    /// What the device heap holds: bytes and allocations in use per size class, failures.
    /// Works while the scheduler runs (by copies); an error if the runtime has no heap.
    pub fn heap_stats(&self) -> Result<HeapStats> {
        let heap = self.heap()?;
        self.gpu.bind()?;
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
        if self.is_running() {
            return Err(Error::Config(
                "heap_reset needs the scheduler stopped: call Runtime::stop first".into(),
            ));
        }
        self.gpu.bind()?;
        heap.init()
    }

    fn heap(&self) -> Result<&DeviceHeap> {
        self.heap
            .as_ref()
            .ok_or_else(|| Error::Config("this runtime was built with heap_bytes(0)".into()))
    }

    /// The GPU this runtime runs on (for allocating task data).
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Submits `records` as one job and returns at once; waits only while the ring is full
    /// (at most the builder's `submit_timeout`).
    pub fn submit<T: Task + 'static>(&self, records: &[T]) -> Result<Job<'_>> {
        self.submit_timeout(records, self.config.submit_timeout)
    }

    /// [`submit`](Runtime::submit), waiting at most `timeout` for ring space.
    pub fn submit_timeout<T: Task + 'static>(
        &self,
        records: &[T],
        timeout: Duration,
    ) -> Result<Job<'_>> {
        let kind = self.kind_of::<T>()?;
        self.submit_bytes(
            kind,
            size_of::<T>(),
            bytemuck::cast_slice(records),
            0,
            timeout,
        )
    }

    /// Submits raw records of kind `kind` (`record_size` bytes each). For tests of the GPU's
    /// handling of corrupt input; use [`submit`](Runtime::submit).
    #[doc(hidden)]
    pub fn submit_raw(&self, kind: u32, record_size: usize, bytes: &[u8]) -> Result<Job<'_>> {
        if record_size == 0
            || record_size > crate::MAX_RECORD_BYTES
            || bytes.len() % record_size != 0
        {
            return Err(Error::Config(format!(
                "raw records of {record_size} B cannot hold {} B",
                bytes.len()
            )));
        }
        self.submit_bytes(kind, record_size, bytes, 0, self.config.submit_timeout)
    }

    /// Submits `bytes` as records of `record_size` bytes; the job counts `extra` tasks more than
    /// records (a small graph's launch is one record that runs as several tasks).
    pub(crate) fn submit_bytes(
        &self,
        kind: u32,
        record_size: usize,
        bytes: &[u8],
        extra: u32,
        timeout: Duration,
    ) -> Result<Job<'_>> {
        // No driver call on the fast path (a cuStreamQuery costs microseconds): a kernel that
        // died since the last check is noticed by the bounded waits below and by Job::wait.
        self.state()?;
        let generation = self.generation.load(StdOrdering::Acquire);
        let count = bytes.len() / record_size;
        if count == 0 {
            return Ok(Job {
                rt: self,
                ticket: None,
                generation,
            });
        }
        let ring = self.memory.ring();
        let health = || self.health();
        let mut wait = Waiter::new(timeout);
        let lock = || self.producer.lock().unwrap_or_else(|e| e.into_inner());
        let (job, per_chunk) = {
            let mut p = lock();
            let per_chunk = (p.max_chunk_bytes() as usize / record_size).min(u32::MAX as usize);
            (p.take_job(&ring), per_chunk)
        };
        // A slot whose previous job was orphaned is freed by settling orphans while we wait.
        let settle_then_check = || {
            lock().settle_orphans(&ring);
            health()
        };
        if let Err(e) = ring::wait_job_slot(&ring, job, &mut wait, &settle_then_check) {
            lock().orphan(job);
            return Err(e);
        }
        if ring::travels_inline(bytes.len(), record_size) {
            // Few small records travel in the descriptor itself: the GPU reads them with the
            // descriptor in one PCIe round trip, and no arena space is taken or given back.
            let t = match lock().reserve_inline(&ring, &mut wait, &health) {
                Ok(t) => t,
                Err(e) => {
                    lock().orphan(job);
                    return Err(e);
                }
            };
            let fields = DescFields {
                records: Records::Inline(bytes),
                kind,
                count: count as u32,
                job,
                adjust: extra as i32,
            };
            ring::publish(&ring, t.desc, fields);
            return Ok(Job {
                rt: self,
                ticket: Some(job),
                generation,
            });
        }
        let chunks = count.div_ceil(per_chunk);
        for (i, chunk) in bytes.chunks(per_chunk * record_size).enumerate() {
            let t = match lock().reserve_chunk(&ring, chunk.len() as u64, &mut wait, &health) {
                Ok(t) => t,
                // Nothing of the job was published yet: its slot is settled later. A job that
                // failed between chunks keeps its slot until the runtime is restarted (its
                // published chunks hold the split guard); submit_timeout makes that rare.
                Err(e) => {
                    if i == 0 {
                        lock().orphan(job);
                    }
                    return Err(e);
                }
            };
            // SAFETY: reserve_chunk handed us [offset, offset + len) of the arena exclusively
            // until the GPU marks this descriptor read, which happens only after publish.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    chunk.as_ptr(),
                    self.memory.arena.host().add(t.offset as usize),
                    chunk.len(),
                );
            }
            // A job split over several descriptors holds one extra count from its first chunk to
            // its last, so it cannot complete between chunks.
            let adjust = match (i == 0, i + 1 == chunks) {
                (true, false) => 1,
                (false, true) => -1,
                _ => 0,
            } + if i == 0 { extra as i32 } else { 0 };
            let fields = DescFields {
                records: Records::Arena(self.memory.arena.device() + t.offset),
                kind,
                count: (chunk.len() / record_size) as u32,
                job,
                adjust,
            };
            ring::publish(&ring, t.desc, fields);
        }
        Ok(Job {
            rt: self,
            ticket: Some(job),
            generation,
        })
    }

    /// How many tasks of type `T` have run since the runtime was built.
    pub fn executed<T: Task + 'static>(&self) -> Result<u64> {
        let kind = self.kind_of::<T>()? as usize;
        Ok(self.executed_all()?[kind])
    }

    /// Tasks run per kind (in registration order).
    pub fn executed_all(&self) -> Result<Vec<u64>> {
        self.health()?;
        self.gpu.bind()?;
        let mut counts = vec![0u64; self.tasks.len()];
        self.memory
            .device
            .read_at(self.memory.executed_off, &mut counts)?;
        Ok(counts)
    }

    /// Whether the kernel is running.
    pub fn is_running(&self) -> bool {
        self.running.load(StdOrdering::Acquire)
    }

    /// Stops the kernel (jobs still running are abandoned: waiting on them returns
    /// [`Error::Stopped`]). Waits at most 10 s for it to exit.
    pub fn stop(&self) -> Result<()> {
        let _guard = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        if !self.running.swap(false, StdOrdering::AcqRel) {
            return Ok(());
        }
        self.generation.fetch_add(1, StdOrdering::AcqRel);
        // Dropped at the end of this function, once the kernel has exited (or been waited for).
        let _copy_streams = copy_streams::leave(self.gpu.context());
        // Release: the GPU's ingest warp polls this flag (ld volatile) and tells every block.
        self.memory
            .ctl_u32(|c| unsafe { std::ptr::addr_of_mut!((*c).stop) })
            .store(1, StdOrdering::Release);
        self.gpu.bind()?;
        match self
            .stream
            .wait(Duration::from_secs(10), "the scheduler to exit")
        {
            Err(Error::Timeout(..)) => {
                // The kernel still runs: freeing the copy streams' page-locked probe would wait
                // for it (cuMemFreeHost synchronises the context), so they are leaked.
                std::mem::forget(_copy_streams);
                let e = Error::DeviceFault(
                    "the scheduler did not exit within 10 s of stop (a task that never ends?)"
                        .into(),
                );
                let _ = self.fault.set(e.clone());
                Err(e)
            }
            Err(e) => {
                let _ = self.fault.set(Error::DeviceFault(e.to_string()));
                Err(self.fault.get().cloned().unwrap_or(e))
            }
            Ok(()) => Ok(()),
        }
    }

    /// Starts the kernel again after [`stop`](Runtime::stop).
    pub fn start(&self) -> Result<()> {
        {
            let _guard = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
            if self.running.load(StdOrdering::Acquire) {
                return Ok(());
            }
        }
        self.launch()
    }

    fn launch(&self) -> Result<()> {
        let _guard = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = self.fault.get() {
            return Err(e.clone());
        }
        self.gpu.bind()?;
        let m = &self.memory;
        let mut producer = self.producer.lock().unwrap_or_else(|e| e.into_inner());
        // Fresh device state; queues' slot sequences are set by the init kernel.
        m.device.clear()?;
        abandon_unfinished_jobs(&m.ring(), &producer);
        let next_desc = producer.next_desc();
        *producer = Producer::new(
            self.config.arena_bytes as u64,
            next_desc,
            producer.next_job(),
        );
        m.ring().desc_head.store(next_desc, ring::Ordering::Release);
        for field in [
            m.ctl_u32(|c| unsafe { std::ptr::addr_of_mut!((*c).stop) }),
            m.ctl_u32(|c| unsafe { std::ptr::addr_of_mut!((*c).started_blocks) }),
            m.ctl_u32(|c| unsafe { std::ptr::addr_of_mut!((*c).exited_blocks) }),
            m.ctl_u32(|c| unsafe { std::ptr::addr_of_mut!((*c).err_code) } as *mut u32),
        ] {
            field.store(0, StdOrdering::Release);
        }
        let mut params = Params {
            desc_start: next_desc,
            ..m.params
        };
        let mut args = [&mut params as *mut Params as *mut c_void];
        let init_blocks = (m.params.num_queues * m.params.queue_cap)
            .div_ceil(BLOCK_THREADS)
            .min(4096);
        // SAFETY: the kernel takes one Params by value; args points at it for the call.
        unsafe {
            cu::launch_kernel(
                self.kernels.init,
                (init_blocks, 1, 1),
                (BLOCK_THREADS, 1, 1),
                0,
                self.stream.raw(),
                &mut args,
            )
        }
        .call("cuLaunchKernel(grosr_init)")?;
        self.stream
            .wait(self.config.start_timeout, "the queues to be initialised")?;
        let grid = self.info.grid_blocks;
        // SAFETY: as above; a cooperative launch guarantees every block is resident at once.
        let launched = unsafe {
            cu::launch_cooperative_kernel(
                self.kernels.scheduler,
                (grid, 1, 1),
                (BLOCK_THREADS, 1, 1),
                0,
                self.stream.raw(),
                &mut args,
            )
        };
        if let Err(e) = launched {
            return Err(
                if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE {
                    Error::DoesNotFit(format!("{grid} blocks cannot all be resident ({:?})", e.0))
                } else {
                    Error::Cuda {
                        call: "cuLaunchCooperativeKernel",
                        code: e.0,
                    }
                },
            );
        }
        // Every block checks in; if some never become resident (another kernel holds the SMs),
        // refuse rather than run a scheduler that could wait on absent blocks.
        let started = m.ctl_u32(|c| unsafe { std::ptr::addr_of_mut!((*c).started_blocks) });
        let mut wait = Waiter::new(self.config.start_timeout);
        let waited = wait.until(
            || started.load(StdOrdering::Acquire) >= grid,
            &|| self.stream.query().map(|_| ()),
            "scheduler blocks",
        );
        drop(producer);
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
        match CopyStreams::probe(&m.device) {
            Ok(streams) => copy_streams::enter(self.gpu.context(), streams),
            Err(e) => {
                drop(_guard);
                let _ = self.stop();
                return Err(e);
            }
        }
        Ok(())
    }

    /// `Ok` while the runtime can take work; otherwise the error that stopped it. Also asks
    /// the driver whether the kernel still runs (waits call this; submit uses `state`).
    fn health(&self) -> Result<()> {
        self.state()?;
        self.gpu.bind()?;
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
    fn state(&self) -> Result<()> {
        if let Some(e) = self.fault.get() {
            return Err(e.clone());
        }
        if !self.running.load(StdOrdering::Acquire) {
            return Err(Error::Stopped);
        }
        // A stalled device protocol stops everything; other device errors belong to their jobs.
        let code = self
            .memory
            .ctl_u32(|c| unsafe { std::ptr::addr_of_mut!((*c).err_code) } as *mut u32)
            .load(StdOrdering::Acquire) as i32;
        if code == -3 {
            let detail = unsafe {
                std::ptr::read_volatile(std::ptr::addr_of!((*self.memory.ctl()).err_detail))
            };
            let _ = self.fault.set(Error::Protocol(detail));
            return Err(Error::Protocol(detail));
        }
        Ok(())
    }

    fn kind_name(&self, kind: u32) -> String {
        self.tasks
            .get(kind as usize)
            .map_or_else(|| format!("kind {kind}"), |t| t.name.to_string())
    }
}

/// After a stop, marks every job slot whose latest job never completed as abandoned, so waits
/// on those jobs end and their slots can be reused.
fn abandon_unfinished_jobs(ring: &Ring, producer: &Producer) {
    let slots = ring.completions.len() as u64;
    let next = producer.next_job();
    for (s, c) in ring.completions.iter().enumerate() {
        let s = s as u64;
        if next <= s {
            continue;
        }
        let latest = ((next - 1 - s) / slots + 1) as u32;
        if c.done_seq.load(ring::Ordering::Acquire) != latest {
            c.error.store(ABANDONED, ring::Ordering::Relaxed);
            c.done_seq.store(latest, ring::Ordering::Release);
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.stop();
        // Whether the kernel still runs decides, not how stop() went: after an explicit stop()
        // that timed out (a task that never returns), this stop() returns that fault at once,
        // and the kernel still uses the memory, so it must be leaked rather than freed. A faulted
        // context answers the query with an error: no kernel runs in it any more.
        if !self.stream.query().unwrap_or(true) {
            // So are the module and the context: unloading the one or releasing the other
            // would wait for the kernel, which never ends.
            eprintln!(
                "grosr: the scheduler did not stop; its memory, module and context are leaked"
            );
            self.gpu.keep_context();
            return;
        }
        // SAFETY: the kernel has exited (or the context faulted); nothing uses the memory now,
        // and it is dropped exactly once, here. After a fault the frees fail harmlessly.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.memory) };
        // SAFETY: as above: no kernel runs, and the heap is dropped once, here.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.heap) };
        // SAFETY: as above; dropped once, here, before the context it lives in (a field below).
        unsafe { std::mem::ManuallyDrop::drop(&mut self._module) };
    }
}

/// A submitted job: its tasks and everything they spawn.
#[must_use = "a job should be waited for to learn whether its tasks succeeded"]
pub struct Job<'rt> {
    rt: &'rt Runtime,
    ticket: Option<JobTicket>,
    generation: u32,
}

impl Job<'_> {
    /// Whether the job has finished (successfully or not).
    pub fn is_done(&self) -> Result<bool> {
        match self.outcome() {
            Some(r) => r.map(|_| true),
            None => self.rt.health().map(|_| false),
        }
    }

    /// Waits for the job, at most the runtime's submit timeout.
    pub fn wait(&self) -> Result<()> {
        self.wait_timeout(self.rt.config.submit_timeout)
    }

    /// Waits at most `timeout`; returns the first error any of the job's tasks reported.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        let Some(ticket) = self.ticket else {
            return Ok(());
        };
        let ring = self.rt.memory.ring();
        let health = || {
            if self.rt.generation.load(StdOrdering::Acquire) != self.generation {
                return Err(Error::Stopped);
            }
            self.rt.health()
        };
        Waiter::new(timeout).until(
            || ring::job_outcome(&ring, ticket).is_some(),
            &health,
            "the job to finish",
        )?;
        self.outcome().unwrap_or(Ok(()))
    }

    fn outcome(&self) -> Option<Result<()>> {
        let Some(ticket) = self.ticket else {
            return Some(Ok(()));
        };
        let (error, kind) = ring::job_outcome(&self.rt.memory.ring(), ticket)?;
        Some(match error {
            0 => Ok(()),
            ABANDONED => Err(Error::Stopped),
            code => Err(from_device_code(code, kind, 0, |k| self.rt.kind_name(k))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::define_lines;

    fn own(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defines_come_from_the_environment_then_the_builder_which_wins() {
        let s = define_lines(" A=1, B ,C=x y,", &own(&[("A", "2"), ("D", "")]));
        assert_eq!(s, "#define B \n#define C x y\n#define A 2\n#define D \n");
        assert_eq!(define_lines("", &[]), "");
    }

    #[test]
    fn a_bad_define_becomes_an_error_line_that_names_it() {
        for (env, own) in [
            ("1X=3", own(&[])),
            ("", own(&[("A B", "1")])),
            ("", own(&[("V", "a\nb")])),
        ] {
            let s = define_lines(env, &own);
            assert!(s.starts_with("#error grosr cannot define "), "{s}");
            assert!(!s.contains("#define"), "{s}");
        }
        assert!(define_lines("", &own(&[("A B", "")])).contains("define A?B "));
    }
}
