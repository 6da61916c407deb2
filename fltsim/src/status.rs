//! The model's own `NTSTATUS` type: what [`World`](crate::World)'s operations return and how
//! every finding and trace line names a status.
//!
//! It is deliberately not `crate::status::NtStatus`. The model judges the samples, and `common` is the
//! samples' helper crate: if the model printed or classified statuses through `common`, a wrong
//! name or a wrong success test there would be one the model shares and cannot catch. So the
//! model's table below is its own, built from windows-sys's constants (each name is `stringify!`
//! of the constant it stands beside, so a name cannot drift from its value), and
//! its tests check that it names every status `common` names, the same way.
//! A sample's test may use either type; they print alike, and compare through `.0`.

use std::fmt;

use windows_sys::Win32::Foundation::NTSTATUS;

/// An `NTSTATUS` value, printable by name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct NtStatus(pub NTSTATUS);

impl NtStatus {
    /// `STATUS_SUCCESS`.
    pub const SUCCESS: Self = Self(0);

    /// `NT_SUCCESS(status)` (`ntdef.h`): the severity is success or informational, that is, the
    /// value is not negative.
    #[must_use]
    pub const fn is_success(self) -> bool {
        self.0 >= 0
    }

    /// `Ok(())` on `NT_SUCCESS`, otherwise `Err(self)`.
    ///
    /// # Errors
    /// The status itself, when it is a warning or an error.
    pub const fn ok(self) -> Result<(), Self> {
        if self.is_success() { Ok(()) } else { Err(self) }
    }

    /// The symbolic name, if the status is one the model knows.
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

/// Defines [`NAMES`] from windows-sys constants, each named by its own identifier.
macro_rules! named {
    ($($name:ident),* $(,)?) => {
        /// Every status the model returns, documents or meets, with its symbol.
        pub const NAMES: &[(NTSTATUS, &str)] = &[
            $((windows_sys::Win32::Foundation::$name, stringify!($name)),)*
        ];
    };
}

named![
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
    // Beyond the samples' own table: statuses only the model returns.
    STATUS_BUFFER_OVERFLOW,
    STATUS_CANNOT_DELETE,
    STATUS_DEVICE_NOT_CONNECTED,
    STATUS_FAILED_DRIVER_ENTRY,
    STATUS_FLT_INSTANCE_NOT_FOUND,
    STATUS_INVALID_PARAMETER_5,
    STATUS_MAPPED_ALIGNMENT,
];

#[cfg(test)]
mod tests {
    use super::{NAMES, NtStatus};

    #[test]
    fn every_status_common_names_the_model_names_alike() {
        for &(value, name) in common::status::NAMES {
            assert_eq!(NtStatus(value).name(), Some(name), "{value:#010X}");
            assert_eq!(
                format!("{}", NtStatus(value)),
                format!("{}", common::NtStatus(value))
            );
        }
    }

    #[test]
    fn every_name_is_unique_and_unnamed_values_print_as_hex() {
        for (i, (value, name)) in NAMES.iter().enumerate() {
            assert!(
                NAMES[i + 1..].iter().all(|(v, n)| v != value && n != name),
                "{name} appears twice"
            );
        }
        assert_eq!(format!("{}", NtStatus(0x4000_1234)), "NTSTATUS 0x40001234");
    }

    #[test]
    #[allow(clippy::cast_possible_wrap)]
    fn success_is_the_documented_severity_test() {
        // NT_SUCCESS: success and informational values pass, warnings and errors do not.
        for (value, success) in [
            (0, true),
            (0x0000_0103, true),
            (0x4000_0000, true),
            (0x8000_0005_u32 as i32, false),
            (0xC000_0001_u32 as i32, false),
        ] {
            assert_eq!(NtStatus(value).is_success(), success, "{value:#010X}");
            assert_eq!(NtStatus(value).ok().is_ok(), success);
        }
    }
}
