//! System threads a driver creates itself: `PsCreateSystemThread`, `PsTerminateSystemThread`,
//! and `ObReferenceObjectByHandle` on their handles. The model of the threads (records, the
//! worker pool, the clock tick) is in `crate::threads`.
//!
//! **Where its state lives:** `State::threads` in `state.rs`, and the threads themselves in
//! `threads.rs` (under the seeded scheduler, `sched.rs`, in a storm).

use std::{ffi::c_void, sync::Arc};

use windows_sys::{
    Wdk::{
        Foundation::{OBJECT_ATTRIBUTES, POBJECT_TYPE},
        System::SystemServices::{OBJECT_HANDLE_INFORMATION, PKSTART_ROUTINE},
    },
    Win32::{
        Foundation::{
            HANDLE, NTSTATUS, OBJ_KERNEL_HANDLE, STATUS_INSUFFICIENT_RESOURCES,
            STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
        },
        System::WindowsProgramming::CLIENT_ID,
    },
};

use crate::{
    abi::{out, read_in},
    irql,
    kernel::{EventKind, Frame, Shown, Status, api_call, current_filter, run_as, who},
    state::HANDLE_TAG,
    status::NtStatus,
    sync::HostEvent,
    threads::{SYSTEM_THREAD, ThreadRec, set_terminated, terminated},
};

/// `PsCreateSystemThread` (`PASSIVE_LEVEL`): a thread that runs `startroutine` in the system
/// process until it calls `PsTerminateSystemThread`.
#[unsafe(no_mangle)]
unsafe extern "system" fn PsCreateSystemThread(
    threadhandle: *mut HANDLE,
    desiredaccess: u32,
    objectattributes: *const OBJECT_ATTRIBUTES,
    processhandle: HANDLE,
    clientid: *mut CLIENT_ID,
    startroutine: PKSTART_ROUTINE,
    startcontext: *const c_void,
) -> NTSTATUS {
    let _ = (desiredaccess, clientid, startcontext);
    api_call(
        "PsCreateSystemThread",
        irql::PASSIVE_LEVEL,
        || format!("access {desiredaccess:#x}"),
        |k| {
            let Some(routine) = startroutine else {
                k.violation("PsCreateSystemThread: no StartRoutine".into());
                return Shown(STATUS_INVALID_PARAMETER, NtStatus(STATUS_INVALID_PARAMETER).to_string());
            };
            if !processhandle.is_null() {
                k.violation(
                    "PsCreateSystemThread: ProcessHandle \"should be NULL for a driver-created thread\""
                        .into(),
                );
            }
            let attributes = read_in(objectattributes).map_or(0, |a| a.Attributes);
            if attributes & OBJ_KERNEL_HANDLE == 0
                && crate::kernel::process_id() != crate::SYSTEM_PROCESS_ID
            {
                k.violation(
                    "PsCreateSystemThread outside the system process without OBJ_KERNEL_HANDLE: the \
                     thread handle lands in the calling process's handle table"
                        .into(),
                );
            }
            if let Some(status) = k.inject("PsCreateSystemThread", STATUS_INSUFFICIENT_RESOURCES) {
                return Shown(status, NtStatus(status).to_string());
            }
            let filter = current_filter();
            let (handle, object, name) = {
                let mut state = k.lock();
                let object = state.arena.alloc(64, 0) as usize;
                let handle = HANDLE_TAG | (state.next_handle << 4);
                state.next_handle += 1;
                let origin = state.origin("PsCreateSystemThread");
                state
                    .events
                    .insert(object, Arc::new(HostEvent::new(false, false)));
                state.threads.insert(
                    object,
                    ThreadRec {
                        filter,
                        handle,
                        handle_closed: false,
                        object,
                        object_refs: 0,
                        exited: false,
                        origin,
                    },
                );
                let name = filter.map_or_else(|| "system".to_owned(), |f| state.filters[f].name.clone());
                (handle, object, name)
            };
            if !out(k, "PsCreateSystemThread", threadhandle, handle as HANDLE) {
                return Shown(STATUS_INVALID_PARAMETER, NtStatus(STATUS_INVALID_PARAMETER).to_string());
            }
            let kernel = Arc::clone(k);
            crate::sched::spawn(move || {
                SYSTEM_THREAD.with(|t| t.set(Some(object)));
                // "The newly created system thread runs at PASSIVE_LEVEL inside a critical region
                // with normal kernel APCs disabled."
                crate::kernel::set_critical_regions(1);
                let frame = Frame { filter, who: name.clone(), what: "system thread".into() };
                kernel.trace_as(who::KERNEL.into(), EventKind::Callback("SystemThread"), format!("thread {object:#x} starts"));
                // SAFETY: the driver's start routine, called once on its own thread at
                // PASSIVE_LEVEL, as PsCreateSystemThread does.
                run_as(frame, irql::PASSIVE_LEVEL, || unsafe { routine() });
                if !terminated() {
                    kernel.violation(format!(
                        "{name}: the system thread's start routine returned without calling \
                         PsTerminateSystemThread (a system thread \"continues running until ... \
                         the thread terminates itself by calling PsTerminateSystemThread\")"
                    ));
                }
                set_terminated(false);
                let event = {
                    let mut state = kernel.lock();
                    if let Some(t) = state.threads.get_mut(&object) {
                        t.exited = true;
                    }
                    state.events.get(&object).cloned()
                };
                kernel.trace_as(who::KERNEL.into(), EventKind::Callback("SystemThread"), format!("thread {object:#x} exits"));
                if let Some(event) = event {
                    event.set();
                }
            });
            Shown(STATUS_SUCCESS, format!("STATUS_SUCCESS, handle {handle:#x}"))
        },
    )
    .0
}

