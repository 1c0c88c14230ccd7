//! The driver's JIT linker, for relocatable CUBINs that need static device libraries.

use std::ffi::{CStr, CString, c_char, c_uint, c_void};
use std::path::Path;

use cudarc::driver::sys;

use super::context::Context;
use crate::error::{Error, Result, result_name};

/// Links a relocatable CUBIN (NVRTC's `-rdc=true` output) with static device libraries (say the
/// toolkit's `libcudadevrt.a`) with the driver's JIT linker (`cuLinkCreate` ... `cuLinkComplete`)
/// and returns the linked image, ready for [`Module::load`](super::Module::load) in `ctx`.
/// Failures are [`Error::Unsupported`] naming the step and the linker's log.
pub fn link(ctx: &Context, cubin: &[u8], libraries: &[&Path]) -> Result<Vec<u8>> {
    ctx.bind()?;
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
    .map_err(|e| Error::Unsupported(format!("cuLinkCreate failed: {}", result_name(e.0))))?;
    let log = |buf: &[u8]| {
        // SAFETY: the driver NUL-terminates its logs inside the buffer (zeroed before).
        let text = unsafe { CStr::from_ptr(buf.as_ptr() as *const c_char) };
        text.to_string_lossy().trim_end().to_string()
    };
    let result = (|| -> Result<Vec<u8>> {
        let fail = |step: String, e: cudarc::driver::DriverError| {
            let mut msg = format!("{step} failed: {}", result_name(e.0));
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
