//! The kernel functions the samples call, defined with windows-sys's exact signatures.
//!
//! Each definition checks the documented IRQL ceiling, validates its arguments the way Filter
//! Manager or Driver Verifier would, consults the fault plan where the function can fail, and
//! records the call in the trace. The signatures are checked against windows-sys's declarations
//! at compile time (`signatures` below).
//!
//! Choices where the documentation is silent (Windows behaviour where known):
//! - `FltCloseSectionForDataScan` on a context that was already closed returns
//!   `STATUS_NOT_FOUND`, as documented, and is *also* a verifier finding: a correct ownership
//!   hand-off closes exactly once.
//! - A section created without `OBJ_KERNEL_HANDLE` is a verifier finding: its handle would land
//!   in whatever process the filter happened to run in.
//! - At instance teardown, a data-scan section still linked to a stream is a finding; the model
//!   then closes it so the stream is usable again.
//! - `FltPerformAsynchronousIo` calls the completion routine on every return for callback data
//!   the model knows, as documented ("The Filter Manager always calls this routine, even when
//!   `FltPerformAsynchronousIo` fails"). On a failure (`STATUS_FLT_INVALID_ASYNCHRONOUS_REQUEST`
//!   for a create; an injected fault, by default `STATUS_INSUFFICIENT_RESOURCES`) it sets
//!   `IoStatus` to the failure status and 0, and calls the routine at `DISPATCH_LEVEL` on the
//!   caller's thread before returning that status. On `STATUS_PENDING` the request runs on a new
//!   thread, whose completion calls the routine at `DISPATCH_LEVEL`. Callback data the model does
//!   not know, or no routine, is a finding and `STATUS_INVALID_PARAMETER`, with no call.
//! - `ObfReferenceObject` / `ObfDereferenceObject` accept file objects as well as sections. A
//!   user's close sends `IRP_MJ_CLOSE` only once filters dropped theirs (the closing thread
//!   waits; Windows sends it from whoever drops the last one). I/O a filter issues on a closed
//!   file object is a finding.
//! - Rundown protection (`ExInitializeRundownProtection`, `ExAcquireRundownProtection`,
//!   `ExReleaseRundownProtection`: `<= DISPATCH_LEVEL`; `ExWaitForRundownProtectionRelease`:
//!   `<= APC_LEVEL`) keeps its count in the model, not in the `EX_RUNDOWN_REF`.
#![allow(non_snake_case, clippy::not_unsafe_ptr_arg_deref)]

use std::{
    ffi::c_void,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{NtStatus, irql};
use windows_sys::{
    Wdk::{
        Foundation::{DRIVER_OBJECT, FILE_OBJECT, KEVENT, OBJECT_ATTRIBUTES, POOL_TYPE},
        Storage::FileSystem::Minifilters::{
            FLT_ALLOCATE_CALLBACK_DATA_PREALLOCATE_ALL_MEMORY, FLT_CALLBACK_DATA, FLT_CONTEXT_END,
            FLT_FILE_NAME_INFORMATION, FLT_INSTANCE_CONTEXT, FLT_REGISTRATION, FLT_RELATED_OBJECTS,
            FLT_SECTION_CONTEXT, FLT_SET_CONTEXT_KEEP_IF_EXISTS, FLT_SET_CONTEXT_OPERATION,
            FLT_SET_CONTEXT_REPLACE_IF_EXISTS, FLT_STREAMHANDLE_CONTEXT,
            FLTFL_CONTEXT_REGISTRATION_NO_EXACT_SIZE_MATCH, FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD,
            IRP_MJ_OPERATION_END, PFLT_COMPLETED_ASYNC_IO_CALLBACK, PFLT_CONTEXT, PFLT_FILTER,
            PFLT_GENERIC_WORKITEM, PFLT_GENERIC_WORKITEM_ROUTINE, PFLT_INSTANCE,
        },
        System::SystemServices::{IRP_MJ_CREATE, IRP_PAGING_IO, WORK_QUEUE_TYPE},
    },
    Win32::{
        Foundation::{
            HANDLE, NTSTATUS, OBJ_KERNEL_HANDLE, STATUS_CANCELLED, STATUS_END_OF_FILE,
            STATUS_FILE_IS_A_DIRECTORY, STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND,
            STATUS_FLT_CONTEXT_ALREADY_DEFINED, STATUS_FLT_DELETING_OBJECT,
            STATUS_FLT_INVALID_ASYNCHRONOUS_REQUEST, STATUS_FLT_INVALID_CONTEXT_REGISTRATION,
            STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER,
            STATUS_INVALID_PARAMETER_8, STATUS_INVALID_PARAMETER_9, STATUS_NOT_FOUND,
            STATUS_NOT_SUPPORTED, STATUS_PENDING, STATUS_SUCCESS, STATUS_THREAD_IS_TERMINATING,
            STATUS_TIMEOUT, UNICODE_STRING,
        },
        System::{Kernel::EVENT_TYPE, Memory::SEC_COMMIT},
    },
};

use crate::{
    io,
    kernel::{EventKind, Frame, Kernel, Shown, Status, Void, api_call, current_filter, run_as},
    state::{
        Attachment, CallbackDataRec, ContextRec, HANDLE_TAG, HandleRec, NameRec, PoolRec,
        SectionRec, State, WORKITEM_TAG, WorkItemRec, filter_handle, instance_handle,
    },
    sync::{HANG_TIMEOUT, HostEvent, HostPushLock, LockMisuse},
};

const PASSIVE: u8 = irql::PASSIVE_LEVEL;
const APC: u8 = irql::APC_LEVEL;
const DISPATCH: u8 = irql::DISPATCH_LEVEL;

/// Reads an optional in parameter (a size, a timeout), `None` when NULL.
pub(crate) fn read_in<T: Copy>(ptr: *const T) -> Option<T> {
    // SAFETY: a non-null in parameter points at a valid `T` (the function's contract).
    (!ptr.is_null()).then(|| unsafe { ptr.read() })
}

/// Writes an out parameter, reporting a NULL one.
pub(crate) fn out<T>(k: &Kernel, api: &str, ptr: *mut T, value: T) -> bool {
    if ptr.is_null() {
        k.violation(format!("{api}: a required out parameter is NULL"));
        return false;
    }
    // SAFETY: the caller passed a non-null pointer to writable storage for a `T`, as the
    // function's contract requires.
    unsafe { ptr.write(value) };
    true
}

fn context_type_name(t: u16) -> &'static str {
    match u32::from(t) {
        FLT_SECTION_CONTEXT => "FLT_SECTION_CONTEXT",
        FLT_STREAMHANDLE_CONTEXT => "FLT_STREAMHANDLE_CONTEXT",
        FLT_INSTANCE_CONTEXT => "FLT_INSTANCE_CONTEXT",
        _ => "context",
    }
}

// ==== registration ===============================================================================

#[unsafe(no_mangle)]
unsafe extern "system" fn FltRegisterFilter(
    driver: *const DRIVER_OBJECT,
    registration: *const FLT_REGISTRATION,
    retfilter: *mut PFLT_FILTER,
) -> NTSTATUS {
    api_call(
        "FltRegisterFilter",
        PASSIVE,
        || format!("{driver:p}"),
        |k| {
            if let Some(status) = k.inject("FltRegisterFilter", STATUS_INSUFFICIENT_RESOURCES) {
                return Status(status);
            }
            Status(register(k, driver, registration, retfilter))
        },
    )
    .0
}

