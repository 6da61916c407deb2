//! Normal kernel APCs, and the file system's critical region.
//!
//! `FsRtlEnterFileSystem` is a macro for `KeEnterCriticalRegion`: it disables normal kernel APCs
//! on the current thread (special kernel APCs, which I/O completion needs, still run). A file
//! system or filter enters it before it waits or takes a resource in the I/O path, so that the
//! thread cannot be suspended while it holds something other threads need. Every enter has its
//! leave (`FsRtlLeaveFileSystem`, `KeLeaveCriticalRegion`) on the same thread, before the
//! callback returns: [`FileSystemRegion`] is that pair as a guard.

use core::marker::PhantomData;

use windows_sys::Wdk::System::SystemServices::{KeEnterCriticalRegion, KeLeaveCriticalRegion};

/// The current thread inside `FsRtlEnterFileSystem` until dropped (`FsRtlLeaveFileSystem`).
///
/// Not `Send`: the leave must happen on the thread that entered.
#[must_use = "dropping the region leaves it at once"]
pub struct FileSystemRegion(PhantomData<*const ()>);

impl FileSystemRegion {
    /// `FsRtlEnterFileSystem()`, that is `KeEnterCriticalRegion()`, IRQL `<= APC_LEVEL`.
    pub fn enter() -> Self {
        // SAFETY: no preconditions beyond the IRQL, which the callers' callbacks satisfy; the
        // guard's drop makes the matching leave on this thread.
        unsafe { KeEnterCriticalRegion() };
        Self(PhantomData)
    }
}

impl Drop for FileSystemRegion {
    fn drop(&mut self) {
        // SAFETY: this thread entered the region in `enter` (the guard is not `Send`).
        unsafe { KeLeaveCriticalRegion() };
    }
}
