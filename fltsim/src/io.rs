//! The I/O path: callback data through the filter stack, then the file system.
//!
//! Pre-operation callbacks run from the highest altitude down, post-operation callbacks from the
//! lowest up, and each `FLT_PREOP_*` / `FLT_POSTOP_*` result is honoured. I/O a filter issues
//! itself (`FltPerformSynchronousIo`) starts below the issuing instance. No model lock is held
//! while filter code runs, so callbacks may call back into the model from any thread.

use std::{ffi::c_void, ptr, sync::Arc};

use windows_sys::{
    Wdk::{
        Foundation::FILE_OBJECT,
        Storage::FileSystem::Minifilters::{
            FLT_CALLBACK_DATA, FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_COMPLETE,
            FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_PREOP_SUCCESS_WITH_CALLBACK, FLT_PREOP_SYNCHRONIZE,
            FLT_RELATED_OBJECTS, PFLT_POST_OPERATION_CALLBACK, PFLT_PRE_OPERATION_CALLBACK,
        },
        System::SystemServices::{
            IRP_MJ_CREATE, IRP_MJ_SET_INFORMATION, IRP_MJ_WRITE, IRP_NOCACHE,
        },
    },
    Win32::Foundation::{
        NTSTATUS, STATUS_PENDING, STATUS_PURGE_FAILED, STATUS_SUCCESS, STATUS_USER_MAPPED_FILE,
    },
};

use crate::{
    irql,
    kernel::{EventKind, Frame, Kernel, run_as},
    request::{iopb, status},
    state::{filter_handle, instance_handle, volume_handle},
    status::NtStatus,
};

fn callback_name(pre: bool, major: u8) -> &'static str {
    const PRE: [&str; 28] = [
        "PreCreate",
        "PreCreateNamedPipe",
        "PreClose",
        "PreRead",
        "PreWrite",
        "PreQueryInformation",
        "PreSetInformation",
        "PreQueryEa",
        "PreSetEa",
        "PreFlushBuffers",
        "PreQueryVolumeInformation",
        "PreSetVolumeInformation",
        "PreDirectoryControl",
        "PreFileSystemControl",
        "PreDeviceControl",
        "PreInternalDeviceControl",
        "PreShutdown",
        "PreLockControl",
        "PreCleanup",
        "PreCreateMailslot",
        "PreQuerySecurity",
        "PreSetSecurity",
        "PrePower",
        "PreSystemControl",
        "PreDeviceChange",
        "PreQueryQuota",
        "PreSetQuota",
        "PrePnp",
    ];
    const POST: [&str; 28] = [
        "PostCreate",
        "PostCreateNamedPipe",
        "PostClose",
        "PostRead",
        "PostWrite",
        "PostQueryInformation",
        "PostSetInformation",
        "PostQueryEa",
        "PostSetEa",
        "PostFlushBuffers",
        "PostQueryVolumeInformation",
        "PostSetVolumeInformation",
        "PostDirectoryControl",
        "PostFileSystemControl",
        "PostDeviceControl",
        "PostInternalDeviceControl",
        "PostShutdown",
        "PostLockControl",
        "PostCleanup",
        "PostCreateMailslot",
        "PostQuerySecurity",
        "PostSetSecurity",
        "PostPower",
        "PostSystemControl",
        "PostDeviceChange",
        "PostQueryQuota",
        "PostSetQuota",
        "PostPnp",
    ];
    let table = if pre { &PRE } else { &POST };
    table
        .get(usize::from(major))
        .copied()
        .unwrap_or(if pre { "PreOther" } else { "PostOther" })
}

