//! The kernel side of `common`: the runtime and the few system seams that differ between the
//! two kernel build modes. Compiled only for Windows targets (`cfg(target_os = "windows")`), where
//! the crate is `no_std`. Nothing here allocates.
//!
//! | | WDK mode (feature `wdk`) | standalone mode (no `wdk`) |
//! |---|---|---|
//! | debug output ([`dbg_print`]) | `DbgPrintEx` from `ntoskrnl.exe` ([`ntoskrnl`]) | the same |
//! | panic | `wdk-panic` | [`runtime`]'s handler: `KeBugCheckEx` with [`runtime::PANIC_BUGCHECK_CODE`] |
//! | global allocator | `wdk-alloc`'s `WdkAllocator` | none: `common` never allocates |
//! | `memcpy`/`memset`/`memmove`/`memcmp`, `__chkstk`, `_fltused`, `__CxxFrameHandler3` | the WDK's libraries | [`runtime`] |
//! | [`current_irql`] | the same code in both modes | |
//!
//! The `ntoskrnl.exe` redeclarations in [`ntoskrnl`] are used in both kernel modes: they keep
//! windows-sys's `ntdll.dll` placements out of the driver's import table. On `aarch64`, `hal`
//! declares `KeGetCurrentIrql` against `hal.dll`, where the WDK places it on that architecture.

#[cfg(target_arch = "aarch64")]
pub(crate) mod hal;
pub(crate) mod ntoskrnl;

#[cfg(not(feature = "wdk"))]
pub(crate) mod runtime;

#[cfg(feature = "wdk")]
mod wdk_runtime;

/// The most bytes of one line [`dbg_print`] hands to the kernel, before its newline and NUL.
///
/// `DbgPrint` and `DbgPrintEx` send at most 512 bytes per call; 500 leaves room for the newline,
/// the terminating NUL and the kernel's own prefix handling.
pub(crate) const DBG_PRINT_MAX_LINE: usize = 500;

/// Writes one line to the kernel debugger (`DebugView`, `WinDbg`).
///
/// In both kernel modes the line is copied into a stack buffer, cut to at most
/// [`DBG_PRINT_MAX_LINE`] bytes on a `char` boundary, NUL-terminated, and printed with
/// `DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_INFO_LEVEL, "%s\n", buffer)`. The line is an
/// *argument* of the format, so a `%` in it is printed as it is.
///
/// Not `wdk::println!`: that is `DbgPrint`, whose messages belong to the `DEFAULT` component
/// (Windows Vista and later filter them like `DbgPrintEx`'s, "Reading and filtering debugging
/// messages"), while the samples' READMEs and scripts open the `IHVDRIVER` component, the one
/// `DbgPrintEx`'s page tells third-party drivers to use. What the docs tell a user to enable is
/// then what shows the lines, in either build mode.
///
/// Whether `DPFLTR_INFO_LEVEL` output is shown is decided by the `Debug Print Filter` registry
/// key (`IHVDRIVER` = 0xF shows it).
///
/// IRQL: any; at `DIRQL` and above `DbgPrintEx` only queues the text (see its documentation).
pub(crate) fn dbg_print(line: &str) {
    let mut buffer = [0u8; DBG_PRINT_MAX_LINE + 1];
    let text = nul_terminated(line, &mut buffer);
    // SAFETY: `text` is a NUL-terminated byte string that lives in `buffer` for the whole call,
    // and the format `%s\n` consumes exactly one `char*` argument, which is `text`.
    unsafe {
        ntoskrnl::DbgPrintEx(
            ntoskrnl::DPFLTR_IHVDRIVER_ID,
            ntoskrnl::DPFLTR_INFO_LEVEL,
            c"%s\n".as_ptr().cast(),
            text.cast::<core::ffi::c_char>(),
        );
    }
}

/// Copies the longest prefix of `line` that fits `buffer` (one byte kept for the NUL) and ends on
/// a `char` boundary, NUL-terminates it, and returns a pointer to its first byte.
///
/// Interior NULs are left alone: `%s` simply stops at the first one.
fn nul_terminated(line: &str, buffer: &mut [u8]) -> *const u8 {
    let room = buffer.len().saturating_sub(1);
    let mut len = line.len().min(room);
    while !line.is_char_boundary(len) {
        len -= 1;
    }
    buffer[..len].copy_from_slice(&line.as_bytes()[..len]);
    if let Some(nul) = buffer.get_mut(len) {
        *nul = 0;
    }
    buffer.as_ptr()
}

/// The current IRQL of this processor, as `KeGetCurrentIrql` returns it.
///
/// This does what a C driver built with the WDK does, which differs by architecture (`wdm.h`):
///
/// - `x86_64`: `wdm.h` defines `KeGetCurrentIrql` inline, as `(KIRQL)ReadCR8()` (CR8 is the
///   task-priority register, which the kernel keeps equal to the IRQL). This reads CR8 the same
///   way: no call, no import.
/// - `aarch64`: `wdm.h` declares it `NTHALAPI`, a function exported by `hal.dll`, so this calls
///   `hal.dll!KeGetCurrentIrql` (declared in `hal`; windows-sys places it in `ntoskrnl.exe`, which
///   does not export it on Arm64). The IRQL itself lives in the processor control region, whose
///   layout is no documented contract, so reading it directly is not an option.
///
/// IRQL: any.
#[must_use]
#[inline]
pub fn current_irql() -> u8 {
    #[cfg(target_arch = "x86_64")]
    {
        let cr8: u64;
        // SAFETY: reading CR8 is allowed at CPL 0, where a driver runs; it has no side effects,
        // touches no memory and leaves the flags alone.
        unsafe {
            core::arch::asm!("mov {}, cr8", out(reg) cr8, options(nomem, nostack, preserves_flags));
        }
        // The IRQL is CR8's low four bits; the rest are reserved and read as zero, so this is the
        // same value as the WDK's `(KIRQL)ReadCR8()`.
        (cr8 & 0xF) as u8
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: `KeGetCurrentIrql` takes no arguments, may be called at any IRQL, and only reads
        // the current processor's state.
        unsafe { hal::KeGetCurrentIrql() }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    compile_error!("the kernel drivers are built for x86_64 and aarch64 only")
}
