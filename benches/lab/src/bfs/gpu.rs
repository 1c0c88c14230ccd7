//! BFS on the GPU: on the resident scheduler (tasks create the frontier's work), and the
//! level-synchronous baseline (one kernel launch per level, the frontier size read back).

use std::time::{Duration, Instant};

use super::csr::Csr;
use super::rust_bodies::BfsVisitRs;
use super::validate::UNREACHED;
use crate::{Error, Result};
use grosr::DeviceBuffer;
use grosr::DevicePtr;
use grosr::unstable::Baselines;
use grosr::{Runtime, RuntimeBuilder};

/// Expands up to 9 vertices with one warp; spawns tasks for the vertices whose level it lowers.
/// `graph` points at the search's `BfsGraph` (device code); `count` is the number of vertices,
/// with bit 31 set on the root task.
#[grosr::task(
    granularity = "warp",
    cuda = r#"
    __device__ void grosr_bfs_visit(grosr::Ctx&, const BfsVisit&);
    grosr_bfs_visit(ctx, task);
"#
)]
pub struct BfsVisit {
    /// The search's `BfsGraph` in device memory.
    pub graph: DevicePtr<u64>,
    /// Vertices in `vertices` (bit 31: this is the root task).
    pub count: u32,
    /// The vertices to expand.
    pub vertices: [u32; 9],
}

/// Expands edges `[begin, end)` of one high-degree vertex with one warp.
#[grosr::task(
    granularity = "warp",
    cuda = r#"
    __device__ void grosr_bfs_edges(grosr::Ctx&, const BfsEdges&);
    grosr_bfs_edges(ctx, task);
"#
)]
pub struct BfsEdges {
    /// The search's `BfsGraph` in device memory.
    pub graph: DevicePtr<u64>,
    /// First edge (index into the CSR targets).
    pub begin: u64,
    /// One past the last edge.
    pub end: u64,
    /// The vertex whose edges these are.
    pub vertex: u32,
    /// Its level when the task was made (stale tasks are skipped).
    pub level: u32,
}

/// The device code: task bodies' helpers and the level-synchronous kernel (level.cu, which the
/// WHILE-graph module shares).
pub const BFS_CUDA: &str = concat!(include_str!("bfs.cu"), "\n", include_str!("level.cu"));

/// The level-synchronous baseline's kernel.
pub const LEVEL_KERNEL: &str = "grosr_bfs_level";

/// A runtime builder with the BFS tasks and the baseline kernel registered (queues of 16384
/// slots per SM: a Kronecker frontier is wide), after the environment's
/// [`GROSR_DEFINES`](crate::env_defines).
pub fn builder() -> RuntimeBuilder {
    super::rust_bodies::register(crate::env_defines(Runtime::builder()))
        .task::<BfsVisit>()
        .task::<BfsEdges>()
        .queue_capacity(16384)
        // Traversal waits on memory: 32 warps per SM hide more of it than the default 16 (at 64
        // registers a thread; measured on an H200, Kronecker SCALE 20: 9.99 GTEPS against 9.02).
        .tuning(grosr::Tuning {
            min_blocks_per_sm: 4,
            ..grosr::Tuning::default()
        })
        .cuda(BFS_CUDA, &[LEVEL_KERNEL])
}

/// Which bodies a resident search runs: bfs.cu's CUDA, or the Rust twins of
/// [`rust_bodies`](super::rust_bodies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bodies {
    /// [`BfsVisit`] and [`BfsEdges`] (bfs.cu).
    Cuda,
    /// [`BfsVisitRs`] and [`super::rust_bodies::BfsEdgesRs`].
    Rust,
}

/// Tuning of the resident BFS.
#[derive(Clone, Copy, Debug)]
pub struct BfsOptions {
    /// Degree above which a vertex's list is split into [`BfsEdges`] tasks.
    pub big: u32,
    /// Edges per [`BfsEdges`] task.
    pub edge_chunk: u32,
    /// A task that discovers at most this many vertices keeps them on its own warp (private
    /// stack) instead of the shared queue.
    pub local_limit: u32,
}

