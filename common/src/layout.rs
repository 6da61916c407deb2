//! Compile-time checks of every windows-sys structure the samples, `common` or `fltsim` read or
//! write field by field, against the C layout, and the one soundness rule windows-sys's types
//! need at this boundary.
//!
//! # The audit
//! Each `const` block below asserts the offsets of the fields the project uses (most often all
//! of them) and the size, on the 64-bit targets the drivers are built for (`x86_64`, `aarch64`: both
//! LLP64, identical layouts; the host build checks the same numbers). The expected numbers come
//! from the header text and its alignment rules, not from windows-sys:
//!
//! | structure | source of the expected layout | mismatch in windows-sys 0.61 |
//! |---|---|---|
//! | `FLT_PARAMETERS` members | `fltKernel.h`, see [`params`](crate::params) | `Create`, `Read`, `Write`, `QueryFileInformation`, `SetFileInformation` (and others the project does not use): `POINTER_ALIGNMENT` dropped |
//! | `FLT_IO_PARAMETER_BLOCK` | `fltKernel.h` | none |
//! | `FLT_CALLBACK_DATA` | `fltKernel.h` | none in layout; `Iopb` is `*const` where the header has `PFLT_IO_PARAMETER_BLOCK CONST` (a constant pointer to a writable block) |
//! | `FLT_RELATED_OBJECTS` | `fltKernel.h` | none |
//! | `FLT_REGISTRATION` | `fltKernel.h` (the Windows 8 form, with `SectionNotificationCallback`) | none |
//! | `FLT_OPERATION_REGISTRATION` | `fltKernel.h` | none |
//! | `FLT_CONTEXT_REGISTRATION` | `fltKernel.h` | none |
//! | `FLT_FILE_NAME_INFORMATION` | `fltKernel.h` | none |
//! | `IO_STATUS_BLOCK` | `wdm.h` | none |
//! | `IO_SECURITY_CONTEXT` | `wdm.h` | none |
//! | `FILE_OBJECT` | `wdm.h`; the x64 `_FILE_OBJECT` of the Vergilius Project (from the kernel's symbols: 0xd8 bytes, `ReadAccess` 0x4a, `Flags` 0x50, `FileName` 0x58) | none in layout; its eight `BOOLEAN`s are Rust `bool`s |
//! | `FILE_STANDARD_INFORMATION` | `wdm.h` | none in layout; `DeletePending` and `Directory` are Rust `bool`s |
//! | `FILE_INTERNAL_INFORMATION` | `ntifs.h` | none |
//! | `FILE_END_OF_FILE_INFORMATION` | `ntddk.h` | none |
//! | `OBJECT_ATTRIBUTES` | `ntdef.h` (Microsoft's reference page) for the order; the x64 `_OBJECT_ATTRIBUTES` dump of the Terminus Project (`Attributes` 0x18, `SecurityQualityOfService` 0x28) | none |
//! | `UNICODE_STRING` | `ntdef.h` (Microsoft's reference page) for the order; 16 bytes, as `FILE_OBJECT.FileName` (0x58) to `CurrentByteOffset` (0x68) confirms | none |
//! | `EX_RUNDOWN_REF` | `wdm.h` (a union of `ULONG_PTR Count` and `PVOID Ptr`) | none |
//!
//! Headers: the Windows 10 WDK, as vendored in github.com/MuAlphaOmegaEpsilon/wdk-10 (`km/`).
//! Rules: natural alignment (each member aligned to its size, structures to their largest
//! member, sizes rounded up to that alignment); `ULONG`, `NTSTATUS`, `ACCESS_MASK` and enums are
//! 4 bytes, `USHORT`/`CSHORT` 2, `UCHAR`/`BOOLEAN`/`CCHAR` 1, pointers, `HANDLE`, `SIZE_T`,
//! `ULONG_PTR`, `LARGE_INTEGER` and `KSPIN_LOCK` 8. `fltKernel.h`'s `pshpack4.h` applies only when
//! none of `_AMD64_`, `_IA64_`, `_ARM_`, `_ARM64_` is defined, so not on these targets.
//!
//! # `BOOLEAN` is a byte, not a `bool`
//! windows-sys types the C `BOOLEAN` (an `unsigned char`) as Rust `bool`, for which any byte
//! other than 0 or 1 is undefined behaviour. The system stores `TRUE` (1) and `FALSE` (0), but a
//! Rust driver should not stake its soundness on every writer in the kernel: read such fields
//! with [`boolean`], which reads the byte, and pass a `u8` where a function writes a `BOOLEAN`
//! through a pointer. [`file_object`](crate::file_object) reads `FILE_OBJECT`'s that way.

