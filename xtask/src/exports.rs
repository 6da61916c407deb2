//! Every kernel function the samples import: the module that exports it on each architecture and
//! the minimum Windows version its documentation states.
//!
//! A driver that imports a name its module does not export fails to load
//! (`STATUS_DRIVER_ENTRYPOINT_NOT_FOUND`), and so does one that imports a function newer than the
//! Windows it runs on. So the PE check ([`crate::pe`]) accepts an import only if it is in
//! [`EXPORTS`] and comes from the module listed for the image's architecture, and the INF check
//! (`check-inf`) compares the minimum Windows version an INF states with the highest minimum of
//! its driver's imports (from the sample's committed `driver-imports.txt`, see [`crate`]).
//!
//! Sources:
//! - module: the `req.dll` / `req.lib` of the function's page in Microsoft's DDI reference
//!   (MicrosoftDocs/windows-driver-docs-ddi, `wdk-ddi-src/content/<header>/nf-<header>-<name>.md`),
//!   which is the import library (`NtosKrnl.lib`, `FltMgr.lib`, `Hal.lib`) the WDK links a C driver
//!   against; `KeGetCurrentIrql` on ARM64 comes from the WDK's `wdm.h`, which declares it
//!   `NTHALAPI` for `_ARM64_` (a `hal.dll` import) and as an inline CR8 read for `_AMD64_` (no
//!   import at all);
//! - minimum version: the page's "Minimum supported client" (`req.target-min-winverclnt`), or
//!   the availability sentence of its Requirements table. Many pages (most Filter Manager ones
//!   among them) state none: [`Export::min`] is then `None`, and the function does not raise a
//!   driver's minimum (a package never goes below Windows 10 version 1903 anyway).
//! - `memcpy`, `memmove`, `memset` and `memcmp` have no DDI page: they are C runtime routines
//!   that `ntoskrnl.exe` exports (the samples' own runtime imports them from it, see
//!   `common/src/kernel/runtime.rs`); no minimum is stated.
//! - `__chkstk`, the stack probe, is not in the table: no driver may import it (the PE check's
//!   `NoStackProbe` rule, which reports it instead of this table). The compiler calls it only
//!   for a frame larger than a 4 KiB page, and the frame budget is 2 KiB.

use std::fmt;

/// A Windows release, ordered by its version number (major, minor, build).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WinVer {
    /// `(major, minor, build)`, e.g. `(10, 0, 19041)`.
    pub number: (u32, u32, u32),
    /// The name Microsoft's pages use, e.g. "Windows 10, version 2004".
    pub name: &'static str,
}

impl WinVer {
    /// Windows 2000 (5.0.2195).
    pub const WIN2000: Self = Self::new((5, 0, 2195), "Windows 2000");
    /// Windows XP (5.1.2600).
    pub const WINXP: Self = Self::new((5, 1, 2600), "Windows XP");
    /// Windows XP SP2 / Windows Server 2003 SP1, where Filter Manager's later routines appear.
    pub const WINXP_SP2: Self = Self::new((5, 1, 2600), "Windows XP SP2");
    /// Windows 7 (6.1.7600).
    pub const WIN7: Self = Self::new((6, 1, 7600), "Windows 7");
    /// Windows 8 (6.2.9200).
    pub const WIN8: Self = Self::new((6, 2, 9200), "Windows 8");
    /// Windows 8.1 (6.3.9600).
    pub const WIN8_1: Self = Self::new((6, 3, 9600), "Windows 8.1");
    /// Windows Vista (6.0.6000).
    pub const VISTA: Self = Self::new((6, 0, 6000), "Windows Vista");
    /// Windows 10, version 1803 (10.0.17134): `IoOpenDriverRegistryKey` appears.
    pub const WIN10_1803: Self = Self::new((10, 0, 17134), "Windows 10, version 1803");
    /// Windows 10, version 1903 (10.0.18362): the first release with primitive drivers, the INF
    /// form the samples use (Microsoft's "Creating a primitive driver" page).
    pub const WIN10_1903: Self = Self::new((10, 0, 18362), "Windows 10, version 1903");
    /// Windows 10, version 2004 (10.0.19041).
    pub const WIN10_2004: Self = Self::new((10, 0, 19041), "Windows 10, version 2004");

