//! The CUDA-graph WHILE-node BFS baseline: the level-synchronous loop kept on the GPU.
//!
//! One executable graph per uploaded graph holds a conditional WHILE node whose body is two
//! kernel nodes: `grosr_bfs_while_level` (the level-synchronous expansion of `level.cu`, over a
//! fixed grid, grid-stride) and `grosr_bfs_while_next` (one thread: the next frontier becomes the
//! current one, and `cudaGraphSetConditional(handle, size != 0)` decides whether the body runs
//! again). Per search the host copies the inputs (reset levels, root, loop state), launches the
//! graph once and waits: no host round trip per level.
//!
//! The kernels live in a module of their own (not the scheduler's), because
//! `cudaGraphSetConditional` is a device-runtime function NVRTC leaves undefined. Two ways to
//! resolve it ([`WhileRoute`]):
//!
//! * **device runtime**: NVRTC compiles with `-rdc=true` (a relocatable CUBIN), and the driver's
//!   JIT linker links it with the toolkit's `libcudadevrt.a` ([`find_cudadevrt`]) into the image
//!   that `cuModuleLoadData` loads;
//! * **direct**: a whole-program CUBIN, the symbol left for the driver to resolve when it loads
//!   the module (how NVRTC users without a toolkit, such as cuda-python's tests, call it).
//!
//! Either way a self-test graph (a WHILE loop that must run exactly 3 times) runs before any
//! search relies on the node, and every failure is an [`grosr::Error::Unsupported`] saying why.
//! Everything here needs the scheduler stopped ([`Runtime::stop`]), like the level-synchronous
//! baseline: module loading, graph instantiation and launches would otherwise wait for SMs the
//! persistent kernel never gives back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::gpu::{BfsRun, DeviceGraph, WAIT};
use crate::{Error, Result};
use grosr::Runtime;
use grosr::unstable::{Baselines, Context, DeviceMem, Graph, Module, Stream, WhileBody};

/// The WHILE module's CUDA source: the integer typedefs, the shared level expansion
/// (`level.cu`) and the WHILE kernels (`while.cu`).
pub const WHILE_CUDA: &str = concat!(
    "// grosr BFS WHILE-graph module\n",
    "typedef unsigned int uint32_t;\n",
    "typedef unsigned long long uint64_t;\n",
    include_str!("level.cu"),
    "\n",
    include_str!("while.cu")
);

/// The level kernel of the WHILE body.
pub const WHILE_LEVEL_KERNEL: &str = "grosr_bfs_while_level";
/// The kernel that ends each iteration and sets the WHILE node's condition.
pub const WHILE_NEXT_KERNEL: &str = "grosr_bfs_while_next";
/// The self-test kernel.
pub const WHILE_PROBE_KERNEL: &str = "grosr_while_probe";

/// The oldest driver (CUDA 12.4) whose conditional nodes grosr relies on.
const MIN_DRIVER: i32 = 12040;

/// How `cudaGraphSetConditional` is resolved (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhileRoute {
    /// The device-runtime link if `libcudadevrt.a` is found and links, else the direct route.
    #[default]
    Auto,
    /// `-rdc=true` CUBIN linked with `libcudadevrt.a` by the driver's linker.
    DeviceRuntime,
    /// A whole-program CUBIN; the driver resolves the symbol at load time.
    Direct,
}

/// NVRTC options of the device-runtime route.
pub const RDC_OPTIONS: &[&str] = &["-rdc=true"];

