//! [`World`]: the scripted machine a test drives. Volumes, files, processes, filters, and the
//! user-mode operations that exercise them.
//!
//! This file has the machine itself (creating it, dropping it), the handles and the holds it hands
//! out; each other file is one part of what a test does with it: `files.rs`, `operations.rs`,
//! `filters.rs`, `holds.rs`, `faults.rs`, `inspection.rs`.

use std::{sync::Arc, time::Instant};

use windows_sys::{
    Wdk::{
        Foundation::DRIVER_OBJECT,
        Storage::FileSystem::{FILE_DIRECTORY_FILE, FILE_NON_DIRECTORY_FILE, FILE_OPEN},
        System::SystemServices::SL_OPEN_PAGING_FILE,
    },
    Win32::{
        Foundation::{NTSTATUS, UNICODE_STRING},
        Storage::{
            FileSystem::{
                FILE_READ_DATA, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
                FILE_WRITE_DATA, SYNCHRONIZE,
            },
            InstallableFileSystems::{FLT_FSTYPE_MUP, FLT_FSTYPE_NTFS},
        },
        System::Ioctl::{FILE_DEVICE_DISK_FILE_SYSTEM, FILE_DEVICE_NETWORK_FILE_SYSTEM},
    },
};

use crate::{
    kernel::{Activation, Kernel},
    state::{HoldSlot, State, VolumeRec},
};

mod faults;
mod files;
mod filters;
mod holds;
mod inspection;
mod operations;

pub(crate) use filters::{attach_instances, teardown_instance};
pub(crate) use operations::race_conflict;

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
    /// Where it is armed in the model's options (taken out at drop if nothing reached it).
    slot: HoldSlot,
}

/// A `FltCreateSectionForDataScan` held after linking its section.
pub type SectionHold = Hold;
/// `KeDelayExecutionThread` calls held until released.
pub type DelayHold = Hold;
/// One API call held at its entry.
pub type CallHold = Hold;

impl Hold {
    /// Arms a hold in `slot` (replacing one there that nothing has reached yet).
    fn arm(kernel: &Arc<Kernel>, slot: HoldSlot) -> Self {
        let reached = Arc::new(crate::sync::HostEvent::new(false, false));
        let release = Arc::new(crate::sync::HostEvent::new(false, false));
        let mut state = kernel.lock();
        *state.options.hold(slot) = Some((Arc::clone(&reached), Arc::clone(&release)));
        if let HoldSlot::Call(api) = slot {
            state.options.hold_call_api = api;
            kernel
                .call_hold_armed
                .store(true, std::sync::atomic::Ordering::Release);
        }
        drop(state);
        Self {
            kernel: Arc::clone(kernel),
            reached,
            release,
            slot,
        }
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
    /// Disarms the hold if it is still armed (nothing reached it), then releases what it holds.
    fn drop(&mut self) {
        let mut state = self.kernel.lock();
        let slot = state.options.hold(self.slot);
        if slot
            .as_ref()
            .is_some_and(|(reached, _)| Arc::ptr_eq(reached, &self.reached))
        {
            *slot = None;
            if let HoldSlot::Call(_) = self.slot {
                self.kernel
                    .call_hold_armed
                    .store(false, std::sync::atomic::Ordering::Release);
            }
        }
        drop(state);
        self.release.set();
    }
}

/// What a counting filter saw, by major function.
pub use crate::counting::Counts;

/// The scripted machine: one per test. Creating one waits until no other is alive; why, and what
/// follows for tests, is said in one place: `docs/contributing.md`, "Tests that build a `World`".
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