    /// A release.
    #[must_use]
    pub const fn new(number: (u32, u32, u32), name: &'static str) -> Self {
        Self { number, name }
    }

    /// The Windows 10/11 release with build number `build` (for an INF's `10.0...<build>`
    /// decoration), named when it is one this table knows.
    #[must_use]
    pub fn windows10_build(build: u32) -> Self {
        [Self::WIN10_1803, Self::WIN10_1903, Self::WIN10_2004]
            .into_iter()
            .find(|v| v.number == (10, 0, build))
            .unwrap_or(Self::new((10, 0, build), "Windows 10/11"))
    }

    /// The later of two releases.
    #[must_use]
    pub fn max(self, other: Self) -> Self {
        if other.number > self.number {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for WinVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor, build) = self.number;
        write!(f, "{} ({major}.{minor}.{build})", self.name)
    }
}

/// The kernel architectures a driver is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `x86_64` (`IMAGE_FILE_MACHINE_AMD64`).
    X86_64,
    /// `aarch64` (`IMAGE_FILE_MACHINE_ARM64`).
    Aarch64,
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
        })
    }
}

/// `ntoskrnl.exe`.
const NT: Option<&str> = Some("ntoskrnl.exe");
/// `fltmgr.sys`.
const FLT: Option<&str> = Some("fltmgr.sys");
/// `hal.dll`.
const HAL: Option<&str> = Some("hal.dll");

/// One exported function.
#[derive(Clone, Copy, Debug)]
pub struct Export {
    /// The exported name.
    pub name: &'static str,
    /// The module a `x86_64` driver imports it from; `None`: no `x86_64` driver may import it
    /// (an inline function or a static helper there).
    pub x86_64: Option<&'static str>,
    /// The module an `aarch64` driver imports it from; `None`: no `aarch64` driver may import it
    /// (an inline function or a static helper there).
    pub aarch64: Option<&'static str>,
    /// The minimum Windows version its page states; `None`: the page states none.
    pub min: Option<WinVer>,
    /// Its page under `https://learn.microsoft.com/windows-hardware/drivers/ddi/` (or the
    /// source of the fact when there is no page).
    pub source: &'static str,
}

impl Export {
    /// The module an `arch` driver imports it from.
    #[must_use]
    pub fn module(&self, arch: Arch) -> Option<&'static str> {
        match arch {
            Arch::X86_64 => self.x86_64,
            Arch::Aarch64 => self.aarch64,
        }
    }
}

/// Shorthand for a table row.
const fn e(
    name: &'static str,
    x86_64: Option<&'static str>,
    aarch64: Option<&'static str>,
    min: Option<WinVer>,
    source: &'static str,
) -> Export {
    Export {
        name,
        x86_64,
        aarch64,
        min,
        source,
    }
}

