//! `NTSTATUS` with a name.
//!
//! Every log line a sample prints names the status it saw, the way a driver engineer reads them
//! in `WinDbg`: `STATUS_FLT_CONTEXT_ALREADY_DEFINED (0xC01C0002)`. The table below holds every
//! status the samples and the model can meet; anything else prints as bare hex.

use core::fmt;

use windows_sys::Win32::Foundation::NTSTATUS;

/// An `NTSTATUS` value, classified and printable by name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct NtStatus(pub NTSTATUS);

/// The four severities encoded in the top two bits of an `NTSTATUS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// `0b00`: success (`NT_SUCCESS` is true).
    Success,
    /// `0b01`: informational (`NT_SUCCESS` is true).
    Information,
    /// `0b10`: warning (`NT_SUCCESS` is false).
    Warning,
    /// `0b11`: error (`NT_SUCCESS` is false).
    Error,
}

impl NtStatus {
    /// `STATUS_SUCCESS`.
    pub const SUCCESS: Self = Self(0);

    /// The severity field of the status.
    #[must_use]
    pub const fn severity(self) -> Severity {
        // The casts reinterpret the bits; the top two bits are the severity.
        #[allow(clippy::cast_sign_loss)]
        let bits = self.0 as u32;
        match bits >> 30 {
            0 => Severity::Success,
            1 => Severity::Information,
            2 => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// `NT_SUCCESS(status)`: success or informational.
    #[must_use]
    pub const fn is_success(self) -> bool {
        self.0 >= 0
    }

    /// `NT_ERROR(status)`: the error severity.
    #[must_use]
    pub const fn is_error(self) -> bool {
        matches!(self.severity(), Severity::Error)
    }

    /// `Ok(())` on `NT_SUCCESS`, otherwise `Err(self)`, for `?` chains.
    ///
    /// # Errors
    /// Returns the status itself when it is a warning or an error.
    pub const fn ok(self) -> Result<(), Self> {
        if self.is_success() { Ok(()) } else { Err(self) }
    }

    /// The symbolic name, if the status is one the samples know.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        NAMES
            .iter()
            .find(|(value, _)| *value == self.0)
            .map(|(_, name)| *name)
    }
}

impl From<NTSTATUS> for NtStatus {
    fn from(value: NTSTATUS) -> Self {
        Self(value)
    }
}

impl From<NtStatus> for NTSTATUS {
    fn from(value: NtStatus) -> Self {
        value.0
    }
}

impl fmt::Display for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({:#010X})", self.0),
            None => write!(f, "NTSTATUS {:#010X}", self.0),
        }
    }
}

impl fmt::Debug for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

macro_rules! status_names {
    ($($name:ident),* $(,)?) => {
        /// Every status the samples and the model name, with its symbol.
        pub const NAMES: &[(NTSTATUS, &str)] = &[
            $((windows_sys::Win32::Foundation::$name, stringify!($name)),)*
        ];
    };
}

