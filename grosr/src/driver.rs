//! The few CUDA driver objects grosr needs, as RAII types over cudarc's `result` layer.
//!
//! Every driver call's result is checked and named in the error. Drops ignore failures: they run
//! when the context may already be faulted, and there is nothing left to recover then.

use std::ffi::{CStr, CString, c_char, c_uint, c_void};
use std::path::Path;
use std::time::{Duration, Instant};

use cudarc::driver::{result as cu, sys};

use crate::copy_streams::on_copy_stream;
use crate::error::{CudaContext as _, Error, Result};

/// One GPU with its primary context made current on the calling thread.
pub struct Gpu {
    pub(crate) device: sys::CUdevice,
    pub(crate) ctx: sys::CUcontext,
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

// SAFETY: a CUcontext may be made current on any thread; Gpu only holds handles.
unsafe impl Send for Gpu {}
// SAFETY: as above; all methods take &self and bind the context before each call.
unsafe impl Sync for Gpu {}

impl Gpu {
    /// Loads the driver, initialises it and retains device `ordinal`'s primary context.
    pub fn open(ordinal: usize) -> Result<Gpu> {
        // SAFETY: only tries to dlopen libcuda under the names cudarc uses.
        if !unsafe { sys::is_culib_present() } {
            return Err(Error::NoDriver);
        }
        cu::init().map_err(|e| match crate::error::driver_error_name(e).as_str() {
            "CUDA_ERROR_NO_DEVICE" => {
                Error::NoDevice("is visible to the driver (check nvidia-smi)".into())
            }
            code => Error::Cuda {
                call: "cuInit",
                code: code.into(),
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
        // SAFETY: device is valid.
        let ctx = unsafe { cu::primary_ctx::retain(device) }.map_err(|e| {
            let code = crate::error::driver_error_name(e);
            if is_sticky(&code) {
                Error::DeviceFault(format!(
                    "{code}: an earlier fault left this process's CUDA state unusable; CUDA recovers \
                     from such faults only in a new process"
                ))
            } else {
                Error::Cuda { call: "cuDevicePrimaryCtxRetain", code }
            }
        })?;
        // SAFETY: ctx was just retained.
        unsafe { cu::ctx::set_current(ctx) }.call("cuCtxSetCurrent")?;
        let attr = |a| {
            // SAFETY: device is valid and a is a device attribute.
            unsafe { cu::device::get_attribute(device, a) }.call("cuDeviceGetAttribute")
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
        let name = cu::device::get_name(device).call("cuDeviceGetName")?;
        let arch = (major * 10 + minor) as u32;
        if arch < 70 {
            return Err(Error::NoDevice(format!(
                "of compute capability 7.0 or newer: {name} is {major}.{minor}"
            )));
        }
        Ok(Gpu {
            device,
            ctx,
            ordinal,
            name,
            sm_count,
            arch,
            driver_version,
            smem_per_sm,
            smem_reserved_per_block,
        })
    }

    /// Makes this GPU's context current on the calling thread.
    pub fn bind(&self) -> Result<()> {
        // SAFETY: ctx is retained for as long as self lives.
        unsafe { cu::ctx::set_current(self.ctx) }.call("cuCtxSetCurrent")
    }

    /// Free and total device memory in bytes.
    pub fn memory_info(&self) -> Result<(usize, usize)> {
        self.bind()?;
        cu::mem_get_info().call("cuMemGetInfo")
    }

    /// Retains the primary context once more, never to be released: for a kernel that never
    /// ends, whose context must outlive every handle (releasing the last would wait for it).
    pub(crate) fn keep_context(&self) {
        // SAFETY: a retain with no matching release; the context lives until the process ends.
        let _ = unsafe { cu::primary_ctx::retain(self.device) };
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // SAFETY: balances the retain in open.
        let _ = unsafe { cu::primary_ctx::release(self.device) };
    }
}

/// Errors after which CUDA refuses all further work in this process.
pub(crate) fn is_sticky(code: &str) -> bool {
    matches!(
        code,
        "CUDA_ERROR_LAUNCH_FAILED"
            | "CUDA_ERROR_ILLEGAL_ADDRESS"
            | "CUDA_ERROR_ILLEGAL_INSTRUCTION"
            | "CUDA_ERROR_MISALIGNED_ADDRESS"
            | "CUDA_ERROR_INVALID_ADDRESS_SPACE"
            | "CUDA_ERROR_INVALID_PC"
            | "CUDA_ERROR_HARDWARE_STACK_ERROR"
            | "CUDA_ERROR_ASSERT"
            | "CUDA_ERROR_ECC_UNCORRECTABLE"
    )
}

/// Page-locked host memory mapped into the GPU's address space (never Unified Memory).
pub struct MappedMem {
    host: *mut u8,
    dev: u64,
    len: usize,
}

// SAFETY: the memory is plain bytes shared with the GPU; access goes through atomics or is
// synchronised by the submit protocol (ring.rs).
unsafe impl Send for MappedMem {}
// SAFETY: as above.
unsafe impl Sync for MappedMem {}

impl MappedMem {
    /// Allocates `len` zeroed bytes, cached on the host (not write-combined), mapped for the GPU.
    pub fn new(len: usize) -> Result<MappedMem> {
        let flags = sys::CU_MEMHOSTALLOC_DEVICEMAP | sys::CU_MEMHOSTALLOC_PORTABLE;
        // SAFETY: a fresh allocation; zeroed below before use.
        let host = unsafe { cu::malloc_host(len.max(1), flags) }.call("cuMemHostAlloc")? as *mut u8;
        // SAFETY: host points to len bytes we own.
        unsafe { std::ptr::write_bytes(host, 0, len) };
        let mut dev = 0;
        // SAFETY: host was allocated with DEVICEMAP.
        let r =
            unsafe { sys::cuMemHostGetDevicePointer_v2(&mut dev, host as *mut c_void, 0) }.result();
        if let Err(e) = r {
            // SAFETY: host came from malloc_host.
            let _ = unsafe { cu::free_host(host as *mut c_void) };
            return Err(e).call("cuMemHostGetDevicePointer");
        }
        Ok(MappedMem { host, dev, len })
    }
    /// The host address.
    pub fn host(&self) -> *mut u8 {
        self.host
    }
    /// The device address of the same bytes.
    pub fn device(&self) -> u64 {
        self.dev
    }
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for MappedMem {
    fn drop(&mut self) {
        // SAFETY: host came from malloc_host and is freed once.
        let _ = unsafe { cu::free_host(self.host as *mut c_void) };
    }
}

/// The per-thread default stream. With no scheduler running, device memory is allocated, copied
/// and freed in stream order on it: `cuMemAlloc`/`cuMemFree` synchronise the whole device, which
/// would wait forever for the persistent scheduler kernel. While one runs, the copy streams of
/// crate::copy_streams take its place.
pub(crate) fn per_thread_stream() -> sys::CUstream {
    0x2 as sys::CUstream // CU_STREAM_PER_THREAD
}

/// Waits for a copy stream (copies), at most `DEVICE_COPY_TIMEOUT`.
/// Queries back to back first (small copies), then every 20 µs: each query is a driver call,
/// and many threads querying without pause queue on the driver's lock.
fn wait_copy(stream: sys::CUstream, what: &'static str) -> Result<()> {
    poll_stream(stream, DEVICE_COPY_TIMEOUT, what, 100, || {
        std::thread::sleep(Duration::from_micros(20))
    })
}

/// `Ok(true)` once all of `stream`'s work is done, `Ok(false)` while some runs, `Err` on a fault.
pub(crate) fn query_stream(stream: sys::CUstream) -> Result<bool> {
    // SAFETY: the stream is live (or the per-thread default stream).
    match unsafe { sys::cuStreamQuery(stream) } {
        sys::CUresult::CUDA_SUCCESS => Ok(true),
        sys::CUresult::CUDA_ERROR_NOT_READY => Ok(false),
        e => Err(e.result().call("cuStreamQuery").unwrap_err()),
    }
}

/// Polls `stream` until its work is done, at most `timeout`, so a hang cannot block forever.
/// Spins first (short kernels), then gives the core away. No sleeping: the baselines'
/// launch-and-wait times go through here.
fn wait_stream(stream: sys::CUstream, timeout: Duration, what: &'static str) -> Result<()> {
    poll_stream(stream, timeout, what, 1000, std::thread::yield_now)
}

/// Queries `stream` until its work is done: `spin` queries back to back, then `pause()` between
/// queries; gives up after `timeout`.
fn poll_stream(
    stream: sys::CUstream,
    timeout: Duration,
    what: &'static str,
    spin: u32,
    pause: impl Fn(),
) -> Result<()> {
    let start = Instant::now();
    let mut turns = 0u32;
    while !query_stream(stream)? {
        turns = turns.saturating_add(1);
        if turns > spin {
            if start.elapsed() > timeout {
                return Err(Error::Timeout(timeout, what));
            }
            pause();
        }
    }
    Ok(())
}

const DEVICE_COPY_TIMEOUT: Duration = Duration::from_secs(60);

/// Device memory from the stream-ordered allocator, zeroed at allocation.
pub struct DeviceMem {
    ptr: u64,
    len: usize,
}

impl DeviceMem {
    /// Allocates `len` zeroed bytes of device memory.
    pub fn zeroed(len: usize) -> Result<DeviceMem> {
        let ptr = on_copy_stream(|stream| Self::alloc_on(stream, len, true))?;
        Ok(DeviceMem { ptr, len })
    }
    /// Allocates `len` bytes of device memory whose contents are undefined (the device heap's
    /// arena: clearing gigabytes by copies would cost the heap's whole init time).
    pub(crate) fn uninit(len: usize) -> Result<DeviceMem> {
        let ptr = on_copy_stream(|stream| Self::alloc_on(stream, len, false))?;
        Ok(DeviceMem { ptr, len })
    }
    /// Allocates `len` bytes on `stream` (zeroed if `zero`) and waits. On failure the memory is
    /// freed right here on the same stream: a `DeviceMem` dropped while the caller holds a copy
    /// stream would ask for a copy stream again.
    fn alloc_on(stream: sys::CUstream, len: usize, zero: bool) -> Result<u64> {
        // SAFETY: a fresh stream-ordered allocation, never read before it is written.
        let ptr = unsafe { cu::malloc_async(stream, len.max(1)) }.call("cuMemAllocAsync")?;
        let ready = if zero {
            clear_on(ptr, len, stream)
        } else {
            wait_copy(stream, "a device allocation")
        };
        if let Err(e) = ready {
            // SAFETY: ptr came from malloc_async just above and is freed once.
            let _ = unsafe { cu::free_async(ptr, stream) };
            return Err(e);
        }
        Ok(ptr)
    }
    /// Allocates device memory holding a copy of `data`.
    pub fn from_slice<T: bytemuck::Pod>(data: &[T]) -> Result<DeviceMem> {
        let mem = DeviceMem::zeroed(std::mem::size_of_val(data))?;
        mem.write(data)?;
        Ok(mem)
    }
    /// The device address.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Copies the first `out.len()` elements back to the host.
    pub fn read<T: bytemuck::Pod>(&self, out: &mut [T]) -> Result<()> {
        self.read_at(0, out)
    }
    /// Copies `out.len()` elements starting `offset` bytes in back to the host.
    pub fn read_at<T: bytemuck::Pod>(&self, offset: usize, out: &mut [T]) -> Result<()> {
        if offset + std::mem::size_of_val(out) > self.len {
            return Err(Error::Config("read past the end of a device buffer".into()));
        }
        // SAFETY: bounds checked above.
        unsafe { read_device(self.ptr + offset as u64, out) }
    }
    /// Copies `data` to the start of the buffer.
    pub fn write<T: bytemuck::Pod>(&self, data: &[T]) -> Result<()> {
        self.write_at(0, data)
    }
    /// Copies `data` into the buffer starting `offset` bytes in.
    pub fn write_at<T: bytemuck::Pod>(&self, offset: usize, data: &[T]) -> Result<()> {
        if offset + std::mem::size_of_val(data) > self.len {
            return Err(Error::Config(
                "write past the end of a device buffer".into(),
            ));
        }
        if data.is_empty() {
            return Ok(());
        }
        // SAFETY: bounds checked above.
        unsafe { write_device(self.ptr + offset as u64, data) }
    }
    /// Sets every byte to zero. By copies from zeroed host memory, not cuMemset: a memset is a
    /// kernel, and no kernel can start while the scheduler holds every SM; copies use the copy
    /// engines.
    pub fn clear(&self) -> Result<()> {
        on_copy_stream(|stream| clear_on(self.ptr, self.len, stream))
    }
}

/// Zeroes `len` bytes at device address `ptr` by copies on `stream`, and waits.
fn clear_on(ptr: u64, len: usize, stream: sys::CUstream) -> Result<()> {
    const CHUNK: usize = 16 << 20;
    let zeros = vec![0u8; len.min(CHUNK)];
    for start in (0..len).step_by(CHUNK) {
        let n = CHUNK.min(len - start);
        // SAFETY: [start, start + n) lies inside the allocation (the caller's); we wait before
        // `zeros` drops.
        unsafe { cu::memcpy_htod_async(ptr + start as u64, &zeros[..n], stream) }
            .call("cuMemcpyHtoDAsync")?;
    }
    wait_copy(stream, "zeroing device memory")
}

/// Copies `data` to device address `dst` (a module global, say) and waits for the copy.
///
/// # Safety
/// `dst` must be valid device memory of at least `size_of_val(data)` bytes in the current
/// context that no kernel accesses concurrently in a conflicting way.
pub(crate) unsafe fn write_device<T: bytemuck::Pod>(dst: u64, data: &[T]) -> Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    on_copy_stream(|stream| {
        // SAFETY: the caller vouches for dst; we wait before `data` can be dropped.
        unsafe { cu::memcpy_htod_async(dst, data, stream) }.call("cuMemcpyHtoDAsync")?;
        wait_copy(stream, "a host-to-device copy")
    })
}

impl Drop for DeviceMem {
    fn drop(&mut self) {
        let _ = on_copy_stream(|stream| {
            // SAFETY: ptr came from malloc_async and is freed once, in stream order.
            unsafe { cu::free_async(self.ptr, stream) }.call("cuMemFreeAsync")
        });
    }
}

/// A non-blocking stream (it never synchronises with the legacy default stream).
pub struct Stream(pub(crate) sys::CUstream);

// SAFETY: stream handles may be used from any thread with the context current.
unsafe impl Send for Stream {}
// SAFETY: as above.
unsafe impl Sync for Stream {}

impl Stream {
    /// Creates a stream.
    pub fn new() -> Result<Stream> {
        cu::stream::create(cu::stream::StreamKind::NonBlocking)
            .call("cuStreamCreate")
            .map(Stream)
    }
    /// `Ok(true)` once all work is done, `Ok(false)` while some runs, `Err` if it faulted.
    pub fn query(&self) -> Result<bool> {
        query_stream(self.0)
    }
    /// Waits for the stream's work, at most `timeout` (polls, so a hang cannot block forever).
    pub fn wait(&self, timeout: Duration, what: &'static str) -> Result<()> {
        wait_stream(self.0, timeout, what)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: destroyed once.
        let _ = unsafe { cu::stream::destroy(self.0) };
    }
}

/// A loaded CUBIN.
pub struct Module(sys::CUmodule);

// SAFETY: module handles may be used from any thread with the context current.
unsafe impl Send for Module {}
// SAFETY: as above.
unsafe impl Sync for Module {}

impl Module {
    /// Loads a CUBIN image.
    pub fn load(image: &[u8]) -> Result<Module> {
        // cuModuleLoadData wants a pointer to the image; keep a NUL-terminated copy to be safe.
        let mut owned = image.to_vec();
        owned.push(0);
        // SAFETY: owned is a valid image that outlives the call.
        unsafe { cu::module::load_data(owned.as_ptr() as *const c_void) }
            .call("cuModuleLoadData")
            .map(Module)
    }
    /// A kernel of the module by its (extern "C") name.
    pub fn function(&self, name: &str) -> Result<sys::CUfunction> {
        let c =
            CString::new(name).map_err(|_| Error::Config(format!("bad kernel name {name:?}")))?;
        // SAFETY: the module is live.
        unsafe { cu::module::get_function(self.0, c) }.call("cuModuleGetFunction")
    }
    /// The device address and size of a `__device__` variable.
    pub fn global(&self, name: &str) -> Result<(u64, usize)> {
        let c =
            CString::new(name).map_err(|_| Error::Config(format!("bad symbol name {name:?}")))?;
        // SAFETY: the module is loaded and not unloaded while self lives.
        let (ptr, size) = unsafe { cu::module::get_global(self.0, c) }.call("cuModuleGetGlobal")?;
        Ok((ptr, size))
    }

    /// Loads a kernel now. Under lazy loading (CUDA's default) a kernel would otherwise load
    /// at its first launch, which can wait for the running persistent kernel: forever.
    pub fn preload(&self, name: &str) -> Result<()> {
        let f = self.function(name)?;
        // SAFETY: f is a function of this live module.
        unsafe { sys::cuFuncLoad(f) }.result().call("cuFuncLoad")
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        // SAFETY: unloaded once.
        let _ = unsafe { cu::module::unload(self.0) };
    }
}

/// Links a relocatable CUBIN (NVRTC's `-rdc=true` output) with static device libraries (say the
/// toolkit's `libcudadevrt.a`) with the driver's JIT linker (`cuLinkCreate` ... `cuLinkComplete`)
/// and returns the linked image, ready for [`Module::load`]. Needs the GPU's context current.
/// Failures are [`Error::Unsupported`] naming the step and the linker's log.
pub fn link(cubin: &[u8], libraries: &[&Path]) -> Result<Vec<u8>> {
    use sys::CUjit_option as O;
    const LOG: usize = 16 << 10;
    let mut error_log = vec![0u8; LOG];
    let mut info_log = vec![0u8; LOG];
    let mut options = [
        O::CU_JIT_ERROR_LOG_BUFFER,
        O::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
        O::CU_JIT_INFO_LOG_BUFFER,
        O::CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
    ];
    // Size options are passed by value in the pointer slot (the driver API's convention).
    let mut values = [
        error_log.as_mut_ptr() as *mut c_void,
        LOG as *mut c_void,
        info_log.as_mut_ptr() as *mut c_void,
        LOG as *mut c_void,
    ];
    let mut state: sys::CUlinkState = std::ptr::null_mut();
    // SAFETY: options and values have equal lengths; the log buffers outlive the link state
    // (destroyed below, before they drop).
    unsafe {
        sys::cuLinkCreate_v2(
            options.len() as c_uint,
            options.as_mut_ptr(),
            values.as_mut_ptr(),
            &mut state,
        )
    }
    .result()
    .map_err(|e| {
        Error::Unsupported(format!(
            "cuLinkCreate failed: {}",
            crate::error::driver_error_name(e)
        ))
    })?;
    let log = |buf: &[u8]| {
        // SAFETY: the driver NUL-terminates its logs inside the buffer (zeroed before).
        let text = unsafe { CStr::from_ptr(buf.as_ptr() as *const c_char) };
        text.to_string_lossy().trim_end().to_string()
    };
    let result = (|| -> Result<Vec<u8>> {
        let fail = |step: String, e: cudarc::driver::DriverError| {
            let mut msg = format!("{step} failed: {}", crate::error::driver_error_name(e));
            let text = log(&error_log);
            if !text.is_empty() {
                msg.push_str(&format!(" ({text})"));
            }
            Error::Unsupported(msg)
        };
        let name = CString::new("grosr_rdc.cubin").expect("no NUL");
        let mut image = cubin.to_vec();
        // SAFETY: the image is a CUBIN that lives until the call returns (the linker copies it).
        unsafe {
            sys::cuLinkAddData_v2(
                state,
                sys::CUjitInputType::CU_JIT_INPUT_CUBIN,
                image.as_mut_ptr() as *mut c_void,
                image.len(),
                name.as_ptr(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        }
        .result()
        .map_err(|e| fail("cuLinkAddData(CUBIN)".into(), e))?;
        for lib in libraries {
            let path = CString::new(lib.as_os_str().as_encoded_bytes())
                .map_err(|_| Error::Config(format!("bad library path {}", lib.display())))?;
            // SAFETY: path is a NUL-terminated file name.
            unsafe {
                sys::cuLinkAddFile_v2(
                    state,
                    sys::CUjitInputType::CU_JIT_INPUT_LIBRARY,
                    path.as_ptr(),
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            }
            .result()
            .map_err(|e| fail(format!("cuLinkAddFile({})", lib.display()), e))?;
        }
        let mut out: *mut c_void = std::ptr::null_mut();
        let mut size = 0usize;
        // SAFETY: out-pointers to locals; the image they name belongs to `state`.
        unsafe { sys::cuLinkComplete(state, &mut out, &mut size) }
            .result()
            .map_err(|e| fail("cuLinkComplete".into(), e))?;
        if out.is_null() || size == 0 {
            return Err(Error::Unsupported(
                "cuLinkComplete returned an empty image".into(),
            ));
        }
        // SAFETY: the driver owns `size` bytes at `out` until cuLinkDestroy; copied before that.
        Ok(unsafe { std::slice::from_raw_parts(out as *const u8, size) }.to_vec())
    })();
    // SAFETY: created above, destroyed once; the linked image was copied out.
    let _ = unsafe { sys::cuLinkDestroy(state) };
    if std::env::var_os("GROSR_LINK_VERBOSE").is_some_and(|v| v == "1") {
        eprintln!("cuLink info log: {}", log(&info_log));
    }
    result
}

/// A CUDA graph and, once instantiated, its executable form; both destroyed on drop.
pub struct Graph {
    graph: sys::CUgraph,
    exec: sys::CUgraphExec,
}

// SAFETY: graph handles are plain identifiers usable from any thread with the context current.
unsafe impl Send for Graph {}

impl Graph {
    /// An empty graph.
    pub fn new() -> Result<Graph> {
        let mut graph: sys::CUgraph = std::ptr::null_mut();
        // SAFETY: out-pointer to a local.
        unsafe { sys::cuGraphCreate(&mut graph, 0) }
            .result()
            .call("cuGraphCreate")?;
        Ok(Graph {
            graph,
            exec: std::ptr::null_mut(),
        })
    }

    /// The raw graph, to add nodes to.
    pub fn raw(&self) -> sys::CUgraph {
        self.graph
    }

    /// Instantiates the graph (after every node and edge was added).
    pub fn instantiate(&mut self) -> Result<()> {
        let mut exec: sys::CUgraphExec = std::ptr::null_mut();
        // SAFETY: the graph is live; out-pointer to a local.
        unsafe { sys::cuGraphInstantiateWithFlags(&mut exec, self.graph, 0) }
            .result()
            .call("cuGraphInstantiate")?;
        self.exec = exec;
        Ok(())
    }

    /// Launches the instantiated graph on `stream`.
    ///
    /// # Safety
    /// `stream` must be a live stream of the graph's context.
    pub unsafe fn launch(&self, stream: sys::CUstream) -> Result<()> {
        if self.exec.is_null() {
            return Err(Error::Config("the CUDA graph was not instantiated".into()));
        }
        // SAFETY: exec is a live executable graph of this context; the caller's stream is live.
        unsafe { sys::cuGraphLaunch(self.exec, stream) }
            .result()
            .call("cuGraphLaunch")
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: each handle is destroyed once; failures cannot be acted on in a drop.
        unsafe {
            if !self.exec.is_null() {
                let _ = sys::cuGraphExecDestroy(self.exec);
            }
            let _ = sys::cuGraphDestroy(self.graph);
        }
    }
}

/// Adds a kernel node running `func` on `grid` blocks of `block` threads, after `deps`, to
/// `graph` (a [`Graph::raw`] or a body graph a conditional node owns).
///
/// # Safety
/// `graph` must be live and `deps` nodes of it; `args` must hold one pointer per kernel
/// parameter, to a value of its type (the driver copies the values while adding the node), and
/// what the kernel reads or writes through them must outlive every launch of the graph.
pub unsafe fn add_kernel_node(
    graph: sys::CUgraph,
    deps: &[sys::CUgraphNode],
    func: sys::CUfunction,
    grid: u32,
    block: u32,
    args: &mut [*mut c_void],
) -> Result<sys::CUgraphNode> {
    // SAFETY: a zeroed parameter block is valid (null kern/ctx/extra mean "use func").
    let mut params: sys::CUDA_KERNEL_NODE_PARAMS = unsafe { std::mem::zeroed() };
    params.func = func;
    (params.gridDimX, params.gridDimY, params.gridDimZ) = (grid, 1, 1);
    (params.blockDimX, params.blockDimY, params.blockDimZ) = (block, 1, 1);
    params.kernelParams = args.as_mut_ptr();
    let mut node: sys::CUgraphNode = std::ptr::null_mut();
    // SAFETY: the caller vouches for graph, deps and args (see above).
    unsafe { sys::cuGraphAddKernelNode_v2(&mut node, graph, deps.as_ptr(), deps.len(), &params) }
        .result()
        .call("cuGraphAddKernelNode")?;
    Ok(node)
}

/// Copies `out.len()` elements from device address `addr` to the host, on this thread's stream,
/// and waits for the copy.
///
/// # Safety
/// `addr` must point to at least `size_of_val(out)` bytes of device memory of the bound context.
pub(crate) unsafe fn read_device<T: bytemuck::Pod>(addr: u64, out: &mut [T]) -> Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    on_copy_stream(|stream| {
        // SAFETY: the caller vouches for the source; we wait for the copy before `out` is touched.
        unsafe { cu::memcpy_dtoh_async(out, addr, stream) }.call("cuMemcpyDtoHAsync")?;
        wait_copy(stream, "a device-to-host copy")
    })
}
