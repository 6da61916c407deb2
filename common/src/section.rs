//! Sections created for data scanning: the close, views, and a window reader.
//!
//! data-scan owns this lesson: its own code makes `FltCreateSectionForDataScan`, maps, copies and
//! unmaps its views, and makes the close in its documented order, each call raw at its call site.
//! `docs/sections.md` explains that order once. Samples that do not teach these calls reach them
//! through this module: [`DataScanSection`] makes the same close, [`map_view_of`] and
//! [`WindowReader`] read views the way data-scan does.
//!
//! ## Reading a view: never directly
//! A view of a file section is the file's cache, live: other handles' writes show through while
//! it is read, and touching a page whose paging read fails (a disk error, a removed device, a
//! dropped network connection) raises `STATUS_IN_PAGE_ERROR` in the touching thread (on a view
//! mapped with `MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS`, as [`map_view_of`] maps every
//! view; no page says what happens on one mapped without it). A C driver
//! wraps the access in `__try/__except`; Rust has no SEH, so the same fault bugchecks the machine.
//! A `&[u8]` over a view would also break Rust's aliasing rules (the bytes change under it).
//! So this module hands out no slice of a view. [`MappedView`] is an address range, read only by
//! [`WindowReader`] through `MmCopyMemory` (Windows 8.1, `<= APC_LEVEL`), which "will not cause a
//! system crash": it makes the pages resident, and on a failed paging read returns an error
//! status and the count it copied. The target is a bounded buffer of non-paged pool
//! ([`PoolBytes`]), as `MmCopyMemory` requires.
//!
//! Views are bounded: [`DataScanSection::map_view`] maps `len` bytes at a section offset with
//! `MmMapViewInSystemSpaceEx` (`<= APC_LEVEL`; exported by ntoskrnl since Windows 8, below the
//! Windows 10 2004 the samples need for `ExAllocatePool2`). A view is page-granular, so its size
//! can exceed the file's: what is read is bounded by the file size `FltCreateSectionForDataScan`
//! reported, never by the view's size.

use core::{
    ffi::c_void,
    ops::DerefMut,
    sync::atomic::{AtomicI64, AtomicIsize, AtomicUsize, Ordering},
};

use windows_sys::{
    Wdk::{
        Storage::FileSystem::Minifilters::{
            FLT_RELATED_OBJECTS, FltCloseSectionForDataScan, FltCreateSectionForDataScan,
            FltRegisterForDataScan, PFLT_INSTANCE,
        },
        System::SystemServices::{
            MM_COPY_ADDRESS, MM_COPY_ADDRESS_0, MM_COPY_MEMORY_VIRTUAL,
            MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS, MmCopyMemory, MmMapViewInSystemSpaceEx,
            MmUnmapViewInSystemSpace, ObCloseHandle, ObfDereferenceObject,
        },
    },
    Win32::{
        Foundation::{HANDLE, STATUS_INVALID_PARAMETER},
        System::Memory::{PAGE_READONLY, SEC_COMMIT, SECTION_MAP_READ, SECTION_QUERY},
    },
};

use crate::{KERNEL_MODE, NtStatus, context::ContextRef, pool::PoolBytes};

/// An open data-scan section: its kernel handle, its object reference and its section context,
/// closed on drop (or [`close`](Self::close)) in the documented order: `ObCloseHandle`,
/// `ObDereferenceObject`, `FltCloseSectionForDataScan`, `FltReleaseContext`, after every
/// [`MappedView`] of it is gone. data-scan makes these calls itself and `docs/sections.md`
/// explains the order; a failed create linked nothing, so it needs only the context's release.
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

    /// Maps `len` bytes of the section from `offset` into system space
    /// (`MmMapViewInSystemSpaceEx`, `<= APC_LEVEL`). See [`map_view_of`].
    ///
    /// # Errors
    /// The status `MmMapViewInSystemSpaceEx` returned.
    pub fn map_view(&self, offset: u64, len: usize) -> Result<MappedView<'_>, NtStatus> {
        // SAFETY: `object` is a live section object reference that `self` owns until it drops,
        // and the view borrows `self`.
        unsafe { map_view_of(self.object, offset, len) }
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
        // SAFETY: the handle is ours, a kernel handle, closed exactly once here.
        unsafe { ObCloseHandle(self.handle, KERNEL_MODE) };
        // SAFETY: the object reference is ours, dropped exactly once here.
        unsafe { ObfDereferenceObject(self.object) };
        // SAFETY: the context was used to create this section and not closed yet.
        let closed = NtStatus(unsafe { FltCloseSectionForDataScan(context.as_raw()) });
        // The allocation reference goes when `context` drops here.
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

