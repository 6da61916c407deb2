//! The demo folder: which files a sample acts on.
//!
//! A filter sees every open on every volume it is attached to. A sample that queried names, mapped
//! sections or printed a line for each of them would flood the debugger and slow the whole test
//! machine for as long as it is loaded. So, by default, each sample acts only on files inside its
//! demo folder, `%TEMP%\rs-minifilter-demo`, the folder `scripts\Start-SampleDemo.ps1` works in.
//!
//! # The setting
//! One `REG_SZ` value under the service's `Parameters` key, written by the INF
//! (`HKR,"Parameters","DemoFolder",0x00000000,"rs-minifilter-demo"` in the service's `AddReg`
//! section, where `HKR` is the service key):
//!
//! `HKLM\SYSTEM\CurrentControlSet\Services\<service>\Parameters\DemoFolder` = `rs-minifilter-demo`
//!
//! It holds a folder *name*, not a path. A file is in scope when a directory component of the name
//! it was opened by equals that name, without regard to ASCII case:
//! `\Users\me\AppData\Local\Temp\rs-minifilter-demo\eicar.txt` is, `\Users\me\notes.txt` and
//! `\Temp\rs-minifilter-demo` (the folder itself, the last component) are not. Why a name:
//! - `%TEMP%` means nothing to a driver: it is a per-user environment variable, and the driver
//!   runs for every user and for none.
//! - A full path would have to be written as the name the filter can compare without a name query
//!   (below): the volume-relative name the opener used, without the volume. Any opener may spell
//!   the same folder another way (a short 8.3 name, a different case), and the install script
//!   would have to know which volume `%TEMP%` is on. A name survives all of that except 8.3 names.
//!
//! `DriverEntry` reads it once, at `PASSIVE_LEVEL` (as `IoOpenDriverRegistryKey` and
//! `ZwQueryValueKey` require), with [`Scope::load`]: `IoOpenDriverRegistryKey(DriverObject,
//! DriverRegKeyParameters, ...)` opens the `Parameters` key, as Microsoft's driver package
//! isolation guidance asks of a driver, instead of building its path from `RegistryPath`. The
//! page says to provision that key's values from the service-install section's `AddReg` with
//! `HKR` and `Parameters`, which is what the INF does. The call exists from Windows 10, version
//! 1803; the samples' floor is 2004.
//! A value that is missing, or malformed (not `REG_SZ`, empty, longer than [`MAX_FOLDER_CHARS`],
//! not printable ASCII, `.` or `..`, or holding a `\` or `/`), gives the default,
//! [`DEFAULT_FOLDER`], and one debugger line that says why. An administrator changes it with
//! `reg add ...\Parameters /v DemoFolder /d other-folder /f` and a reload of the filter.
//!
//! # Deciding without a name query
//! The scope is decided in **pre-create**, by [`pre_create`], from `FileObject->FileName`: the
//! name the opener passed, which the I/O manager put in the file object before sending the create
//! down. It is read directly; no `FltGetFileNameInformation` (a name query, which may send I/O of
//! its own and allocates the name), no allocation, no log line. Out of scope, `pre_create` returns
//! `FLT_PREOP_SUCCESS_NO_CALLBACK`, so Filter Manager does not even call the sample's post-create
//! for that open. What this costs: one scan of the name, a few hundred bytes at most.
//!
//! What this name cannot see (each one makes a file look *out* of scope, so the sample leaves it
//! alone; none makes the sample act outside its folder):
//! - **relative opens**: with `RelatedFileObject` set, `FileName` is relative to the file or
//!   directory that handle opened (`NtCreateFile` with a `RootDirectory`). An open of `eicar.txt`
//!   relative to a handle on the demo folder has no `rs-minifilter-demo` component.
//! - **short names**: `RS-MIN~1` is the same folder by its 8.3 name.
//! - **opens by file id** (`FILE_OPEN_BY_FILE_ID`): the name is a number.
//! - **a reparse**: a symbolic link or junction into the folder keeps the name the opener used
//!   (the I/O manager replaces it and sends the create again, and pre-create then sees the new
//!   name).
//!
//! The name the sample then logs is the normalized one from `FltGetFileNameInformation`, queried
//! only for files in scope.

