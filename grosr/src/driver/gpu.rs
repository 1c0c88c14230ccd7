//! Opening a GPU: the driver, the device's attributes and its primary context.

use cudarc::driver::{result as cu, sys};

use super::context::Context;
use crate::error::{CudaCode, CudaContext as _, Error, Result, is_sticky, result_name};

/// One GPU with its primary context made current on the calling thread; or, for a runtime on
/// the CPU backend, the host memory its tasks address (`name` "CPU (n threads)", `arch` 0).
pub struct Gpu {
    place: Place,
    /// Ordinal of the device.
    pub ordinal: usize,
    /// The device's name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// Compute capability as major * 10 + minor (90 for Hopper).
    pub arch: u32,
    /// The driver's CUDA version, e.g. 13000.
    pub driver_version: i32,
    /// Bytes of shared memory an SM has at most (the rest of its L1/shared storage is L1).
    pub(crate) smem_per_sm: u32,
    /// Bytes of shared memory the system reserves per resident block.
    pub(crate) smem_reserved_per_block: u32,
}

/// Where a [`Gpu`]'s memory is.
enum Place {
    Cuda(Context),
    Host(std::sync::Arc<crate::cpu::HostMemory>),
}

/// A device whose facts are known ([`Gpu::probe`]) and whose context is not yet retained.
pub(crate) struct Probed {
    device: sys::CUdevice,
    ordinal: usize,
    name: String,
    /// As [`Gpu::sm_count`].
    pub sm_count: u32,
    /// As [`Gpu::arch`].
    pub arch: u32,
    driver_version: i32,
    smem_per_sm: u32,
    smem_reserved_per_block: u32,
}

/// A driver call's failure; [`Error::DeviceFault`] when it is sticky (an earlier fault in this
/// process), which no call of this process can get past.
fn device_error(call: &'static str, code: sys::CUresult) -> Error {
    if is_sticky(code) {
        Error::DeviceFault(format!(
            "{}: an earlier fault left this process's CUDA state unusable; CUDA recovers from \
             such faults only in a new process",
            result_name(code)
        ))
    } else {
        Error::Cuda {
            call,
            code: CudaCode(code),
        }
    }
}

impl Probed {
    /// Retains the device's primary context: the [`Gpu`].
    pub(crate) fn open(self) -> Result<Gpu> {
        let ctx = Context::primary(self.device, self.ordinal)
            .map_err(|e| device_error("cuDevicePrimaryCtxRetain", e.0))?;
        ctx.bind()?;
        Ok(Gpu {
            place: Place::Cuda(ctx),
            ordinal: self.ordinal,
            name: self.name,
            sm_count: self.sm_count,
            arch: self.arch,
            driver_version: self.driver_version,
            smem_per_sm: self.smem_per_sm,
            smem_reserved_per_block: self.smem_reserved_per_block,
        })
    }
}

impl Gpu {
    /// The CPU backend's stand-in: host memory that its `threads` threads' tasks address.
    pub(crate) fn host(memory: std::sync::Arc<crate::cpu::HostMemory>, threads: usize) -> Gpu {
        Gpu {
            place: Place::Host(memory),
            ordinal: 0,
            name: format!("CPU ({threads} threads)"),
            sm_count: threads as u32,
            arch: 0,
            driver_version: 0,
            smem_per_sm: 0,
            smem_reserved_per_block: 0,
        }
    }

    /// The host memory of the CPU backend's stand-in (`None` for a GPU).
    pub(crate) fn host_memory(&self) -> Option<&std::sync::Arc<crate::cpu::HostMemory>> {
        match &self.place {
            Place::Host(m) => Some(m),
            Place::Cuda(_) => None,
        }
    }

    /// Loads the driver, initialises it and retains device `ordinal`'s primary context.
    /// [`Error::NoDriver`] without a driver: every other driver object is made from a `Gpu`'s
    /// context handle, so none of them can meet cudarc's panic for a missing library.
    pub fn open(ordinal: usize) -> Result<Gpu> {
        Gpu::probe(ordinal)?.open()
    }

