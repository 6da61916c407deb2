//! Safe shapes for the Filter Manager calls that the sample minifilters make.
//!
//! Each sample keeps the API it teaches in plain sight at its call site; this crate holds the
//! plumbing every sample needs around it:
//!
//! - [`NtStatus`]: statuses classified and printed by name;
//! - [`log!`] and [`paged_code!`]: debugger output and the `PAGED_CODE()` IRQL check;
//! - [`registration`]: `FLT_REGISTRATION` and its tables as `static` data, without `static mut`;
//! - RAII guards whose `Drop` performs the documented release:
//!   [`context::ContextRef`] (`FltReleaseContext`), [`callback_data::OwnedCallbackData`]
//!   (`FltFreeCallbackData`), [`section::DataScanSection`] (the close data-scan teaches, in the
//!   order `docs/sections.md` gives), [`filter::RegisteredFilter`] (`FltUnregisterFilter`), [`pool::PoolBox`]
//!   (`ExFreePoolWithTag`), [`name::FileName`] (`FltReleaseFileNameInformation`),
//!   [`push_lock::PushLock`]'s guards (`FltReleasePushLock`) and [`filter::InstanceRef`]
//!   (`FltObjectDereference`);
//! - [`scope`]: the demo folder a sample acts in, read from the service's `Parameters` key in
//!   `DriverEntry` and decided in pre-create without a name query;
//! - [`event::Event`]: a `KEVENT` initialized in place, set and waited for (bounded or not);
//! - [`verdict`]: a scan's verdict, shared with the scans of the stream that wait for it;
//!   [`writes`]: which handles wrote;
//! - [`handoff`]: the one-closer hand-off, a slot whose interlocked exchange decides who closes,
//!   and [`handoff::SharedSection`], a data-scan section several parties hold, close and read;
//! - [`worker`]: a system thread of the driver's own and its bounded queue, for work that takes
//!   minutes (section-conflict's scans);
//! - [`driver_entry!`]: `DriverEntry` and the unload callback, for samples whose lesson is
//!   elsewhere (with a [`worker`] thread or without);
//! - [`log::Tally`]: the counters of an unload summary;
//! - [`object`]: kernel-handle object attributes, for every handle a sample opens or creates;
//! - [`apc::FileSystemRegion`]: `FsRtlEnterFileSystem` / `FsRtlLeaveFileSystem` as a guard;
//! - [`bindings`]: the windows-sys declarations the samples use, in one place;
//! - [`params`]: the `FLT_PARAMETERS` members with the C layout, because windows-sys 0.61 lays
//!   them out wrong on 64-bit targets; [`layout`]: compile-time checks of every other
//!   windows-sys structure the project touches, and [`file_object`]: `FILE_OBJECT` fields read
//!   without a reference and `BOOLEAN`s read as bytes.
//!
//! # Where windows-sys is wrong, and what the project does about it
//! - **`FLT_PARAMETERS`**: the metadata drops `fltKernel.h`'s per-member `POINTER_ALIGNMENT`
//!   (8-byte alignment on 64-bit targets), so `Create`, `Read`, `Write`,
//!   `QueryFileInformation`, `SetFileInformation` and other members put fields at the wrong
//!   offsets on `x86_64` and `aarch64`. Reported upstream as windows-rs issue #3525
//!   (<https://github.com/microsoft/windows-rs/issues/3525>) and wdkmetadata issue #88
//!   (<https://github.com/microsoft/wdkmetadata/issues/88>), both open. The samples use the
//!   views in [`params`] and never the windows-sys members; the table of offsets is there.
//! - **`BOOLEAN` as `bool`**: windows-sys types C `BOOLEAN` fields (`FILE_OBJECT.ReadAccess`,
//!   `FILE_STANDARD_INFORMATION.DeletePending`, ...) as Rust `bool`, which makes any byte but 0
//!   and 1 undefined behaviour. The samples read them as bytes ([`layout::boolean`],
//!   [`file_object::access`]).
//! - **`FLT_CALLBACK_DATA.Iopb`** is `*const`, though the header declares a constant pointer to a
//!   writable block; [`callback_data::OwnedCallbackData::iopb_mut`] says why writing is right.
//! - **`DbgPrintEx` and `Zw*`** are placed in `ntdll.dll`; see the `kernel` module.
//!
//! Every other structure the project reads or writes field by field matches the C layout; the
//! checks in [`layout`] prove it at compile time.
//!
//! # Three build modes
//! - **Host** (any non-Windows target, `cargo test`): an ordinary `std` crate. The kernel
//!   functions are plain `extern` declarations (windows-sys) that `fltsim` defines.
//! - **Kernel, WDK** (Windows target, feature `wdk`): `no_std`, with wdk-alloc and wdk-panic;
//!   debug lines through `DbgPrintEx`, as in the standalone mode.
//! - **Kernel, standalone** (Windows target, `--no-default-features`): `no_std`, with the minimal
//!   runtime in the `kernel` module: a bugchecking panic handler, `DbgPrintEx` logging, and the
//!   few symbols the compiler expects.
#![cfg_attr(target_os = "windows", no_std)]

pub mod apc;
pub mod callback_data;
pub mod context;
pub mod create;
pub mod event;
pub mod file_object;
pub mod filter;
pub mod handoff;
pub mod irql;
pub mod layout;
pub mod log;
pub mod name;
pub mod object;
pub mod once;
pub mod params;
pub mod pool;
pub mod push_lock;
pub mod registration;
pub mod scope;
pub mod section;
pub mod status;
pub mod verdict;
pub mod volume;
pub mod worker;
pub mod writes;

