//! Typed device memory for task data.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::cpu::{Allocation, HostMemory};
use crate::driver::{DeviceMem, Gpu};
use crate::error::Result;
use crate::record::DevicePtr;

/// An array of `T` in GPU memory, freed when dropped once the jobs submitted before the drop
/// have finished (they may still use it). Task records point into it with [`ptr`](Self::ptr).
///
/// It holds a handle of its GPU's context, which it makes current for each copy and for the
/// free, so any thread may use or drop it, and the context outlives it. On the CPU backend
/// ([`Backend::Cpu`](crate::Backend)) it is host memory that the runtime's tasks address,
/// registered for the checks their accesses go through.
///
/// ```
/// # let rt = grosr::Runtime::builder().backend(grosr::Backend::Cpu).build()?;
/// let xs = grosr::DeviceBuffer::from_slice(rt.gpu(), &[1.0f32, -2.0, 3.0])?;
/// assert_eq!(xs.to_vec()?, vec![1.0, -2.0, 3.0]);
/// # Ok::<(), grosr::Error>(())
/// ```
pub struct DeviceBuffer<T: bytemuck::Pod> {
    mem: Mem,
    len: usize,
    _elem: PhantomData<T>,
}

/// Where a buffer's elements are.
enum Mem {
    Device(DeviceMem),
    /// The CPU backend's: unregistered from `HostMemory` on drop.
    Host(Arc<Allocation>, Arc<HostMemory>),
}

impl Mem {
    fn new(gpu: &Gpu, bytes: usize) -> Result<Mem> {
        Ok(match gpu.host_memory() {
            Some(host) => match host.alloc(bytes as u64) {
                Some(a) => Mem::Host(a, Arc::clone(host)),
                None => {
                    return Err(crate::Error::DoesNotFit(format!(
                        "a buffer of {bytes} bytes: the host cannot give that much memory"
                    )));
                }
            },
            None => Mem::Device(DeviceMem::zeroed(gpu.context()?, bytes)?),
        })
    }
}

impl<T: bytemuck::Pod> DeviceBuffer<T> {
    /// `len` zeroed elements on `gpu`.
    pub fn zeroed(gpu: &Gpu, len: usize) -> Result<Self> {
        let bytes = len.checked_mul(size_of::<T>()).ok_or_else(|| {
            crate::Error::Config(format!("{len} elements of {} bytes", size_of::<T>()))
        })?;
        Ok(DeviceBuffer {
            mem: Mem::new(gpu, bytes)?,
            len,
            _elem: PhantomData,
        })
    }
    /// A copy of `data` on `gpu`.
    pub fn from_slice(gpu: &Gpu, data: &[T]) -> Result<Self> {
        let mem = match gpu.host_memory() {
            Some(_) => Mem::new(gpu, std::mem::size_of_val(data))?,
            None => Mem::Device(DeviceMem::from_slice(gpu.context()?, data)?),
        };
        let b = DeviceBuffer {
            mem,
            len: data.len(),
            _elem: PhantomData,
        };
        if let Mem::Host(..) = b.mem {
            b.write(data)?;
        }
        Ok(b)
    }
    /// The address of element 0, for task records.
    pub fn ptr(&self) -> DevicePtr<T> {
        DevicePtr::from_raw(match &self.mem {
            Mem::Device(m) => m.ptr(),
            Mem::Host(a, _) => a.base(),
        })
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
        match &self.mem {
            Mem::Device(m) => m.read(&mut out)?,
            Mem::Host(a, _) => a.read(a.base(), bytemuck::cast_slice_mut(&mut out)),
        }
        Ok(out)
    }
    /// Overwrites the first `data.len()` elements (an error if there are more than `len`).
    pub fn write(&self, data: &[T]) -> Result<()> {
        match &self.mem {
            Mem::Device(m) => m.write(data),
            Mem::Host(a, _) => {
                if data.len() > self.len {
                    return Err(crate::Error::Config(format!(
                        "{} elements into a buffer of {}",
                        data.len(),
                        self.len
                    )));
                }
                a.write(a.base(), bytemuck::cast_slice(data));
                Ok(())
            }
        }
    }
}

impl<T: bytemuck::Pod> std::fmt::Debug for DeviceBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBuffer")
            .field("elem", &std::any::type_name::<T>())
            .field("len", &self.len)
            .field("addr", &format_args!("{:#x}", self.ptr().addr()))
            .finish()
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        if let Mem::Host(a, memory) = self {
            memory.free(a);
        }
    }
}
