//! Object attributes for kernel handles: the one constructor every handle a sample opens or
//! creates starts from.

use windows_sys::{Wdk::Foundation::OBJECT_ATTRIBUTES, Win32::Foundation::OBJ_KERNEL_HANDLE};

/// `InitializeObjectAttributes(&Attributes, NULL, OBJ_KERNEL_HANDLE, NULL, NULL)`: no name, no
/// root directory, no security descriptor. A handle opened or created with them goes into the
/// kernel's handle table, never into the current process's, so that the process cannot use or
/// close it (the `InitializeObjectAttributes` page: a driver that runs outside the system process
/// sets `OBJ_KERNEL_HANDLE`). A named open fills in `ObjectName`, `RootDirectory` and more
/// `Attributes` bits on top (`common::scope`'s registry keys).
#[must_use]
pub fn kernel_handle_attributes() -> OBJECT_ATTRIBUTES {
    OBJECT_ATTRIBUTES {
        // The structure's size, far below u32::MAX.
        Length: u32::try_from(size_of::<OBJECT_ATTRIBUTES>()).unwrap_or(u32::MAX),
        Attributes: OBJ_KERNEL_HANDLE,
        ..OBJECT_ATTRIBUTES::default()
    }
}