impl Default for BfsOptions {
    fn default() -> Self {
        BfsOptions {
            big: 1024,
            edge_chunk: 1024,
            local_limit: 4,
        }
    }
}

/// Mirror of `struct BfsGraph` in bfs.cu.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BfsGraphDev {
    offsets: u64,
    targets: u64,
    lp: u64,
    n: u32,
    big: u32,
    edge_chunk: u32,
    local_limit: u32,
}
const _: () = assert!(size_of::<BfsGraphDev>() == 40);

/// A graph uploaded to the GPU with the per-search state both strategies use.
pub struct DeviceGraph {
    pub(super) n: u32,
    pub(super) offsets: DeviceBuffer<u64>,
    pub(super) targets: DeviceBuffer<u32>,
    /// Per vertex (level << 32) | parent.
    pub(super) lp: DeviceBuffer<u64>,
    state: DeviceBuffer<BfsGraphDev>,
    pub(super) frontier: [DeviceBuffer<u32>; 2],
    counts: DeviceBuffer<u32>,
    pub(super) unreached: Vec<u64>,
}

/// One search's result.
#[derive(Clone, Debug)]
pub struct BfsRun {
    /// Parent per vertex (-1: unreached; the root is its own parent).
    pub parent: Vec<i64>,
    /// Level per vertex ([`UNREACHED`] where not reached).
    pub level: Vec<u32>,
    /// The search's time (host-observed, excluding the reset of the per-vertex state).
    pub time: Duration,
    /// Levels (the deepest level + 1).
    pub depth: u32,
}

pub(super) const WAIT: Duration = Duration::from_secs(120);

impl DeviceGraph {
    /// Copies `g` to the runtime's GPU. The kernels index with its offsets and targets
    /// unchecked: [`Csr`]'s rules, checked whenever one is built, keep them in bounds; what is
    /// checked here is what the kernels add (vertices, degrees below 2^31).
    pub fn upload(rt: &Runtime, g: &Csr, opts: BfsOptions) -> Result<DeviceGraph> {
        let n = g.vertices();
        if n == 0 {
            return Err(grosr::Error::Config("BFS needs a graph with vertices".into()).into());
        }
        if g.max_degree() > u32::MAX as u64 / 2 {
            return Err(
                grosr::Error::Config("a vertex degree above 2^31 is not supported".into()).into(),
            );
        }
        let gpu = rt.gpu();
        let offsets = DeviceBuffer::from_slice(gpu, g.offsets())?;
        let targets = DeviceBuffer::from_slice(gpu, g.targets())?;
        let lp = DeviceBuffer::<u64>::zeroed(gpu, n as usize)?;
        let state = DeviceBuffer::from_slice(
            gpu,
            &[BfsGraphDev {
                offsets: offsets.ptr().addr(),
                targets: targets.ptr().addr(),
                lp: lp.ptr().addr(),
                n,
                big: opts.big.max(32),
                edge_chunk: opts.edge_chunk.max(32),
                local_limit: opts.local_limit,
            }],
        )?;
        Ok(DeviceGraph {
            n,
            frontier: [
                DeviceBuffer::zeroed(gpu, n as usize)?,
                DeviceBuffer::zeroed(gpu, n as usize)?,
            ],
            counts: DeviceBuffer::zeroed(gpu, 2)?,
            offsets,
            targets,
            lp,
            state,
            unreached: vec![u64::MAX; n as usize],
        })
    }

    /// The number of vertices.
    pub fn vertices(&self) -> u32 {
        self.n
    }

    pub(super) fn check_root(&self, root: u32) -> Result<()> {
        if root >= self.n {
            return Err(grosr::Error::Config(format!(
                "root {root} is not a vertex (the graph has {})",
                self.n
            ))
            .into());
        }
        Ok(())
    }

