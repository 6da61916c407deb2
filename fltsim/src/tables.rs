//! The registration tables of the model's own filters: the [`counting`](crate::counting) filter
//! and the storm tests' planted race.
//!
//! They are built here from windows-sys's types, not through `common::registration`, so the
//! model's filters do not lean on the samples' helper crate: a mistake in that helper's tables is
//! one `FltRegisterFilter`'s checks in the model must still be able to catch.

use std::ptr;

use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_OPERATION_REGISTRATION, FLT_REGISTRATION, FLT_REGISTRATION_VERSION_0203,
    IRP_MJ_OPERATION_END, PFLT_FILTER_UNLOAD_CALLBACK, PFLT_POST_OPERATION_CALLBACK,
    PFLT_PRE_OPERATION_CALLBACK,
};

/// One row of an operation table: the pre and post callbacks of an `IRP_MJ_*` function.
#[allow(clippy::cast_possible_truncation)]
pub(crate) const fn operation(
    major_function: u32,
    pre: PFLT_PRE_OPERATION_CALLBACK,
    post: PFLT_POST_OPERATION_CALLBACK,
) -> FLT_OPERATION_REGISTRATION {
    assert!(major_function < 0x80, "not an IRP_MJ_* value");
    FLT_OPERATION_REGISTRATION {
        // Checked above: it fits in a byte.
        MajorFunction: major_function as u8,
        Flags: 0,
        PreOperation: pre,
        PostOperation: post,
        Reserved1: ptr::null_mut(),
    }
}

/// An operation table, ended by its `IRP_MJ_OPERATION_END` row, as a `static`.
pub(crate) struct Operations<const N: usize>([FLT_OPERATION_REGISTRATION; N]);

// SAFETY: immutable 'static data: code addresses and a null `Reserved1`, never written.
unsafe impl<const N: usize> Sync for Operations<N> {}

impl<const N: usize> Operations<N> {
    /// The rows, the last of them [`END`].
    pub(crate) const fn new(rows: [FLT_OPERATION_REGISTRATION; N]) -> Self {
        assert!(
            N > 0 && rows[N - 1].MajorFunction as u16 == IRP_MJ_OPERATION_END,
            "the last row must be END"
        );
        Self(rows)
    }
}

/// The row that ends an operation table.
#[allow(clippy::cast_possible_truncation)]
pub(crate) const END: FLT_OPERATION_REGISTRATION = FLT_OPERATION_REGISTRATION {
    // IRP_MJ_OPERATION_END is 0x80.
    MajorFunction: IRP_MJ_OPERATION_END as u8,
    Flags: 0,
    PreOperation: None,
    PostOperation: None,
    Reserved1: ptr::null_mut(),
};

/// An `FLT_REGISTRATION` (version `0x0203`) with operations and an unload callback only.
pub(crate) struct Registration(FLT_REGISTRATION);

// SAFETY: it points only at a 'static `Operations` table and at code, and is never written.
unsafe impl Sync for Registration {}

impl Registration {
    /// The registration of `operations` and `unload`.
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) const fn new<const N: usize>(
        operations: &'static Operations<N>,
        unload: PFLT_FILTER_UNLOAD_CALLBACK,
    ) -> Self {
        const SIZE: usize = size_of::<FLT_REGISTRATION>();
        const { assert!(SIZE <= u16::MAX as usize) };
        Self(FLT_REGISTRATION {
            // Checked above: both fit in 16 bits.
            Size: SIZE as u16,
            Version: FLT_REGISTRATION_VERSION_0203 as u16,
            Flags: 0,
            ContextRegistration: ptr::null(),
            OperationRegistration: operations.0.as_ptr(),
            FilterUnloadCallback: unload,
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

    /// The registration, for `FltRegisterFilter`.
    pub(crate) const fn as_ptr(&self) -> *const FLT_REGISTRATION {
        &raw const self.0
    }
}
