//! The file system beneath the filters: files with contents, share access, and the operations
//! that conflict with a data-scan section.
//!
//! Choices where Windows documentation is silent, made the way NTFS behaves:
//! - Share access follows `IoCheckShareAccess`: an open fails with `STATUS_SHARING_VIOLATION`
//!   when its access is not shared by an existing open, or an existing open's access is not
//!   shared by it. Cleanup (the last handle closing) removes the open from the check.
//!   An open made with `IO_IGNORE_SHARE_ACCESS_CHECK` (a kernel-mode `IoCreateFileEx`) is left
//!   out of the check both ways: it is not checked, and later opens are not checked against it.
//!   The `IoCreateFileEx` page says only that the I/O manager skips the check and that "the file
//!   system might still perform these checks"; the model takes the case a filter must survive,
//!   a writer beside an open that denied write sharing.
//! - A truncating set-end-of-file, a non-cached write, a destructive create (overwrite or
//!   supersede of a non-empty file) and a flush-and-purge (`IRP_MJ_FLUSH_BUFFERS` /
//!   `IRP_MN_FLUSH_AND_PURGE`) purge the stream's cache, which fails while a data-scan section
//!   object on the stream exists: its handle open or its object referenced (the section object
//!   is what holds the cache; "the mapping object must be closed"). What follows is the
//!   `FSCTL_SET_PURGE_FAILURE_MODE` page (ntifs.h). Filter Manager sends that FSCTL with
//!   `SET_PURGE_FAILURE_MODE_ENABLED` when it creates a data-scan section and with `..._DISABLED`
//!   when the section is closed for data scan (`FltCloseSectionForDataScan`, or instance
//!   teardown), traced as Filter Manager events; the stream's count of outstanding ENABLEDs is
//!   `StreamRec::purge_failure_mode`. While it is above zero the file system answers a failed
//!   purge with the page's status (destructive create: `STATUS_USER_MAPPED_FILE`; non-cached
//!   write and set-information: `STATUS_PURGE_FAILED`), which Filter Manager handles
//!   (`io::perform`), and pends any other operation (the flush-and-purge; a cached write needs
//!   no purge in the model) itself until the count is zero, then reissues it. With no ENABLED
//!   outstanding (a section object that outlives its `FltCloseSectionForDataScan`), the failure
//!   goes to the application as `STATUS_USER_MAPPED_FILE`, which is how a truncation of a mapped
//!   file fails (`MmCanFileBeTruncated`); the model uses that status for every operation there.
//! - The purge check and the change it guards are one step: a truncating set-end-of-file or a
//!   destructive create judges the purge and truncates under one lock, as the file system's
//!   locks serialize truncation against section creation on Windows (`MmCanFileBeTruncated` is
//!   asked under the paging I/O resource, which `FltCreateSectionForDataScan`'s section creation
//!   also takes). No section is created, and no view mapped, in between.
//! - A truncation that proceeds while a view of a section on the stream is still mapped is a
//!   verifier finding: on Windows, touching the truncated part of that view raises
//!   `STATUS_IN_PAGE_ERROR`, which a driver without an exception handler (any Rust driver) turns
//!   into a bugcheck.
//! - Filter Manager holds a reference on the section context it passes to a
//!   `SectionNotificationCallback` until the callback returns, so the context stays valid even if
//!   another thread closes the section meanwhile. It holds the instance too, as for any callback
//!   into a filter: instance teardown waits for a notification in flight (counted with the
//!   operations in flight).
//! - A delete disposition (`FileDispositionInformation` with `DeleteFile`, or
//!   `FileDispositionInformationEx` with `FILE_DISPOSITION_DELETE`) needs `DELETE` access and fails
//!   with `STATUS_CANNOT_DELETE` while a view of a data-scan section on the stream is mapped. The
//!   `FILE_DISPOSITION_INFORMATION_EX` page: "A return value of `STATUS_CANNOT_DELETE` indicates that
//!   either the file is read-only, or there is an existing mapped view to the file." A section
//!   with no view mapped does not block it: the file systems' check is
//!   `MmFlushImageSection(MmFlushForDelete)` (`FastFAT`'s `FatSetDispositionInfo`: "Make sure there
//!   is no process mapping this file as an image"), whose page names only an image section that
//!   cannot be flushed and "outstanding write probes on the file's data section", and a read-only
//!   data-scan section has neither. Nor is it a conflict that Filter Manager notifies: the
//!   documented conflicts are I/O "that triggers a cache purge", and setting the disposition does
//!   not. The model records the disposition (`DeletePending` in the standard information); it
//!   does not remove the file when the last handle closes.
//! - A purge is judged against the sections on the stream each time the operation reaches the
//!   file system: a requeued operation meets a section created while it was pended, and is
//!   pended again.
//! - `FILE_OBJECT.FileName` is the opened name until the file system has the create, and no
//!   longer: the `FILE_OBJECT` page says it "should not be considered valid after the file system
//!   starts to process the `IRP_MJ_CREATE` request" (a file system may rewrite or free it; a
//!   reparse does). The model cannot trap a read, so it does the next strictest thing: when the
//!   create reaches the file system, it points `FileName` at [`STALE_FILE_NAME`] instead, so a
//!   filter that reads it later (in post-create, say) gets that text, and a debugger line that
//!   carries it is a verifier finding (`abi::host`).

