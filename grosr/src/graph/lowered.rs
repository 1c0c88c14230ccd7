//! The host-launched strategies: a task graph lowered to the launches a CUDA user would write,
//! all from the generated `grosr_single_<T>` / `grosr_bulk_<T>` kernels (the task bodies).

use std::time::Duration;

use crate::baseline::Baselines;
use crate::driver::{Dependency, DeviceMem, Graph, RecordArg};
use crate::error::{Error, Result};
use crate::layout::RECORD_WORDS;
use crate::runtime::GpuRuntime;

use super::{Plan, Strategy};

/// A task graph ready to run as host launches, one variant per way of launching. In each, the
/// baselines come last: dropped after the graph and the records the launches use.
pub(crate) enum Lowered<'rt> {
    /// Sync and Batched: one launch per node, in topological order; `sync_each` waits after
    /// every launch (Sync) instead of once at the end (Batched).
    Singles {
        /// (kind, record words) per node.
        nodes: Vec<(u32, [u32; RECORD_WORDS])>,
        sync_each: bool,
        base: Baselines<'rt>,
    },
    /// Fused: one bulk launch per (level, type), in level order.
    Fused {
        launches: Vec<BulkLaunch>,
        /// The records the launches read.
        _records: DeviceMem,
        base: Baselines<'rt>,
    },
    /// CudaGraph and CudaGraphPdl: one instantiated CUDA graph (destroyed once no kernel runs
    /// in the context: its destroy waits for them all, a scheduler's too; `driver::Graph`).
    CudaGraph { graph: Graph, base: Baselines<'rt> },
}

/// One bulk kernel of the Fused strategy: `count` records of task kind `kind` at `records`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BulkLaunch {
    kind: u32,
    records: u64,
    count: u32,
}

impl<'rt> Lowered<'rt> {
    pub(crate) fn new(
        rt: &'rt GpuRuntime,
        plan: &Plan,
        strategy: Strategy,
    ) -> Result<Lowered<'rt>> {
        // Refused before the launchers take a stream; checked again, at the gate, below.
        if strategy.is_cuda_graph() && rt.context().scheduler_may_run() {
            return Err(instantiate_beside_scheduler());
        }
        let base = rt.baselines()?;
        let singles = || {
            plan.order
                .iter()
                .map(|id| (plan.kind[id.index()], plan.nodes[id.index()].words))
                .collect()
        };
        Ok(match strategy {
            Strategy::Resident => {
                return Err(Error::Config(
                    "Resident graphs run on the scheduler, not as host launches".into(),
                ));
            }
            Strategy::Sync | Strategy::Batched => Lowered::Singles {
                nodes: singles(),
                sync_each: strategy == Strategy::Sync,
                base,
            },
            Strategy::Fused => {
                let (launches, records) = build_fused(rt, plan)?;
                Lowered::Fused {
                    launches,
                    _records: records,
                    base,
                }
            }
            Strategy::CudaGraph | Strategy::CudaGraphPdl => {
                let pdl = strategy == Strategy::CudaGraphPdl;
                if pdl && rt.info().arch < 90 {
                    return Err(Error::Config(format!(
                        "Programmatic Dependent Launch needs sm_90 or newer; this GPU is sm_{}",
                        rt.info().arch
                    )));
                }
                // Instantiated only while no scheduler runs, and none starts meanwhile.
                let graph = rt
                    .context()
                    .while_no_scheduler(instantiate_beside_scheduler, || {
                        build_graph(rt, &base, plan, pdl)
                    })?;
                Lowered::CudaGraph { graph, base }
            }
        })
    }

    pub(crate) fn run(&mut self, timeout: Duration) -> Result<()> {
        // Checked at every run, not only at `new`: a scheduler started again since would hold
        // the SMs these kernels wait for, and they would run (on memory perhaps freed by then)
        // only after its next stop. The CPU backend refuses such a run the same way.
        self.base().room()?;
        let base = match self {
            Lowered::Singles {
                nodes,
                sync_each,
                base,
            } => {
                for (kind, words) in nodes.iter() {
                    base.launch_single_kind(*kind, bytemuck::cast_slice(words))?;
                    if *sync_each {
                        base.sync(timeout)?;
                    }
                }
                if !*sync_each {
                    base.sync(timeout)?;
                }
                base
            }
            Lowered::Fused { launches, base, .. } => {
                for l in launches.iter() {
                    base.launch_bulk_kind(l.kind, l.records, l.count)?;
                }
                base.sync(timeout)?;
                base
            }
            Lowered::CudaGraph { graph, base } => {
                graph.launch(base.stream())?;
                base.sync(timeout)?;
                base
            }
        };
        // Memory dropped while these kernels ran waited for them: free it now.
        base.stream().context().free_finished();
        base.status()
    }

    fn base(&mut self) -> &mut Baselines<'rt> {
        match self {
            Lowered::Singles { base, .. }
            | Lowered::Fused { base, .. }
            | Lowered::CudaGraph { base, .. } => base,
        }
    }
}

