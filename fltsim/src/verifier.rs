//! The leak check run when a filter unloads (or its `DriverEntry` fails): everything the filter
//! allocated, referenced, opened or mapped must be gone. Each finding names the API that created
//! the object and the callback it was created in.

use crate::kernel::Kernel;

/// Reports every object `filter` still owns.
pub(crate) fn check_leaks(k: &Kernel, filter: usize) {
    let mut findings = Vec::new();
    {
        let state = k.lock();
        let name = &state.filters[filter].name;
        for c in state
            .contexts
            .values()
            .filter(|c| c.filter == filter && !c.freed && c.refs > 0)
        {
            findings.push(format!(
                "{name}: leaked context ({} bytes, type {:#x}) from {} still has {} reference(s); \
                 on Windows FltUnregisterFilter waits for it forever",
                c.size, c.context_type, c.origin, c.refs
            ));
        }
        for d in state
            .callback_data
            .values()
            .filter(|d| d.filter == Some(filter) && d.allocated && !d.freed)
        {
            findings.push(format!(
                "{name}: callback data from {} was never freed (FltFreeCallbackData)",
                d.origin
            ));
        }
        for s in state.sections.values().filter(|s| s.filter == filter) {
            if s.handle_open {
                findings.push(format!(
                    "{name}: the section handle from {} was never closed (ObCloseHandle/ZwClose)",
                    s.origin
                ));
            }
            if s.object_refs > 0 {
                findings.push(format!("{name}: the section object from {} was never dereferenced (ObDereferenceObject)", s.origin));
            }
            if s.tracked {
                findings.push(format!(
                    "{name}: the section from {} was never closed (FltCloseSectionForDataScan)",
                    s.origin
                ));
            }
        }
        for v in state
            .views
            .values()
            .filter(|v| v.filter == filter && !v.unmapped)
        {
            findings.push(format!(
                "{name}: the view from {} was never unmapped (MmUnmapViewInSystemSpace)",
                v.origin
            ));
        }
        for n in state
            .names
            .values()
            .filter(|n| n.filter == filter && n.refs > 0)
        {
            findings.push(format!(
                "{name}: the file name from {} was never released (FltReleaseFileNameInformation)",
                n.origin
            ));
        }
        for p in state
            .pool
            .values()
            .filter(|p| p.filter == Some(filter) && !p.freed)
        {
            findings.push(format!(
                "{name}: {} bytes of pool from {} were never freed (ExFreePoolWithTag)",
                p.size, p.origin
            ));
        }
        for w in state
            .work_items
            .values()
            .filter(|w| w.filter == Some(filter) && !w.freed)
        {
            findings.push(format!(
                "{name}: the work item from {} was never freed (FltFreeGenericWorkItem)",
                w.origin
            ));
        }
        for t in state.threads.values().filter(|t| t.filter == Some(filter)) {
            if !t.exited {
                findings.push(format!(
                    "{name}: the system thread from {} is still running after the driver \
                     unloaded: its code is unmapped under it (wait for the thread object in the \
                     unload callback)",
                    t.origin
                ));
            }
            if !t.handle_closed {
                findings.push(format!(
                    "{name}: the thread handle from {} was never closed (ZwClose / ObCloseHandle)",
                    t.origin
                ));
            }
            if t.object_refs > 0 {
                findings.push(format!(
                    "{name}: the thread object from {} was referenced and never dereferenced \
                     (ObDereferenceObject)",
                    t.origin
                ));
            }
        }
    }
    // In a fixed order, not the maps': a storm replays its trace (each names its origin by trace
    // position).
    findings.sort();
    for finding in findings {
        k.violation(finding);
    }
}
