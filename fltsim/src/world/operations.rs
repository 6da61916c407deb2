//! The user-mode operations a test issues (open, read, write, set information, purge, query,
//! close), each sent through the filter stack, and the racing operation the C ABI delivers.

use std::{ffi::c_void, sync::Arc};

use windows_sys::{
    Wdk::{
        Foundation::FILE_OBJECT,
        Storage::FileSystem::{
            FILE_DISPOSITION_INFORMATION_EX, FILE_INTERNAL_INFORMATION, FILE_STANDARD_INFORMATION,
            FileDispositionInformation, FileDispositionInformationEx, FileEndOfFileInformation,
            FileInternalInformation, FileStandardInformation, GUID_ECP_PREFETCH_OPEN,
            Minifilters::FLT_CALLBACK_DATA, PREFETCH_OPEN_ECP_CONTEXT,
        },
        System::SystemServices::{
            FILE_END_OF_FILE_INFORMATION, FO_VOLUME_OPEN, IRP_MJ_CLEANUP, IRP_MJ_CLOSE,
            IRP_MJ_CREATE, IRP_MJ_FLUSH_BUFFERS, IRP_MJ_QUERY_INFORMATION, IRP_MJ_READ,
            IRP_MJ_SET_INFORMATION, IRP_MJ_WRITE, IRP_MN_FLUSH_AND_PURGE, IRP_NOCACHE,
        },
    },
    Win32::{
        Foundation::{STATUS_ACCESS_DENIED, STATUS_INVALID_HANDLE, STATUS_PENDING, UNICODE_STRING},
        Storage::FileSystem::{FILE_APPEND_DATA, FILE_WRITE_DATA},
    },
};

use crate::{
    conflicts::Conflict,
    io,
    kernel::{Activation, EventKind, Kernel, set_process_id},
    params::{self, Member as _},
    request::{self, CallbackBlock},
    state::{FileObjectRec, FoState},
    status::NtStatus,
};

use super::{EcpFrom, Handle, Open, World};

impl World {
    // ---- user operations ----------------------------------------------------------------------

    /// Runs `body` as a request from user-mode `process`.
    pub(super) fn user_op<R>(process: u32, body: impl FnOnce() -> R) -> R {
        let previous = set_process_id(process);
        let result = body();
        set_process_id(previous);
        result
    }

