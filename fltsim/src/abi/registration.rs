//! Registration: `FltRegisterFilter`, `FltStartFiltering`, `FltUnregisterFilter`, and the
//! instance teardown an unregistration drives.
//!
//! **Where its state lives:** `State::filters` and `State::instances` in `state.rs`; attaching and
//! tearing down instances is the machine's (`world/filters.rs`).

use std::{sync::Arc, time::Duration};

use windows_sys::{
    Wdk::{
        Foundation::DRIVER_OBJECT,
        Storage::FileSystem::Minifilters::{
            FLT_CONTEXT_END, FLT_REGISTRATION, FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD,
            IRP_MJ_OPERATION_END, PFLT_FILTER,
        },
    },
    Win32::Foundation::{
        NTSTATUS, STATUS_FLT_INVALID_CONTEXT_REGISTRATION, STATUS_INSUFFICIENT_RESOURCES,
        STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
    },
};

use super::{PASSIVE, out, waits::release_delay_hold};
use crate::{
    kernel::{EventKind, Kernel, Status, Void, api_call},
    state::filter_handle,
    sync::HANG_TIMEOUT,
};

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
        crate::world::teardown_instance(k, instance, FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD);
    }
    // FltUnregisterFilter waits for queued work items and for every context reference.
    let name = k.lock().filters[filter].name.clone();
    let start = crate::sched::now();
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
        if crate::sched::since(start) > HANG_TIMEOUT {
            if work > 0 {
                k.violation(format!(
                    "{name}: FltUnregisterFilter waited {HANG_TIMEOUT:?} for {work} queued work item(s) \
                     to finish: on Windows the unload hangs"
                ));
            }
            break;
        }
        crate::sched::sleep(Duration::from_millis(2));
    }
    k.lock().filters[filter].unregistered = true;
}

signatures! {
    flt::FltRegisterFilter(a, a, a);
    flt::FltStartFiltering(a);
    flt::FltUnregisterFilter(a);
}
