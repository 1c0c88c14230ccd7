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
//! search relies on the node, and every failure is an [`Error::Unsupported`] saying why.
//! Everything here needs the scheduler stopped ([`Runtime::stop`]), like the level-synchronous
//! baseline: module loading, graph instantiation and launches would otherwise wait for SMs the
//! persistent kernel never gives back.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cudarc::driver::sys;

use super::gpu::{BfsRun, DeviceGraph, WAIT};
use crate::baseline::Baselines;
use crate::driver::{Context, DeviceMem, Graph, Module, Stream, add_kernel_node};
use crate::error::{Error, Result};
use crate::runtime::Runtime;

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
    crate::compile::compile_with(WHILE_CUDA, arch, RDC_OPTIONS)
}

/// The WHILE module as a whole-program CUBIN (the direct route).
pub fn compile_direct(arch: u32) -> Result<Vec<u8>> {
    crate::compile::compile(WHILE_CUDA, arch)
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
    /// mostly [`Error::Unsupported`].
    pub fn new(rt: &Runtime, route: WhileRoute) -> Result<WhileBfs> {
        if rt.is_running() && rt.info().sms_used >= rt.info().sm_count {
            return Err(Error::Config(
                "the WHILE-graph BFS cannot run beside a scheduler that holds every SM: call \
                 Runtime::stop first"
                    .into(),
            ));
        }
        let gpu = rt.gpu();
        if gpu.driver_version < MIN_DRIVER {
            return Err(Error::Unsupported(format!(
                "conditional WHILE nodes need a CUDA 12.4 driver; this one is CUDA {}.{}",
                gpu.driver_version / 1000,
                gpu.driver_version % 1000 / 10
            )));
        }
        gpu.bind()?;
        let arch = gpu.arch;
        let w = match route {
            WhileRoute::DeviceRuntime => Self::linked(gpu.context(), arch)?,
            WhileRoute::Direct => Self::direct(gpu.context(), arch)?,
            WhileRoute::Auto => match Self::linked(gpu.context(), arch) {
                Ok(m) => m,
                Err(linked) => match Self::direct(gpu.context(), arch) {
                    Ok((module, how)) => (module, format!("{how} ({linked})")),
                    Err(direct) => {
                        return Err(Error::Unsupported(format!(
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
        let w = WhileBfs {
            module,
            ctx: gpu.context().clone(),
            how,
        };
        w.self_test()?;
        Ok(w)
    }

    /// How `cudaGraphSetConditional` was resolved, for reports.
    pub fn how(&self) -> &str {
        &self.how
    }

    fn linked(ctx: &Context, arch: u32) -> Result<(Module, String)> {
        let lib = find_cudadevrt().ok_or_else(|| {
            Error::Unsupported(
                "libcudadevrt.a (the CUDA toolkit's device runtime, which defines \
                 cudaGraphSetConditional) was not found: set CUDA_HOME or GROSR_CUDADEVRT"
                    .into(),
            )
        })?;
        let rdc = compile_rdc(arch)?;
        let image = crate::driver::link(ctx, &rdc, &[&lib])?;
        let module = Module::load(ctx, &image).map_err(|e| {
            Error::Unsupported(format!("the linked WHILE module did not load: {e}"))
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
            Error::Unsupported(format!(
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
        let graph = CondGraph::new(&self.ctx, |body, handle| {
            let (mut c, mut h) = (counter.ptr(), handle);
            let mut args = [
                &mut c as *mut u64 as *mut c_void,
                &mut h as *mut u64 as *mut c_void,
            ];
            // SAFETY: grosr_while_probe(uint32_t*, unsigned long long), matching args.
            unsafe { add_kernel_node(body, &[], probe.raw(), 1, 32, &mut args) }
                .map_err(as_unsupported)?;
            Ok(())
        })?;
        let stream = Stream::new(&self.ctx)?;
        graph.launch(&stream)?;
        stream.wait(Duration::from_secs(10), "the WHILE-node self-test")?;
        let mut got = [0u32; 2];
        counter.read(&mut got)?;
        if got != [0, 3] {
            return Err(Error::Unsupported(format!(
                "the WHILE-node self-test ran its body {} times (expected 3; counter {})",
                got[1], got[0]
            )));
        }
        Ok(())
    }
}

/// The reason inside an [`Error::Unsupported`], else the error's text.
fn reason(e: &Error) -> String {
    match e {
        Error::Unsupported(r) => r.clone(),
        e => e.to_string(),
    }
}

fn unsupported(call: &str, r: sys::CUresult) -> Error {
    Error::Unsupported(format!("{call} failed: {r:?}"))
}

/// A graph holding one WHILE node (condition default 1, reset at every launch), instantiated.
struct CondGraph {
    graph: Graph,
}

impl CondGraph {
    /// Builds the graph; `body(body_graph, handle)` fills the WHILE node's body.
    fn new(ctx: &Context, body: impl FnOnce(sys::CUgraph, u64) -> Result<()>) -> Result<CondGraph> {
        let mut g = CondGraph {
            graph: Graph::new(ctx).map_err(as_unsupported)?,
        };
        let mut handle: sys::CUgraphConditionalHandle = 0;
        // SAFETY: graph and ctx are live; out-pointer to a local.
        let r = unsafe {
            sys::cuGraphConditionalHandleCreate(
                &mut handle,
                g.graph.raw(),
                ctx.raw(),
                1,
                sys::CU_GRAPH_COND_ASSIGN_DEFAULT,
            )
        };
        if r != sys::CUresult::CUDA_SUCCESS {
            return Err(unsupported("cuGraphConditionalHandleCreate", r));
        }
        // SAFETY: a zeroed CUgraphNodeParams is valid; the conditional member is set below.
        let mut params: sys::CUgraphNodeParams = unsafe { std::mem::zeroed() };
        params.type_ = sys::CUgraphNodeType::CU_GRAPH_NODE_TYPE_CONDITIONAL;
        params.__bindgen_anon_1.conditional = sys::CUDA_CONDITIONAL_NODE_PARAMS {
            handle,
            type_: sys::CUgraphConditionalNodeType::CU_GRAPH_COND_TYPE_WHILE,
            size: 1,
            phGraph_out: std::ptr::null_mut(),
            ctx: ctx.raw(),
        };
        let mut node: sys::CUgraphNode = std::ptr::null_mut();
        // SAFETY: params is a complete conditional node description; no dependencies.
        let r = unsafe {
            sys::cuGraphAddNode_v2(
                &mut node,
                g.graph.raw(),
                std::ptr::null(),
                std::ptr::null(),
                0,
                &mut params,
            )
        };
        if r != sys::CUresult::CUDA_SUCCESS {
            return Err(unsupported("cuGraphAddNode(conditional WHILE)", r));
        }
        // SAFETY: the driver filled phGraph_out with `size` (1) body graphs owned by the node.
        let out = unsafe { params.__bindgen_anon_1.conditional.phGraph_out };
        if out.is_null() {
            return Err(Error::Unsupported(
                "cuGraphAddNode returned no WHILE body graph".into(),
            ));
        }
        // SAFETY: out points at one CUgraph (size 1), valid while the node lives.
        let body_graph = unsafe { *out };
        body(body_graph, handle)?;
        g.graph.instantiate().map_err(as_unsupported)?;
        Ok(g)
    }

    fn launch(&self, stream: &Stream) -> Result<()> {
        self.graph.launch(stream)
    }
}

/// A driver error while building the WHILE graph: this driver cannot run the baseline.
fn as_unsupported(e: Error) -> Error {
    Error::Unsupported(format!("{e} (WHILE graph)"))
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
        let graph = CondGraph::new(&w.ctx, |body, handle| {
            let (mut offsets, mut targets, mut lp) = (
                dg.offsets.ptr().addr(),
                dg.targets.ptr().addr(),
                dg.lp.ptr().addr(),
            );
            let (mut f0, mut f1) = (dg.frontier[0].ptr().addr(), dg.frontier[1].ptr().addr());
            let mut st = state.ptr();
            let mut args = [
                &mut offsets as *mut u64 as *mut c_void,
                &mut targets as *mut u64 as *mut c_void,
                &mut lp as *mut u64 as *mut c_void,
                &mut f0 as *mut u64 as *mut c_void,
                &mut f1 as *mut u64 as *mut c_void,
                &mut st as *mut u64 as *mut c_void,
            ];
            // SAFETY: grosr_bfs_while_level(const u64*, const u32*, u64*, u32*, u32*,
            // BfsWhileState*), matching args; the buffers outlive the graph (borrowed for 'a).
            let a = unsafe { add_kernel_node(body, &[], level.raw(), grid, 256, &mut args) }
                .map_err(as_unsupported)?;
            let (mut st, mut h, mut limit) = (state.ptr(), handle, dg.n.saturating_add(1));
            let mut args = [
                &mut st as *mut u64 as *mut c_void,
                &mut h as *mut u64 as *mut c_void,
                &mut limit as *mut u32 as *mut c_void,
            ];
            // SAFETY: grosr_bfs_while_next(BfsWhileState*, unsigned long long, uint32_t).
            unsafe { add_kernel_node(body, &[a], next.raw(), 1, 32, &mut args) }
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