use core::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

#[cfg(not(target_os = "windows"))]
use windows_sys::Wdk::System::{Registry::ZwQueryValueKey, SystemServices::ZwClose};
use windows_sys::{
    Wdk::{
        Foundation::DRIVER_OBJECT,
        Storage::FileSystem::Minifilters::{
            FLT_CALLBACK_DATA, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_NO_CALLBACK,
            FLT_PREOP_SUCCESS_WITH_CALLBACK, FLT_RELATED_OBJECTS,
        },
        System::{
            Registry::KeyValuePartialInformation,
            SystemServices::{
                DriverRegKeyParameters, IoOpenDriverRegistryKey, KEY_VALUE_PARTIAL_INFORMATION,
            },
        },
    },
    Win32::{
        Foundation::{
            HANDLE, STATUS_BUFFER_OVERFLOW, STATUS_BUFFER_TOO_SMALL, STATUS_SUCCESS, UNICODE_STRING,
        },
        System::Registry::{KEY_QUERY_VALUE, REG_SZ},
    },
};

#[cfg(target_os = "windows")]
use crate::kernel::ntoskrnl::{ZwClose, ZwQueryValueKey};
use crate::{NtStatus, log};

/// The folder name used when the registry gives none: the one `Start-SampleDemo.ps1` creates
/// under `%TEMP%`.
pub const DEFAULT_FOLDER: &str = "rs-minifilter-demo";

/// The value's name under the service's `Parameters` key.
pub const VALUE_NAME: &str = "DemoFolder";

/// The longest folder name accepted, in characters. Far above any name a user types, and it keeps
/// the value's buffer on `DriverEntry`'s stack small.
pub const MAX_FOLDER_CHARS: usize = 64;

/// Where [`Scope::load`] found its folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The registry value, well formed.
    Registry,
    /// No value (or no `Parameters` key): the default, with this status.
    Missing(NtStatus),
    /// A value the sample cannot use: the default.
    Malformed(Malformed),
}

/// Why a `DemoFolder` value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Not `REG_SZ`; the type found.
    NotString(u32),
    /// Empty.
    Empty,
    /// More than [`MAX_FOLDER_CHARS`] characters.
    TooLong,
    /// An odd number of bytes: not UTF-16.
    OddLength,
    /// A character outside printable ASCII, a `\` or `/`, or the name `.` or `..`: not one folder
    /// name the scope can compare.
    NotAFolderName,
}

impl core::fmt::Display for Malformed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotString(kind) => write!(f, "type {kind}, not REG_SZ ({REG_SZ})"),
            Self::Empty => f.write_str("empty"),
            Self::TooLong => write!(f, "longer than {MAX_FOLDER_CHARS} characters"),
            Self::OddLength => f.write_str("an odd number of bytes"),
            Self::NotAFolderName => {
                f.write_str("not one folder name (printable ASCII, no \\ or /, not . or ..)")
            }
        }
    }
}

/// The folder name a sample acts in. A `static`, set in `DriverEntry` before `FltStartFiltering`
/// and read by every create afterwards. Atomics, not a lock: the value is written before any
/// callback can run, and host tests load a driver many times in one process, so it must be
/// settable again (unlike [`InitOnce`](crate::once::InitOnce)).
pub struct Scope {
    len: AtomicUsize,
    chars: [AtomicU16; MAX_FOLDER_CHARS],
}

/// The scope of the driver image: one per driver, since each sample is its own image.
pub static SCOPE: Scope = Scope::new();

impl Default for Scope {
    fn default() -> Self {
        Self::new()
    }
}