use core::mem::{offset_of, size_of};

use windows_sys::{
    Wdk::{
        Foundation::{FILE_OBJECT, IO_SECURITY_CONTEXT, OBJECT_ATTRIBUTES},
        Storage::FileSystem::{
            FILE_INTERNAL_INFORMATION, FILE_STANDARD_INFORMATION,
            Minifilters::{
                FLT_CALLBACK_DATA, FLT_CONTEXT_REGISTRATION, FLT_FILE_NAME_INFORMATION,
                FLT_IO_PARAMETER_BLOCK, FLT_OPERATION_REGISTRATION, FLT_PARAMETERS,
                FLT_REGISTRATION, FLT_RELATED_OBJECTS,
            },
        },
        System::SystemServices::{EX_RUNDOWN_REF, FILE_END_OF_FILE_INFORMATION},
    },
    Win32::{Foundation::UNICODE_STRING, System::IO::IO_STATUS_BLOCK},
};

/// Reads a field that C declares `BOOLEAN` and windows-sys types `bool`, as the byte it is:
/// nonzero is true.
///
/// # Safety
/// `field` must be valid for a one-byte read (for example `&raw const (*info).DeletePending`,
/// with `info` valid).
#[must_use]
pub unsafe fn boolean(field: *const bool) -> bool {
    // SAFETY: the caller guarantees a readable byte; reading it as u8 accepts every value.
    unsafe { field.cast::<u8>().read() != 0 }
}

// Only 64-bit targets are built; on a 32-bit one these numbers would be wrong, and so would the
// parameter views, so fail there loudly.
const _: () = assert!(
    size_of::<usize>() == 8,
    "the layouts here are the 64-bit ones"
);

/// `FLT_PARAMETERS`: 48 bytes, 8-aligned (see `params`); the views depend on it.
const _: () = {
    assert!(size_of::<FLT_PARAMETERS>() == 48);
    assert!(core::mem::align_of::<FLT_PARAMETERS>() == 8);
};

/// `FLT_IO_PARAMETER_BLOCK`:
/// `ULONG IrpFlags` 0; `UCHAR MajorFunction` 4, `MinorFunction` 5, `OperationFlags` 6,
/// `Reserved` 7; `PFILE_OBJECT TargetFileObject` 8; `PFLT_INSTANCE TargetInstance` 16;
/// `FLT_PARAMETERS Parameters` 24 (48 bytes); size 72.
const _: () = {
    assert!(offset_of!(FLT_IO_PARAMETER_BLOCK, IrpFlags) == 0);
    assert!(offset_of!(FLT_IO_PARAMETER_BLOCK, MajorFunction) == 4);
    assert!(offset_of!(FLT_IO_PARAMETER_BLOCK, MinorFunction) == 5);
    assert!(offset_of!(FLT_IO_PARAMETER_BLOCK, OperationFlags) == 6);
    assert!(offset_of!(FLT_IO_PARAMETER_BLOCK, TargetFileObject) == 8);
    assert!(offset_of!(FLT_IO_PARAMETER_BLOCK, TargetInstance) == 16);
    assert!(offset_of!(FLT_IO_PARAMETER_BLOCK, Parameters) == 24);
    assert!(size_of::<FLT_IO_PARAMETER_BLOCK>() == 72);
};

