//! CUDA graphs: kernel nodes, dependencies, instantiation and launch.

use cudarc::driver::sys;

use super::args::KernelArgs;
use super::context::Context;
use super::module::Function;
use super::stream::Stream;
use crate::error::{CudaContext as _, Error, Result};

/// A CUDA graph and, once instantiated, its executable form; both destroyed on drop, or, while a
/// kernel may run in the context (a scheduler's), once none does (`Context::destroy_when_idle`).
pub struct Graph {
    graph: sys::CUgraph,
    exec: sys::CUgraphExec,
    ctx: Context,
}

// SAFETY: graph handles are plain identifiers usable from any thread; every use binds the
// graph's context.
unsafe impl Send for Graph {}

/// How a dependency edge waits for its upstream kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dependency {
    /// The downstream kernel starts once the upstream one has completed.
    Full,
    /// Programmatic Dependent Launch (sm_90+): the downstream kernel may launch once the
    /// upstream one triggers (`griddepcontrol.launch_dependents`); its `griddepcontrol.wait`
    /// still waits for the upstream grid's completion and memory flush.
    Programmatic,
}

impl Graph {
    /// An empty graph in `ctx`.
    pub fn new(ctx: &Context) -> Result<Graph> {
        ctx.bind()?;
        let mut graph: sys::CUgraph = std::ptr::null_mut();
        // SAFETY: out-pointer to a local.
        unsafe { sys::cuGraphCreate(&mut graph, 0) }
            .result()
            .call("cuGraphCreate")?;
        Ok(Graph {
            graph,
            exec: std::ptr::null_mut(),
            ctx: ctx.clone(),
        })
    }

    /// The raw graph, to add nodes to.
    pub fn raw(&self) -> sys::CUgraph {
        self.graph
    }

    /// The context the graph belongs to.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Adds a kernel node running `f` on `grid` blocks of `block` threads after `deps`.
    ///
    /// # Safety
    /// `deps` must be nodes of this graph; `args` must match the kernel's parameters (the
    /// driver copies the values now), and whatever the kernel reads or writes through them must
    /// outlive every launch of the graph.
    pub unsafe fn add_kernel(
        &mut self,
        deps: &[sys::CUgraphNode],
        f: &Function,
        grid: u32,
        block: u32,
        args: impl KernelArgs,
    ) -> Result<sys::CUgraphNode> {
        self.ctx.bind()?;
        // SAFETY: passed on from the caller; the graph is live.
        unsafe { add_kernel_node(self.graph, deps, f.raw(), grid, block, args) }
    }

    /// Adds the edges `from[i] -> to[i]`, all of kind `kind`.
    pub fn add_dependencies(
        &mut self,
        from: &[sys::CUgraphNode],
        to: &[sys::CUgraphNode],
        kind: Dependency,
    ) -> Result<()> {
        if from.len() != to.len() {
            return Err(Error::Config(format!(
                "{} edge sources but {} targets",
                from.len(),
                to.len()
            )));
        }
        if from.is_empty() {
            return Ok(());
        }
        // SAFETY: a zeroed edge is the default (full) dependency.
        let mut edge: sys::CUgraphEdgeData = unsafe { std::mem::zeroed() };
        if kind == Dependency::Programmatic {
            edge.type_ = sys::CUgraphDependencyType::CU_GRAPH_DEPENDENCY_TYPE_PROGRAMMATIC as u8;
            edge.from_port = sys::CU_GRAPH_KERNEL_NODE_PORT_PROGRAMMATIC as u8;
        }
        let edges = vec![edge; from.len()];
        self.ctx.bind()?;
        // SAFETY: from, to and edges have equal lengths; the driver checks that they name
        // nodes of this live graph.
        unsafe {
            sys::cuGraphAddDependencies_v2(
                self.graph,
                from.as_ptr(),
                to.as_ptr(),
                edges.as_ptr(),
                from.len(),
            )
        }
        .result()
        .call("cuGraphAddDependencies")
    }