/// Every function the samples import, sorted by name. Add a row (with its sources) before a
/// sample imports something new: the build fails until then.
#[rustfmt::skip]
pub const EXPORTS: &[Export] = &[
    e("DbgPrint", NT, NT, None, "wdm/nf-wdm-dbgprint"),
    e("DbgPrintEx", NT, NT, Some(WinVer::WINXP), "wdm/nf-wdm-dbgprintex"),
    e("ExAcquireRundownProtection", NT, NT, Some(WinVer::WINXP), "wdm/nf-wdm-exacquirerundownprotection"),
    e("ExAllocatePool2", NT, NT, Some(WinVer::WIN10_2004), "wdm/nf-wdm-exallocatepool2"),
    e("ExFreePool", NT, NT, Some(WinVer::WIN2000), "wdm/nf-wdm-exfreepool"),
    e("ExFreePoolWithTag", NT, NT, Some(WinVer::WIN2000), "wdm/nf-wdm-exfreepoolwithtag"),
    e("ExInitializeRundownProtection", NT, NT, Some(WinVer::WINXP), "wdm/nf-wdm-exinitializerundownprotection"),
    e("ExReleaseRundownProtection", NT, NT, Some(WinVer::WINXP), "wdm/nf-wdm-exreleaserundownprotection"),
    e("ExWaitForRundownProtectionRelease", NT, NT, Some(WinVer::WINXP), "wdm/nf-wdm-exwaitforrundownprotectionrelease"),
    e("FltAcquirePushLockExclusive", FLT, FLT, None, "fltkernel/nf-fltkernel-fltacquirepushlockexclusive"),
    e("FltAcquirePushLockShared", FLT, FLT, None, "fltkernel/nf-fltkernel-fltacquirepushlockshared"),
    e("FltAllocateCallbackDataEx", FLT, FLT, Some(WinVer::WIN7), "fltkernel/nf-fltkernel-fltallocatecallbackdataex"),
    e("FltAllocateContext", FLT, FLT, None, "fltkernel/nf-fltkernel-fltallocatecontext"),
    e("FltAllocateGenericWorkItem", FLT, FLT, None, "fltkernel/nf-fltkernel-fltallocategenericworkitem"),
    e("FltCancelFileOpen", FLT, FLT, None, "fltkernel/nf-fltkernel-fltcancelfileopen"),
    e("FltCancellableWaitForSingleObject", FLT, FLT, Some(WinVer::VISTA), "fltkernel/nf-fltkernel-fltcancellablewaitforsingleobject"),
    e("FltCloseSectionForDataScan", FLT, FLT, Some(WinVer::WIN8), "fltkernel/nf-fltkernel-fltclosesectionfordatascan"),
    e("FltCreateSectionForDataScan", FLT, FLT, Some(WinVer::WIN8), "fltkernel/nf-fltkernel-fltcreatesectionfordatascan"),
    e("FltDeletePushLock", FLT, FLT, Some(WinVer::WINXP_SP2), "fltkernel/nf-fltkernel-fltdeletepushlock"),
    e("FltFindExtraCreateParameter", FLT, FLT, Some(WinVer::VISTA), "fltkernel/nf-fltkernel-fltfindextracreateparameter"),
    e("FltFreeCallbackData", FLT, FLT, None, "fltkernel/nf-fltkernel-fltfreecallbackdata"),
    e("FltFreeGenericWorkItem", FLT, FLT, None, "fltkernel/nf-fltkernel-fltfreegenericworkitem"),
    e("FltGetEcpListFromCallbackData", FLT, FLT, Some(WinVer::VISTA), "fltkernel/nf-fltkernel-fltgetecplistfromcallbackdata"),
    e("FltGetFileNameInformation", FLT, FLT, None, "fltkernel/nf-fltkernel-fltgetfilenameinformation"),
    e("FltGetInstanceContext", FLT, FLT, None, "fltkernel/nf-fltkernel-fltgetinstancecontext"),
    e("FltGetRequestorProcessId", FLT, FLT, None, "fltkernel/nf-fltkernel-fltgetrequestorprocessid"),
    e("FltGetSectionContext", FLT, FLT, Some(WinVer::WIN8), "fltkernel/nf-fltkernel-fltgetsectioncontext"),
    e("FltGetStreamHandleContext", FLT, FLT, None, "fltkernel/nf-fltkernel-fltgetstreamhandlecontext"),
    e("FltInitializePushLock", FLT, FLT, Some(WinVer::WINXP_SP2), "fltkernel/nf-fltkernel-fltinitializepushlock"),
    e("FltIsDirectory", FLT, FLT, Some(WinVer::WINXP_SP2), "fltkernel/nf-fltkernel-fltisdirectory"),
    e("FltIsEcpFromUserMode", FLT, FLT, Some(WinVer::VISTA), "fltkernel/nf-fltkernel-fltisecpfromusermode"),
    e("FltObjectDereference", FLT, FLT, None, "fltkernel/nf-fltkernel-fltobjectdereference"),
    e("FltObjectReference", FLT, FLT, None, "fltkernel/nf-fltkernel-fltobjectreference"),
    e("FltPerformAsynchronousIo", FLT, FLT, None, "fltkernel/nf-fltkernel-fltperformasynchronousio"),
    e("FltPerformSynchronousIo", FLT, FLT, None, "fltkernel/nf-fltkernel-fltperformsynchronousio"),
    e("FltQueueGenericWorkItem", FLT, FLT, None, "fltkernel/nf-fltkernel-fltqueuegenericworkitem"),
    e("FltReferenceContext", FLT, FLT, None, "fltkernel/nf-fltkernel-fltreferencecontext"),
    e("FltRegisterFilter", FLT, FLT, None, "fltkernel/nf-fltkernel-fltregisterfilter"),
    e("FltRegisterForDataScan", FLT, FLT, Some(WinVer::WIN8), "fltkernel/nf-fltkernel-fltregisterfordatascan"),
    e("FltReleaseContext", FLT, FLT, None, "fltkernel/nf-fltkernel-fltreleasecontext"),
    e("FltReleaseFileNameInformation", FLT, FLT, None, "fltkernel/nf-fltkernel-fltreleasefilenameinformation"),
    e("FltReleasePushLock", FLT, FLT, Some(WinVer::WINXP_SP2), "fltkernel/nf-fltkernel-fltreleasepushlock"),
    e("FltReuseCallbackData", FLT, FLT, None, "fltkernel/nf-fltkernel-fltreusecallbackdata"),
    e("FltSetInstanceContext", FLT, FLT, Some(WinVer::WINXP_SP2), "fltkernel/nf-fltkernel-fltsetinstancecontext"),
    e("FltSetStreamHandleContext", FLT, FLT, Some(WinVer::WINXP_SP2), "fltkernel/nf-fltkernel-fltsetstreamhandlecontext"),
    e("FltStartFiltering", FLT, FLT, None, "fltkernel/nf-fltkernel-fltstartfiltering"),
    e("FltUnregisterFilter", FLT, FLT, None, "fltkernel/nf-fltkernel-fltunregisterfilter"),
    e("IoOpenDriverRegistryKey", NT, NT, Some(WinVer::WIN10_1803), "wdm/nf-wdm-ioopendriverregistrykey"),
    e("KeBugCheckEx", NT, NT, Some(WinVer::WIN2000), "wdm/nf-wdm-kebugcheckex"),
    e("KeDelayExecutionThread", NT, NT, Some(WinVer::WIN2000), "wdm/nf-wdm-kedelayexecutionthread"),
    // FsRtlEnterFileSystem / FsRtlLeaveFileSystem are ntifs.h macros for these two.
    e("KeEnterCriticalRegion", NT, NT, Some(WinVer::WIN2000), "ntddk/nf-ntddk-keentercriticalregion"),
    // x86_64: wdm.h defines it inline (a read of CR8); ARM64: NTHALAPI, a hal.dll export.
    e("KeGetCurrentIrql", None, HAL, Some(WinVer::WIN2000), "wdm/nf-wdm-kegetcurrentirql; wdm.h (_ARM64_: NTHALAPI)"),
    e("KeInitializeEvent", NT, NT, Some(WinVer::WIN2000), "wdm/nf-wdm-keinitializeevent"),
    e("KeLeaveCriticalRegion", NT, NT, Some(WinVer::WIN2000), "ntddk/nf-ntddk-keleavecriticalregion"),
    e("KeSetEvent", NT, NT, Some(WinVer::WIN2000), "wdm/nf-wdm-kesetevent"),
    e("KeWaitForSingleObject", NT, NT, None, "wdm/nf-wdm-kewaitforsingleobject"),
    e("MmCopyMemory", NT, NT, Some(WinVer::WIN8_1), "ntddk/nf-ntddk-mmcopymemory"),
    e("MmMapViewInSystemSpace", NT, NT, None, "ntddk/nf-ntddk-mmmapviewinsystemspace"),
    // No DDI page: declared in the WDK's ntddk.h (`_IRQL_requires_max_(APC_LEVEL)`); exported
    // by ntoskrnl.exe from Windows 8 (NT 6.2) on.
    e("MmMapViewInSystemSpaceEx", NT, NT, Some(WinVer::WIN8), "WDK ntddk.h; no DDI page"),
    e("MmUnmapViewInSystemSpace", NT, NT, None, "ntddk/nf-ntddk-mmunmapviewinsystemspace"),
    e("ObCloseHandle", NT, NT, None, "wdm/nf-wdm-obclosehandle"),
    e("ObDereferenceObjectDeferDelete", NT, NT, Some(WinVer::VISTA), "wdm/nf-wdm-obdereferenceobjectdeferdelete"),
    e("ObReferenceObjectByHandle", NT, NT, Some(WinVer::WIN2000), "wdm/nf-wdm-obreferenceobjectbyhandle"),
    // wdm.h: `#define ObDereferenceObject(a) ObfDereferenceObject(a)`.
    e("ObfDereferenceObject", NT, NT, None, "wdm/nf-wdm-obdereferenceobject; wdm.h"),
    e("ObfReferenceObject", NT, NT, Some(WinVer::WIN2000), "wdm/nf-wdm-obfreferenceobject"),
    e("PsCreateSystemThread", NT, NT, Some(WinVer::WIN2000), "wdm/nf-wdm-pscreatesystemthread"),
    e("PsTerminateSystemThread", NT, NT, Some(WinVer::WIN2000), "wdm/nf-wdm-psterminatesystemthread"),
    e("ZwClose", NT, NT, Some(WinVer::WIN2000), "wdm/nf-wdm-zwclose"),
    e("ZwQueryValueKey", NT, NT, Some(WinVer::WIN2000), "wdm/nf-wdm-zwqueryvaluekey"),
    e("memcmp", NT, NT, None, "C runtime, exported by ntoskrnl.exe"),
    e("memcpy", NT, NT, None, "C runtime, exported by ntoskrnl.exe"),
    e("memmove", NT, NT, None, "C runtime, exported by ntoskrnl.exe"),
    e("memset", NT, NT, None, "C runtime, exported by ntoskrnl.exe"),
];

