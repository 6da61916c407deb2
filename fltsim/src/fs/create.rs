//! `IRP_MJ_CREATE` in the file system: dispositions, share access, and the destructive create
//! that must purge.

use windows_sys::{
    Wdk::Storage::FileSystem::{
        FILE_CREATE, FILE_DIRECTORY_FILE, FILE_NON_DIRECTORY_FILE, FILE_OPEN, FILE_OPEN_IF,
        FILE_OVERWRITE, FILE_OVERWRITE_IF, FILE_SUPERSEDE, Minifilters::FLT_IO_PARAMETER_BLOCK,
    },
    Win32::{
        Foundation::{
            NTSTATUS, STATUS_FILE_IS_A_DIRECTORY, STATUS_INVALID_PARAMETER, STATUS_NOT_A_DIRECTORY,
            STATUS_OBJECT_NAME_COLLISION, STATUS_OBJECT_NAME_NOT_FOUND,
            STATUS_OBJECT_PATH_NOT_FOUND, STATUS_SHARING_VIOLATION, STATUS_SUCCESS,
        },
        Storage::FileSystem::{
            DELETE, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_WRITE_DATA,
        },
        System::WindowsProgramming::{FILE_CREATED, FILE_OPENED, FILE_OVERWRITTEN},
    },
};

use super::{
    READ_ACCESS, WRITE_ACCESS, add_stream, find_stream, invalidate_file_name, parent,
    purge::{Purge, purge},
    share_conflict,
};
use crate::{
    kernel::Kernel,
    params::{self, Member as _},
    state::State,
};

pub(super) fn create(k: &Kernel, iopb: &FLT_IO_PARAMETER_BLOCK) -> (NTSTATUS, usize) {
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