    /// Adds a conditional WHILE node (no dependencies) whose condition starts at 1 at every
    /// launch; a kernel of its body ends the loop with `cudaGraphSetConditional(handle, 0)`.
    /// Needs a CUDA 12.4 driver or newer.
    pub fn add_while(&mut self) -> Result<WhileBody<'_>> {
        self.ctx.bind()?;
        let mut handle: sys::CUgraphConditionalHandle = 0;
        // SAFETY: the graph and its context are live; out-pointer to a local.
        unsafe {
            sys::cuGraphConditionalHandleCreate(
                &mut handle,
                self.graph,
                self.ctx.raw(),
                1,
                sys::CU_GRAPH_COND_ASSIGN_DEFAULT,
            )
        }
        .result()
        .call("cuGraphConditionalHandleCreate")?;
        // SAFETY: a zeroed CUgraphNodeParams is valid; the conditional member is set below.
        let mut params: sys::CUgraphNodeParams = unsafe { std::mem::zeroed() };
        params.type_ = sys::CUgraphNodeType::CU_GRAPH_NODE_TYPE_CONDITIONAL;
        params.__bindgen_anon_1.conditional = sys::CUDA_CONDITIONAL_NODE_PARAMS {
            handle,
            type_: sys::CUgraphConditionalNodeType::CU_GRAPH_COND_TYPE_WHILE,
            size: 1,
            phGraph_out: std::ptr::null_mut(),
            ctx: self.ctx.raw(),
        };
        let mut node: sys::CUgraphNode = std::ptr::null_mut();
        // SAFETY: params is a complete conditional node description; no dependencies.
        unsafe {
            sys::cuGraphAddNode_v2(
                &mut node,
                self.graph,
                std::ptr::null(),
                std::ptr::null(),
                0,
                &mut params,
            )
        }
        .result()
        .call("cuGraphAddNode(conditional WHILE)")?;
        // SAFETY: the node was added, so the driver filled the conditional member's output.
        let out = unsafe { params.__bindgen_anon_1.conditional.phGraph_out };
        if out.is_null() {
            return Err(Error::Unsupported(
                "cuGraphAddNode returned no WHILE body graph".into(),
            ));
        }
        Ok(WhileBody {
            // SAFETY: out points at `size` (1) body graphs, owned by the node (so by self).
            graph: unsafe { *out },
            handle,
            parent: self,
        })
    }

    /// Instantiates the graph (after every node and edge was added).
    pub fn instantiate(&mut self) -> Result<()> {
        self.ctx.bind()?;
        let mut exec: sys::CUgraphExec = std::ptr::null_mut();
        // SAFETY: the graph is live; out-pointer to a local.
        unsafe { sys::cuGraphInstantiateWithFlags(&mut exec, self.graph, 0) }
            .result()
            .call("cuGraphInstantiate")?;
        self.exec = exec;
        Ok(())
    }

    /// Uploads the instantiated graph's work to the device on `stream` (`cuGraphUpload`), so
    /// that no part of it is left for the driver to do later; wait for `stream` after.
    pub fn upload(&self, stream: &Stream) -> Result<()> {
        let exec = self.exec_for(stream, "uploaded")?;
        // SAFETY: as exec_for checked: a live executable graph and a stream of its context.
        unsafe { sys::cuGraphUpload(exec, stream.raw()) }
            .result()
            .call("cuGraphUpload")
    }

    /// Launches the instantiated graph on `stream`.
    pub fn launch(&self, stream: &Stream) -> Result<()> {
        let exec = self.exec_for(stream, "launched")?;
        // SAFETY: as exec_for checked: a live executable graph and a stream of its context.
        unsafe { sys::cuGraphLaunch(exec, stream.raw()) }
            .result()
            .call("cuGraphLaunch")
    }

    /// The executable graph, once it is instantiated and `stream` is of its context (bound).
    fn exec_for(&self, stream: &Stream, what: &str) -> Result<sys::CUgraphExec> {
        if self.exec.is_null() {
            return Err(Error::Config("the CUDA graph was not instantiated".into()));
        }
        if stream.context().raw() != self.ctx.raw() {
            return Err(Error::Config(format!(
                "a CUDA graph {what} on a stream of another context"
            )));
        }
        self.ctx.bind()?;
        Ok(self.exec)
    }
}

