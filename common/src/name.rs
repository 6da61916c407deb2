//! File names from Filter Manager, released on every path.
//!
//! `FltGetFileNameInformation(Data, NameOptions, &Info)` (IRQL `<= APC_LEVEL`) returns a
//! reference-counted `FLT_FILE_NAME_INFORMATION` that Filter Manager caches and shares between
//! callers: never write to it, and pair every successful call with exactly one
//! `FltReleaseFileNameInformation` (IRQL `<= APC_LEVEL`). [`FileName`] does the release in `Drop`
//! and prints the name, so a log line can say which file it is about.

use core::{fmt, ptr::NonNull};

use windows_sys::{
    Wdk::Storage::FileSystem::Minifilters::{
        FLT_CALLBACK_DATA, FLT_FILE_NAME_INFORMATION, FLT_FILE_NAME_NORMALIZED,
        FLT_FILE_NAME_OPENED, FLT_FILE_NAME_QUERY_DEFAULT, FltGetFileNameInformation,
        FltReleaseFileNameInformation,
    },
    Win32::Foundation::UNICODE_STRING,
};

/// A name returned by `FltGetFileNameInformation`, released with `FltReleaseFileNameInformation`
/// on drop. Drop it at IRQL `<= APC_LEVEL`.
pub struct FileName(NonNull<FLT_FILE_NAME_INFORMATION>);

impl FileName {
    /// Adopts the reference a successful `FltGetFileNameInformation` returned.
    ///
    /// # Safety
    /// `info` must be non-null, come from a successful `FltGetFileNameInformation` (or
    /// `FltGetFileNameInformationUnsafe`), and its reference must not be released by anyone else.
    #[must_use]
    pub unsafe fn from_raw(info: *mut FLT_FILE_NAME_INFORMATION) -> Self {
        // SAFETY: the caller guarantees `info` is non-null.
        Self(unsafe { NonNull::new_unchecked(info) })
    }

    /// The full name, for example `\Device\HarddiskVolume1\docs\a.txt`.
    #[must_use]
    pub fn name(&self) -> Utf16<'_> {
        // SAFETY: we hold a reference, so the block and its `Name` buffer stay valid and
        // unchanged for as long as `self` lives.
        let name = unsafe { &(*self.0.as_ptr()).Name };
        // SAFETY: as above; `Name` is a valid counted string.
        Utf16(unsafe { unicode_string(name) })
    }

    /// `"normalized"` or `"opened"`: which of the two name formats this is (the `Format` member).
    #[must_use]
    pub fn format(&self) -> &'static str {
        // SAFETY: as for `name`.
        match unsafe { (*self.0.as_ptr()).Format } & 0xFF {
            FLT_FILE_NAME_NORMALIZED => "normalized",
            FLT_FILE_NAME_OPENED => "opened",
            _ => "short",
        }
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.name().fmt(f)
    }
}

impl Drop for FileName {
    fn drop(&mut self) {
        // SAFETY: we own one reference to the name block; this is its one release.
        unsafe { FltReleaseFileNameInformation(self.0.as_ptr()) }
    }
}

/// The UTF-16 units of a `UNICODE_STRING` (`Length` is in bytes and need not be terminated).
///
/// # Safety
/// `s.Buffer` must point at `s.Length` readable bytes that stay unchanged for `'a`.
#[must_use]
pub unsafe fn unicode_string<'a>(s: &UNICODE_STRING) -> &'a [u16] {
    if s.Buffer.is_null() || s.Length == 0 {
        return &[];
    }
    // SAFETY: the caller guarantees `Length` readable bytes at `Buffer`; UTF-16 units are 2 bytes.
    unsafe { core::slice::from_raw_parts(s.Buffer, usize::from(s.Length / 2)) }
}

/// UTF-16 text that prints without allocating (unpaired surrogates print as U+FFFD).
#[derive(Clone, Copy)]
pub struct Utf16<'a>(pub &'a [u16]);

impl fmt::Display for Utf16<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in char::decode_utf16(self.0.iter().copied()) {
            fmt::Write::write_char(f, c.unwrap_or(char::REPLACEMENT_CHARACTER))?;
        }
        Ok(())
    }
}

