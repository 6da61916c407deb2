use super::{
    declared_version, precheck,
    tables::{IRP_MJ, budget_row, callback_row, fault_line, faults_row},
};

/// A budget line becomes a row; one over budget names the callback, its length and why.
#[test]
fn budget_rows() {
    let (row, failure) = budget_row("0x4\tpre\t64\t19\t100\t0\tok");
    assert_eq!(
        row,
        "0x4                      pre      64     19    100         0  ok"
    );
    assert_eq!(failure, None);
    let (row, failure) =
        budget_row("0x0\tpre\t256\t3000\t2710\t1\tFAIL: 3000 instructions, budget 2710");
    assert!(
        row.ends_with("FAIL: 3000 instructions, budget 2710"),
        "{row}"
    );
    assert_eq!(
        failure.as_deref(),
        Some(
            "out-of-scope budget: pre-operation callback for IRP_MJ_CREATE, a file outside the demo folder, 256 characters: 3000 instructions, budget 2710"
        )
    );
    assert!(budget_row("short").1.is_some());
}

/// The sweep's summary is one aligned row; a failed fault run names the callback, the path,
/// the export and which of its calls failed.
#[test]
fn fault_lines() {
    assert_eq!(
        faults_row("22\t21\t1\t0"),
        "      22     21      1           0"
    );
    assert_eq!(
        fault_line("in\t0x0\tpost\tExAllocatePool2\t1\tname pair unbalanced (+1)"),
        "post-operation callback for IRP_MJ_CREATE, a file inside the demo folder, call 1 of ExAllocatePool2 failing: name pair unbalanced (+1)"
    );
    assert_eq!(
        fault_line("-\tInstanceSetup\t-\tFltAllocateContext\t1\tcontext imbalance +1"),
        "InstanceSetupCallback, call 1 of FltAllocateContext failing: context imbalance +1"
    );
    assert!(fault_line("x").starts_with("malformed fault line"));
}

/// A harness callback line becomes one aligned row; a failed one shows `FAIL` and gives the
/// line that names the callback and what failed; a malformed one is shown, and fails.
#[test]
fn callback_rows() {
    assert_eq!(
        callback_row("out\t0x0\tpre\t12\t0\t0x1\tok"),
        (
            "out    0x0                      pre       12     0        0x1  ok".to_owned(),
            None
        )
    );
    let (row, failure) = callback_row("in\t0x12\tpost\t34\t2\t-\tFAIL: name pair unbalanced (+1)");
    assert_eq!(
        row,
        "in     0x12                     post      34     2          -  FAIL"
    );
    assert_eq!(
        failure.as_deref(),
        Some(
            "post-operation callback for IRP_MJ_CLEANUP, a file inside the demo folder: name pair unbalanced (+1)"
        )
    );
    let (row, failure) = callback_row("out\t0x7f\tpre\t1\t0\t0x9\tFAIL: returned 0x9");
    assert!(row.ends_with("FAIL"), "{row}");
    assert!(failure.is_some_and(|f| f.starts_with("pre-operation callback for major 0x7f")));
    let (row, failure) = callback_row("-\tSectionNotification\t-\t9\t1\t0x1\tFAIL: returned 0x1");
    assert!(row.ends_with("FAIL"), "{row}");
    assert_eq!(
        failure.as_deref(),
        Some("SectionNotificationCallback: returned 0x1")
    );
    let (row, failure) = callback_row("garbled\tline");
    assert_eq!(row, "garbled line");
    assert_eq!(
        failure.as_deref(),
        Some("malformed harness line: garbled line")
    );
}