use std::sync::Arc;

use crate::status::NtStatus;
use windows_sys::{
    Wdk::{
        Storage::FileSystem::{
            FILE_CREATE, FILE_DIRECTORY_FILE, FILE_DISPOSITION_DELETE,
            FILE_DISPOSITION_INFORMATION_EX, FILE_INTERNAL_INFORMATION, FILE_NON_DIRECTORY_FILE,
            FILE_OPEN, FILE_OPEN_IF, FILE_OVERWRITE, FILE_OVERWRITE_IF, FILE_STANDARD_INFORMATION,
            FILE_SUPERSEDE, FileDispositionInformation, FileDispositionInformationEx,
            FileEndOfFileInformation, FileInternalInformation, FileStandardInformation,
            Minifilters::{FLT_CALLBACK_DATA, FLT_IO_PARAMETER_BLOCK},
        },
        System::SystemServices::{
            FILE_END_OF_FILE_INFORMATION, IRP_MJ_CLEANUP, IRP_MJ_CLOSE, IRP_MJ_CREATE,
            IRP_MJ_FLUSH_BUFFERS, IRP_MJ_QUERY_INFORMATION, IRP_MJ_READ, IRP_MJ_SET_INFORMATION,
            IRP_MJ_WRITE, IRP_MN_FLUSH_AND_PURGE, IRP_NOCACHE,
        },
    },
    Win32::{
        Foundation::{
            NTSTATUS, STATUS_ACCESS_DENIED, STATUS_CANNOT_DELETE, STATUS_END_OF_FILE,
            STATUS_FILE_IS_A_DIRECTORY, STATUS_INFO_LENGTH_MISMATCH, STATUS_INVALID_DEVICE_REQUEST,
            STATUS_INVALID_INFO_CLASS, STATUS_INVALID_PARAMETER, STATUS_NOT_A_DIRECTORY,
            STATUS_OBJECT_NAME_COLLISION, STATUS_OBJECT_NAME_NOT_FOUND,
            STATUS_OBJECT_PATH_NOT_FOUND, STATUS_PENDING, STATUS_PURGE_FAILED,
            STATUS_SHARING_VIOLATION, STATUS_SUCCESS, STATUS_USER_MAPPED_FILE,
        },
        Storage::FileSystem::{
            DELETE, FILE_APPEND_DATA, FILE_EXECUTE, FILE_READ_DATA, FILE_SHARE_DELETE,
            FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_WRITE_DATA,
        },
        System::WindowsProgramming::{FILE_CREATED, FILE_OPENED, FILE_OVERWRITTEN},
    },
};

use crate::{
    kernel::{EventKind, Kernel},
    params::{self, Member as _},
    request::{self, major_name},
    state::{FoState, State, StreamRec},
};

