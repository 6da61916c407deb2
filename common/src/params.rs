//! The members of `FLT_PARAMETERS` the samples use, laid out as `fltKernel.h` declares them.
//!
//! # Why the samples do not use windows-sys's members
//! `fltKernel.h` marks many members of the `FLT_PARAMETERS` union `POINTER_ALIGNMENT`, which
//! `wdm.h` defines as `DECLSPEC_ALIGN(8)` on `_WIN64` (and as nothing on 32-bit targets). The
//! metadata windows-sys is generated from drops that per-member alignment, so in windows-sys 0.61
//! those members, and every member after them, sit at the wrong offsets on `x86_64` and `aarch64`
//! (C offset, windows-sys offset):
//!
//! | member | field | C | windows-sys |
//! |---|---|---|---|
//! | `Create` (`FLT_PARAMETERS_0`) | `FileAttributes`, `ShareAccess`, `EaLength`, `EaBuffer`, `AllocationSize` | 16, 18, 24, 32, 40 | 12, 14, 16, 20, 28 |
//! | `Read`, `Write` (`FLT_PARAMETERS_3`, `_4`) | `Key`, `ByteOffset`, buffer, `MdlAddress` | 8, 16, 24, 32 | 4, 8, 16, 24 |
//! | `QueryFileInformation` (`FLT_PARAMETERS_5`) | `FileInformationClass`, `InfoBuffer` | 8, 16 | 4, 8 |
//! | `SetFileInformation` (`FLT_PARAMETERS_6`) | `FileInformationClass`, `ParentOfTarget`, union, `InfoBuffer` | 8, 16, 24, 32 | 4, 8, 16, 24 |
//!
//! (windows-sys also declares `FLT_PARAMETERS_0`, `_3` and `_4` `packed(4)`, the 32-bit
//! `pshpack4.h` packing, which `fltKernel.h` applies only when none of `_AMD64_`, `_IA64_`,
//! `_ARM_`, `_ARM64_` is defined; that is why its `Create.EaBuffer` is at 20.) Other members carry
//! `POINTER_ALIGNMENT` too (`QueryEa`, `QueryVolumeInformation`, `SetVolumeInformation`,
//! `DirectoryControl`, `FileSystemControl`, `DeviceIoControl`, `LockControl`, `QuerySecurity`,
//! `FastIoCheckIfPossible`, `MdlRead`, `PrepareMdlWrite`); no sample uses them.
//!
//! A driver that writes `Parameters.QueryFileInformation.FileInformationClass` through
//! windows-sys writes it where Filter Manager reads nothing, and its `InfoBuffer` where Filter
//! Manager reads the information class; one that reads `Parameters.Write.ByteOffset` reads the
//! `Key` and half of the offset. Upstream: windows-rs issue #3525
//! (<https://github.com/microsoft/windows-rs/issues/3525>) and wdkmetadata issue #88
//! (<https://github.com/microsoft/wdkmetadata/issues/88>) report it for `SetFileInformation`;
//! both are open.
//!
//! # What the project does instead
//! This module declares the five members with the C layout: explicit padding where the header
//! says `POINTER_ALIGNMENT`, and a compile-time assertion of the size and of every field offset,
//! derived below from the header text. A sample gets a view of the live member from the union,
//! `unsafe { params::QueryFileInformation::of_mut(&mut iopb.Parameters) }`, and never touches the
//! windows-sys member. `fltsim` reads and writes the parameters through definitions of its own,
//! so that a mistake here cannot hide behind the same mistake in the model.
//!
//! # The rule the offsets follow
//! On `x86_64` and `aarch64` (both LLP64 on Windows): `ULONG`, `FILE_INFORMATION_CLASS` (an enum)
//! 4 bytes, `USHORT` 2, pointers, `HANDLE` and `LARGE_INTEGER` 8, each aligned to its size; the
//! `pshpack4.h` in front of `FLT_PARAMETERS` is compiled out on both; `POINTER_ALIGNMENT` raises a
//! member's alignment to 8. Source: `fltKernel.h` and `wdm.h` of the Windows 10 WDK (as
//! vendored in github.com/MuAlphaOmegaEpsilon/wdk-10, `km/fltKernel.h`: `typedef union
//! _FLT_PARAMETERS`, and `km/wdm.h`: `#define POINTER_ALIGNMENT DECLSPEC_ALIGN(8)`), and
//! Microsoft's reference pages "`FLT_PARAMETERS` for `IRP_MJ_CREATE`" (and `_READ`, `_WRITE`,
//! `_QUERY_INFORMATION`, `_SET_INFORMATION`), which show the same declarations.
//!
//! `FLT_PARAMETERS` itself is a union of those members; its largest members (`Create`,
//! `DirectoryControl.QueryDirectory`, `FileSystemControl.Neither`, `Others`) are 48 bytes, so it
//! is 48 bytes, 8-aligned, in C and in windows-sys alike. Each view is asserted to fit in it.