/// Maps `len` bytes of a section from `offset` into system space with
/// `MmMapViewInSystemSpaceEx(Section, &Base, &Size, &Offset,
/// MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS)` (`<= APC_LEVEL`): with the flag, a failed paging
/// read on the view is an exception, which `MmCopyMemory` returns as a status; no page says what
/// it does without the flag. No page
/// says this call grows a view whose offset it rounds down (`ZwMapViewOfSection` rounds its
/// offset down to the allocation granularity), so the view starts at `offset` rounded down to
/// [`ALLOCATION_GRANULARITY`] and is longer by the difference; the size may grow to whole pages.
/// The view remembers where it really starts.
///
/// # Safety
/// `object` must be a referenced section object that stays referenced until the view drops
/// (the returned lifetime is the caller's promise).
///
/// # Errors
/// The status `MmMapViewInSystemSpaceEx` returned; `STATUS_INVALID_PARAMETER` for an offset
/// beyond `i64::MAX`.
pub unsafe fn map_view_of<'a>(
    object: *mut c_void,
    offset: u64,
    len: usize,
) -> Result<MappedView<'a>, NtStatus> {
    let aligned = offset - offset % ALLOCATION_GRANULARITY;
    let mut start = i64::try_from(aligned).map_err(|_| NtStatus(STATUS_INVALID_PARAMETER))?;
    let mut base: *mut c_void = core::ptr::null_mut();
    // The difference is below the granularity, so it fits a usize.
    let mut size = len
        .checked_add(usize::try_from(offset - aligned).unwrap_or(usize::MAX))
        .ok_or(NtStatus(STATUS_INVALID_PARAMETER))?;
    let flags = MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS as usize;
    // SAFETY: a referenced section object (the caller's contract); valid in/out pointers; the one
    // flag the WDK defines for the call.
    NtStatus(unsafe {
        MmMapViewInSystemSpaceEx(object, &raw mut base, &raw mut size, &raw mut start, flags)
    })
    .ok()?;
    Ok(MappedView {
        base: base.cast_const().cast(),
        len: size,
        offset: start.cast_unsigned(),
        _section: core::marker::PhantomData,
    })
}

/// The allocation granularity (64 KiB on every Windows architecture) a view's section offset
/// must be a multiple of.
pub const ALLOCATION_GRANULARITY: u64 = 64 * 1024;

/// Where a view of the bytes at section offset `offset` starts: `offset` rounded down to
/// [`ALLOCATION_GRANULARITY`] (the `SectionOffset` to map from), and how far into the view
/// `offset` lies. data-scan maps each window from there.
#[must_use]
pub fn view_start(offset: u64) -> (i64, usize) {
    let skip = offset % ALLOCATION_GRANULARITY;
    // A section offset fits an i64 (section sizes are `LARGE_INTEGER`s); the skip is below the
    // granularity, so it fits a usize.
    (
        i64::try_from(offset - skip).unwrap_or(i64::MAX),
        usize::try_from(skip).unwrap_or_default(),
    )
}

/// The source of an `MmCopyMemory(MM_COPY_MEMORY_VIRTUAL)` copy: `MM_COPY_ADDRESS {
/// VirtualAddress }`. An address, never dereferenced here.
#[must_use]
pub fn virtual_address(address: *const c_void) -> MM_COPY_ADDRESS {
    MM_COPY_ADDRESS {
        Anonymous: MM_COPY_ADDRESS_0 {
            VirtualAddress: address.cast_mut(),
        },
    }
}

/// A view of a section in system space, unmapped on drop (`MmUnmapViewInSystemSpace`). It is an
/// address range, never a slice: read it with a [`WindowReader`].
pub struct MappedView<'a> {
    base: *const u8,
    len: usize,
    offset: u64,
    _section: core::marker::PhantomData<&'a ()>,
}

