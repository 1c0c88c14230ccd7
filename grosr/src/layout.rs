//! Rust mirrors of the structs and constants that the host and the GPU share
//! (cuda/grosr_layout.cuh), the one place the Rust side spells their layout.
//!
//! The generated CUDA asserts each C struct's size and every field's offset against the values
//! here (`codegen::layout_asserts`, from [`shared_structs`]), so a change on one side without the
//! other fails to compile; the `const` asserts below pin the Rust side.

use std::mem::{offset_of, size_of};

/// Slots (tasks) in the record of a queue slot, in 32-bit words.
pub(crate) const RECORD_WORDS: usize = 12;
/// Kind of a graph launch record (C: `grosr::KIND_GRAPH`).
pub(crate) const KIND_GRAPH: u32 = 0xFFFF_FFF1;
/// Kind of a small graph's launch, which carries the whole graph (C: `grosr::KIND_GRAPH_SMALL`).
pub(crate) const KIND_GRAPH_SMALL: u32 = 0xFFFF_FFF4;

/// Threads per scheduler block.
pub(crate) const BLOCK_THREADS: u32 = 256;

/// With this many submission rings or more, the last is kept for high-priority jobs
/// (`runtime/rings.rs`), and its block runs no block task (`process`).
pub(crate) const HIGH_RING_FROM: u32 = 3;

/// Cells in one descriptor.
pub(crate) const DESC_CELLS: usize = 32;

/// Payload word of each descriptor field (C: `grosr::DESC_*`). Words from [`DESC_INLINE_FIRST`]
/// on carry the records themselves when [`DESC_INLINE`] is 1.
pub(crate) const DESC_KIND: usize = 0;
pub(crate) const DESC_COUNT: usize = 1;
pub(crate) const DESC_JOB_SLOT: usize = 2;
pub(crate) const DESC_JOB_SEQ: usize = 3;
pub(crate) const DESC_ADJUST: usize = 4;
pub(crate) const DESC_RECORDS_LO: usize = 5;
pub(crate) const DESC_RECORDS_HI: usize = 6;
pub(crate) const DESC_INLINE: usize = 7;
pub(crate) const DESC_INLINE_FIRST: usize = 8;

/// One submitted slice (mapped host memory): 32 cells of `payload | tag << 32`, each written
/// with one 8-byte store (cuda/README.md, "Submitting"). C: `grosr::Desc`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Desc {
    pub cell: [u64; DESC_CELLS],
}

/// One job slot's outcome (mapped). C: `grosr::Completion`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Completion {
    pub done_seq: u32,
    pub error: i32,
    pub error_kind: u32,
    pub pad: u32,
}

/// Control words (mapped), one 128-byte line per writer. C: `grosr::HostCtl`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct HostCtl {
    pub stop: u32,
    pub pad0: [u32; 31],
    pub started_blocks: u32,
    pub exited_blocks: u32,
    pub pad2: [u32; 30],
    pub err_code: i32,
    pub err_detail: u32,
    pub pad3: [u32; 30],
}

/// A submission ring's consumed descriptors (mapped), one 128-byte line per ring: written by
/// the ring's ingest warp, read by the host. C: `grosr::DescHead`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct DescHead {
    pub head: u64,
    pub pad: [u32; 30],
}

/// One job slot's device state (only the GPU touches it). C: `grosr::DevJob`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct DevJob {
    pub pending: i32,
    pub error: i32,
    pub error_kind: u32,
    pub seq: u32,
    /// `const GraphDev*`.
    pub graph: u64,
    /// The `seq` of a job the host cancelled (`Job::cancel` writes it; cuda/grosr_jobs.cuh).
    pub cancel: u32,
    pub pad: u32,
}

/// One queued task (device memory, only the GPU touches it). C: `grosr::Slot`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub seq: u32,
    pub kind: u32,
    pub job: u32,
    pub node: u32,
    pub words: [u32; RECORD_WORDS],
}

/// One 128-byte line holding a counter. C: `grosr::Counter`.
#[repr(C, align(128))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Counter {
    pub value: u32,
    pub pad: [u32; 31],
}

/// The header of one SM's queue (device memory, only the GPU touches it). C: `grosr::Queue`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Queue {
    pub size: Counter,
    pub count: Counter,
    pub head: Counter,
    pub tail: Counter,
}

/// A task graph's header in device memory, followed by its arrays
/// (`graph::resident::GraphImage`). The pointers are device addresses. C: `grosr::GraphDev`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct GraphDev {
    /// Per node: its kind, with `NODE_LEAF` if it has no successors.
    pub kinds: u64,
    /// Per node: its record, `RECORD_WORDS` words.
    pub words: u64,
    /// Nodes + 1 offsets into `succ`.
    pub succ_off: u64,
    pub succ: u64,
    /// Per node: its predecessors.
    pub indeg: u64,
    /// Per node: predecessors not yet finished in this launch.
    pub remaining: u64,
    /// Nodes without predecessors: lane tasks, then warp tasks, then block tasks.
    pub roots: u64,
    pub num_roots: u32,
    pub num_nodes: u32,
    /// `roots[..lane_roots]` are lane tasks.
    pub lane_roots: u32,
    /// `roots[lane_roots..warp_roots_end]` are warp tasks; the rest block tasks.
    pub warp_roots_end: u32,
    pub pad: [u32; 2],
}