use core::{
    ffi::c_void,
    mem::{align_of, offset_of, size_of},
};

use windows_sys::{
    Wdk::{
        Foundation::{FILE_OBJECT, IO_SECURITY_CONTEXT, MDL},
        Storage::FileSystem::{FILE_INFORMATION_CLASS, Minifilters::FLT_PARAMETERS},
    },
    Win32::Foundation::HANDLE,
};

/// Views of the `FLT_PARAMETERS` union: a view is no larger and no more aligned than the union,
/// and every bit pattern is a valid value of it (integers and raw pointers only).
macro_rules! views {
    ($($view:ident),* $(,)?) => {$(
        const _: () = assert!(size_of::<$view>() <= size_of::<FLT_PARAMETERS>());
        const _: () = assert!(align_of::<$view>() <= align_of::<FLT_PARAMETERS>());

        impl $view {
            #[doc = concat!("The `", stringify!($view), "` member of `parameters`.")]
            ///
            /// # Safety
            /// This must be the live member (the operation's major function selects it), and the
            /// union's bytes must be initialized, as they are in every parameter block Filter
            /// Manager passes to a callback or allocates with `FltAllocateCallbackData(Ex)`.
            #[must_use]
            pub unsafe fn of(parameters: &FLT_PARAMETERS) -> &Self {
                // SAFETY: the view fits in the union and is no more aligned (asserted above), its
                // fields are plain integers and raw pointers, and the caller guarantees the bytes
                // are initialized; the borrow is the caller's.
                unsafe { &*core::ptr::from_ref(parameters).cast::<Self>() }
            }

            #[doc = concat!("The `", stringify!($view), "` member of `parameters`, to fill in.")]
            ///
            /// # Safety
            /// As for [`of`](Self::of): the bytes must be initialized (reading a field back must
            /// read initialized memory), as they are in callback data from
            /// `FltAllocateCallbackData(Ex)`.
            #[must_use]
            pub unsafe fn of_mut(parameters: &mut FLT_PARAMETERS) -> &mut Self {
                // SAFETY: as for `of`; the exclusive borrow is the caller's.
                unsafe { &mut *core::ptr::from_mut(parameters).cast::<Self>() }
            }
        }
    )*};
}

views!(
    Create,
    Read,
    Write,
    QueryFileInformation,
    SetFileInformation
);