    /// [`open`](Gpu::open)'s first half: the driver and the device's facts, without the context
    /// (whose creation, about 90 ms on an H100 host, a build runs beside NVRTC's compile).
    pub(crate) fn probe(ordinal: usize) -> Result<Probed> {
        // SAFETY: only tries to dlopen libcuda under the names cudarc uses.
        if !unsafe { sys::is_culib_present() } {
            return Err(Error::NoDriver);
        }
        cu::init().map_err(|e| match e.0 {
            sys::CUresult::CUDA_ERROR_NO_DEVICE => {
                Error::NoDevice("is visible to the driver (check nvidia-smi)".into())
            }
            code => Error::Cuda {
                call: "cuInit",
                code: CudaCode(code),
            },
        })?;
        let count = cu::device::get_count().call("cuDeviceGetCount")?;
        if count <= 0 {
            return Err(Error::NoDevice(
                "is visible to the driver (check nvidia-smi)".into(),
            ));
        }
        if ordinal >= count as usize {
            return Err(Error::NoDevice(format!(
                "with ordinal {ordinal}: only {count} present"
            )));
        }
        let device = cu::device::get(ordinal as i32).call("cuDeviceGet")?;
        let attr = |a| {
            // SAFETY: device is valid and a is a device attribute (no context needed).
            unsafe { cu::device::get_attribute(device, a) }
                .map_err(|e| device_error("cuDeviceGetAttribute", e.0))
        };
        use sys::CUdevice_attribute as A;
        let major = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let sm_count = attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32;
        let smem_per_sm = attr(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR)? as u32;
        let smem_reserved_per_block =
            attr(A::CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK)? as u32;
        if attr(A::CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH)? == 0 {
            return Err(Error::NoDevice(
                "that supports cooperative launches (needed to keep every block resident)".into(),
            ));
        }
        let mut driver_version = 0;
        // SAFETY: valid out-pointer.
        unsafe { sys::cuDriverGetVersion(&mut driver_version) }
            .result()
            .call("cuDriverGetVersion")?;
        check_driver_version(driver_version)?;
        let name = cu::device::get_name(device).call("cuDeviceGetName")?;
        let arch = (major * 10 + minor) as u32;
        if arch < 70 {
            return Err(Error::NoDevice(format!(
                "of compute capability 7.0 or newer: {name} is {major}.{minor}"
            )));
        }
        Ok(Probed {
            device,
            ordinal,
            name,
            sm_count,
            arch,
            driver_version,
            smem_per_sm,
            smem_reserved_per_block,
        })
    }

    /// The GPU's context, from which its memory, streams and modules are made; an error on the
    /// CPU backend, which has none.
    pub(crate) fn context(&self) -> Result<&Context> {
        match &self.place {
            Place::Cuda(ctx) => Ok(ctx),
            Place::Host(_) => Err(Error::Unsupported(
                "a CUDA context on the CPU backend (this needs Backend::Gpu)".into(),
            )),
        }
    }

    /// Free and total device memory in bytes.
    pub fn memory_info(&self) -> Result<(usize, usize)> {
        self.context()?.bind()?;
        cu::mem_get_info().call("cuMemGetInfo")
    }

    /// Sets CUDA's device-malloc heap limit (`malloc` in kernels) of this GPU's context. Only
    /// before any kernel that uses it runs: the limit cannot change beside a running kernel.
    pub fn set_malloc_heap_size(&self, bytes: usize) -> Result<()> {
        self.context()?.bind()?;
        // SAFETY: the context is current; the limit is a plain value.
        unsafe { sys::cuCtxSetLimit(sys::CUlimit::CU_LIMIT_MALLOC_HEAP_SIZE, bytes) }
            .result()
            .call("cuCtxSetLimit(CU_LIMIT_MALLOC_HEAP_SIZE)")
    }

    /// Keeps the primary context alive until the process ends: for a kernel that never ends,
    /// whose context must outlive every handle (releasing the last would wait for it).
    pub(crate) fn keep_context(&self) {
        if let Place::Cuda(ctx) = &self.place {
            ctx.leak();
        }
    }
}

/// The oldest driver API grosr calls into: `cuFuncLoad` (every build preloads its kernels)
/// came with CUDA 12.4, the graph API's `_v2` calls with 12.3. cudarc loads a symbol at its
/// first call and panics when the driver lacks it, so an older driver is refused up front.
pub(crate) const MIN_DRIVER_VERSION: i32 = 12040;

/// An error saying what to install when `version` (`cuDriverGetVersion`) is older than
/// [`MIN_DRIVER_VERSION`].
pub(crate) fn check_driver_version(version: i32) -> Result<()> {
    if version >= MIN_DRIVER_VERSION {
        return Ok(());
    }
    Err(Error::Unsupported(format!(
        "the NVIDIA driver supports CUDA {}.{}, and grosr needs CUDA 12.4 or newer: install \
         driver 550 or newer (without a GPU, GROSR_BACKEND=cpu runs tasks with Rust bodies on \
         host threads)",
        version / 1000,
        version % 1000 / 10
    )))
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("ordinal", &self.ordinal)
            .field("name", &self.name)
            .field("sm_count", &self.sm_count)
            .field("arch", &self.arch)
            .field("driver_version", &self.driver_version)
            .field("smem_per_sm", &self.smem_per_sm)
            .field("smem_reserved_per_block", &self.smem_reserved_per_block)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A driver of CUDA 12.0 to 12.3 (525 to 545) loads, but lacks `cuFuncLoad`, which every
    /// build calls: cudarc would panic ("Missing symbol cuFuncLoad"). It is an error instead.
    #[test]
    fn a_driver_older_than_cuda_12_4_is_an_error_that_says_what_to_install() {
        for old in [12000, 12020, 12030] {
            let e = check_driver_version(old).unwrap_err().to_string();
            assert!(e.contains("driver 550 or newer"), "{old}: {e}");
            assert!(e.contains(&format!("CUDA 12.{}", old % 1000 / 10)), "{e}");
        }
        for new in [12040, 12080, 13000] {
            check_driver_version(new).unwrap();
        }
    }
}