/// `FLT_CALLBACK_DATA`:
/// `FLT_CALLBACK_DATA_FLAGS Flags` (`ULONG`) 0; `PETHREAD CONST Thread` 8;
/// `PFLT_IO_PARAMETER_BLOCK CONST Iopb` 16; `IO_STATUS_BLOCK IoStatus` 24 (16 bytes);
/// `struct _FLT_TAG_DATA_BUFFER *TagData` 40; union of { `LIST_ENTRY QueueLinks`,
/// `PVOID QueueContext[2]` } and `PVOID FilterContext[4]` 48 (32 bytes);
/// `KPROCESSOR_MODE RequestorMode` (`CCHAR`) 80; size 81 rounded up to 88.
const _: () = {
    assert!(offset_of!(FLT_CALLBACK_DATA, Flags) == 0);
    assert!(offset_of!(FLT_CALLBACK_DATA, Thread) == 8);
    assert!(offset_of!(FLT_CALLBACK_DATA, Iopb) == 16);
    assert!(offset_of!(FLT_CALLBACK_DATA, IoStatus) == 24);
    assert!(offset_of!(FLT_CALLBACK_DATA, TagData) == 40);
    assert!(offset_of!(FLT_CALLBACK_DATA, Anonymous) == 48);
    assert!(offset_of!(FLT_CALLBACK_DATA, RequestorMode) == 80);
    assert!(size_of::<FLT_CALLBACK_DATA>() == 88);
};

/// `IO_STATUS_BLOCK`: union { `NTSTATUS Status`; `PVOID Pointer` } 0 (8 bytes);
/// `ULONG_PTR Information` 8; size 16.
const _: () = {
    assert!(offset_of!(IO_STATUS_BLOCK, Anonymous) == 0);
    assert!(offset_of!(IO_STATUS_BLOCK, Information) == 8);
    assert!(size_of::<IO_STATUS_BLOCK>() == 16);
};

/// `FLT_RELATED_OBJECTS`: `USHORT CONST Size` 0, `TransactionContext` 2; then five `CONST`
/// pointers: `Filter` 8, `Volume` 16, `Instance` 24, `FileObject` 32, `Transaction` 40; size 48.
const _: () = {
    assert!(offset_of!(FLT_RELATED_OBJECTS, Size) == 0);
    assert!(offset_of!(FLT_RELATED_OBJECTS, TransactionContext) == 2);
    assert!(offset_of!(FLT_RELATED_OBJECTS, Filter) == 8);
    assert!(offset_of!(FLT_RELATED_OBJECTS, Volume) == 16);
    assert!(offset_of!(FLT_RELATED_OBJECTS, Instance) == 24);
    assert!(offset_of!(FLT_RELATED_OBJECTS, FileObject) == 32);
    assert!(offset_of!(FLT_RELATED_OBJECTS, Transaction) == 40);
    assert!(size_of::<FLT_RELATED_OBJECTS>() == 48);
};

/// `FLT_REGISTRATION` (`FLT_MGR_LONGHORN` and `FLT_MGR_WIN8` members included, as
/// `FLT_REGISTRATION_VERSION_0203` requires): `USHORT Size` 0, `Version` 2;
/// `FLT_REGISTRATION_FLAGS Flags` (`ULONG`) 4; then 13 pointers from 8: `ContextRegistration`
/// 8, `OperationRegistration` 16, `FilterUnloadCallback` 24, `InstanceSetupCallback` 32,
/// `InstanceQueryTeardownCallback` 40, `InstanceTeardownStartCallback` 48,
/// `InstanceTeardownCompleteCallback` 56, `GenerateFileNameCallback` 64,
/// `NormalizeNameComponentCallback` 72, `NormalizeContextCleanupCallback` 80,
/// `TransactionNotificationCallback` 88, `NormalizeNameComponentExCallback` 96,
/// `SectionNotificationCallback` 104; size 112. `Registration::new` stores `size_of` of it in
/// `Size`, which Filter Manager checks against the version.
const _: () = {
    assert!(offset_of!(FLT_REGISTRATION, Size) == 0);
    assert!(offset_of!(FLT_REGISTRATION, Version) == 2);
    assert!(offset_of!(FLT_REGISTRATION, Flags) == 4);
    assert!(offset_of!(FLT_REGISTRATION, ContextRegistration) == 8);
    assert!(offset_of!(FLT_REGISTRATION, OperationRegistration) == 16);
    assert!(offset_of!(FLT_REGISTRATION, FilterUnloadCallback) == 24);
    assert!(offset_of!(FLT_REGISTRATION, InstanceSetupCallback) == 32);
    assert!(offset_of!(FLT_REGISTRATION, InstanceQueryTeardownCallback) == 40);
    assert!(offset_of!(FLT_REGISTRATION, InstanceTeardownStartCallback) == 48);
    assert!(offset_of!(FLT_REGISTRATION, InstanceTeardownCompleteCallback) == 56);
    assert!(offset_of!(FLT_REGISTRATION, GenerateFileNameCallback) == 64);
    assert!(offset_of!(FLT_REGISTRATION, NormalizeNameComponentCallback) == 72);
    assert!(offset_of!(FLT_REGISTRATION, NormalizeContextCleanupCallback) == 80);
    assert!(offset_of!(FLT_REGISTRATION, TransactionNotificationCallback) == 88);
    assert!(offset_of!(FLT_REGISTRATION, NormalizeNameComponentExCallback) == 96);
    assert!(offset_of!(FLT_REGISTRATION, SectionNotificationCallback) == 104);
    assert!(size_of::<FLT_REGISTRATION>() == 112);
};