impl MappedView<'_> {
    /// The section offset the view starts at.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The view's size in bytes (whole pages: it may reach past the end of the file).
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view maps nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the view's bytes at section offset `from` into `target` with
    /// `MmCopyMemory(MM_COPY_MEMORY_VIRTUAL)`. `target` lies in non-paged pool (a [`PoolBytes`]).
    fn copy(&self, from: u64, target: &mut [u8]) -> Result<(), ReadError> {
        let inside = from
            .checked_sub(self.offset)
            .and_then(|at| usize::try_from(at).ok())
            .filter(|at| at.saturating_add(target.len()) <= self.len);
        let Some(at) = inside else {
            return Err(ReadError::Copy {
                status: NtStatus(STATUS_INVALID_PARAMETER),
                offset: from,
            });
        };
        let source = MM_COPY_ADDRESS {
            Anonymous: MM_COPY_ADDRESS_0 {
                // An address, never dereferenced here: MmCopyMemory reads it.
                VirtualAddress: self.base.wrapping_add(at).cast_mut().cast(),
            },
        };
        let mut copied: usize = 0;
        // SAFETY: the source lies inside this mapped view (checked above), the target is a
        // writable non-paged buffer of `target.len()` bytes, the flag says "virtual", and the
        // count is a valid out pointer. `<= APC_LEVEL` (the caller's, as for the map).
        let status = NtStatus(unsafe {
            MmCopyMemory(
                target.as_mut_ptr().cast_const().cast(),
                source,
                target.len(),
                MM_COPY_MEMORY_VIRTUAL,
                &raw mut copied,
            )
        });
        if status.is_success() {
            Ok(())
        } else {
            Err(ReadError::Copy {
                status,
                offset: from + copied as u64,
            })
        }
    }
}

impl Drop for MappedView<'_> {
    fn drop(&mut self) {
        // SAFETY: `base` is the address MmMapViewInSystemSpaceEx returned, unmapped once.
        unsafe { MmUnmapViewInSystemSpace(self.base.cast()) };
    }
}

/// Why a [`WindowReader`] stopped before the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Mapping the window's view failed with this status.
    Map(NtStatus),
    /// `MmCopyMemory` failed with `status`; the bytes before section offset `offset` were
    /// copied.
    Copy {
        /// What `MmCopyMemory` returned.
        status: NtStatus,
        /// The section offset of the first byte not copied.
        offset: u64,
    },
}

impl core::fmt::Display for ReadError {
    /// The call that failed and its status, as a log line says it: `MmMapViewInSystemSpaceEx
    /// returned ...`, or `MmCopyMemory returned ... at offset ...`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Map(status) => write!(f, "MmMapViewInSystemSpaceEx returned {status}"),
            Self::Copy { status, offset } => {
                write!(f, "MmCopyMemory returned {status} at offset {offset}")
            }
        }
    }
}

/// Reads the first `size` bytes of a section in windows, each copied into one bounded buffer:
/// window `k` holds the bytes `[k * window, k * window + window + overlap)` (cut at `size`), so
/// consecutive windows share `overlap` bytes. A pattern of up to `overlap + 1` bytes lies whole
/// inside some window, and windows come in order, so the first match found is the leftmost.
///
/// The shared bytes are kept from the previous window (moved to the front of the buffer), not
/// read again: each byte of the file is copied once. The buffer is `window + overlap` bytes,
/// allocated once per reader.
pub struct WindowReader<B> {
    buffer: B,
    window: usize,
    overlap: usize,
    size: u64,
    /// The section offset of the next window.
    next: u64,
    /// How many bytes the next window shares with the last one, at the end of the last one.
    kept: usize,
    /// The length of the last window.
    last_len: usize,
    done: bool,
}

/// A buffer in non-paged memory: a valid `MmCopyMemory` target.
///
/// # Safety
/// The bytes the buffer derefs to must be non-paged memory.
pub unsafe trait NonPagedBuffer: DerefMut<Target = [u8]> {}

// SAFETY: ExAllocatePool2(POOL_FLAG_NON_PAGED) memory.
unsafe impl NonPagedBuffer for PoolBytes {}

impl WindowReader<PoolBytes> {
    /// A reader of `size` bytes (the file size `FltCreateSectionForDataScan` reported) in windows
    /// of `window` bytes plus `overlap`, its buffer in non-paged pool with `tag`.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` when the buffer cannot be allocated;
    /// `STATUS_INVALID_PARAMETER` for an empty window.
    pub fn allocate(window: usize, overlap: usize, size: u64, tag: u32) -> Result<Self, NtStatus> {
        let len = window
            .checked_add(overlap)
            .filter(|_| window > 0)
            .ok_or(NtStatus(STATUS_INVALID_PARAMETER))?;
        Ok(Self::with_buffer(
            PoolBytes::zeroed(len, tag)?,
            window,
            overlap,
            size,
        ))
    }
}