/// The major-function names are wdm.h's values, as windows-sys has them.
#[test]
fn irp_major_names_match_windows_sys() {
    use windows_sys::Wdk::System::SystemServices as s;
    macro_rules! names {
        ($($c:ident),*) => { [$((stringify!($c), s::$c)),*] };
    }
    let sdk = names!(
        IRP_MJ_CREATE,
        IRP_MJ_CREATE_NAMED_PIPE,
        IRP_MJ_CLOSE,
        IRP_MJ_READ,
        IRP_MJ_WRITE,
        IRP_MJ_QUERY_INFORMATION,
        IRP_MJ_SET_INFORMATION,
        IRP_MJ_QUERY_EA,
        IRP_MJ_SET_EA,
        IRP_MJ_FLUSH_BUFFERS,
        IRP_MJ_QUERY_VOLUME_INFORMATION,
        IRP_MJ_SET_VOLUME_INFORMATION,
        IRP_MJ_DIRECTORY_CONTROL,
        IRP_MJ_FILE_SYSTEM_CONTROL,
        IRP_MJ_DEVICE_CONTROL,
        IRP_MJ_INTERNAL_DEVICE_CONTROL,
        IRP_MJ_SHUTDOWN,
        IRP_MJ_LOCK_CONTROL,
        IRP_MJ_CLEANUP,
        IRP_MJ_CREATE_MAILSLOT,
        IRP_MJ_QUERY_SECURITY,
        IRP_MJ_SET_SECURITY,
        IRP_MJ_POWER,
        IRP_MJ_SYSTEM_CONTROL,
        IRP_MJ_DEVICE_CHANGE,
        IRP_MJ_QUERY_QUOTA,
        IRP_MJ_SET_QUOTA,
        IRP_MJ_PNP
    );
    assert_eq!(sdk.len(), IRP_MJ.len());
    for (name, value) in sdk {
        let index = usize::try_from(value).expect("a small major function");
        assert_eq!(
            Some(name),
            IRP_MJ.get(index).map(|n| format!("IRP_MJ_{n}")).as_deref()
        );
    }
}

/// The table `NAME = {` ... `}` in `xtask/emulate/harness.py`, as (key, value) pairs: one
/// `"KEY": 0xNN,` per line.
fn harness_table(name: &str) -> Vec<(String, u64)> {
    let text = include_str!("../../emulate/harness.py");
    let start = text
        .find(&format!("\n{name} = {{\n"))
        .unwrap_or_else(|| panic!("harness.py has a {name} table"));
    let body = &text[start + 1..];
    let body = &body[..body.find("\n}").expect("the table ends with }")];
    body.lines()
        .skip(1)
        .map(|line| {
            let (key, value) = line
                .trim()
                .trim_end_matches(',')
                .split_once(": ")
                .unwrap_or_else(|| panic!("{name} line {line:?} is not \"KEY\": 0xNN,"));
            let hex = value.strip_prefix("0x").expect("a hex value");
            (
                key.trim_matches('"').to_owned(),
                u64::from_str_radix(hex, 16).expect("a hex value"),
            )
        })
        .collect()
}

/// Every entry of the harness's table `name` is in `expected` with the same value, and every
/// entry of `expected` is in the table.
fn same_entries(name: &str, expected: &[(&str, u64)]) {
    let harness = harness_table(name);
    for (key, value) in &harness {
        let want = expected.iter().find(|(k, _)| k == key).map(|&(_, v)| v);
        assert_eq!(want, Some(*value), "harness.py {name} {key}");
    }
    for (key, _) in expected {
        assert!(
            harness.iter().any(|(k, _)| k == key),
            "harness.py {name} lacks {key}"
        );
    }
}

