//! Device memory, allocated, copied and freed in stream order by copies (never kernels).

use std::time::Duration;

use cudarc::driver::{result as cu, sys};

use super::context::Context;
use super::stream::poll_stream;
use crate::error::{CudaContext as _, Error, Result};

/// How long a copy may take before it counts as stuck.
const DEVICE_COPY_TIMEOUT: Duration = Duration::from_secs(60);

/// Device memory from the stream-ordered allocator, zeroed at allocation.
pub struct DeviceMem {
    ptr: u64,
    len: usize,
    ctx: Context,
}

impl DeviceMem {
    /// Allocates `len` zeroed bytes of device memory in `ctx`.
    pub fn zeroed(ctx: &Context, len: usize) -> Result<DeviceMem> {
        ctx.free_finished();
        let ptr = ctx.on_copy_stream(|stream| alloc_on(stream, len, true))?;
        Ok(DeviceMem {
            ptr,
            len,
            ctx: ctx.clone(),
        })
    }
    /// Allocates `len` bytes of device memory whose contents are undefined (the device heap, and
    /// the runtime's device block: kernels of the module clear what must start at zero).
    pub fn uninit(ctx: &Context, len: usize) -> Result<DeviceMem> {
        ctx.free_finished();
        let ptr = ctx.on_copy_stream(|stream| alloc_on(stream, len, false))?;
        Ok(DeviceMem {
            ptr,
            len,
            ctx: ctx.clone(),
        })
    }
    /// Allocates device memory in `ctx` holding a copy of `data`.
    pub fn from_slice<T: bytemuck::Pod>(ctx: &Context, data: &[T]) -> Result<DeviceMem> {
        let mem = DeviceMem::zeroed(ctx, std::mem::size_of_val(data))?;
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
    /// The context the memory belongs to.
    pub fn context(&self) -> &Context {
        &self.ctx
    }
    /// Copies the first `out.len()` elements back to the host.
    pub fn read<T: bytemuck::Pod>(&self, out: &mut [T]) -> Result<()> {
        self.read_at(0, out)
    }
    /// Copies `out.len()` elements starting `offset` bytes in back to the host.
    pub fn read_at<T: bytemuck::Pod>(&self, offset: usize, out: &mut [T]) -> Result<()> {
        check_range(offset, std::mem::size_of_val(out), self.len, "read")?;
        // SAFETY: [offset, offset + size_of_val(out)) lies inside this allocation (checked).
        unsafe { read_device(&self.ctx, self.ptr + offset as u64, out) }
    }
    /// Copies `data` to the start of the buffer.
    pub fn write<T: bytemuck::Pod>(&self, data: &[T]) -> Result<()> {
        self.write_at(0, data)
    }
    /// Copies `data` into the buffer starting `offset` bytes in.
    pub fn write_at<T: bytemuck::Pod>(&self, offset: usize, data: &[T]) -> Result<()> {
        check_range(offset, std::mem::size_of_val(data), self.len, "write")?;
        // SAFETY: [offset, offset + size_of_val(data)) lies inside this allocation (checked).
        unsafe { write_device(&self.ctx, self.ptr + offset as u64, data) }
    }
}

impl Drop for DeviceMem {
    fn drop(&mut self) {
        // Once the jobs submitted before this drop have finished (at once if none runs).
        self.ctx.free_device(self.ptr);
    }
}

impl std::fmt::Debug for DeviceMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceMem")
            .field("ptr", &format_args!("{:#x}", self.ptr))
            .field("len", &self.len)
            .field("ordinal", &self.ctx.ordinal())
            .finish()
    }
}

/// An error unless `len` bytes from `offset` lie inside a buffer of `size` bytes (an offset
/// near `usize::MAX` must not wrap around).
fn check_range(offset: usize, len: usize, size: usize, what: &str) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::Config(format!(
            "{what} of {len} bytes at offset {offset} past the end of a {size}-byte device buffer"
        ))),
    }
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

/// Waits for a copy stream (copies), at most `DEVICE_COPY_TIMEOUT`.
/// Queries back to back first (small copies), then every 20 µs: each query is a driver call,
/// and many threads querying without pause queue on the driver's lock.
fn wait_copy(stream: sys::CUstream, what: &'static str) -> Result<()> {
    poll_stream(stream, DEVICE_COPY_TIMEOUT, what, 100, || {
        std::thread::sleep(Duration::from_micros(20))
    })
}

/// Copies `data` to device address `dst` of `ctx` (a module global, say) and waits.
///
/// # Safety
/// `dst` must be valid device memory of `ctx` of at least `size_of_val(data)` bytes that no
/// kernel accesses concurrently in a conflicting way.
pub(crate) unsafe fn write_device<T: bytemuck::Pod>(
    ctx: &Context,
    dst: u64,
    data: &[T],
) -> Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    ctx.on_copy_stream(|stream| {
        // SAFETY: the caller vouches for dst; we wait before `data` can be dropped.
        unsafe { cu::memcpy_htod_async(dst, data, stream) }.call("cuMemcpyHtoDAsync")?;
        wait_copy(stream, "a host-to-device copy")
    })
}

/// Copies `out.len()` elements from device address `src` of `ctx` to the host and waits.
///
/// # Safety
/// `src` must point to at least `size_of_val(out)` bytes of device memory of `ctx`.
pub(crate) unsafe fn read_device<T: bytemuck::Pod>(
    ctx: &Context,
    src: u64,
    out: &mut [T],
) -> Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    ctx.on_copy_stream(|stream| {
        // SAFETY: the caller vouches for the source; we wait for the copy before `out` is used.
        unsafe { cu::memcpy_dtoh_async(out, src, stream) }.call("cuMemcpyDtoHAsync")?;
        wait_copy(stream, "a device-to-host copy")
    })
}

#[cfg(test)]
mod tests {
    use super::check_range;

    #[test]
    fn ranges_past_the_end_are_refused_without_wrapping() {
        assert!(check_range(0, 16, 16, "read").is_ok());
        assert!(check_range(16, 0, 16, "read").is_ok());
        assert!(check_range(8, 16, 16, "read").is_err());
        assert!(check_range(17, 0, 16, "write").is_err());
        assert!(check_range(usize::MAX, 2, 16, "write").is_err());
    }
}