impl Scope {
    /// A scope holding [`DEFAULT_FOLDER`].
    #[must_use]
    pub const fn new() -> Self {
        let mut chars = [const { AtomicU16::new(0) }; MAX_FOLDER_CHARS];
        let bytes = DEFAULT_FOLDER.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            chars[i] = AtomicU16::new(bytes[i] as u16);
            i += 1;
        }
        Self {
            len: AtomicUsize::new(DEFAULT_FOLDER.len()),
            chars,
        }
    }

    /// Sets the folder name (already checked by [`parse_value`]).
    fn set(&self, folder: &[u16]) {
        for (slot, &c) in self.chars.iter().zip(folder) {
            slot.store(c, Ordering::Relaxed);
        }
        self.len.store(folder.len(), Ordering::Release);
    }

    /// Sets the default folder name.
    fn set_default(&self) {
        let mut folder = [0u16; MAX_FOLDER_CHARS];
        for (slot, b) in folder.iter_mut().zip(DEFAULT_FOLDER.bytes()) {
            *slot = u16::from(b);
        }
        self.set(&folder[..DEFAULT_FOLDER.len()]);
    }

    /// Whether `name` (a path as an opener passes it, in UTF-16) has a *directory* component equal
    /// to the folder name, without regard to ASCII case. The last component is the file itself.
    #[must_use]
    pub fn contains(&self, name: &[u16]) -> bool {
        let len = self.len.load(Ordering::Acquire);
        let mut components = name.split(|&c| c == u16::from(b'\\')).peekable();
        while let Some(component) = components.next() {
            if components.peek().is_none() {
                return false;
            }
            if component.len() == len
                && component
                    .iter()
                    .zip(&self.chars)
                    .all(|(&c, slot)| fold(c) == fold(slot.load(Ordering::Relaxed)))
            {
                return true;
            }
        }
        false
    }

    /// Whether `name` (UTF-8) is in scope; [`Scope::contains`] for tests and log lines.
    #[must_use]
    pub fn contains_str(&self, name: &str) -> bool {
        let mut buffer = [0u16; 512];
        let mut len = 0;
        for (slot, c) in buffer.iter_mut().zip(name.encode_utf16()) {
            *slot = c;
            len += 1;
        }
        self.contains(&buffer[..len])
    }

    /// Reads `DemoFolder` from the driver's `Parameters` key (`IoOpenDriverRegistryKey` with
    /// `DriverRegKeyParameters`) and sets the scope from it. A missing or malformed value sets
    /// [`DEFAULT_FOLDER`] and prints one line, starting with `tag`, that says why.
    /// `PASSIVE_LEVEL`, in a system thread (`DriverEntry`).
    ///
    /// # Safety
    /// `driver` is `DriverEntry`'s `DriverObject`: the calling driver's own, as the page requires.
    pub unsafe fn load(&self, driver: *const DRIVER_OBJECT, tag: &str) -> Source {
        crate::paged_code!();
        let mut value = ValueBuffer::new();
        // SAFETY: the caller's driver object; `value` is ours.
        let source = match unsafe { query_demo_folder(driver, &mut value) } {
            Err(status) => Source::Missing(status),
            Ok(data) if data.too_long && data.kind == REG_SZ => {
                Source::Malformed(Malformed::TooLong)
            }
            Ok(data) => match parse_value(data.kind, data.bytes) {
                Ok((folder, len)) => {
                    self.set(&folder[..len]);
                    return Source::Registry;
                }
                Err(malformed) => Source::Malformed(malformed),
            },
        };
        self.set_default();
        match source {
            Source::Missing(status) => log!(
                "{tag}: Parameters\\{VALUE_NAME}: not found ({status}): acting only in folders named {DEFAULT_FOLDER}"
            ),
            Source::Malformed(why) => log!(
                "{tag}: Parameters\\{VALUE_NAME}: {why}: acting only in folders named {DEFAULT_FOLDER}"
            ),
            Source::Registry => {}
        }
        source
    }
}

