//! Typed device memory for task data.

use std::marker::PhantomData;

use crate::driver::{DeviceMem, Gpu};
use crate::error::{CudaContext as _, Result};
use crate::record::DevicePtr;

/// An array of `T` in GPU memory, freed on drop. Task records point into it with [`ptr`](Self::ptr).
///
/// ```no_run
/// # fn demo(rt: &grosr::Runtime) -> grosr::Result<()> {
/// let xs = grosr::DeviceBuffer::from_slice(rt.gpu(), &[1.0f32, -2.0, 3.0])?;
/// assert_eq!(xs.to_vec()?, vec![1.0, -2.0, 3.0]);
/// # Ok(()) }
/// ```
pub struct DeviceBuffer<T: bytemuck::Pod> {
    ctx: Context,
    mem: DeviceMem,
    len: usize,
    _elem: PhantomData<T>,
}

impl<T: bytemuck::Pod> DeviceBuffer<T> {
    /// `len` zeroed elements on `gpu`.
    pub fn zeroed(gpu: &Gpu, len: usize) -> Result<Self> {
        gpu.bind()?;
        Ok(DeviceBuffer {
            ctx: Context(gpu.ctx),
            mem: DeviceMem::zeroed(len * size_of::<T>())?,
            len,
            _elem: PhantomData,
        })
    }
    /// A copy of `data` on `gpu`.
    pub fn from_slice(gpu: &Gpu, data: &[T]) -> Result<Self> {
        gpu.bind()?;
        Ok(DeviceBuffer {
            ctx: Context(gpu.ctx),
            mem: DeviceMem::from_slice(data)?,
            len: data.len(),
            _elem: PhantomData,
        })
    }
    /// The address of element 0, for task records.
    pub fn ptr(&self) -> DevicePtr<T> {
        DevicePtr::from_raw(self.mem.ptr())
    }
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Copies the elements to the host (synchronous with respect to the copy, not to tasks:
    /// wait for the job that writes them first).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        let mut out = vec![T::zeroed(); self.len];
        self.ctx.bind()?;
        self.mem.read(&mut out)?;
        Ok(out)
    }
    /// Overwrites the first `data.len()` elements.
    pub fn write(&self, data: &[T]) -> Result<()> {
        self.ctx.bind()?;
        self.mem.write(data)
    }
}

/// The context a buffer was allocated in, made current before each copy (any thread may copy).
struct Context(cudarc::driver::sys::CUcontext);

// SAFETY: a context handle may be made current on any thread.
unsafe impl Send for Context {}
// SAFETY: as above; binding is per thread.
unsafe impl Sync for Context {}

impl Context {
    fn bind(&self) -> Result<()> {
        // SAFETY: the context is the runtime's primary context, retained while its Gpu lives.
        unsafe { cudarc::driver::result::ctx::set_current(self.0) }.call("cuCtxSetCurrent")
    }
}
