//! Filter Manager's context references, below the C ABI: the releases that the C ABI, the file
//! system (a `SectionNotificationCallback`'s reference) and the machine (a closing file object,
//! instance teardown) all perform. At zero references a context's cleanup callback runs and the
//! context is freed.

use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_INSTANCE_CONTEXT, FLT_SECTION_CONTEXT, FLT_STREAMHANDLE_CONTEXT, PFLT_CONTEXT,
};

use crate::{
    irql,
    kernel::{EventKind, Frame, Kernel, run_as},
    state::Attachment,
};

const PASSIVE: u8 = irql::PASSIVE_LEVEL;

pub(crate) fn context_type_name(t: u16) -> &'static str {
    match u32::from(t) {
        FLT_SECTION_CONTEXT => "FLT_SECTION_CONTEXT",
        FLT_STREAMHANDLE_CONTEXT => "FLT_STREAMHANDLE_CONTEXT",
        FLT_INSTANCE_CONTEXT => "FLT_INSTANCE_CONTEXT",
        _ => "context",
    }
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
        // The balancing FSCTL_SET_PURGE_FAILURE_MODE (SET_PURGE_FAILURE_MODE_DISABLED): after
        // FltCloseSectionForDataScan returns, Filter Manager no longer synchronizes conflicting
        // operations against this section (its page). At zero, pended operations are requeued.
        let s = &mut state.streams[stream];
        s.purge_failure_mode = s.purge_failure_mode.saturating_sub(1);
        let outstanding = s.purge_failure_mode;
        let name = crate::fs::stream_name(&state, stream);
        drop(state);
        k.trace(
            EventKind::FltMgr,
            format!(
                "FSCTL_SET_PURGE_FAILURE_MODE (SET_PURGE_FAILURE_MODE_DISABLED) to the file system \
                 for {name}: outstanding {outstanding}"
            ),
        );
    }
    release_reference(k, context, "FltCloseSectionForDataScan");
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