/// ASCII case folding: the folder name is ASCII (see [`Malformed::NotAFolderName`]), and a
/// non-ASCII character of a path never equals an ASCII one, in any case.
fn fold(c: u16) -> u16 {
    if (u16::from(b'a')..=u16::from(b'z')).contains(&c) {
        c - 0x20
    } else {
        c
    }
}

/// Checks a `DemoFolder` value's type and bytes (UTF-16LE, one terminating NUL allowed, as
/// `REG_SZ` values written by an INF or `reg add` carry) and returns the folder name and its
/// length in characters.
///
/// # Errors
/// Why the value is not a folder name.
pub fn parse_value(kind: u32, bytes: &[u8]) -> Result<([u16; MAX_FOLDER_CHARS], usize), Malformed> {
    if kind != REG_SZ {
        return Err(Malformed::NotString(kind));
    }
    if !bytes.len().is_multiple_of(2) {
        return Err(Malformed::OddLength);
    }
    let mut units = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    let mut folder = [0u16; MAX_FOLDER_CHARS];
    let mut len = 0;
    for unit in units.by_ref() {
        if unit == 0 {
            break;
        }
        let Some(slot) = folder.get_mut(len) else {
            return Err(Malformed::TooLong);
        };
        let printable = (0x20..0x7F).contains(&unit);
        if !printable || unit == u16::from(b'\\') || unit == u16::from(b'/') {
            return Err(Malformed::NotAFolderName);
        }
        *slot = unit;
        len += 1;
    }
    // Anything after the first NUL but more NULs is not one string.
    if units.any(|unit| unit != 0) {
        return Err(Malformed::NotAFolderName);
    }
    let dot = u16::from(b'.');
    match &folder[..len] {
        [] => Err(Malformed::Empty),
        [d] | [d, _] if *d == dot && folder[..len].iter().all(|&c| c == dot) => {
            Err(Malformed::NotAFolderName)
        }
        _ => Ok((folder, len)),
    }
}

/// The offset of `KEY_VALUE_PARTIAL_INFORMATION.Data`: `TitleIndex`, `Type`, `DataLength`, each a
/// `ULONG`.
const HEADER: usize = core::mem::offset_of!(KEY_VALUE_PARTIAL_INFORMATION, Data);

/// The size of [`ValueBuffer`]: the header, the longest folder name accepted and its NUL.
const VALUE_BUFFER: usize = HEADER + (MAX_FOLDER_CHARS + 1) * 2;

/// A `KEY_VALUE_PARTIAL_INFORMATION` with room for the longest folder name, as bytes aligned as
/// the structure is (4), so the fields are read with `from_le_bytes` and no `unsafe`.
#[repr(C, align(4))]
struct ValueBuffer([u8; VALUE_BUFFER]);

impl ValueBuffer {
    const fn new() -> Self {
        Self([0; VALUE_BUFFER])
    }

    /// The `ULONG` at `offset` of the header.
    fn ulong(&self, offset: usize) -> u32 {
        u32::from_le_bytes([
            self.0[offset],
            self.0[offset + 1],
            self.0[offset + 2],
            self.0[offset + 3],
        ])
    }

    /// `Type`.
    fn kind(&self) -> u32 {
        self.ulong(core::mem::offset_of!(KEY_VALUE_PARTIAL_INFORMATION, Type))
    }

    /// `Data`, `DataLength` bytes of it (at most what the buffer holds).
    fn data(&self) -> &[u8] {
        let len = self.ulong(core::mem::offset_of!(
            KEY_VALUE_PARTIAL_INFORMATION,
            DataLength
        ));
        let len = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(VALUE_BUFFER - HEADER);
        &self.0[HEADER..HEADER + len]
    }
}

/// A value as the registry returned it.
struct Value<'a> {
    kind: u32,
    bytes: &'a [u8],
    /// The data did not fit the buffer (`STATUS_BUFFER_OVERFLOW`): longer than any name accepted.
    too_long: bool,
}

