//! Loaded CUBIN modules and their kernels.

use std::ffi::{CString, c_void};
use std::sync::Arc;

use cudarc::driver::{result as cu, sys};

use super::context::Context;
use crate::error::{CudaContext as _, Error, Result};

/// A loaded CUBIN. Unloaded when it and every [`Function`] of it have dropped.
pub struct Module(Arc<Loaded>);

/// The module handle, shared with its functions.
struct Loaded {
    raw: sys::CUmodule,
    ctx: Context,
}

// SAFETY: module handles may be used from any thread; every use binds the module's context.
unsafe impl Send for Loaded {}
// SAFETY: as above.
unsafe impl Sync for Loaded {}

impl Module {
    /// Loads a CUBIN image into `ctx`.
    pub fn load(ctx: &Context, image: &[u8]) -> Result<Module> {
        ctx.bind()?;
        // cuModuleLoadData wants a pointer to the image; keep a NUL-terminated copy to be safe.
        let mut owned = image.to_vec();
        owned.push(0);
        // SAFETY: owned is a valid image that outlives the call.
        let raw = unsafe { cu::module::load_data(owned.as_ptr() as *const c_void) }
            .call("cuModuleLoadData")?;
        Ok(Module(Arc::new(Loaded {
            raw,
            ctx: ctx.clone(),
        })))
    }

    /// The context the module is loaded in.
    pub fn context(&self) -> &Context {
        &self.0.ctx
    }

    /// A kernel of the module by its (extern "C") name; it keeps the module loaded.
    pub fn function(&self, name: &str) -> Result<Function> {
        let c =
            CString::new(name).map_err(|_| Error::Config(format!("bad kernel name {name:?}")))?;
        self.0.ctx.bind()?;
        // SAFETY: the module is loaded while self lives.
        let raw = unsafe { cu::module::get_function(self.0.raw, c) }.call("cuModuleGetFunction")?;
        Ok(Function {
            raw,
            module: Arc::clone(&self.0),
        })
    }

    /// The device address and size of a `__device__` variable.
    pub fn global(&self, name: &str) -> Result<(u64, usize)> {
        let c =
            CString::new(name).map_err(|_| Error::Config(format!("bad symbol name {name:?}")))?;
        self.0.ctx.bind()?;
        // SAFETY: the module is loaded and not unloaded while self lives.
        unsafe { cu::module::get_global(self.0.raw, c) }.call("cuModuleGetGlobal")
    }

    /// Loads a kernel now. Under lazy loading (CUDA's default) a kernel would otherwise load
    /// at its first launch, which can wait for the running persistent kernel: forever.
    pub fn preload(&self, name: &str) -> Result<()> {
        let f = self.function(name)?;
        // SAFETY: f is a function of this live module; its context is bound (function()).
        unsafe { sys::cuFuncLoad(f.raw) }
            .result()
            .call("cuFuncLoad")
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        let _ = self.ctx.bind();
        // SAFETY: unloaded once.
        let _ = unsafe { cu::module::unload(self.raw) };
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("raw", &self.0.raw)
            .field("ordinal", &self.0.ctx.ordinal())
            .field("functions", &(Arc::strong_count(&self.0) - 1))
            .finish()
    }
}

/// A kernel of a loaded [`Module`], which it keeps loaded (launch it with
/// [`Stream::launch`](super::Stream::launch)).
#[derive(Clone)]
pub struct Function {
    raw: sys::CUfunction,
    module: Arc<Loaded>,
}

// SAFETY: function handles may be used from any thread; every use binds the module's context.
unsafe impl Send for Function {}
// SAFETY: as above.
unsafe impl Sync for Function {}

impl Function {
    /// The raw function, for the driver calls of this module.
    pub(super) fn raw(&self) -> sys::CUfunction {
        self.raw
    }

    /// The context the kernel lives in.
    pub fn context(&self) -> &Context {
        &self.module.ctx
    }

    /// How many blocks of `block` threads (with `dynamic_smem` bytes of dynamic shared memory)
    /// fit on one SM at once.
    pub fn occupancy(&self, block: u32, dynamic_smem: usize) -> Result<u32> {
        self.module.ctx.bind()?;
        // SAFETY: the function's module stays loaded while self holds it.
        unsafe {
            cu::occupancy::max_active_block_per_multiprocessor(self.raw, block as i32, dynamic_smem)
        }
        .call("cuOccupancyMaxActiveBlocksPerMultiprocessor")
        .map(|b| b as u32)
    }

    /// Asks for `percent` of each SM's L1/shared storage as shared memory (a hint the driver
    /// rounds to a supported split).
    pub fn set_carveout(&self, percent: i32) -> Result<()> {
        self.module.ctx.bind()?;
        // SAFETY: as in occupancy; the attribute takes an int.
        unsafe {
            cu::function::set_function_attribute(
                self.raw,
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT,
                percent,
            )
        }
        .call("cuFuncSetAttribute(PREFERRED_SHARED_MEMORY_CARVEOUT)")
    }

    /// Bytes of statically declared shared memory per block.
    pub fn static_shared_bytes(&self) -> Result<u64> {
        self.module.ctx.bind()?;
        // SAFETY: as in occupancy.
        unsafe {
            cu::function::get_function_attribute(
                self.raw,
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
            )
        }
        .call("cuFuncGetAttribute(SHARED_SIZE_BYTES)")
        .map(|b| b as u64)
    }
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function").field("raw", &self.raw).finish()
    }
}
