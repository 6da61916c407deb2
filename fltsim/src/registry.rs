//! The registry, as far as a driver reads it: each service's `Parameters` key, and the calls that
//! open it (`IoOpenDriverRegistryKey`, `ZwOpenKey`) and read a value from it (`ZwQueryValueKey`,
//! `ZwClose`).
//!
//! A test writes a value with [`World::set_parameter`](crate::World::set_parameter) before it
//! loads the filter, as the INF's `HKR,"Parameters",...` line does when the package is installed.
//! A service key exists while its filter is loaded (`World::load` gives `DriverEntry` its path);
//! its `Parameters` key exists once a test has written a value in it.
//!
//! Choices where the documentation is silent, or the model is stricter:
//! - **Paths.** `ZwOpenKey` accepts the service key by its full name,
//!   `\REGISTRY\MACHINE\SYSTEM\CurrentControlSet\Services\<service>` (what `DriverEntry`'s
//!   `RegistryPath` holds), and `Parameters` relative to an open service key
//!   (`RootDirectory`), or by full name. Names compare without regard to case only with
//!   `OBJ_CASE_INSENSITIVE`, as the object manager does.
//! - **Handles.** A handle opened without `OBJ_KERNEL_HANDLE` is a finding (it would land in the
//!   handle table of whatever process the thread runs in). A key handle still open when its
//!   filter unloads, a close of something that is not an open key handle, and a key handle given
//!   to another call once closed are findings.
//! - **`IoOpenDriverRegistryKey`** opens `DriverRegKeyParameters` (the service key's
//!   `Parameters` subkey, which the page says an INF provisions with an `AddReg` of `HKR` and
//!   `Parameters` in its service-install section) for the calling driver's own `DriverObject`
//!   only, with `Flags` zero, at `PASSIVE_LEVEL`; anything else is a finding. The other key types
//!   (the persistent-state keys) are not modelled: asking for one is a finding too. The page does
//!   not say what a missing `Parameters` key returns; the model says
//!   `STATUS_OBJECT_NAME_NOT_FOUND`, as `ZwOpenKey` does for a missing key.
//! - **`ZwQueryValueKey`** supports `KeyValuePartialInformation`. A buffer smaller than the
//!   header gives `STATUS_BUFFER_TOO_SMALL`; one too small for the data,
//!   `STATUS_BUFFER_OVERFLOW` with the header filled in; `ResultLength` is the size needed in
//!   both cases (the `ZwQueryValueKey` page).

use std::{
    collections::HashMap,
    ffi::c_void,
    sync::{Mutex, PoisonError},
};

use windows_sys::{
    Wdk::{
        Foundation::{DRIVER_OBJECT, OBJECT_ATTRIBUTES},
        System::{
            Registry::{KEY_VALUE_INFORMATION_CLASS, KeyValuePartialInformation},
            SystemServices::{
                DRIVER_REGKEY_TYPE, DriverRegKeyParameters, KEY_VALUE_PARTIAL_INFORMATION,
            },
        },
    },
    Win32::{
        Foundation::{
            HANDLE, NTSTATUS, OBJ_CASE_INSENSITIVE, OBJ_KERNEL_HANDLE, STATUS_BUFFER_OVERFLOW,
            STATUS_BUFFER_TOO_SMALL, STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER,
            STATUS_OBJECT_NAME_NOT_FOUND, STATUS_SUCCESS, UNICODE_STRING,
        },
        System::Registry::{REG_DWORD, REG_SZ},
    },
};

use crate::{
    World,
    kernel::{Kernel, Status, api_call, current_filter},
};

/// The registry path prefix of every service key.
const SERVICES: &str = "\\REGISTRY\\MACHINE\\SYSTEM\\CURRENTCONTROLSET\\SERVICES\\";

/// Key handles look like this, well apart from the model's other handles.
const KEY_HANDLE_TAG: usize = 0x5245_0000;

/// A registry value, as a test writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegValue {
    /// `REG_SZ`: stored as UTF-16LE with its terminating NUL, as an INF or `reg add` writes it.
    Sz(String),
    /// `REG_DWORD`.
    Dword(u32),
    /// `REG_BINARY`, or any other type with these exact bytes: `(type, bytes)`.
    Raw(u32, Vec<u8>),
}

impl RegValue {
    fn kind_and_bytes(&self) -> (u32, Vec<u8>) {
        match self {
            Self::Sz(text) => (
                REG_SZ,
                text.encode_utf16()
                    .chain([0])
                    .flat_map(u16::to_le_bytes)
                    .collect(),
            ),
            Self::Dword(value) => (REG_DWORD, value.to_le_bytes().to_vec()),
            Self::Raw(kind, bytes) => (*kind, bytes.clone()),
        }
    }
}

