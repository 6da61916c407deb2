//! [`World`]: the scripted machine a test drives. Volumes, files, processes, filters, and the
//! user-mode operations that exercise them.

use std::{ffi::c_void, sync::Arc, time::Instant};

use common::{NtStatus, irql};
use windows_sys::{
    Wdk::{
        Foundation::{DRIVER_OBJECT, FILE_OBJECT},
        Storage::FileSystem::{
            FILE_DIRECTORY_FILE, FILE_DISPOSITION_INFORMATION_EX, FILE_INTERNAL_INFORMATION,
            FILE_NON_DIRECTORY_FILE, FILE_OPEN, FILE_STANDARD_INFORMATION,
            FileDispositionInformation, FileDispositionInformationEx, FileEndOfFileInformation,
            FileInternalInformation, FileStandardInformation, GUID_ECP_PREFETCH_OPEN,
            Minifilters::{
                FLT_CALLBACK_DATA, FLT_RELATED_OBJECTS, FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT,
                FLTFL_INSTANCE_TEARDOWN_MANUAL,
            },
            PREFETCH_OPEN_ECP_CONTEXT,
        },
        System::SystemServices::{
            FILE_END_OF_FILE_INFORMATION, FO_VOLUME_OPEN, IRP_MJ_CLEANUP, IRP_MJ_CLOSE,
            IRP_MJ_CREATE, IRP_MJ_FLUSH_BUFFERS, IRP_MJ_QUERY_INFORMATION, IRP_MJ_READ,
            IRP_MJ_SET_INFORMATION, IRP_MJ_WRITE, IRP_MN_FLUSH_AND_PURGE, IRP_NOCACHE,
            SL_OPEN_PAGING_FILE,
        },
    },
    Win32::{
        Foundation::{
            NTSTATUS, STATUS_ACCESS_DENIED, STATUS_FLT_DO_NOT_DETACH,
            STATUS_FLT_INSTANCE_NOT_FOUND, STATUS_INVALID_HANDLE, STATUS_PENDING, STATUS_SUCCESS,
            UNICODE_STRING,
        },
        Storage::{
            FileSystem::{
                FILE_APPEND_DATA, FILE_READ_DATA, FILE_SHARE_DELETE, FILE_SHARE_READ,
                FILE_SHARE_WRITE, FILE_WRITE_DATA, SYNCHRONIZE,
            },
            InstallableFileSystems::{FLT_FSTYPE_MUP, FLT_FSTYPE_NTFS},
        },
        System::Ioctl::{FILE_DEVICE_DISK_FILE_SYSTEM, FILE_DEVICE_NETWORK_FILE_SYSTEM},
    },
};

use crate::{
    conflicts::Conflict,
    faults::FaultRule,
    io,
    kernel::{Activation, Event, EventKind, Frame, Kernel, Violation, run_as, set_process_id},
    params::{self, Member as _},
    request::{self, CallbackBlock},
    state::{
        FileObjectRec, FilterRec, FoState, InstanceRec, State, VolumeRec, filter_handle,
        instance_handle, volume_handle,
    },
};

/// The process id the model gives user-mode requests unless a test picks another.
pub const USER_PROCESS_ID: u32 = 1000;

/// A filter driver's entry point, `DriverEntry`.
pub type DriverEntry =
    unsafe extern "system" fn(*mut DRIVER_OBJECT, *const UNICODE_STRING) -> NTSTATUS;

/// A user-mode handle to an open file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle(pub(crate) usize);

/// How to open a file: `NtCreateFile`'s access, share mode, disposition and options.
#[derive(Clone, Copy, Debug)]
pub struct Open {
    /// `DesiredAccess` (`FILE_READ_DATA`, `FILE_WRITE_DATA`, ...).
    pub access: u32,
    /// `ShareAccess` (`FILE_SHARE_*`).
    pub share: u32,
    /// `CreateDisposition` (`FILE_OPEN`, `FILE_OPEN_IF`, ...).
    pub disposition: u32,
    /// `CreateOptions` (`FILE_DIRECTORY_FILE`, `FILE_NON_DIRECTORY_FILE`, ...).
    pub options: u32,
    /// The requesting process.
    pub process: u32,
    /// `IrpSp->Flags` of the create, which a filter reads as `Iopb->OperationFlags`
    /// (`SL_OPEN_PAGING_FILE`, ...). Zero for an ordinary open.
    pub operation_flags: u8,
    /// A kernel-mode `IoCreateFileEx` (or `FltCreateFileEx`) with `IO_IGNORE_SHARE_ACCESS_CHECK`
    /// in its `Options`: see [`Open::ignoring_share_access`].
    pub ignore_share_access: bool,
    /// A `GUID_ECP_PREFETCH_OPEN` extra create parameter, and whether it comes from user mode:
    /// see [`Open::prefetch_ecp`].
    pub prefetch: Option<EcpFrom>,
}

/// Where an extra create parameter came from (`FltIsEcpFromUserMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EcpFrom {
    /// A kernel-mode creator attached it: the prefetcher's opens.
    Kernel,
    /// It came from user mode.
    User,
}

impl Open {
    /// Open an existing file for reading, sharing read, write and delete.
    #[must_use]
    pub const fn read() -> Self {
        Self {
            access: FILE_READ_DATA | SYNCHRONIZE,
            share: FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            disposition: FILE_OPEN,
            options: FILE_NON_DIRECTORY_FILE,
            process: USER_PROCESS_ID,
            operation_flags: 0,
            ignore_share_access: false,
            prefetch: None,
        }
    }

    /// The same open, carrying a `GUID_ECP_PREFETCH_OPEN` extra create parameter (a
    /// `PREFETCH_OPEN_ECP_CONTEXT`) from `from`: what the prefetcher's opens look like to a
    /// filter (`FltGetEcpListFromCallbackData`, `FltFindExtraCreateParameter`,
    /// `FltIsEcpFromUserMode`; see `abi::ecps`).
    #[must_use]
    pub const fn prefetch_ecp(self, from: EcpFrom) -> Self {
        Self {
            prefetch: Some(from),
            ..self
        }
    }