/// `FLT_OPERATION_REGISTRATION`: `UCHAR MajorFunction` 0;
/// `FLT_OPERATION_REGISTRATION_FLAGS Flags` (`ULONG`) 4; `PreOperation` 8; `PostOperation` 16;
/// `PVOID Reserved1` 24; size 32.
const _: () = {
    assert!(offset_of!(FLT_OPERATION_REGISTRATION, MajorFunction) == 0);
    assert!(offset_of!(FLT_OPERATION_REGISTRATION, Flags) == 4);
    assert!(offset_of!(FLT_OPERATION_REGISTRATION, PreOperation) == 8);
    assert!(offset_of!(FLT_OPERATION_REGISTRATION, PostOperation) == 16);
    assert!(offset_of!(FLT_OPERATION_REGISTRATION, Reserved1) == 24);
    assert!(size_of::<FLT_OPERATION_REGISTRATION>() == 32);
};

/// `FLT_CONTEXT_REGISTRATION`: `FLT_CONTEXT_TYPE ContextType` (`USHORT`) 0;
/// `FLT_CONTEXT_REGISTRATION_FLAGS Flags` (`USHORT`) 2; `ContextCleanupCallback` 8;
/// `SIZE_T Size` 16; `ULONG PoolTag` 24; `ContextAllocateCallback` 32; `ContextFreeCallback`
/// 40; `PVOID Reserved1` 48; size 56.
const _: () = {
    assert!(offset_of!(FLT_CONTEXT_REGISTRATION, ContextType) == 0);
    assert!(offset_of!(FLT_CONTEXT_REGISTRATION, Flags) == 2);
    assert!(offset_of!(FLT_CONTEXT_REGISTRATION, ContextCleanupCallback) == 8);
    assert!(offset_of!(FLT_CONTEXT_REGISTRATION, Size) == 16);
    assert!(offset_of!(FLT_CONTEXT_REGISTRATION, PoolTag) == 24);
    assert!(offset_of!(FLT_CONTEXT_REGISTRATION, ContextAllocateCallback) == 32);
    assert!(offset_of!(FLT_CONTEXT_REGISTRATION, ContextFreeCallback) == 40);
    assert!(offset_of!(FLT_CONTEXT_REGISTRATION, Reserved1) == 48);
    assert!(size_of::<FLT_CONTEXT_REGISTRATION>() == 56);
};

