//! `FLT_REGISTRATION` and its tables as `static` data, with no `static mut`.
//!
//! The constructors are `const fn`s that check their input with `assert!`: used in a `static`,
//! a malformed table (a missing end row, an out-of-range major function) fails to compile.
//!
//! Filter Manager keeps the pointer passed to `FltRegisterFilter` and reads the tables for as long
//! as the filter is registered, so they must be `'static`. The windows-sys structures hold raw
//! pointers and are therefore not `Sync`; the wrappers here are, because the data is immutable
//! after compilation and only ever read.
//!
//! ```
//! use common::{
//!     bindings::{
//!         FLT_CALLBACK_DATA, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_NO_CALLBACK,
//!         FLT_REGISTRATION_VERSION_0202, FLT_RELATED_OBJECTS, IRP_MJ_CREATE, NTSTATUS,
//!     },
//!     registration::{OPERATION_END, OperationTable, Registration, operation},
//! };
//!
//! unsafe extern "system" fn pre_create(
//!     _: *mut FLT_CALLBACK_DATA,
//!     _: *const FLT_RELATED_OBJECTS,
//!     _: *mut *mut core::ffi::c_void,
//! ) -> FLT_PREOP_CALLBACK_STATUS {
//!     FLT_PREOP_SUCCESS_NO_CALLBACK
//! }
//! unsafe extern "system" fn unload(_: u32) -> NTSTATUS {
//!     0
//! }
//!
//! static OPERATIONS: OperationTable<2> =
//!     OperationTable::new([operation(IRP_MJ_CREATE, Some(pre_create), None), OPERATION_END]);
//! static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0202)
//!     .operations(&OPERATIONS)
//!     .unload(Some(unload));
//!
//! assert_eq!(REGISTRATION.get().OperationRegistration, OPERATIONS.as_ptr());
//! ```

use core::ptr;

use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CONTEXT_END, FLT_CONTEXT_REGISTRATION, FLT_OPERATION_REGISTRATION, FLT_REGISTRATION,
    IRP_MJ_OPERATION_END, PFLT_CONTEXT_CLEANUP_CALLBACK, PFLT_FILTER_UNLOAD_CALLBACK,
    PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK, PFLT_INSTANCE_SETUP_CALLBACK,
    PFLT_INSTANCE_TEARDOWN_CALLBACK, PFLT_POST_OPERATION_CALLBACK, PFLT_PRE_OPERATION_CALLBACK,
    PFLT_SECTION_CONFLICT_NOTIFICATION_CALLBACK,
};

/// One row of the operation table: the pre and post callbacks for a major function.
/// # Panics
/// At compile time (in a `static`), if `major_function` is not an `IRP_MJ_*` value.
#[must_use]
#[allow(clippy::cast_possible_truncation)]
pub const fn operation(
    major_function: u32,
    pre: PFLT_PRE_OPERATION_CALLBACK,
    post: PFLT_POST_OPERATION_CALLBACK,
) -> FLT_OPERATION_REGISTRATION {
    assert!(major_function < 0x80, "major function out of range");
    FLT_OPERATION_REGISTRATION {
        // Checked above: every IRP_MJ_* value fits in a byte.
        MajorFunction: major_function as u8,
        Flags: 0,
        PreOperation: pre,
        PostOperation: post,
        Reserved1: ptr::null_mut(),
    }
}

/// The row that ends every operation table (`IRP_MJ_OPERATION_END`).
#[allow(clippy::cast_possible_truncation)]
pub const OPERATION_END: FLT_OPERATION_REGISTRATION = FLT_OPERATION_REGISTRATION {
    // IRP_MJ_OPERATION_END is 0x80.
    MajorFunction: IRP_MJ_OPERATION_END as u8,
    Flags: 0,
    PreOperation: None,
    PostOperation: None,
    Reserved1: ptr::null_mut(),
};

/// An operation table: `N - 1` operations followed by [`OPERATION_END`].
#[repr(transparent)]
pub struct OperationTable<const N: usize>([FLT_OPERATION_REGISTRATION; N]);

// SAFETY: the table is immutable `'static` data; its raw pointer field (`Reserved1`) is always
// null and its function pointers are plain code addresses, so sharing it between threads is sound.
unsafe impl<const N: usize> Sync for OperationTable<N> {}