/// The harness's `CONSTANTS` are windows-sys's values of the same names (NTSTATUS values as
/// their 32-bit patterns).
#[test]
// Every value is a small unsigned number or an NTSTATUS bit pattern.
#[allow(clippy::cast_sign_loss, clippy::cast_lossless)]
fn constants_match_windows_sys() {
    use windows_sys::{
        Wdk::{
            Storage::FileSystem::{self as wfs, Minifilters as m},
            System::{Registry as r, SystemServices as ss},
        },
        Win32::{
            Foundation as f,
            Storage::{FileSystem as fs, InstallableFileSystems as ifs},
            System::{Ioctl as io, Registry as wr},
        },
    };
    macro_rules! constants {
        ($($m:ident :: $c:ident),*) => {
            vec![$((stringify!($c), u64::from($m::$c as u32))),*]
        };
    }
    let sdk = constants!(
        f::STATUS_SUCCESS,
        f::STATUS_BUFFER_OVERFLOW,
        f::STATUS_OBJECT_NAME_NOT_FOUND,
        f::STATUS_NOT_FOUND,
        f::STATUS_INVALID_PARAMETER,
        f::STATUS_FLT_CONTEXT_ALREADY_DEFINED,
        f::STATUS_FLT_INVALID_NAME_REQUEST,
        f::STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND,
        f::STATUS_FLT_CONTEXT_ALREADY_LINKED,
        r::KeyValuePartialInformation,
        ss::DriverRegKeyParameters,
        wr::REG_SZ,
        fs::FILE_READ_DATA,
        ss::IRP_MJ_CREATE,
        m::IRP_MJ_OPERATION_END,
        m::FLT_CONTEXT_END,
        m::FLT_FILE_NAME_NORMALIZED,
        m::FLT_FILE_NAME_OPENED,
        m::FLT_SET_CONTEXT_KEEP_IF_EXISTS,
        m::FLT_PREOP_DISALLOW_FSFILTER_IO,
        m::FLT_POSTOP_DISALLOW_FSFILTER_IO,
        f::STATUS_END_OF_FILE,
        f::STATUS_VIRUS_INFECTED,
        m::FLT_SECTION_CONTEXT,
        m::FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT,
        io::FILE_DEVICE_DISK_FILE_SYSTEM,
        ifs::FLT_FSTYPE_NTFS,
        m::FLTFL_INSTANCE_TEARDOWN_MANUAL,
        m::FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD,
        ss::MM_COPY_MEMORY_VIRTUAL,
        ss::IRP_MJ_WRITE,
        ss::IRP_NOCACHE,
        f::STATUS_PENDING,
        f::STATUS_INFO_LENGTH_MISMATCH,
        ss::IRP_MJ_QUERY_INFORMATION,
        wfs::FileStandardInformation,
        wfs::FileInternalInformation,
        m::FLT_PREOP_COMPLETE,
        m::FLT_PREOP_SUCCESS_NO_CALLBACK,
        f::STATUS_INSUFFICIENT_RESOURCES,
        f::STATUS_FLT_DELETING_OBJECT,
        f::STATUS_NOT_SUPPORTED,
        f::STATUS_IN_PAGE_ERROR
    );
    same_entries("CONSTANTS", &sdk);
}