/// `Parameters.Create` (`IRP_MJ_CREATE`).
///
/// ```text
/// PIO_SECURITY_CONTEXT SecurityContext;     //  0: pointer
/// ULONG Options;                            //  8
/// USHORT POINTER_ALIGNMENT FileAttributes;  // 16: 12 rounded up to 8
/// USHORT ShareAccess;                       // 18
/// ULONG POINTER_ALIGNMENT EaLength;         // 24: 20 rounded up to 8
/// PVOID EaBuffer;                           // 32: 28 rounded up to a pointer
/// LARGE_INTEGER AllocationSize;             // 40; size 48
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_snake_case, reason = "the field names of fltKernel.h")]
pub struct Create {
    /// `IO_SECURITY_CONTEXT`: `DesiredAccess` is the access the opener asked for.
    pub SecurityContext: *mut IO_SECURITY_CONTEXT,
    /// The create options in the low 24 bits, the create disposition in the high 8.
    pub Options: u32,
    _align_file_attributes: u32,
    /// `FILE_ATTRIBUTE_*` for a file the create makes.
    pub FileAttributes: u16,
    /// `FILE_SHARE_*`.
    pub ShareAccess: u16,
    _align_ea_length: u32,
    /// The length of `EaBuffer`.
    pub EaLength: u32,
    _align_ea_buffer: u32,
    /// Extended attributes for a file the create makes.
    pub EaBuffer: *mut c_void,
    /// The initial allocation size for a file the create makes.
    pub AllocationSize: i64,
}

const _: () = {
    assert!(offset_of!(Create, SecurityContext) == 0);
    assert!(offset_of!(Create, Options) == 8);
    assert!(offset_of!(Create, FileAttributes) == 16);
    assert!(offset_of!(Create, ShareAccess) == 18);
    assert!(offset_of!(Create, EaLength) == 24);
    assert!(offset_of!(Create, EaBuffer) == 32);
    assert!(offset_of!(Create, AllocationSize) == 40);
    assert!(size_of::<Create>() == 48);
};

/// `Parameters.Read` (`IRP_MJ_READ`).
///
/// ```text
/// ULONG Length;                   //  0
/// ULONG POINTER_ALIGNMENT Key;    //  8: 4 rounded up to 8
/// LARGE_INTEGER ByteOffset;       // 16
/// PVOID ReadBuffer;               // 24
/// PMDL MdlAddress;                // 32; size 40
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_snake_case, reason = "the field names of fltKernel.h")]
pub struct Read {
    /// The number of bytes to read.
    pub Length: u32,
    _align_key: u32,
    /// The byte-range lock key.
    pub Key: u32,
    _align_byte_offset: u32,
    /// Where to read from.
    pub ByteOffset: i64,
    /// The buffer (a system address or, for some requests, a user address; see `MdlAddress`).
    pub ReadBuffer: *mut c_void,
    /// The MDL describing the buffer, if any.
    pub MdlAddress: *mut MDL,
}

const _: () = {
    assert!(offset_of!(Read, Length) == 0);
    assert!(offset_of!(Read, Key) == 8);
    assert!(offset_of!(Read, ByteOffset) == 16);
    assert!(offset_of!(Read, ReadBuffer) == 24);
    assert!(offset_of!(Read, MdlAddress) == 32);
    assert!(size_of::<Read>() == 40);
};

/// `Parameters.Write` (`IRP_MJ_WRITE`): the same layout as [`Read`].
///
/// ```text
/// ULONG Length;                   //  0
/// ULONG POINTER_ALIGNMENT Key;    //  8: 4 rounded up to 8
/// LARGE_INTEGER ByteOffset;       // 16
/// PVOID WriteBuffer;              // 24
/// PMDL MdlAddress;                // 32; size 40
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_snake_case, reason = "the field names of fltKernel.h")]
pub struct Write {
    /// The number of bytes to write.
    pub Length: u32,
    _align_key: u32,
    /// The byte-range lock key.
    pub Key: u32,
    _align_byte_offset: u32,
    /// Where to write to.
    pub ByteOffset: i64,
    /// The data to write.
    pub WriteBuffer: *mut c_void,
    /// The MDL describing the buffer, if any.
    pub MdlAddress: *mut MDL,
}