impl<const N: usize> OperationTable<N> {
    /// Wraps the rows.
    ///
    /// # Panics
    /// At compile time (in a `static`), unless the last row is [`OPERATION_END`].
    #[must_use]
    pub const fn new(rows: [FLT_OPERATION_REGISTRATION; N]) -> Self {
        assert!(N > 0, "an operation table needs at least the end row");
        assert!(
            rows[N - 1].MajorFunction as u16 == IRP_MJ_OPERATION_END,
            "the last row must be OPERATION_END"
        );
        Self(rows)
    }

    /// The rows, for `FLT_REGISTRATION::OperationRegistration`.
    #[must_use]
    pub const fn as_ptr(&self) -> *const FLT_OPERATION_REGISTRATION {
        self.0.as_ptr()
    }
}

/// One row of the context table: a context type, its fixed size, pool tag and cleanup callback.
/// # Panics
/// At compile time (in a `static`), if `context_type` does not fit in 16 bits.
#[must_use]
#[allow(clippy::cast_possible_truncation)]
pub const fn context(
    context_type: u32,
    size: usize,
    pool_tag: u32,
    cleanup: PFLT_CONTEXT_CLEANUP_CALLBACK,
) -> FLT_CONTEXT_REGISTRATION {
    assert!(context_type < 0x1_0000, "context type out of range");
    FLT_CONTEXT_REGISTRATION {
        // Checked above: FLT_*_CONTEXT values fit in 16 bits.
        ContextType: context_type as u16,
        Flags: 0,
        ContextCleanupCallback: cleanup,
        Size: size,
        PoolTag: pool_tag,
        ContextAllocateCallback: None,
        ContextFreeCallback: None,
        Reserved1: ptr::null_mut(),
    }
}

/// One row of the context table for a context whose body is a `T` (written by
/// [`ContextRef::allocate`](crate::context::ContextRef::allocate)): the size is `size_of::<T>()`
/// and the cleanup callback drops the `T` ([`drop_context::<T>`](crate::context::drop_context)),
/// so the two cannot disagree.
/// # Panics
/// At compile time (in a `static`), if `context_type` does not fit in 16 bits.
#[must_use]
pub const fn context_of<T>(context_type: u32, pool_tag: u32) -> FLT_CONTEXT_REGISTRATION {
    context(
        context_type,
        core::mem::size_of::<T>(),
        pool_tag,
        Some(crate::context::drop_context::<T>),
    )
}

/// The row that ends every context table (`FLT_CONTEXT_END`).
#[allow(clippy::cast_possible_truncation)]
pub const CONTEXT_END: FLT_CONTEXT_REGISTRATION = FLT_CONTEXT_REGISTRATION {
    // FLT_CONTEXT_END is 0xFFFF.
    ContextType: FLT_CONTEXT_END as u16,
    Flags: 0,
    ContextCleanupCallback: None,
    Size: 0,
    PoolTag: 0,
    ContextAllocateCallback: None,
    ContextFreeCallback: None,
    Reserved1: ptr::null_mut(),
};

/// A context table: `N - 1` context types followed by [`CONTEXT_END`].
#[repr(transparent)]
pub struct ContextTable<const N: usize>([FLT_CONTEXT_REGISTRATION; N]);

// SAFETY: immutable `'static` data whose only raw pointer (`Reserved1`) is null.
unsafe impl<const N: usize> Sync for ContextTable<N> {}

impl<const N: usize> ContextTable<N> {
    /// Wraps the rows.
    ///
    /// # Panics
    /// At compile time (in a `static`), unless the last row is [`CONTEXT_END`].
    #[must_use]
    pub const fn new(rows: [FLT_CONTEXT_REGISTRATION; N]) -> Self {
        assert!(N > 0, "a context table needs at least the end row");
        assert!(
            rows[N - 1].ContextType as u32 == FLT_CONTEXT_END,
            "the last row must be CONTEXT_END"
        );
        Self(rows)
    }

    /// The rows, for `FLT_REGISTRATION::ContextRegistration`.
    #[must_use]
    pub const fn as_ptr(&self) -> *const FLT_CONTEXT_REGISTRATION {
        self.0.as_ptr()
    }
}

