//! Host pages with no access, which stand for the memory of a mapped view: any host code that
//! dereferences one crashes at that line (see `abi::views`). Reserved per view and kept until the
//! world drops, so an address is never handed out twice.
//!
//! On Linux the crash is not silent: a `SIGSEGV`/`SIGBUS` handler, installed with the first view,
//! prints [`DIRECT_READ`] when the faulting address lies in a view, then lets the signal kill the
//! process as before (the handler that was installed before it, Rust's stack-overflow handler,
//! takes any other fault).

use std::ffi::c_void;

/// Host address ranges reserved with no access, released when the world drops.
#[derive(Default)]
pub(crate) struct NoAccess {
    regions: Vec<(usize, usize)>,
}

impl NoAccess {
    /// Reserves `len` bytes (at least one page) that no host code can read or write.
    pub(crate) fn reserve(&mut self, len: usize) -> usize {
        let len = len.max(1);
        let base = reserve_no_access(len);
        self.regions.push((base, len));
        #[cfg(target_os = "linux")]
        fault::watch(base, len);
        base
    }
}

impl Drop for NoAccess {
    fn drop(&mut self) {
        for (base, len) in self.regions.drain(..) {
            #[cfg(target_os = "linux")]
            fault::unwatch(base);
            release_no_access(base, len);
        }
    }
}

/// What the process prints (on Linux, to standard error, before it dies of the fault) when filter
/// code reads or writes a mapped view directly instead of through `MmCopyMemory`; the faulting
/// address follows it.
pub const DIRECT_READ: &str = "fltsim: a direct access to a mapped view: on Windows a view is the \
    file's cache, and touching a page whose paging read fails raises STATUS_IN_PAGE_ERROR, a \
    bugcheck in a driver without __try/__except; read views with MmCopyMemory";

/// The fault handler that names a direct access to a view (Linux).
#[cfg(target_os = "linux")]
mod fault {
    use std::{
        ffi::{c_int, c_void},
        sync::{
            Once, OnceLock,
            atomic::{AtomicUsize, Ordering},
        },
    };

    /// How many views the handler can name at once; a view beyond them still crashes, unnamed.
    const SLOTS: usize = 4096;

    /// `(base, len)` of every reserved view, `base` 0 for a free slot. Atomics, so that the
    /// signal handler reads them without a lock.
    static WATCHED: [(AtomicUsize, AtomicUsize); SLOTS] =
        [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; SLOTS];
    static INSTALL: Once = Once::new();
    /// The dispositions of `SIGSEGV` and `SIGBUS` before ours.
    static PREVIOUS: OnceLock<[libc::sigaction; 2]> = OnceLock::new();

    pub(super) fn watch(base: usize, len: usize) {
        INSTALL.call_once(install);
        for (slot_base, slot_len) in &WATCHED {
            if slot_base
                .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                slot_len.store(len, Ordering::Release);
                slot_base.store(base, Ordering::Release);
                return;
            }
        }
    }

    pub(super) fn unwatch(base: usize) {
        for (slot_base, _) in &WATCHED {
            if slot_base
                .compare_exchange(base, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }

    fn install() {
        let mut previous = [empty(), empty()];
        for (signal, old) in [libc::SIGSEGV, libc::SIGBUS].into_iter().zip(&mut previous) {
            let mut action = empty();
            action.sa_sigaction = on_fault as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: installs a handler for a fault signal, with valid pointers to a new and an
            // old `sigaction`; the handler only reads atomics, writes to fd 2 and calls
            // `sigaction`, all async-signal-safe.
            unsafe { libc::sigaction(signal, &raw const action, old) };
        }
        let _ = PREVIOUS.set(previous);
    }

    fn empty() -> libc::sigaction {
        // SAFETY: `sigaction` is plain data; all zeroes is `SIG_DFL` with an empty mask.
        unsafe { std::mem::zeroed() }
    }

    extern "C" fn on_fault(signal: c_int, info: *mut libc::siginfo_t, _: *mut c_void) {
        // SAFETY: the kernel passes a valid `siginfo_t` for a fault signal with SA_SIGINFO.
        let info = unsafe { &*info };
        // SAFETY: for SIGSEGV and SIGBUS, `si_addr` is the member the kernel filled in.
        let address = unsafe { info.si_addr() } as usize;
        let in_view = WATCHED.iter().any(|(base, len)| {
            let base = base.load(Ordering::Acquire);
            base != 0
                && base != usize::MAX
                && (base..base.saturating_add(len.load(Ordering::Acquire))).contains(&address)
        });
        if in_view {
            let mut line = [0u8; 24];
            let hex = hex_address(address, &mut line);
            for part in [super::DIRECT_READ.as_bytes(), b" (address ", hex, b")\n"] {
                // SAFETY: writes a valid buffer to standard error; `write` is async-signal-safe.
                unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
            }
        }
        // Back to the disposition before ours; the faulting access runs again and it handles it
        // (for a view: the default action, the process dies of the signal).
        let index = usize::from(signal != libc::SIGSEGV);
        let restore = PREVIOUS
            .get()
            .map_or_else(empty, |previous| previous[index]);
        // SAFETY: restores a disposition `sigaction` returned, with a valid pointer.
        unsafe { libc::sigaction(signal, &raw const restore, std::ptr::null_mut()) };
    }

    /// `0x` and the hexadecimal digits of `address`, in `buffer`.
    fn hex_address(address: usize, buffer: &mut [u8; 24]) -> &[u8] {
        let digits = b"0123456789abcdef";
        let mut at = buffer.len();
        let mut rest = address;
        loop {
            at -= 1;
            buffer[at] = digits[rest & 0xF];
            rest >>= 4;
            if rest == 0 {
                break;
            }
        }
        at -= 2;
        buffer[at..at + 2].copy_from_slice(b"0x");
        &buffer[at..]
    }
}

#[cfg(unix)]
fn reserve_no_access(len: usize) -> usize {
    // SAFETY: an anonymous, private, no-access mapping at an address the host chooses; nothing
    // is overwritten, and nothing can read or write it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert!(
        base != libc::MAP_FAILED,
        "fltsim: mmap(PROT_NONE) of {len} bytes for a view failed"
    );
    base as usize
}

#[cfg(unix)]
fn release_no_access(base: usize, len: usize) {
    // SAFETY: a mapping `reserve_no_access` created with this length, released once.
    unsafe { libc::munmap(base as *mut c_void, len) };
}

#[cfg(windows)]
fn reserve_no_access(len: usize) -> usize {
    use windows_sys::Win32::System::Memory::{MEM_RESERVE, PAGE_NOACCESS, VirtualAlloc};
    // SAFETY: reserves address space at an address the host chooses; nothing is committed.
    let base = unsafe { VirtualAlloc(std::ptr::null(), len, MEM_RESERVE, PAGE_NOACCESS) };
    assert!(
        !base.is_null(),
        "fltsim: VirtualAlloc(PAGE_NOACCESS) of {len} bytes for a view failed"
    );
    base as usize
}

#[cfg(windows)]
fn release_no_access(base: usize, _len: usize) {
    use windows_sys::Win32::System::Memory::{MEM_RELEASE, VirtualFree};
    // SAFETY: a reservation `reserve_no_access` made, released once, whole (size 0).
    unsafe { VirtualFree(base as *mut c_void, 0, MEM_RELEASE) };
}
