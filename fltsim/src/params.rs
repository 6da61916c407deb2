//! The `FLT_PARAMETERS` members the model reads and writes, with the layout Filter Manager and
//! the file system use: `fltKernel.h`'s, where `POINTER_ALIGNMENT` (`DECLSPEC_ALIGN(8)` on
//! `_WIN64`) puts `FileInformationClass` at 8 and `Read`/`Write`'s `Key` at 8.
//!
//! windows-sys 0.61 drops that alignment (windows-rs issue #3525, wdkmetadata issue #88), so the
//! model does not read its members. Nor does it use `common::params`: these definitions are the
//! model's own, written from the header separately, so that a mistake in one cannot hide the
//! same mistake in the other. A driver that fills a request through windows-sys's members
//! therefore gets the answer Windows would give it: a wrong one.
//!
//! Offsets on 64-bit targets (`ULONG` 4, `USHORT` 2, pointers and `LARGE_INTEGER` 8, natural
//! alignment, `POINTER_ALIGNMENT` = 8; `fltKernel.h`'s `pshpack4.h` is compiled out on `_AMD64_`
//! and `_ARM64_`):
//! - `Create`: `SecurityContext` 0, `Options` 8, `FileAttributes` 16 (aligned up from 12),
//!   `ShareAccess` 18, `EaLength` 24 (aligned up from 20), `EaBuffer` 32, `AllocationSize` 40;
//! - `Read` / `Write`: `Length` 0, `Key` 8 (aligned up from 4), `ByteOffset` 16, buffer 24,
//!   `MdlAddress` 32;
//! - `QueryFileInformation`: `Length` 0, `FileInformationClass` 8 (aligned up from 4),
//!   `InfoBuffer` 16;
//! - `SetFileInformation`: `Length` 0, `FileInformationClass` 8 (aligned up from 4),
//!   `ParentOfTarget` 16, the `ReplaceIfExists`/`ClusterCount`/`DeleteHandle` union 24 (8 bytes),
//!   `InfoBuffer` 32.

use std::{
    ffi::c_void,
    mem::{align_of, offset_of, size_of},
};

use windows_sys::Wdk::{
    Foundation::IO_SECURITY_CONTEXT, Storage::FileSystem::Minifilters::FLT_PARAMETERS,
};

/// A member of the union, with the C layout.
///
/// # Safety
/// Implement it only for plain-data `#[repr(C)]` structures of integers and raw pointers with
/// explicit padding fields (no implicit padding), no larger and no more aligned than
/// `FLT_PARAMETERS` (the `member!` macro asserts both).
pub(crate) unsafe trait Member: Sized {
    /// The member inside `parameters`.
    ///
    /// # Safety
    /// The union's bytes must be initialized (the model zeroes every parameter block it
    /// allocates and resets).
    unsafe fn of(parameters: &FLT_PARAMETERS) -> &Self {
        // SAFETY: fits and aligned (the trait's contract), plain data, initialized bytes (the
        // caller's contract).
        unsafe { &*std::ptr::from_ref(parameters).cast::<Self>() }
    }

    /// The member inside `parameters`, to fill in.
    ///
    /// # Safety
    /// As for [`of`](Self::of).
    unsafe fn of_mut(parameters: &mut FLT_PARAMETERS) -> &mut Self {
        // SAFETY: as for `of`, with the caller's exclusive borrow.
        unsafe { &mut *std::ptr::from_mut(parameters).cast::<Self>() }
    }
}

macro_rules! member {
    ($t:ty, $size:expr, { $($field:ident == $offset:expr),* $(,)? }) => {
        // SAFETY: asserted right here: fits in the union, no more aligned; the fields are
        // integers and raw pointers, padding is explicit.
        unsafe impl Member for $t {}
        const _: () = {
            assert!(size_of::<$t>() == $size);
            assert!(size_of::<$t>() <= size_of::<FLT_PARAMETERS>());
            assert!(align_of::<$t>() <= align_of::<FLT_PARAMETERS>());
            $(assert!(offset_of!($t, $field) == $offset);)*
        };
    };
}

/// `Parameters.Create`.
#[repr(C)]
pub(crate) struct Create {
    pub(crate) security_context: *mut IO_SECURITY_CONTEXT,
    pub(crate) options: u32,
    pub(crate) pad_before_file_attributes: u32,
    pub(crate) file_attributes: u16,
    pub(crate) share_access: u16,
    pub(crate) pad_before_ea_length: u32,
    pub(crate) ea_length: u32,
    pub(crate) pad_before_ea_buffer: u32,
    pub(crate) ea_buffer: *mut c_void,
    pub(crate) allocation_size: i64,
}
member!(Create, 48, {
    security_context == 0,
    options == 8,
    file_attributes == 16,
    share_access == 18,
    ea_length == 24,
    ea_buffer == 32,
    allocation_size == 40,
});

/// `Parameters.Read` and `Parameters.Write` (the same layout; `buffer` is `ReadBuffer` or
/// `WriteBuffer`).
#[repr(C)]
pub(crate) struct ReadWrite {
    pub(crate) length: u32,
    pub(crate) pad_before_key: u32,
    pub(crate) key: u32,
    pub(crate) pad_before_byte_offset: u32,
    pub(crate) byte_offset: i64,
    pub(crate) buffer: *mut c_void,
    pub(crate) mdl_address: *mut c_void,
}
member!(ReadWrite, 40, {
    length == 0,
    key == 8,
    byte_offset == 16,
    buffer == 24,
    mdl_address == 32,
});

/// `Parameters.QueryFileInformation`.
#[repr(C)]
pub(crate) struct QueryFile {
    pub(crate) length: u32,
    /// Bytes 4..8: padding in C. The windows-sys member puts `FileInformationClass` here.
    pub(crate) pad_before_class: u32,
    pub(crate) class: i32,
    pub(crate) pad_before_buffer: u32,
    pub(crate) info_buffer: *mut c_void,
}
member!(QueryFile, 24, {
    length == 0,
    pad_before_class == 4,
    class == 8,
    info_buffer == 16,
});

/// `Parameters.SetFileInformation`.
#[repr(C)]
pub(crate) struct SetFile {
    pub(crate) length: u32,
    /// Bytes 4..8: padding in C. The windows-sys member puts `FileInformationClass` here.
    pub(crate) pad_before_class: u32,
    pub(crate) class: i32,
    pub(crate) pad_before_parent: u32,
    pub(crate) parent_of_target: *mut c_void,
    /// `ReplaceIfExists`/`AdvanceOnly` bytes, `ClusterCount` or `DeleteHandle`.
    pub(crate) union_bits: u64,
    pub(crate) info_buffer: *mut c_void,
}
member!(SetFile, 40, {
    length == 0,
    pad_before_class == 4,
    class == 8,
    parent_of_target == 16,
    union_bits == 24,
    info_buffer == 32,
});