/// What the WDK-mode runtime (`common` with the `wdk` feature) adds to every sample's imports,
/// whatever the sample calls, with where it comes from. The standalone builds `cargo xtask build`
/// makes cannot show these; the WDK-mode packages of CI's Windows jobs are checked by
/// `cargo xtask verify`. The INF is shared by both modes, so a package's minimum counts them.
pub const WDK_RUNTIME_IMPORTS: &[(&str, &str)] = &[
    (
        "ExAllocatePool2",
        "wdk-alloc 0.4.2, the global allocator (src/lib.rs)",
    ),
    (
        "ExFreePool",
        "wdk-alloc 0.4.2, the global allocator (src/lib.rs)",
    ),
    ("DbgPrint", "wdk 0.5.0, println! (src/print.rs)"),
    (
        "KeBugCheckEx",
        "wdk-panic 0.5.0, the panic handler (src/lib.rs)",
    ),
];

/// The table row for `name` (case-sensitive, as the loader matches names).
#[must_use]
pub fn find(name: &str) -> Option<&'static Export> {
    EXPORTS.iter().find(|export| export.name == name)
}

/// Why an import is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The function is not in [`EXPORTS`].
    Unknown,
    /// It is in the table, but an `arch` driver must import it from `expected` (`None`: not at all).
    WrongModule {
        /// Where the table says it comes from on this architecture.
        expected: Option<&'static str>,
    },
}