/// `IRP_MJ_QUERY_INFORMATION` for `QueryInformation`: the request's name as `wdm.h` spells it.
pub(crate) fn irp_name(major: u8) -> String {
    let mut name = String::from("IRP_MJ_");
    for (i, c) in crate::request::major_name(major).chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

fn preop_name(result: i32) -> String {
    match result {
        FLT_PREOP_SUCCESS_WITH_CALLBACK => "FLT_PREOP_SUCCESS_WITH_CALLBACK".into(),
        FLT_PREOP_SUCCESS_NO_CALLBACK => "FLT_PREOP_SUCCESS_NO_CALLBACK".into(),
        FLT_PREOP_COMPLETE => "FLT_PREOP_COMPLETE".into(),
        FLT_PREOP_SYNCHRONIZE => "FLT_PREOP_SYNCHRONIZE".into(),
        other => format!("FLT_PREOP_CALLBACK_STATUS {other}"),
    }
}

/// One instance's place in the stack for an operation.
struct Layer {
    instance: usize,
    filter: usize,
    volume: usize,
    name: String,
    pre: PFLT_PRE_OPERATION_CALLBACK,
    post: PFLT_POST_OPERATION_CALLBACK,
}

/// A file object's description for the trace.
fn describe(k: &Kernel, file_object: *mut FILE_OBJECT) -> String {
    k.lock().describe_fo(file_object as usize)
}

/// Sends `data` down the stack on `volume`: every instance (or only those below `below`), then
/// the file system. Returns the final status.
pub(crate) fn send(
    k: &Arc<Kernel>,
    data: *mut FLT_CALLBACK_DATA,
    volume: usize,
    below: Option<u32>,
) -> NTSTATUS {
    let p = iopb(data);
    // SAFETY: the parameter block belongs to the callback data, valid for the whole operation.
    let block = unsafe { *p };
    let (major, file_object) = (block.MajorFunction, block.TargetFileObject);
    // A user operation's request reaches Filter Manager from the I/O manager; a filter's own
    // (`below`) from Filter Manager itself, which traces that step.
    if below.is_none() {
        k.trace(
            EventKind::IoManager,
            format!("{} {}", irp_name(major), describe(k, file_object)),
        );
    }
    let layers = {
        let mut state = k.lock();
        let mut layers: Vec<(u32, Layer)> = Vec::new();
        for (index, inst) in state.instances.iter().enumerate() {
            let filter = &state.filters[inst.filter];
            if inst.volume != volume || inst.torn_down || below.is_some_and(|b| inst.altitude >= b)
            {
                continue;
            }
            let Some(&(pre, post)) = filter.operations.get(&major) else {
                continue;
            };
            layers.push((
                inst.altitude,
                Layer {
                    instance: index,
                    filter: inst.filter,
                    volume,
                    name: filter.name.clone(),
                    pre,
                    post,
                },
            ));
        }
        layers.sort_by_key(|(altitude, _)| std::cmp::Reverse(*altitude));
        for (_, layer) in &layers {
            state.instances[layer.instance].in_flight += 1;
        }
        layers.into_iter().map(|(_, l)| l).collect::<Vec<_>>()
    };

    let mut posts: Vec<(&Layer, *mut c_void, bool)> = Vec::new();
    let mut completed = false;
    for layer in &layers {
        let objects = related_objects(layer, file_object);
        // SAFETY: the parameter block is valid; Filter Manager points TargetInstance at the
        // instance being called.
        unsafe { (*p).TargetInstance = instance_handle(layer.instance) };
        let Some(pre) = layer.pre else {
            posts.push((layer, ptr::null_mut(), false));
            continue;
        };
        let name = callback_name(true, major);
        let mut completion: *mut c_void = ptr::null_mut();
        let frame = Frame {
            filter: Some(layer.filter),
            who: layer.name.clone(),
            what: name.into(),
        };
        let enter = format!("{name} {}", describe(k, file_object));
        let result = run_as(frame, irql::PASSIVE_LEVEL, || {
            // Traced inside the callback's context, so the trace shows its thread and IRQL.
            k.trace(EventKind::Callback(name), enter);
            // SAFETY: calling the filter's registered pre-operation callback with valid
            // callback data, related objects and completion-context slot, as Filter Manager does.
            let result = unsafe { pre(data, &raw const objects, &raw mut completion) };
            k.trace(
                EventKind::Callback(name),
                format!("{name} returned {}", preop_name(result)),
            );
            result
        });
        match result {
            FLT_PREOP_SUCCESS_WITH_CALLBACK => posts.push((layer, completion, false)),
            FLT_PREOP_SYNCHRONIZE => posts.push((layer, completion, true)),
            FLT_PREOP_SUCCESS_NO_CALLBACK => {}
            FLT_PREOP_COMPLETE => {
                completed = true;
                break;
            }
            other => {
                k.violation(format!(
                    "{}: {name} returned {}, which the model does not support (pended I/O, \
                     disallowed fast I/O); treated as FLT_PREOP_SUCCESS_NO_CALLBACK",
                    layer.name,
                    preop_name(other)
                ));
            }
        }
    }

    // An operation pended on a data-scan section that never closed (a finding) has not
    // completed: no post-operation callback runs for it.
    let abandoned = !completed && !perform(k, data, major);

    for (layer, completion, synchronized) in posts.into_iter().rev() {
        if abandoned {
            break;
        }
        let Some(post) = layer.post else { continue };
        let objects = related_objects(layer, file_object);
        // SAFETY: as above.
        unsafe { (*p).TargetInstance = instance_handle(layer.instance) };
        let level = if u32::from(major) == IRP_MJ_CREATE || synchronized {
            irql::PASSIVE_LEVEL
        } else {
            k.lock().options.post_op_irql
        };
        let name = callback_name(false, major);
        let frame = Frame {
            filter: Some(layer.filter),
            who: layer.name.clone(),
            what: name.into(),
        };
        let enter = format!(
            "{name} {} status {}",
            describe(k, file_object),
            NtStatus(status(data))
        );
        let result = run_as(frame, level, || {
            k.trace(EventKind::Callback(name), enter);
            // SAFETY: calling the filter's registered post-operation callback with the same
            // callback data, objects and the completion context its pre-operation callback set.
            unsafe { post(data, &raw const objects, completion, 0) }
        });
        if result != FLT_POSTOP_FINISHED_PROCESSING {
            k.violation(format!(
                "{}: {name} returned {result}; the model supports only FLT_POSTOP_FINISHED_PROCESSING",
                layer.name
            ));
        }
    }

    let mut state = k.lock();
    for layer in &layers {
        state.instances[layer.instance].in_flight -= 1;
    }
    drop(state);
    status(data)
}

/// Sends `data` to the file system, and handles a failed purge as Filter Manager does while
/// purge failure mode is outstanding on the stream (the `FSCTL_SET_PURGE_FAILURE_MODE` page):
/// for the table's operations and statuses it pends the operation, calls the
/// `SectionNotificationCallback` of every instance with a data-scan section on the stream to
/// expedite its close, and once no section is left (the outstanding count dropped to zero)
/// requeues the operation to the file system, which issued the failure. Neither the status nor
/// the requeue is visible to filters: their pre-operation callbacks ran once, above, and their
/// post-operation callbacks see only the final status. Returns `false` if the operation stayed
/// pended past the model's pend limit (a finding); it then completes with `STATUS_PENDING`.
fn perform(k: &Arc<Kernel>, data: *mut FLT_CALLBACK_DATA, major: u8) -> bool {
    loop {
        let _ = crate::fs::take_failed_in_purge_failure_mode();
        crate::fs::execute(k, data);
        let failed = status(data);
        k.trace(
            EventKind::FileSystem,
            format!("{} -> {}", irp_name(major), NtStatus(failed)),
        );
        let Some((stream, what)) = purge_failure(k, data, failed) else {
            return true;
        };
        let (name, outstanding) = {
            let state = k.lock();
            (
                crate::fs::stream_name(&state, stream),
                state.streams[stream].purge_failure_mode,
            )
        };
        k.trace(
            EventKind::FltMgr,
            format!(
                "{what} on {name} failed its purge with {} while purge failure mode is \
                 outstanding ({outstanding}): Filter Manager pends it",
                NtStatus(failed)
            ),
        );
        let notified = notify_section_owners(k, data, stream);
        let Some(left) =
            crate::fs::wait_for_sections_closed(k, stream, &notified, "Filter Manager", &what)
        else {
            crate::request::set_status(data, STATUS_PENDING, 0);
            return false;
        };
        k.trace(
            EventKind::FltMgr,
            if left == 0 {
                format!("{what} on {name}: no data-scan section left; requeued to the file system")
            } else {
                // A section created while the operation was pended: the requeue meets it, and
                // its owner is notified in turn.
                format!(
                    "{what} on {name}: the notified data-scan section(s) are closed, {left} \
                     created since is outstanding; requeued to the file system"
                )
            },
        );
    }
}

/// The stream and a description of the operation in `data`, if `failed` is a status Filter
/// Manager pends for it, returned while purge failure mode was outstanding on its stream: the
/// page's table (`IRP_MJ_CREATE` with `STATUS_USER_MAPPED_FILE`, a non-cached `IRP_MJ_WRITE` or
/// an `IRP_MJ_SET_INFORMATION` with `STATUS_PURGE_FAILED`). Any other failure, or one returned
/// outside the mode, goes to the caller.
fn purge_failure(
    k: &Kernel,
    data: *mut FLT_CALLBACK_DATA,
    failed: NTSTATUS,
) -> Option<(usize, String)> {
    // SAFETY: the parameter block belongs to the callback data, valid for the whole operation.
    let block = unsafe { *iopb(data) };
    let what = match (u32::from(block.MajorFunction), failed) {
        (IRP_MJ_CREATE, STATUS_USER_MAPPED_FILE) => "IRP_MJ_CREATE",
        (IRP_MJ_WRITE, STATUS_PURGE_FAILED) if block.IrpFlags & IRP_NOCACHE != 0 => {
            "IRP_MJ_WRITE (non-cached)"
        }
        (IRP_MJ_SET_INFORMATION, STATUS_PURGE_FAILED) => "IRP_MJ_SET_INFORMATION",
        _ => return None,
    };
    if !crate::fs::take_failed_in_purge_failure_mode() {
        return None;
    }
    let state = k.lock();
    let stream = crate::fs::target_stream(&state, block.TargetFileObject as usize)?;
    Some((stream, what.to_owned()))
}

/// Expedites the close of the data-scan sections on `stream`: calls the
/// `SectionNotificationCallback` of each instance that has one linked there (unless a test
/// withheld them, `World::set_section_notifications`). Filter Manager references the section
/// context it passes for the callback's duration, so a filter that closes the section on
/// another thread meanwhile cannot free it under the callback. Returns the sections linked on
/// the stream when it pended the operation (notified or not): the ones it waits for.
fn notify_section_owners(k: &Kernel, data: *mut FLT_CALLBACK_DATA, stream: usize) -> Vec<usize> {
    let (notify, pended_on) = {
        let mut state = k.lock();
        let pended_on = state.streams[stream].sections.clone();
        if !state.options.section_notifications {
            return pended_on;
        }
        let notify = state.streams[stream]
            .sections
            .iter()
            .filter_map(|obj| {
                let section = &state.sections[obj];
                let filter = &state.filters[section.filter];
                let callback = filter.section_notification?;
                Some((
                    section.instance,
                    section.filter,
                    section.context,
                    filter.name.clone(),
                    callback,
                ))
            })
            .collect::<Vec<_>>();
        // It also holds the instance, as for every callback it makes into a filter: instance
        // teardown (and so FltUnregisterFilter) waits for a notification in flight, exactly as
        // for an operation callback in flight. Otherwise teardown could unlink the section and
        // free its context, and the filter could unload, while the callback still runs in it.
        // An instance whose teardown has started but not completed is still notified: a section
        // a post-create in flight created after InstanceTeardownStart is the filter's to give up.
        for (instance, _, context, _, _) in &notify {
            if let Some(c) = state.contexts.get_mut(context) {
                c.refs += 1;
            }
            state.instances[*instance].in_flight += 1;
        }
        (notify, pended_on)
    };
    for (instance, filter, context, name, callback) in notify {
        let what = "SectionNotificationCallback";
        k.trace(
            EventKind::Callback(what),
            format!("{what} -> {name} context {context:#x}"),
        );
        let frame = Frame {
            filter: Some(filter),
            who: name.clone(),
            what: what.into(),
        };
        // SAFETY: calling the filter's registered section notification callback with its
        // instance, the section context it linked, and the conflicting operation's callback data.
        let result = run_as(frame, irql::PASSIVE_LEVEL, || unsafe {
            callback(instance_handle(instance), context as *mut _, data)
        });
        k.trace(
            EventKind::Callback(what),
            format!("{what} <- {name} {}", NtStatus(result)),
        );
        crate::context_refs::release_reference(k, context, "SectionNotificationCallback returned");
        k.lock().instances[instance].in_flight -= 1;
        if result != STATUS_SUCCESS {
            k.violation(format!(
                "{name}: SectionNotificationCallback returned {}; it must return STATUS_SUCCESS",
                NtStatus(result)
            ));
        }
    }
    pended_on
}

fn related_objects(layer: &Layer, file_object: *mut FILE_OBJECT) -> FLT_RELATED_OBJECTS {
    FLT_RELATED_OBJECTS {
        // The structure is a few dozen bytes.
        Size: std::mem::size_of::<FLT_RELATED_OBJECTS>() as u16,
        TransactionContext: 0,
        Filter: filter_handle(layer.filter),
        Volume: volume_handle(layer.volume),
        Instance: instance_handle(layer.instance),
        FileObject: file_object,
        Transaction: ptr::null(),
    }
}
