//! Query and set information: the classes the model answers, the layout checks, the delete
//! disposition and the truncating end of file.

use windows_sys::{
    Wdk::{
        Storage::FileSystem::{
            FILE_DISPOSITION_DELETE, FILE_DISPOSITION_INFORMATION_EX, FILE_INTERNAL_INFORMATION,
            FILE_STANDARD_INFORMATION, FileDispositionInformation, FileDispositionInformationEx,
            FileEndOfFileInformation, FileInternalInformation, FileStandardInformation,
            Minifilters::FLT_IO_PARAMETER_BLOCK,
        },
        System::SystemServices::FILE_END_OF_FILE_INFORMATION,
    },
    Win32::{
        Foundation::{
            NTSTATUS, STATUS_ACCESS_DENIED, STATUS_CANNOT_DELETE, STATUS_INFO_LENGTH_MISMATCH,
            STATUS_INVALID_INFO_CLASS, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
        },
        Storage::FileSystem::{DELETE, FILE_WRITE_DATA},
    },
};

use super::{
    purge::{Purge, purge},
    stream_of,
};
use crate::{
    kernel::Kernel,
    params::{self, Member as _},
    state::State,
};

pub(super) fn query_information(k: &Kernel, iopb: &FLT_IO_PARAMETER_BLOCK) -> (NTSTATUS, usize) {
    // SAFETY: for IRP_MJ_QUERY_INFORMATION the `QueryFileInformation` member is the live one;
    // the block is initialized.
    let params = unsafe { params::QueryFile::of(&iopb.Parameters) };
    if params.pad_before_class != 0 {
        k.violation(windows_sys_layout(
            "IRP_MJ_QUERY_INFORMATION",
            "QueryFileInformation",
        ));
    }
    let state = k.lock();
    let stream = match stream_of(&state, iopb.TargetFileObject as usize) {
        Ok(s) => &state.streams[s],
        Err(status) => return (status, 0),
    };
    match params.class {
        class if class == FileStandardInformation => {
            let info = FILE_STANDARD_INFORMATION {
                AllocationSize: (stream.data.len() as i64 + 4095) & !4095,
                EndOfFile: stream.data.len() as i64,
                NumberOfLinks: stream.links,
                DeletePending: stream.delete_pending,
                Directory: stream.is_dir,
            };
            copy_out(params.info_buffer, params.length, &info)
        }
        class if class == FileInternalInformation => copy_out(
            params.info_buffer,
            params.length,
            &FILE_INTERNAL_INFORMATION {
                IndexNumber: stream.file_id,
            },
        ),
        _ => (STATUS_INVALID_INFO_CLASS, 0),
    }
}

/// The largest file the model keeps (1 GiB); a request beyond it is malformed.
pub(super) const MAX_FILE_SIZE: usize = 1 << 30;

/// The finding for a set- or query-information request whose bytes 4..8 are not zero: in C they
/// are padding (`FileInformationClass` is `POINTER_ALIGNMENT`, at 8), and windows-sys 0.61's
/// member puts the information class there.
pub(super) fn windows_sys_layout(major: &str, member: &str) -> String {
    format!(
        "{major}: bytes 4..8 of Parameters.{member} are not zero. fltKernel.h declares \
         FileInformationClass POINTER_ALIGNMENT, so on 64-bit Windows it is at offset 8 and \
         InfoBuffer at 16; bytes 4..8 are padding. The request was filled through windows-sys \
         0.61's member, which drops that alignment (windows-rs #3525): Filter Manager and the \
         file system read the class from the buffer pointer. Fill it through \
         common::params::{member}."
    )
}

pub(super) fn copy_out<T>(
    buffer: *mut std::ffi::c_void,
    length: u32,
    value: &T,
) -> (NTSTATUS, usize) {
    let size = std::mem::size_of::<T>();
    if (length as usize) < size || buffer.is_null() {
        return (STATUS_INFO_LENGTH_MISMATCH, 0);
    }
    // SAFETY: the caller's buffer holds at least `size` writable bytes (checked); it may be
    // unaligned, so copy bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            std::ptr::from_ref(value).cast::<u8>(),
            buffer.cast::<u8>(),
            size,
        );
    };
    (STATUS_SUCCESS, size)
}