/// Case-insensitive path comparison, as NTFS compares names.
pub(crate) fn same_path(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Finds a stream by volume and path.
pub(crate) fn find_stream(state: &State, volume: usize, path: &str) -> Option<usize> {
    state
        .streams
        .iter()
        .position(|s| s.volume == volume && same_path(&s.path, path))
}

/// The parent of a volume-relative path (`\a\b` -> `\a`, `\a` -> `\`).
pub(crate) fn parent(path: &str) -> &str {
    match path.rfind('\\') {
        Some(0) | None => "\\",
        Some(i) => &path[..i],
    }
}

/// Creates a stream record.
pub(crate) fn add_stream(
    state: &mut State,
    volume: usize,
    path: &str,
    is_dir: bool,
    data: Vec<u8>,
) -> usize {
    let fs_context = state.arena.alloc(64, 0) as usize;
    state.next_file_id += 1;
    state.streams.push(StreamRec {
        volume,
        path: path.to_owned(),
        is_dir,
        data,
        file_id: state.next_file_id,
        links: 1,
        delete_pending: false,
        fs_context,
        sections: Vec::new(),
        failures: Vec::new(),
        bad_pages: Vec::new(),
        purge_failure_mode: 0,
        pended: 0,
    });
    state.streams.len() - 1
}

const READ_ACCESS: u32 = FILE_READ_DATA | FILE_EXECUTE;
const WRITE_ACCESS: u32 = FILE_WRITE_DATA | FILE_APPEND_DATA;

/// `IoCheckShareAccess`: may an open with `access`/`share` join the existing opens?
fn share_conflict(state: &State, stream: usize, fo: usize, access: u32, share: u32) -> bool {
    state.file_objects.iter().any(|(addr, other)| {
        // The file system sets a handle's share access in its create (`IoSetShareAccess`), before
        // any post-create callback runs: an open still in its post-create, unless a filter has
        // cancelled it (`FltCancelFileOpen`), already counts.
        let counts = match other.state {
            FoState::Open => true,
            FoState::Creating => !other.canceled,
            FoState::CleanedUp | FoState::Closed => false,
        };
        if *addr == fo || other.stream != Some(stream) || !counts || other.ignores_sharing {
            return false;
        }
        let denies = |have: u32, shared: u32, bits: u32, share_bit: u32| {
            have & bits != 0 && shared & share_bit == 0
        };
        denies(access, other.share, READ_ACCESS, FILE_SHARE_READ)
            || denies(access, other.share, WRITE_ACCESS, FILE_SHARE_WRITE)
            || denies(access, other.share, DELETE, FILE_SHARE_DELETE)
            || denies(other.access, share, READ_ACCESS, FILE_SHARE_READ)
            || denies(other.access, share, WRITE_ACCESS, FILE_SHARE_WRITE)
            || denies(other.access, share, DELETE, FILE_SHARE_DELETE)
    })
}

/// Runs the operation in `data` against the file system and sets its status.
pub(crate) fn execute(k: &Arc<Kernel>, data: *mut FLT_CALLBACK_DATA) {
    let p = request::iopb(data);
    // SAFETY: the parameter block is valid for the whole operation and not written concurrently
    // (the filters have finished their pre-operation callbacks).
    let iopb = unsafe { *p };
    let major = u32::from(iopb.MajorFunction);
    let fo = iopb.TargetFileObject as usize;

    let scripted = {
        let state = k.lock();
        state
            .file_objects
            .get(&fo)
            .and_then(|f| f.stream)
            .and_then(|s| {
                state.streams[s]
                    .failures
                    .iter()
                    .find(|(m, _)| u32::from(*m) == major)
            })
            .map(|(_, status)| *status)
    };
    let (status, information) = if let Some(status) = scripted {
        k.trace(
            EventKind::FileSystem,
            format!(
                "file system fails {} with {} (scripted)",
                major_name(iopb.MajorFunction),
                NtStatus(status)
            ),
        );
        (status, 0)
    } else {
        match major {
            IRP_MJ_CREATE => create(k, &iopb),
            IRP_MJ_READ => read(k, &iopb),
            IRP_MJ_WRITE => write(k, &iopb),
            IRP_MJ_QUERY_INFORMATION => query_information(k, &iopb),
            IRP_MJ_SET_INFORMATION => set_information(k, &iopb),
            IRP_MJ_FLUSH_BUFFERS => flush(k, &iopb),
            IRP_MJ_CLEANUP => transition(k, fo, FoState::CleanedUp),
            IRP_MJ_CLOSE => transition(k, fo, FoState::Closed),
            _ => (STATUS_INVALID_DEVICE_REQUEST, 0),
        }
    };
    request::set_status(data, status, information);
}

fn transition(k: &Kernel, fo: usize, to: FoState) -> (NTSTATUS, usize) {
    if let Some(rec) = k.lock().file_objects.get_mut(&fo) {
        rec.state = to;
    }
    (STATUS_SUCCESS, 0)
}

/// What `FILE_OBJECT.FileName` says once the file system has the create (see the module doc).
pub(crate) const STALE_FILE_NAME: &str =
    "<FILE_OBJECT.FileName is not valid once the file system has the create>";

/// Points `fo`'s `FileName` at [`STALE_FILE_NAME`]: the file system has the create.
fn invalidate_file_name(state: &mut State, fo: usize) {
    let Some(ptr) = state.file_objects.get(&fo).map(|rec| rec.ptr) else {
        return;
    };
    let text: Vec<u16> = STALE_FILE_NAME.encode_utf16().collect();
    let buffer = state.arena.alloc(text.len() * 2, 0).cast::<u16>();
    // SAFETY: `buffer` holds `text.len()` u16s, just allocated in the arena.
    unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), buffer, text.len()) };
    let bytes = u16::try_from(text.len() * 2).expect("short text");
    // SAFETY: the file object lives in the arena, and the file system owns it during the create.
    let f = unsafe { &mut *ptr };
    f.FileName = windows_sys::Win32::Foundation::UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: buffer,
    };
}