    /// The search's result from the per-vertex words.
    pub(super) fn result(&self, time: Duration) -> Result<BfsRun> {
        let lp = self.lp.to_vec()?;
        let mut parent = vec![-1i64; lp.len()];
        let mut level = vec![UNREACHED; lp.len()];
        let mut depth = 0;
        for (v, &w) in lp.iter().enumerate() {
            if w != u64::MAX {
                level[v] = (w >> 32) as u32;
                parent[v] = (w & 0xFFFF_FFFF) as i64;
                depth = depth.max(level[v].saturating_add(1));
            }
        }
        Ok(BfsRun {
            parent,
            level,
            time,
            depth,
        })
    }

    /// BFS from `root` on the resident scheduler: one submitted root task; every further task
    /// is created on the GPU; `Job::wait` returns when the search is done. The runtime must be
    /// built from [`builder`] and running.
    pub fn bfs_resident(&self, rt: &Runtime, root: u32) -> Result<BfsRun> {
        self.bfs_resident_with(rt, root, Bodies::Cuda)
    }

    /// [`bfs_resident`](Self::bfs_resident) with the task bodies `bodies`: the CUDA of bfs.cu,
    /// or their Rust twins (which [`rust_bodies::cpu_builder`](super::rust_bodies::cpu_builder)'s
    /// runtime, on either backend, also runs).
    pub fn bfs_resident_with(&self, rt: &Runtime, root: u32, bodies: Bodies) -> Result<BfsRun> {
        self.check_root(root)?;
        self.lp.write(&self.unreached)?;
        let mut vertices = [0u32; 9];
        vertices[0] = root;
        let (count, at) = (1 | 0x8000_0000, self.state.ptr().addr());
        let t = Instant::now();
        let job = match bodies {
            Bodies::Cuda => rt.submit(&[BfsVisit {
                graph: DevicePtr::from_raw(at),
                count,
                vertices,
            }])?,
            Bodies::Rust => rt.submit(&[BfsVisitRs {
                graph: DevicePtr::from_raw(at),
                count,
                vertices,
            }])?,
        };
        job.wait_timeout(WAIT)?;
        let time = t.elapsed();
        self.result(time)
    }

    /// The level-synchronous baseline from `root`: per level one launch of the expand kernel
    /// over the frontier, then a copy of the next frontier's size to the host, which decides
    /// whether to go on, as a CUDA user would write it. Needs the scheduler stopped (see
    /// [`Runtime::baselines`]).
    pub fn bfs_level_sync(&self, b: &Baselines, sms: u32, root: u32) -> Result<BfsRun> {
        self.check_root(root)?;
        self.lp.write(&self.unreached)?;
        self.frontier[0].write(&[root])?;
        self.counts.write(&[0u32, 0])?;
        let t = Instant::now();
        let mut n = 1u32;
        let mut depth = 0u32;
        while n > 0 {
            let warps = n.div_ceil(32);
            let grid = warps.div_ceil(8).clamp(1, sms.max(1) * 16);
            let (offsets, targets, lp) = (
                self.offsets.ptr().addr(),
                self.targets.ptr().addr(),
                self.lp.ptr().addr(),
            );
            let frontier = self.frontier[(depth & 1) as usize].ptr().addr();
            let next = self.frontier[((depth + 1) & 1) as usize].ptr().addr();
            let counts = self.counts.ptr().addr();
            let args = (
                &offsets, &targets, &lp, &frontier, &n, &next, &counts, &depth,
            );
            // SAFETY: the kernel's parameters are (const u64*, const u32*, u64*, const u32*,
            // u32, u32*, u32*, u32), matching args; the buffers outlive the sync below.
            unsafe { b.launch_with(LEVEL_KERNEL, grid, 256, 0, args)? };
            let mut host = [0u32];
            let at = self.counts.ptr().addr() + 4 * ((depth + 1) & 1) as u64;
            // SAFETY: `at` is inside `counts`; we wait for the copy before reading `host`.
            unsafe { b.stream().read_async(at, &mut host) }?;
            b.sync(WAIT)?;
            n = host[0];
            depth += 1;
            if depth > self.n + 1 {
                return Err(Error::Invalid(
                    "the level-synchronous BFS ran more levels than vertices".into(),
                ));
            }
        }
        let time = t.elapsed();
        self.result(time)
    }
}