const _: () = {
    assert!(offset_of!(Write, Length) == 0);
    assert!(offset_of!(Write, Key) == 8);
    assert!(offset_of!(Write, ByteOffset) == 16);
    assert!(offset_of!(Write, WriteBuffer) == 24);
    assert!(offset_of!(Write, MdlAddress) == 32);
    assert!(size_of::<Write>() == 40);
};

/// `Parameters.QueryFileInformation` (`IRP_MJ_QUERY_INFORMATION`).
///
/// ```text
/// ULONG Length;                                              //  0
/// FILE_INFORMATION_CLASS POINTER_ALIGNMENT FileInformationClass; //  8: 4 rounded up to 8
/// PVOID InfoBuffer;                                          // 16; size 24
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_snake_case, reason = "the field names of fltKernel.h")]
pub struct QueryFileInformation {
    /// The size of `InfoBuffer` in bytes.
    pub Length: u32,
    _align_class: u32,
    /// Which `FILE_*_INFORMATION` structure to return.
    pub FileInformationClass: FILE_INFORMATION_CLASS,
    _align_buffer: u32,
    /// Where the file system writes the answer.
    pub InfoBuffer: *mut c_void,
}

const _: () = {
    assert!(offset_of!(QueryFileInformation, Length) == 0);
    assert!(offset_of!(QueryFileInformation, FileInformationClass) == 8);
    assert!(offset_of!(QueryFileInformation, InfoBuffer) == 16);
    assert!(size_of::<QueryFileInformation>() == 24);
};

/// `Parameters.SetFileInformation` (`IRP_MJ_SET_INFORMATION`).
///
/// ```text
/// ULONG Length;                                              //  0
/// FILE_INFORMATION_CLASS POINTER_ALIGNMENT FileInformationClass; //  8: 4 rounded up to 8
/// PFILE_OBJECT ParentOfTarget;                               // 16
/// union { struct { BOOLEAN ReplaceIfExists; BOOLEAN AdvanceOnly; };
///         ULONG ClusterCount; HANDLE DeleteHandle; };        // 24: 8 bytes (the HANDLE)
/// PVOID InfoBuffer;                                          // 32; size 40
/// ```
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(non_snake_case, reason = "the field names of fltKernel.h")]
pub struct SetFileInformation {
    /// The size of `InfoBuffer` in bytes.
    pub Length: u32,
    _align_class: u32,
    /// Which `FILE_*_INFORMATION` structure `InfoBuffer` holds.
    pub FileInformationClass: FILE_INFORMATION_CLASS,
    _align_parent: u32,
    /// For a rename or a link: the directory the target goes into.
    pub ParentOfTarget: *mut FILE_OBJECT,
    /// The anonymous union of the header.
    pub Anonymous: SetFileInformationExtra,
    /// The new information.
    pub InfoBuffer: *mut c_void,
}

/// The anonymous union in [`SetFileInformation`]. Its `BOOLEAN`s are bytes here, not Rust
/// `bool`s, so that any value the system stores in them can be read.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(non_snake_case, reason = "the field names of fltKernel.h")]
pub union SetFileInformationExtra {
    /// `ReplaceIfExists` (rename, link) and `AdvanceOnly` (end of file).
    pub Flags: [u8; 2],
    /// For `FileMoveClusterInformation`.
    pub ClusterCount: u32,
    /// For a delete.
    pub DeleteHandle: HANDLE,
}

const _: () = {
    assert!(offset_of!(SetFileInformation, Length) == 0);
    assert!(offset_of!(SetFileInformation, FileInformationClass) == 8);
    assert!(offset_of!(SetFileInformation, ParentOfTarget) == 16);
    assert!(offset_of!(SetFileInformation, Anonymous) == 24);
    assert!(size_of::<SetFileInformationExtra>() == 8);
    assert!(offset_of!(SetFileInformation, InfoBuffer) == 32);
    assert!(size_of::<SetFileInformation>() == 40);
};

#[cfg(test)]
mod tests {
    use windows_sys::Wdk::Storage::FileSystem::{
        FileEndOfFileInformation, FileStandardInformation, Minifilters::FLT_PARAMETERS,
    };