    /// `NtCreateFile`: opens (or creates) `path`, through every filter's create callbacks.
    /// `C:` alone opens the volume.
    ///
    /// # Errors
    /// The final status of the create, as the application would see it.
    pub fn open(&self, path: &str, how: Open) -> Result<Handle, NtStatus> {
        let (volume, rel) = self.split(path);
        self.kernel.trace(
            EventKind::User,
            format!(
                "open {path} access {:#x} share {:#x}",
                how.access, how.share
            ),
        );
        let (fo, data) = {
            let mut state = self.kernel.lock();
            let fo = state
                .arena
                .alloc(std::mem::size_of::<FILE_OBJECT>(), 0)
                .cast::<FILE_OBJECT>();
            let name: Vec<u16> = rel.encode_utf16().collect();
            let buffer = state.arena.alloc(name.len() * 2, 0).cast::<u16>();
            // SAFETY: `buffer` holds `name.len()` u16s; `fo` is a zeroed FILE_OBJECT in the arena.
            unsafe { std::ptr::copy_nonoverlapping(name.as_ptr(), buffer, name.len()) };
            let bytes = u16::try_from(name.len() * 2).expect("short path");
            // SAFETY: as above; the file object is ours until the create returns.
            let f = unsafe { &mut *fo };
            f.Type = 5;
            f.Size = i16::try_from(std::mem::size_of::<FILE_OBJECT>()).expect("small");
            f.FileName = UNICODE_STRING {
                Length: bytes,
                MaximumLength: bytes,
                Buffer: buffer,
            };
            if rel.is_empty() {
                f.Flags |= FO_VOLUME_OPEN;
            }
            state.file_objects.insert(
                fo as usize,
                FileObjectRec {
                    ptr: fo,
                    volume,
                    stream: None,
                    path: rel,
                    access: 0,
                    share: 0,
                    state: FoState::Creating,
                    canceled: false,
                    process: how.process,
                    refs: 0,
                    ignores_sharing: how.ignore_share_access,
                },
            );
            let data = request::new_callback_data(&mut state, 0, fo, false);
            let block = request::block(data);
            // SAFETY: the block was just allocated and is ours.
            let b = unsafe { &mut *block };
            b.security.DesiredAccess = how.access;
            b.iopb.MajorFunction = u8::try_from(IRP_MJ_CREATE).expect("0");
            let security = &raw mut b.security;
            // SAFETY: a create's member, in the zeroed block (C layout: `params`).
            let create = unsafe { params::Create::of_mut(&mut b.iopb.Parameters) };
            create.security_context = security;
            create.options = (how.disposition << 24) | how.options;
            create.share_access = u16::try_from(how.share).expect("share bits");
            b.iopb.OperationFlags = how.operation_flags;
            state.callback_data.insert(data as usize, user_data_rec());
            if let Some(from) = how.prefetch {
                // The list and the ECP's context are opaque blocks to the filter: arena memory.
                let list = state.arena.alloc(16, 0) as usize;
                let size = std::mem::size_of::<PREFETCH_OPEN_ECP_CONTEXT>();
                let context = state.arena.alloc(size, 0) as usize;
                state.ecp_lists.insert(
                    list,
                    crate::state::EcpListRec {
                        data: data as usize,
                        entries: vec![crate::state::EcpRec {
                            guid: crate::state::guid_u128(&GUID_ECP_PREFETCH_OPEN),
                            context,
                            size: u32::try_from(size).expect("small"),
                            from_user: from == EcpFrom::User,
                        }],
                    },
                );
            }
            (fo, data)
        };
        let status = Self::user_op(how.process, || io::send(&self.kernel, data, volume, None));
        let mut state = self.kernel.lock();
        // The create is over: its ECP list is gone with it.
        state.ecp_lists.retain(|_, l| l.data != data as usize);
        let rec = state
            .file_objects
            .get_mut(&(fo as usize))
            .expect("file object");
        let canceled = rec.canceled;
        let opened = rec.stream.is_some() || rec.path.is_empty();
        // STATUS_PENDING: a create the model gave up waiting for (pended on a data-scan section
        // that never closed, a finding); it did not open.
        if NtStatus(status).is_success() && status != STATUS_PENDING && !canceled {
            rec.state = FoState::Open;
            drop(state);
            self.kernel.trace(
                EventKind::User,
                format!("open {path} -> {}", NtStatus(status)),
            );
            return Ok(Handle(fo as usize));
        }
        rec.state = FoState::Closed;
        drop(state);
        if NtStatus(status).is_success() && canceled {
            self.kernel.violation(format!(
                "open {path}: FltCancelFileOpen was called but the create completed with {}; a \
                 filter that cancels an open must also fail it (set IoStatus.Status)",
                NtStatus(status)
            ));
        } else if opened && !canceled {
            self.kernel.violation(format!(
                "open {path}: the file system opened the file but a filter failed the create with \
                 {} without calling FltCancelFileOpen first",
                NtStatus(status)
            ));
        }
        crate::context_refs::release_file_object(&self.kernel, fo as usize);
        self.kernel.trace(
            EventKind::User,
            format!("open {path} -> {}", NtStatus(status)),
        );
        Err(NtStatus(status))
    }