    /// Open an existing file for reading and writing, sharing everything.
    #[must_use]
    pub const fn read_write() -> Self {
        Self {
            access: FILE_READ_DATA | FILE_WRITE_DATA | SYNCHRONIZE,
            ..Self::read()
        }
    }

    /// Open an existing file for writing only, sharing everything.
    #[must_use]
    pub const fn write() -> Self {
        Self {
            access: FILE_WRITE_DATA | SYNCHRONIZE,
            ..Self::read()
        }
    }

    /// Open an existing directory.
    #[must_use]
    pub const fn directory() -> Self {
        Self {
            options: FILE_DIRECTORY_FILE,
            ..Self::read()
        }
    }

    /// The same, with another share mode.
    #[must_use]
    pub const fn share(self, share: u32) -> Self {
        Self { share, ..self }
    }

    /// The same, with another disposition.
    #[must_use]
    pub const fn disposition(self, disposition: u32) -> Self {
        Self {
            disposition,
            ..self
        }
    }

    /// The same, as the memory manager opens a paging file: `SL_OPEN_PAGING_FILE` in
    /// `Iopb->OperationFlags`. Filters usually leave paging-file opens alone: the memory
    /// manager pages through that file, and a filter's own work on it can deadlock paging.
    #[must_use]
    pub const fn paging_file(self) -> Self {
        Self {
            operation_flags: self.operation_flags | SL_OPEN_PAGING_FILE as u8,
            ..self
        }
    }

    /// The same, from another process.
    #[must_use]
    pub const fn process(self, process: u32) -> Self {
        Self { process, ..self }
    }

    /// The same, as a kernel-mode component opens with `IoCreateFileEx(..., Options =
    /// IO_IGNORE_SHARE_ACCESS_CHECK)`. The `IoCreateFileEx` page: "The I/O manager should not
    /// perform share-access checks on the file object after it is created. However, the file
    /// system might still perform these checks." The page does not say when a file system
    /// does, so the model takes the case a filter must survive: no share check for this open,
    /// and later opens are not judged against it either (`fs` says how). The model's callback
    /// data are kernel-mode requests (`RequestorMode` 0) for every open already.
    #[must_use]
    pub const fn ignoring_share_access(self) -> Self {
        Self {
            ignore_share_access: true,
            ..self
        }
    }
}

/// A hold the test armed in the model: something (a call, a delay, a section create) stops at
/// a known point until the test releases it. [`World::hold_next_section_create`],
/// [`World::hold_delays`] and [`World::hold_next_call`] return one.
pub struct Hold {
    kernel: Arc<Kernel>,
    reached: Arc<crate::sync::HostEvent>,
    release: Arc<crate::sync::HostEvent>,
    /// Takes this hold out of the model's options if it is still armed there.
    disarm: fn(&Kernel, &Arc<crate::sync::HostEvent>),
}

/// A `FltCreateSectionForDataScan` held after linking its section.
pub type SectionHold = Hold;
/// `KeDelayExecutionThread` calls held until released.
pub type DelayHold = Hold;
/// One API call held at its entry.
pub type CallHold = Hold;

impl Hold {
    fn new(
        kernel: &Arc<Kernel>,
        disarm: fn(&Kernel, &Arc<crate::sync::HostEvent>),
    ) -> (
        Self,
        Arc<crate::sync::HostEvent>,
        Arc<crate::sync::HostEvent>,
    ) {
        let reached = Arc::new(crate::sync::HostEvent::new(false, false));
        let release = Arc::new(crate::sync::HostEvent::new(false, false));
        let hold = Self {
            kernel: Arc::clone(kernel),
            reached: Arc::clone(&reached),
            release: Arc::clone(&release),
            disarm,
        };
        (hold, reached, release)
    }

    /// Waits (at most `timeout`) until something has reached the hold (the create linked its
    /// section, a thread is parked in a delay, the call arrived); `false` if nothing did.
    #[must_use]
    pub fn wait_held(&self, timeout: std::time::Duration) -> bool {
        self.reached.wait(Some(timeout))
    }

    /// Lets what is held go on, and disarms the hold if nothing reached it yet. (Dropping the
    /// hold does the same.)
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        (self.disarm)(&self.kernel, &self.reached);
        self.release.set();
    }
}

/// What a counting filter saw, by major function.
pub use crate::counting::Counts;

/// The scripted machine: one per test. Creating one waits until no other is alive.
pub struct World {
    kernel: Arc<Kernel>,
    loaded: std::sync::Mutex<Vec<usize>>,
    finished: std::sync::atomic::AtomicBool,
    _active: Activation,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// A machine with two volumes: `C:` (NTFS, `\Device\HarddiskVolume1`), which supports data
    /// scan sections and section contexts, and `Z:` (a network share behind MUP,
    /// `\Device\Mup\server\share`), which supports neither: `FltRegisterForDataScan` and
    /// `FltGetSectionContext` answer `STATUS_NOT_SUPPORTED` there.
    #[must_use]
    pub fn new() -> Self {
        let mut state = State::new();
        state.volumes.push(VolumeRec {
            letter: 'C',
            device_name: "\\Device\\HarddiskVolume1".into(),
            fs_type: FLT_FSTYPE_NTFS,
            device_type: FILE_DEVICE_DISK_FILE_SYSTEM,
            supports_data_scan: true,
        });
        state.volumes.push(VolumeRec {
            letter: 'Z',
            device_name: "\\Device\\Mup\\server\\share".into(),
            fs_type: FLT_FSTYPE_MUP,
            device_type: FILE_DEVICE_NETWORK_FILE_SYSTEM,
            supports_data_scan: false,
        });
        state.echo = std::env::var_os("FLTSIM_ECHO").is_some();
        let kernel = Kernel::new(state);
        let active = Activation::activate(&kernel);
        crate::registry::reset();
        Self {
            kernel,
            loaded: std::sync::Mutex::new(Vec::new()),
            finished: std::sync::atomic::AtomicBool::new(false),
            _active: active,
        }
    }

    // ---- the file system ----------------------------------------------------------------------

