//! Volumes as `InstanceSetup` sees them.

use windows_sys::Win32::Storage::InstallableFileSystems::{
    FLT_FILESYSTEM_TYPE, FLT_FSTYPE_CDFS, FLT_FSTYPE_EXFAT, FLT_FSTYPE_FAT, FLT_FSTYPE_MUP,
    FLT_FSTYPE_NTFS, FLT_FSTYPE_RAW, FLT_FSTYPE_REFS, FLT_FSTYPE_UDFS,
};

/// A name for `InstanceSetup`'s `VolumeFilesystemType`, for log lines: `NTFS`, `ReFS`,
/// `network (MUP)`, ..., or `other` for the types the samples do not name.
#[must_use]
pub fn file_system_name(file_system_type: FLT_FILESYSTEM_TYPE) -> &'static str {
    match file_system_type {
        FLT_FSTYPE_NTFS => "NTFS",
        FLT_FSTYPE_REFS => "ReFS",
        FLT_FSTYPE_FAT => "FAT",
        FLT_FSTYPE_EXFAT => "exFAT",
        FLT_FSTYPE_CDFS => "CDFS",
        FLT_FSTYPE_UDFS => "UDFS",
        FLT_FSTYPE_RAW => "RAW",
        FLT_FSTYPE_MUP => "network (MUP)",
        _ => "other",
    }
}