fn create(k: &Kernel, iopb: &FLT_IO_PARAMETER_BLOCK) -> (NTSTATUS, usize) {
    // SAFETY: for IRP_MJ_CREATE the `Create` member of the parameter union is the live one;
    // the model's parameter blocks are zeroed when allocated.
    let params = unsafe { params::Create::of(&iopb.Parameters) };
    // SAFETY: the model points SecurityContext at the callback block's security context.
    let access = unsafe { (*params.security_context).DesiredAccess };
    let disposition = params.options >> 24;
    let options = params.options & 0x00FF_FFFF;
    let share = u32::from(params.share_access);
    let fo = iopb.TargetFileObject as usize;
    let mut state = k.lock();
    let Some(rec) = state.file_objects.get(&fo) else {
        return (STATUS_INVALID_PARAMETER, 0);
    };
    let (volume, path, ignores_sharing) = (rec.volume, rec.path.clone(), rec.ignores_sharing);
    invalidate_file_name(&mut state, fo);
    if path.is_empty() {
        // A volume open: no stream behind it.
        return (STATUS_SUCCESS, FILE_OPENED as usize);
    }
    let existing = find_stream(&state, volume, &path);
    let parent_ok = {
        let parent = parent(&path);
        parent == "\\"
            || find_stream(&state, volume, parent).is_some_and(|s| state.streams[s].is_dir)
    };
    let (stream, information) = match (existing, disposition) {
        (None, FILE_OPEN | FILE_OVERWRITE) => {
            return (
                if parent_ok {
                    STATUS_OBJECT_NAME_NOT_FOUND
                } else {
                    STATUS_OBJECT_PATH_NOT_FOUND
                },
                0,
            );
        }
        (None, _) if !parent_ok => return (STATUS_OBJECT_PATH_NOT_FOUND, 0),
        (None, _) => {
            let is_dir = options & FILE_DIRECTORY_FILE != 0;
            (
                add_stream(&mut state, volume, &path, is_dir, Vec::new()),
                FILE_CREATED,
            )
        }
        (Some(_), FILE_CREATE) => return (STATUS_OBJECT_NAME_COLLISION, 0),
        (Some(s), FILE_OPEN | FILE_OPEN_IF) => (s, FILE_OPENED),
        (Some(s), FILE_OVERWRITE | FILE_OVERWRITE_IF | FILE_SUPERSEDE) => (s, FILE_OVERWRITTEN),
        (Some(_), _) => return (STATUS_INVALID_PARAMETER, 0),
    };
    let is_dir = state.streams[stream].is_dir;
    if is_dir && options & FILE_NON_DIRECTORY_FILE != 0 {
        return (STATUS_FILE_IS_A_DIRECTORY, 0);
    }
    if !is_dir && options & FILE_DIRECTORY_FILE != 0 {
        return (STATUS_NOT_A_DIRECTORY, 0);
    }
    // An overwrite implies write access and a supersede delete access: the share check is made
    // against that implied access, though the open is granted (and records) only what it asked
    // for (FastFAT's FatOpenExistingFile: "check against the implied access, but do not modify
    // share access as a result").
    let implied = match (information, disposition) {
        (FILE_OVERWRITTEN, FILE_SUPERSEDE) => access | DELETE,
        (FILE_OVERWRITTEN, _) => access | FILE_WRITE_DATA,
        _ => access,
    };
    if !ignores_sharing && share_conflict(&state, stream, fo, implied, share) {
        return (STATUS_SHARING_VIOLATION, 0);
    }
    // The share access is set with the check, under the same lock (the file system holds the
    // file's lock across both): a create pended below on a data-scan section keeps its place, and
    // a concurrent open is judged against it.
    let rec = state.file_objects.get_mut(&fo).expect("checked above");
    rec.stream = Some(stream);
    rec.access = access;
    rec.share = share;
    if information == FILE_OVERWRITTEN && !state.streams[stream].data.is_empty() {
        drop(state);
        let truncate = |state: &mut State| state.streams[stream].data.clear();
        if let Err(status) = purge(k, stream, Purge::DestructiveCreate, truncate) {
            let mut state = k.lock();
            if let Some(rec) = state.file_objects.get_mut(&fo) {
                rec.stream = None;
            }
            return (status, 0);
        }
        state = k.lock();
    }
    let fs_context = state.streams[stream].fs_context;
    let rec = state.file_objects.get_mut(&fo).expect("checked above");
    let ptr = rec.ptr;
    // SAFETY: the file object lives in the arena; the file system fills it in during create.
    let f = unsafe { &mut *ptr };
    f.FsContext = fs_context as *mut _;
    f.ReadAccess = access & READ_ACCESS != 0;
    f.WriteAccess = access & WRITE_ACCESS != 0;
    f.DeleteAccess = access & DELETE != 0;
    f.SharedRead = share & FILE_SHARE_READ != 0;
    f.SharedWrite = share & FILE_SHARE_WRITE != 0;
    f.SharedDelete = share & FILE_SHARE_DELETE != 0;
    (STATUS_SUCCESS, information as usize)
}

