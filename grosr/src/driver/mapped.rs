//! Page-locked host memory the GPU reads and writes directly.

use std::ffi::c_void;

use cudarc::driver::{result as cu, sys};

use super::context::Context;
use crate::error::{CudaContext as _, Result};

/// Page-locked host memory mapped into the GPU's address space (never Unified Memory).
pub struct MappedMem {
    host: *mut u8,
    dev: u64,
    len: usize,
    ctx: Context,
}

// SAFETY: the memory is plain bytes shared with the GPU; access goes through atomics or is
// synchronised by the submit protocol (ring/).
unsafe impl Send for MappedMem {}
// SAFETY: as above.
unsafe impl Sync for MappedMem {}

impl MappedMem {
    /// Allocates `len` zeroed bytes, cached on the host (not write-combined), mapped for `ctx`'s
    /// GPU.
    pub fn new(ctx: &Context, len: usize) -> Result<MappedMem> {
        ctx.bind()?;
        let flags = sys::CU_MEMHOSTALLOC_DEVICEMAP | sys::CU_MEMHOSTALLOC_PORTABLE;
        // SAFETY: a fresh allocation; zeroed below before use.
        let host = unsafe { cu::malloc_host(len.max(1), flags) }.call("cuMemHostAlloc")? as *mut u8;
        // SAFETY: host points to at least len bytes we own.
        unsafe { std::ptr::write_bytes(host, 0, len) };
        let mut dev = 0;
        // SAFETY: host was allocated with DEVICEMAP; out-pointer to a local.
        let r =
            unsafe { sys::cuMemHostGetDevicePointer_v2(&mut dev, host as *mut c_void, 0) }.result();
        if let Err(e) = r {
            // SAFETY: host came from malloc_host and is freed once, here.
            let _ = unsafe { cu::free_host(host as *mut c_void) };
            return Err(e).call("cuMemHostGetDevicePointer");
        }
        Ok(MappedMem {
            host,
            dev,
            len,
            ctx: ctx.clone(),
        })
    }
    /// The host address.
    pub fn host(&self) -> *mut u8 {
        self.host
    }
    /// The device address of the same bytes.
    pub fn device(&self) -> u64 {
        self.dev
    }
}

impl Drop for MappedMem {
    fn drop(&mut self) {
        let _ = self.ctx.bind();
        // SAFETY: host came from malloc_host and is freed once.
        let _ = unsafe { cu::free_host(self.host as *mut c_void) };
    }
}

impl std::fmt::Debug for MappedMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedMem")
            .field("host", &self.host)
            .field("device", &format_args!("{:#x}", self.dev))
            .field("len", &self.len)
            .finish()
    }
}
