//! Task types of the graph tests (tests/gpu_graph.rs), and their module's builder.

use grosr::{DevicePtr, RuntimeBuilder};

// A node's value (tests/cuda/graph_node.cu): its own salt plus the sum of its predecessors'
// values, so a node that runs before any predecessor has finished gets a wrong value.
macro_rules! node_task {
    ($name:ident, $gran:literal) => {
        #[grosr::task(granularity = $gran, file = "../../tests/cuda/graph_node.cu")]
        pub struct $name {
            pub out: DevicePtr<u64>,
            pub pred_off: DevicePtr<u32>,
            pub preds: DevicePtr<u32>,
            pub node: u32,
            pub pad: u32,
        }
    };
}
node_task!(LaneNode, "lane");
node_task!(WarpNode, "warp");
node_task!(BlockNode, "block");

// Nodes of small graphs (16-byte records, so up to 4 travel in one launch descriptor): node in
// bits 0-7 of `node_preds`, a bit per predecessor above (tests/cuda/tiny_node.cu).
macro_rules! tiny_task {
    ($name:ident, $gran:literal) => {
        #[grosr::task(granularity = $gran, file = "../../tests/cuda/tiny_node.cu")]
        pub struct $name {
            pub out: DevicePtr<u64>,
            pub node_preds: u32,
            pub pad: u32,
        }
    };
}
tiny_task!(TinyLane, "lane");
tiny_task!(TinyWarp, "warp");

/// Fails its graph's job with code 7.
#[grosr::task(granularity = "lane", cuda = "ctx.fail(7);")]
pub struct FailNode {
    pub code: u32,
}

/// Never registered.
#[grosr::task(granularity = "lane", cuda = "")]
pub struct Stranger {
    pub x: u32,
}

/// The graph tests' module: the lab's workloads and the node types above.
pub fn builder() -> RuntimeBuilder {
    grosr_lab::workloads::builder()
        .task::<LaneNode>()
        .task::<WarpNode>()
        .task::<BlockNode>()
        .task::<FailNode>()
        .task::<TinyLane>()
        .task::<TinyWarp>()
}