/// Which key a handle opened.
#[derive(Clone, Debug)]
enum KeyName {
    /// `...\Services\<service>`, upper case.
    Service(String),
    /// `...\Services\<service>\Parameters`, upper case.
    Parameters(String),
}

struct KeyHandle {
    key: KeyName,
    /// The filter whose code opened it.
    owner: Option<usize>,
    closed: bool,
}

#[derive(Default)]
struct Registry {
    /// Service (upper case) -> value name (upper case) -> value.
    parameters: HashMap<String, HashMap<String, RegValue>>,
    handles: HashMap<usize, KeyHandle>,
    next: usize,
}

/// One registry per process; `World::new` empties it (only one world is alive at a time).
static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn with<R>(body: impl FnOnce(&mut Registry) -> R) -> R {
    let mut guard = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    body(guard.get_or_insert_with(Registry::default))
}

/// Empties the registry: a new machine.
pub(crate) fn reset() {
    *REGISTRY.lock().unwrap_or_else(PoisonError::into_inner) = Some(Registry::default());
}

/// Reports the key handles that the filter `index` (named `name`) left open.
pub(crate) fn check_leaks(k: &Kernel, index: usize, name: &str) {
    let leaked: Vec<String> = with(|registry| {
        registry
            .handles
            .iter()
            .filter(|(_, h)| h.owner == Some(index) && !h.closed)
            .map(|(handle, h)| format!("{handle:#x} ({:?})", h.key))
            .collect()
    });
    for handle in leaked {
        k.violation(format!(
            "{name}: the registry key handle {handle} (IoOpenDriverRegistryKey or ZwOpenKey) was never closed (ZwClose)"
        ));
    }
}

impl World {
    /// Writes `HKLM\SYSTEM\CurrentControlSet\Services\<service>\Parameters\<name>`, as the INF's
    /// `HKR,"Parameters","<name>",...` line does at install. Call it before [`World::load`]: a
    /// driver reads its parameters in `DriverEntry`.
    pub fn set_parameter(&self, service: &str, name: &str, value: RegValue) {
        with(|registry| {
            registry
                .parameters
                .entry(service.to_uppercase())
                .or_default()
                .insert(name.to_uppercase(), value);
        });
    }
}

fn text(name: *const UNICODE_STRING) -> Option<String> {
    if name.is_null() {
        return None;
    }
    // SAFETY: the caller passed a valid counted string (checked non-null).
    let name = unsafe { &*name };
    if name.Buffer.is_null() {
        return Some(String::new());
    }
    // SAFETY: `Length` bytes of UTF-16 at `Buffer`.
    let units = unsafe { std::slice::from_raw_parts(name.Buffer, usize::from(name.Length) / 2) };
    Some(String::from_utf16_lossy(units))
}

/// Whether the loaded filters include `service` (upper case).
fn service_exists(k: &Kernel, service: &str) -> bool {
    k.lock()
        .filters
        .iter()
        .any(|f| f.loaded && f.name.to_uppercase() == service)
}

/// Records a new key handle for `key`, owned by the filter whose code runs, and writes it to `out`.
fn open_handle(key: KeyName, out: *mut HANDLE) {
    let owner = current_filter();
    let handle = with(|r| {
        r.next += 1;
        let handle = KEY_HANDLE_TAG | (r.next << 4);
        r.handles.insert(
            handle,
            KeyHandle {
                key,
                owner,
                closed: false,
            },
        );
        handle
    });
    // SAFETY: the caller's out pointer.
    unsafe { out.write(handle as HANDLE) };
}

