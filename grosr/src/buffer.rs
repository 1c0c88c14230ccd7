//! Typed device memory for task data.

use std::marker::PhantomData;

use crate::driver::{DeviceMem, Gpu};
use crate::error::Result;
use crate::record::DevicePtr;

/// An array of `T` in GPU memory, freed on drop. Task records point into it with [`ptr`](Self::ptr).
///
/// It holds a handle of its GPU's context, which it makes current for each copy and for the
/// free, so any thread may use or drop it, and the context outlives it.
///
/// ```no_run
/// # fn demo(rt: &grosr::Runtime) -> grosr::Result<()> {
/// let xs = grosr::DeviceBuffer::from_slice(rt.gpu(), &[1.0f32, -2.0, 3.0])?;
/// assert_eq!(xs.to_vec()?, vec![1.0, -2.0, 3.0]);
/// # Ok(()) }
/// ```
pub struct DeviceBuffer<T: bytemuck::Pod> {
    mem: DeviceMem,
    len: usize,
    _elem: PhantomData<T>,
}

impl<T: bytemuck::Pod> DeviceBuffer<T> {
    /// `len` zeroed elements on `gpu`.
    pub fn zeroed(gpu: &Gpu, len: usize) -> Result<Self> {
        let bytes = len.checked_mul(size_of::<T>()).ok_or_else(|| {
            crate::Error::Config(format!("{len} elements of {} bytes", size_of::<T>()))
        })?;
        Ok(DeviceBuffer {
            mem: DeviceMem::zeroed(gpu.context(), bytes)?,
            len,
            _elem: PhantomData,
        })
    }
    /// A copy of `data` on `gpu`.
    pub fn from_slice(gpu: &Gpu, data: &[T]) -> Result<Self> {
        Ok(DeviceBuffer {
            mem: DeviceMem::from_slice(gpu.context(), data)?,
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
        self.mem.read(&mut out)?;
        Ok(out)
    }
    /// Overwrites the first `data.len()` elements.
    pub fn write(&self, data: &[T]) -> Result<()> {
        self.mem.write(data)
    }
}

impl<T: bytemuck::Pod> std::fmt::Debug for DeviceBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBuffer")
            .field("elem", &std::any::type_name::<T>())
            .field("len", &self.len)
            .field("mem", &self.mem)
            .finish()
    }
}
