//! A section created for data scanning, released in the documented order.
//!
//! `FltCreateSectionForDataScan` gives the caller three things to release, and Filter Manager
//! keeps a fourth link until told otherwise:
//!
//! | step | call | undoes |
//! |---|---|---|
//! | 1 | `MmUnmapViewInSystemSpace` | each view the scan mapped ([`MappedView`]'s drop) |
//! | 2 | `ObCloseHandle(handle, KernelMode)` | the section handle (a kernel handle, `OBJ_KERNEL_HANDLE`) |
//! | 3 | `ObDereferenceObject(object)` | the referenced section object pointer |
//! | 4 | `FltCloseSectionForDataScan(context)` | the section context's link to the stream |
//! | 5 | `FltReleaseContext(context)` | the caller's allocation reference on the context |
//!
//! This is the order Microsoft's avscan sample uses. Steps 2 to 5 are [`DataScanSection`]'s drop;
//! all of them need IRQL `PASSIVE_LEVEL` (`ObCloseHandle`) or `<= APC_LEVEL`.
//! If `FltCreateSectionForDataScan` fails, only step 5 applies: release the context you allocated.

use core::ffi::c_void;

use windows_sys::{
    Wdk::{
        Storage::FileSystem::Minifilters::FltCloseSectionForDataScan,
        System::SystemServices::{
            MmMapViewInSystemSpace, MmUnmapViewInSystemSpace, ObCloseHandle, ObfDereferenceObject,
        },
    },
    Win32::Foundation::HANDLE,
};

use crate::{KERNEL_MODE, NtStatus, context::ContextRef};

/// An open data-scan section: its kernel handle, its object reference and its section context.
pub struct DataScanSection<T> {
    handle: HANDLE,
    object: *mut c_void,
    context: Option<ContextRef<T>>,
    file_size: i64,
}

// SAFETY: the handle is a kernel handle (valid in any process context) and the object pointer is
// a counted reference; both may be used and released from any thread. The context is `Sync` data.
unsafe impl<T: Sync> Send for DataScanSection<T> {}

impl<T> DataScanSection<T> {
    /// Takes ownership of what a successful `FltCreateSectionForDataScan` returned.
    ///
    /// # Safety
    /// `handle` and `object` must be the section handle (created with `OBJ_KERNEL_HANDLE`) and
    /// object that `FltCreateSectionForDataScan` returned for `context`, not released elsewhere.
    #[must_use]
    pub unsafe fn from_created(
        handle: HANDLE,
        object: *mut c_void,
        context: ContextRef<T>,
        file_size: i64,
    ) -> Self {
        Self {
            handle,
            object,
            context: Some(context),
            file_size,
        }
    }

    /// The section context (the caller's allocation reference).
    ///
    /// # Panics
    /// Never: the context is only taken while the section is being released.
    #[must_use]
    pub fn context(&self) -> &ContextRef<T> {
        self.context
            .as_ref()
            .expect("the context is only taken in drop")
    }

    /// The file size `FltCreateSectionForDataScan` reported.
    #[must_use]
    pub fn file_size(&self) -> i64 {
        self.file_size
    }

    /// Maps the whole section into system space (`MmMapViewInSystemSpace`, IRQL `PASSIVE_LEVEL`).
    ///
    /// # Errors
    /// The status `MmMapViewInSystemSpace` returned.
    pub fn map_view(&self) -> Result<MappedView<'_>, NtStatus> {
        let mut base: *mut c_void = core::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: `object` is a live section object reference we own; `base` and `size` are
        // valid out pointers; a zero size asks for the whole section.
        NtStatus(unsafe { MmMapViewInSystemSpace(self.object, &raw mut base, &raw mut size) })
            .ok()?;
        Ok(MappedView {
            base: base.cast(),
            len: size,
            _section: core::marker::PhantomData,
        })
    }

    /// Releases everything in the documented order and returns what
    /// `FltCloseSectionForDataScan` said (the other steps return nothing worth acting on).
    #[must_use = "the status says whether the section context was still linked"]
    pub fn close(mut self) -> NtStatus {
        self.release()
    }

    fn release(&mut self) -> NtStatus {
        let Some(context) = self.context.take() else {
            return NtStatus::SUCCESS;
        };
        // SAFETY: step 2. The handle is ours, a kernel handle, closed exactly once here.
        unsafe { ObCloseHandle(self.handle, KERNEL_MODE) };
        // SAFETY: step 3. The object reference is ours, dropped exactly once here.
        unsafe { ObfDereferenceObject(self.object) };
        // SAFETY: step 4. The context was used to create this section and not closed yet.
        let closed = NtStatus(unsafe { FltCloseSectionForDataScan(context.as_raw()) });
        // Step 5: the allocation reference goes when `context` drops here.
        drop(context);
        closed
    }
}

impl<T> Drop for DataScanSection<T> {
    fn drop(&mut self) {
        // The status only says whether the context was still linked; nothing to do either way.
        let _ = self.release();
    }
}

/// A view of a data-scan section in system space, unmapped on drop.
pub struct MappedView<'a> {
    base: *const u8,
    len: usize,
    _section: core::marker::PhantomData<&'a ()>,
}

impl MappedView<'_> {
    /// The mapped bytes. The view covers the file as it was when the section was created.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: MmMapViewInSystemSpace mapped `len` readable bytes at `base`, and they stay
        // mapped until this value drops. The borrow of the section keeps the section alive.
        unsafe { core::slice::from_raw_parts(self.base, self.len) }
    }
}

impl Drop for MappedView<'_> {
    fn drop(&mut self) {
        // SAFETY: step 1. `base` is the address MmMapViewInSystemSpace returned, unmapped once.
        unsafe { MmUnmapViewInSystemSpace(self.base.cast()) };
    }
}