/// `IoOpenDriverRegistryKey` (`PASSIVE_LEVEL`, "in the context of a system thread", as
/// `DriverEntry` is): `DriverRegKeyParameters` only (see the module doc).
#[unsafe(no_mangle)]
unsafe extern "system" fn IoOpenDriverRegistryKey(
    driverobject: *const DRIVER_OBJECT,
    regkeytype: DRIVER_REGKEY_TYPE,
    desiredaccess: u32,
    flags: u32,
    driverregkey: *mut HANDLE,
) -> NTSTATUS {
    api_call(
        "IoOpenDriverRegistryKey",
        crate::irql::PASSIVE_LEVEL,
        || format!("{driverobject:p}, key type {regkeytype}, access {desiredaccess:#x}, flags {flags:#x}"),
        |k| {
            if flags != 0 {
                k.violation(format!(
                    "IoOpenDriverRegistryKey: Flags is {flags:#x}; the page says \"Set to zero\""
                ));
                return Status(STATUS_INVALID_PARAMETER);
            }
            if regkeytype != DriverRegKeyParameters {
                k.violation(format!(
                    "IoOpenDriverRegistryKey: key type {regkeytype}: the model opens DriverRegKeyParameters ({DriverRegKeyParameters}) only"
                ));
                return Status(STATUS_INVALID_PARAMETER);
            }
            let caller = current_filter();
            let service = {
                let state = k.lock();
                state
                    .filters
                    .iter()
                    .enumerate()
                    .find(|(_, f)| std::ptr::eq(f.driver, driverobject) && f.loaded)
                    .map(|(index, f)| (index, f.name.to_uppercase()))
            };
            let Some((_, service)) = service.filter(|&(index, _)| Some(index) == caller) else {
                k.violation(
                    "IoOpenDriverRegistryKey: DriverObject is not the calling driver's own, which \
                     the page requires"
                        .into(),
                );
                return Status(STATUS_INVALID_PARAMETER);
            };
            if !with(|r| r.parameters.contains_key(service.as_str())) {
                return Status(STATUS_OBJECT_NAME_NOT_FOUND);
            }
            open_handle(KeyName::Parameters(service), driverregkey);
            Status(STATUS_SUCCESS)
        },
    )
    .0
}

/// `ZwOpenKey` (`PASSIVE_LEVEL`).
#[unsafe(no_mangle)]
unsafe extern "system" fn ZwOpenKey(
    keyhandle: *mut HANDLE,
    desiredaccess: u32,
    objectattributes: *const OBJECT_ATTRIBUTES,
) -> NTSTATUS {
    // SAFETY: the caller passes valid attributes, or null (refused below).
    let attributes = unsafe { objectattributes.as_ref() };
    let name = attributes.and_then(|a| text(a.ObjectName));
    api_call(
        "ZwOpenKey",
        crate::irql::PASSIVE_LEVEL,
        || format!("{name:?}, access {desiredaccess:#x}"),
        |k| {
            let (Some(attributes), Some(name)) = (attributes, name.clone()) else {
                k.violation("ZwOpenKey without ObjectAttributes or ObjectName".into());
                return Status(STATUS_INVALID_PARAMETER);
            };
            if attributes.Attributes & OBJ_KERNEL_HANDLE == 0 {
                k.violation(
                    "ZwOpenKey without OBJ_KERNEL_HANDLE: the key handle lands in the calling \
                     process's handle table"
                        .into(),
                );
            }
            let fold = |s: &str| {
                if attributes.Attributes & OBJ_CASE_INSENSITIVE != 0 {
                    s.to_uppercase()
                } else {
                    s.to_owned()
                }
            };
            let root = attributes.RootDirectory as usize;
            let key = if root == 0 {
                let full = fold(&name);
                let Some(rest) = full.strip_prefix(SERVICES) else {
                    return Status(STATUS_OBJECT_NAME_NOT_FOUND);
                };
                match rest.split_once('\\') {
                    None => KeyName::Service(rest.to_owned()),
                    Some((service, "PARAMETERS")) => KeyName::Parameters(service.to_owned()),
                    Some(_) => return Status(STATUS_OBJECT_NAME_NOT_FOUND),
                }
            } else {
                let parent = with(|r| r.handles.get(&root).map(|h| (h.key.clone(), h.closed)));
                match parent {
                    Some((KeyName::Service(service), false)) if fold(&name) == "PARAMETERS" => {
                        KeyName::Parameters(service)
                    }
                    Some((_, false)) => return Status(STATUS_OBJECT_NAME_NOT_FOUND),
                    _ => {
                        k.violation(format!(
                            "ZwOpenKey: RootDirectory {root:#x} is not an open key handle"
                        ));
                        return Status(STATUS_INVALID_HANDLE);
                    }
                }
            };
            let exists = match &key {
                KeyName::Service(service) => service_exists(k, service),
                KeyName::Parameters(service) => {
                    service_exists(k, service)
                        && with(|r| r.parameters.contains_key(service.as_str()))
                }
            };
            if !exists {
                return Status(STATUS_OBJECT_NAME_NOT_FOUND);
            }
            open_handle(key, keyhandle);
            Status(STATUS_SUCCESS)
        },
    )
    .0
}