status_names![
    STATUS_SUCCESS,
    STATUS_PENDING,
    STATUS_TIMEOUT,
    STATUS_ALERTED,
    STATUS_FLT_IO_COMPLETE,
    STATUS_UNSUCCESSFUL,
    STATUS_INFO_LENGTH_MISMATCH,
    STATUS_INVALID_INFO_CLASS,
    STATUS_INVALID_HANDLE,
    STATUS_INVALID_PARAMETER,
    STATUS_INVALID_PARAMETER_8,
    STATUS_INVALID_PARAMETER_9,
    STATUS_INVALID_PARAMETER_4,
    STATUS_ACCESS_VIOLATION,
    STATUS_IN_PAGE_ERROR,
    STATUS_INVALID_VIEW_SIZE,
    STATUS_INVALID_DEVICE_REQUEST,
    STATUS_END_OF_FILE,
    STATUS_NO_MEMORY,
    STATUS_INVALID_FILE_FOR_SECTION,
    STATUS_ACCESS_DENIED,
    STATUS_BUFFER_TOO_SMALL,
    STATUS_OBJECT_NAME_NOT_FOUND,
    STATUS_OBJECT_NAME_COLLISION,
    STATUS_OBJECT_PATH_NOT_FOUND,
    STATUS_SHARING_VIOLATION,
    STATUS_FILE_LOCK_CONFLICT,
    STATUS_DELETE_PENDING,
    STATUS_PRIVILEGE_NOT_HELD,
    STATUS_DISK_FULL,
    STATUS_INSUFFICIENT_RESOURCES,
    STATUS_FILE_IS_A_DIRECTORY,
    STATUS_NOT_SUPPORTED,
    STATUS_INVALID_USER_BUFFER,
    STATUS_NOT_A_DIRECTORY,
    STATUS_CANCELLED,
    STATUS_THREAD_IS_TERMINATING,
    STATUS_FILE_DELETED,
    STATUS_FILE_CLOSED,
    STATUS_NOT_FOUND,
    STATUS_USER_MAPPED_FILE,
    STATUS_PURGE_FAILED,
    STATUS_VIRUS_INFECTED,
    STATUS_FLT_NO_HANDLER_DEFINED,
    STATUS_FLT_CONTEXT_ALREADY_DEFINED,
    STATUS_FLT_INVALID_ASYNCHRONOUS_REQUEST,
    STATUS_FLT_INVALID_NAME_REQUEST,
    STATUS_FLT_NOT_SAFE_TO_POST_OPERATION,
    STATUS_FLT_NOT_INITIALIZED,
    STATUS_FLT_FILTER_NOT_READY,
    STATUS_FLT_DELETING_OBJECT,
    STATUS_FLT_DUPLICATE_ENTRY,
    STATUS_FLT_DO_NOT_ATTACH,
    STATUS_FLT_DO_NOT_DETACH,
    STATUS_FLT_INSTANCE_ALTITUDE_COLLISION,
    STATUS_FLT_INVALID_CONTEXT_REGISTRATION,
    STATUS_FLT_NAME_CACHE_MISS,
    STATUS_FLT_CONTEXT_ALREADY_LINKED,
    STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND,
];

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;

    use windows_sys::Win32::Foundation::{
        STATUS_FLT_CONTEXT_ALREADY_DEFINED, STATUS_FLT_IO_COMPLETE, STATUS_NOT_FOUND,
        STATUS_PENDING,
    };

    use super::*;

    #[test]
    fn names_print_with_hex() {
        assert_eq!(
            format!("{}", NtStatus(STATUS_FLT_CONTEXT_ALREADY_DEFINED)),
            "STATUS_FLT_CONTEXT_ALREADY_DEFINED (0xC01C0002)"
        );
        assert_eq!(
            format!("{}", NtStatus::SUCCESS),
            "STATUS_SUCCESS (0x00000000)"
        );
        assert_eq!(format!("{}", NtStatus(0x4000_1234)), "NTSTATUS 0x40001234");
    }

    #[test]
    #[allow(clippy::cast_possible_wrap)]
    fn severity_follows_the_top_two_bits() {
        assert_eq!(NtStatus::SUCCESS.severity(), Severity::Success);
        assert_eq!(NtStatus(STATUS_PENDING).severity(), Severity::Success);
        assert_eq!(
            NtStatus(STATUS_FLT_IO_COMPLETE).severity(),
            Severity::Success
        );
        assert_eq!(NtStatus(0x4000_0000).severity(), Severity::Information);
        assert_eq!(
            NtStatus(0x8000_0005_u32 as i32).severity(),
            Severity::Warning
        );
        assert!(!NtStatus(0x8000_0005_u32 as i32).is_success());
        assert!(!NtStatus(0x8000_0005_u32 as i32).is_error());
        assert_eq!(NtStatus(STATUS_NOT_FOUND).severity(), Severity::Error);
        assert!(NtStatus(STATUS_NOT_FOUND).is_error());
        assert_eq!(
            NtStatus(STATUS_NOT_FOUND).ok(),
            Err(NtStatus(STATUS_NOT_FOUND))
        );
        assert_eq!(NtStatus::SUCCESS.ok(), Ok(()));
    }

    #[test]
    fn every_name_is_unique() {
        for (i, (value, name)) in NAMES.iter().enumerate() {
            assert!(
                NAMES[i + 1..].iter().all(|(v, n)| v != value && n != name),
                "{name} appears twice"
            );
        }
    }
}