/// `FLT_FILE_NAME_INFORMATION`: `USHORT Size` 0; `FLT_FILE_NAME_PARSED_FLAGS NamesParsed`
/// (`USHORT`) 2; `FLT_FILE_NAME_OPTIONS Format` (`ULONG`) 4; seven `UNICODE_STRING`s (16 bytes
/// each) from 8: `Name` 8, `Volume` 24, `Share` 40, `Extension` 56, `Stream` 72,
/// `FinalComponent` 88, `ParentDir` 104; size 120.
const _: () = {
    assert!(offset_of!(FLT_FILE_NAME_INFORMATION, Size) == 0);
    assert!(offset_of!(FLT_FILE_NAME_INFORMATION, NamesParsed) == 2);
    assert!(offset_of!(FLT_FILE_NAME_INFORMATION, Format) == 4);
    assert!(offset_of!(FLT_FILE_NAME_INFORMATION, Name) == 8);
    assert!(offset_of!(FLT_FILE_NAME_INFORMATION, Volume) == 24);
    assert!(offset_of!(FLT_FILE_NAME_INFORMATION, Share) == 40);
    assert!(offset_of!(FLT_FILE_NAME_INFORMATION, Extension) == 56);
    assert!(offset_of!(FLT_FILE_NAME_INFORMATION, Stream) == 72);
    assert!(offset_of!(FLT_FILE_NAME_INFORMATION, FinalComponent) == 88);
    assert!(offset_of!(FLT_FILE_NAME_INFORMATION, ParentDir) == 104);
    assert!(size_of::<FLT_FILE_NAME_INFORMATION>() == 120);
};

/// `UNICODE_STRING`: `USHORT Length` 0, `MaximumLength` 2; `PWSTR Buffer` 8; size 16.
const _: () = {
    assert!(offset_of!(UNICODE_STRING, Length) == 0);
    assert!(offset_of!(UNICODE_STRING, MaximumLength) == 2);
    assert!(offset_of!(UNICODE_STRING, Buffer) == 8);
    assert!(size_of::<UNICODE_STRING>() == 16);
};

/// `IO_SECURITY_CONTEXT`: `PSECURITY_QUALITY_OF_SERVICE SecurityQos` 0;
/// `PACCESS_STATE AccessState` 8; `ACCESS_MASK DesiredAccess` 16; `ULONG FullCreateOptions`
/// 20; size 24.
const _: () = {
    assert!(offset_of!(IO_SECURITY_CONTEXT, SecurityQos) == 0);
    assert!(offset_of!(IO_SECURITY_CONTEXT, AccessState) == 8);
    assert!(offset_of!(IO_SECURITY_CONTEXT, DesiredAccess) == 16);
    assert!(offset_of!(IO_SECURITY_CONTEXT, FullCreateOptions) == 20);
    assert!(size_of::<IO_SECURITY_CONTEXT>() == 24);
};

/// `FILE_OBJECT` (the fields used, and the size `fltsim` allocates): `CSHORT Type` 0, `Size` 2;
/// seven pointers from 8 (`DeviceObject`, `Vpb`, `FsContext` 0x18, `FsContext2`,
/// `SectionObjectPointer`, `PrivateCacheMap`); `NTSTATUS FinalStatus` 0x38;
/// `RelatedFileObject` 0x40; eight `BOOLEAN`s from 0x48 (`LockOperation`, `DeletePending`
/// 0x49, `ReadAccess` 0x4a, `WriteAccess` 0x4b, `DeleteAccess` 0x4c, `SharedRead` 0x4d,
/// `SharedWrite` 0x4e, `SharedDelete` 0x4f); `ULONG Flags` 0x50; `UNICODE_STRING FileName`
/// 0x58; ... `FileObjectExtension` 0xd0; size 0xd8. The Vergilius Project's x64 dump gives the
/// same numbers.
const _: () = {
    assert!(offset_of!(FILE_OBJECT, Type) == 0);
    assert!(offset_of!(FILE_OBJECT, Size) == 2);
    assert!(offset_of!(FILE_OBJECT, FsContext) == 0x18);
    assert!(offset_of!(FILE_OBJECT, DeletePending) == 0x49);
    assert!(offset_of!(FILE_OBJECT, ReadAccess) == 0x4a);
    assert!(offset_of!(FILE_OBJECT, WriteAccess) == 0x4b);
    assert!(offset_of!(FILE_OBJECT, DeleteAccess) == 0x4c);
    assert!(offset_of!(FILE_OBJECT, SharedRead) == 0x4d);
    assert!(offset_of!(FILE_OBJECT, SharedWrite) == 0x4e);
    assert!(offset_of!(FILE_OBJECT, SharedDelete) == 0x4f);
    assert!(offset_of!(FILE_OBJECT, Flags) == 0x50);
    assert!(offset_of!(FILE_OBJECT, FileName) == 0x58);
    assert!(offset_of!(FILE_OBJECT, FileObjectExtension) == 0xd0);
    assert!(size_of::<FILE_OBJECT>() == 0xd8);
};

