//! The IRQL and critical regions: `KeGetCurrentIrql`, `KeEnterCriticalRegion`,
//! `KeLeaveCriticalRegion`.
//!
//! **Where its state lives:** per thread, in `frames.rs` (the thread's IRQL and critical-region
//! depth); nothing in `State`.

use super::APC;
use crate::kernel::{Void, api_call};

// ==== kernel services ============================================================================

#[unsafe(no_mangle)]
unsafe extern "system" fn KeGetCurrentIrql() -> u8 {
    crate::kernel::current_irql()
}

#[unsafe(no_mangle)]
unsafe extern "system" fn KeEnterCriticalRegion() {
    api_call("KeEnterCriticalRegion", APC, String::new, |_| {
        crate::kernel::set_critical_regions(crate::kernel::critical_regions() + 1);
        Void
    });
}

#[unsafe(no_mangle)]
unsafe extern "system" fn KeLeaveCriticalRegion() {
    api_call("KeLeaveCriticalRegion", APC, String::new, |k| {
        match crate::kernel::critical_regions().checked_sub(1) {
            Some(depth) => {
                crate::kernel::set_critical_regions(depth);
            }
            None => k.violation(
                "KeLeaveCriticalRegion (FsRtlLeaveFileSystem) without a matching enter".into(),
            ),
        }
        Void
    });
}

signatures! {
    ss::KeGetCurrentIrql();
}
