//! The shape of an I/O request: callback data and its parameter block in one arena block, and
//! the accessors the I/O dispatch (`io`), the file system (`fs`) and the C ABI share.

use windows_sys::{
    Wdk::{
        Foundation::{FILE_OBJECT, IO_SECURITY_CONTEXT},
        Storage::FileSystem::Minifilters::{
            FLT_CALLBACK_DATA, FLT_IO_PARAMETER_BLOCK, FLTFL_CALLBACK_DATA_GENERATED_IO,
            FLTFL_CALLBACK_DATA_IRP_OPERATION,
        },
    },
    Win32::Foundation::NTSTATUS,
};

use crate::state::State;

/// Callback data and everything it points at, in one arena block.
#[repr(C)]
pub(crate) struct CallbackBlock {
    pub(crate) data: FLT_CALLBACK_DATA,
    pub(crate) iopb: FLT_IO_PARAMETER_BLOCK,
    pub(crate) security: IO_SECURITY_CONTEXT,
}

/// Allocates zeroed callback data in the arena, wired to its own parameter block.
pub(crate) fn new_callback_data(
    state: &mut State,
    instance: isize,
    file_object: *mut FILE_OBJECT,
    generated: bool,
) -> *mut FLT_CALLBACK_DATA {
    let block = state
        .arena
        .alloc(std::mem::size_of::<CallbackBlock>(), 0)
        .cast::<CallbackBlock>();
    // SAFETY: the arena block is large enough, 16-byte aligned, zeroed and exclusively ours.
    let b = unsafe { &mut *block };
    b.iopb.TargetInstance = instance;
    b.iopb.TargetFileObject = file_object;
    b.data.Iopb = &raw const b.iopb;
    b.data.Flags = FLTFL_CALLBACK_DATA_IRP_OPERATION
        | if generated {
            FLTFL_CALLBACK_DATA_GENERATED_IO
        } else {
            0
        };
    &raw mut b.data
}

/// The block behind callback data the model allocated.
pub(crate) fn block(data: *mut FLT_CALLBACK_DATA) -> *mut CallbackBlock {
    // `data` is the first field of a `#[repr(C)]` block.
    data.cast()
}

/// Reads the parameter block of callback data.
pub(crate) fn iopb(data: *const FLT_CALLBACK_DATA) -> *mut FLT_IO_PARAMETER_BLOCK {
    // SAFETY: `data` is model-allocated callback data, valid while the operation runs.
    unsafe { (*data).Iopb.cast_mut() }
}

/// Sets the final status of the operation.
pub(crate) fn set_status(data: *mut FLT_CALLBACK_DATA, status: NTSTATUS, information: usize) {
    // SAFETY: `data` is model-allocated callback data, exclusively used by this operation now.
    let d = unsafe { &mut *data };
    d.IoStatus.Anonymous.Status = status;
    d.IoStatus.Information = information;
}

/// The final status of the operation.
pub(crate) fn status(data: *const FLT_CALLBACK_DATA) -> NTSTATUS {
    // SAFETY: `data` is valid callback data.
    let io = unsafe { (*data).IoStatus };
    // SAFETY: `Status` is the member the model and filters write.
    unsafe { io.Anonymous.Status }
}

/// A printable name for a major function.
pub(crate) fn major_name(major: u8) -> &'static str {
    const NAMES: [&str; 28] = [
        "Create",
        "CreateNamedPipe",
        "Close",
        "Read",
        "Write",
        "QueryInformation",
        "SetInformation",
        "QueryEa",
        "SetEa",
        "FlushBuffers",
        "QueryVolumeInformation",
        "SetVolumeInformation",
        "DirectoryControl",
        "FileSystemControl",
        "DeviceControl",
        "InternalDeviceControl",
        "Shutdown",
        "LockControl",
        "Cleanup",
        "CreateMailslot",
        "QuerySecurity",
        "SetSecurity",
        "Power",
        "SystemControl",
        "DeviceChange",
        "QueryQuota",
        "SetQuota",
        "Pnp",
    ];
    NAMES.get(usize::from(major)).copied().unwrap_or("Other")
}