    fn split(&self, path: &str) -> (usize, String) {
        let mut chars = path.chars();
        let letter = chars
            .next()
            .expect("a path starts with a drive letter")
            .to_ascii_uppercase();
        assert_eq!(chars.next(), Some(':'), "a path looks like C:\\dir\\file");
        let rest: String = chars.collect();
        let state = self.kernel.lock();
        let volume = state
            .volumes
            .iter()
            .position(|v| v.letter == letter)
            .unwrap_or_else(|| panic!("no volume {letter}:"));
        (volume, rest)
    }

    /// Creates a file with `contents` directly in the file system (as if it existed before any
    /// filter loaded). Parent directories are created as needed.
    pub fn create_file(&self, path: &str, contents: &[u8]) {
        let (volume, rel) = self.split(path);
        let mut state = self.kernel.lock();
        make_parents(&mut state, volume, &rel);
        match crate::fs::find_stream(&state, volume, &rel) {
            Some(s) => state.streams[s].data = contents.to_vec(),
            None => {
                crate::fs::add_stream(&mut state, volume, &rel, false, contents.to_vec());
            }
        }
    }

    /// Creates a directory directly in the file system.
    pub fn create_dir(&self, path: &str) {
        let (volume, rel) = self.split(path);
        let mut state = self.kernel.lock();
        make_parents(&mut state, volume, &rel);
        if crate::fs::find_stream(&state, volume, &rel).is_none() {
            crate::fs::add_stream(&mut state, volume, &rel, true, Vec::new());
        }
    }

    /// The current contents of a file, read directly from the file system.
    #[must_use]
    pub fn contents(&self, path: &str) -> Option<Vec<u8>> {
        let (volume, rel) = self.split(path);
        let state = self.kernel.lock();
        crate::fs::find_stream(&state, volume, &rel).map(|s| state.streams[s].data.clone())
    }

    /// Makes the file system fail every `major` operation on `path` with `status` (for example a
    /// query-information that fails with `STATUS_INVALID_DEVICE_REQUEST`).
    pub fn fail_file_operation(&self, path: &str, major: u32, status: NTSTATUS) {
        let (volume, rel) = self.split(path);
        let mut state = self.kernel.lock();
        let stream = crate::fs::find_stream(&state, volume, &rel)
            .expect("fail_file_operation: no such file");
        state.streams[stream]
            .failures
            .push((u8::try_from(major).expect("a major function"), status));
    }

    /// Makes the paging read of the page of `path` that holds file offset `offset` fail with
    /// `status` (`STATUS_IN_PAGE_ERROR` for a disk error, `STATUS_DEVICE_NOT_CONNECTED` for a
    /// removed device, ...), for as long as the world lives: a bad sector stays bad. Only views
    /// see it: an `MmCopyMemory` from a data-scan view that covers the page fails there with
    /// `status` and the count of the bytes before the page (`src/abi/views.rs` says what a view
    /// mapped without `MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS` makes of it).
    pub fn fail_paging_read(&self, path: &str, offset: u64, status: NTSTATUS) {
        let (volume, rel) = self.split(path);
        let mut state = self.kernel.lock();
        let stream =
            crate::fs::find_stream(&state, volume, &rel).expect("fail_paging_read: no such file");
        state.streams[stream].bad_pages.push((offset, status));
    }

    // ---- knobs --------------------------------------------------------------------------------

    /// The IRQL at which post-operation callbacks other than post-create run. Windows may call
    /// them at `DISPATCH_LEVEL`, which is the model's default, so that passive-only work done
    /// there is caught.
    pub fn set_post_operation_irql(&self, level: u8) {
        self.kernel.lock().options.post_op_irql = level;
    }

    /// Whether Filter Manager calls `SectionNotificationCallback` on a conflict (default: yes).
    /// With `false`, nothing expedites the close: a conflicting operation stays pended until
    /// every data-scan section on its stream is closed, then is requeued (the control run for
    /// the section-conflict sample).
    pub fn set_section_notifications(&self, enabled: bool) {
        self.kernel.lock().options.section_notifications = enabled;
    }

    /// How long an operation may stay pended on a data-scan section before the model reports
    /// that Windows would hang its caller there (default 10 s). The finding names the section;
    /// the operation then completes with `STATUS_PENDING`, neither failed nor done, and no
    /// post-operation callback runs for it.
    pub fn set_pend_limit(&self, limit: std::time::Duration) {
        self.kernel.lock().options.pend_limit = limit;
    }

    /// Delivers `conflict`, from another thread and another handle, while the next
    /// `FltCreateSectionForDataScan` is still running: after the section is linked to the stream
    /// and before the call returns to its caller. The result is in
    /// [`race_results`](Self::race_results).
    pub fn race_conflict_on_next_section(&self, conflict: Conflict) {
        self.kernel.lock().options.race_on_create = Some(conflict);
    }

    /// Holds the next successful `FltCreateSectionForDataScan` after it has linked its section to
    /// the stream and before it returns, until the returned [`SectionHold`] is released or dropped
    /// (at most 10 seconds, then a finding). Meanwhile other threads meet the section: a second
    /// create on the stream gets `STATUS_FLT_CONTEXT_ALREADY_DEFINED`, and `FltGetSectionContext`
    /// finds it. Arming a new hold replaces one that has not been reached yet.
    #[must_use = "dropping the hold releases it at once"]
    pub fn hold_next_section_create(&self) -> SectionHold {
        let (hold, linked, release) = Hold::new(&self.kernel, |k, reached| {
            let mut state = k.lock();
            if state
                .options
                .hold_create
                .as_ref()
                .is_some_and(|(linked, _)| Arc::ptr_eq(linked, reached))
            {
                state.options.hold_create = None;
            }
        });
        self.kernel.lock().options.hold_create = Some((linked, release));
        hold
    }