/// The toolkit's device runtime library: `$GROSR_CUDADEVRT` (a file), else `libcudadevrt.a`
/// under `$CUDA_HOME`, `$CUDA_PATH` or `$CUDA_ROOT` (`lib64`, `lib`, `targets/<arch>-linux/lib`),
/// `/usr/local/cuda`, the newest `/usr/local/cuda-*`, `/usr/lib/<arch>-linux-gnu`,
/// `/usr/lib/cuda`. `None` if none exists.
pub fn find_cudadevrt() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GROSR_CUDADEVRT").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let target = if cfg!(target_arch = "aarch64") {
        "sbsa-linux"
    } else {
        "x86_64-linux"
    };
    let mut roots: Vec<PathBuf> = ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"]
        .iter()
        .filter_map(|v| std::env::var_os(v).filter(|p| !p.is_empty()))
        .map(PathBuf::from)
        .collect();
    roots.push("/usr/local/cuda".into());
    if let Ok(dir) = std::fs::read_dir("/usr/local") {
        let mut versioned: Vec<PathBuf> = dir
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("cuda-"))
            .map(|e| e.path())
            .collect();
        versioned.sort();
        roots.extend(versioned.into_iter().rev());
    }
    let mut candidates = Vec::new();
    for r in &roots {
        candidates.push(r.join("lib64"));
        candidates.push(r.join("lib"));
        candidates.push(r.join("targets").join(target).join("lib"));
    }
    let gnu = if cfg!(target_arch = "aarch64") {
        "aarch64-linux-gnu"
    } else {
        "x86_64-linux-gnu"
    };
    candidates.push(Path::new("/usr/lib").join(gnu));
    candidates.push("/usr/lib/cuda/lib64".into());
    candidates
        .into_iter()
        .map(|d| d.join("libcudadevrt.a"))
        .find(|p| p.is_file())
}

/// The WHILE module as a relocatable CUBIN (`-rdc=true`), before linking.
pub fn compile_rdc(arch: u32) -> Result<Vec<u8>> {
    Ok(grosr::unstable::compile_with(
        WHILE_CUDA,
        arch,
        RDC_OPTIONS,
    )?)
}

/// The WHILE module as a whole-program CUBIN (the direct route).
pub fn compile_direct(arch: u32) -> Result<Vec<u8>> {
    Ok(grosr::unstable::compile(WHILE_CUDA, arch)?)
}

/// The loaded, self-tested WHILE module.
pub struct WhileBfs {
    module: Module,
    ctx: Context,
    how: String,
}

impl WhileBfs {
    /// Compiles, links (per `route`), loads and self-tests the WHILE module. The scheduler must
    /// not hold every SM (call [`Runtime::stop`] first). Any failure is an error saying why,
    /// mostly [`grosr::Error::Unsupported`].
    pub fn new(rt: &Runtime, route: WhileRoute) -> Result<WhileBfs> {
        if rt.is_running() && rt.info().sms_used >= rt.info().sm_count {
            return Err(grosr::Error::Busy(
                "the WHILE-graph BFS cannot run beside a scheduler that holds every SM: call \
                 Runtime::stop first"
                    .into(),
            )
            .into());
        }
        let gpu = rt.gpu();
        if gpu.driver_version < MIN_DRIVER {
            return Err(unsupported_because(format!(
                "conditional WHILE nodes need a CUDA 12.4 driver; this one is CUDA {}.{}",
                gpu.driver_version / 1000,
                gpu.driver_version % 1000 / 10
            )));
        }
        let ctx = grosr::unstable::context(gpu)?.clone();
        let arch = gpu.arch;
        let w = match route {
            WhileRoute::DeviceRuntime => Self::linked(&ctx, arch)?,
            WhileRoute::Direct => Self::direct(&ctx, arch)?,
            WhileRoute::Auto => match Self::linked(&ctx, arch) {
                Ok(m) => m,
                Err(linked) => match Self::direct(&ctx, arch) {
                    Ok((module, how)) => (module, format!("{how} ({linked})")),
                    Err(direct) => {
                        return Err(unsupported_because(format!(
                            "{}; and the whole-program CUBIN: {}",
                            reason(&linked),
                            reason(&direct)
                        )));
                    }
                },
            },
        };
        let (module, how) = w;
        for k in [WHILE_LEVEL_KERNEL, WHILE_NEXT_KERNEL, WHILE_PROBE_KERNEL] {
            module.preload(k)?;
        }
        let w = WhileBfs { module, ctx, how };
        w.self_test()?;
        Ok(w)
    }