/// `ZwQueryValueKey` (`PASSIVE_LEVEL`), `KeyValuePartialInformation` only.
#[unsafe(no_mangle)]
unsafe extern "system" fn ZwQueryValueKey(
    keyhandle: HANDLE,
    valuename: *const UNICODE_STRING,
    keyvalueinformationclass: KEY_VALUE_INFORMATION_CLASS,
    keyvalueinformation: *mut c_void,
    length: u32,
    resultlength: *mut u32,
) -> NTSTATUS {
    let name = text(valuename).unwrap_or_default();
    api_call(
        "ZwQueryValueKey",
        crate::irql::PASSIVE_LEVEL,
        || format!("{:#x}, {name:?}", keyhandle as usize),
        |k| {
            let key = with(|r| r.handles.get(&(keyhandle as usize)).map(|h| (h.key.clone(), h.closed)));
            let service = match key {
                Some((KeyName::Parameters(service), false)) => service,
                Some((KeyName::Service(_), false)) => return Status(STATUS_OBJECT_NAME_NOT_FOUND),
                _ => {
                    k.violation(format!(
                        "ZwQueryValueKey: {:#x} is not an open key handle",
                        keyhandle as usize
                    ));
                    return Status(STATUS_INVALID_HANDLE);
                }
            };
            if keyvalueinformationclass != KeyValuePartialInformation {
                k.violation(format!(
                    "ZwQueryValueKey: the model supports KeyValuePartialInformation only, not {keyvalueinformationclass}"
                ));
                return Status(STATUS_INVALID_PARAMETER);
            }
            let value = with(|r| {
                r.parameters
                    .get(&service)
                    .and_then(|values| values.get(&name.to_uppercase()))
                    .cloned()
            });
            let Some(value) = value else {
                return Status(STATUS_OBJECT_NAME_NOT_FOUND);
            };
            let (kind, bytes) = value.kind_and_bytes();
            let header = std::mem::offset_of!(KEY_VALUE_PARTIAL_INFORMATION, Data);
            let needed = header + bytes.len();
            // SAFETY: the caller's out pointer.
            unsafe { resultlength.write(needed as u32) };
            let length = length as usize;
            if length < header {
                return Status(STATUS_BUFFER_TOO_SMALL);
            }
            let out = keyvalueinformation.cast::<u8>();
            let mut head = [0u8; 12];
            head[4..8].copy_from_slice(&kind.to_le_bytes());
            head[8..12].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
            // SAFETY: the caller's buffer holds `length >= header` bytes.
            unsafe { std::ptr::copy_nonoverlapping(head.as_ptr(), out, header) };
            if length < needed {
                return Status(STATUS_BUFFER_OVERFLOW);
            }
            let data = out.wrapping_add(header);
            // SAFETY: the caller's buffer holds `length >= needed` bytes, so `data` has room for
            // `bytes.len()` of them.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len()) };
            Status(STATUS_SUCCESS)
        },
    )
    .0
}

/// `ZwClose` (`PASSIVE_LEVEL`) of a key handle: the only handles the samples close with it.
#[unsafe(no_mangle)]
unsafe extern "system" fn ZwClose(handle: HANDLE) -> NTSTATUS {
    api_call(
        "ZwClose",
        crate::irql::PASSIVE_LEVEL,
        || format!("{:#x}", handle as usize),
        |k| {
            let closed = with(|r| match r.handles.get_mut(&(handle as usize)) {
                Some(h) if !h.closed => {
                    h.closed = true;
                    true
                }
                _ => false,
            });
            if closed {
                Status(STATUS_SUCCESS)
            } else {
                k.violation(format!(
                    "ZwClose: {:#x} is not an open key handle (the model's ZwClose closes key handles only)",
                    handle as usize
                ));
                Status(STATUS_INVALID_HANDLE)
            }
        },
    )
    .0
}

// The definitions above have windows-sys's signatures (as `abi/`'s `signatures!` checks there).
const _: () = {
    const fn same<T: Copy>(_: T, _: T) {}
    use windows_sys::Wdk::System::{Registry as reg, SystemServices as ss};
    same(
        ss::IoOpenDriverRegistryKey as unsafe extern "system" fn(_, _, _, _, _) -> _,
        IoOpenDriverRegistryKey as unsafe extern "system" fn(_, _, _, _, _) -> _,
    );
    same(
        reg::ZwOpenKey as unsafe extern "system" fn(_, _, _) -> _,
        ZwOpenKey as unsafe extern "system" fn(_, _, _) -> _,
    );
    same(
        reg::ZwQueryValueKey as unsafe extern "system" fn(_, _, _, _, _, _) -> _,
        ZwQueryValueKey as unsafe extern "system" fn(_, _, _, _, _, _) -> _,
    );
    same(
        ss::ZwClose as unsafe extern "system" fn(_) -> _,
        ZwClose as unsafe extern "system" fn(_) -> _,
    );
};
