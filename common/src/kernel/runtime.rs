//! The minimal kernel runtime of the standalone build (Windows target, no `wdk` feature): what the
//! WDK's libraries and `wdk-panic` provide in WDK mode.
//!
//! The standalone driver links with `/NODEFAULTLIB` and no import library, so every symbol the
//! compiler or the prebuilt `core` leaves undefined must come from here:
//!
//! - the panic handler, which bugchecks ([`PANIC_BUGCHECK_CODE`]);
//! - `memcpy`, `memset`, `memmove`, `memcmp`: imported from `ntoskrnl.exe`, which exports the C
//!   runtime's memory routines on every architecture;
//! - `__chkstk`, the stack probe the compiler calls in every function whose frame exceeds 4 KiB:
//!   imported from `ntoskrnl.exe` on `x86_64` (the kernel exports it), defined here on `aarch64` (no
//!   public evidence that the ARM64 kernel exports it: the WDK links ARM64 drivers with the static
//!   `arm64rt.lib` for such helpers);
//! - `_fltused`, the marker the MSVC ABI expects in every image that uses floating point;
//! - `__CxxFrameHandler3`, the MSVC personality routine the prebuilt `core`'s unwind tables name.
//!
//! Fat LTO (release) removes most of these references and debug builds keep them all, so both
//! profiles are built and checked by `cargo xtask build`.

use core::{ffi::c_void, panic::PanicInfo};

use super::ntoskrnl::KeBugCheckEx;

/// The bug check code of a panic in a sample driver: `0x52534D46`, the bytes `RSMF` ("Rust sample
/// minifilter") read as a big-endian number, so it is recognisable in `!analyze -v` and distinct
/// from every Microsoft bug check code (those are small numbers, `0x1000xxxx` variants of them,
/// or well-known values such as `0xDEADDEAD`).
///
/// Parameters: 1 = source line, 2 = column, 3 = address of the source file name (not
/// NUL-terminated; `da` or `db` it in `WinDbg`), 4 = its length in bytes.
pub const PANIC_BUGCHECK_CODE: u32 = u32::from_be_bytes(*b"RSMF");

/// A panic in kernel mode cannot unwind (the workspace builds with `panic = "abort"`): stop the
/// machine with [`PANIC_BUGCHECK_CODE`] and the panic's location, as wdk-panic's contract is.
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let (line, column, file) = info.location().map_or((0, 0, ""), |location| {
        (location.line(), location.column(), location.file())
    });
    // SAFETY: `KeBugCheckEx` takes plain integers and never returns; the file name is a `'static`
    // string, so the address passed stays valid while the system is stopped.
    unsafe {
        KeBugCheckEx(
            PANIC_BUGCHECK_CODE,
            line as usize,
            column as usize,
            file.as_ptr() as usize,
            file.len(),
        )
    }
}

/// `_fltused`: the MSVC toolchain references this symbol from any object that uses floating
/// point, and the C runtime normally defines it. Its value is never read.
#[allow(non_upper_case_globals)]
#[unsafe(no_mangle)]
pub static _fltused: i32 = 0;

/// `__CxxFrameHandler3`, the MSVC C++/Rust personality routine, named by the unwind tables of the
/// prebuilt `core` (which is compiled with `panic = "unwind"`).
///
/// It never runs for a Rust panic: the driver is built with `panic = "abort"`, so no Rust unwind
/// starts. The kernel's SEH dispatcher could only reach it if a hardware exception were raised
/// inside one of those `core` frames and some caller further up had a `__try`. It then answers
/// `ExceptionContinueSearch` (1), exactly what a frame without a handler answers, and runs no
/// cleanup code.
#[unsafe(no_mangle)]
pub extern "C" fn __CxxFrameHandler3(
    _exception_record: *mut c_void,
    _establisher_frame: *mut c_void,
    _context_record: *mut c_void,
    _dispatcher_context: *mut c_void,
) -> i32 {
    /// `EXCEPTION_DISPOSITION::ExceptionContinueSearch`.
    const EXCEPTION_CONTINUE_SEARCH: i32 = 1;
    EXCEPTION_CONTINUE_SEARCH
}

// The C runtime's memory routines, imported from the kernel. The compiler emits calls to these by
// name (for copies, fills and comparisons it does not inline). These raw-dylib declarations make
// rustc generate an import library for them, whose `memcpy` etc. thunks satisfy those calls, so
// the driver's import table names `ntoskrnl.exe!memcpy`. They are declared only, never called
// from Rust code here.
#[allow(
    dead_code,
    reason = "declared for the linker: the compiler's own calls use these imports"
)]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// `memcpy(dest, src, count)`.
    pub fn memcpy(dest: *mut c_void, src: *const c_void, count: usize) -> *mut c_void;
    /// `memmove(dest, src, count)`.
    pub fn memmove(dest: *mut c_void, src: *const c_void, count: usize) -> *mut c_void;
    /// `memset(dest, value, count)`.
    pub fn memset(dest: *mut c_void, value: i32, count: usize) -> *mut c_void;
    /// `memcmp(left, right, count)`.
    pub fn memcmp(left: *const c_void, right: *const c_void, count: usize) -> i32;
}

// x86_64: the kernel's own `__chkstk` (RAX = frame size; probes each page below RSP; preserves
// every register but R10, R11 and the flags). The import thunk is a single indirect `jmp`, which
// changes no register, so the convention survives it.
#[cfg(target_arch = "x86_64")]
#[allow(
    dead_code,
    reason = "declared for the linker: compiler-generated prologues call it"
)]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// `__chkstk`: the stack probe. Called only by compiler-generated prologues, with its own
    /// register convention; never call it from Rust.
    pub fn __chkstk();
}

// aarch64: `__chkstk` defined here. Convention (Microsoft ARM64 ABI, as LLVM emits it): X15 holds
// the frame size in 16-byte units; the routine touches one word in each 4 KiB page from SP down
// to SP - X15 * 16 so that a stack overflow hits the guard page in order, clobbers only X16, X17
// and the flags, and leaves SP alone (the caller subtracts afterwards).
#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".globl __chkstk",
    ".p2align 2",
    "__chkstk:",
    "    lsl  x16, x15, #4",
    "    mov  x17, sp",
    "1:",
    "    sub  x17, x17, #4096",
    "    subs x16, x16, #4096",
    "    ldr  xzr, [x17]",
    "    b.gt 1b",
    "    ret",
);