impl<B: NonPagedBuffer> WindowReader<B> {
    /// The next window, read through its own view: `map(offset, len)` maps the window's bytes
    /// (`map_view` or `map_view_of`), `MmCopyMemory` copies the bytes the window does not share
    /// with the last one into the buffer, and the view is unmapped before this returns. `None`
    /// after the last window.
    ///
    /// # Errors
    /// [`ReadError::Map`] from `map`, [`ReadError::Copy`] from `MmCopyMemory`. The reader is
    /// then done: a window is either read whole or not at all.
    pub fn next_from_views<'v>(
        &mut self,
        map: impl FnOnce(u64, usize) -> Result<MappedView<'v>, NtStatus>,
    ) -> Result<Option<(u64, &[u8])>, ReadError> {
        self.next_window(|offset, target| {
            let view = map(offset, target.len()).map_err(ReadError::Map)?;
            view.copy(offset, target)
        })
    }
}

impl<B: DerefMut<Target = [u8]>> WindowReader<B> {
    /// A reader over a buffer of at least `window + overlap` bytes (the host tests and the bench
    /// use a `Vec<u8>`; a driver uses [`allocate`](WindowReader::allocate)).
    ///
    /// # Panics
    /// If the buffer is smaller than `window + overlap`, or `window` is zero.
    pub fn with_buffer(buffer: B, window: usize, overlap: usize, size: u64) -> Self {
        assert!(
            window > 0 && buffer.len() >= window.saturating_add(overlap),
            "a window reader needs a buffer of window + overlap bytes"
        );
        Self {
            buffer,
            window,
            overlap,
            size,
            next: 0,
            kept: 0,
            last_len: 0,
            done: false,
        }
    }

    /// Reads window after window with `fill` (as [`next_window`](Self::next_window)) and searches
    /// each with `find` (the offset of a match within a window), in order, so the first match is
    /// the leftmost one. Returns the section offset of that match, or `None` after the last
    /// window, and how many windows were read. This is data-scan's search; the bench and the
    /// tests run it over host buffers.
    ///
    /// # Errors
    /// Whatever `fill` returned.
    pub fn search(
        &mut self,
        mut fill: impl FnMut(u64, &mut [u8]) -> Result<(), ReadError>,
        mut find: impl FnMut(&[u8]) -> Option<usize>,
    ) -> Result<(Option<u64>, usize), ReadError> {
        let mut windows = 0;
        while let Some((start, window)) = self.next_window(&mut fill)? {
            windows += 1;
            if let Some(at) = find(window) {
                return Ok((Some(start + at as u64), windows));
            }
        }
        Ok((None, windows))
    }

    /// Starts over: the next window is the first of `size` bytes (a reader allocated before the
    /// size was known, or reused for another section).
    pub fn restart(&mut self, size: u64) {
        self.size = size;
        self.next = 0;
        self.kept = 0;
        self.last_len = 0;
        self.done = false;
    }

    /// The next window: `fill(offset, target)` fills `target` with the section's bytes from
    /// `offset` (the bytes this window does not share with the last one). Returns the window's
    /// section offset and its bytes, or `None` after the last window.
    ///
    /// # Errors
    /// Whatever `fill` returned; the reader is then done.
    pub fn next_window(
        &mut self,
        fill: impl FnOnce(u64, &mut [u8]) -> Result<(), ReadError>,
    ) -> Result<Option<(u64, &[u8])>, ReadError> {
        if self.done {
            return Ok(None);
        }
        // The bytes the last window shares with this one move to the front of the buffer.
        self.buffer
            .copy_within(self.last_len - self.kept..self.last_len, 0);
        let start = self.next;
        let end = self
            .size
            .min(start.saturating_add((self.window + self.overlap) as u64));
        let len = usize::try_from(end.saturating_sub(start)).unwrap_or(usize::MAX);
        if len > self.kept
            && let Err(error) = fill(start + self.kept as u64, &mut self.buffer[self.kept..len])
        {
            self.done = true;
            return Err(error);
        }
        if end >= self.size {
            self.done = true;
        } else {
            // Not the last window, so it is `window + overlap` bytes long: the next one starts
            // `window` bytes on and shares this one's last `overlap`.
            self.next = start + self.window as u64;
            self.kept = len - self.window;
            self.last_len = len;
        }
        Ok(Some((start, &self.buffer[..len])))
    }
}

/// `FltRegisterForDataScan(Instance)` (`<= APC_LEVEL`; call it in `InstanceSetup`): a volume's
/// instance may create sections for data scan only after it. `STATUS_NOT_SUPPORTED` means the
/// file system cannot (a network share). data-scan makes this call itself and explains it.
///
/// # Safety
/// `instance` is the instance being set up (the callback's own).
#[must_use]
pub unsafe fn register_for_data_scan(instance: PFLT_INSTANCE) -> NtStatus {
    // SAFETY: the caller's guarantee.
    NtStatus(unsafe { FltRegisterForDataScan(instance) })
}