    /// Holds the next truncation (a truncating set-end-of-file, or a destructive create of a
    /// non-empty file) once the file system has judged its purge clear, until the returned
    /// [`Hold`] is released or dropped (at most 10 seconds, then a finding). The file system
    /// judges the purge and truncates in one step, under the file's locks, as NTFS and `FastFAT`
    /// do (`MmCanFileBeTruncated` under the paging I/O resource): at the hold the file is already
    /// truncated, and a data-scan section created meanwhile sees the new size.
    #[must_use = "dropping the hold releases it at once"]
    pub fn hold_next_truncation(&self) -> Hold {
        let (hold, reached, release) = Hold::new(&self.kernel, |k, reached| {
            let mut state = k.lock();
            if state
                .options
                .hold_truncation
                .as_ref()
                .is_some_and(|(ours, _)| Arc::ptr_eq(ours, reached))
            {
                state.options.hold_truncation = None;
            }
        });
        self.kernel.lock().options.hold_truncation = Some((reached, release));
        hold
    }

    /// Sets how many system worker threads run generic work items (default 2, at least 1).
    /// Items beyond the free threads wait for one, as on Windows, where a driver can count on
    /// none of the few being free.
    pub fn set_worker_threads(&self, threads: usize) {
        self.kernel.workers.set_size(threads);
    }

    /// Sets how long a generic work item routine may run (wall time) before the model reports it
    /// (default 1 s; see the crate's `threads` notes for why).
    pub fn set_work_item_limit(&self, limit: std::time::Duration) {
        self.kernel.lock().options.work_item_limit = limit;
    }

    /// Sets the clock tick that `KeDelayExecutionThread` intervals and relative wait timeouts
    /// round up to (default 15.625 ms, Windows' default timer resolution; zero turns rounding
    /// off).
    pub fn set_clock_tick(&self, tick: std::time::Duration) {
        self.kernel.lock().options.clock_tick = tick;
    }

    /// Holds every `KeDelayExecutionThread` from now on until the returned [`DelayHold`] is
    /// released or dropped, until a filter calls `FltUnregisterFilter` (which waits for the
    /// workers that are pausing, so it releases the hold itself), or until a filter waits for a
    /// system thread to end (`KeWaitForSingleObject` on a thread object: that thread may be the
    /// one pausing, so the wait releases the hold too).
    ///
    /// A filter that paces a background scan with delays then stops at a point the test knows:
    /// after [`Hold::wait_held`](crate::Hold::wait_held), the scan has done its current step and is pausing, and
    /// whatever the test does next happens "during the pause", whatever the machine's load.
    #[must_use = "dropping the hold releases it at once"]
    pub fn hold_delays(&self) -> DelayHold {
        let (hold, parked, release) = Hold::new(&self.kernel, |k, reached| {
            let mut state = k.lock();
            if state
                .options
                .hold_delays
                .as_ref()
                .is_some_and(|(parked, _)| Arc::ptr_eq(parked, reached))
            {
                state.options.hold_delays = None;
            }
        });
        self.kernel.lock().options.hold_delays = Some((parked, release));
        hold
    }

    /// Holds the next call of `api`, from any thread, at its entry: before it checks or does
    /// anything, so the caller is parked mid-way through whatever callback made it. The test
    /// then does what must happen "in the middle" (an unload, a conflicting I/O) and releases
    /// the hold. One call is held; arming a new hold replaces one not yet reached.
    #[must_use = "dropping the hold releases it at once"]
    pub fn hold_next_call(&self, api: &'static str) -> CallHold {
        let (hold, reached, release) = Hold::new(&self.kernel, |k, reached| {
            let mut state = k.lock();
            if state
                .options
                .hold_call
                .as_ref()
                .is_some_and(|(_, ours, _)| Arc::ptr_eq(ours, reached))
            {
                state.options.hold_call = None;
                k.call_hold_armed
                    .store(false, std::sync::atomic::Ordering::Release);
            }
        });
        self.kernel.lock().options.hold_call = Some((api, reached, release));
        self.kernel
            .call_hold_armed
            .store(true, std::sync::atomic::Ordering::Release);
        hold
    }

    /// The results of conflicts delivered by [`race_conflict_on_next_section`](Self::race_conflict_on_next_section).
    /// A conflict that was pended on the section being created completes once that section is
    /// closed; this waits for it (at most the pend limit plus `crate::sync::HANG_TIMEOUT`, then
    /// a finding and no result).
    #[must_use]
    pub fn race_results(&self) -> Vec<Result<(), NtStatus>> {
        let pending = std::mem::take(&mut self.kernel.lock().race_pending);
        let limit = self.kernel.lock().options.pend_limit + crate::sync::HANG_TIMEOUT;
        for rx in pending {
            match rx.recv_timeout(limit) {
                Ok(result) => self.kernel.lock().race_results.push(result),
                Err(_) => self.kernel.violation(format!(
                    "a racing conflict pended on a data-scan section did not complete within \
                     {limit:?}"
                )),
            }
        }
        self.kernel.lock().race_results.clone()
    }

    /// Makes the `nth` call (1-based) of `api` fail with its default injected status.
    pub fn fail_nth(&self, api: &'static str, nth: u32) {
        self.kernel.lock().faults.push(FaultRule {
            api,
            nth: Some(nth),
            status: None,
        });
    }

    /// Makes the `nth` call (1-based) of `api` fail with `status`.
    pub fn fail_nth_with(&self, api: &'static str, nth: u32, status: NTSTATUS) {
        self.kernel.lock().faults.push(FaultRule {
            api,
            nth: Some(nth),
            status: Some(status),
        });
    }

    /// Makes every call of `api` fail with `status` (or its default).
    pub fn fail_always(&self, api: &'static str, status: Option<NTSTATUS>) {
        self.kernel.lock().faults.push(FaultRule {
            api,
            nth: None,
            status,
        });
    }

