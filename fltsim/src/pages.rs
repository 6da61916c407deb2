//! Host pages with no access, which stand for the memory of a mapped view: any host code that
//! dereferences one crashes at that line (see `abi::views`). Reserved per view and kept until the
//! world drops, so an address is never handed out twice.

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
        base
    }
}

impl Drop for NoAccess {
    fn drop(&mut self) {
        for (base, len) in self.regions.drain(..) {
            release_no_access(base, len);
        }
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
