//! Names, files and requestors: `FltGetFileNameInformation`, `FltReleaseFileNameInformation`,
//! `FltIsDirectory`, `FltCancelFileOpen`, `FltGetRequestorProcessId`, `PsGetCurrentProcessId`.
//!
//! **Where its state lives:** `State::names` (each name information structure and its references)
//! in `state.rs`, the names themselves from the file objects and streams there (`fs/` sets them at
//! create).

use windows_sys::{
    Wdk::{
        Foundation::FILE_OBJECT,
        Storage::FileSystem::Minifilters::{
            FLT_CALLBACK_DATA, FLT_FILE_NAME_INFORMATION, PFLT_INSTANCE,
        },
    },
    Win32::Foundation::{
        HANDLE, NTSTATUS, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
        UNICODE_STRING,
    },
};

use super::{
    APC, DISPATCH, PASSIVE,
    contexts::{instance_filter, k_describe},
    out,
};
use crate::{
    kernel::{Shown, Status, Void, api_call, current_filter},
    state::NameRec,
    status::NtStatus,
};

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
                unsafe {
                    (*crate::request::iopb(callbackdata.cast_mut())).TargetFileObject as usize
                }
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
            .then(|| unsafe {
                (*crate::request::iopb(callbackdata.cast_mut())).TargetFileObject as usize
            });
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

signatures! {
    flt::FltGetFileNameInformation(a, a, a);
    flt::FltReleaseFileNameInformation(a);
    flt::FltIsDirectory(a, a, a);
    flt::FltCancelFileOpen(a, a);
    flt::FltGetRequestorProcessId(a);
    ss::PsGetCurrentProcessId();
}