    /// How often each fallible API has been called so far.
    #[must_use]
    pub fn call_counts(&self) -> std::collections::HashMap<&'static str, u32> {
        self.kernel.lock().call_counts.clone()
    }

    // ---- filters ------------------------------------------------------------------------------

    /// Loads a filter driver, as `fltmc load` does: calls `DriverEntry` at `PASSIVE_LEVEL` with a
    /// driver object and the service's registry path. Instances attach during
    /// `FltStartFiltering`, at the given altitude.
    ///
    /// # Errors
    /// The status `DriverEntry` returned.
    pub fn load(&self, name: &str, altitude: u32, entry: DriverEntry) -> Result<(), NtStatus> {
        let (index, driver, path) = {
            let mut state = self.kernel.lock();
            let driver = state
                .arena
                .alloc(std::mem::size_of::<DRIVER_OBJECT>(), 0)
                .cast::<DRIVER_OBJECT>();
            let text: Vec<u16> =
                format!("\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\{name}")
                    .encode_utf16()
                    .collect();
            let mut path = Box::new((UNICODE_STRING::default(), text));
            let bytes = u16::try_from(path.1.len() * 2).expect("short path");
            path.0 = UNICODE_STRING {
                Length: bytes,
                MaximumLength: bytes,
                Buffer: path.1.as_mut_ptr(),
            };
            state.filters.push(FilterRec {
                name: name.to_owned(),
                altitude,
                driver,
                registry_path: path,
                registered: false,
                started: false,
                unregistered: false,
                loaded: true,
                operations: std::collections::HashMap::new(),
                contexts: Vec::new(),
                unload: None,
                instance_setup: None,
                query_teardown: None,
                teardown_start: None,
                teardown_complete: None,
                section_notification: None,
                work_items_running: 0,
            });
            let index = state.filters.len() - 1;
            let path = &raw const state.filters[index].registry_path.0;
            (index, driver, path)
        };
        self.kernel.trace(
            EventKind::User,
            format!("fltmc load {name} (altitude {altitude})"),
        );
        let frame = Frame {
            filter: Some(index),
            who: name.to_owned(),
            what: "DriverEntry".into(),
        };
        // SAFETY: calling the driver's entry point with a zeroed driver object and a registry path
        // that both live in the model until the world drops, as the I/O manager does.
        let status = run_as(frame, irql::PASSIVE_LEVEL, || unsafe {
            entry(driver, path)
        });
        self.kernel.trace(
            // `fltmc load` is `FilterLoad`, the user-mode `FltLoadFilter`, which reports what the
            // filter's `DriverEntry` returned (`STATUS_FAILED_DRIVER_ENTRY` on a failure).
            EventKind::FltMgr,
            format!("DriverEntry of {name} returned {}", NtStatus(status)),
        );
        if NtStatus(status).is_success() {
            let state = self.kernel.lock();
            let f = &state.filters[index];
            if !f.registered || !f.started {
                let message = format!(
                    "{name}: DriverEntry succeeded without {}",
                    if f.registered {
                        "FltStartFiltering"
                    } else {
                        "FltRegisterFilter"
                    }
                );
                drop(state);
                self.kernel.violation(message);
            }
            self.loaded.lock().expect("loaded list").push(index);
            Ok(())
        } else {
            let mut state = self.kernel.lock();
            state.filters[index].loaded = false;
            let leaked_registration =
                state.filters[index].registered && !state.filters[index].unregistered;
            drop(state);
            if leaked_registration {
                self.kernel.violation(format!(
                    "{name}: DriverEntry failed with {} but left the filter registered (call FltUnregisterFilter on the failure path)",
                    NtStatus(status)
                ));
            }
            crate::verifier::check_leaks(&self.kernel, index);
            crate::registry::check_leaks(&self.kernel, index, name);
            Err(NtStatus(status))
        }
    }

    /// Detaches filter `name`'s instance from volume `letter` while the filter stays loaded, as
    /// `FltDetachVolume` (or `fltmc detach`) does. Filter Manager first asks the filter's
    /// `InstanceQueryTeardown` (`PASSIVE_LEVEL`); a filter that registered none cannot be detached
    /// manually ("If a minifilter driver does not define an `InstanceQueryTeardownCallback` routine,
    /// its instances cannot be detached manually"), and an error status from it keeps the instance.
    /// Otherwise the instance is torn down as at unload, with reason
    /// `FLTFL_INSTANCE_TEARDOWN_MANUAL`: `InstanceTeardownStart`; no new operation reaches the
    /// instance; a wait for the operations in flight and for the instance's `FltObjectReference`
    /// references (traced as `instance teardown waits for ...` and `instance teardown: the rundown
    /// waits for ...`); `InstanceTeardownComplete`; the instance's contexts go. Returns when the
    /// teardown is complete.
    ///
    /// Unlike `FltUnregisterFilter`, a detach does not release [`World::hold_delays`]: a test that
    /// parked a worker in a held delay releases it itself, for instance once the rundown wait
    /// is traced (the worker then runs on after `InstanceTeardownStart` has returned).
    ///
    /// # Errors
    /// `STATUS_FLT_INSTANCE_NOT_FOUND` when `name` has no live instance on `letter` (documented for
    /// `FltDetachVolume`); `STATUS_FLT_DO_NOT_DETACH` when the filter has no
    /// `InstanceQueryTeardown`; the status `InstanceQueryTeardown` returned when it refuses.
    pub fn detach(&self, name: &str, letter: char) -> Result<(), NtStatus> {
        let found = {
            let state = self.kernel.lock();
            state
                .instances
                .iter()
                .position(|i| {
                    !i.torn_down
                        && state.filters[i.filter].loaded
                        && state.filters[i.filter].name == name
                        && state.volumes[i.volume].letter == letter
                })
                .map(|i| {
                    let filter = state.instances[i].filter;
                    (i, filter, state.filters[filter].query_teardown)
                })
        };
        self.kernel
            .trace(EventKind::User, format!("fltmc detach {name} {letter}:"));
        let Some((instance, filter, query)) = found else {
            return Err(NtStatus(STATUS_FLT_INSTANCE_NOT_FOUND));
        };
        let Some(query) = query else {
            return Err(NtStatus(STATUS_FLT_DO_NOT_DETACH));
        };
        let volume = self.kernel.lock().instances[instance].volume;
        let objects = FLT_RELATED_OBJECTS {
            Size: u16::try_from(std::mem::size_of::<FLT_RELATED_OBJECTS>()).expect("small"),
            TransactionContext: 0,
            Filter: filter_handle(filter),
            Volume: volume_handle(volume),
            Instance: instance_handle(instance),
            FileObject: std::ptr::null(),
            Transaction: std::ptr::null(),
        };
        self.kernel.trace(
            EventKind::Callback("InstanceQueryTeardown"),
            format!("InstanceQueryTeardown -> {name} volume {letter}:"),
        );
        let frame = Frame {
            filter: Some(filter),
            who: name.to_owned(),
            what: "InstanceQueryTeardown".into(),
        };
        // SAFETY: calling the registered query-teardown callback with valid related objects and
        // no flags ("No flags are currently defined"), as Filter Manager does for a manual detach.
        let status = run_as(frame, irql::PASSIVE_LEVEL, || unsafe {
            query(&raw const objects, 0)
        });
        // "If this routine returns an error or warning NTSTATUS code", both negative.
        if !NtStatus(status).is_success() {
            return Err(NtStatus(status));
        }
        teardown_instance(&self.kernel, instance, FLTFL_INSTANCE_TEARDOWN_MANUAL);
        Ok(())
    }

    /// Unloads a filter, as `fltmc unload` does: calls its `FilterUnloadCallback` at
    /// `PASSIVE_LEVEL`, which must call `FltUnregisterFilter`, then checks that the filter left
    /// nothing behind.
    ///
    /// # Errors
    /// `STATUS_FLT_DO_NOT_DETACH` when the filter has no unload callback; otherwise the status
    /// the unload callback returned to refuse the unload.
    pub fn unload(&self, name: &str) -> Result<(), NtStatus> {
        let (index, unload) = {
            let state = self.kernel.lock();
            let index = state
                .filters
                .iter()
                .position(|f| f.name == name && f.loaded)
                .unwrap_or_else(|| panic!("unload: no loaded filter named {name}"));
            (index, state.filters[index].unload)
        };
        self.kernel
            .trace(EventKind::User, format!("fltmc unload {name}"));
        let Some(unload) = unload else {
            return Err(NtStatus(STATUS_FLT_DO_NOT_DETACH));
        };
        let frame = Frame {
            filter: Some(index),
            who: name.to_owned(),
            what: "FilterUnloadCallback".into(),
        };
        // SAFETY: calling the registered unload callback with flags 0 (a non-mandatory unload).
        let status = run_as(frame, irql::PASSIVE_LEVEL, || unsafe { unload(0) });
        if !NtStatus(status).is_success() {
            return Err(NtStatus(status));
        }
        let unregistered = {
            let mut state = self.kernel.lock();
            state.filters[index].loaded = false;
            state.filters[index].unregistered
        };
        self.loaded
            .lock()
            .expect("loaded list")
            .retain(|i| *i != index);
        if !unregistered {
            self.kernel.violation(format!(
                "{name}: the unload callback returned success without calling FltUnregisterFilter"
            ));
        }
        crate::verifier::check_leaks(&self.kernel, index);
        crate::registry::check_leaks(&self.kernel, index, name);
        Ok(())
    }

    /// Loads the model's counting filter (see [`Counts`]) at `altitude`.
    pub fn load_counting_filter(&self, name: &str, altitude: u32) {
        self.load(name, altitude, crate::counting::driver_entry)
            .expect("the counting filter loads");
    }

    /// What the counting filter called `name` has seen so far.
    #[must_use]
    pub fn counts(&self, name: &str) -> Counts {
        let state = self.kernel.lock();
        let index = state
            .filters
            .iter()
            .position(|f| f.name == name)
            .expect("no such counting filter");
        state.counters.get(&index).cloned().unwrap_or_default()
    }

    // ---- user operations ----------------------------------------------------------------------

    /// Runs `body` as a request from user-mode `process`.
    fn user_op<R>(process: u32, body: impl FnOnce() -> R) -> R {
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

    fn send(&self, handle: Handle, fill: impl FnOnce(&mut CallbackBlock)) -> NtStatus {
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
    fn io_manager_access_check(
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
    fn wait_for_file_object_references(&self, fo: usize) {
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

    // ---- handles for tests that call the API directly ------------------------------------------

    /// The `PFLT_FILTER` of a loaded filter, for tests that call Filter Manager directly.
    #[must_use]
    pub fn filter_handle(&self, name: &str) -> isize {
        let state = self.kernel.lock();
        let index = state
            .filters
            .iter()
            .position(|f| f.name == name)
            .expect("no such filter");
        filter_handle(index)
    }

    /// The `PFLT_INSTANCE` of filter `name` on volume `letter`, if it attached there.
    #[must_use]
    pub fn instance_handle(&self, name: &str, letter: char) -> Option<isize> {
        let state = self.kernel.lock();
        state
            .instances
            .iter()
            .position(|i| {
                !i.torn_down
                    && state.filters[i.filter].name == name
                    && state.volumes[i.volume].letter == letter
            })
            .map(instance_handle)
    }

    /// The `FILE_OBJECT` behind a user handle.
    #[must_use]
    pub fn file_object(&self, handle: Handle) -> *const FILE_OBJECT {
        handle.0 as *const FILE_OBJECT
    }

    /// Runs `body` on this thread as if at IRQL `level`, to check IRQL ceilings directly.
    pub fn at_irql<R>(&self, level: u8, body: impl FnOnce() -> R) -> R {
        let frame = Frame {
            filter: None,
            who: "test".into(),
            what: format!("code at IRQL {level}"),
        };
        run_as(frame, level, body)
    }

    // ---- what happened ------------------------------------------------------------------------

    /// Every event so far.
    #[must_use]
    pub fn trace(&self) -> Vec<Event> {
        self.kernel.lock().trace.clone()
    }

    /// The calls of one API so far.
    #[must_use]
    pub fn calls(&self, api: &str) -> Vec<Event> {
        self.trace()
            .into_iter()
            .filter(|e| matches!(e.kind, EventKind::Call(name) if name == api))
            .collect()
    }

    /// Waits (at most `timeout`) until the trace holds an event that satisfies `pred`, and
    /// returns the first such event; `None` if none came. For ordering a test's next step after
    /// something another thread does in the model (a bound on a hang, not a timing assertion).
    #[must_use]
    pub fn wait_for_event(
        &self,
        timeout: std::time::Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.kernel.lock().trace.iter().find(|e| pred(e)) {
                return Some(found.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Asserts that nothing the filter `name` did from trace position `since` on cost anything:
    /// no name query, no allocation, no section, no log line, in any callback, and no
    /// post-create; and that Filter Manager did call the filter (its pre-create), so the silence
    /// is the filter's choice. For the samples' scope: I/O outside the demo folder.
    ///
    /// # Panics
    /// With the first event that cost something.
    pub fn assert_out_of_scope_is_free(&self, since: usize, name: &str) {
        let events: Vec<Event> = self.trace()[since..]
            .iter()
            .filter(|e| e.who == name)
            .cloned()
            .collect();
        assert!(
            events
                .iter()
                .any(|e| matches!(e.kind, EventKind::Callback(c) if c == "PreCreate")),
            "the filter's pre-create ran: {events:#?}"
        );
        for event in &events {
            match event.kind {
                EventKind::Log => panic!("a log line for an out-of-scope file: {event}"),
                EventKind::Call(api) => assert!(
                    !api.contains("FileName")
                        && !api.contains("Allocate")
                        && !api.contains("Section")
                        && !api.starts_with("ExAllocate"),
                    "a name query or an allocation for an out-of-scope file: {event}"
                ),
                EventKind::Callback(callback) => assert!(
                    callback != "PostCreate",
                    "post-create ran for an out-of-scope open: {event}"
                ),
                _ => {}
            }
        }
    }

    /// The debugger lines printed so far by the filter called `name`.
    ///
    /// Lines printed by different threads (a worker, a completion, a callback) come in the order
    /// they happened to be printed, which nothing guarantees: compare such lines as a set, or per
    /// thread with [`log_events`](Self::log_events).
    #[must_use]
    pub fn log_lines(&self, name: &str) -> Vec<String> {
        self.log_events(name).into_iter().map(|e| e.text).collect()
    }

    /// The debugger lines printed so far by the filter called `name`, as trace events: each
    /// names the model thread that printed it ([`Event::thread`]).
    #[must_use]
    pub fn log_events(&self, name: &str) -> Vec<Event> {
        self.trace()
            .into_iter()
            .filter(|e| e.kind == EventKind::Log && e.who == name)
            .collect()
    }

    /// The verifier's findings so far.
    #[must_use]
    pub fn violations(&self) -> Vec<Violation> {
        self.kernel.lock().violations.clone()
    }

    /// Takes the verifier's findings, so that a test that provokes one on purpose can check it.
    pub fn take_violations(&self) -> Vec<Violation> {
        std::mem::take(&mut self.kernel.lock().violations)
    }

    /// Fails the test if the verifier found anything.
    ///
    /// # Panics
    /// With every finding, one per line.
    pub fn assert_clean(&self) {
        let mut violations = self.violations();
        // An operation still pended on a data-scan section: its caller waits on Windows.
        let pended: Vec<String> = {
            let state = self.kernel.lock();
            (0..state.streams.len())
                .filter(|s| state.streams[*s].pended > 0)
                .map(|s| crate::fs::stream_name(&state, s))
                .collect()
        };
        for name in pended {
            violations.push(Violation {
                message: format!(
                    "an operation on {name} is still pended on a data-scan section: its caller \
                     waits until every data-scan section on the stream is closed"
                ),
            });
        }
        assert!(
            violations.is_empty(),
            "the verifier found {} problem(s):\n  {}",
            violations.len(),
            violations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }

    /// Unloads every filter still loaded (last loaded first), then fails the test if the verifier
    /// found anything: a leak, a misuse or an IRQL violation.
    ///
    /// # Panics
    /// As [`assert_clean`](Self::assert_clean), or if a filter refuses to unload.
    pub fn finish(&self) {
        self.finished
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let loaded: Vec<usize> = self.loaded.lock().expect("loaded list").clone();
        for index in loaded.into_iter().rev() {
            let name = self.kernel.lock().filters[index].name.clone();
            if let Err(status) = self.unload(&name) {
                panic!("{name} refused to unload: {status}");
            }
        }
        self.assert_clean();
    }

    /// What the user did and the calls to the APIs in `apis`, in trace order, for demos that
    /// show only the API they teach. Every release shown brings its acquires
    /// ([`diagram::with_acquires`](crate::diagram::with_acquires)): a `FltReleaseContext` line
    /// never appears without the `FltAllocateContext` or `FltGet*Context` that took the reference.
    #[must_use]
    pub fn shown_calls(&self, apis: &[&str]) -> Vec<Event> {
        let apis = crate::diagram::with_acquires(apis);
        self.trace()
            .into_iter()
            .filter(|event| match event.kind {
                EventKind::Call(api) => apis.contains(&api),
                EventKind::User => true,
                // Filter Manager's own steps inside one of those calls, and the load's result.
                EventKind::FltMgr => {
                    event.text.starts_with("DriverEntry of ")
                        || apis
                            .iter()
                            .any(|api| event.text.starts_with(&format!("{api}:")))
                }
                _ => false,
            })
            .collect()
    }

    /// Prints [`shown_calls`](Self::shown_calls).
    pub fn print_calls(&self, apis: &[&str]) {
        for event in self.shown_calls(apis) {
            println!("{event}");
        }
    }

    /// Prints the key to the trace's columns ([`LEGEND`](crate::LEGEND)), for demos: once,
    /// above the first trace they print.
    pub fn print_legend(&self) {
        println!("{}", crate::LEGEND);
    }

    /// Prints the trace, for demos.
    pub fn print_trace(&self, since: usize) {
        for event in self.trace().iter().skip(since) {
            println!("{event}");
        }
    }

    /// How long ago the world was created is not tracked; this returns the number of events, for
    /// [`print_trace`](Self::print_trace).
    #[must_use]
    pub fn trace_len(&self) -> usize {
        self.kernel.lock().trace.len()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() || self.finished.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let _ = Instant::now();
        self.finish();
    }
}

fn make_parents(state: &mut State, volume: usize, path: &str) {
    let parent = crate::fs::parent(path);
    if parent == "\\" {
        return;
    }
    if crate::fs::find_stream(state, volume, parent).is_none() {
        make_parents(state, volume, parent);
        crate::fs::add_stream(state, volume, parent, true, Vec::new());
    }
}

fn user_data_rec() -> crate::state::CallbackDataRec {
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

/// Instance setup for one filter on every volume; called by `FltStartFiltering`.
pub(crate) fn attach_instances(k: &Arc<Kernel>, filter: usize) {
    let (volumes, setup, name, altitude) = {
        let state = k.lock();
        let f = &state.filters[filter];
        (
            state.volumes.len(),
            f.instance_setup,
            f.name.clone(),
            f.altitude,
        )
    };
    for volume in 0..volumes {
        let instance = {
            let mut state = k.lock();
            state.instances.push(InstanceRec {
                filter,
                volume,
                altitude,
                data_scan: false,
                torn_down: true,
                in_flight: 0,
                object_refs: 0,
            });
            state.instances.len() - 1
        };
        let status = match setup {
            None => STATUS_SUCCESS,
            Some(setup) => {
                let (fs_type, device_type, letter) = {
                    let state = k.lock();
                    let v = &state.volumes[volume];
                    (v.fs_type, v.device_type, v.letter)
                };
                let objects = FLT_RELATED_OBJECTS {
                    Size: std::mem::size_of::<FLT_RELATED_OBJECTS>() as u16,
                    TransactionContext: 0,
                    Filter: filter_handle(filter),
                    Volume: volume_handle(volume),
                    Instance: instance_handle(instance),
                    FileObject: std::ptr::null(),
                    Transaction: std::ptr::null(),
                };
                k.trace(
                    EventKind::Callback("InstanceSetup"),
                    format!("InstanceSetup -> {name} volume {letter}:"),
                );
                let frame = Frame {
                    filter: Some(filter),
                    who: name.clone(),
                    what: "InstanceSetup".into(),
                };
                // SAFETY: calling the registered instance setup callback with valid objects, as
                // Filter Manager does for automatic attachment.
                let status = run_as(frame, irql::PASSIVE_LEVEL, || unsafe {
                    setup(
                        &raw const objects,
                        FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT,
                        device_type,
                        fs_type,
                    )
                });
                k.trace(
                    EventKind::Callback("InstanceSetup"),
                    format!(
                        "InstanceSetup <- {name} volume {letter}: {}",
                        NtStatus(status)
                    ),
                );
                status
            }
        };
        if NtStatus(status).is_success() {
            k.lock().instances[instance].torn_down = false;
        } else {
            crate::context_refs::detach_instance_contexts(k, instance);
        }
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

/// Tears `instance` down, as Filter Manager does for an unload (`reason`
/// `FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD`) or a manual detach (`FLTFL_INSTANCE_TEARDOWN_MANUAL`):
/// `InstanceTeardownStart`, then the wait for the operations in flight and the instance's
/// `FltObjectReference` references, then `InstanceTeardownComplete`, then the instance's contexts.
pub(crate) fn teardown_instance(k: &Arc<Kernel>, instance: usize, reason: u32) {
    let (filter, name, start_cb, complete_cb, volume) = {
        let state = k.lock();
        let i = &state.instances[instance];
        let f = &state.filters[i.filter];
        (
            i.filter,
            f.name.clone(),
            f.teardown_start,
            f.teardown_complete,
            i.volume,
        )
    };
    let objects = FLT_RELATED_OBJECTS {
        Size: std::mem::size_of::<FLT_RELATED_OBJECTS>() as u16,
        TransactionContext: 0,
        Filter: filter_handle(filter),
        Volume: crate::state::volume_handle(volume),
        Instance: instance_handle(instance),
        FileObject: std::ptr::null(),
        Transaction: std::ptr::null(),
    };
    if let Some(cb) = start_cb {
        let frame = Frame {
            filter: Some(filter),
            who: name.clone(),
            what: "InstanceTeardownStart".into(),
        };
        k.trace(
            EventKind::Callback("InstanceTeardownStart"),
            format!("InstanceTeardownStart -> {name}"),
        );
        // SAFETY: calling the registered teardown callback with valid related objects.
        run_as(frame, irql::PASSIVE_LEVEL, || unsafe {
            cb(&raw const objects, reason);
        });
    }
    // No new operations reach the instance; wait for the ones in flight (rundown).
    let (in_flight, refs) = {
        let mut state = k.lock();
        state.instances[instance].torn_down = true;
        (
            state.instances[instance].in_flight,
            state.instances[instance].object_refs,
        )
    };
    if in_flight > 0 {
        k.trace(
            EventKind::FltMgr,
            format!("instance teardown waits for {in_flight} operation(s) in flight"),
        );
    }
    if refs > 0 {
        k.trace(
            EventKind::FltMgr,
            format!(
                "instance teardown: the rundown waits for {refs} FltObjectReference reference(s)"
            ),
        );
    }
    let start = crate::sched::now();
    while k.lock().instances[instance].in_flight > 0 || k.lock().instances[instance].object_refs > 0
    {
        if crate::sched::since(start) > crate::sync::HANG_TIMEOUT {
            let limit = crate::sync::HANG_TIMEOUT;
            k.violation(format!(
                "{name}: instance teardown waited {limit:?} for in-flight I/O or FltObjectReference references"
            ));
            break;
        }
        crate::sched::sleep(std::time::Duration::from_millis(1));
    }
    if let Some(cb) = complete_cb {
        let frame = Frame {
            filter: Some(filter),
            who: name.clone(),
            what: "InstanceTeardownComplete".into(),
        };
        k.trace(
            EventKind::Callback("InstanceTeardownComplete"),
            format!("InstanceTeardownComplete -> {name}"),
        );
        // SAFETY: as above.
        run_as(frame, irql::PASSIVE_LEVEL, || unsafe {
            cb(&raw const objects, reason);
        });
    }
    crate::context_refs::detach_instance_contexts(k, instance);
}

/// A user operation's result: its status, except that `STATUS_PENDING` (an operation the model
/// gave up waiting for, pended on a data-scan section that never closed: a finding) is not a
/// success, though its severity is: the operation is neither failed nor done.
fn completed(status: NtStatus) -> Result<(), NtStatus> {
    if status.0 == STATUS_PENDING {
        return Err(status);
    }
    status.ok()
}
