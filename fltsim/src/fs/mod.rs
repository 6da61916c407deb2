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

mod create;
mod data;
mod information;
mod purge;

use std::sync::Arc;

use windows_sys::{
    Wdk::{
        Storage::FileSystem::Minifilters::FLT_CALLBACK_DATA,
        System::SystemServices::{
            IRP_MJ_CLEANUP, IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_FLUSH_BUFFERS,
            IRP_MJ_QUERY_INFORMATION, IRP_MJ_READ, IRP_MJ_SET_INFORMATION, IRP_MJ_WRITE,
        },
    },
    Win32::{
        Foundation::{
            NTSTATUS, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
        },
        Storage::FileSystem::{
            DELETE, FILE_APPEND_DATA, FILE_EXECUTE, FILE_READ_DATA, FILE_SHARE_DELETE,
            FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_WRITE_DATA,
        },
    },
};

pub(crate) use self::purge::{
    stream_name, take_failed_in_purge_failure_mode, target_stream, wait_for_sections_closed,
};
use self::{
    create::create,
    data::{flush, read, write},
    information::{query_information, set_information},
};
use crate::{
    kernel::{EventKind, Kernel},
    request::{self, major_name},
    state::{FoState, State, StreamRec},
    status::NtStatus,
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

fn stream_of(state: &State, fo: usize) -> Result<usize, NTSTATUS> {
    state
        .file_objects
        .get(&fo)
        .and_then(|f| f.stream)
        .ok_or(STATUS_INVALID_PARAMETER)
}