fn stream_of(state: &State, fo: usize) -> Result<usize, NTSTATUS> {
    state
        .file_objects
        .get(&fo)
        .and_then(|f| f.stream)
        .ok_or(STATUS_INVALID_PARAMETER)
}

fn read(k: &Kernel, iopb: &FLT_IO_PARAMETER_BLOCK) -> (NTSTATUS, usize) {
    // SAFETY: for IRP_MJ_READ the `Read` member is the live one; the block is initialized.
    let params = unsafe { params::ReadWrite::of(&iopb.Parameters) };
    let state = k.lock();
    let stream = match stream_of(&state, iopb.TargetFileObject as usize) {
        Ok(s) => &state.streams[s],
        Err(status) => return (status, 0),
    };
    if stream.is_dir {
        return (STATUS_INVALID_DEVICE_REQUEST, 0);
    }
    let Ok(offset) = usize::try_from(params.byte_offset) else {
        return (STATUS_INVALID_PARAMETER, 0);
    };
    if offset >= stream.data.len() {
        return (STATUS_END_OF_FILE, 0);
    }
    let n = (stream.data.len() - offset).min(params.length as usize);
    if n > 0 && params.buffer.is_null() {
        return (STATUS_INVALID_PARAMETER, 0);
    }
    // SAFETY: the issuer provided `Length` writable bytes at ReadBuffer; `n <= Length`.
    unsafe {
        std::ptr::copy_nonoverlapping(stream.data[offset..].as_ptr(), params.buffer.cast(), n);
    };
    (STATUS_SUCCESS, n)
}

fn write(k: &Kernel, iopb: &FLT_IO_PARAMETER_BLOCK) -> (NTSTATUS, usize) {
    // SAFETY: for IRP_MJ_WRITE the `Write` member is the live one; the block is initialized.
    let params = unsafe { params::ReadWrite::of(&iopb.Parameters) };
    let Ok(stream) = stream_of(&k.lock(), iopb.TargetFileObject as usize) else {
        return (STATUS_INVALID_PARAMETER, 0);
    };
    if iopb.IrpFlags & IRP_NOCACHE != 0
        && let Err(status) = purge(k, stream, Purge::NonCachedWrite, |_| ())
    {
        return (status, 0);
    }
    let Ok(offset) = usize::try_from(params.byte_offset) else {
        return (STATUS_INVALID_PARAMETER, 0);
    };
    let len = params.length as usize;
    // Model files are small; an offset beyond any of them is a malformed request (for example
    // a write filled through windows-sys's layout, whose buffer pointer lands on `ByteOffset`).
    if offset
        .checked_add(len)
        .is_none_or(|end| end > MAX_FILE_SIZE)
    {
        return (STATUS_INVALID_PARAMETER, 0);
    }
    if len > 0 && params.buffer.is_null() {
        return (STATUS_INVALID_PARAMETER, 0);
    }
    let mut bytes = vec![0u8; len];
    if len > 0 {
        // SAFETY: the issuer provided `Length` readable bytes at WriteBuffer.
        unsafe {
            std::ptr::copy_nonoverlapping(params.buffer.cast::<u8>(), bytes.as_mut_ptr(), len);
        };
    }
    let mut state = k.lock();
    let file = &mut state.streams[stream].data;
    if file.len() < offset + len {
        file.resize(offset + len, 0);
    }
    file[offset..offset + len].copy_from_slice(&bytes);
    (STATUS_SUCCESS, len)
}