    pub(super) fn send(&self, handle: Handle, fill: impl FnOnce(&mut CallbackBlock)) -> NtStatus {
        let (volume, process, data) = {
            let mut state = self.kernel.lock();
            let Some(rec) = state.file_objects.get(&handle.0) else {
                return NtStatus(STATUS_INVALID_HANDLE);
            };
            if rec.state != FoState::Open {
                return NtStatus(STATUS_INVALID_HANDLE);
            }
            let (volume, process, ptr) = (rec.volume, rec.process, rec.ptr);
            let data = request::new_callback_data(&mut state, 0, ptr, false);
            state.callback_data.insert(data as usize, user_data_rec());
            (volume, process, data)
        };
        // SAFETY: freshly allocated callback data owned by this operation.
        fill(unsafe { &mut *request::block(data) });
        NtStatus(Self::user_op(process, || {
            io::send(&self.kernel, data, volume, None)
        }))
    }

    /// `NtReadFile`: reads up to `len` bytes at `offset`, cached.
    ///
    /// # Errors
    /// The status of the read (`STATUS_END_OF_FILE` past the end).
    pub fn read(&self, handle: Handle, offset: u64, len: u32) -> Result<Vec<u8>, NtStatus> {
        let mut buffer = vec![0u8; len as usize];
        let mut info = 0;
        let status = self.send(handle, |b| {
            b.iopb.MajorFunction = IRP_MJ_READ as u8;
            // SAFETY: a read's member, in the zeroed block (C layout: `params`).
            let read = unsafe { params::ReadWrite::of_mut(&mut b.iopb.Parameters) };
            read.length = len;
            read.byte_offset = i64::try_from(offset).expect("offset");
            read.buffer = buffer.as_mut_ptr().cast::<c_void>();
            info = std::ptr::from_mut(&mut b.data) as usize;
        });
        self.kernel.trace(
            EventKind::User,
            format!("read {len} bytes at {offset} -> {status}"),
        );
        completed(status)?;
        // SAFETY: `info` is the operation's callback data, still allocated in the arena.
        let n = unsafe { (*(info as *const FLT_CALLBACK_DATA)).IoStatus.Information };
        buffer.truncate(n);
        Ok(buffer)
    }

    /// `NtWriteFile`: writes `bytes` at `offset`; `non_cached` sets `IRP_NOCACHE`, which
    /// conflicts with a data-scan section.
    ///
    /// # Errors
    /// `STATUS_ACCESS_DENIED` for a handle without write or append access (the I/O manager's
    /// check), else the status of the write.
    pub fn write(
        &self,
        handle: Handle,
        offset: u64,
        bytes: &[u8],
        non_cached: bool,
    ) -> Result<(), NtStatus> {
        // NtWriteFile needs write or append access; the I/O manager refuses it otherwise.
        self.io_manager_access_check(handle, FILE_WRITE_DATA | FILE_APPEND_DATA, "write")?;
        let mut copy = bytes.to_vec();
        let status = self.send(handle, |b| {
            b.iopb.MajorFunction = IRP_MJ_WRITE as u8;
            b.iopb.IrpFlags = if non_cached { IRP_NOCACHE } else { 0 };
            // SAFETY: a write's member, in the zeroed block (C layout: `params`).
            let write = unsafe { params::ReadWrite::of_mut(&mut b.iopb.Parameters) };
            write.length = u32::try_from(copy.len()).expect("short write");
            write.byte_offset = i64::try_from(offset).expect("offset");
            write.buffer = copy.as_mut_ptr().cast::<c_void>();
        });
        self.kernel.trace(
            EventKind::User,
            format!(
                "write {} bytes at {offset}{} -> {status}",
                bytes.len(),
                if non_cached { " (non-cached)" } else { "" }
            ),
        );
        completed(status)
    }

    /// `NtSetInformationFile(FileEndOfFileInformation)`: a size below the current one truncates,
    /// which conflicts with a data-scan section.
    ///
    /// # Errors
    /// The status of the set-information.
    pub fn set_end_of_file(&self, handle: Handle, size: u64) -> Result<(), NtStatus> {
        let mut info = FILE_END_OF_FILE_INFORMATION {
            EndOfFile: i64::try_from(size).expect("size"),
        };
        let status = self.send(handle, |b| {
            b.iopb.MajorFunction = IRP_MJ_SET_INFORMATION as u8;
            // SAFETY: a set-information's member, in the zeroed block (C layout: `params`).
            let set = unsafe { params::SetFile::of_mut(&mut b.iopb.Parameters) };
            set.length = std::mem::size_of::<FILE_END_OF_FILE_INFORMATION>() as u32;
            set.class = FileEndOfFileInformation;
            set.info_buffer = std::ptr::from_mut(&mut info).cast();
        });
        self.kernel.trace(
            EventKind::User,
            format!("set end of file to {size} -> {status}"),
        );
        completed(status)
    }

