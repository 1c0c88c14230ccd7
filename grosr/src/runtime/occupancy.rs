//! How many scheduler blocks fit on an SM, and the shared-memory carveout that decides it.

use cudarc::driver::result as cu;

use crate::driver::Gpu;
use crate::error::{CudaContext as _, Result};
use crate::layout::BLOCK_THREADS;

/// Resident scheduler blocks per SM (the occupancy API), after asking the driver to give the
/// scheduler's SMs only the shared memory that many blocks need and the rest to L1 (its own
/// choice splits the storage about evenly): worker warps spill registers and keep records in
/// local memory, which L1 caches. H200, session 10, 1M spawned tasks, fan-out 8: 4810 and 4842
/// M/s with the computed carveout (27%) against 4772 and 4766 with the driver's choice; 3658
/// and 3709 with 100% (all shared). `forced` ([`Tuning::smem_carveout`](super::Tuning::smem_carveout), percent) overrides it.
/// Should fewer blocks fit with the computed carveout, the driver's choice is restored.
pub(super) fn occupancy_preferring_l1(
    scheduler: cudarc::driver::sys::CUfunction,
    gpu: &Gpu,
    forced: Option<u8>,
) -> Result<u32> {
    use cudarc::driver::sys::CUfunction_attribute as F;
    // SAFETY (all calls below): the function exists in the loaded module; attributes are ints.
    let set = |pct: i32| {
        unsafe {
            cu::function::set_function_attribute(
                scheduler,
                F::CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT,
                pct,
            )
        }
        .call("cuFuncSetAttribute(PREFERRED_SHARED_MEMORY_CARVEOUT)")
    };
    let occupancy = || {
        unsafe {
            cu::occupancy::max_active_block_per_multiprocessor(scheduler, BLOCK_THREADS as i32, 0)
        }
        .call("cuOccupancyMaxActiveBlocksPerMultiprocessor")
        .map(|b| b as u32)
    };
    let blocks = occupancy()?;
    let pct = match forced {
        Some(pct) => pct.into(),
        None if blocks == 0 || gpu.smem_per_sm == 0 => return Ok(blocks),
        None => {
            let static_smem = unsafe {
                cu::function::get_function_attribute(
                    scheduler,
                    F::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
                )
            }
            .call("cuFuncGetAttribute(SHARED_SIZE_BYTES)")? as u64;
            let need = blocks as u64 * (static_smem + gpu.smem_reserved_per_block as u64);
            (need * 100).div_ceil(gpu.smem_per_sm as u64).min(100) as i32
        }
    };
    set(pct)?;
    let now = occupancy()?;
    if now < blocks && forced.is_none() {
        set(-1)?; // the driver's own choice again: occupancy first
        return occupancy();
    }
    Ok(now)
}