/// `FLT_REGISTRATION`, built in a `const` context and shareable as a `static`.
#[repr(transparent)]
pub struct Registration(FLT_REGISTRATION);

// SAFETY: the structure only points at other `'static`, `Sync` tables (see the constructors) and
// at code; it is never written after compilation.
unsafe impl Sync for Registration {}

impl Registration {
    /// A registration of the given `FLT_REGISTRATION_VERSION_*` with no callbacks yet.
    ///
    /// `Size` is `size_of::<FLT_REGISTRATION>()` (112 on 64-bit Windows). Use version `0x0203`
    /// (`FLT_REGISTRATION_VERSION_0203`) to have `SectionNotificationCallback` read at all.
    ///
    /// # Panics
    /// At compile time (in a `static`), for a version outside `0x0200..=0x0203`.
    #[must_use]
    #[allow(clippy::cast_possible_truncation)]
    pub const fn new(version: u32) -> Self {
        assert!(
            version >= 0x0200 && version <= 0x0203,
            "unknown FLT_REGISTRATION version"
        );
        let size = core::mem::size_of::<FLT_REGISTRATION>();
        assert!(size <= u16::MAX as usize);
        Self(FLT_REGISTRATION {
            // Checked above: both fit in 16 bits.
            Size: size as u16,
            Version: version as u16,
            Flags: 0,
            ContextRegistration: ptr::null(),
            OperationRegistration: ptr::null(),
            FilterUnloadCallback: None,
            InstanceSetupCallback: None,
            InstanceQueryTeardownCallback: None,
            InstanceTeardownStartCallback: None,
            InstanceTeardownCompleteCallback: None,
            GenerateFileNameCallback: None,
            NormalizeNameComponentCallback: None,
            NormalizeContextCleanupCallback: None,
            TransactionNotificationCallback: None,
            NormalizeNameComponentExCallback: None,
            SectionNotificationCallback: None,
        })
    }

    /// `FLT_REGISTRATION::Flags` (`FLTFL_REGISTRATION_*`).
    #[must_use]
    pub const fn flags(mut self, flags: u32) -> Self {
        self.0.Flags = flags;
        self
    }

    /// `OperationRegistration`: the pre and post callbacks.
    #[must_use]
    pub const fn operations<const N: usize>(mut self, table: &'static OperationTable<N>) -> Self {
        self.0.OperationRegistration = table.as_ptr();
        self
    }

    /// `ContextRegistration`: the context types the filter allocates.
    #[must_use]
    pub const fn contexts<const N: usize>(mut self, table: &'static ContextTable<N>) -> Self {
        self.0.ContextRegistration = table.as_ptr();
        self
    }

    /// `FilterUnloadCallback`. Without one the filter cannot be unloaded.
    #[must_use]
    pub const fn unload(mut self, callback: PFLT_FILTER_UNLOAD_CALLBACK) -> Self {
        self.0.FilterUnloadCallback = callback;
        self
    }

    /// `InstanceSetupCallback`: decides whether to attach to a volume.
    #[must_use]
    pub const fn instance_setup(mut self, callback: PFLT_INSTANCE_SETUP_CALLBACK) -> Self {
        self.0.InstanceSetupCallback = callback;
        self
    }

    /// `InstanceQueryTeardownCallback`: without one, manual detach is refused
    /// ([`allow_detach`] allows it).
    #[must_use]
    pub const fn instance_query_teardown(
        mut self,
        callback: PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK,
    ) -> Self {
        self.0.InstanceQueryTeardownCallback = callback;
        self
    }

    /// `InstanceTeardownStartCallback`: stop new work and release what the instance holds.
    #[must_use]
    pub const fn instance_teardown_start(
        mut self,
        callback: PFLT_INSTANCE_TEARDOWN_CALLBACK,
    ) -> Self {
        self.0.InstanceTeardownStartCallback = callback;
        self
    }

    /// `InstanceTeardownCompleteCallback`: all I/O on the instance has drained.
    #[must_use]
    pub const fn instance_teardown_complete(
        mut self,
        callback: PFLT_INSTANCE_TEARDOWN_CALLBACK,
    ) -> Self {
        self.0.InstanceTeardownCompleteCallback = callback;
        self
    }

