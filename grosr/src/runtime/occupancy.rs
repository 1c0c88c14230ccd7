//! How many scheduler blocks fit on an SM, and the shared-memory carveout that decides it.

use crate::driver::{Function, Gpu};
use crate::error::Result;
use crate::layout::BLOCK_THREADS;

/// Resident scheduler blocks per SM (the occupancy API), after asking the driver to give the
/// scheduler's SMs only the shared memory that many blocks need and the rest to L1 (its own
/// choice splits the storage about evenly): worker warps spill registers and keep records in
/// local memory, which L1 caches. H200, 1M spawned tasks, fan-out 8: 4810 and 4842
/// M/s with the computed carveout (27%) against 4772 and 4766 with the driver's choice; 3658
/// and 3709 with 100% (all shared). `forced` ([`Tuning::smem_carveout`](super::Tuning::smem_carveout), percent) overrides it.
/// Should fewer blocks fit with the computed carveout, the driver's choice is restored.
pub(super) fn occupancy_preferring_l1(
    scheduler: &Function,
    gpu: &Gpu,
    forced: Option<u8>,
) -> Result<u32> {
    let occupancy = || scheduler.occupancy(BLOCK_THREADS, 0);
    let blocks = occupancy()?;
    let pct = match forced {
        Some(pct) => pct.into(),
        None if blocks == 0 || gpu.smem_per_sm == 0 => return Ok(blocks),
        None => {
            let need = blocks as u64
                * (scheduler.static_shared_bytes()? + gpu.smem_reserved_per_block as u64);
            (need * 100).div_ceil(gpu.smem_per_sm as u64).min(100) as i32
        }
    };
    scheduler.set_carveout(pct)?;
    let now = occupancy()?;
    if now < blocks && forced.is_none() {
        scheduler.set_carveout(-1)?; // the driver's own choice again: occupancy first
        return occupancy();
    }
    Ok(now)
}
