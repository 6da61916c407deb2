//! Callback data a filter allocates and sends itself: `FltAllocateCallbackData(Ex)`,
//! `FltPerformSynchronousIo`, `FltPerformAsynchronousIo`, `FltReuseCallbackData`,
//! `FltFreeCallbackData`, `FltSetCallbackDataDirty`.
//!
//! **Where its state lives:** `State::callback_data` (each allocated block, its owner and its I/O
//! in flight) in `state.rs`, the block's memory in `arena.rs`, and its layout and accessors in
//! `request.rs`; the I/O itself goes down through `io.rs`.

use std::{ffi::c_void, sync::Arc, time::Duration};

use windows_sys::{
    Wdk::{
        Foundation::FILE_OBJECT,
        Storage::FileSystem::Minifilters::{
            FLT_ALLOCATE_CALLBACK_DATA_PREALLOCATE_ALL_MEMORY, FLT_CALLBACK_DATA,
            PFLT_COMPLETED_ASYNC_IO_CALLBACK, PFLT_CONTEXT, PFLT_INSTANCE,
        },
        System::SystemServices::{IRP_MJ_CREATE, IRP_PAGING_IO},
    },
    Win32::Foundation::{
        NTSTATUS, STATUS_FLT_INVALID_ASYNCHRONOUS_REQUEST, STATUS_INSUFFICIENT_RESOURCES,
        STATUS_INVALID_PARAMETER, STATUS_PENDING, STATUS_SUCCESS,
    },
};

use super::{
    APC, DISPATCH, PASSIVE,
    contexts::{instance_filter, k_describe},
    out,
};
use crate::{
    io,
    kernel::{EventKind, Frame, Kernel, Shown, Status, Void, api_call, run_as},
    state::CallbackDataRec,
    status::NtStatus,
};

// ==== callback data ==============================================================================

