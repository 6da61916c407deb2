//! The I/O path: callback data through the filter stack, then the file system.
//!
//! Pre-operation callbacks run from the highest altitude down, post-operation callbacks from the
//! lowest up, and each `FLT_PREOP_*` / `FLT_POSTOP_*` result is honoured. I/O a filter issues
//! itself (`FltPerformSynchronousIo`) starts below the issuing instance. No model lock is held
//! while filter code runs, so callbacks may call back into the model from any thread.

use std::{ffi::c_void, ptr, sync::Arc};

use common::{NtStatus, irql};
use windows_sys::{
    Wdk::{
        Foundation::FILE_OBJECT,
        Storage::FileSystem::Minifilters::{
            FLT_CALLBACK_DATA, FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_COMPLETE,
            FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_PREOP_SUCCESS_WITH_CALLBACK, FLT_PREOP_SYNCHRONIZE,
            FLT_RELATED_OBJECTS, PFLT_POST_OPERATION_CALLBACK, PFLT_PRE_OPERATION_CALLBACK,
        },
        System::SystemServices::IRP_MJ_CREATE,
    },
    Win32::Foundation::NTSTATUS,
};

use crate::{
    kernel::{EventKind, Frame, Kernel, run_as},
    request::{iopb, status},
    state::{filter_handle, instance_handle, volume_handle},
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

    if !completed {
        crate::fs::execute(k, data);
        k.trace(
            EventKind::FileSystem,
            format!("{} -> {}", irp_name(major), NtStatus(status(data))),
        );
    }

    for (layer, completion, synchronized) in posts.into_iter().rev() {
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