/// `PsTerminateSystemThread` (`PASSIVE_LEVEL`): ends the calling system thread. It does not
/// return on Windows; in the model it returns, the start routine must return right after, and any
/// kernel call in between is a finding.
#[unsafe(no_mangle)]
unsafe extern "system" fn PsTerminateSystemThread(exitstatus: NTSTATUS) -> NTSTATUS {
    api_call(
        "PsTerminateSystemThread",
        irql::PASSIVE_LEVEL,
        || format!("{}", crate::status::NtStatus(exitstatus)),
        |k| {
            if SYSTEM_THREAD.with(std::cell::Cell::get).is_none() {
                k.violation(
                    "PsTerminateSystemThread on a thread that PsCreateSystemThread did not create"
                        .into(),
                );
                return Status(STATUS_INVALID_PARAMETER);
            }
            set_terminated(true);
            Status(STATUS_SUCCESS)
        },
    )
    .0
}

/// `ObReferenceObjectByHandle` (`PASSIVE_LEVEL`): the object behind a handle, referenced. The
/// model resolves the thread handles of `PsCreateSystemThread`.
#[unsafe(no_mangle)]
unsafe extern "system" fn ObReferenceObjectByHandle(
    handle: HANDLE,
    desiredaccess: u32,
    objecttype: POBJECT_TYPE,
    accessmode: i8,
    object: *mut *mut c_void,
    handleinformation: *mut OBJECT_HANDLE_INFORMATION,
) -> NTSTATUS {
    let _ = (desiredaccess, objecttype, handleinformation);
    api_call(
        "ObReferenceObjectByHandle",
        irql::PASSIVE_LEVEL,
        || format!("{:#x}, access {desiredaccess:#x}", handle as usize),
        |k| {
            let found = {
                let mut state = k.lock();
                let thread = state
                    .threads
                    .values_mut()
                    .find(|t| t.handle == handle as usize && !t.handle_closed);
                thread.map(|t| {
                    t.object_refs += 1;
                    t.object
                })
            };
            let Some(found) = found else {
                k.violation(format!(
                    "ObReferenceObjectByHandle: {:#x} is not an open thread handle (the model \
                     resolves PsCreateSystemThread's handles only)",
                    handle as usize
                ));
                return Shown(
                    STATUS_INVALID_HANDLE,
                    NtStatus(STATUS_INVALID_HANDLE).to_string(),
                );
            };
            if accessmode != 0 {
                k.violation(
                    "ObReferenceObjectByHandle of a kernel handle with AccessMode UserMode".into(),
                );
            }
            out(k, "ObReferenceObjectByHandle", object, found as *mut c_void);
            Shown(STATUS_SUCCESS, format!("STATUS_SUCCESS, object {found:#x}"))
        },
    )
    .0
}

/// `ObCloseHandle` of a thread handle; `None` if `handle` is not one.
pub(crate) fn close_thread_handle(k: &crate::kernel::Kernel, handle: usize) -> Option<NTSTATUS> {
    let mut state = k.lock();
    let thread = state.threads.values_mut().find(|t| t.handle == handle)?;
    if thread.handle_closed {
        let origin = thread.origin.clone();
        drop(state);
        k.violation(format!(
            "ObCloseHandle: the thread handle from {origin} was already closed"
        ));
        return Some(STATUS_INVALID_HANDLE);
    }
    thread.handle_closed = true;
    Some(STATUS_SUCCESS)
}

/// `ObfDereferenceObject` of a thread object; `None` if `object` is not one.
pub(crate) fn dereference_thread(k: &crate::kernel::Kernel, object: usize) -> Option<isize> {
    let mut state = k.lock();
    let thread = state.threads.get_mut(&object)?;
    if thread.object_refs == 0 {
        let origin = thread.origin.clone();
        drop(state);
        k.violation(format!(
            "ObDereferenceObject: the thread object from {origin} has no reference left to drop \
             (REFERENCE_BY_POINTER)"
        ));
        return Some(0);
    }
    thread.object_refs -= 1;
    Some(isize::try_from(thread.object_refs).unwrap_or(0))
}

/// Whether `object` is a thread object (a wait on it waits for the thread to end).
pub(crate) fn is_thread_object(k: &crate::kernel::Kernel, object: usize) -> bool {
    k.lock().threads.contains_key(&object)
}

/// Compile-time proof that the definitions above have windows-sys's exact signatures.
const _: () = {
    use windows_sys::Wdk::System::SystemServices as ss;
    let _: [unsafe extern "system" fn(_, _, _, _, _, _, _) -> _; 2] =
        [ss::PsCreateSystemThread, PsCreateSystemThread];
    let _: [unsafe extern "system" fn(_) -> _; 2] =
        [ss::PsTerminateSystemThread, PsTerminateSystemThread];
    let _: [unsafe extern "system" fn(_, _, _, _, _, _) -> _; 2] =
        [ss::ObReferenceObjectByHandle, ObReferenceObjectByHandle];
};
