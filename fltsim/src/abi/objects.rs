//! Object references and handles: `ObCloseHandle`, `ObfReferenceObject`, `ObfDereferenceObject`,
//! `ObDereferenceObjectDeferDelete` (sections, file objects, threads), and `FltObjectReference` /
//! `FltObjectDereference` (filter objects).
//!
//! **Where its state lives:** `State::handles` in `state.rs`, and the reference counts
//! (`object_refs`) on the file-object, section and thread records there.

use std::ffi::c_void;

use windows_sys::Win32::Foundation::{
    HANDLE, NTSTATUS, STATUS_FLT_DELETING_OBJECT, STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER,
    STATUS_SUCCESS,
};

use super::{DISPATCH, PASSIVE};
use crate::kernel::{Kernel, Shown, Status, Void, api_call};

#[unsafe(no_mangle)]
unsafe extern "system" fn ObCloseHandle(handle: HANDLE, previousmode: i8) -> NTSTATUS {
    api_call(
        "ObCloseHandle",
        PASSIVE,
        || format!("{:#x}", handle as usize),
        |k| {
            if let Some(status) = super::system_threads::close_thread_handle(k, handle as usize) {
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
        if let Some(refs) = super::system_threads::dereference_thread(k, object as usize) {
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

signatures! {
    flt::FltObjectReference(a);
    flt::FltObjectDereference(a);
    ss::ObCloseHandle(a, a);
    ss::ObfDereferenceObject(a);
    ss::ObfReferenceObject(a);
}
