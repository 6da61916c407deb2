//! Kernel exports that windows-sys declares against the wrong module, redeclared against
//! `ntoskrnl.exe`, plus a few it does not declare under the workspace's features.
//!
//! windows-sys's metadata places `DbgPrintEx`, `ZwClose`, `ZwOpenKey`, `ZwQueryValueKey`,
//! `ZwMapViewOfSection`,
//! `ZwUnmapViewOfSection` (and many other `Zw*`, `Dbg*`, `Rtl*` functions) in `ntdll.dll`. A driver
//! that imports from `ntdll.dll` does not load. These declarations name the same symbols against
//! `ntoskrnl.exe`. Because `common` depends on windows-sys, its import library comes first on the
//! link line, and the linker takes the first definition it meets: so even a sample that calls the
//! windows-sys declaration of one of these names gets the `ntoskrnl.exe` import. (Declared in a
//! leaf sample crate instead, the windows-sys one would win.) `cargo xtask verify` checks the
//! result in every driver's import table.
//!
//! The `#[link]` attribute is applied as windows-sys's `link!` macro applies it: `raw-dylib` on
//! Windows targets (no import library needed), a plain `extern` block elsewhere (`raw-dylib` is
//! error E0455 on other targets), where `fltsim` would define the symbols.

use core::ffi::{c_char, c_void};

use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS};

/// `DPFLTR_IHVDRIVER_ID`: the debug-output component of third-party drivers.
pub const DPFLTR_IHVDRIVER_ID: u32 = 77;

/// `DPFLTR_INFO_LEVEL`: informational output, shown when the component's filter mask allows it.
pub const DPFLTR_INFO_LEVEL: u32 = 3;

#[cfg_attr(
    target_os = "windows",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "C" {
    /// `DbgPrintEx(ComponentId, Level, Format, ...)`: prints a `printf`-style message to the
    /// kernel debugger if the component's filter allows `Level`. Callable at any IRQL.
    ///
    /// # Safety
    ///
    /// `format` is a NUL-terminated string and the variadic arguments match its conversions.
    pub fn DbgPrintEx(component_id: u32, level: u32, format: *const c_char, ...) -> u32;
}

#[allow(
    dead_code,
    reason = "the samples' kernel calls; a sample that calls the windows-sys name gets these"
)]
#[cfg_attr(
    target_os = "windows",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "system" {
    /// `ZwClose(Handle)`: closes a kernel handle. `PASSIVE_LEVEL`.
    ///
    /// # Safety
    ///
    /// `handle` is an open handle the caller owns, in the handle table it belongs to.
    pub fn ZwClose(handle: HANDLE) -> NTSTATUS;

    /// `ZwMapViewOfSection(...)`: maps a view of a section into a process's address space.
    /// `PASSIVE_LEVEL`.
    ///
    /// # Safety
    ///
    /// The handles are valid, and every pointer argument points to writable memory of its type
    /// (`section_offset` may be null).
    pub fn ZwMapViewOfSection(
        section_handle: HANDLE,
        process_handle: HANDLE,
        base_address: *mut *mut c_void,
        zero_bits: usize,
        commit_size: usize,
        section_offset: *mut i64,
        view_size: *mut usize,
        inherit_disposition: i32,
        allocation_type: u32,
        win32_protect: u32,
    ) -> NTSTATUS;

    /// `ZwUnmapViewOfSection(ProcessHandle, BaseAddress)`: unmaps a view that
    /// [`ZwMapViewOfSection`] mapped. `PASSIVE_LEVEL`.
    ///
    /// # Safety
    ///
    /// `base_address` is the base of a view mapped in that process and not yet unmapped.
    pub fn ZwUnmapViewOfSection(process_handle: HANDLE, base_address: *const c_void) -> NTSTATUS;

    /// `ZwOpenKey(KeyHandle, DesiredAccess, ObjectAttributes)`: opens a registry key.
    /// `PASSIVE_LEVEL`.
    ///
    /// # Safety
    ///
    /// `key_handle` points to writable memory; `object_attributes` is valid, with a valid name
    /// and, if set, an open root key handle.
    pub fn ZwOpenKey(
        key_handle: *mut HANDLE,
        desired_access: u32,
        object_attributes: *const windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES,
    ) -> NTSTATUS;

    /// `ZwQueryValueKey(KeyHandle, ValueName, KeyValueInformationClass, KeyValueInformation,
    /// Length, ResultLength)`: reads one value of an open key. `PASSIVE_LEVEL`.
    ///
    /// # Safety
    ///
    /// `key_handle` is an open key; `value_name` is valid; `key_value_information` is `length`
    /// writable bytes; `result_length` points to a writable `u32`.
    pub fn ZwQueryValueKey(
        key_handle: HANDLE,
        value_name: *const windows_sys::Win32::Foundation::UNICODE_STRING,
        key_value_information_class: i32,
        key_value_information: *mut c_void,
        length: u32,
        result_length: *mut u32,
    ) -> NTSTATUS;

    /// `KeBugCheckEx(BugCheckCode, P1, P2, P3, P4)`: stops the system with a bug check. Never
    /// returns. windows-sys declares it only under a feature the workspace does not enable.
    ///
    /// # Safety
    ///
    /// Always safe to call in terms of memory; it halts the machine.
    pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
}