    use super::{Create, QueryFileInformation, SetFileInformation, Write};

    /// A `Write` filled with the C layout, read back through windows-sys's member: the offset
    /// lands on `Key` and padding, the buffer pointer on `ByteOffset`.
    #[test]
    fn write_view_and_windows_sys_member_disagree() {
        let mut parameters = FLT_PARAMETERS::default();
        let mut data = [0u8; 4];
        // SAFETY: `default()` zeroes the union, so every byte is initialized.
        let write = unsafe { Write::of_mut(&mut parameters) };
        write.Length = 4;
        write.Key = 7;
        write.ByteOffset = 4096;
        write.WriteBuffer = data.as_mut_ptr().cast();
        // SAFETY: all bytes are initialized integers and pointers.
        let windows_sys = unsafe { parameters.Write };
        let (key, offset, buffer) = (
            windows_sys.Key,
            windows_sys.ByteOffset,
            windows_sys.WriteBuffer,
        );
        assert_eq!((key, offset), (0, 7));
        assert_eq!(buffer as usize, 4096);
    }

    /// `SetFileInformation`: windows-sys reads `InfoBuffer` from the union at 24.
    #[test]
    fn set_information_view_and_windows_sys_member_disagree() {
        let mut parameters = FLT_PARAMETERS::default();
        let mut eof = 0i64;
        // SAFETY: `default()` zeroes the union, so every byte is initialized.
        let set = unsafe { SetFileInformation::of_mut(&mut parameters) };
        set.Length = 8;
        set.FileInformationClass = FileEndOfFileInformation;
        set.InfoBuffer = (&raw mut eof).cast();
        // SAFETY: all bytes are initialized integers and pointers.
        let windows_sys = unsafe { parameters.SetFileInformation };
        assert_eq!(windows_sys.FileInformationClass, 0, "C padding");
        assert!(
            windows_sys.InfoBuffer.is_null(),
            "the C union, which is zero"
        );
    }

    /// `Create`: `SecurityContext` and `Options` agree, `ShareAccess` does not.
    #[test]
    fn create_view_shares_only_its_first_two_fields_with_windows_sys() {
        let mut parameters = FLT_PARAMETERS::default();
        // SAFETY: `default()` zeroes the union, so every byte is initialized.
        let create = unsafe { Create::of_mut(&mut parameters) };
        create.Options = 0x0100_0040;
        create.ShareAccess = 3;
        // SAFETY: all bytes are initialized integers and pointers.
        let windows_sys = unsafe { parameters.Create };
        let (options, share) = (windows_sys.Options, windows_sys.ShareAccess);
        assert_eq!(options, 0x0100_0040);
        assert_eq!(
            share, 0,
            "C padding at 14; the header's ShareAccess is at 18"
        );
    }

    /// The view writes where the C header puts the fields, which is not where windows-sys's
    /// member reads them: the upstream bug this module exists for.
    #[test]
    fn query_view_and_windows_sys_member_disagree() {
        let mut parameters = FLT_PARAMETERS::default();
        let mut buffer = [0u8; 24];
        // SAFETY: `default()` zeroes the union, so every byte is initialized.
        let query = unsafe { QueryFileInformation::of_mut(&mut parameters) };
        query.Length = 24;
        query.FileInformationClass = FileStandardInformation;
        query.InfoBuffer = buffer.as_mut_ptr().cast();
        // SAFETY: all bytes are initialized integers and pointers.
        let windows_sys = unsafe { parameters.QueryFileInformation };
        assert_eq!(windows_sys.Length, 24);
        assert_eq!(windows_sys.FileInformationClass, 0, "C padding");
        assert_eq!(
            windows_sys.InfoBuffer as usize, FileStandardInformation as usize,
            "windows-sys reads the class as the buffer pointer"
        );
    }
}