/// A key handle that `ZwClose` closes when it drops.
struct Key(HANDLE);

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: a handle `IoOpenDriverRegistryKey` returned to us and nobody else closes (the
        // page: "The driver must call ZwClose").
        let _ = unsafe { ZwClose(self.0) };
    }
}

/// A counted UTF-16 string of an ASCII literal, built on the stack.
struct Utf16Name<const N: usize>([u16; N]);

impl<const N: usize> Utf16Name<N> {
    const fn new(text: &str) -> Self {
        let bytes = text.as_bytes();
        assert!(bytes.len() == N, "N is the text's length");
        let mut units = [0u16; N];
        let mut i = 0;
        while i < N {
            units[i] = bytes[i] as u16;
            i += 1;
        }
        Self(units)
    }

    fn unicode(&self) -> UNICODE_STRING {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "the names are ten characters"
        )]
        let bytes = (N * 2) as u16;
        UNICODE_STRING {
            Length: bytes,
            MaximumLength: bytes,
            Buffer: self.0.as_ptr().cast_mut(),
        }
    }
}

/// Opens the driver's `Parameters` key and reads `DemoFolder` into `buffer`.
///
/// # Safety
/// `driver` is the calling driver's own driver object.
unsafe fn query_demo_folder(
    driver: *const DRIVER_OBJECT,
    buffer: &mut ValueBuffer,
) -> Result<Value<'_>, NtStatus> {
    const VALUE: Utf16Name<10> = Utf16Name::new(VALUE_NAME);
    let mut handle: HANDLE = core::ptr::null_mut();
    // SAFETY: the caller's own driver object; a local out pointer; `Flags` zero, as the page
    // says. PASSIVE_LEVEL, in DriverEntry's system thread. The handle is a kernel handle.
    let opened = unsafe {
        IoOpenDriverRegistryKey(
            driver,
            DriverRegKeyParameters,
            KEY_QUERY_VALUE,
            0,
            &raw mut handle,
        )
    };
    if opened != STATUS_SUCCESS {
        return Err(NtStatus(opened));
    }
    let parameters = Key(handle);
    let value_name = VALUE.unicode();
    let mut returned = 0u32;
    #[allow(clippy::cast_possible_truncation, reason = "a 142-byte buffer")]
    let size = VALUE_BUFFER as u32;
    // SAFETY: an open key, a local name, and `buffer`, `size` bytes we own, for the call.
    let status = unsafe {
        ZwQueryValueKey(
            parameters.0,
            &raw const value_name,
            KeyValuePartialInformation,
            buffer.0.as_mut_ptr().cast(),
            size,
            &raw mut returned,
        )
    };
    match status {
        STATUS_SUCCESS => {}
        // The value is longer than the longest name accepted. The buffer holds the header, so
        // the type is there.
        STATUS_BUFFER_OVERFLOW | STATUS_BUFFER_TOO_SMALL => {
            return Ok(Value {
                kind: buffer.kind(),
                bytes: &[],
                too_long: true,
            });
        }
        other => return Err(NtStatus(other)),
    }
    let bytes = buffer.data();
    Ok(Value {
        kind: buffer.kind(),
        bytes,
        too_long: false,
    })
}

/// A pre-create callback for `IRP_MJ_CREATE`: lets the sample's post-create run only for opens in
/// [`SCOPE`] (see the module doc). Out of scope, it returns `FLT_PREOP_SUCCESS_NO_CALLBACK`, so
/// nothing else of the sample runs for that open. Reads `FileObject->FileName` only.
///
/// # Safety
/// Called by Filter Manager as a pre-operation callback for `IRP_MJ_CREATE`.
pub unsafe extern "system" fn pre_create(
    _data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *mut *mut core::ffi::c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    // SAFETY: valid related objects for the callback's duration.
    let file_object = unsafe { (*objects).FileObject };
    // SAFETY: the file object of the create in progress; its `FileName` is the opened name.
    if unsafe { in_scope(file_object) } {
        FLT_PREOP_SUCCESS_WITH_CALLBACK
    } else {
        FLT_PREOP_SUCCESS_NO_CALLBACK
    }
}

