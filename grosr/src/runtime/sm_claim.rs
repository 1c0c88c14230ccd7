//! The SMs that this process's runtimes hold, per device.

use std::sync::Mutex;

use crate::error::{Error, Result};

/// SMs that runtimes of this process hold per device, so a second runtime that cannot fit is
/// refused at once instead of waiting for blocks that will never become resident.
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
        if held + sms > total {
            return Err(Error::DoesNotFit(format!(
                "grosr runtimes of this process already occupy {held} of the {total} SMs of device {device}; \
                 this one needs {sms}: cap them with RuntimeBuilder::max_sms"
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
