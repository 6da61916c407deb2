//! Generic work items: `FltAllocateGenericWorkItem`, `FltQueueGenericWorkItem`,
//! `FltFreeGenericWorkItem`. They run on the model's small pool of system worker threads
//! (`crate::threads`).
//!
//! **Where its state lives:** `State::work_items` in `state.rs`, run by the system worker pool in
//! `threads.rs`.

use std::{ffi::c_void, sync::Arc};

use windows_sys::{
    Wdk::{
        Storage::FileSystem::Minifilters::{PFLT_GENERIC_WORKITEM, PFLT_GENERIC_WORKITEM_ROUTINE},
        System::SystemServices::WORK_QUEUE_TYPE,
    },
    Win32::Foundation::{
        NTSTATUS, STATUS_FLT_DELETING_OBJECT, STATUS_INSUFFICIENT_RESOURCES,
        STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
    },
};

use super::{DISPATCH, PASSIVE};
use crate::{
    kernel::{EventKind, Frame, Shown, Status, Void, api_call, current_filter, run_as},
    state::{WORKITEM_TAG, WorkItemRec},
};

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
            let start = crate::sched::now();
            // SAFETY: the filter's worker routine, called once at PASSIVE_LEVEL with the work
            // item, the referenced filter object and the context it queued.
            run_as(frame, PASSIVE, || unsafe { routine(fltworkitem, object as *const c_void, ctx as *const c_void) });
            let ran = crate::sched::since(start);
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

signatures! {
    flt::FltAllocateGenericWorkItem();
    flt::FltQueueGenericWorkItem(a, a, a, a, a);
    flt::FltFreeGenericWorkItem(a);
}