impl std::fmt::Debug for Lowered<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lowered::Singles {
                nodes, sync_each, ..
            } => f
                .debug_struct("Singles")
                .field("nodes", &nodes.len())
                .field("sync_each", sync_each)
                .finish_non_exhaustive(),
            Lowered::Fused {
                launches, _records, ..
            } => f
                .debug_struct("Fused")
                .field("launches", &launches.len())
                .field("records", _records)
                .finish_non_exhaustive(),
            Lowered::CudaGraph { graph, .. } => f
                .debug_struct("CudaGraph")
                .field("graph", graph)
                .finish_non_exhaustive(),
        }
    }
}

/// Packs each (level, type) group's records contiguously, at the type's own size: the bulk
/// launches and the device memory holding the records.
fn build_fused(rt: &GpuRuntime, plan: &Plan) -> Result<(Vec<BulkLaunch>, DeviceMem)> {
    let mut bytes: Vec<u8> = Vec::new();
    let mut groups: Vec<(u32, usize, u32)> = Vec::new(); // kind, byte offset, count
    for launch in &plan.fused {
        let k = plan.kind[launch.nodes[0].index()];
        let size = rt.tasks()[k as usize].size;
        // Records of the generated structs are at most 16-byte aligned.
        bytes.resize(bytes.len().next_multiple_of(16), 0);
        let start = bytes.len();
        for id in &launch.nodes {
            let words: &[u8] = bytemuck::cast_slice(&plan.nodes[id.index()].words);
            bytes.extend_from_slice(&words[..size]);
        }
        groups.push((k, start, launch.nodes.len() as u32));
    }
    let mem = DeviceMem::from_slice(rt.context(), &bytes)?;
    let launches = groups
        .into_iter()
        .map(|(kind, off, count)| BulkLaunch {
            kind,
            records: mem.ptr() + off as u64,
            count,
        })
        .collect();
    Ok((launches, mem))
}

/// How long a prepare waits for a CUDA graph's upload.
const UPLOAD_WAIT: Duration = Duration::from_secs(10);

/// The error for a CUDA-graph strategy prepared while a scheduler runs.
pub(super) fn instantiate_beside_scheduler() -> Error {
    Error::Busy(
        "a CUDA graph cannot be instantiated while a scheduler runs (the driver waits for its \
         kernel, which never ends): prepare CudaGraph and CudaGraphPdl with the scheduler \
         stopped (Runtime::stop); the prepared graph then runs beside a scheduler built with \
         RuntimeBuilder::max_sms"
            .into(),
    )
}

/// A CUDA graph with one kernel node per task and the DAG's edges, instantiated and uploaded.
fn build_graph(rt: &GpuRuntime, base: &Baselines<'_>, plan: &Plan, pdl: bool) -> Result<Graph> {
    let mut g = Graph::new(rt.context())?;
    let status = base.status_ptr();
    let mut nodes = Vec::with_capacity(plan.nodes.len());
    for (i, node) in plan.nodes.iter().enumerate() {
        let (func, block) = base.single_kernel(plan.kind[i])?;
        let record = RecordArg(bytemuck::cast_slice(&node.words));
        // SAFETY: the parameters match grosr_single_<T>(T, int32_t*), the record holding at
        // least size_of::<T>() bytes; the driver copies the argument values while adding the
        // node; the status word outlives the graph (base).
        nodes.push(unsafe { g.add_kernel(&[], &func, 1, block, (record, &status)) }?);
    }
    let mut from = Vec::with_capacity(plan.succ.len());
    let mut to = Vec::with_capacity(plan.succ.len());
    for u in 0..plan.nodes.len() {
        for &v in &plan.succ[plan.succ_off[u] as usize..plan.succ_off[u + 1] as usize] {
            from.push(nodes[u]);
            to.push(nodes[v as usize]);
        }
    }
    // PDL: a dependent may launch once its upstream kernel triggers; it still waits for the
    // upstream grid's completion and memory flush (Dependency::Programmatic).
    let kind = if pdl {
        Dependency::Programmatic
    } else {
        Dependency::Full
    };
    g.add_dependencies(&from, &to, kind)?;
    g.instantiate()?;
    // Uploaded here, where no scheduler runs (the caller checked), rather than at the first
    // launch or at whatever driver call the driver chooses: a graph only instantiated while the
    // scheduler was stopped left the next cuStreamCreate, made with the scheduler running
    // again, blocked for good (H100; benches/NOTES.md, "Audits").
    g.upload(base.stream())?;
    base.stream().wait(UPLOAD_WAIT, "the CUDA graph's upload")?;
    Ok(g)
}