fn register(
    k: &Kernel,
    driver: *const DRIVER_OBJECT,
    registration: *const FLT_REGISTRATION,
    retfilter: *mut PFLT_FILTER,
) -> NTSTATUS {
    let mut state = k.lock();
    let Some(index) = state
        .filters
        .iter()
        .position(|f| std::ptr::eq(f.driver, driver) && f.loaded)
    else {
        drop(state);
        k.violation(
            "FltRegisterFilter: the driver object is not the one passed to DriverEntry".into(),
        );
        return STATUS_INVALID_PARAMETER;
    };
    if registration.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: a non-null registration must point at a valid FLT_REGISTRATION (the API's contract).
    let r = unsafe { &*registration };
    if usize::from(r.Size) != std::mem::size_of::<FLT_REGISTRATION>()
        || !(0x0200..=0x0203).contains(&r.Version)
    {
        drop(state);
        k.violation(format!(
            "FltRegisterFilter: Size {} / Version {:#06x} is not a FLT_REGISTRATION this Filter Manager knows (Size must be {})",
            r.Size,
            r.Version,
            std::mem::size_of::<FLT_REGISTRATION>()
        ));
        return STATUS_INVALID_PARAMETER;
    }
    let mut operations = std::collections::HashMap::new();
    if !r.OperationRegistration.is_null() {
        for i in 0..=64 {
            // SAFETY: the table is terminated by IRP_MJ_OPERATION_END; the loop stops there or
            // reports a missing terminator after 64 rows, so row `i` is inside the table.
            let row = unsafe { r.OperationRegistration.add(i) };
            // SAFETY: as above, `row` points at a row of the caller's table.
            let row = unsafe { *row };
            if u16::from(row.MajorFunction) == IRP_MJ_OPERATION_END {
                break;
            }
            if i == 64 {
                drop(state);
                k.violation(
                    "FltRegisterFilter: the operation table has no IRP_MJ_OPERATION_END".into(),
                );
                return STATUS_INVALID_PARAMETER;
            }
            operations.insert(row.MajorFunction, (row.PreOperation, row.PostOperation));
        }
    }
    let mut contexts = Vec::new();
    if !r.ContextRegistration.is_null() {
        for i in 0..=16 {
            // SAFETY: as above: the table is terminated by FLT_CONTEXT_END within 16 rows.
            let row = unsafe { r.ContextRegistration.add(i) };
            // SAFETY: `row` points at a row of the caller's table.
            let row = unsafe { *row };
            if u32::from(row.ContextType) == FLT_CONTEXT_END {
                break;
            }
            if i == 16 || row.Size == 0 {
                drop(state);
                k.violation("FltRegisterFilter: the context table has no FLT_CONTEXT_END or a zero-size row".into());
                return STATUS_FLT_INVALID_CONTEXT_REGISTRATION;
            }
            contexts.push(row);
        }
    }
    let f = &mut state.filters[index];
    f.operations = operations;
    f.contexts = contexts;
    f.unload = r.FilterUnloadCallback;
    f.instance_setup = r.InstanceSetupCallback;
    f.query_teardown = r.InstanceQueryTeardownCallback;
    f.teardown_start = r.InstanceTeardownStartCallback;
    f.teardown_complete = r.InstanceTeardownCompleteCallback;
    // Filter Manager reads only the fields of the version it was given.
    f.section_notification = if r.Version >= 0x0203 {
        r.SectionNotificationCallback
    } else {
        None
    };
    f.registered = true;
    drop(state);
    if r.Version < 0x0203 && r.SectionNotificationCallback.is_some() {
        k.trace(
            EventKind::Verifier,
            "note: SectionNotificationCallback is ignored: the registration version is below 0x0203".into(),
        );
    }
    out(k, "FltRegisterFilter", retfilter, filter_handle(index));
    STATUS_SUCCESS
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltStartFiltering(filter: PFLT_FILTER) -> NTSTATUS {
    api_call(
        "FltStartFiltering",
        PASSIVE,
        || format!("filter {filter:#x}"),
        |k| {
            let Some(index) = k.lock().filter_index(filter) else {
                k.violation(format!(
                    "FltStartFiltering: {filter:#x} is not a filter handle"
                ));
                return Status(STATUS_INVALID_PARAMETER);
            };
            if let Some(status) = k.inject("FltStartFiltering", STATUS_INSUFFICIENT_RESOURCES) {
                return Status(status);
            }
            k.lock().filters[index].started = true;
            crate::world::attach_instances(k, index);
            Status(STATUS_SUCCESS)
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltUnregisterFilter(filter: PFLT_FILTER) {
    api_call(
        "FltUnregisterFilter",
        PASSIVE,
        || format!("filter {filter:#x}"),
        |k| {
            let index = {
                let state = k.lock();
                match state.filter_index(filter) {
                    Some(i) if state.filters[i].registered && !state.filters[i].unregistered => {
                        Some(i)
                    }
                    _ => None,
                }
            };
            let Some(index) = index else {
                k.violation(format!(
                    "FltUnregisterFilter: {filter:#x} is not a registered filter (called twice?)"
                ));
                return Void;
            };
            unregister(k, index);
            Void
        },
    );
}

fn unregister(k: &Arc<Kernel>, filter: usize) {
    // A delay held by World::hold_delays would keep a worker from ever finishing, and this call
    // waits for the workers: unregistration releases the hold. The filter's unload callback has
    // already run up to here, so a worker released now sees whatever it set before unregistering.
    release_delay_hold(k);
    let instances: Vec<usize> = {
        let state = k.lock();
        (0..state.instances.len())
            .filter(|i| state.instances[*i].filter == filter && !state.instances[*i].torn_down)
            .collect()
    };
    for instance in instances {
        teardown_instance(k, instance, FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD);
    }
    // FltUnregisterFilter waits for queued work items and for every context reference.
    let name = k.lock().filters[filter].name.clone();
    let start = Instant::now();
    loop {
        let (work, refs) = {
            let state = k.lock();
            let work = state.filters[filter].work_items_running;
            let refs = state
                .contexts
                .values()
                .filter(|c| c.filter == filter && !c.freed && c.refs > 0)
                .count();
            (work, refs)
        };
        if work == 0 && refs == 0 {
            break;
        }
        if start.elapsed() > HANG_TIMEOUT {
            if work > 0 {
                k.violation(format!(
                    "{name}: FltUnregisterFilter waited {HANG_TIMEOUT:?} for {work} queued work item(s) \
                     to finish: on Windows the unload hangs"
                ));
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    k.lock().filters[filter].unregistered = true;
}

/// Tears `instance` down, as Filter Manager does for an unload (`reason`
/// `FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD`) or a manual detach (`FLTFL_INSTANCE_TEARDOWN_MANUAL`):
/// `InstanceTeardownStart`, then the wait for the operations in flight and the instance's
/// `FltObjectReference` references, then `InstanceTeardownComplete`, then the instance's contexts.
pub(crate) fn teardown_instance(k: &Arc<Kernel>, instance: usize, reason: u32) {
    let (filter, name, start_cb, complete_cb, volume) = {
        let state = k.lock();
        let i = &state.instances[instance];
        let f = &state.filters[i.filter];
        (
            i.filter,
            f.name.clone(),
            f.teardown_start,
            f.teardown_complete,
            i.volume,
        )
    };
    let objects = FLT_RELATED_OBJECTS {
        Size: std::mem::size_of::<FLT_RELATED_OBJECTS>() as u16,
        TransactionContext: 0,
        Filter: filter_handle(filter),
        Volume: crate::state::volume_handle(volume),
        Instance: instance_handle(instance),
        FileObject: std::ptr::null(),
        Transaction: std::ptr::null(),
    };
    if let Some(cb) = start_cb {
        let frame = Frame {
            filter: Some(filter),
            who: name.clone(),
            what: "InstanceTeardownStart".into(),
        };
        k.trace(
            EventKind::Callback("InstanceTeardownStart"),
            format!("InstanceTeardownStart -> {name}"),
        );
        // SAFETY: calling the registered teardown callback with valid related objects.
        run_as(frame, PASSIVE, || unsafe {
            cb(&raw const objects, reason);
        });
    }
    // No new operations reach the instance; wait for the ones in flight (rundown).
    let (in_flight, refs) = {
        let mut state = k.lock();
        state.instances[instance].torn_down = true;
        (
            state.instances[instance].in_flight,
            state.instances[instance].object_refs,
        )
    };
    if in_flight > 0 {
        k.trace(
            EventKind::FltMgr,
            format!("instance teardown waits for {in_flight} operation(s) in flight"),
        );
    }
    if refs > 0 {
        k.trace(
            EventKind::FltMgr,
            format!(
                "instance teardown: the rundown waits for {refs} FltObjectReference reference(s)"
            ),
        );
    }
    let start = Instant::now();
    while k.lock().instances[instance].in_flight > 0 || k.lock().instances[instance].object_refs > 0
    {
        if start.elapsed() > HANG_TIMEOUT {
            k.violation(format!("{name}: instance teardown waited {HANG_TIMEOUT:?} for in-flight I/O or FltObjectReference references"));
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if let Some(cb) = complete_cb {
        let frame = Frame {
            filter: Some(filter),
            who: name.clone(),
            what: "InstanceTeardownComplete".into(),
        };
        k.trace(
            EventKind::Callback("InstanceTeardownComplete"),
            format!("InstanceTeardownComplete -> {name}"),
        );
        // SAFETY: as above.
        run_as(frame, PASSIVE, || unsafe {
            cb(&raw const objects, reason);
        });
    }
    detach_instance_contexts(k, instance);
}

/// Drops every attachment reference an instance's contexts hold, as instance teardown does.
pub(crate) fn detach_instance_contexts(k: &Kernel, instance: usize) {
    let (to_release, sections) = {
        let mut state = k.lock();
        let mut release = Vec::new();
        let mut sections = Vec::new();
        for (addr, ctx) in &mut state.contexts {
            ctx.attachments.retain(|a| match a {
                Attachment::Instance(i) | Attachment::StreamHandle { instance: i, .. }
                    if *i == instance =>
                {
                    release.push(*addr);
                    false
                }
                Attachment::Section(obj) => {
                    sections.push((*addr, *obj));
                    true
                }
                _ => true,
            });
        }
        let sections: Vec<(usize, usize, String)> = sections
            .into_iter()
            .filter(|(_, obj)| state.sections[obj].instance == instance)
            .map(|(ctx, obj)| (ctx, obj, state.sections[&obj].origin.clone()))
            .collect();
        (release, sections)
    };
    for (ctx, obj, origin) in sections {
        k.violation(format!(
            "instance teardown: the data-scan section created by {origin} is still open; close it \
             (FltCloseSectionForDataScan) in InstanceTeardownStart or before"
        ));
        untrack_section(k, ctx, obj);
    }
    for ctx in to_release {
        release_reference(k, ctx, "instance teardown");
    }
}

// ==== contexts ===================================================================================

#[unsafe(no_mangle)]
unsafe extern "system" fn FltAllocateContext(
    filter: PFLT_FILTER,
    contexttype: u16,
    contextsize: usize,
    pooltype: POOL_TYPE,
    returnedcontext: *mut PFLT_CONTEXT,
) -> NTSTATUS {
    api_call(
        "FltAllocateContext",
        APC,
        || format!("{}, {contextsize} bytes, pool type {pooltype}", context_type_name(contexttype)),
        |k| {
            let state = k.lock();
            let Some(index) = state.filter_index(filter) else {
                drop(state);
                k.violation(format!("FltAllocateContext: {filter:#x} is not a filter handle"));
                return Shown(STATUS_INVALID_PARAMETER, "STATUS_INVALID_PARAMETER".into());
            };
            // "Creating Contexts": a type the filter did not register, or a size no registration
            // of that type serves, fails with STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND. A fixed
            // Size needs exactly that size, unless the registration has
            // FLTFL_CONTEXT_REGISTRATION_NO_EXACT_SIZE_MATCH, which serves any size up to it.
            // (FLT_VARIABLE_SIZED_CONTEXTS registrations are not modelled: no sample uses one.)
            let of_type: Vec<(usize, u16)> = state.filters[index]
                .contexts
                .iter()
                .filter(|c| c.ContextType == contexttype)
                .map(|c| (c.Size, c.Flags))
                .collect();
            let served = of_type.iter().any(|&(size, flags)| {
                size == contextsize
                    || (u32::from(flags) & FLTFL_CONTEXT_REGISTRATION_NO_EXACT_SIZE_MATCH != 0
                        && contextsize <= size)
            });
            if !served {
                drop(state);
                let why = if of_type.is_empty() {
                    "the filter registered no context of that type".to_owned()
                } else {
                    format!("no registration of that type serves {contextsize} bytes: {of_type:?} (size, flags)")
                };
                k.violation(format!(
                    "FltAllocateContext: {}: {why}",
                    context_type_name(contexttype)
                ));
                return Shown(
                    STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND,
                    NtStatus(STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND).to_string(),
                );
            }
            drop(state);
            if let Some(status) = k.inject("FltAllocateContext", STATUS_INSUFFICIENT_RESOURCES) {
                return Shown(status, NtStatus(status).to_string());
            }
            let mut state = k.lock();
            // Pool contents are not zeroed: fill with a pattern a forgotten zeroing would show.
            let ptr = state.arena.alloc(contextsize, 0xC5) as usize;
            let origin = state.origin("FltAllocateContext");
            state.contexts.insert(
                ptr,
                ContextRec {
                    filter: index,
                    context_type: contexttype,
                    size: contextsize,
                    refs: 1,
                    freed: false,
                    origin,
                    attachments: Vec::new(),
                    section: None,
                    // PagedPool (1) and its variants have the low bit set; NonPagedPool (0) and
                    // NonPagedPoolNx (512) do not.
                    paged: pooltype & 1 != 0,
                },
            );
            drop(state);
            out(k, "FltAllocateContext", returnedcontext, ptr as PFLT_CONTEXT);
            Shown(STATUS_SUCCESS, format!("STATUS_SUCCESS, context {ptr:#x}"))
        },
    )
    .0
}

/// Checks a context pointer; `None` (with a finding) when it is not a live context.
fn live_context(k: &Kernel, api: &str, context: PFLT_CONTEXT) -> Option<()> {
    let state = k.lock();
    match state.contexts.get(&(context as usize)) {
        None => {
            drop(state);
            k.violation(format!("{api}: {context:p} is not a context"));
            None
        }
        Some(c) if c.freed || c.refs <= 0 => {
            let origin = c.origin.clone();
            drop(state);
            k.violation(format!(
                "{api}: the context allocated by {origin} was already freed (its last reference was released)"
            ));
            None
        }
        Some(_) => Some(()),
    }
}

/// Drops one reference; at zero, calls the cleanup callback and frees the context.
pub(crate) fn release_reference(k: &Kernel, context: usize, why: &str) {
    let cleanup = {
        let mut state = k.lock();
        let Some(c) = state.contexts.get_mut(&context) else {
            return;
        };
        c.refs -= 1;
        if c.refs > 0 {
            return;
        }
        c.freed = true;
        let (filter, ty) = (c.filter, c.context_type);
        let cb = state.filters[filter]
            .contexts
            .iter()
            .find(|r| r.ContextType == ty)
            .and_then(|r| r.ContextCleanupCallback);
        (cb, filter, ty, state.filters[filter].name.clone())
    };
    let (cb, filter, ty, name) = cleanup;
    if let Some(cb) = cb {
        let frame = Frame {
            filter: Some(filter),
            who: name,
            what: "ContextCleanupCallback".into(),
        };
        k.trace(
            EventKind::Callback("ContextCleanupCallback"),
            format!(
                "ContextCleanupCallback {} {context:#x} ({why})",
                context_type_name(ty)
            ),
        );
        // SAFETY: the registered cleanup callback, called once with the context whose last
        // reference just went, at PASSIVE_LEVEL (documented: <= APC_LEVEL).
        run_as(frame, PASSIVE, || unsafe {
            cb(context as PFLT_CONTEXT, ty);
        });
    }
    k.lock().arena.poison(context, 0xDF);
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltReleaseContext(context: PFLT_CONTEXT) {
    api_call(
        "FltReleaseContext",
        DISPATCH,
        || format!("{context:p}"),
        |k| {
            if live_context(k, "FltReleaseContext", context).is_some() {
                // "IRQL <= DISPATCH_LEVEL for a context allocated from nonpaged pool; <= APC_LEVEL
                // for one allocated from paged pool" (the FltReleaseContext page).
                let paged = k.lock().contexts[&(context as usize)].paged;
                if paged {
                    k.check_irql("FltReleaseContext (paged-pool context)", APC);
                }
                release_reference(k, context as usize, "FltReleaseContext");
            }
            Void
        },
    );
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltReferenceContext(context: PFLT_CONTEXT) {
    api_call(
        "FltReferenceContext",
        DISPATCH,
        || format!("{context:p}"),
        |k| {
            if live_context(k, "FltReferenceContext", context).is_some() {
                k.lock()
                    .contexts
                    .get_mut(&(context as usize))
                    .expect("live")
                    .refs += 1;
            }
            Void
        },
    );
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltDeleteContext(context: PFLT_CONTEXT) {
    api_call(
        "FltDeleteContext",
        APC,
        || format!("{context:p}"),
        |k| {
            if live_context(k, "FltDeleteContext", context).is_none() {
                return Void;
            }
            let mut state = k.lock();
            let c = state.contexts.get_mut(&(context as usize)).expect("live");
            if u32::from(c.context_type) == FLT_SECTION_CONTEXT {
                let origin = c.origin.clone();
                drop(state);
                k.violation(format!(
                "FltDeleteContext on the section context allocated by {origin}: section contexts \
                 are removed only by FltCloseSectionForDataScan"
            ));
                return Void;
            }
            let attached = c.attachments.len();
            c.attachments.clear();
            drop(state);
            for _ in 0..attached {
                release_reference(k, context as usize, "FltDeleteContext");
            }
            Void
        },
    );
}

fn get_attached(
    k: &Kernel,
    api: &'static str,
    matches: impl Fn(&Attachment) -> bool,
    filter: usize,
    out_ptr: *mut PFLT_CONTEXT,
) -> Shown<NTSTATUS> {
    let mut state = k.lock();
    let found = state
        .contexts
        .iter_mut()
        .find(|(_, c)| c.filter == filter && !c.freed && c.attachments.iter().any(&matches))
        .map(|(addr, c)| {
            c.refs += 1;
            *addr
        });
    drop(state);
    if let Some(addr) = found {
        out(k, api, out_ptr, addr as PFLT_CONTEXT);
        Shown(STATUS_SUCCESS, format!("STATUS_SUCCESS, context {addr:#x}"))
    } else {
        out(k, api, out_ptr, std::ptr::null_mut());
        Shown(STATUS_NOT_FOUND, NtStatus(STATUS_NOT_FOUND).to_string())
    }
}

fn instance_filter(k: &Kernel, api: &str, instance: PFLT_INSTANCE) -> Option<(usize, usize)> {
    let state = k.lock();
    if let Some(i) = state.instance_index(instance) {
        Some((i, state.instances[i].filter))
    } else {
        drop(state);
        k.violation(format!("{api}: {instance:#x} is not an instance"));
        None
    }
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltGetSectionContext(
    instance: PFLT_INSTANCE,
    fileobject: *const FILE_OBJECT,
    context: *mut PFLT_CONTEXT,
) -> NTSTATUS {
    api_call(
        "FltGetSectionContext",
        APC,
        || k_describe(fileobject),
        |k| {
            let Some((inst, filter)) = instance_filter(k, "FltGetSectionContext", instance) else {
                return Shown(STATUS_INVALID_PARAMETER, "STATUS_INVALID_PARAMETER".into());
            };
            let (supported, stream) = {
                let state = k.lock();
                let volume = state.instances[inst].volume;
                (
                    state.volumes[volume].supports_data_scan,
                    state
                        .file_objects
                        .get(&(fileobject as usize))
                        .and_then(|f| f.stream),
                )
            };
            if !supported {
                out(k, "FltGetSectionContext", context, std::ptr::null_mut());
                return Shown(
                    STATUS_NOT_SUPPORTED,
                    NtStatus(STATUS_NOT_SUPPORTED).to_string(),
                );
            }
            if let Some(status) = k.inject("FltGetSectionContext", STATUS_NOT_FOUND) {
                out(k, "FltGetSectionContext", context, std::ptr::null_mut());
                return Shown(status, NtStatus(status).to_string());
            }
            // This instance's sections on the stream, collected before `get_attached` takes the
            // lock (its predicate runs under it).
            let sections: Vec<usize> = {
                let state = k.lock();
                stream
                    .map(|s| state.streams[s].sections.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|obj| state.sections[obj].instance == inst)
                    .collect()
            };
            get_attached(
                k,
                "FltGetSectionContext",
                |a| matches!(a, Attachment::Section(obj) if sections.contains(obj)),
                filter,
                context,
            )
        },
    )
    .0
}

fn k_describe(fo: *const FILE_OBJECT) -> String {
    crate::kernel::try_kernel().map_or_else(String::new, |k| k.lock().describe_fo(fo as usize))
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltGetStreamHandleContext(
    instance: PFLT_INSTANCE,
    fileobject: *const FILE_OBJECT,
    context: *mut PFLT_CONTEXT,
) -> NTSTATUS {
    api_call(
        "FltGetStreamHandleContext",
        APC,
        || k_describe(fileobject),
        |k| {
            let Some((inst, filter)) = instance_filter(k, "FltGetStreamHandleContext", instance)
            else {
                return Shown(STATUS_INVALID_PARAMETER, "STATUS_INVALID_PARAMETER".into());
            };
            let fo = fileobject as usize;
            get_attached(
                k,
                "FltGetStreamHandleContext",
                |a| {
                    *a == Attachment::StreamHandle {
                        instance: inst,
                        file_object: fo,
                    }
                },
                filter,
                context,
            )
        },
    )
    .0
}

#[allow(clippy::too_many_arguments)]
fn set_context(
    k: &Kernel,
    api: &'static str,
    filter: usize,
    attachment: Attachment,
    expected_type: u32,
    operation: FLT_SET_CONTEXT_OPERATION,
    new: PFLT_CONTEXT,
    old: *mut PFLT_CONTEXT,
) -> Shown<NTSTATUS> {
    live_context(k, api, new);
    let mut state = k.lock();
    if state
        .contexts
        .get(&(new as usize))
        .is_none_or(|c| u32::from(c.context_type) != expected_type || c.filter != filter)
    {
        drop(state);
        k.violation(format!(
            "{api}: the new context is not a context of the right type for this filter"
        ));
        return Shown(STATUS_INVALID_PARAMETER, "STATUS_INVALID_PARAMETER".into());
    }
    let existing = state
        .contexts
        .iter()
        .find(|(_, c)| !c.freed && c.attachments.contains(&attachment))
        .map(|(a, _)| *a);
    match (existing, operation) {
        (Some(current), FLT_SET_CONTEXT_KEEP_IF_EXISTS) => {
            state.contexts.get_mut(&current).expect("exists").refs += 1;
            drop(state);
            if old.is_null() {
                release_reference(k, current, api);
            } else {
                out(k, api, old, current as PFLT_CONTEXT);
            }
            Shown(
                STATUS_FLT_CONTEXT_ALREADY_DEFINED,
                NtStatus(STATUS_FLT_CONTEXT_ALREADY_DEFINED).to_string(),
            )
        }
        (existing, FLT_SET_CONTEXT_REPLACE_IF_EXISTS | FLT_SET_CONTEXT_KEEP_IF_EXISTS) => {
            if let Some(current) = existing {
                state
                    .contexts
                    .get_mut(&current)
                    .expect("exists")
                    .attachments
                    .retain(|a| *a != attachment);
            }
            let c = state.contexts.get_mut(&(new as usize)).expect("checked");
            c.attachments.push(attachment);
            c.refs += 1;
            drop(state);
            if let Some(current) = existing {
                if old.is_null() {
                    release_reference(k, current, api);
                } else {
                    out(k, api, old, current as PFLT_CONTEXT);
                }
            }
            Shown(STATUS_SUCCESS, "STATUS_SUCCESS".into())
        }
        _ => Shown(STATUS_INVALID_PARAMETER, "STATUS_INVALID_PARAMETER".into()),
    }
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltSetStreamHandleContext(
    instance: PFLT_INSTANCE,
    fileobject: *const FILE_OBJECT,
    operation: FLT_SET_CONTEXT_OPERATION,
    newcontext: PFLT_CONTEXT,
    oldcontext: *mut PFLT_CONTEXT,
) -> NTSTATUS {
    api_call(
        "FltSetStreamHandleContext",
        APC,
        || format!("{}, context {newcontext:p}", k_describe(fileobject)),
        |k| {
            let Some((inst, filter)) = instance_filter(k, "FltSetStreamHandleContext", instance)
            else {
                return Shown(STATUS_INVALID_PARAMETER, "STATUS_INVALID_PARAMETER".into());
            };
            if let Some(status) =
                k.inject("FltSetStreamHandleContext", STATUS_INSUFFICIENT_RESOURCES)
            {
                return Shown(status, NtStatus(status).to_string());
            }
            let attachment = Attachment::StreamHandle {
                instance: inst,
                file_object: fileobject as usize,
            };
            set_context(
                k,
                "FltSetStreamHandleContext",
                filter,
                attachment,
                FLT_STREAMHANDLE_CONTEXT,
                operation,
                newcontext,
                oldcontext,
            )
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltGetInstanceContext(
    instance: PFLT_INSTANCE,
    context: *mut PFLT_CONTEXT,
) -> NTSTATUS {
    api_call(
        "FltGetInstanceContext",
        APC,
        || format!("instance {instance:#x}"),
        |k| {
            let Some((inst, filter)) = instance_filter(k, "FltGetInstanceContext", instance) else {
                return Shown(STATUS_INVALID_PARAMETER, "STATUS_INVALID_PARAMETER".into());
            };
            get_attached(
                k,
                "FltGetInstanceContext",
                |a| *a == Attachment::Instance(inst),
                filter,
                context,
            )
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltSetInstanceContext(
    instance: PFLT_INSTANCE,
    operation: FLT_SET_CONTEXT_OPERATION,
    newcontext: PFLT_CONTEXT,
    oldcontext: *mut PFLT_CONTEXT,
) -> NTSTATUS {
    api_call(
        "FltSetInstanceContext",
        APC,
        || format!("instance {instance:#x}, context {newcontext:p}"),
        |k| {
            let Some((inst, filter)) = instance_filter(k, "FltSetInstanceContext", instance) else {
                return Shown(STATUS_INVALID_PARAMETER, "STATUS_INVALID_PARAMETER".into());
            };
            if let Some(status) = k.inject("FltSetInstanceContext", STATUS_INSUFFICIENT_RESOURCES) {
                return Shown(status, NtStatus(status).to_string());
            }
            set_context(
                k,
                "FltSetInstanceContext",
                filter,
                Attachment::Instance(inst),
                FLT_INSTANCE_CONTEXT,
                operation,
                newcontext,
                oldcontext,
            )
        },
    )
    .0
}

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
    let data = io::new_callback_data(&mut state, instance, fileobject.cast_mut(), true);
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
        let fo = unsafe { (*io::iopb(data)).TargetFileObject } as usize;
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
        let major = unsafe { (*io::iopb(data)).MajorFunction };
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
        io::set_status(data, status, 0);
        status
    } else {
        k.trace(
            EventKind::FltMgr,
            format!(
                "{api}: {} goes to the instances below altitude {altitude}",
                io::major_name(major)
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
            let irp_flags = unsafe { (*io::iopb(callbackdata)).IrpFlags };
            if irp_flags & IRP_PAGING_IO == 0 {
                k.check_irql("FltPerformAsynchronousIo (not paging I/O)", PASSIVE);
            }
            let frame = crate::kernel::current_frame();
            let (data, ctx) = (callbackdata as usize, callbackcontext as usize);
            // "The Filter Manager always calls this routine, even when FltPerformAsynchronousIo
            // fails": a create, or an injected failure, completes the request with that status
            // and calls the routine before returning it.
            // SAFETY: the callback data is known to the model, so its parameter block is valid.
            let major = unsafe { (*io::iopb(callbackdata)).MajorFunction };
            let failure = if u32::from(major) == IRP_MJ_CREATE {
                Some(STATUS_FLT_INVALID_ASYNCHRONOUS_REQUEST)
            } else {
                k.inject("FltPerformAsynchronousIo", STATUS_INSUFFICIENT_RESOURCES)
            };
            if let Some(status) = failure {
                io::set_status(callbackdata, status, 0);
                complete_async(k, frame, routine, data, ctx);
                return Status(status);
            }
            let kernel = Arc::clone(k);
            std::thread::spawn(move || {
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
            NtStatus(io::status(data as *mut _))
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
                let block = io::block(callbackdata);
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

// ==== sections for data scan =====================================================================

#[unsafe(no_mangle)]
unsafe extern "system" fn FltRegisterForDataScan(instance: PFLT_INSTANCE) -> NTSTATUS {
    api_call(
        "FltRegisterForDataScan",
        APC,
        || format!("instance {instance:#x}"),
        |k| {
            let Some((inst, _)) = instance_filter(k, "FltRegisterForDataScan", instance) else {
                return Status(STATUS_INVALID_PARAMETER);
            };
            let supported = {
                let state = k.lock();
                state.volumes[state.instances[inst].volume].supports_data_scan
            };
            if !supported {
                return Status(STATUS_NOT_SUPPORTED);
            }
            if let Some(status) = k.inject("FltRegisterForDataScan", STATUS_INSUFFICIENT_RESOURCES)
            {
                return Status(status);
            }
            k.lock().instances[inst].data_scan = true;
            Status(STATUS_SUCCESS)
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltCreateSectionForDataScan(
    instance: PFLT_INSTANCE,
    fileobject: *const FILE_OBJECT,
    sectioncontext: PFLT_CONTEXT,
    desiredaccess: u32,
    objectattributes: *const OBJECT_ATTRIBUTES,
    maximumsize: *const i64,
    sectionpageprotection: u32,
    allocationattributes: u32,
    flags: u32,
    sectionhandle: *mut HANDLE,
    sectionobject: *mut *mut c_void,
    sectionfilesize: *mut i64,
) -> NTSTATUS {
    let _ = (desiredaccess, maximumsize, flags);
    api_call(
        "FltCreateSectionForDataScan",
        PASSIVE,
        || format!("{}, context {sectioncontext:p}", k_describe(fileobject)),
        |k| {
            // "SectionPageProtection ... is required and cannot be zero"; "AllocationAttributes
            // ... is required and cannot be zero", and SEC_COMMIT "is required and cannot be
            // omitted" (the FltCreateSectionForDataScan page). Checked before anything else, as
            // parameter validation is: nothing is created, linked or referenced.
            if sectionpageprotection == 0 {
                return Shown(
                    STATUS_INVALID_PARAMETER_8,
                    NtStatus(STATUS_INVALID_PARAMETER_8).to_string(),
                );
            }
            if allocationattributes & SEC_COMMIT == 0 {
                return Shown(
                    STATUS_INVALID_PARAMETER_9,
                    NtStatus(STATUS_INVALID_PARAMETER_9).to_string(),
                );
            }
            create_section(
                k,
                instance,
                fileobject,
                sectioncontext,
                objectattributes,
                sectionhandle,
                sectionobject,
                sectionfilesize,
            )
        },
    )
    .0
}

#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
fn create_section(
    k: &Arc<Kernel>,
    instance: PFLT_INSTANCE,
    fileobject: *const FILE_OBJECT,
    context: PFLT_CONTEXT,
    attributes: *const OBJECT_ATTRIBUTES,
    handle_out: *mut HANDLE,
    object_out: *mut *mut c_void,
    size_out: *mut i64,
) -> Shown<NTSTATUS> {
    let fail = |status: NTSTATUS| Shown(status, NtStatus(status).to_string());
    let Some((inst, filter)) = instance_filter(k, "FltCreateSectionForDataScan", instance) else {
        return fail(STATUS_INVALID_PARAMETER);
    };
    if live_context(k, "FltCreateSectionForDataScan", context).is_none() {
        return fail(STATUS_INVALID_PARAMETER);
    }
    let kernel_handle = !attributes.is_null() && {
        // SAFETY: a non-null OBJECT_ATTRIBUTES pointer must be valid (the API's contract).
        let a = unsafe { &*attributes };
        a.Attributes & OBJ_KERNEL_HANDLE != 0
    };
    {
        let state = k.lock();
        let c = &state.contexts[&(context as usize)];
        let problem = if u32::from(c.context_type) != FLT_SECTION_CONTEXT {
            Some(format!(
                "FltCreateSectionForDataScan: the context from {} is not a FLT_SECTION_CONTEXT",
                c.origin
            ))
        } else if c.section.is_some() {
            Some(format!(
                "FltCreateSectionForDataScan: the section context from {} was already used for a section",
                c.origin
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            drop(state);
            k.violation(problem);
            return fail(STATUS_INVALID_PARAMETER);
        }
        if !state.instances[inst].data_scan {
            // Documented: the instance must have called FltRegisterForDataScan.
            return fail(STATUS_INVALID_PARAMETER);
        }
    }
    if !kernel_handle {
        k.violation(
            "FltCreateSectionForDataScan without OBJ_KERNEL_HANDLE: the section handle lands in the \
             current process's handle table, where user mode can use or close it"
                .into(),
        );
    }
    let stream = {
        let state = k.lock();
        if let Some(s) = state
            .file_objects
            .get(&(fileobject as usize))
            .and_then(|f| f.stream)
        {
            s
        } else {
            drop(state);
            k.violation("FltCreateSectionForDataScan: the file object is not an open file".into());
            return fail(STATUS_INVALID_PARAMETER);
        }
    };
    {
        let state = k.lock();
        let s = &state.streams[stream];
        if s.is_dir {
            return fail(STATUS_FILE_IS_A_DIRECTORY);
        }
        if s.data.is_empty() {
            return fail(STATUS_END_OF_FILE);
        }
        if s.sections
            .iter()
            .any(|obj| state.sections[obj].instance == inst)
        {
            return fail(STATUS_FLT_CONTEXT_ALREADY_DEFINED);
        }
    }
    if let Some(status) = k.inject("FltCreateSectionForDataScan", STATUS_INSUFFICIENT_RESOURCES) {
        return fail(status);
    }
    let (handle, object, size) = {
        let mut state = k.lock();
        // Checked again under the lock that links the section: two creates on different threads
        // can both pass the check above, and only one may link (one section per stream per
        // instance), as Filter Manager's own stream-context lock guarantees on Windows.
        if state.streams[stream]
            .sections
            .iter()
            .any(|obj| state.sections[obj].instance == inst)
        {
            return fail(STATUS_FLT_CONTEXT_ALREADY_DEFINED);
        }
        let size = i64::try_from(state.streams[stream].data.len()).expect("file size");
        let object = state.arena.alloc(64, 0) as usize;
        let origin = state.origin("FltCreateSectionForDataScan");
        state.sections.insert(
            object,
            SectionRec {
                stream,
                instance: inst,
                filter,
                context: context as usize,
                handle_open: true,
                object_refs: 1,
                views: 0,
                tracked: true,
                size: size.cast_unsigned(),
                origin: origin.clone(),
            },
        );
        state.streams[stream].sections.push(object);
        let handle = HANDLE_TAG | (state.next_handle << 4);
        state.next_handle += 1;
        state.handles.insert(
            handle,
            HandleRec {
                section: object,
                closed: false,
                kernel: kernel_handle,
                origin,
            },
        );
        let c = state.contexts.get_mut(&(context as usize)).expect("live");
        c.section = Some(object);
        c.attachments.push(Attachment::Section(object));
        // The link to the stream holds a reference until FltCloseSectionForDataScan.
        c.refs += 1;
        (handle, object, size)
    };
    let race = k.lock().options.race_on_create.take();
    if let Some(conflict) = race {
        deliver_race(k, stream, conflict);
    }
    // `World::hold_next_section_create`: linked, not yet returned. Other threads now meet this
    // section (STATUS_FLT_CONTEXT_ALREADY_DEFINED, FltGetSectionContext) while its creator waits.
    let hold = k.lock().options.hold_create.take();
    if let Some((linked, release)) = hold {
        k.trace(
            EventKind::Verifier,
            "hold: FltCreateSectionForDataScan has linked its section and waits before returning"
                .into(),
        );
        linked.set();
        if !release.wait(Some(HOLD_LIMIT)) {
            k.violation(format!(
                "hold: the held FltCreateSectionForDataScan was not released within {HOLD_LIMIT:?} \
                 (a test forgot World::release_section_create?)"
            ));
        }
    }
    out(
        k,
        "FltCreateSectionForDataScan",
        handle_out,
        handle as HANDLE,
    );
    out(
        k,
        "FltCreateSectionForDataScan",
        object_out,
        object as *mut c_void,
    );
    if !size_out.is_null() {
        out(k, "FltCreateSectionForDataScan", size_out, size);
    }
    Shown(
        STATUS_SUCCESS,
        format!("STATUS_SUCCESS, handle {handle:#x}, object {object:#x}, size {size}"),
    )
}

/// The longest a held `FltCreateSectionForDataScan` waits for `World::release_section_create`.
const HOLD_LIMIT: Duration = Duration::from_secs(10);

/// Runs a conflicting operation on another thread, from another handle, and waits for it: the
/// conflict arrives while `FltCreateSectionForDataScan` has not yet returned.
fn deliver_race(k: &Arc<Kernel>, stream: usize, conflict: crate::Conflict) {
    let path = {
        let state = k.lock();
        let s = &state.streams[stream];
        format!("{}:{}", state.volumes[s.volume].letter, s.path)
    };
    k.trace(
        EventKind::Verifier,
        format!(
            "race: delivering {conflict:?} on {path} before FltCreateSectionForDataScan returns"
        ),
    );
    let kernel = Arc::clone(k);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = crate::world::race_conflict(&kernel, &path, conflict);
        let _ = tx.send(result);
    });
    match rx.recv_timeout(HANG_TIMEOUT) {
        Ok(result) => k.lock().race_results.push(result),
        Err(_) => k.violation(format!(
            "deadlock: the conflicting {conflict:?} did not finish within {HANG_TIMEOUT:?} while \
             FltCreateSectionForDataScan was running (the section notification callback waited \
             on the thread creating the section?)"
        )),
    }
}

/// Removes a section from Filter Manager's tracking and drops the link's context reference.
pub(crate) fn untrack_section(k: &Kernel, context: usize, object: usize) {
    {
        let mut state = k.lock();
        let stream = state.sections[&object].stream;
        state.sections.get_mut(&object).expect("section").tracked = false;
        state.streams[stream].sections.retain(|o| *o != object);
        if let Some(c) = state.contexts.get_mut(&context) {
            c.attachments.retain(|a| *a != Attachment::Section(object));
        }
    }
    release_reference(k, context, "FltCloseSectionForDataScan");
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltCloseSectionForDataScan(sectioncontext: PFLT_CONTEXT) -> NTSTATUS {
    api_call(
        "FltCloseSectionForDataScan",
        APC,
        || format!("context {sectioncontext:p}"),
        |k| {
            if live_context(k, "FltCloseSectionForDataScan", sectioncontext).is_none() {
                return Status(STATUS_INVALID_PARAMETER);
            }
            let (section, tracked, origin) = {
                let state = k.lock();
                let c = &state.contexts[&(sectioncontext as usize)];
                let section = c.section;
                (
                    section,
                    section.is_some_and(|s| state.sections[&s].tracked),
                    c.origin.clone(),
                )
            };
            match section {
                None => {
                    k.violation(format!(
                    "FltCloseSectionForDataScan on the context from {origin}, which was never used \
                     to create a section: release it with FltReleaseContext instead"
                ));
                    Status(STATUS_INVALID_PARAMETER)
                }
                // Already closed (by this filter, or by Filter Manager at teardown): a documented
                // result a filter handles, not misuse (the FltCloseSectionForDataScan page lists
                // STATUS_NOT_FOUND). Not a finding.
                Some(_) if !tracked => Status(STATUS_NOT_FOUND),
                Some(object) => {
                    untrack_section(k, sectioncontext as usize, object);
                    Status(STATUS_SUCCESS)
                }
            }
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn ObCloseHandle(handle: HANDLE, previousmode: i8) -> NTSTATUS {
    api_call(
        "ObCloseHandle",
        PASSIVE,
        || format!("{:#x}", handle as usize),
        |k| {
            if let Some(status) = crate::threads::close_thread_handle(k, handle as usize) {
                return Status(status);
            }
            let mut state = k.lock();
            let Some(h) = state.handles.get_mut(&(handle as usize)) else {
                drop(state);
                k.violation(format!(
                    "ObCloseHandle: {:#x} is not a handle (INVALID_KERNEL_HANDLE)",
                    handle as usize
                ));
                return Status(STATUS_INVALID_HANDLE);
            };
            if h.closed {
                let origin = h.origin.clone();
                drop(state);
                k.violation(format!(
                    "ObCloseHandle: the section handle from {origin} was already closed"
                ));
                return Status(STATUS_INVALID_HANDLE);
            }
            if h.kernel && previousmode != 0 {
                drop(state);
                k.violation("ObCloseHandle of a kernel handle with PreviousMode UserMode".into());
                return Status(STATUS_INVALID_HANDLE);
            }
            h.closed = true;
            let section = h.section;
            state
                .sections
                .get_mut(&section)
                .expect("section")
                .handle_open = false;
            Status(STATUS_SUCCESS)
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn ObfDereferenceObject(object: *const c_void) -> isize {
    api_call("ObfDereferenceObject", DISPATCH, || format!("{object:p}"), |k| {
        if let Some(refs) = file_object_reference(k, object, false) {
            // If the user has closed the handle meanwhile, this was the last reference, and
            // ObfDereferenceObject deletes the file object inline: IRP_MJ_CLOSE goes down the
            // stack from inside I/O completion. Whether it is the last cannot be known in
            // advance, so the model flags the call itself in a completion routine (a choice: on
            // Windows it is a deadlock only when it is the last reference).
            let in_completion = crate::kernel::current_frame()
                .is_some_and(|f| f.what == "async I/O completion");
            if in_completion {
                k.violation(format!(
                    "ObfDereferenceObject({object:p}) on a file object in an I/O completion routine: if \
                     it drops the last reference, the file object is deleted inline and IRP_MJ_CLOSE is \
                     sent from inside I/O completion. Use ObDereferenceObjectDeferDelete"
                ));
            }
            return Shown(refs, String::new());
        }
        if let Some(refs) = crate::threads::dereference_thread(k, object as usize) {
            return Shown(refs, String::new());
        }
        let mut state = k.lock();
        let Some(s) = state.sections.get_mut(&(object as usize)) else {
            drop(state);
            k.violation(format!("ObDereferenceObject: {object:p} is not an object the model handed out"));
            return Shown(0, String::new());
        };
        if s.object_refs == 0 {
            let origin = s.origin.clone();
            drop(state);
            k.violation(format!(
                "ObDereferenceObject: the section object from {origin} has no reference left to drop (REFERENCE_BY_POINTER)"
            ));
            return Shown(0, String::new());
        }
        s.object_refs -= 1;
        Shown(isize::try_from(s.object_refs).unwrap_or(0), String::new())
    })
    .0
}

/// `ObDereferenceObjectDeferDelete` (Windows Vista, `<= DISPATCH_LEVEL`): drops a reference;
/// should it be the last, the object is deleted later on a worker thread, never inline. The
/// model counts it like `ObfDereferenceObject` (its close already waits for the references on a
/// thread of its own).
#[unsafe(no_mangle)]
unsafe extern "system" fn ObDereferenceObjectDeferDelete(object: *const c_void) {
    api_call(
        "ObDereferenceObjectDeferDelete",
        DISPATCH,
        || format!("{object:p}"),
        |k| {
            if file_object_reference(k, object, false).is_none() {
                k.violation(format!(
                "ObDereferenceObjectDeferDelete: {object:p} is not a file object the model handed out"
            ));
            }
            Void
        },
    );
}

/// `ObfReferenceObject` / `ObfDereferenceObject` on a file object: `None` if `object` is not
/// one. The model counts only the references filters take (`FileObjectRec::refs`); the I/O
/// manager's own, which the handle holds, are implied by the file object's state. Referencing a
/// closed file object, or dropping a reference that was never taken, is a finding.
fn file_object_reference(k: &Kernel, object: *const c_void, take: bool) -> Option<isize> {
    let mut state = k.lock();
    let described = state.describe_fo(object as usize);
    let rec = state.file_objects.get_mut(&(object as usize))?;
    let problem = if take && rec.state == crate::state::FoState::Closed {
        Some(format!(
            "ObReferenceObject: {described} is closed; its last reference is gone"
        ))
    } else if !take && rec.refs == 0 {
        Some(format!(
            "ObDereferenceObject: no filter holds a reference to {described} \
             (REFERENCE_BY_POINTER)"
        ))
    } else {
        if take {
            rec.refs += 1;
        } else {
            rec.refs -= 1;
        }
        None
    };
    // One for the handle (if still open), plus the filters'.
    let refs = isize::try_from(rec.refs).unwrap_or(0)
        + isize::from(rec.state != crate::state::FoState::Closed);
    drop(state);
    if let Some(problem) = problem {
        k.violation(problem);
    }
    Some(refs)
}

#[unsafe(no_mangle)]
unsafe extern "system" fn ObfReferenceObject(object: *const c_void) -> isize {
    api_call(
        "ObfReferenceObject",
        DISPATCH,
        || format!("{object:p}"),
        |k| {
            if let Some(refs) = file_object_reference(k, object, true) {
                return Shown(refs, String::new());
            }
            let mut state = k.lock();
            let Some(s) = state.sections.get_mut(&(object as usize)) else {
                drop(state);
                k.violation(format!(
                    "ObReferenceObject: {object:p} is not an object the model handed out"
                ));
                return Shown(0, String::new());
            };
            if s.object_refs == 0 {
                drop(state);
                k.violation(
                    "ObReferenceObject on a section object whose last reference is gone".into(),
                );
                return Shown(0, String::new());
            }
            s.object_refs += 1;
            Shown(isize::try_from(s.object_refs).unwrap_or(0), String::new())
        },
    )
    .0
}

// ==== names, files, requestors ===================================================================

#[unsafe(no_mangle)]
unsafe extern "system" fn FltGetFileNameInformation(
    callbackdata: *const FLT_CALLBACK_DATA,
    nameoptions: u32,
    filenameinformation: *mut *mut FLT_FILE_NAME_INFORMATION,
) -> NTSTATUS {
    api_call(
        "FltGetFileNameInformation",
        APC,
        || format!("options {nameoptions:#x}"),
        |k| {
            let fo = {
                let state = k.lock();
                if !state.callback_data.contains_key(&(callbackdata as usize)) {
                    drop(state);
                    k.violation("FltGetFileNameInformation: not callback data".into());
                    return Shown(STATUS_INVALID_PARAMETER, "STATUS_INVALID_PARAMETER".into());
                }
                // SAFETY: known callback data; its parameter block is valid.
                unsafe { (*io::iopb(callbackdata.cast_mut())).TargetFileObject as usize }
            };
            if let Some(status) =
                k.inject("FltGetFileNameInformation", STATUS_INSUFFICIENT_RESOURCES)
            {
                out(
                    k,
                    "FltGetFileNameInformation",
                    filenameinformation,
                    std::ptr::null_mut(),
                );
                return Shown(status, NtStatus(status).to_string());
            }
            let mut state = k.lock();
            let Some(rec) = state.file_objects.get(&fo) else {
                return Shown(STATUS_INVALID_PARAMETER, "STATUS_INVALID_PARAMETER".into());
            };
            let full = format!("{}{}", state.volumes[rec.volume].device_name, rec.path);
            let wide: Vec<u16> = full.encode_utf16().collect();
            let info_size = std::mem::size_of::<FLT_FILE_NAME_INFORMATION>();
            let block = state.arena.alloc(info_size + wide.len() * 2, 0);
            // SAFETY: the block holds the structure followed by the name's UTF-16 units.
            let buffer = unsafe { block.add(info_size) }.cast::<u16>();
            // SAFETY: `buffer` has room for `wide.len()` units (allocated above).
            unsafe { std::ptr::copy_nonoverlapping(wide.as_ptr(), buffer, wide.len()) };
            let bytes = u16::try_from(wide.len() * 2).expect("short name");
            let info = block.cast::<FLT_FILE_NAME_INFORMATION>();
            // SAFETY: the block starts with a zeroed FLT_FILE_NAME_INFORMATION.
            let i = unsafe { &mut *info };
            i.Size = info_size as u16;
            i.Format = nameoptions & 0xFF;
            i.Name = UNICODE_STRING {
                Length: bytes,
                MaximumLength: bytes,
                Buffer: buffer,
            };
            let filter = current_filter().unwrap_or(usize::MAX);
            let origin = state.origin("FltGetFileNameInformation");
            state.names.insert(
                info as usize,
                NameRec {
                    filter,
                    refs: 1,
                    origin,
                },
            );
            drop(state);
            out(k, "FltGetFileNameInformation", filenameinformation, info);
            Shown(STATUS_SUCCESS, format!("STATUS_SUCCESS, {full}"))
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltReleaseFileNameInformation(
    filenameinformation: *const FLT_FILE_NAME_INFORMATION,
) {
    api_call("FltReleaseFileNameInformation", APC, String::new, |k| {
        let mut state = k.lock();
        match state.names.get_mut(&(filenameinformation as usize)) {
            Some(n) if n.refs > 0 => n.refs -= 1,
            Some(n) => {
                let origin = n.origin.clone();
                drop(state);
                k.violation(format!(
                    "FltReleaseFileNameInformation: the name from {origin} was already released"
                ));
            }
            None => {
                drop(state);
                k.violation("FltReleaseFileNameInformation: not a name-information block".into());
            }
        }
        Void
    });
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltIsDirectory(
    fileobject: *const FILE_OBJECT,
    instance: PFLT_INSTANCE,
    isdirectory: *mut bool,
) -> NTSTATUS {
    api_call(
        "FltIsDirectory",
        APC,
        || k_describe(fileobject),
        |k| {
            let _ = instance_filter(k, "FltIsDirectory", instance);
            let state = k.lock();
            let stream = state
                .file_objects
                .get(&(fileobject as usize))
                .and_then(|f| f.stream);
            let Some(stream) = stream else {
                return Status(STATUS_INVALID_PARAMETER);
            };
            let dir = state.streams[stream].is_dir;
            drop(state);
            out(k, "FltIsDirectory", isdirectory, dir);
            Status(STATUS_SUCCESS)
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltCancelFileOpen(
    instance: PFLT_INSTANCE,
    fileobject: *const FILE_OBJECT,
) {
    api_call(
        "FltCancelFileOpen",
        PASSIVE,
        || k_describe(fileobject),
        |k| {
            let _ = instance_filter(k, "FltCancelFileOpen", instance);
            let in_post_create =
                crate::kernel::current_frame().is_some_and(|f| f.what == "PostCreate");
            if !in_post_create {
                k.violation("FltCancelFileOpen outside a post-create callback".into());
                return Void;
            }
            if let Some(rec) = k.lock().file_objects.get_mut(&(fileobject as usize)) {
                rec.canceled = true;
            }
            Void
        },
    );
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltGetRequestorProcessId(callbackdata: *const FLT_CALLBACK_DATA) -> u32 {
    api_call("FltGetRequestorProcessId", DISPATCH, String::new, |k| {
        let state = k.lock();
        // SAFETY: only read when the callback data is known to the model.
        let fo = state
            .callback_data
            .contains_key(&(callbackdata as usize))
            .then(|| unsafe { (*io::iopb(callbackdata.cast_mut())).TargetFileObject as usize });
        let pid = fo
            .and_then(|fo| state.file_objects.get(&fo))
            .map_or(crate::SYSTEM_PROCESS_ID, |f| f.process);
        Shown(pid, pid.to_string())
    })
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn PsGetCurrentProcessId() -> HANDLE {
    crate::kernel::process_id() as usize as HANDLE
}

/// Releases a file object's stream handle contexts when it closes.
pub(crate) fn release_file_object(k: &Kernel, fo: usize) {
    let to_release: Vec<usize> = {
        let mut state = k.lock();
        let mut release = Vec::new();
        for (addr, ctx) in &mut state.contexts {
            let before = ctx.attachments.len();
            ctx.attachments.retain(|a| !matches!(a, Attachment::StreamHandle { file_object, .. } if *file_object == fo));
            for _ in ctx.attachments.len()..before {
                release.push(*addr);
            }
        }
        if let Some(rec) = state.file_objects.get_mut(&fo) {
            rec.state = crate::state::FoState::Closed;
        }
        release
    };
    for ctx in to_release {
        release_reference(k, ctx, "file object closed");
    }
}

// ==== kernel services ============================================================================

#[unsafe(no_mangle)]
unsafe extern "system" fn KeGetCurrentIrql() -> u8 {
    crate::kernel::current_irql()
}

#[unsafe(no_mangle)]
unsafe extern "system" fn ExAllocatePool2(
    flags: u64,
    numberofbytes: usize,
    tag: u32,
) -> *mut c_void {
    const POOL_FLAG_PAGED: u64 = 0x100;
    let max = if flags & POOL_FLAG_PAGED != 0 {
        APC
    } else {
        DISPATCH
    };
    api_call(
        "ExAllocatePool2",
        max,
        || format!("{numberofbytes} bytes, tag {}", show_tag(tag)),
        |k| {
            if k.inject("ExAllocatePool2", STATUS_INSUFFICIENT_RESOURCES)
                .is_some()
            {
                return Shown(std::ptr::null_mut(), "NULL".into());
            }
            let mut state = k.lock();
            let p = state.arena.alloc(numberofbytes, 0);
            let origin = state.origin("ExAllocatePool2");
            state.pool.insert(
                p as usize,
                PoolRec {
                    filter: current_filter(),
                    tag,
                    size: numberofbytes,
                    paged: flags & POOL_FLAG_PAGED != 0,
                    freed: false,
                    origin,
                },
            );
            Shown(p.cast::<c_void>(), format!("{:#x}", p as usize))
        },
    )
    .0
}

fn show_tag(tag: u32) -> String {
    String::from_utf8_lossy(&tag.to_le_bytes()).into_owned()
}

#[unsafe(no_mangle)]
unsafe extern "system" fn ExFreePoolWithTag(p: *mut c_void, tag: u32) {
    api_call(
        "ExFreePoolWithTag",
        DISPATCH,
        || format!("{p:p}, tag {}", show_tag(tag)),
        |k| {
            let mut state = k.lock();
            let problem = match state.pool.get_mut(&(p as usize)) {
                None => Some("ExFreePoolWithTag: not a pool block (BAD_POOL_CALLER)".to_owned()),
                Some(b) if b.freed => Some(format!(
                    "ExFreePoolWithTag: the block from {} was already freed (BAD_POOL_CALLER)",
                    b.origin
                )),
                Some(b) if b.tag != tag => Some(format!(
                    "ExFreePoolWithTag: tag {} does not match the allocation's tag {} (BAD_POOL_CALLER)",
                    show_tag(tag),
                    show_tag(b.tag)
                )),
                Some(b) => {
                    b.freed = true;
                    None
                }
            };
            if problem.is_none() {
                state.arena.poison(p as usize, 0xDF);
            }
            drop(state);
            if let Some(problem) = problem {
                k.violation(problem);
            }
            Void
        },
    );
}

fn event_of(k: &Kernel, api: &str, event: *const c_void) -> Option<Arc<HostEvent>> {
    let found = k.lock().events.get(&(event as usize)).cloned();
    if found.is_none() {
        k.violation(format!("{api}: {event:p} is not an initialized KEVENT"));
    }
    found
}

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
            if crate::threads::is_thread_object(k, object as usize) {
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
fn release_delay_hold(k: &Kernel) {
    let held = k.lock().options.hold_delays.take();
    if let Some((_, release)) = held {
        release.set();
    }
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
        None => std::thread::sleep(duration.unwrap_or_default()),
    }
    STATUS_SUCCESS
}

/// How long a delay held by `World::hold_delays` waits before the model calls it a hang.
const DELAY_HOLD_LIMIT: Duration = Duration::from_mins(1);

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

#[unsafe(no_mangle)]
unsafe extern "system" fn FltAllocateGenericWorkItem() -> PFLT_GENERIC_WORKITEM {
    api_call("FltAllocateGenericWorkItem", DISPATCH, String::new, |k| {
        if k.inject("FltAllocateGenericWorkItem", STATUS_INSUFFICIENT_RESOURCES)
            .is_some()
        {
            return Shown(0, "NULL".into());
        }
        let mut state = k.lock();
        let item = WORKITEM_TAG + state.next_work_item;
        state.next_work_item += 1;
        let origin = state.origin("FltAllocateGenericWorkItem");
        state.work_items.insert(
            item,
            WorkItemRec {
                filter: current_filter(),
                queued: false,
                freed: false,
                origin,
            },
        );
        Shown(item, format!("work item {item:#x}"))
    })
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltQueueGenericWorkItem(
    fltworkitem: PFLT_GENERIC_WORKITEM,
    fltobject: *const c_void,
    workerroutine: PFLT_GENERIC_WORKITEM_ROUTINE,
    queuetype: WORK_QUEUE_TYPE,
    context: *const c_void,
) -> NTSTATUS {
    let _ = queuetype;
    api_call("FltQueueGenericWorkItem", DISPATCH, || format!("work item {fltworkitem:#x}"), |k| {
        let filter = {
            let mut state = k.lock();
            let object = fltobject as isize;
            let filter = state.filter_index(object).or_else(|| state.instance_index(object).map(|i| state.instances[i].filter));
            let Some(filter) = filter else {
                drop(state);
                k.violation("FltQueueGenericWorkItem: FltObject is neither a filter nor an instance".into());
                return Status(STATUS_INVALID_PARAMETER);
            };
            if state.filters[filter].unregistered {
                return Status(STATUS_FLT_DELETING_OBJECT);
            }
            match state.work_items.get_mut(&fltworkitem) {
                Some(w) if !w.freed && !w.queued => w.queued = true,
                _ => {
                    drop(state);
                    k.violation("FltQueueGenericWorkItem: the work item is not allocated, or already queued".into());
                    return Status(STATUS_INVALID_PARAMETER);
                }
            }
            state.filters[filter].work_items_running += 1;
            filter
        };
        let Some(routine) = workerroutine else {
            k.violation("FltQueueGenericWorkItem: no worker routine".into());
            return Status(STATUS_INVALID_PARAMETER);
        };
        let (name, limit) = {
            let state = k.lock();
            (state.filters[filter].name.clone(), state.options.work_item_limit)
        };
        let kernel = Arc::clone(k);
        let (object, ctx) = (fltobject as usize, context as usize);
        // One of the few system worker threads runs it, once one is free (crate::threads).
        k.workers.submit(Box::new(move || {
            if let Some(w) = kernel.lock().work_items.get_mut(&fltworkitem) {
                w.queued = false;
            }
            let frame = Frame { filter: Some(filter), who: name.clone(), what: "work item".into() };
            kernel.trace(EventKind::Callback("WorkItem"), format!("work item {fltworkitem:#x} runs"));
            let start = Instant::now();
            // SAFETY: the filter's worker routine, called once at PASSIVE_LEVEL with the work
            // item, the referenced filter object and the context it queued.
            run_as(frame, PASSIVE, || unsafe { routine(fltworkitem, object as *const c_void, ctx as *const c_void) });
            let ran = start.elapsed();
            kernel.trace(EventKind::Callback("WorkItem"), format!("work item {fltworkitem:#x} returns"));
            if ran > limit {
                kernel.violation(format!(
                    "{name}: the generic work item {fltworkitem:#x} ran for {} ms, past the model's \
                     limit of {} ms: it held one of the few system worker threads, and the work \
                     items queued behind it waited (IO_WORKITEM_ROUTINE: the routine \"must run \
                     for a limited amount of time; otherwise, the system can deadlock\"). Long \
                     work belongs on a thread of the driver's own (PsCreateSystemThread)",
                    ran.as_millis(),
                    limit.as_millis()
                ));
            }
            kernel.lock().filters[filter].work_items_running -= 1;
        }));
        Status(STATUS_SUCCESS)
    })
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltFreeGenericWorkItem(fltworkitem: PFLT_GENERIC_WORKITEM) {
    api_call(
        "FltFreeGenericWorkItem",
        DISPATCH,
        || format!("work item {fltworkitem:#x}"),
        |k| {
            let mut state = k.lock();
            match state.work_items.get_mut(&fltworkitem) {
                Some(w) if !w.freed && !w.queued => w.freed = true,
                _ => {
                    drop(state);
                    k.violation("FltFreeGenericWorkItem: the work item is not allocated, already freed, or still queued".into());
                }
            }
            Void
        },
    );
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltObjectReference(fltobject: *mut c_void) -> NTSTATUS {
    api_call(
        "FltObjectReference",
        DISPATCH,
        || format!("{fltobject:p}"),
        |k| {
            let mut state = k.lock();
            match state.instance_index(fltobject as isize) {
                Some(i) if !state.instances[i].torn_down => {
                    state.instances[i].object_refs += 1;
                    Status(STATUS_SUCCESS)
                }
                Some(_) => Status(STATUS_FLT_DELETING_OBJECT),
                None => {
                    drop(state);
                    k.violation(
                        "FltObjectReference: the model supports instance objects only".into(),
                    );
                    Status(STATUS_INVALID_PARAMETER)
                }
            }
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltObjectDereference(fltobject: *mut c_void) {
    api_call(
        "FltObjectDereference",
        DISPATCH,
        || format!("{fltobject:p}"),
        |k| {
            let mut state = k.lock();
            match state.instance_index(fltobject as isize) {
                Some(i) if state.instances[i].object_refs > 0 => {
                    state.instances[i].object_refs -= 1;
                }
                _ => {
                    drop(state);
                    k.violation(
                        "FltObjectDereference without a matching FltObjectReference".into(),
                    );
                }
            }
            Void
        },
    );
}

// ==== host hooks (see common::host) ==============================================================

#[unsafe(no_mangle)]
extern "C" fn fltsim_dbg_print(line: *const u8, len: usize) {
    // SAFETY: `common` passes a valid UTF-8 buffer of `len` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(line, len) };
    let text = String::from_utf8_lossy(bytes).into_owned();
    if let Some(k) = crate::kernel::try_kernel() {
        k.trace(EventKind::Log, text);
    }
}

#[unsafe(no_mangle)]
extern "C" fn fltsim_assertion_failure(message: *const u8, len: usize) {
    // SAFETY: as above.
    let bytes = unsafe { std::slice::from_raw_parts(message, len) };
    let text = String::from_utf8_lossy(bytes).into_owned();
    if let Some(k) = crate::kernel::try_kernel() {
        k.violation(text);
    }
}

/// Compile-time proof that every definition above has windows-sys's exact signature.
mod signatures {
    use windows_sys::Wdk::{Storage::FileSystem::Minifilters as flt, System::SystemServices as ss};

    const fn same<T: Copy>(_: T, _: T) {}

    macro_rules! check {
        ($($module:ident :: $name:ident ( $($arg:ident),* );)*) => {
            const _: () = {
                $(same(
                    $module::$name as unsafe extern "system" fn($($arg!()),*) -> _,
                    super::$name as unsafe extern "system" fn($($arg!()),*) -> _,
                );)*
            };
        };
    }
    macro_rules! a {
        () => {
            _
        };
    }

    check! {
        flt::FltRegisterFilter(a, a, a);
        flt::FltStartFiltering(a);
        flt::FltUnregisterFilter(a);
        flt::FltAllocateContext(a, a, a, a, a);
        flt::FltReleaseContext(a);
        flt::FltReferenceContext(a);
        flt::FltDeleteContext(a);
        flt::FltGetSectionContext(a, a, a);
        flt::FltGetStreamHandleContext(a, a, a);
        flt::FltSetStreamHandleContext(a, a, a, a, a);
        flt::FltGetInstanceContext(a, a);
        flt::FltSetInstanceContext(a, a, a, a);
        flt::FltAllocateCallbackData(a, a, a);
        flt::FltAllocateCallbackDataEx(a, a, a, a);
        flt::FltPerformSynchronousIo(a);
        flt::FltPerformAsynchronousIo(a, a, a);
        flt::FltReuseCallbackData(a);
        flt::FltFreeCallbackData(a);
        flt::FltSetCallbackDataDirty(a);
        flt::FltRegisterForDataScan(a);
        flt::FltCreateSectionForDataScan(a, a, a, a, a, a, a, a, a, a, a, a);
        flt::FltCloseSectionForDataScan(a);
        flt::FltGetFileNameInformation(a, a, a);
        flt::FltReleaseFileNameInformation(a);
        flt::FltIsDirectory(a, a, a);
        flt::FltCancelFileOpen(a, a);
        flt::FltGetRequestorProcessId(a);
        flt::FltInitializePushLock(a);
        flt::FltDeletePushLock(a);
        flt::FltAcquirePushLockExclusive(a);
        flt::FltAcquirePushLockShared(a);
        flt::FltReleasePushLock(a);
        flt::FltAllocateGenericWorkItem();
        flt::FltQueueGenericWorkItem(a, a, a, a, a);
        flt::FltFreeGenericWorkItem(a);
        flt::FltObjectReference(a);
        flt::FltObjectDereference(a);
        ss::ObCloseHandle(a, a);
        ss::ObfDereferenceObject(a);
        ss::ObfReferenceObject(a);
        ss::KeGetCurrentIrql();
        ss::ExInitializeRundownProtection(a);
        ss::ExAcquireRundownProtection(a);
        ss::ExReleaseRundownProtection(a);
        ss::ExWaitForRundownProtectionRelease(a);
        ss::ExAllocatePool2(a, a, a);
        ss::ExFreePoolWithTag(a, a);
        ss::KeInitializeEvent(a, a, a);
        ss::KeSetEvent(a, a, a);
        ss::KeClearEvent(a);
        ss::KeWaitForSingleObject(a, a, a, a, a);
        ss::KeDelayExecutionThread(a, a, a);
        ss::PsGetCurrentProcessId();
    }
}

#[allow(dead_code)]
fn _unused(_: &State) {}