/// The harness's offsets are windows-sys's: the C layouts of fltKernel.h and wdm.h, which
/// windows-sys generates from the Windows metadata (x64 and the host agree: every field is
/// a fixed-size integer or a pointer).
#[test]
fn layout_matches_windows_sys() {
    use core::mem::{offset_of, size_of};
    use windows_sys::{
        Wdk::{
            Foundation::{FILE_OBJECT, IO_SECURITY_CONTEXT, OBJECT_ATTRIBUTES},
            Storage::FileSystem::Minifilters::{
                FLT_CALLBACK_DATA, FLT_CONTEXT_REGISTRATION, FLT_FILE_NAME_INFORMATION,
                FLT_IO_PARAMETER_BLOCK, FLT_OPERATION_REGISTRATION, FLT_PARAMETERS_0,
                FLT_REGISTRATION, FLT_RELATED_OBJECTS,
            },
            Storage::FileSystem::{FILE_INTERNAL_INFORMATION, FILE_STANDARD_INFORMATION},
            System::SystemServices::KEY_VALUE_PARTIAL_INFORMATION,
        },
        Win32::{Foundation::UNICODE_STRING, System::IO::IO_STATUS_BLOCK},
    };
    macro_rules! table {
        ($($t:ident . $f:ident),* ; $($s:ident),*) => {
            vec![
                $((concat!(stringify!($t), ".", stringify!($f)), offset_of!($t, $f)),)*
                $((concat!("sizeof ", stringify!($s)), size_of::<$s>()),)*
            ]
        };
    }
    let rust: Vec<(&str, usize)> = table!(
        FLT_REGISTRATION.Size, FLT_REGISTRATION.Version, FLT_REGISTRATION.Flags,
        FLT_REGISTRATION.ContextRegistration, FLT_REGISTRATION.OperationRegistration,
        FLT_REGISTRATION.FilterUnloadCallback, FLT_REGISTRATION.InstanceSetupCallback,
        FLT_REGISTRATION.InstanceQueryTeardownCallback,
        FLT_REGISTRATION.InstanceTeardownStartCallback,
        FLT_REGISTRATION.InstanceTeardownCompleteCallback,
        FLT_REGISTRATION.SectionNotificationCallback,
        FLT_OPERATION_REGISTRATION.MajorFunction, FLT_OPERATION_REGISTRATION.Flags,
        FLT_OPERATION_REGISTRATION.PreOperation, FLT_OPERATION_REGISTRATION.PostOperation,
        FLT_CONTEXT_REGISTRATION.ContextType, FLT_CONTEXT_REGISTRATION.ContextCleanupCallback,
        FLT_CALLBACK_DATA.Flags, FLT_CALLBACK_DATA.Thread, FLT_CALLBACK_DATA.Iopb,
        FLT_CALLBACK_DATA.IoStatus,
        FLT_IO_PARAMETER_BLOCK.IrpFlags, FLT_IO_PARAMETER_BLOCK.MajorFunction,
        FLT_IO_PARAMETER_BLOCK.MinorFunction, FLT_IO_PARAMETER_BLOCK.OperationFlags,
        FLT_IO_PARAMETER_BLOCK.TargetFileObject, FLT_IO_PARAMETER_BLOCK.TargetInstance,
        FLT_IO_PARAMETER_BLOCK.Parameters,
        FLT_PARAMETERS_0.SecurityContext, IO_SECURITY_CONTEXT.DesiredAccess,
        FLT_RELATED_OBJECTS.Size, FLT_RELATED_OBJECTS.Filter, FLT_RELATED_OBJECTS.Volume,
        FLT_RELATED_OBJECTS.Instance, FLT_RELATED_OBJECTS.FileObject,
        FILE_OBJECT.ReadAccess, FILE_OBJECT.SharedRead, FILE_OBJECT.FileName,
        FLT_FILE_NAME_INFORMATION.Size, FLT_FILE_NAME_INFORMATION.Format,
        FLT_FILE_NAME_INFORMATION.Name, FLT_FILE_NAME_INFORMATION.Volume,
        UNICODE_STRING.Length, UNICODE_STRING.MaximumLength, UNICODE_STRING.Buffer,
        OBJECT_ATTRIBUTES.RootDirectory, OBJECT_ATTRIBUTES.ObjectName,
        KEY_VALUE_PARTIAL_INFORMATION.Type, KEY_VALUE_PARTIAL_INFORMATION.DataLength,
        KEY_VALUE_PARTIAL_INFORMATION.Data, IO_STATUS_BLOCK.Information,
        FILE_STANDARD_INFORMATION.AllocationSize, FILE_STANDARD_INFORMATION.EndOfFile,
        FILE_STANDARD_INFORMATION.NumberOfLinks, FILE_STANDARD_INFORMATION.DeletePending,
        FILE_STANDARD_INFORMATION.Directory, FILE_INTERNAL_INFORMATION.IndexNumber;
        FLT_REGISTRATION, FLT_OPERATION_REGISTRATION, FLT_CONTEXT_REGISTRATION,
        FLT_RELATED_OBJECTS, FLT_FILE_NAME_INFORMATION, FILE_STANDARD_INFORMATION,
        FILE_INTERNAL_INFORMATION
    );
    let rust: Vec<(&str, u64)> = rust
        .into_iter()
        .map(|(k, v)| (k, u64::try_from(v).expect("an offset")))
        .collect();
    same_entries("LAYOUT", &rust);
}