/// Checks one import of an `arch` driver. Returns its row.
///
/// # Errors
///
/// The function is unknown or comes from the wrong module.
pub fn check_import(arch: Arch, module: &str, function: &str) -> Result<&'static Export, Refusal> {
    let export = find(function).ok_or(Refusal::Unknown)?;
    match export.module(arch) {
        Some(expected) if expected.eq_ignore_ascii_case(module) => Ok(export),
        expected => Err(Refusal::WrongModule { expected }),
    }
}

/// The highest stated minimum of `functions` (unknown names are skipped: the caller reports
/// them), or `None` if none states one.
pub fn minimum<'a>(functions: impl IntoIterator<Item = &'a str>) -> Option<WinVer> {
    functions
        .into_iter()
        .filter_map(find)
        .filter_map(|export| export.min)
        .reduce(WinVer::max)
}

/// The minimum Windows version of a sample's driver package: the highest of Windows 10 version
/// 1903, where primitive drivers (the samples' INF form) begin, `imports` (the standalone
/// driver's, see [`minimum`]) and the WDK-mode runtime's ([`WDK_RUNTIME_IMPORTS`]): one INF
/// serves both build modes.
#[must_use]
pub fn package_minimum(imports: Option<WinVer>) -> WinVer {
    let runtime = minimum(WDK_RUNTIME_IMPORTS.iter().map(|(name, _)| *name));
    [imports, runtime]
        .into_iter()
        .flatten()
        .fold(WinVer::WIN10_1903, WinVer::max)
}

