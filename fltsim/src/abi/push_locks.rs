//! Push locks: `FltInitializePushLock`, `FltDeletePushLock`, `FltAcquirePushLockExclusive`,
//! `FltAcquirePushLockShared`, `FltReleasePushLock`.
//!
//! **Where its state lives:** `State::push_locks` in `state.rs`, keyed by the caller's
//! `EX_PUSH_LOCK` address, each a `HostPushLock` (`sync.rs`) that holds its owners and waiters.

use std::sync::Arc;

use super::{APC, DISPATCH};
use crate::{
    kernel::{Kernel, Shown, Void, api_call},
    sync::{HostPushLock, LockMisuse},
};

fn push_lock(k: &Kernel, api: &str, lock: *const usize) -> Option<Arc<HostPushLock>> {
    let found = k.lock().push_locks.get(&(lock as usize)).cloned();
    if found.is_none() {
        k.violation(format!(
            "{api}: {lock:p} was not initialized with FltInitializePushLock"
        ));
    }
    found
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltInitializePushLock(pushlock: *mut usize) {
    api_call(
        "FltInitializePushLock",
        DISPATCH,
        || format!("{pushlock:p}"),
        |k| {
            k.lock()
                .push_locks
                .insert(pushlock as usize, Arc::new(HostPushLock::default()));
            Void
        },
    );
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltDeletePushLock(pushlock: *const usize) {
    api_call(
        "FltDeletePushLock",
        APC,
        || format!("{pushlock:p}"),
        |k| {
            if let Some(lock) = push_lock(k, "FltDeletePushLock", pushlock) {
                if lock.is_held() {
                    k.violation("FltDeletePushLock on a push lock that is still held".into());
                }
                k.lock().push_locks.remove(&(pushlock as usize));
            }
            Void
        },
    );
}

fn acquire(api: &'static str, pushlock: *mut usize, exclusive: bool) {
    let lock = api_call(
        api,
        APC,
        || format!("{pushlock:p}"),
        |k| Shown(push_lock(k, api, pushlock), String::new()),
    )
    .0;
    if let Some(lock) = lock
        && let Err(LockMisuse::Recursive | LockMisuse::NotHeld) =
            lock.acquire(crate::kernel::thread_id(), exclusive)
    {
        crate::kernel::kernel().violation(format!(
            "{api}: the thread already holds this push lock (a deadlock on Windows)"
        ));
    }
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltAcquirePushLockExclusive(pushlock: *mut usize) {
    acquire("FltAcquirePushLockExclusive", pushlock, true);
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltAcquirePushLockShared(pushlock: *mut usize) {
    acquire("FltAcquirePushLockShared", pushlock, false);
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltReleasePushLock(pushlock: *mut usize) {
    api_call(
        "FltReleasePushLock",
        APC,
        || format!("{pushlock:p}"),
        |k| {
            if let Some(lock) = push_lock(k, "FltReleasePushLock", pushlock)
                && lock.release(crate::kernel::thread_id()).is_err()
            {
                k.violation("FltReleasePushLock: the thread does not hold this push lock".into());
            }
            Void
        },
    );
}

signatures! {
    flt::FltInitializePushLock(a);
    flt::FltDeletePushLock(a);
    flt::FltAcquirePushLockExclusive(a);
    flt::FltAcquirePushLockShared(a);
    flt::FltReleasePushLock(a);
}