fn query_information(k: &Kernel, iopb: &FLT_IO_PARAMETER_BLOCK) -> (NTSTATUS, usize) {
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
const MAX_FILE_SIZE: usize = 1 << 30;

/// The finding for a set- or query-information request whose bytes 4..8 are not zero: in C they
/// are padding (`FileInformationClass` is `POINTER_ALIGNMENT`, at 8), and windows-sys 0.61's
/// member puts the information class there.
fn windows_sys_layout(major: &str, member: &str) -> String {
    format!(
        "{major}: bytes 4..8 of Parameters.{member} are not zero. fltKernel.h declares \
         FileInformationClass POINTER_ALIGNMENT, so on 64-bit Windows it is at offset 8 and \
         InfoBuffer at 16; bytes 4..8 are padding. The request was filled through windows-sys \
         0.61's member, which drops that alignment (windows-rs #3525): Filter Manager and the \
         file system read the class from the buffer pointer. Fill it through \
         common::params::{member}."
    )
}

fn copy_out<T>(buffer: *mut std::ffi::c_void, length: u32, value: &T) -> (NTSTATUS, usize) {
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

fn set_information(k: &Kernel, iopb: &FLT_IO_PARAMETER_BLOCK) -> (NTSTATUS, usize) {
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
fn disposition(
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
fn end_of_file(
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

fn flush(k: &Kernel, iopb: &FLT_IO_PARAMETER_BLOCK) -> (NTSTATUS, usize) {
    let Ok(stream) = stream_of(&k.lock(), iopb.TargetFileObject as usize) else {
        return (STATUS_INVALID_PARAMETER, 0);
    };
    if u32::from(iopb.MinorFunction) == IRP_MN_FLUSH_AND_PURGE
        && let Err(status) = purge(k, stream, Purge::Other, |_| ())
    {
        return (status, 0);
    }
    (STATUS_SUCCESS, 0)
}

/// An operation that must purge the stream's cache, by its row on the `FSCTL_SET_PURGE_FAILURE_MODE`
/// page: what the file system answers when the purge fails while purge failure mode is
/// outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purge {
    /// `IRP_MJ_CREATE` that overwrites or supersedes (destructive): `STATUS_USER_MAPPED_FILE`.
    DestructiveCreate,
    /// `IRP_MJ_WRITE`, non-cached only: `STATUS_PURGE_FAILED`.
    NonCachedWrite,
    /// `IRP_MJ_SET_INFORMATION` (here a truncating end of file): `STATUS_PURGE_FAILED`.
    Truncate,
    /// Any other operation (here `IRP_MJ_FLUSH_BUFFERS` / `IRP_MN_FLUSH_AND_PURGE`): the file
    /// system pends it itself and reissues it when the outstanding count drops to zero.
    Other,
}

impl Purge {
    fn name(self) -> &'static str {
        match self {
            Self::DestructiveCreate => "the destructive IRP_MJ_CREATE",
            Self::NonCachedWrite => "the non-cached IRP_MJ_WRITE",
            Self::Truncate => "the truncating IRP_MJ_SET_INFORMATION",
            Self::Other => "the IRP_MJ_FLUSH_BUFFERS (flush and purge)",
        }
    }
}

/// The stream an operation's target file object names: its open stream, or for a create the
/// stream its name resolves to.
pub(crate) fn target_stream(state: &State, fo: usize) -> Option<usize> {
    let rec = state.file_objects.get(&fo)?;
    rec.stream
        .or_else(|| find_stream(state, rec.volume, &rec.path))
}

/// `C:\path` of a stream, for messages.
pub(crate) fn stream_name(state: &State, stream: usize) -> String {
    let s = &state.streams[stream];
    format!("{}:{}", state.volumes[s.volume].letter, s.path)
}

/// The file system's purge of `stream`'s cache before `op`. It fails while a data-scan section
/// on the stream still exists (its handle open or its object referenced: the section object is
/// what holds the cache, "the mapping object must be closed"). Then, per the
/// `FSCTL_SET_PURGE_FAILURE_MODE` page: while purge failure mode is outstanding on the stream,
/// the table's operations fail with the table's status, for Filter Manager to pend and requeue
/// (`io::perform`), and any other operation is pended here until the outstanding count drops to
/// zero, then reissued; with none outstanding, the failure goes to the application as
/// `STATUS_USER_MAPPED_FILE`, which is how a truncation of a mapped file fails
/// (`MmCanFileBeTruncated`).
///
/// A purge that succeeds runs `then` (the operation's change to the stream: the truncation)
/// under the same lock that judged it, as the file system holds the file's locks across both:
/// no data-scan section can be created, nor a view mapped, between the check and the change.
pub(crate) fn purge<R>(
    k: &Kernel,
    stream: usize,
    op: Purge,
    then: impl FnOnce(&mut State) -> R,
) -> Result<R, NTSTATUS> {
    let mut then = Some(then);
    loop {
        let (blocking, outstanding, name) = {
            let mut state = k.lock();
            // The earliest-named, not the first in the map's order: a storm replays its trace.
            let blocking = state
                .sections
                .values()
                .filter(|s| s.stream == stream && (s.handle_open || s.object_refs > 0))
                .map(|s| s.origin.clone())
                .min();
            if blocking.is_none() {
                let truncates = matches!(op, Purge::Truncate | Purge::DestructiveCreate);
                let mapped = if truncates {
                    mapped_across_truncation(&state, stream)
                } else {
                    Vec::new()
                };
                let result = (then.take().expect("a purge succeeds once"))(&mut state);
                drop(state);
                report_mapped_across_truncation(k, mapped);
                if truncates {
                    hold_truncation(k);
                }
                return Ok(result);
            }
            (
                blocking,
                state.streams[stream].purge_failure_mode,
                stream_name(&state, stream),
            )
        };
        let origin = blocking.expect("handled above");
        let why = format!("cannot purge {name}: the data-scan section created by {origin} is open");
        if outstanding == 0 {
            k.trace(
                EventKind::FileSystem,
                format!(
                    "{why} and no purge failure mode is outstanding: {} fails \
                     with STATUS_USER_MAPPED_FILE",
                    op.name()
                ),
            );
            return Err(STATUS_USER_MAPPED_FILE);
        }
        let status = match op {
            Purge::DestructiveCreate => STATUS_USER_MAPPED_FILE,
            Purge::NonCachedWrite | Purge::Truncate => STATUS_PURGE_FAILED,
            Purge::Other => {
                k.trace(
                    EventKind::FileSystem,
                    format!(
                        "{why}; purge failure mode is outstanding ({outstanding}), \
                         so it pends {} until the count drops to zero",
                        op.name()
                    ),
                );
                if !wait_for_purge_failure_mode_off(k, stream, "the file system", op.name()) {
                    return Err(STATUS_PENDING);
                }
                k.trace(
                    EventKind::FltMgr,
                    format!("reissues {} on {name}", op.name()),
                );
                continue;
            }
        };
        k.trace(
            EventKind::FileSystem,
            format!(
                "{why}; purge failure mode is outstanding ({outstanding}): {} \
                 fails with {}",
                op.name(),
                NtStatus(status)
            ),
        );
        FAILED_IN_PURGE_FAILURE_MODE.set(true);
        return Err(status);
    }
}

thread_local! {
    /// Set when the file system, on this thread, failed a purge with the page's status because
    /// purge failure mode was outstanding: Filter Manager (`io::perform`) reads and clears it
    /// after the operation returns, so it pends the operation even if the last section closed
    /// in between (the failure was issued inside the mode, and the requeue then runs at once).
    static FAILED_IN_PURGE_FAILURE_MODE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the operation that just returned on this thread failed its purge inside purge
/// failure mode (and clears the mark).
pub(crate) fn take_failed_in_purge_failure_mode() -> bool {
    FAILED_IN_PURGE_FAILURE_MODE.replace(false)
}

/// `World::hold_next_truncation`: the truncation waits here, its purge judged clear.
fn hold_truncation(k: &Kernel) {
    let Some((reached, release)) = k.lock().options.hold_truncation.take() else {
        return;
    };
    k.trace(
        EventKind::Verifier,
        "hold: the file system judged a truncation's purge clear and waits before returning".into(),
    );
    reached.set();
    if !release.wait(Some(TRUNCATION_HOLD_LIMIT)) {
        k.violation(format!(
            "hold: the held truncation was not released within {TRUNCATION_HOLD_LIMIT:?} (a test \
             forgot to release World::hold_next_truncation?)"
        ));
    }
}

/// The creators of data-scan sections on the stream with a view still mapped: a truncation that
/// proceeds now truncates under them (sorted: a storm replays its trace, whatever the map's
/// order).
fn mapped_across_truncation(state: &State, stream: usize) -> Vec<String> {
    let mut origins: Vec<String> = state
        .sections
        .values()
        .filter(|s| s.stream == stream && s.views > 0)
        .map(|s| s.origin.clone())
        .collect();
    origins.sort();
    origins
}

/// Reports a truncation that proceeded while views (of sections by `mapped`) were mapped.
fn report_mapped_across_truncation(k: &Kernel, mapped: Vec<String>) {
    for origin in mapped {
        k.violation(format!(
            "a truncation proceeds while a view of a data-scan section (created by {origin}) is \
             still mapped: touching it now raises STATUS_IN_PAGE_ERROR, a bugcheck in a driver \
             without an exception handler. Stop using and unmap views before the \
             SectionNotificationCallback returns"
        ));
    }
}

/// Waits until no `FSCTL_SET_PURGE_FAILURE_MODE` is outstanding on `stream`, for `who` (Filter
/// Manager or the file system) holding `what` pended. On Windows the wait has no bound and the
/// caller hangs; the model reports a wait longer than its pend limit as a finding and gives up
/// (returns `false`): the operation completes with `STATUS_PENDING`, neither failed nor done.
pub(crate) fn wait_for_purge_failure_mode_off(
    k: &Kernel,
    stream: usize,
    who: &str,
    what: &str,
) -> bool {
    wait_for_sections_closed(k, stream, &[], who, what).is_some()
}

/// Waits until the data-scan sections `pended_on` (Filter Manager's: those linked on `stream`
/// when it pended the operation) are all closed for data scan, or no
/// `FSCTL_SET_PURGE_FAILURE_MODE` is outstanding on `stream` at all (with `pended_on` empty, only
/// the latter: the file system's own pend). Returns the count still outstanding then: above zero,
/// sections created while the operation was pended, which the requeued operation meets, so that
/// Filter Manager pends it again and notifies their owners in turn. `None`, with a finding, past
/// the pend limit (see [`wait_for_purge_failure_mode_off`]).
///
/// Choice where the page is silent: it says Filter Manager requeues once the outstanding count
/// drops to zero. A section created after the notification would then hold the operation,
/// never notified, for as long as its owner keeps it. The model requeues once the sections it
/// notified are closed, and a section created since fails the requeued operation's purge again
/// and is notified in turn: no section can hold a notified operation without a notification.
pub(crate) fn wait_for_sections_closed(
    k: &Kernel,
    stream: usize,
    pended_on: &[usize],
    who: &str,
    what: &str,
) -> Option<u32> {
    let limit = {
        let mut state = k.lock();
        state.streams[stream].pended += 1;
        state.options.pend_limit
    };
    let start = crate::sched::now();
    let left = loop {
        {
            let state = k.lock();
            let s = &state.streams[stream];
            let closed = !pended_on.is_empty() && pended_on.iter().all(|o| !s.sections.contains(o));
            if s.purge_failure_mode == 0 || closed {
                break Some(s.purge_failure_mode);
            }
        }
        if crate::sched::since(start) > limit {
            break None;
        }
        crate::sched::sleep(std::time::Duration::from_millis(1));
    };
    let (name, owners) = {
        let mut state = k.lock();
        state.streams[stream].pended -= 1;
        let owners: Vec<String> = state.streams[stream]
            .sections
            .iter()
            .map(|obj| state.sections[obj].origin.clone())
            .collect();
        (stream_name(&state, stream), owners)
    };
    if left.is_none() {
        k.violation(format!(
            "{what} on {name} has been pended by {who} for {limit:?} on data-scan section(s) \
             that stay open (created by {}): on Windows its caller hangs until every data-scan \
             section on the stream is closed with FltCloseSectionForDataScan. Close the section \
             in the SectionNotificationCallback, or bound the scan",
            owners.join("; ")
        ));
    }
    left
}

/// How long `World::hold_next_truncation` may hold a truncation before it is a finding.
const TRUNCATION_HOLD_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
