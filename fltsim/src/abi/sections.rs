//! Sections for data scan: `FltRegisterForDataScan`, `FltCreateSectionForDataScan`,
//! `FltCloseSectionForDataScan`. Views of a section are in `views`.
//!
//! **Where its state lives:** `State::sections` (each section, its handle, object and stream) and
//! the streams' purge-failure counts in `state.rs`; the conflicts a section meets are judged in
//! `fs/purge.rs` and `conflicts.rs`.

use std::{ffi::c_void, sync::Arc, time::Duration};

use windows_sys::{
    Wdk::{
        Foundation::{FILE_OBJECT, OBJECT_ATTRIBUTES},
        Storage::FileSystem::Minifilters::{FLT_SECTION_CONTEXT, PFLT_CONTEXT, PFLT_INSTANCE},
    },
    Win32::{
        Foundation::{
            HANDLE, NTSTATUS, OBJ_KERNEL_HANDLE, STATUS_END_OF_FILE, STATUS_FILE_IS_A_DIRECTORY,
            STATUS_FLT_CONTEXT_ALREADY_DEFINED, STATUS_INSUFFICIENT_RESOURCES,
            STATUS_INVALID_PARAMETER, STATUS_INVALID_PARAMETER_8, STATUS_INVALID_PARAMETER_9,
            STATUS_NOT_FOUND, STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
        },
        System::Memory::SEC_COMMIT,
    },
};

use super::{
    APC, PASSIVE,
    contexts::{instance_filter, k_describe, live_context},
    out,
};
use crate::{
    context_refs::untrack_section,
    kernel::{EventKind, Kernel, Shown, Status, api_call},
    state::{Attachment, HANDLE_TAG, HandleRec, SectionRec},
    status::NtStatus,
    sync::HANG_TIMEOUT,
};

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
    let (handle, object, size, enabled) = {
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
        // Filter Manager brackets the section's life with FSCTL_SET_PURGE_FAILURE_MODE: ENABLED
        // now, DISABLED in FltCloseSectionForDataScan (or at instance teardown), so that a purge
        // the section makes fail is pended and requeued rather than failed (the
        // FSCTL_SET_PURGE_FAILURE_MODE page).
        state.streams[stream].purge_failure_mode += 1;
        let enabled = format!(
            "FSCTL_SET_PURGE_FAILURE_MODE (SET_PURGE_FAILURE_MODE_ENABLED) to the file system for \
             {}: outstanding {}",
            crate::fs::stream_name(&state, stream),
            state.streams[stream].purge_failure_mode
        );
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
        (handle, object, size, enabled)
    };
    k.trace(EventKind::FltMgr, enabled);
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
fn deliver_race(k: &Arc<Kernel>, stream: usize, conflict: crate::conflicts::Conflict) {
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
    crate::sched::spawn(move || {
        let result = crate::world::race_conflict(&kernel, &path, conflict);
        let _ = tx.send(result);
    });
    // The conflict either completes, or is pended on this very section (purge failure mode is
    // outstanding since the section was linked) and completes only after the creator closes it:
    // the create goes on as soon as either happens, and a pended result is collected by
    // `World::race_results`.
    let start = crate::sched::now();
    loop {
        match rx.try_recv() {
            Ok(result) => {
                k.lock().race_results.push(result);
                return;
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
        }
        if k.lock().streams[stream].pended > 0 {
            k.lock().race_pending.push(rx);
            return;
        }
        if crate::sched::since(start) > HANG_TIMEOUT {
            k.violation(format!(
                "deadlock: the conflicting {conflict:?} neither finished nor pended within \
                 {HANG_TIMEOUT:?} while FltCreateSectionForDataScan was running (the section \
                 notification callback waited on the thread creating the section?)"
            ));
            return;
        }
        crate::sched::sleep(Duration::from_millis(1));
    }
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

signatures! {
    flt::FltRegisterForDataScan(a);
    flt::FltCreateSectionForDataScan(a, a, a, a, a, a, a, a, a, a, a, a);
    flt::FltCloseSectionForDataScan(a);
}