/// Whether the name in `FileObject->FileName` is in [`SCOPE`].
///
/// # Safety
/// `file_object` is the file object of a create in progress (in pre-create, where `FileName` is
/// the name the opener passed).
#[must_use]
pub unsafe fn in_scope(file_object: *const windows_sys::Wdk::Foundation::FILE_OBJECT) -> bool {
    if file_object.is_null() {
        return false;
    }
    // SAFETY: the caller's file object; only the field's address is computed.
    let field = unsafe { &raw const (*file_object).FileName };
    // SAFETY: the `UNICODE_STRING` inside the allocated file object.
    let name = unsafe { field.read() };
    if name.Buffer.is_null() || name.Length == 0 {
        return false;
    }
    // SAFETY: a counted string set by the I/O manager: `Length` bytes of UTF-16 at `Buffer`, valid
    // while the create is in progress.
    let units = unsafe { core::slice::from_raw_parts(name.Buffer, usize::from(name.Length) / 2) };
    SCOPE.contains(units)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    fn scope_of(folder: &str) -> Scope {
        let scope = Scope::new();
        let (units, len) = parse_value(REG_SZ, &utf16le(folder)).unwrap();
        scope.set(&units[..len]);
        scope
    }

    #[test]
    fn the_default_is_the_demo_folder() {
        let scope = Scope::new();
        assert!(scope.contains_str("\\Users\\me\\AppData\\Local\\Temp\\rs-minifilter-demo\\a.txt"));
        assert!(scope.contains_str("\\TEMP\\RS-MINIFILTER-DEMO\\a.txt"));
        assert!(!scope.contains_str("\\Temp\\rs-minifilter-demo"));
        assert!(!scope.contains_str("\\Temp\\rs-minifilter-demo-2\\a.txt"));
        assert!(!scope.contains_str("\\Temp\\x-rs-minifilter-demo\\a.txt"));
        assert!(!scope.contains_str("\\docs\\a.txt"));
        assert!(!scope.contains_str(""));
    }

    #[test]
    fn a_configured_folder_replaces_the_default() {
        let scope = scope_of("docs");
        assert!(scope.contains_str("\\docs\\a.txt"));
        assert!(scope.contains_str("\\Docs\\sub\\a.txt"));
        assert!(!scope.contains_str("\\rs-minifilter-demo\\a.txt"));
        scope.set_default();
        assert!(scope.contains_str("\\rs-minifilter-demo\\a.txt"));
        assert!(!scope.contains_str("\\docs\\a.txt"));
    }

    #[test]
    fn values_are_checked() {
        let ok = |text: &str| parse_value(REG_SZ, &utf16le(text)).map(|(_, len)| len);
        assert_eq!(ok("docs"), Ok(4));
        assert_eq!(ok("docs\0"), Ok(4));
        assert_eq!(ok("docs\0\0"), Ok(4));
        assert_eq!(ok(&"a".repeat(MAX_FOLDER_CHARS)), Ok(MAX_FOLDER_CHARS));
        assert_eq!(ok(""), Err(Malformed::Empty));
        assert_eq!(ok("\0"), Err(Malformed::Empty));
        assert_eq!(
            ok(&"a".repeat(MAX_FOLDER_CHARS + 1)),
            Err(Malformed::TooLong)
        );
        for bad in ["a\\b", "a/b", ".", "..", "caf\u{e9}", "a\tb", "a\0b"] {
            assert_eq!(ok(bad), Err(Malformed::NotAFolderName), "{bad:?}");
        }
        assert_eq!(ok("..."), Ok(3));
        assert_eq!(parse_value(REG_SZ, b"abc"), Err(Malformed::OddLength));
        assert_eq!(parse_value(4, &[1, 0, 0, 0]), Err(Malformed::NotString(4)));
    }
}
