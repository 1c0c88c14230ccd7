//! The host-launched strategies: a task graph lowered to the launches a CUDA user would write,
//! all from the generated `grosr_single_<T>` / `grosr_bulk_<T>` kernels (the task bodies).

use std::ffi::c_void;
use std::time::Duration;

use cudarc::driver::sys;

use crate::baseline::Baselines;
use crate::driver::{DeviceMem, Graph, add_kernel_node};
use crate::error::{CudaContext as _, Error, Result};
use crate::layout::RECORD_WORDS;
use crate::runtime::Runtime;

use super::{Plan, Strategy};

pub(crate) struct Lowered<'rt> {
    strategy: Strategy,
    /// Nodes in topological order: (kind, record words). Sync and Batched launch these.
    singles: Vec<(u32, [u32; RECORD_WORDS])>,
    /// Fused: one bulk launch per (level, type), in level order: (kind, records address, count).
    bulk: Vec<(u32, u64, u32)>,
    _bulk_records: Option<DeviceMem>,
    graph: Option<Graph>,
    // Declared last: dropped after the graph and the records the launches use.
    base: Baselines<'rt>,
}

impl<'rt> Lowered<'rt> {
    pub(crate) fn new(rt: &'rt Runtime, plan: &Plan, strategy: Strategy) -> Result<Lowered<'rt>> {
        let base = rt.baselines()?;
        let mut lowered = Lowered {
            strategy,
            singles: Vec::new(),
            bulk: Vec::new(),
            _bulk_records: None,
            graph: None,
            base,
        };
        match strategy {
            Strategy::Resident => unreachable!("Resident graphs are not lowered"),
            Strategy::Sync | Strategy::Batched => {
                lowered.singles = plan
                    .order
                    .iter()
                    .map(|id| (plan.kind[id.index()], plan.nodes[id.index()].words))
                    .collect();
            }
            Strategy::Fused => lowered.build_fused(rt, plan)?,
            Strategy::CudaGraph | Strategy::CudaGraphPdl => {
                let pdl = strategy == Strategy::CudaGraphPdl;
                if pdl && rt.info().arch < 90 {
                    return Err(Error::Config(format!(
                        "Programmatic Dependent Launch needs sm_90 or newer; this GPU is sm_{}",
                        rt.info().arch
                    )));
                }
                lowered.graph = Some(build_graph(&lowered.base, plan, pdl)?);
            }
        }
        Ok(lowered)
    }

    /// Packs each (level, type) group's records contiguously, at the type's own size.
    fn build_fused(&mut self, rt: &Runtime, plan: &Plan) -> Result<()> {
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
        let mem = DeviceMem::from_slice(&bytes)?;
        self.bulk = groups
            .into_iter()
            .map(|(k, off, n)| (k, mem.ptr() + off as u64, n))
            .collect();
        self._bulk_records = Some(mem);
        Ok(())
    }

    pub(crate) fn run(&mut self, timeout: Duration) -> Result<()> {
        match self.strategy {
            Strategy::Sync => {
                for (kind, words) in &self.singles {
                    self.base
                        .launch_single_kind(*kind, bytemuck::cast_slice(words))?;
                    self.base.sync(timeout)?;
                }
            }
            Strategy::Batched => {
                for (kind, words) in &self.singles {
                    self.base
                        .launch_single_kind(*kind, bytemuck::cast_slice(words))?;
                }
                self.base.sync(timeout)?;
            }
            Strategy::Fused => {
                for &(kind, ptr, n) in &self.bulk {
                    self.base.launch_bulk_kind(kind, ptr, n)?;
                }
                self.base.sync(timeout)?;
            }
            Strategy::CudaGraph | Strategy::CudaGraphPdl => {
                let graph = self
                    .graph
                    .as_ref()
                    .ok_or_else(|| Error::Config("the CUDA graph was not instantiated".into()))?;
                // SAFETY: the baselines' stream lives as long as self.base.
                unsafe { graph.launch(self.base.stream()) }?;
                self.base.sync(timeout)?;
            }
            Strategy::Resident => unreachable!("Resident graphs are not lowered"),
        }
        self.base.status()
    }
}

/// A CUDA graph with one kernel node per task and the DAG's edges, instantiated.
fn build_graph(base: &Baselines<'_>, plan: &Plan, pdl: bool) -> Result<Graph> {
    let mut g = Graph::new()?;
    let mut status = base.status_ptr();
    let mut nodes: Vec<sys::CUgraphNode> = Vec::with_capacity(plan.nodes.len());
    for (i, node) in plan.nodes.iter().enumerate() {
        let (func, block) = base.single_kernel(plan.kind[i])?;
        let mut args = [
            node.words.as_ptr() as *mut c_void,
            &mut status as *mut u64 as *mut c_void,
        ];
        // SAFETY: the parameters match grosr_single_<T>(T, int32_t*); the driver copies the
        // argument values while adding the node; the status word outlives the graph (base).
        nodes.push(unsafe { add_kernel_node(g.raw(), &[], func, 1, block, &mut args) }?);
    }
    let mut from = Vec::with_capacity(plan.succ.len());
    let mut to = Vec::with_capacity(plan.succ.len());
    for u in 0..plan.nodes.len() {
        for &v in &plan.succ[plan.succ_off[u] as usize..plan.succ_off[u + 1] as usize] {
            from.push(nodes[u]);
            to.push(nodes[v as usize]);
        }
    }
    if !from.is_empty() {
        // SAFETY: a zeroed edge is the default (full) dependency.
        let mut edge: sys::CUgraphEdgeData = unsafe { std::mem::zeroed() };
        if pdl {
            // The dependent may launch once the upstream kernel triggers
            // (griddepcontrol.launch_dependents); its griddepcontrol.wait still waits for the
            // upstream grid's completion and memory flush.
            edge.type_ = sys::CUgraphDependencyType::CU_GRAPH_DEPENDENCY_TYPE_PROGRAMMATIC as u8;
            edge.from_port = sys::CU_GRAPH_KERNEL_NODE_PORT_PROGRAMMATIC as u8;
        }
        let edges = vec![edge; from.len()];
        // SAFETY: from, to and edges have equal lengths and name nodes of this graph.
        unsafe {
            sys::cuGraphAddDependencies_v2(
                g.raw(),
                from.as_ptr(),
                to.as_ptr(),
                edges.as_ptr(),
                from.len(),
            )
        }
        .result()
        .call("cuGraphAddDependencies")?;
    }
    g.instantiate()?;
    Ok(g)
}