pub(super) fn set_information(k: &Kernel, iopb: &FLT_IO_PARAMETER_BLOCK) -> (NTSTATUS, usize) {
    // SAFETY: for IRP_MJ_SET_INFORMATION the `SetFileInformation` member is the live one; the
    // block is initialized.
    let params = unsafe { params::SetFile::of(&iopb.Parameters) };
    if params.pad_before_class != 0 {
        k.violation(windows_sys_layout(
            "IRP_MJ_SET_INFORMATION",
            "SetFileInformation",
        ));
    }
    match params.class {
        class if class == FileEndOfFileInformation => end_of_file(k, iopb, params),
        class if class == FileDispositionInformation || class == FileDispositionInformationEx => {
            disposition(k, iopb, params)
        }
        _ => (STATUS_INVALID_INFO_CLASS, 0),
    }
}

/// `FileDispositionInformation(Ex)`: sets or clears the delete disposition (see the module notes
/// for when a delete is refused).
pub(super) fn disposition(
    k: &Kernel,
    iopb: &FLT_IO_PARAMETER_BLOCK,
    params: &params::SetFile,
) -> (NTSTATUS, usize) {
    let ex = params.class == FileDispositionInformationEx;
    let needed = if ex {
        std::mem::size_of::<FILE_DISPOSITION_INFORMATION_EX>()
    } else {
        // FILE_DISPOSITION_INFORMATION: one BOOLEAN.
        1
    };
    if (params.length as usize) < needed || params.info_buffer.is_null() {
        return (STATUS_INFO_LENGTH_MISMATCH, 0);
    }
    let delete = if ex {
        // SAFETY: the buffer holds a FILE_DISPOSITION_INFORMATION_EX (length checked).
        let info = unsafe {
            params
                .info_buffer
                .cast::<FILE_DISPOSITION_INFORMATION_EX>()
                .read_unaligned()
        };
        info.Flags & FILE_DISPOSITION_DELETE != 0
    } else {
        // SAFETY: the buffer holds at least the one-byte BOOLEAN `DeleteFile` (length checked);
        // read as a byte, since the caller may have put any value there.
        unsafe { params.info_buffer.cast::<u8>().read() != 0 }
    };
    let mut state = k.lock();
    let fo = iopb.TargetFileObject as usize;
    let Ok(stream) = stream_of(&state, fo) else {
        return (STATUS_INVALID_PARAMETER, 0);
    };
    // "The caller must have DELETE access to a given file" (FILE_DISPOSITION_INFORMATION_EX).
    if state.file_objects[&fo].access & DELETE == 0 {
        return (STATUS_ACCESS_DENIED, 0);
    }
    if delete
        && state
            .sections
            .values()
            .any(|section| section.stream == stream && section.views > 0)
    {
        return (STATUS_CANNOT_DELETE, 0);
    }
    state.streams[stream].delete_pending = delete;
    (STATUS_SUCCESS, 0)
}

/// `FileEndOfFileInformation`: a truncation conflicts with a data-scan section.
pub(super) fn end_of_file(
    k: &Kernel,
    iopb: &FLT_IO_PARAMETER_BLOCK,
    params: &params::SetFile,
) -> (NTSTATUS, usize) {
    if (params.length as usize) < std::mem::size_of::<FILE_END_OF_FILE_INFORMATION>()
        || params.info_buffer.is_null()
    {
        return (STATUS_INFO_LENGTH_MISMATCH, 0);
    }
    // SAFETY: the buffer holds a FILE_END_OF_FILE_INFORMATION (length checked); read unaligned.
    let eof = unsafe {
        params
            .info_buffer
            .cast::<FILE_END_OF_FILE_INFORMATION>()
            .read_unaligned()
    };
    let Ok(new_len) = usize::try_from(eof.EndOfFile) else {
        return (STATUS_INVALID_PARAMETER, 0);
    };
    if new_len > MAX_FILE_SIZE {
        return (STATUS_INVALID_PARAMETER, 0);
    }
    let (stream, access, old_len) = {
        let state = k.lock();
        let fo = iopb.TargetFileObject as usize;
        let Ok(stream) = stream_of(&state, fo) else {
            return (STATUS_INVALID_PARAMETER, 0);
        };
        (
            stream,
            state.file_objects[&fo].access,
            state.streams[stream].data.len(),
        )
    };
    if access & FILE_WRITE_DATA == 0 {
        return (STATUS_ACCESS_DENIED, 0);
    }
    let resize = |state: &mut State| state.streams[stream].data.resize(new_len, 0);
    if new_len < old_len {
        // The truncation happens inside the purge's critical section (see `purge`).
        if let Err(status) = purge(k, stream, Purge::Truncate, resize) {
            return (status, 0);
        }
    } else {
        resize(&mut k.lock());
    }
    (STATUS_SUCCESS, 0)
}