    /// `NtSetInformationFile(FileDispositionInformation)`: `DeleteFile` set marks the file for
    /// deletion (delete pending), clear unmarks it. Needs `DELETE` access; refused with
    /// `STATUS_CANNOT_DELETE` while a view of a data-scan section on the stream is mapped.
    ///
    /// # Errors
    /// The status of the set-information.
    pub fn set_disposition(&self, handle: Handle, delete: bool) -> Result<(), NtStatus> {
        // FILE_DISPOSITION_INFORMATION is one BOOLEAN.
        let mut info = u8::from(delete);
        let status = self.send(handle, |b| {
            b.iopb.MajorFunction = IRP_MJ_SET_INFORMATION as u8;
            // SAFETY: a set-information's member, in the zeroed block (C layout: `params`).
            let set = unsafe { params::SetFile::of_mut(&mut b.iopb.Parameters) };
            set.length = 1;
            set.class = FileDispositionInformation;
            set.info_buffer = std::ptr::from_mut(&mut info).cast();
        });
        self.kernel.trace(
            EventKind::User,
            format!("set disposition: delete {delete} -> {status}"),
        );
        completed(status)
    }

    /// `NtSetInformationFile(FileDispositionInformationEx)` with `flags`
    /// (`FILE_DISPOSITION_DELETE`, ...), judged as [`set_disposition`](Self::set_disposition).
    ///
    /// # Errors
    /// The status of the set-information.
    pub fn set_disposition_ex(&self, handle: Handle, flags: u32) -> Result<(), NtStatus> {
        let mut info = FILE_DISPOSITION_INFORMATION_EX { Flags: flags };
        let status = self.send(handle, |b| {
            b.iopb.MajorFunction = IRP_MJ_SET_INFORMATION as u8;
            // SAFETY: a set-information's member, in the zeroed block (C layout: `params`).
            let set = unsafe { params::SetFile::of_mut(&mut b.iopb.Parameters) };
            set.length = std::mem::size_of::<FILE_DISPOSITION_INFORMATION_EX>() as u32;
            set.class = FileDispositionInformationEx;
            set.info_buffer = std::ptr::from_mut(&mut info).cast();
        });
        self.kernel.trace(
            EventKind::User,
            format!("set disposition (ex): flags {flags:#x} -> {status}"),
        );
        completed(status)
    }

    /// The I/O manager's access check before it builds a request: `STATUS_ACCESS_DENIED` when the
    /// handle was granted none of `needed` (no request reaches a filter).
    pub(super) fn io_manager_access_check(
        &self,
        handle: Handle,
        needed: u32,
        what: &str,
    ) -> Result<(), NtStatus> {
        let access = self
            .kernel
            .lock()
            .file_objects
            .get(&handle.0)
            .map(|rec| rec.access);
        if access.is_some_and(|access| access & needed == 0) {
            let status = NtStatus(STATUS_ACCESS_DENIED);
            self.kernel.trace(
                EventKind::User,
                format!("{what} -> {status} (the I/O manager: the handle lacks the access)"),
            );
            return Err(status);
        }
        Ok(())
    }