#[cfg(not(target_os = "windows"))]
mod host;
#[cfg(target_os = "windows")]
mod kernel;

pub use status::NtStatus;

/// `KernelMode` (`KPROCESSOR_MODE` 0), for `ObCloseHandle` and waits.
pub const KERNEL_MODE: i8 = 0;

/// `DPFLTR_IHVDRIVER_ID`: the debug-print component for third-party drivers.
pub const DPFLTR_IHVDRIVER_ID: u32 = 77;

/// The windows-sys declarations the samples use, in one place.
///
/// Everything here is generated from Microsoft's metadata by windows-sys; nothing is hand-written
/// (the exceptions, where windows-sys is wrong, live in [`params`], [`file_object`] and the
/// `kernel` module, and the crate documentation lists them). The samples, `common` and `fltsim`'s
/// tests name every kernel item through this one path, so the windows-sys version and feature set
/// (the root `Cargo.toml`) are chosen once.
///
/// The re-exports are `#[doc(no_inline)]`: each shows here as one `pub use` line, not as copies
/// of the many thousand items the four whole modules hold, which would bury this crate's own
/// items (`.ci/run` counts `common`'s doc pages and fails when they are inlined). Each item's own
/// documentation is windows-sys's (<https://docs.rs/windows-sys/0.61>) and, for its contract,
/// Microsoft's reference page of the same name.
///
/// | re-exported | what the samples take from it |
/// |---|---|
/// | `Wdk::Storage::FileSystem::Minifilters::*`, whole | the Filter Manager: `Flt*` functions, `FLT_REGISTRATION`, `FLT_CALLBACK_DATA`, `FLT_RELATED_OBJECTS`, context types, `FLT_PREOP_*` / `FLT_POSTOP_*` statuses and flags |
/// | `Wdk::Foundation::*`, whole | kernel object types: `DRIVER_OBJECT`, `FILE_OBJECT`, `OBJECT_ATTRIBUTES`, `KEVENT` |
/// | `Wdk::System::SystemServices::*`, whole | `IRP_MJ_*` major functions, `SL_*` / `IRP_*` / `FO_*` flags, and the kernel services: `Ob*` references, `Ke*`, `Ex*`, `Mm*`, `Zw*` |
/// | `Win32::Foundation::*`, whole | `NTSTATUS` and the `STATUS_*` values, `UNICODE_STRING`, `HANDLE`, `OBJ_KERNEL_HANDLE` |
/// | `Wdk::Storage::FileSystem`: `FILE_INTERNAL_INFORMATION`, `FILE_STANDARD_INFORMATION`, `FileInternalInformation`, `FileStandardInformation`, `FILE_NON_DIRECTORY_FILE` | the file information `callback-data` queries with its own callback data |
/// | `Win32::Storage::FileSystem`: `DELETE`, `FILE_APPEND_DATA`, `FILE_EXECUTE`, `FILE_READ_DATA`, `FILE_WRITE_DATA`, `FILE_SHARE_*` | access and share masks of a create (`data-scan` and the models' opens) |
/// | `Win32::Storage::InstallableFileSystems::FLT_FILESYSTEM_TYPE` | the instance-setup callback's file-system type |
/// | `Win32::System::Memory`: `PAGE_READONLY`, `SEC_COMMIT`, `SECTION_MAP_READ`, `SECTION_QUERY` | the arguments of `FltCreateSectionForDataScan` |
///
/// Four modules are re-exported whole; from the others only the names above, because whole
/// re-exports of those would collide with names in the first four.
pub mod bindings {
    #[doc(no_inline)]
    pub use windows_sys::{
        Wdk::{
            Foundation::*,
            Storage::FileSystem::{
                FILE_INTERNAL_INFORMATION, FILE_NON_DIRECTORY_FILE, FILE_STANDARD_INFORMATION,
                FileInternalInformation, FileStandardInformation, Minifilters::*,
            },
            System::SystemServices::*,
        },
        Win32::{
            Foundation::*,
            Storage::{
                FileSystem::{
                    DELETE, FILE_APPEND_DATA, FILE_EXECUTE, FILE_READ_DATA, FILE_SHARE_DELETE,
                    FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_WRITE_DATA,
                },
                InstallableFileSystems::FLT_FILESYSTEM_TYPE,
            },
            System::Memory::{PAGE_READONLY, SEC_COMMIT, SECTION_MAP_READ, SECTION_QUERY},
        },
    };
}

/// The seam to the system: the kernel in kernel builds, `fltsim` on the host.
mod sys {
    #[cfg(not(target_os = "windows"))]
    pub(crate) use crate::host::{assertion_failure, current_irql, dbg_print};
    #[cfg(target_os = "windows")]
    pub(crate) use crate::kernel::{current_irql, dbg_print};

    /// A failed kernel assertion: a bugcheck in debug builds (as `NT_ASSERT` is without a
    /// debugger attached), a debugger line in release builds.
    #[cfg(target_os = "windows")]
    pub(crate) fn assertion_failure(message: &str) {
        #[cfg(debug_assertions)]
        panic!("{message}");
        #[cfg(not(debug_assertions))]
        dbg_print(message);
    }
}
