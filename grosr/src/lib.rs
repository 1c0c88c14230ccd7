//! grosr: a task scheduler that stays resident on an NVIDIA GPU.
#![warn(missing_docs)]

pub mod record;

pub use grosr_macros::{record, task};
pub use record::{CudaBody, DevicePtr, DeviceType, Field, Granularity, Record, Task, MAX_RECORD_BYTES};

/// What the macros' expansions name; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use bytemuck;
}
