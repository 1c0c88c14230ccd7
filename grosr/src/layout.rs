//! Rust mirrors of the structs that the host and the GPU share (cuda/grosr_runtime.cuh).
//!
//! The generated CUDA asserts that each C struct has the size given here
//! (see `codegen::layout_asserts`), so a change on one side without the other fails to compile.

/// Slots (tasks) in the record of a queue slot, in 32-bit words.
pub(crate) const RECORD_WORDS: usize = 12;
/// Bytes per queue slot.
pub(crate) const SLOT_BYTES: usize = 64;
/// Bytes of one queue's header (four counters, one 128-byte line each).
pub(crate) const QUEUE_HEADER_BYTES: usize = 512;
/// Kind of a graph launch record (C: `grosr::KIND_GRAPH`).
pub(crate) const KIND_GRAPH: u32 = 0xFFFF_FFF1;
/// Kind of a small graph's launch, which carries the whole graph (C: `grosr::KIND_GRAPH_SMALL`).
pub(crate) const KIND_GRAPH_SMALL: u32 = 0xFFFF_FFF4;
/// Bytes of the device-side graph header. C: `grosr::GraphDev`.
pub(crate) const GRAPH_DEV_BYTES: usize = 80;

/// Threads per scheduler block.
pub(crate) const BLOCK_THREADS: u32 = 256;

/// Cells in one descriptor.
pub(crate) const DESC_CELLS: usize = 32;

/// One submitted slice (mapped host memory): 32 cells of `payload | tag << 32`, each written
/// with one 8-byte store (cuda/README.md, "Submitting"). C: `grosr::Desc`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Desc {
    pub cells: [u64; DESC_CELLS],
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
    pub desc_head: u64,
    pub pad1: [u32; 30],
    pub started_blocks: u32,
    pub exited_blocks: u32,
    pub pad2: [u32; 30],
    pub err_code: i32,
    pub err_detail: u32,
    pub pad3: [u32; 30],
}

/// One job slot's device state. C: `grosr::DevJob`.
pub(crate) const DEV_JOB_BYTES: usize = 32;

/// The scheduler kernel's parameter block, passed by value. C: `grosr::Params`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
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
    pub desc_start: u64,
    pub num_queues: u32,
    pub queue_cap: u32,
    pub desc_cap: u32,
    pub job_slots: u32,
    pub num_kinds: u32,
    pub spin_limit: u32,
}

/// `(C type, Rust size)` of every shared struct, for the generated `static_assert`s.
pub(crate) fn shared_struct_sizes() -> [(&'static str, usize); 8] {
    [
        ("grosr::Desc", size_of::<Desc>()),
        ("grosr::Completion", size_of::<Completion>()),
        ("grosr::HostCtl", size_of::<HostCtl>()),
        ("grosr::DevJob", DEV_JOB_BYTES),
        ("grosr::Params", size_of::<Params>()),
        ("grosr::Slot", SLOT_BYTES),
        ("grosr::Queue", QUEUE_HEADER_BYTES),
        ("grosr::GraphDev", GRAPH_DEV_BYTES),
    ]
}

const _: () = assert!(size_of::<HostCtl>() == 512);
const _: () = assert!(size_of::<Desc>() == 256);
const _: () = assert!(RECORD_WORDS * 4 == crate::record::MAX_RECORD_BYTES);