    /// `FlushFileBuffers` with purge (`IRP_MN_FLUSH_AND_PURGE`), which conflicts with a data-scan
    /// section.
    ///
    /// A flush needs a handle with write or append access: without one the I/O manager answers
    /// `STATUS_ACCESS_DENIED` and no request reaches a filter (`NtFlushBuffersFileEx`: "the file
    /// has neither write nor append access"). So a flush-and-purge never comes from a handle
    /// that only reads, and never from beside a handle that denies write sharing.
    ///
    /// # Errors
    /// `STATUS_ACCESS_DENIED` for a handle without write or append access, else the status of
    /// the flush.
    pub fn purge(&self, handle: Handle) -> Result<(), NtStatus> {
        self.io_manager_access_check(
            handle,
            FILE_WRITE_DATA | FILE_APPEND_DATA,
            "flush and purge",
        )?;
        let status = self.send(handle, |b| {
            b.iopb.MajorFunction = IRP_MJ_FLUSH_BUFFERS as u8;
            b.iopb.MinorFunction = IRP_MN_FLUSH_AND_PURGE as u8;
        });
        self.kernel
            .trace(EventKind::User, format!("flush and purge -> {status}"));
        completed(status)
    }

    /// `NtQueryInformationFile(FileStandardInformation)`.
    ///
    /// # Errors
    /// The status of the query.
    pub fn query_standard(&self, handle: Handle) -> Result<FILE_STANDARD_INFORMATION, NtStatus> {
        let mut info = FILE_STANDARD_INFORMATION::default();
        let status = self.send(handle, |b| {
            b.iopb.MajorFunction = IRP_MJ_QUERY_INFORMATION as u8;
            // SAFETY: a query-information's member, in the zeroed block (C layout: `params`).
            let query = unsafe { params::QueryFile::of_mut(&mut b.iopb.Parameters) };
            query.length = std::mem::size_of::<FILE_STANDARD_INFORMATION>() as u32;
            query.class = FileStandardInformation;
            query.info_buffer = std::ptr::from_mut(&mut info).cast();
        });
        self.kernel.trace(
            EventKind::User,
            format!("query standard information -> {status}"),
        );
        completed(status).map(|()| info)
    }

    /// `NtQueryInformationFile(FileInternalInformation)`: the file ID.
    ///
    /// # Errors
    /// The status of the query.
    pub fn query_file_id(&self, handle: Handle) -> Result<i64, NtStatus> {
        let mut info = FILE_INTERNAL_INFORMATION::default();
        let status = self.send(handle, |b| {
            b.iopb.MajorFunction = IRP_MJ_QUERY_INFORMATION as u8;
            // SAFETY: a query-information's member, in the zeroed block (C layout: `params`).
            let query = unsafe { params::QueryFile::of_mut(&mut b.iopb.Parameters) };
            query.length = std::mem::size_of::<FILE_INTERNAL_INFORMATION>() as u32;
            query.class = FileInternalInformation;
            query.info_buffer = std::ptr::from_mut(&mut info).cast();
        });
        completed(status).map(|()| info.IndexNumber)
    }

    /// `CloseHandle`: `IRP_MJ_CLEANUP`, then `IRP_MJ_CLOSE`, each through the filters. Stream
    /// handle contexts are released when the file object closes.
    ///
    /// # Errors
    /// `STATUS_INVALID_HANDLE` for a handle that is not open.
    pub fn close(&self, handle: Handle) -> Result<(), NtStatus> {
        let status = self.send(handle, |b| b.iopb.MajorFunction = IRP_MJ_CLEANUP as u8);
        self.kernel.trace(
            EventKind::User,
            format!("close handle: cleanup -> {status}"),
        );
        completed(status)?;
        self.wait_for_file_object_references(handle.0);
        let (volume, process, data) = {
            let mut state = self.kernel.lock();
            let rec = &state.file_objects[&handle.0];
            let (volume, process, ptr) = (rec.volume, rec.process, rec.ptr);
            let data = request::new_callback_data(&mut state, 0, ptr, false);
            state.callback_data.insert(data as usize, user_data_rec());
            // SAFETY: freshly allocated callback data owned by this operation.
            unsafe { (*request::block(data)).iopb.MajorFunction = IRP_MJ_CLOSE as u8 };
            (volume, process, data)
        };
        Self::user_op(process, || io::send(&self.kernel, data, volume, None));
        crate::context_refs::release_file_object(&self.kernel, handle.0);
        Ok(())
    }