fn allocate_callback_data(
    k: &Kernel,
    api: &'static str,
    instance: PFLT_INSTANCE,
    fileobject: *const FILE_OBJECT,
    preallocate: bool,
    ret: *mut *mut FLT_CALLBACK_DATA,
) -> Shown<NTSTATUS> {
    let Some((inst, filter)) = instance_filter(k, api, instance) else {
        return Shown(STATUS_INVALID_PARAMETER, "STATUS_INVALID_PARAMETER".into());
    };
    if let Some(status) = k.inject(api, STATUS_INSUFFICIENT_RESOURCES) {
        out(k, api, ret, std::ptr::null_mut());
        return Shown(status, NtStatus(status).to_string());
    }
    let mut state = k.lock();
    let data = crate::request::new_callback_data(&mut state, instance, fileobject.cast_mut(), true);
    let origin = state.origin(api);
    state.callback_data.insert(
        data as usize,
        CallbackDataRec {
            filter: Some(filter),
            instance: inst,
            allocated: true,
            preallocated: preallocate,
            in_flight: false,
            performed: false,
            freed: false,
            origin,
        },
    );
    drop(state);
    out(k, api, ret, data);
    Shown(
        STATUS_SUCCESS,
        format!("STATUS_SUCCESS, data {:#x}", data as usize),
    )
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltAllocateCallbackData(
    instance: PFLT_INSTANCE,
    fileobject: *const FILE_OBJECT,
    retnewcallbackdata: *mut *mut FLT_CALLBACK_DATA,
) -> NTSTATUS {
    api_call(
        "FltAllocateCallbackData",
        APC,
        || k_describe(fileobject),
        |k| {
            allocate_callback_data(
                k,
                "FltAllocateCallbackData",
                instance,
                fileobject,
                false,
                retnewcallbackdata,
            )
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltAllocateCallbackDataEx(
    instance: PFLT_INSTANCE,
    fileobject: *const FILE_OBJECT,
    flags: u32,
    retnewcallbackdata: *mut *mut FLT_CALLBACK_DATA,
) -> NTSTATUS {
    let shown_flags = if flags & FLT_ALLOCATE_CALLBACK_DATA_PREALLOCATE_ALL_MEMORY != 0 {
        "FLT_ALLOCATE_CALLBACK_DATA_PREALLOCATE_ALL_MEMORY".to_owned()
    } else {
        format!("{flags:#x}")
    };
    api_call(
        "FltAllocateCallbackDataEx",
        APC,
        || format!("{}, {shown_flags}", k_describe(fileobject)),
        |k| {
            let preallocate = flags & FLT_ALLOCATE_CALLBACK_DATA_PREALLOCATE_ALL_MEMORY != 0;
            allocate_callback_data(
                k,
                "FltAllocateCallbackDataEx",
                instance,
                fileobject,
                preallocate,
                retnewcallbackdata,
            )
        },
    )
    .0
}

/// Checks callback data a filter passes back; returns its instance and volume.
fn own_callback_data(
    k: &Kernel,
    api: &str,
    data: *const FLT_CALLBACK_DATA,
) -> Option<(usize, usize)> {
    let state = k.lock();
    let problem = match state.callback_data.get(&(data as usize)) {
        None => Some(format!("{api}: {data:p} is not callback data")),
        Some(rec) if !rec.allocated => Some(format!(
            "{api}: the callback data of {} was not allocated by a filter",
            rec.origin
        )),
        Some(rec) if rec.freed => Some(format!(
            "{api}: the callback data allocated by {} was already freed",
            rec.origin
        )),
        Some(rec) if rec.in_flight => Some(format!(
            "{api}: the callback data allocated by {} has I/O in flight",
            rec.origin
        )),
        Some(rec) => return Some((rec.instance, state.instances[rec.instance].volume)),
    };
    drop(state);
    k.violation(problem.expect("set above"));
    None
}

fn perform(k: &Arc<Kernel>, api: &'static str, data: *mut FLT_CALLBACK_DATA) -> Option<NTSTATUS> {
    let (instance, volume) = own_callback_data(k, api, data)?;
    {
        // SAFETY: the callback data is the model's (checked above); its parameter block is valid.
        let fo = unsafe { (*crate::request::iopb(data)).TargetFileObject } as usize;
        let state = k.lock();
        if state
            .file_objects
            .get(&fo)
            .is_some_and(|f| f.state == crate::state::FoState::Closed)
        {
            let described = state.describe_fo(fo);
            drop(state);
            k.violation(format!(
                "{api}: {described} is closed (use after free); a request that may outlive the \
                 handle needs its own reference (ObfReferenceObject)"
            ));
        }
    }
    let (preallocated, performed, altitude, major) = {
        let state = k.lock();
        let rec = &state.callback_data[&(data as usize)];
        // SAFETY: the callback data is ours and idle; reading its parameter block is allowed.
        let major = unsafe { (*crate::request::iopb(data)).MajorFunction };
        (
            rec.preallocated,
            rec.performed,
            state.instances[instance].altitude,
            major,
        )
    };
    if performed {
        k.violation(format!(
            "{api}: callback data issued twice without FltReuseCallbackData in between"
        ));
    }
    {
        let mut state = k.lock();
        let rec = state
            .callback_data
            .get_mut(&(data as usize))
            .expect("checked");
        rec.in_flight = true;
        rec.performed = true;
    }
    // Without FLT_ALLOCATE_CALLBACK_DATA_PREALLOCATE_ALL_MEMORY, Filter Manager may still need
    // memory for the request; that allocation can fail here, mid-I/O.
    let status = if !preallocated
        && let Some(status) = k.inject(
            "FltPerformSynchronousIo.allocation",
            STATUS_INSUFFICIENT_RESOURCES,
        ) {
        crate::request::set_status(data, status, 0);
        status
    } else {
        k.trace(
            EventKind::FltMgr,
            format!(
                "{api}: {} goes to the instances below altitude {altitude}",
                crate::request::major_name(major)
            ),
        );
        io::send(k, data, volume, Some(altitude))
    };
    k.lock()
        .callback_data
        .get_mut(&(data as usize))
        .expect("checked")
        .in_flight = false;
    Some(status)
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltPerformSynchronousIo(callbackdata: *mut FLT_CALLBACK_DATA) {
    api_call(
        "FltPerformSynchronousIo",
        APC,
        || format!("data {:#x}", callbackdata as usize),
        |k| match perform(k, "FltPerformSynchronousIo", callbackdata) {
            Some(status) => Shown((), format!("IoStatus {}", NtStatus(status))),
            None => Shown((), String::new()),
        },
    );
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltPerformAsynchronousIo(
    callbackdata: *mut FLT_CALLBACK_DATA,
    callbackroutine: PFLT_COMPLETED_ASYNC_IO_CALLBACK,
    callbackcontext: *const c_void,
) -> NTSTATUS {
    api_call(
        "FltPerformAsynchronousIo",
        APC,
        || format!("data {:#x}", callbackdata as usize),
        |k| {
            // Unknown callback data, or no routine: nothing valid to complete, so no call.
            if own_callback_data(k, "FltPerformAsynchronousIo", callbackdata).is_none() {
                return Status(STATUS_INVALID_PARAMETER);
            }
            let Some(routine) = callbackroutine else {
                k.violation("FltPerformAsynchronousIo: no completion routine".into());
                return Status(STATUS_INVALID_PARAMETER);
            };
            // "IRQL: PASSIVE_LEVEL; APC_LEVEL only for paging I/O" (the FltPerformAsynchronousIo
            // page). api_call checked the APC ceiling; a non-paging request needs PASSIVE.
            // SAFETY: the callback data is known to the model, so its parameter block is valid.
            let irp_flags = unsafe { (*crate::request::iopb(callbackdata)).IrpFlags };
            if irp_flags & IRP_PAGING_IO == 0 {
                k.check_irql("FltPerformAsynchronousIo (not paging I/O)", PASSIVE);
            }
            let frame = crate::kernel::current_frame();
            let (data, ctx) = (callbackdata as usize, callbackcontext as usize);
            // "The Filter Manager always calls this routine, even when FltPerformAsynchronousIo
            // fails": a create, or an injected failure, completes the request with that status
            // and calls the routine before returning it.
            // SAFETY: the callback data is known to the model, so its parameter block is valid.
            let major = unsafe { (*crate::request::iopb(callbackdata)).MajorFunction };
            let failure = if u32::from(major) == IRP_MJ_CREATE {
                Some(STATUS_FLT_INVALID_ASYNCHRONOUS_REQUEST)
            } else {
                k.inject("FltPerformAsynchronousIo", STATUS_INSUFFICIENT_RESOURCES)
            };
            if let Some(status) = failure {
                crate::request::set_status(callbackdata, status, 0);
                complete_async(k, frame, routine, data, ctx);
                return Status(status);
            }
            let kernel = Arc::clone(k);
            crate::sched::spawn(move || {
                let _ = perform(
                    &kernel,
                    "FltPerformAsynchronousIo",
                    data as *mut FLT_CALLBACK_DATA,
                );
                let gate = kernel.lock().options.async_gate.clone();
                if let Some(gate) = gate {
                    gate.wait(Some(Duration::from_secs(10)));
                }
                complete_async(&kernel, frame, routine, data, ctx);
            });
            Status(STATUS_PENDING)
        },
    )
    .0
}

/// Calls the completion routine of an asynchronous request, once, at `DISPATCH_LEVEL` (the
/// documented ceiling), attributed to the filter that issued it. The thread is the model's
/// choice (the documentation says only "arbitrary"): the issuer's own, before
/// `FltPerformAsynchronousIo` returns, when the call fails; a new one when it returns
/// `STATUS_PENDING`.
fn complete_async(
    k: &Kernel,
    frame: Option<Frame>,
    routine: unsafe extern "system" fn(*const FLT_CALLBACK_DATA, PFLT_CONTEXT),
    data: usize,
    ctx: usize,
) {
    let frame = frame.unwrap_or(Frame {
        filter: None,
        who: "unknown".into(),
        what: String::new(),
    });
    let frame = Frame {
        what: "async I/O completion".into(),
        ..frame
    };
    k.trace(
        EventKind::Callback("AsyncIoCompletion"),
        format!(
            "completion routine, status {}",
            NtStatus(crate::request::status(data as *mut _))
        ),
    );
    // SAFETY: the filter's completion routine, called once, with its callback data and context.
    run_as(frame, DISPATCH, || unsafe {
        routine(data as *const FLT_CALLBACK_DATA, ctx as PFLT_CONTEXT);
    });
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltReuseCallbackData(callbackdata: *mut FLT_CALLBACK_DATA) {
    api_call(
        "FltReuseCallbackData",
        APC,
        || format!("data {:#x}", callbackdata as usize),
        |k| {
            if own_callback_data(k, "FltReuseCallbackData", callbackdata).is_some() {
                let block = crate::request::block(callbackdata);
                // SAFETY: the block is the model's and idle; reset everything but the target.
                let b = unsafe { &mut *block };
                let (instance, fo) = (b.iopb.TargetInstance, b.iopb.TargetFileObject);
                // SAFETY: all-zero is a valid FLT_IO_PARAMETER_BLOCK (plain data and null pointers).
                b.iopb = unsafe { std::mem::zeroed() };
                b.iopb.TargetInstance = instance;
                b.iopb.TargetFileObject = fo;
                b.data.IoStatus.Anonymous.Status = STATUS_SUCCESS;
                b.data.IoStatus.Information = 0;
                k.lock()
                    .callback_data
                    .get_mut(&(callbackdata as usize))
                    .expect("checked")
                    .performed = false;
            }
            Void
        },
    );
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltFreeCallbackData(callbackdata: *const FLT_CALLBACK_DATA) {
    api_call(
        "FltFreeCallbackData",
        DISPATCH,
        || format!("data {:#x}", callbackdata as usize),
        |k| {
            if own_callback_data(k, "FltFreeCallbackData", callbackdata).is_some() {
                let mut state = k.lock();
                state
                    .callback_data
                    .get_mut(&(callbackdata as usize))
                    .expect("checked")
                    .freed = true;
                state.arena.poison(callbackdata as usize, 0xDF);
            }
            Void
        },
    );
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltSetCallbackDataDirty(data: *mut FLT_CALLBACK_DATA) {
    api_call("FltSetCallbackDataDirty", DISPATCH, String::new, |_| Void);
    let _ = data;
}

signatures! {
    flt::FltAllocateCallbackData(a, a, a);
    flt::FltAllocateCallbackDataEx(a, a, a, a);
    flt::FltPerformSynchronousIo(a);
    flt::FltPerformAsynchronousIo(a, a, a);
    flt::FltReuseCallbackData(a);
    flt::FltFreeCallbackData(a);
    flt::FltSetCallbackDataDirty(a);
}
