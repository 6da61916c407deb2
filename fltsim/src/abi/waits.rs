//! Events, waits and delays: `KeInitializeEvent`, `KeSetEvent`, `KeClearEvent`,
//! `KeWaitForSingleObject`, `FltCancellableWaitForSingleObject`, `KeDelayExecutionThread`.
//!
//! **Where its state lives:** in the event (`sync.rs`) and the thread (`threads.rs`); the delays
//! `World::hold_delays` holds, in the model's options (`Options::hold_delays`, `state.rs`).

use std::{ffi::c_void, sync::Arc, time::Duration};

use windows_sys::{
    Wdk::{Foundation::KEVENT, Storage::FileSystem::Minifilters::FLT_CALLBACK_DATA},
    Win32::{
        Foundation::{
            NTSTATUS, STATUS_CANCELLED, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
            STATUS_THREAD_IS_TERMINATING, STATUS_TIMEOUT,
        },
        System::Kernel::EVENT_TYPE,
    },
};

use super::{APC, DISPATCH, PASSIVE, read_in};
use crate::{
    kernel::{Kernel, Shown, Void, api_call},
    status::NtStatus,
    sync::HostEvent,
};

fn event_of(k: &Kernel, api: &str, event: *const c_void) -> Option<Arc<HostEvent>> {
    let found = k.lock().events.get(&(event as usize)).cloned();
    if found.is_none() {
        k.violation(format!("{api}: {event:p} is not an initialized KEVENT"));
    }
    found
}

