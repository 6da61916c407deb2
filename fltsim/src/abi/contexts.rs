//! Contexts: `FltAllocateContext`, `FltReferenceContext`, `FltReleaseContext`,
//! `FltDeleteContext`, and the get/set calls for section, stream handle and instance contexts.
//! The reference bookkeeping they share with the rest of the model is in `crate::context_refs`.
//!
//! **Where its state lives:** `State::contexts` (each context, its type, owner and reference count)
//! in `state.rs`, linked from the instance, stream, file-object and section records there; the
//! references the file system and the machine release are in `context_refs.rs`, where cleanup
//! callbacks run.

use windows_sys::{
    Wdk::{
        Foundation::{FILE_OBJECT, POOL_TYPE},
        Storage::FileSystem::Minifilters::{
            FLT_INSTANCE_CONTEXT, FLT_SECTION_CONTEXT, FLT_SET_CONTEXT_KEEP_IF_EXISTS,
            FLT_SET_CONTEXT_OPERATION, FLT_SET_CONTEXT_REPLACE_IF_EXISTS, FLT_STREAMHANDLE_CONTEXT,
            FLTFL_CONTEXT_REGISTRATION_NO_EXACT_SIZE_MATCH, PFLT_CONTEXT, PFLT_FILTER,
            PFLT_INSTANCE,
        },
    },
    Win32::Foundation::{
        NTSTATUS, STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND, STATUS_FLT_CONTEXT_ALREADY_DEFINED,
        STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER, STATUS_NOT_FOUND,
        STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
    },
};

use super::{APC, DISPATCH, out};
use crate::{
    context_refs::{context_type_name, release_reference},
    kernel::{Kernel, Shown, Void, api_call},
    state::{Attachment, ContextRec},
    status::NtStatus,
};

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
pub(super) fn live_context(k: &Kernel, api: &str, context: PFLT_CONTEXT) -> Option<()> {
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

pub(super) fn instance_filter(
    k: &Kernel,
    api: &str,
    instance: PFLT_INSTANCE,
) -> Option<(usize, usize)> {
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

pub(super) fn k_describe(fo: *const FILE_OBJECT) -> String {
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

signatures! {
    flt::FltAllocateContext(a, a, a, a, a);
    flt::FltReleaseContext(a);
    flt::FltReferenceContext(a);
    flt::FltDeleteContext(a);
    flt::FltGetSectionContext(a, a, a);
    flt::FltGetStreamHandleContext(a, a, a);
    flt::FltSetStreamHandleContext(a, a, a, a, a);
    flt::FltGetInstanceContext(a, a);
    flt::FltSetInstanceContext(a, a, a, a);
}
