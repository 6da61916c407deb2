//! Rundown protection: `ExInitializeRundownProtection`, `ExAcquireRundownProtection`,
//! `ExReleaseRundownProtection`, `ExWaitForRundownProtectionRelease`.
//!
//! **Where its state lives:** `State::rundowns` in `state.rs`, with the waits in `sync.rs`.

use std::sync::Arc;

use super::{APC, DISPATCH};
use crate::{
    kernel::{Kernel, Shown, Void, api_call},
    sync::HANG_TIMEOUT,
};

// ---- rundown protection --------------------------------------------------------------------------
//
// `EX_RUNDOWN_REF` guards something (a driver's unload) against users in flight: acquire before
// use, release after, and the owner's `ExWaitForRundownProtectionRelease` first makes every later
// acquire fail, then waits for the holders to go. The model keys a `HostRundown` by the
// structure's address.

type RundownRef = *mut windows_sys::Wdk::System::SystemServices::EX_RUNDOWN_REF;

/// The rundown record behind `runref`, or a finding if it was never initialized.
fn rundown_of(k: &Kernel, api: &str, runref: RundownRef) -> Option<Arc<crate::sync::HostRundown>> {
    let found = k.lock().rundowns.get(&(runref as usize)).cloned();
    if found.is_none() {
        k.violation(format!(
            "{api}: {runref:p} was never initialized with ExInitializeRundownProtection"
        ));
    }
    found
}

#[unsafe(no_mangle)]
unsafe extern "system" fn ExInitializeRundownProtection(runref: RundownRef) {
    api_call(
        "ExInitializeRundownProtection",
        DISPATCH,
        || format!("{runref:p}"),
        |k| {
            let mut state = k.lock();
            let busy = state
                .rundowns
                .get(&(runref as usize))
                .map_or(0, |r| r.holders());
            state.rundowns.insert(
                runref as usize,
                Arc::new(crate::sync::HostRundown::default()),
            );
            drop(state);
            if busy > 0 {
                k.violation(format!(
                    "ExInitializeRundownProtection: {runref:p} still has {busy} holder(s)"
                ));
            }
            Void
        },
    );
}

#[unsafe(no_mangle)]
unsafe extern "system" fn ExAcquireRundownProtection(runref: RundownRef) -> bool {
    api_call(
        "ExAcquireRundownProtection",
        DISPATCH,
        || format!("{runref:p}"),
        |k| {
            let acquired =
                rundown_of(k, "ExAcquireRundownProtection", runref).is_some_and(|r| r.acquire());
            Shown(acquired, if acquired { "TRUE" } else { "FALSE" }.into())
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn ExReleaseRundownProtection(runref: RundownRef) {
    api_call(
        "ExReleaseRundownProtection",
        DISPATCH,
        || format!("{runref:p}"),
        |k| {
            if let Some(r) = rundown_of(k, "ExReleaseRundownProtection", runref)
                && !r.release()
            {
                k.violation(format!(
                    "ExReleaseRundownProtection: {runref:p} has no holder to release"
                ));
            }
            Void
        },
    );
}

/// Traced when the wait starts (with the holders it waits for); returns when they are gone, or
/// reports a hang after `HANG_TIMEOUT`.
#[unsafe(no_mangle)]
unsafe extern "system" fn ExWaitForRundownProtectionRelease(runref: RundownRef) {
    let Some((rundown, holders)) = api_call(
        "ExWaitForRundownProtectionRelease",
        APC,
        || format!("{runref:p}"),
        |k| {
            let found = rundown_of(k, "ExWaitForRundownProtectionRelease", runref).map(|r| {
                let holders = r.begin_wait();
                (r, holders)
            });
            let shown = found
                .as_ref()
                .map_or_else(String::new, |(_, n)| format!("waiting for {n} holder(s)"));
            Shown(found, shown)
        },
    )
    .0
    else {
        return;
    };
    if holders > 0 {
        let left = rundown.wait(HANG_TIMEOUT);
        if left > 0 {
            crate::kernel::kernel().violation(format!(
                "ExWaitForRundownProtectionRelease: {left} holder(s) of {runref:p} never \
                 released it; the wait would never return"
            ));
        }
    }
}

signatures! {
    ss::ExInitializeRundownProtection(a);
    ss::ExAcquireRundownProtection(a);
    ss::ExReleaseRundownProtection(a);
    ss::ExWaitForRundownProtectionRelease(a);
}