/// A read-only data-scan section, for the samples that use one without teaching the call
/// (section-context). data-scan makes this call itself and explains each argument.
impl<T> DataScanSection<T> {
    /// `FltCreateSectionForDataScan(Instance, FileObject, context, SECTION_MAP_READ |
    /// SECTION_QUERY, kernel-handle attributes, NULL, PAGE_READONLY, SEC_COMMIT, 0, ...)` on the
    /// operation's file (`<= APC_LEVEL`; call it at `PASSIVE_LEVEL`). `SECTION_QUERY` because the
    /// page says drivers should set it.
    ///
    /// `context` comes from `FltAllocateContext(FLT_SECTION_CONTEXT)`. On success the section
    /// owns it; on failure it is released here, never closed (the context was never linked). A
    /// `SectionNotificationCallback` may run before this returns, while the handle and object are
    /// not known yet.
    ///
    /// # Errors
    /// The call's status: `STATUS_FLT_CONTEXT_ALREADY_DEFINED` (the stream has a section on this
    /// instance already), `STATUS_END_OF_FILE` (an empty file), and the others its page lists.
    pub fn create_read_only(
        objects: &FLT_RELATED_OBJECTS,
        context: ContextRef<T>,
    ) -> Result<Self, NtStatus> {
        let attributes = crate::object::kernel_handle_attributes();
        let (mut handle, mut object, mut size) = (core::ptr::null_mut(), core::ptr::null_mut(), 0);
        // SAFETY: the operation's instance and file object (the instance registered for data
        // scan, or the call fails with STATUS_INVALID_PARAMETER); a section context no stream
        // has yet; attributes and out pointers valid for the call.
        let status = NtStatus(unsafe {
            FltCreateSectionForDataScan(
                objects.Instance,
                objects.FileObject,
                context.as_raw(),
                SECTION_MAP_READ | SECTION_QUERY,
                &raw const attributes,
                core::ptr::null(),
                PAGE_READONLY,
                SEC_COMMIT,
                0,
                &raw mut handle,
                &raw mut object,
                &raw mut size,
            )
        });
        // On failure `context` drops here: its one FltReleaseContext.
        status.ok()?;
        // SAFETY: the handle (OBJ_KERNEL_HANDLE) and object the create just returned for
        // `context`, released nowhere else.
        Ok(unsafe { Self::from_created(handle, object, context, size) })
    }

    /// Moves the handle, the object and the file size into `record` (which lives in the
    /// section's own context) and returns the context reference. Whoever owns that reference
    /// owns the section, and closes it with [`StoredSection::take`].
    ///
    /// # Panics
    /// Never: the context is only taken while the section is being released.
    pub fn store(mut self, record: &StoredSection) -> ContextRef<T> {
        record.handle.store(self.handle as isize, Ordering::Release);
        record.object.store(self.object as usize, Ordering::Release);
        record.file_size.store(self.file_size, Ordering::Release);
        // With the context gone, `self`'s drop releases nothing.
        self.context
            .take()
            .expect("the context is only taken in drop")
    }
}

/// A data-scan section's handle, object and file size, kept in the section's own context: for a
/// section that any of several parties may close (section-context), the one that wins the
/// hand-off ([`crate::handoff`]) rebuilds the section from here and closes it.
pub struct StoredSection {
    handle: AtomicIsize,
    object: AtomicUsize,
    file_size: AtomicI64,
}

impl StoredSection {
    /// Nothing stored yet.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            handle: AtomicIsize::new(0),
            object: AtomicUsize::new(0),
            file_size: AtomicI64::new(0),
        }
    }

    /// The file size `FltCreateSectionForDataScan` reported (0 until stored).
    #[must_use]
    pub fn file_size(&self) -> i64 {
        self.file_size.load(Ordering::Acquire)
    }

    /// The section object stored here (NULL until stored), for a reader's views.
    pub(crate) fn object(&self) -> *mut c_void {
        self.object.load(Ordering::Acquire) as *mut c_void
    }

    /// The section stored here, rebuilt for its close.
    ///
    /// # Safety
    /// `context` is the reference [`DataScanSection::store`] returned when it stored a section
    /// here, and this is the one call for it.
    #[must_use]
    pub unsafe fn take<T>(&self, context: ContextRef<T>) -> DataScanSection<T> {
        let handle = self.handle.load(Ordering::Acquire) as HANDLE;
        let object = self.object.load(Ordering::Acquire) as *mut c_void;
        // SAFETY: what the create returned and `store` kept, taken once (the caller's promise).
        unsafe { DataScanSection::from_created(handle, object, context, self.file_size()) }
    }
}

impl Default for StoredSection {
    fn default() -> Self {
        Self::new()
    }
}