/// How many UTF-16 units a [`CopiedName`] keeps; longer names are cut (and still printed).
pub const COPIED_NAME_UNITS: usize = 160;

/// The name of the file an operation targets, copied so that no reference outlives the call, or
/// the status that explains why there is none. The one file-name type the samples log with: it
/// prints the name, with ` (opened name)` when a normalized name was asked for and only the opened
/// one could be had, or `<name unavailable: STATUS_...>`. Being a copy, it can go where no name
/// can be queried or released: into pool for a completion routine at `DISPATCH_LEVEL`, or into a
/// context.
#[derive(Clone, Copy)]
pub struct CopiedName {
    units: [u16; COPIED_NAME_UNITS],
    len: usize,
    status: crate::NtStatus,
    /// The normalized name was asked for and failed; this is the opened one.
    opened_instead: bool,
}

impl CopiedName {
    /// `FltGetFileNameInformation(Data, FLT_FILE_NAME_OPENED | FLT_FILE_NAME_QUERY_DEFAULT)`,
    /// copied, then released with `FltReleaseFileNameInformation` ([`FileName`]'s drop).
    /// IRQL `<= APC_LEVEL`; not for paging I/O (the name query could recurse into paging).
    ///
    /// # Safety
    /// `data` must be the callback data of the operation in progress.
    #[must_use]
    pub unsafe fn query(data: *const FLT_CALLBACK_DATA) -> Self {
        // SAFETY: the caller's guarantee.
        unsafe { Self::query_as(data, FLT_FILE_NAME_OPENED) }
    }

    /// The normalized name (`FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT`) if Filter
    /// Manager can build it, else the opened name, which prints with ` (opened name)`. A
    /// normalized name can fail where the opened one does not (it may need I/O of its own to
    /// expand short names). IRQL `<= APC_LEVEL`, not for paging I/O.
    ///
    /// # Safety
    /// `data` must be the callback data of the operation in progress.
    #[must_use]
    pub unsafe fn query_normalized(data: *const FLT_CALLBACK_DATA) -> Self {
        // SAFETY: the caller's guarantee.
        let normalized = unsafe { Self::query_as(data, FLT_FILE_NAME_NORMALIZED) };
        if normalized.status.is_success() {
            return normalized;
        }
        // SAFETY: as above.
        let opened = unsafe { Self::query_as(data, FLT_FILE_NAME_OPENED) };
        Self {
            opened_instead: opened.status.is_success(),
            ..opened
        }
    }

    /// One query in `format`, copied and released.
    ///
    /// # Safety
    /// As for [`query`](Self::query).
    unsafe fn query_as(data: *const FLT_CALLBACK_DATA, format: u32) -> Self {
        let mut name = Self {
            units: [0; COPIED_NAME_UNITS],
            len: 0,
            status: crate::NtStatus::SUCCESS,
            opened_instead: false,
        };
        let mut info = core::ptr::null_mut();
        // SAFETY: `data` is the operation's callback data (the caller's contract); `info` is a
        // valid out pointer.
        name.status = crate::NtStatus(unsafe {
            FltGetFileNameInformation(data, format | FLT_FILE_NAME_QUERY_DEFAULT, &raw mut info)
        });
        if name.status.is_success() && !info.is_null() {
            // SAFETY: a successful call returned one reference, which `FileName` releases.
            let info = unsafe { FileName::from_raw(info) };
            let units = info.name().0;
            name.len = units.len().min(COPIED_NAME_UNITS);
            name.units[..name.len].copy_from_slice(&units[..name.len]);
        }
        name
    }

    /// The status of the name query (`STATUS_SUCCESS` when the name is there).
    #[must_use]
    pub fn status(&self) -> crate::NtStatus {
        self.status
    }
}

impl fmt::Display for CopiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.status.is_success() {
            Utf16(&self.units[..self.len]).fmt(f)?;
            if self.opened_instead {
                f.write_str(" (opened name)")?;
            }
            Ok(())
        } else {
            write!(f, "<name unavailable: {}>", self.status)
        }
    }
}