/// `OBJECT_ATTRIBUTES`: `ULONG Length` 0; `HANDLE RootDirectory` 8;
/// `PUNICODE_STRING ObjectName` 0x10; `ULONG Attributes` 0x18; `PVOID SecurityDescriptor`
/// 0x20; `PVOID SecurityQualityOfService` 0x28; size 0x30.
const _: () = {
    assert!(offset_of!(OBJECT_ATTRIBUTES, Length) == 0);
    assert!(offset_of!(OBJECT_ATTRIBUTES, RootDirectory) == 8);
    assert!(offset_of!(OBJECT_ATTRIBUTES, ObjectName) == 0x10);
    assert!(offset_of!(OBJECT_ATTRIBUTES, Attributes) == 0x18);
    assert!(offset_of!(OBJECT_ATTRIBUTES, SecurityDescriptor) == 0x20);
    assert!(offset_of!(OBJECT_ATTRIBUTES, SecurityQualityOfService) == 0x28);
    assert!(size_of::<OBJECT_ATTRIBUTES>() == 0x30);
};

/// `FILE_STANDARD_INFORMATION`: `LARGE_INTEGER AllocationSize` 0, `EndOfFile` 8;
/// `ULONG NumberOfLinks` 16; `BOOLEAN DeletePending` 20, `Directory` 21; size 22 rounded up
/// to 24 (the file system copies, and the query's `Length` must allow, all 24).
const _: () = {
    assert!(offset_of!(FILE_STANDARD_INFORMATION, AllocationSize) == 0);
    assert!(offset_of!(FILE_STANDARD_INFORMATION, EndOfFile) == 8);
    assert!(offset_of!(FILE_STANDARD_INFORMATION, NumberOfLinks) == 16);
    assert!(offset_of!(FILE_STANDARD_INFORMATION, DeletePending) == 20);
    assert!(offset_of!(FILE_STANDARD_INFORMATION, Directory) == 21);
    assert!(size_of::<FILE_STANDARD_INFORMATION>() == 24);
};

/// `FILE_INTERNAL_INFORMATION`: `LARGE_INTEGER IndexNumber` 0; size 8.
/// `FILE_END_OF_FILE_INFORMATION`: `LARGE_INTEGER EndOfFile` 0; size 8.
const _: () = {
    assert!(offset_of!(FILE_INTERNAL_INFORMATION, IndexNumber) == 0);
    assert!(size_of::<FILE_INTERNAL_INFORMATION>() == 8);
    assert!(offset_of!(FILE_END_OF_FILE_INFORMATION, EndOfFile) == 0);
    assert!(size_of::<FILE_END_OF_FILE_INFORMATION>() == 8);
};

/// `EX_RUNDOWN_REF`: union { `ULONG_PTR Count`; `PVOID Ptr` }; size 8. (The samples initialize
/// it statically with `Count: 0` before `ExInitializeRundownProtection`.)
const _: () = {
    assert!(offset_of!(EX_RUNDOWN_REF, Anonymous) == 0);
    assert!(size_of::<EX_RUNDOWN_REF>() == 8);
};

#[cfg(test)]
mod tests {
    use windows_sys::Wdk::Storage::FileSystem::FILE_STANDARD_INFORMATION;

    use super::boolean;

    /// Any byte the system may store in a `BOOLEAN` reads without undefined behaviour.
    #[test]
    fn boolean_reads_any_byte() {
        for (value, expected) in [(0u8, false), (1, true), (0xFF, true)] {
            // 24 bytes, 8-aligned like the structure; byte 20 is `DeletePending`.
            let mut words = [0u64; 3];
            words[2] = u64::from(value) << 32;
            let info = words.as_ptr().cast::<FILE_STANDARD_INFORMATION>();
            // SAFETY: `info` points at 24 bytes; this only computes the field's address.
            let field = unsafe { &raw const (*info).DeletePending };
            // SAFETY: the field is one of those readable bytes. No `FILE_STANDARD_INFORMATION`
            // value is ever formed.
            assert_eq!(unsafe { boolean(field) }, expected);
        }
    }
}