/// The body of a WHILE node ([`Graph::add_while`]), owned by its graph.
#[derive(Debug)]
pub struct WhileBody<'g> {
    graph: sys::CUgraph,
    handle: sys::CUgraphConditionalHandle,
    parent: &'g mut Graph,
}

impl WhileBody<'_> {
    /// The loop's condition handle, for the body's `cudaGraphSetConditional`.
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// Adds a kernel node to the body, as [`Graph::add_kernel`] does to a graph.
    ///
    /// # Safety
    /// As for [`Graph::add_kernel`].
    pub unsafe fn add_kernel(
        &mut self,
        deps: &[sys::CUgraphNode],
        f: &Function,
        grid: u32,
        block: u32,
        args: impl KernelArgs,
    ) -> Result<sys::CUgraphNode> {
        self.parent.ctx.bind()?;
        // SAFETY: the body graph lives as long as its parent, borrowed here; the rest is the
        // caller's.
        unsafe { add_kernel_node(self.graph, deps, f.raw(), grid, block, args) }
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        let handles = GraphHandles(self.graph, self.exec);
        // cuGraphExecDestroy waits for the context's kernels, a running scheduler's too.
        self.ctx
            .destroy_when_idle(Box::new(move || handles.destroy()));
    }
}

/// A graph's handles on their way to being destroyed.
struct GraphHandles(sys::CUgraph, sys::CUgraphExec);

// SAFETY: plain identifiers, destroyed once on whichever thread runs the destroy.
unsafe impl Send for GraphHandles {}

impl GraphHandles {
    /// Destroys both; the graph's context must be current.
    fn destroy(self) {
        // SAFETY: each handle is destroyed once, here; failures cannot be acted on in a drop.
        unsafe {
            if !self.1.is_null() {
                let _ = sys::cuGraphExecDestroy(self.1);
            }
            let _ = sys::cuGraphDestroy(self.0);
        }
    }
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("graph", &self.graph)
            .field("instantiated", &!self.exec.is_null())
            .field("ordinal", &self.ctx.ordinal())
            .finish()
    }
}

/// Adds a kernel node running `func` on `grid` blocks of `block` threads, after `deps`, to
/// `graph` (a [`Graph::raw`] or a body graph a conditional node owns). The graph's context must
/// be current.
///
/// # Safety
/// `graph` must be live and `deps` nodes of it; `args` must match the kernel's parameters (the
/// driver copies the values while adding the node), and what the kernel reads or writes
/// through them must outlive every launch of the graph.
unsafe fn add_kernel_node(
    graph: sys::CUgraph,
    deps: &[sys::CUgraphNode],
    func: sys::CUfunction,
    grid: u32,
    block: u32,
    args: impl KernelArgs,
) -> Result<sys::CUgraphNode> {
    let mut ptrs = args.pointers();
    // SAFETY: a zeroed parameter block is valid (null kern/ctx/extra mean "use func").
    let mut params: sys::CUDA_KERNEL_NODE_PARAMS = unsafe { std::mem::zeroed() };
    params.func = func;
    (params.gridDimX, params.gridDimY, params.gridDimZ) = (grid, 1, 1);
    (params.blockDimX, params.blockDimY, params.blockDimZ) = (block, 1, 1);
    params.kernelParams = ptrs.as_mut().as_mut_ptr();
    let mut node: sys::CUgraphNode = std::ptr::null_mut();
    // SAFETY: the caller vouches for graph, deps and args (see above); `ptrs` outlives the call.
    unsafe { sys::cuGraphAddKernelNode_v2(&mut node, graph, deps.as_ptr(), deps.len(), &params) }
        .result()
        .call("cuGraphAddKernelNode")?;
    Ok(node)
}
