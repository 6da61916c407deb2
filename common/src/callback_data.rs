//! Callback data that a filter allocated itself, freed on every path.
//!
//! `FltAllocateCallbackData` / `FltAllocateCallbackDataEx` hand the caller a `FLT_CALLBACK_DATA`
//! from non-paged pool. The caller fills its `Iopb`, issues it with `FltPerformSynchronousIo` (or
//! `FltPerformAsynchronousIo`), may reset it with `FltReuseCallbackData`, and must free it with
//! `FltFreeCallbackData` (IRQL `<= DISPATCH_LEVEL`). [`OwnedCallbackData`] does that last step in
//! `Drop`.

use core::ptr::NonNull;

use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_IO_PARAMETER_BLOCK, FltFreeCallbackData,
};

use crate::NtStatus;

/// The I/O parameter block of callback data that Filter Manager passed to a callback. Read its
/// `Parameters` through [`params`](crate::params): windows-sys's members of that union have the
/// wrong layout on 64-bit Windows.
///
/// # Safety
/// `data` must be valid callback data for all of `'a`, as it is for the duration of the pre- or
/// post-operation callback it was passed to.
#[must_use]
pub unsafe fn parameters<'a>(data: *const FLT_CALLBACK_DATA) -> &'a FLT_IO_PARAMETER_BLOCK {
    // SAFETY: the caller guarantees `data` is valid.
    let iopb = unsafe { (*data).Iopb };
    // SAFETY: valid callback data always points at its parameter block, which lives as long.
    unsafe { &*iopb }
}

/// Callback data allocated by this filter, freed with `FltFreeCallbackData` on drop.
pub struct OwnedCallbackData(NonNull<FLT_CALLBACK_DATA>);

impl OwnedCallbackData {
    /// Adopts callback data returned by `FltAllocateCallbackData(Ex)`.
    ///
    /// # Safety
    /// `data` must be non-null, come from `FltAllocateCallbackData(Ex)`, and not be freed by
    /// anyone else.
    #[must_use]
    pub unsafe fn from_raw(data: *mut FLT_CALLBACK_DATA) -> Self {
        // SAFETY: the caller guarantees `data` is non-null.
        Self(unsafe { NonNull::new_unchecked(data) })
    }

    /// Gives up ownership without freeing: for `FltPerformAsynchronousIo`, whose completion
    /// routine then owns the callback data and takes it back with [`from_raw`](Self::from_raw).
    #[must_use]
    pub fn into_raw(self) -> *mut FLT_CALLBACK_DATA {
        let data = self.as_ptr();
        core::mem::forget(self);
        data
    }

    /// The pointer to pass to `FltPerformSynchronousIo` and friends.
    #[must_use]
    pub fn as_ptr(&self) -> *mut FLT_CALLBACK_DATA {
        self.0.as_ptr()
    }

    /// The I/O parameter block, for filling in the request (its `Parameters` through
    /// [`params`](crate::params), which has the C layout).
    ///
    /// windows-sys types `Iopb` as `*const`, but the header declares it
    /// `PFLT_IO_PARAMETER_BLOCK CONST` (a constant pointer to a writable block): the issuer of
    /// the I/O owns the block and fills it in before issuing.
    pub fn iopb_mut(&mut self) -> &mut FLT_IO_PARAMETER_BLOCK {
        // SAFETY: the callback data is ours and valid while we own it.
        let iopb = unsafe { (*self.0.as_ptr()).Iopb }.cast_mut();
        // SAFETY: the callback data is idle (no I/O in flight while we hold `&mut self`) and
        // Filter Manager allocated the block alongside it, so it is valid and unaliased.
        unsafe { &mut *iopb }
    }