/// The committed list of a sample's driver imports: `samples/<dir>/driver-imports.txt`.
///
/// `cargo xtask build` checks it against the real import tables (every import of every build is
/// listed, and, when all architectures and profiles are built, every listed function is imported
/// by some build), so that `check-inf` can read a driver's needs from it without building.
pub const LIST_FILE: &str = "driver-imports.txt";

/// The functions of a [`LIST_FILE`]: one name a line; blank lines and `#` comments are skipped.
#[must_use]
pub fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in EXPORTS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn module_per_architecture() {
        assert!(check_import(Arch::X86_64, "NTOSKRNL.EXE", "ExAllocatePool2").is_ok());
        assert!(check_import(Arch::Aarch64, "hal.dll", "KeGetCurrentIrql").is_ok());
        assert_eq!(
            check_import(Arch::Aarch64, "ntoskrnl.exe", "KeGetCurrentIrql").unwrap_err(),
            Refusal::WrongModule {
                expected: Some("hal.dll")
            }
        );
        assert_eq!(
            check_import(Arch::X86_64, "hal.dll", "KeGetCurrentIrql").unwrap_err(),
            Refusal::WrongModule { expected: None }
        );
        assert_eq!(
            check_import(Arch::X86_64, "fltmgr.sys", "DbgPrintEx").unwrap_err(),
            Refusal::WrongModule {
                expected: Some("ntoskrnl.exe")
            }
        );
        assert_eq!(
            check_import(Arch::X86_64, "ntoskrnl.exe", "ExAllocatePoolWithTag").unwrap_err(),
            Refusal::Unknown
        );
    }

    #[test]
    fn minimum_is_the_highest_stated() {
        assert_eq!(minimum(["FltRegisterFilter", "memcpy"]), None);
        assert_eq!(
            minimum([
                "FltRegisterFilter",
                "FltCreateSectionForDataScan",
                "KeBugCheckEx"
            ]),
            Some(WinVer::WIN8)
        );
        assert_eq!(
            minimum(["ExAllocatePool2", "FltAllocateCallbackDataEx"]),
            Some(WinVer::WIN10_2004)
        );
        assert_eq!(
            WinVer::WIN10_2004.to_string(),
            "Windows 10, version 2004 (10.0.19041)"
        );
        assert_eq!(WinVer::windows10_build(18362), WinVer::WIN10_1903);
    }

    #[test]
    fn package_minimum_counts_primitive_drivers_and_the_wdk_runtime() {
        for (name, _) in WDK_RUNTIME_IMPORTS {
            assert!(find(name).is_some(), "{name} is not in the table");
        }
        // wdk-alloc's ExAllocatePool2 lifts every package to 2004.
        assert_eq!(package_minimum(None), WinVer::WIN10_2004);
        assert_eq!(package_minimum(Some(WinVer::WIN8)), WinVer::WIN10_2004);
    }

    #[test]
    fn list_skips_comments_and_blanks() {
        assert_eq!(
            parse_list("# header\n\nmemcpy\n  FltRegisterFilter  # why\n"),
            ["memcpy", "FltRegisterFilter"]
        );
    }
}
