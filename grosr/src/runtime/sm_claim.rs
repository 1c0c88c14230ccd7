//! The SMs that this process's runtimes hold, per device.

use std::sync::Mutex;

use crate::error::{Error, Result};

/// SMs that the runtime of this process holds per device, so a second runtime is refused at
/// once instead of hanging beside the first (seen on an H200) or waiting for blocks that never
/// become resident.
static SM_CLAIMS: Mutex<Vec<(usize, u32)>> = Mutex::new(Vec::new());

pub(super) struct SmClaim {
    device: usize,
    sms: u32,
}

impl SmClaim {
    pub(super) fn new(device: usize, sms: u32, total: u32) -> Result<SmClaim> {
        let mut claims = SM_CLAIMS.lock().unwrap_or_else(|e| e.into_inner());
        let held: u32 = claims
            .iter()
            .filter(|(d, _)| *d == device)
            .map(|(_, s)| s)
            .sum();
        // One runtime per GPU per process: on an H200 a second, half-GPU runtime beside a
        // running first one hung (its build or first jobs; which driver call was not pinned
        // down), and the two would share one context's copy routing and memory.
        if held > 0 {
            return Err(Error::DoesNotFit(format!(
                "a grosr runtime of this process already runs on device {device} ({held} of its \
                 {total} SMs): one runtime per GPU per process; register every task type with \
                 that one, or drop it first"
            )));
        }
        if sms > total {
            return Err(Error::DoesNotFit(format!(
                "device {device} has {total} SMs, not {sms}"
            )));
        }
        claims.push((device, sms));
        Ok(SmClaim { device, sms })
    }
}

impl Drop for SmClaim {
    fn drop(&mut self) {
        let mut claims = SM_CLAIMS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = claims
            .iter()
            .position(|&(d, s)| d == self.device && s == self.sms)
        {
            claims.swap_remove(i);
        }
    }
}