    /// How `cudaGraphSetConditional` was resolved, for reports.
    pub fn how(&self) -> &str {
        &self.how
    }

    fn linked(ctx: &Context, arch: u32) -> Result<(Module, String)> {
        let lib = find_cudadevrt().ok_or_else(|| {
            unsupported_because(
                "libcudadevrt.a (the CUDA toolkit's device runtime, which defines \
                 cudaGraphSetConditional) was not found: set CUDA_HOME or GROSR_CUDADEVRT"
                    .to_string(),
            )
        })?;
        let rdc = compile_rdc(arch)?;
        let image = grosr::unstable::link(ctx, &rdc, &[&lib])?;
        let module = Module::load(ctx, &image).map_err(|e| {
            unsupported_because(format!("the linked WHILE module did not load: {e}"))
        })?;
        Ok((
            module,
            format!(
                "NVRTC -rdc=true, linked with {} by the driver's linker",
                lib.display()
            ),
        ))
    }

    fn direct(ctx: &Context, arch: u32) -> Result<(Module, String)> {
        let cubin = compile_direct(arch)?;
        let module = Module::load(ctx, &cubin).map_err(|e| {
            unsupported_because(format!(
                "the driver did not resolve cudaGraphSetConditional in a whole-program CUBIN: {e}"
            ))
        })?;
        Ok((
            module,
            "whole-program NVRTC CUBIN, cudaGraphSetConditional resolved by the driver".into(),
        ))
    }

    /// Runs a WHILE loop whose body must run exactly 3 times.
    fn self_test(&self) -> Result<()> {
        let counter = DeviceMem::from_slice(&self.ctx, &[3u32, 0])?;
        let probe = self.module.function(WHILE_PROBE_KERNEL)?;
        let graph = CondGraph::new(&self.ctx, |body| {
            let (c, h) = (counter.ptr(), body.handle());
            // SAFETY: grosr_while_probe(uint32_t*, unsigned long long), matching the arguments.
            unsafe { body.add_kernel(&[], &probe, 1, 32, (&c, &h)) }.map_err(as_unsupported)?;
            Ok(())
        })?;
        let stream = Stream::new(&self.ctx)?;
        graph.launch(&stream)?;
        stream.wait(Duration::from_secs(10), "the WHILE-node self-test")?;
        let mut got = [0u32; 2];
        counter.read(&mut got)?;
        if got != [0, 3] {
            return Err(unsupported_because(format!(
                "the WHILE-node self-test ran its body {} times (expected 3; counter {})",
                got[1], got[0]
            )));
        }
        Ok(())
    }
}

/// The reason inside an [`grosr::Error::Unsupported`], else the error's text.
fn reason(e: &Error) -> String {
    match e {
        Error::Grosr(grosr::Error::Unsupported(r)) => r.clone(),
        e => e.to_string(),
    }
}

/// grosr's "not available" error: this machine cannot run the WHILE-graph baseline.
fn unsupported_because(why: impl Into<String>) -> Error {
    grosr::Error::Unsupported(why.into()).into()
}

/// A graph holding one WHILE node (condition default 1, reset at every launch), instantiated.
struct CondGraph {
    graph: Graph,
}

impl CondGraph {
    /// Builds the graph; `body` fills the WHILE node's body.
    fn new(
        ctx: &Context,
        body: impl FnOnce(&mut WhileBody<'_>) -> Result<()>,
    ) -> Result<CondGraph> {
        let mut graph = Graph::new(ctx).map_err(as_unsupported)?;
        let mut w = graph.add_while().map_err(as_unsupported)?;
        body(&mut w)?;
        graph.instantiate().map_err(as_unsupported)?;
        Ok(CondGraph { graph })
    }

    fn launch(&self, stream: &Stream) -> Result<()> {
        Ok(self.graph.launch(stream)?)
    }
}

/// A driver error while building the WHILE graph: this driver cannot run the baseline.
fn as_unsupported(e: grosr::Error) -> Error {
    unsupported_because(format!("{e} (WHILE graph)"))
}

/// Mirror of `struct BfsWhileState` in while.cu: depth, frontier size, next frontier size,
/// overflow flag.
const STATE_WORDS: usize = 4;

/// The executable WHILE graph of one uploaded graph.
pub struct WhileGraph<'a> {
    // Declared first: the executable graph goes before the state its kernels point at.
    graph: CondGraph,
    dg: &'a DeviceGraph,
    state: DeviceMem,
    grid: u32,
    _module: &'a WhileBfs,
}