#[unsafe(no_mangle)]
unsafe extern "system" fn KeInitializeEvent(event: *mut KEVENT, r#type: EVENT_TYPE, state: bool) {
    api_call(
        "KeInitializeEvent",
        DISPATCH,
        || format!("{event:p}"),
        |k| {
            // SynchronizationEvent (1) resets when a wait is satisfied; NotificationEvent (0) does not.
            k.lock()
                .events
                .insert(event as usize, Arc::new(HostEvent::new(r#type == 1, state)));
            Void
        },
    );
}

#[unsafe(no_mangle)]
unsafe extern "system" fn KeSetEvent(event: *mut KEVENT, increment: i32, wait: bool) -> i32 {
    let _ = (increment, wait);
    api_call(
        "KeSetEvent",
        DISPATCH,
        || format!("{event:p}"),
        |k| {
            let previous = event_of(k, "KeSetEvent", event.cast()).is_some_and(|e| e.set());
            Shown(i32::from(previous), String::new())
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn KeClearEvent(event: *mut KEVENT) {
    api_call(
        "KeClearEvent",
        DISPATCH,
        || format!("{event:p}"),
        |k| {
            if let Some(e) = event_of(k, "KeClearEvent", event.cast()) {
                e.clear();
            }
            Void
        },
    );
}

#[unsafe(no_mangle)]
unsafe extern "system" fn KeWaitForSingleObject(
    object: *const c_void,
    waitreason: i32,
    waitmode: i8,
    alertable: bool,
    timeout: *const i64,
) -> NTSTATUS {
    let _ = (waitreason, waitmode, alertable);
    let interval = read_in(timeout);
    // A zero timeout (a poll) is allowed up to DISPATCH_LEVEL; a real wait needs <= APC_LEVEL.
    let max = if interval == Some(0) { DISPATCH } else { APC };
    let Some((event, duration)) = api_call(
        "KeWaitForSingleObject",
        max,
        || format!("{object:p}"),
        |k| {
            let event = event_of(k, "KeWaitForSingleObject", object);
            let (duration, shown) = tick_rounded(k, interval);
            // A wait for a system thread to end waits for whatever the thread waits for: a delay
            // held by World::hold_delays would never end, so the wait releases the hold (as
            // FltUnregisterFilter does for the work items it waits for).
            if super::system_threads::is_thread_object(k, object as usize) {
                release_delay_hold(k);
            }
            Shown(event.map(|e| (e, duration)), shown)
        },
    )
    .0
    else {
        return STATUS_INVALID_PARAMETER;
    };
    if event.wait(duration) {
        STATUS_SUCCESS
    } else {
        STATUS_TIMEOUT
    }
}

/// A relative wait timeout or delay, rounded up to the clock tick, and how the trace shows it
/// ("" for no timeout).
fn tick_rounded(k: &Kernel, interval: Option<i64>) -> (Option<Duration>, String) {
    let Some(interval) = interval else {
        return (None, String::new());
    };
    let tick = k.lock().options.clock_tick;
    let rounded = crate::threads::round_to_tick(relative_interval(interval), tick);
    (
        Some(rounded),
        format!("at most {}", crate::threads::describe_ticks(rounded, tick)),
    )
}

/// Lets every delay held by `World::hold_delays` go, and stops holding new ones.
pub(super) fn release_delay_hold(k: &Kernel) {
    let held = k.lock().options.hold_delays.take();
    if let Some((_, release)) = held {
        release.set();
    }
}

/// `FltCancellableWaitForSingleObject`: a wait on a `KEVENT` that the user's cancellation of
/// `callbackdata`'s I/O, or the thread's termination, ends early.
///
/// IRQL: `PASSIVE_LEVEL` with callback data (the page's Remarks: "if the `CallbackData` parameter
/// represents a valid filter manager IRP"), else `<= APC_LEVEL`. The model cannot cancel a
/// user's I/O or terminate a thread by itself, so those outcomes, and an early time-out, are
/// injected (`World::fail_nth_with`): only the documented ones, and only where they can happen
/// (`STATUS_TIMEOUT` needs a timeout, `STATUS_CANCELLED` callback data).
#[unsafe(no_mangle)]
unsafe extern "system" fn FltCancellableWaitForSingleObject(
    object: *const c_void,
    timeout: *const i64,
    callbackdata: *const FLT_CALLBACK_DATA,
) -> NTSTATUS {
    let interval = read_in(timeout);
    let max = if callbackdata.is_null() { APC } else { PASSIVE };
    let (event, injected) = api_call(
        "FltCancellableWaitForSingleObject",
        max,
        || format!("{object:p}, data {:#x}", callbackdata as usize),
        |k| {
            let event = event_of(k, "FltCancellableWaitForSingleObject", object);
            let injected = k
                .inject("FltCancellableWaitForSingleObject", STATUS_TIMEOUT)
                .filter(|&status| {
                    let possible = match status {
                        STATUS_TIMEOUT => interval.is_some(),
                        STATUS_CANCELLED => !callbackdata.is_null(),
                        STATUS_THREAD_IS_TERMINATING => true,
                        _ => false,
                    };
                    assert!(
                        possible,
                        "FltCancellableWaitForSingleObject cannot end with {} here (timeout {interval:?}, data {callbackdata:p})",
                        NtStatus(status)
                    );
                    possible
                });
            Shown((event, injected), String::new())
        },
    )
    .0;
    let Some(event) = event else {
        return STATUS_INVALID_PARAMETER;
    };
    if let Some(status) = injected {
        return status;
    }
    let duration = tick_rounded(&crate::kernel::kernel(), interval).0;
    if event.wait(duration) {
        STATUS_SUCCESS
    } else {
        STATUS_TIMEOUT
    }
}

/// A relative interval in 100 ns units (negative) as a duration; absolute times are treated as
/// "now".
fn relative_interval(interval: i64) -> Duration {
    if interval < 0 {
        Duration::from_nanos(interval.unsigned_abs().saturating_mul(100))
    } else {
        Duration::ZERO
    }
}

#[unsafe(no_mangle)]
unsafe extern "system" fn KeDelayExecutionThread(
    waitmode: i8,
    alertable: bool,
    interval: *const i64,
) -> NTSTATUS {
    let _ = (waitmode, alertable);
    let value = read_in(interval).unwrap_or(0);
    let (hold, k, duration) = api_call(
        "KeDelayExecutionThread",
        APC,
        || format!("{value}"),
        |k| {
            let hold = k.lock().options.hold_delays.clone();
            // The delay ends on a clock interrupt: at least the interval rounded up to a tick.
            let (duration, shown) = tick_rounded(k, Some(value));
            let shown = shown.replacen("at most ", "", 1);
            Shown((hold, Arc::clone(k), duration), shown)
        },
    )
    .0;
    match hold {
        // World::hold_delays: the delay lasts until the test (or an unregistration) releases it,
        // so that what happens "during the pause" is ordered by the test, not by the clock.
        Some((parked, release)) => {
            parked.set();
            if !release.wait(Some(DELAY_HOLD_LIMIT)) {
                k.violation(format!(
                    "KeDelayExecutionThread was held for {DELAY_HOLD_LIMIT:?}: the test never released World::hold_delays"
                ));
            }
        }
        None => crate::sched::sleep(duration.unwrap_or_default()),
    }
    STATUS_SUCCESS
}

/// How long a delay held by `World::hold_delays` waits before the model calls it a hang.
const DELAY_HOLD_LIMIT: Duration = Duration::from_mins(1);

signatures! {
    ss::KeInitializeEvent(a, a, a);
    ss::KeSetEvent(a, a, a);
    ss::KeClearEvent(a);
    ss::KeWaitForSingleObject(a, a, a, a, a);
    ss::KeDelayExecutionThread(a, a, a);
}