/// The scheduler kernel's parameter block, passed by value. C: `grosr::Params`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    pub host: u64,
    pub descs: u64,
    pub desc_done: u64,
    pub completions: u64,
    pub jobs: u64,
    pub desc_reads: u64,
    pub executed: u64,
    pub queues: u64,
    pub slots: u64,
    pub dev_stop: u64,
    pub dev_err: u64,
    pub desc_heads: u64,
    pub num_queues: u32,
    pub queue_cap: u32,
    pub desc_cap: u32,
    pub job_slots: u32,
    pub num_kinds: u32,
    pub spin_limit: u32,
    pub num_rings: u32,
    pub pad: u32,
}

/// A shared struct as the generated `static_assert`s check it: its C name, its size and each
/// field's C name and offset, all as the Rust mirror has them.
pub(crate) struct SharedStruct {
    pub c_name: &'static str,
    pub size: usize,
    pub fields: Vec<(&'static str, usize)>,
}

/// `SharedStruct` of the mirror `$rust` of C struct `$c`, whose fields share their names.
macro_rules! shared {
    ($rust:ty, $c:literal, $($field:ident),+ $(,)?) => {
        SharedStruct {
            c_name: $c,
            size: size_of::<$rust>(),
            fields: vec![$((stringify!($field), offset_of!($rust, $field))),+],
        }
    };
}

/// Every shared struct, for the generated `static_assert`s.
pub(crate) fn shared_structs() -> [SharedStruct; 10] {
    [
        shared!(Desc, "grosr::Desc", cell),
        shared!(
            Completion,
            "grosr::Completion",
            done_seq,
            error,
            error_kind,
            pad
        ),
        shared!(
            HostCtl,
            "grosr::HostCtl",
            stop,
            pad0,
            started_blocks,
            exited_blocks,
            pad2,
            err_code,
            err_detail,
            pad3,
        ),
        shared!(
            DevJob,
            "grosr::DevJob",
            pending,
            error,
            error_kind,
            seq,
            graph,
            cancel,
            pad
        ),
        shared!(Slot, "grosr::Slot", seq, kind, job, node, words),
        shared!(Counter, "grosr::Counter", value, pad),
        shared!(Queue, "grosr::Queue", size, count, head, tail),
        shared!(
            GraphDev,
            "grosr::GraphDev",
            kinds,
            words,
            succ_off,
            succ,
            indeg,
            remaining,
            roots,
            num_roots,
            num_nodes,
            lane_roots,
            warp_roots_end,
            pad,
        ),
        shared!(
            Params,
            "grosr::Params",
            host,
            descs,
            desc_done,
            completions,
            jobs,
            desc_reads,
            executed,
            queues,
            slots,
            dev_stop,
            dev_err,
            desc_heads,
            num_queues,
            queue_cap,
            desc_cap,
            job_slots,
            num_kinds,
            spin_limit,
            num_rings,
            pad,
        ),
        shared!(DescHead, "grosr::DescHead", head, pad),
    ]
}

const _: () = assert!(size_of::<HostCtl>() == 384);
const _: () = assert!(offset_of!(HostCtl, started_blocks) == 128);
const _: () = assert!(offset_of!(HostCtl, err_code) == 256);
const _: () = assert!(size_of::<DescHead>() == 128);
const _: () = assert!(size_of::<Desc>() == 256);
const _: () = assert!(size_of::<Completion>() == 16);
const _: () = assert!(size_of::<DevJob>() == 32);
const _: () = assert!(size_of::<Slot>() == 64);
const _: () = assert!(offset_of!(Slot, words) == 16); // C: alignas(16)
const _: () = assert!(size_of::<Queue>() == 512);
const _: () = assert!(size_of::<GraphDev>() == 80);
const _: () = assert!(offset_of!(GraphDev, kinds) == 0);
const _: () = assert!(offset_of!(GraphDev, words) == 8);
const _: () = assert!(offset_of!(GraphDev, succ_off) == 16);
const _: () = assert!(offset_of!(GraphDev, succ) == 24);
const _: () = assert!(offset_of!(GraphDev, indeg) == 32);
const _: () = assert!(offset_of!(GraphDev, remaining) == 40);
const _: () = assert!(offset_of!(GraphDev, roots) == 48);
const _: () = assert!(offset_of!(GraphDev, num_roots) == 56);
const _: () = assert!(offset_of!(GraphDev, num_nodes) == 60);
const _: () = assert!(offset_of!(GraphDev, lane_roots) == 64);
const _: () = assert!(offset_of!(GraphDev, warp_roots_end) == 68);
const _: () = assert!(offset_of!(GraphDev, pad) == 72);
const _: () = assert!(RECORD_WORDS * 4 == crate::record::MAX_RECORD_BYTES);