/// The WHILE body's fixed grid for a GPU of `sms` SMs: 8 blocks of 256 threads per SM (one full
/// wave on Hopper), grid-stride over wider frontiers.
pub fn default_grid(sms: u32) -> u32 {
    sms.max(1) * 8
}

impl<'a> WhileGraph<'a> {
    /// Builds and instantiates the WHILE graph over `dg`'s buffers, the level kernel on `grid`
    /// blocks of 256 threads ([`default_grid`]). The scheduler must be stopped.
    pub fn new(w: &'a WhileBfs, dg: &'a DeviceGraph, grid: u32) -> Result<WhileGraph<'a>> {
        let state = DeviceMem::zeroed(&w.ctx, STATE_WORDS * 4)?;
        let level = w.module.function(WHILE_LEVEL_KERNEL)?;
        let next = w.module.function(WHILE_NEXT_KERNEL)?;
        let grid = grid.max(1);
        let graph = CondGraph::new(&w.ctx, |body| {
            let (offsets, targets, lp) = (
                dg.offsets.ptr().addr(),
                dg.targets.ptr().addr(),
                dg.lp.ptr().addr(),
            );
            let (f0, f1) = (dg.frontier[0].ptr().addr(), dg.frontier[1].ptr().addr());
            let st = state.ptr();
            // SAFETY: grosr_bfs_while_level(const u64*, const u32*, u64*, u32*, u32*,
            // BfsWhileState*), matching the arguments; the buffers outlive the graph (borrowed
            // for 'a).
            let a = unsafe {
                body.add_kernel(
                    &[],
                    &level,
                    grid,
                    256,
                    (&offsets, &targets, &lp, &f0, &f1, &st),
                )
            }
            .map_err(as_unsupported)?;
            let (h, limit) = (body.handle(), dg.n.saturating_add(1));
            // SAFETY: grosr_bfs_while_next(BfsWhileState*, unsigned long long, uint32_t).
            unsafe { body.add_kernel(&[a], &next, 1, 32, (&st, &h, &limit)) }
                .map_err(as_unsupported)?;
            Ok(())
        })?;
        Ok(WhileGraph {
            dg,
            state,
            grid,
            graph,
            _module: w,
        })
    }

    /// The level kernel's grid.
    pub fn grid(&self) -> u32 {
        self.grid
    }

    /// BFS from `root`: copies the inputs (levels reset, the root as the frontier, the loop
    /// state), launches the graph once on the baselines' stream and waits. The time covers the
    /// launch and the wait, not the reset.
    pub fn bfs(&self, b: &Baselines<'_>, root: u32) -> Result<BfsRun> {
        let dg = self.dg;
        dg.check_root(root)?;
        dg.lp.write(&dg.unreached)?;
        dg.frontier[0].write(&[root])?;
        self.state.write(&[0u32, 1, 0, 0])?;
        let t = Instant::now();
        self.graph.launch(b.stream())?;
        b.sync(WAIT)?;
        let time = t.elapsed();
        let mut st = [0u32; STATE_WORDS];
        self.state.read(&mut st)?;
        if st[3] != 0 {
            return Err(Error::Invalid(format!(
                "the WHILE-graph BFS ran more levels ({}) than vertices",
                st[0]
            )));
        }
        dg.result(time)
    }
}