    /// `IoStatus.Status` and `IoStatus.Information` after the I/O completed.
    #[must_use]
    pub fn io_status(&self) -> (NtStatus, usize) {
        // SAFETY: the data is valid while we own it; reading the status block is always allowed.
        let io = unsafe { (*self.0.as_ptr()).IoStatus };
        // SAFETY: `Status` is the member Filter Manager writes on completion.
        (NtStatus(unsafe { io.Anonymous.Status }), io.Information)
    }
}

impl Drop for OwnedCallbackData {
    fn drop(&mut self) {
        // SAFETY: we own the callback data and no I/O on it is in flight (it was synchronous, or
        // the async completion has run); this is its one free.
        unsafe { FltFreeCallbackData(self.0.as_ptr()) }
    }
}

/// The operation behind callback data, described for a log line: "a set-end-of-file to 1048576
/// bytes", "a non-cached write of 4096 bytes at 0", "a flush-and-purge", "an overwriting open".
/// section-conflict names the I/O its `SectionNotificationCallback` was called for with it.
///
/// Printing it reads the parameters of the operation's major function through
/// [`params`](crate::params) (the C layout), and an end-of-file only from a buffer at least
/// `FILE_END_OF_FILE_INFORMATION`'s size. A create is described as an overwriting open: the one
/// create a section conflicts with.
pub struct Described(*const FLT_CALLBACK_DATA);

impl Described {
    /// A description of `data`.
    ///
    /// # Safety
    /// `data` is valid callback data for as long as the value is printed (a callback's own).
    #[must_use]
    pub unsafe fn new(data: *const FLT_CALLBACK_DATA) -> Self {
        Self(data)
    }
}

impl core::fmt::Display for Described {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use windows_sys::Wdk::{
            Storage::FileSystem::FileEndOfFileInformation,
            System::SystemServices::{
                FILE_END_OF_FILE_INFORMATION, IRP_MJ_CREATE, IRP_MJ_FLUSH_BUFFERS,
                IRP_MJ_SET_INFORMATION, IRP_MJ_WRITE, IRP_MN_FLUSH_AND_PURGE, IRP_NOCACHE,
            },
        };
        // SAFETY: valid callback data while printed (`new`'s contract).
        let iopb = unsafe { parameters(self.0) };
        match u32::from(iopb.MajorFunction) {
            IRP_MJ_SET_INFORMATION => {
                // SAFETY: for IRP_MJ_SET_INFORMATION the `SetFileInformation` member is live.
                let set = unsafe { crate::params::SetFileInformation::of(&iopb.Parameters) };
                let fits = set.Length as usize >= size_of::<FILE_END_OF_FILE_INFORMATION>();
                if set.FileInformationClass == FileEndOfFileInformation
                    && fits
                    && !set.InfoBuffer.is_null()
                {
                    // SAFETY: a (system) buffer of at least that size, checked above.
                    let eof = unsafe {
                        set.InfoBuffer
                            .cast::<FILE_END_OF_FILE_INFORMATION>()
                            .read_unaligned()
                    };
                    write!(f, "a set-end-of-file to {} bytes", eof.EndOfFile)
                } else {
                    f.write_str("a set-information")
                }
            }
            IRP_MJ_WRITE => {
                // SAFETY: for IRP_MJ_WRITE the `Write` member is live.
                let write = unsafe { crate::params::Write::of(&iopb.Parameters) };
                let kind = if iopb.IrpFlags & IRP_NOCACHE != 0 {
                    "non-cached "
                } else {
                    ""
                };
                let (length, offset) = (write.Length, write.ByteOffset);
                write!(f, "a {kind}write of {length} bytes at {offset}")
            }
            IRP_MJ_FLUSH_BUFFERS if u32::from(iopb.MinorFunction) == IRP_MN_FLUSH_AND_PURGE => {
                f.write_str("a flush-and-purge")
            }
            IRP_MJ_FLUSH_BUFFERS => f.write_str("a flush"),
            IRP_MJ_CREATE => f.write_str("an overwriting open"),
            major => write!(f, "an I/O (major function {major:#04x})"),
        }
    }
}