    /// `SectionNotificationCallback`, read only when the version is `0x0203` or later.
    ///
    /// # Panics
    /// At compile time (in a `static`), if the version is below `0x0203`.
    #[must_use]
    pub const fn section_notification(
        mut self,
        callback: PFLT_SECTION_CONFLICT_NOTIFICATION_CALLBACK,
    ) -> Self {
        assert!(
            self.0.Version >= 0x0203,
            "SectionNotificationCallback needs version 0x0203"
        );
        self.0.SectionNotificationCallback = callback;
        self
    }

    /// The structure to pass to `FltRegisterFilter`.
    #[must_use]
    pub const fn as_ptr(&self) -> *const FLT_REGISTRATION {
        &raw const self.0
    }

    /// The structure itself, for inspection.
    #[must_use]
    pub const fn get(&self) -> &FLT_REGISTRATION {
        &self.0
    }
}

/// An `InstanceQueryTeardownCallback` (`PASSIVE_LEVEL`) that allows every manual detach
/// (`fltmc detach`, `FltDetachVolume`) by returning `STATUS_SUCCESS`. Without the callback, Filter
/// Manager refuses them; with it, a detach is one more teardown, which `InstanceTeardownStart`
/// handles like a dismount. section-conflict registers it.
///
/// # Safety
/// Called by Filter Manager, which passes valid related objects.
#[must_use]
pub unsafe extern "system" fn allow_detach(
    _objects: *const windows_sys::Wdk::Storage::FileSystem::Minifilters::FLT_RELATED_OBJECTS,
    _flags: u32,
) -> windows_sys::Win32::Foundation::NTSTATUS {
    crate::paged_code!();
    windows_sys::Win32::Foundation::STATUS_SUCCESS
}

#[cfg(test)]
mod tests {
    use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
        FLT_REGISTRATION_VERSION_0202, FLT_REGISTRATION_VERSION_0203, FLT_STREAMHANDLE_CONTEXT,
    };

    use super::*;

    static OPS: OperationTable<2> = OperationTable::new([operation(0, None, None), OPERATION_END]);
    static CONTEXTS: ContextTable<2> = ContextTable::new([
        context(FLT_STREAMHANDLE_CONTEXT, 16, 0x7453_7752, None),
        CONTEXT_END,
    ]);
    static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0202)
        .operations(&OPS)
        .contexts(&CONTEXTS);

    #[test]
    fn the_registration_points_at_its_tables() {
        let r = REGISTRATION.get();
        assert_eq!(
            usize::from(r.Size),
            core::mem::size_of::<FLT_REGISTRATION>()
        );
        assert_eq!(u32::from(r.Version), FLT_REGISTRATION_VERSION_0202);
        assert_eq!(r.OperationRegistration, OPS.as_ptr());
        assert_eq!(r.ContextRegistration, CONTEXTS.as_ptr());
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn size_is_112_on_64_bit() {
        assert_eq!(core::mem::size_of::<FLT_REGISTRATION>(), 112);
    }

    unsafe extern "system" fn notification(
        _: isize,
        _: *mut core::ffi::c_void,
        _: *const windows_sys::Wdk::Storage::FileSystem::Minifilters::FLT_CALLBACK_DATA,
    ) -> i32 {
        0
    }

    static WITH_NOTIFICATION: Registration =
        Registration::new(FLT_REGISTRATION_VERSION_0203).section_notification(Some(notification));

    #[test]
    fn version_0203_carries_the_section_notification() {
        let r = WITH_NOTIFICATION.get();
        assert_eq!(u32::from(r.Version), FLT_REGISTRATION_VERSION_0203);
        assert!(r.SectionNotificationCallback.is_some());
    }

    #[test]
    #[should_panic(expected = "needs version 0x0203")]
    fn section_notification_needs_0203() {
        unsafe extern "system" fn cb(
            _: isize,
            _: *mut core::ffi::c_void,
            _: *const windows_sys::Wdk::Storage::FileSystem::Minifilters::FLT_CALLBACK_DATA,
        ) -> i32 {
            0
        }
        let _ = Registration::new(FLT_REGISTRATION_VERSION_0202).section_notification(Some(cb));
    }
}