/// The harness's `PARAMETERS` (members of `FLT_PARAMETERS` at fltKernel.h's offsets, which
/// windows-sys does not have) are the offsets `common/src/params.rs` asserts at compile time
/// for its own C-layout declarations.
#[test]
fn parameters_match_common_params() {
    let params = include_str!("../../../common/src/params.rs");
    let table = harness_table("PARAMETERS");
    assert!(!table.is_empty());
    for (key, value) in table {
        let (member, field) = key.split_once('.').expect("MEMBER.FIELD");
        let assertion = format!("assert!(offset_of!({member}, {field}) == {value});");
        assert!(
            params.contains(&assertion),
            "common/src/params.rs does not assert {assertion}"
        );
    }
}

/// A minimal PE32+ image: headers and one section whose raw data is at 0x200 and 0x200
/// long; `len` bytes of it (a whole image is 0x400).
fn image(machine: u16, subsystem: u16, len: usize) -> Vec<u8> {
    let mut d = vec![0u8; 0x400];
    d[..2].copy_from_slice(b"MZ");
    d[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    d[0x40..0x44].copy_from_slice(b"PE\0\0");
    let fh = 0x44;
    d[fh..fh + 2].copy_from_slice(&machine.to_le_bytes());
    d[fh + 2..fh + 4].copy_from_slice(&1u16.to_le_bytes());
    d[fh + 16..fh + 18].copy_from_slice(&0xF0u16.to_le_bytes());
    d[fh + 18..fh + 20].copy_from_slice(&0x22u16.to_le_bytes());
    let oh = fh + 20;
    d[oh..oh + 2].copy_from_slice(&0x20bu16.to_le_bytes());
    d[oh + 32..oh + 36].copy_from_slice(&0x1000u32.to_le_bytes()); // SectionAlignment
    d[oh + 36..oh + 40].copy_from_slice(&0x200u32.to_le_bytes()); // FileAlignment
    d[oh + 56..oh + 60].copy_from_slice(&0x2000u32.to_le_bytes()); // SizeOfImage
    d[oh + 60..oh + 64].copy_from_slice(&0x200u32.to_le_bytes()); // SizeOfHeaders
    d[oh + 68..oh + 70].copy_from_slice(&subsystem.to_le_bytes());
    d[oh + 108..oh + 112].copy_from_slice(&16u32.to_le_bytes());
    let sh = oh + 0xF0;
    d[sh..sh + 5].copy_from_slice(b".text");
    d[sh + 8..sh + 12].copy_from_slice(&0x200u32.to_le_bytes());
    d[sh + 12..sh + 16].copy_from_slice(&0x1000u32.to_le_bytes());
    d[sh + 16..sh + 20].copy_from_slice(&0x200u32.to_le_bytes());
    d[sh + 20..sh + 24].copy_from_slice(&0x200u32.to_le_bytes());
    d.truncate(len);
    d
}

#[test]
fn a_whole_native_amd64_image_passes() {
    assert_eq!(precheck(&image(0x8664, 1, 0x400)), Ok(()));
}

#[test]
fn a_truncated_image_is_one_line() {
    let why = precheck(&image(0x8664, 1, 0x300)).expect_err("truncated");
    assert!(why.starts_with("truncated: 768 bytes"), "{why}");
    assert_eq!(why.lines().count(), 1);
}

#[test]
fn arm64_and_non_drivers_and_text_are_refused() {
    let arm = precheck(&image(0xAA64, 1, 0x400)).expect_err("arm64");
    assert!(arm.contains("not AMD64"), "{arm}");
    let gui = precheck(&image(0x8664, 2, 0x400)).expect_err("a GUI image");
    assert_eq!(gui, "not a driver (subsystem is not native)");
    let text = precheck(b"not a driver at all").expect_err("text");
    assert!(text.starts_with("not a 64-bit PE image"), "{text}");
    assert_eq!(text.lines().count(), 1);
}

#[test]
fn the_declared_version_is_read_from_the_registration() {
    let src = "static R: Registration = Registration::new(FLT_REGISTRATION_VERSION_0203)";
    assert_eq!(declared_version(src), Some(0x0203));
    assert_eq!(
        declared_version("Registration::new(FLT_REGISTRATION_VERSION_0202)"),
        Some(0x0202)
    );
    assert_eq!(declared_version("no registration here"), None);
}