    /// In Windows, `IRP_MJ_CLOSE` is sent when the last reference to the file object goes, which
    /// may be after the handle closed if a filter took one with `ObfReferenceObject` (an
    /// asynchronous request in flight, for example). The model sends it from the closing thread,
    /// once those references are gone: it waits for them (a leaked one is a finding after
    /// `crate::sync::HANG_TIMEOUT`, and the close goes on).
    pub(super) fn wait_for_file_object_references(&self, fo: usize) {
        let start = crate::sched::now();
        loop {
            let refs = self
                .kernel
                .lock()
                .file_objects
                .get(&fo)
                .map_or(0, |f| f.refs);
            if refs == 0 {
                return;
            }
            if crate::sched::since(start) > crate::sync::HANG_TIMEOUT {
                let name = self.kernel.lock().describe_fo(fo);
                self.kernel.violation(format!(
                    "{name}: {refs} ObfReferenceObject reference(s) never dropped; IRP_MJ_CLOSE \
                     waits for them forever"
                ));
                return;
            }
            crate::sched::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// From now on, completions of `FltPerformAsynchronousIo` requests wait (after the file
    /// system completed the request, before the filter's completion routine runs) until
    /// [`release_async_completions`](Self::release_async_completions), at most 10 seconds. For
    /// tests of what happens while a completion is still in flight, such as an unload.
    pub fn hold_async_completions(&self) {
        let gate = Arc::new(crate::sync::HostEvent::new(false, false));
        self.kernel.lock().options.async_gate = Some(gate);
    }

    /// Lets held completions run, and stops holding new ones.
    pub fn release_async_completions(&self) {
        if let Some(gate) = self.kernel.lock().options.async_gate.take() {
            gate.set();
        }
    }
}

pub(super) fn user_data_rec() -> crate::state::CallbackDataRec {
    crate::state::CallbackDataRec {
        filter: None,
        instance: usize::MAX,
        allocated: false,
        preallocated: false,
        in_flight: true,
        performed: false,
        freed: false,
        origin: "a user request".into(),
    }
}

/// Opens `path` from another handle and performs `conflict` on it (the race the model delivers
/// while `FltCreateSectionForDataScan` runs).
pub(crate) fn race_conflict(
    kernel: &Arc<Kernel>,
    path: &str,
    conflict: Conflict,
) -> Result<(), NtStatus> {
    let world = RaceWorld {
        kernel: Arc::clone(kernel),
    };
    world.run(path, conflict)
}

/// The operations of a [`World`], borrowed by a thread that does not own it.
struct RaceWorld {
    kernel: Arc<Kernel>,
}

impl RaceWorld {
    fn run(&self, path: &str, conflict: Conflict) -> Result<(), NtStatus> {
        // A world view that shares the live kernel; it must not finish or unload anything.
        let world = std::mem::ManuallyDrop::new(World {
            kernel: Arc::clone(&self.kernel),
            loaded: std::sync::Mutex::new(Vec::new()),
            finished: std::sync::atomic::AtomicBool::new(true),
            _active: Activation::borrowed(),
        });
        let handle = world.open(path, Open::read_write())?;
        let result = match conflict {
            Conflict::Truncate(size) => world.set_end_of_file(handle, size),
            Conflict::NonCachedWrite => world.write(handle, 0, b"race", true),
            Conflict::Purge => world.purge(handle),
        };
        let _ = world.close(handle);
        result
    }
}

/// A user operation's result: its status, except that `STATUS_PENDING` (an operation the model
/// gave up waiting for, pended on a data-scan section that never closed: a finding) is not a
/// success, though its severity is: the operation is neither failed nor done.
pub(super) fn completed(status: NtStatus) -> Result<(), NtStatus> {
    if status.0 == STATUS_PENDING {
        return Err(status);
    }
    status.ok()
}
