//! Each rule against in-memory drivers: a good image built with `object`'s PE writer, and variants
//! that differ from it in exactly one respect (the checksum re-fixed afterwards, so that only the
//! rule under test can fail).

use object::{pe, write::pe::Writer};

use super::{Rule, check, fix_checksum, pe_checksum};
use crate::exports::{Arch, WinVer};

/// What the synthetic driver looks like.
#[allow(
    clippy::struct_excessive_bools,
    reason = "one switch per rule under test"
)]
struct Spec {
    imports: Vec<(&'static str, Vec<&'static str>)>,
    export_driver_entry: bool,
    entry_at_export: bool,
    subsystem: u16,
    dll_characteristics: u16,
    text_writable: bool,
    relocs: bool,
    fix_checksum: bool,
    machine: pe::Machine,
    /// One function per entry, with this frame size (a multiple of 16), in `.pdata`; `None`:
    /// no exception directory.
    frames: Option<Vec<u32>>,
    /// The PDB name of the `CodeView` (`RSDS`) debug record; `None`: no debug directory.
    pdb: Option<&'static str>,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            imports: vec![
                ("ntoskrnl.exe", vec!["DbgPrintEx", "memcpy"]),
                ("FLTMGR.SYS", vec!["FltRegisterFilter"]),
            ],
            export_driver_entry: true,
            entry_at_export: true,
            subsystem: pe::IMAGE_SUBSYSTEM_NATIVE.0,
            dll_characteristics: pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT.0
                | pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE.0
                | pe::IMAGE_DLLCHARACTERISTICS_HIGH_ENTROPY_VA.0,
            text_writable: false,
            relocs: true,
            fix_checksum: true,
            machine: pe::IMAGE_FILE_MACHINE_AMD64,
            frames: Some(vec![48, 1024]),
            pdb: Some("test.pdb"),
        }
    }
}

const RDATA_SIZE: u32 = 0x400;

/// A data directory's `(offset in .rdata, size)`.
type Directory = (u32, u32);

/// The `CodeView` record's GUID (little-endian `GUID` bytes) and age in the synthetic images.
const PDB_GUID: [u8; 16] = *b"0123456789abcdef";
const PDB_AGE: u32 = 3;

/// The `.rdata` data directories: imports, exports, exception (`.pdata`) and debug.
struct Directories {
    imports: Directory,
    exports: Option<Directory>,
    pdata: Option<Directory>,
    debug: Option<Directory>,
}

/// Appends `bytes` at the next multiple of `align` and returns their offset.
fn push(buf: &mut Vec<u8>, align: usize, bytes: &[u8]) -> u32 {
    while !buf.len().is_multiple_of(align) {
        buf.push(0);
    }
    let offset = u32::try_from(buf.len()).unwrap();
    buf.extend_from_slice(bytes);
    offset
}

fn put_u32(buf: &mut [u8], at: u32, value: u32) {
    let at = at as usize;
    buf[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// The `.rdata` contents at RVA `base` and file offset `file_offset`, with its directories.
fn rdata(spec: &Spec, base: u32, file_offset: u32, entry: u32) -> (Vec<u8>, Directories) {
    let mut buf = vec![0u8; (spec.imports.len() + 1) * 20];
    for (index, (module, functions)) in spec.imports.iter().enumerate() {
        let name = push(&mut buf, 2, &[module.as_bytes(), b"\0"].concat());
        let hint_names: Vec<u32> = functions
            .iter()
            .map(|f| push(&mut buf, 2, &[&[0u8, 0][..], f.as_bytes(), b"\0"].concat()))
            .collect();
        let thunks: Vec<u8> = hint_names
            .iter()
            .flat_map(|&hn| u64::from(base + hn).to_le_bytes())
            .chain([0u8; 8])
            .collect();
        let lookup = push(&mut buf, 8, &thunks);
        let address = push(&mut buf, 8, &thunks);
        let descriptor = u32::try_from(index * 20).unwrap();
        put_u32(&mut buf, descriptor, base + lookup);
        put_u32(&mut buf, descriptor + 12, base + name);
        put_u32(&mut buf, descriptor + 16, base + address);
    }
    let imports = (0, u32::try_from((spec.imports.len() + 1) * 20).unwrap());

    let exports = spec.export_driver_entry.then(|| {
        let directory = push(&mut buf, 4, &[0u8; 40]);
        let functions = push(&mut buf, 4, &entry.to_le_bytes());
        let dll_name = push(&mut buf, 1, b"test.sys\0");
        let entry_name = push(&mut buf, 1, b"DriverEntry\0");
        let names = push(&mut buf, 4, &(base + entry_name).to_le_bytes());
        let ordinals = push(&mut buf, 2, &0u16.to_le_bytes());
        put_u32(&mut buf, directory + 12, base + dll_name);
        put_u32(&mut buf, directory + 16, 1); // Base
        put_u32(&mut buf, directory + 20, 1); // NumberOfFunctions
        put_u32(&mut buf, directory + 24, 1); // NumberOfNames
        put_u32(&mut buf, directory + 28, base + functions);
        put_u32(&mut buf, directory + 32, base + names);
        put_u32(&mut buf, directory + 36, base + ordinals);
        let end = u32::try_from(buf.len()).unwrap();
        (directory, end - directory)
    });
    let pdata = spec.frames.as_ref().map(|frames| {
        let mut table = Vec::new();
        for &size in frames {
            if spec.machine == pe::IMAGE_FILE_MACHINE_ARM64 {
                // Packed unwind data: flag 1, FrameSize / 16 in bits 23..31.
                table.extend_from_slice(&entry.to_le_bytes());
                table.extend_from_slice(&(1 | ((size / 16) << 23)).to_le_bytes());
            } else {
                // UNWIND_INFO version 1: UWOP_ALLOC_LARGE (size / 8 in the next slot).
                let slot = u16::try_from(size / 8).unwrap().to_le_bytes();
                let info = push(&mut buf, 4, &[1, 4, 2, 0, 4, 0x01, slot[0], slot[1]]);
                table.extend_from_slice(&entry.to_le_bytes());
                table.extend_from_slice(&(entry + 1).to_le_bytes());
                table.extend_from_slice(&(base + info).to_le_bytes());
            }
        }
        let at = push(&mut buf, 4, &table);
        (at, u32::try_from(table.len()).unwrap())
    });
    let debug = spec.pdb.map(|name| {
        // RSDS, GUID, age, the NUL-terminated PDB name.
        let record = [
            &b"RSDS"[..],
            &PDB_GUID,
            &PDB_AGE.to_le_bytes(),
            name.as_bytes(),
            b"\0",
        ]
        .concat();
        let at = push(&mut buf, 4, &record);
        // IMAGE_DEBUG_DIRECTORY: Type at 12, SizeOfData at 16, AddressOfRawData at 20,
        // PointerToRawData at 24.
        let directory = push(&mut buf, 4, &[0u8; 28]);
        put_u32(&mut buf, directory + 12, pe::IMAGE_DEBUG_TYPE_CODEVIEW.0);
        put_u32(
            &mut buf,
            directory + 16,
            u32::try_from(record.len()).unwrap(),
        );
        put_u32(&mut buf, directory + 20, base + at);
        put_u32(&mut buf, directory + 24, file_offset + at);
        (directory, 28)
    });
    assert!(buf.len() <= RDATA_SIZE as usize);
    buf.resize(RDATA_SIZE as usize, 0);
    (
        buf,
        Directories {
            imports,
            exports,
            pdata,
            debug,
        },
    )
}

/// Builds the driver image `spec` describes.
fn build(spec: &Spec) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = Writer::new(true, 0x1000, 0x200, &mut out);
    writer.reserve_dos_header_and_stub();
    writer.reserve_nt_headers(16);
    writer.reserve_section_headers(3);

    let text_flags = pe::IMAGE_SCN_CNT_CODE.0
        | pe::IMAGE_SCN_MEM_EXECUTE.0
        | pe::IMAGE_SCN_MEM_READ.0
        | if spec.text_writable {
            pe::IMAGE_SCN_MEM_WRITE.0
        } else {
            0
        };
    let text = writer.reserve_section(*b".text\0\0\0", pe::SectionFlags(text_flags), 16, 16);
    let rdata_range = writer.reserve_rdata_section(RDATA_SIZE);
    let entry = text.virtual_address;
    let (rdata, directories) = rdata(
        spec,
        rdata_range.virtual_address,
        rdata_range.file_offset,
        entry,
    );
    let Directories {
        imports,
        exports,
        pdata,
        debug,
    } = directories;
    if let Some((offset, size)) = debug {
        writer.set_data_directory(
            pe::IMAGE_DIRECTORY_ENTRY_DEBUG,
            rdata_range.virtual_address + offset,
            size,
        );
    }
    if let Some((offset, size)) = pdata {
        writer.set_data_directory(
            pe::IMAGE_DIRECTORY_ENTRY_EXCEPTION,
            rdata_range.virtual_address + offset,
            size,
        );
    }
    writer.set_data_directory(
        pe::IMAGE_DIRECTORY_ENTRY_IMPORT,
        rdata_range.virtual_address + imports.0,
        imports.1,
    );
    if let Some((offset, size)) = exports {
        writer.set_data_directory(
            pe::IMAGE_DIRECTORY_ENTRY_EXPORT,
            rdata_range.virtual_address + offset,
            size,
        );
    }
    if spec.relocs {
        writer.add_reloc(text.virtual_address + 8, pe::IMAGE_REL_BASED_DIR64);
    }
    writer.reserve_reloc_section();

    writer.write_dos_header_and_stub().unwrap();
    writer.write_nt_headers(object::write::pe::NtHeaders {
        machine: spec.machine,
        time_date_stamp: 0,
        characteristics: pe::FileFlags(
            pe::IMAGE_FILE_EXECUTABLE_IMAGE.0
                | pe::IMAGE_FILE_LARGE_ADDRESS_AWARE.0
                | pe::IMAGE_FILE_DLL.0,
        ),
        major_linker_version: 14,
        minor_linker_version: 0,
        address_of_entry_point: if spec.entry_at_export {
            entry
        } else {
            entry + 4
        },
        image_base: 0x1_4000_0000,
        major_operating_system_version: 10,
        minor_operating_system_version: 0,
        major_image_version: 0,
        minor_image_version: 0,
        major_subsystem_version: 10,
        minor_subsystem_version: 0,
        subsystem: pe::Subsystem(spec.subsystem),
        dll_characteristics: pe::DllFlags(spec.dll_characteristics),
        size_of_stack_reserve: 0x4_0000,
        size_of_stack_commit: 0x1000,
        size_of_heap_reserve: 0x10_0000,
        size_of_heap_commit: 0x1000,
    });
    writer.write_section_headers();
    // `ret` and padding; the relocation points into it, which the checks do not look at.
    writer.write_section(text.file_offset, &[0xC3; 16]);
    writer.write_section(rdata_range.file_offset, &rdata);
    writer.write_reloc_section();
    if spec.fix_checksum {
        fix_checksum(&mut out);
    }
    out
}

/// The rules `data` violates.
fn failed(data: &[u8]) -> Vec<Rule> {
    match check(data) {
        Ok(_) => Vec::new(),
        Err(violations) => {
            let mut rules: Vec<Rule> = violations.iter().map(|v| v.rule).collect();
            rules.dedup();
            rules
        }
    }
}

#[test]
fn good_driver_passes_every_rule() {
    let image = build(&Spec::default());
    let summary = check(&image).unwrap_or_else(|v| panic!("{v:?}"));
    let imports: Vec<String> = summary
        .imports
        .iter()
        .map(|(module, function)| format!("{module}!{function}"))
        .collect();
    assert_eq!(
        imports,
        [
            "ntoskrnl.exe!DbgPrintEx",
            "ntoskrnl.exe!memcpy",
            "FLTMGR.SYS!FltRegisterFilter"
        ]
    );
}

#[test]
fn modules_compare_without_case() {
    let image = build(&Spec {
        imports: vec![
            ("NTOSKRNL.EXE", vec!["KeBugCheckEx"]),
            ("fltmgr.sys", vec!["FltStartFiltering"]),
        ],
        ..Spec::default()
    });
    assert_eq!(failed(&image), []);
}

/// The violations' details of `spec`'s image.
fn import_details(spec: &Spec) -> Vec<String> {
    let violations = check(&build(spec)).unwrap_err();
    assert!(
        violations.iter().all(|v| v.rule == Rule::Imports),
        "{violations:?}"
    );
    violations.into_iter().map(|v| v.detail).collect()
}

#[test]
fn unknown_import_fails_and_is_named() {
    let details = import_details(&Spec {
        imports: vec![("ntoskrnl.exe", vec!["memcpy", "ExAllocatePoolWithTag"])],
        ..Spec::default()
    });
    assert_eq!(details.len(), 1, "{details:?}");
    assert!(
        details[0].contains("ntoskrnl.exe!ExAllocatePoolWithTag") && details[0].contains("table"),
        "{details:?}"
    );
}

#[test]
fn import_from_the_wrong_module_fails() {
    // A real export, from a module that does not export it.
    let details = import_details(&Spec {
        imports: vec![("hal.dll", vec!["KeBugCheckEx"])],
        ..Spec::default()
    });
    assert!(
        details[0].contains("hal.dll!KeBugCheckEx") && details[0].contains("ntoskrnl.exe"),
        "{details:?}"
    );
}

#[test]
fn ke_get_current_irql_is_a_hal_import_on_arm64_only() {
    let arm64 = |module| Spec {
        imports: vec![(module, vec!["KeGetCurrentIrql"])],
        machine: pe::IMAGE_FILE_MACHINE_ARM64,
        ..Spec::default()
    };
    let summary = check(&build(&arm64("hal.dll"))).unwrap_or_else(|v| panic!("{v:?}"));
    assert_eq!(summary.arch, Some(Arch::Aarch64));
    let details = import_details(&arm64("ntoskrnl.exe"));
    assert!(details[0].contains("hal.dll"), "{details:?}");
    // x86_64: inline in wdm.h, no module exports it to drivers.
    let details = import_details(&Spec {
        imports: vec![("hal.dll", vec!["KeGetCurrentIrql"])],
        ..Spec::default()
    });
    assert!(details[0].contains("no module exports"), "{details:?}");
}

#[test]
fn minimum_windows_is_the_highest_import_minimum() {
    let summary = check(&build(&Spec::default())).unwrap_or_else(|v| panic!("{v:?}"));
    assert_eq!(summary.min_windows, Some(WinVer::WINXP));
    let summary = check(&build(&Spec {
        imports: vec![
            ("ntoskrnl.exe", vec!["ExAllocatePool2", "KeBugCheckEx"]),
            ("fltmgr.sys", vec!["FltCreateSectionForDataScan"]),
        ],
        ..Spec::default()
    }))
    .unwrap_or_else(|v| panic!("{v:?}"));
    assert_eq!(summary.min_windows, Some(WinVer::WIN10_2004));
}

#[test]
fn other_machine_fails_as_format() {
    let image = build(&Spec {
        machine: pe::IMAGE_FILE_MACHINE_I386,
        ..Spec::default()
    });
    assert_eq!(failed(&image), [Rule::Format]);
}

#[test]
fn non_native_subsystem_fails() {
    let image = build(&Spec {
        subsystem: pe::IMAGE_SUBSYSTEM_WINDOWS_CUI.0,
        ..Spec::default()
    });
    assert_eq!(failed(&image), [Rule::NativeSubsystem]);
}

#[test]
fn entry_point_elsewhere_fails() {
    let image = build(&Spec {
        entry_at_export: false,
        ..Spec::default()
    });
    assert_eq!(failed(&image), [Rule::EntryPoint]);
}

#[test]
fn missing_driver_entry_export_fails() {
    let image = build(&Spec {
        export_driver_entry: false,
        ..Spec::default()
    });
    assert_eq!(failed(&image), [Rule::EntryPoint]);
}

#[test]
fn ntdll_import_fails_and_is_named() {
    let image = build(&Spec {
        imports: vec![
            ("ntoskrnl.exe", vec!["memcpy"]),
            ("ntdll.dll", vec!["ZwClose"]),
        ],
        ..Spec::default()
    });
    let violations = check(&image).unwrap_err();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].rule, Rule::Imports);
    assert!(
        violations[0].detail.contains("ntdll.dll!ZwClose"),
        "{}",
        violations[0]
    );
}

#[test]
fn writable_executable_section_fails() {
    let image = build(&Spec {
        text_writable: true,
        ..Spec::default()
    });
    assert_eq!(failed(&image), [Rule::NoWritableExecutableSection]);
}

#[test]
fn missing_nx_compat_fails() {
    let image = build(&Spec {
        dll_characteristics: pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE.0,
        ..Spec::default()
    });
    assert_eq!(failed(&image), [Rule::NxCompat]);
}

#[test]
fn missing_dynamic_base_fails() {
    let image = build(&Spec {
        dll_characteristics: pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT.0,
        ..Spec::default()
    });
    assert_eq!(failed(&image), [Rule::DynamicBase]);
}

#[test]
fn zero_or_wrong_checksum_fails() {
    let unset = build(&Spec {
        fix_checksum: false,
        ..Spec::default()
    });
    assert_eq!(failed(&unset), [Rule::Checksum]);

    // One flipped byte anywhere outside the headers' checked fields breaks the sum.
    let mut patched = build(&Spec::default());
    let last = patched.len() - 1;
    patched[last] ^= 0x5A;
    assert_eq!(failed(&patched), [Rule::Checksum]);
}

#[test]
fn checksum_is_the_folded_word_sum_plus_length() {
    // A hand-computable file: a DOS header whose e_lfanew points at 0x40, and zeros otherwise,
    // except two words. The CheckSum field (0x40 + 88) is skipped even when non-zero.
    let mut data = vec![0u8; 0x100];
    data[0x3C] = 0x40;
    data[0x10..0x12].copy_from_slice(&0xFFFFu16.to_le_bytes());
    data[0x20..0x22].copy_from_slice(&0x0003u16.to_le_bytes());
    data[0x40 + 88..0x40 + 92].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
    // Words: 0x0040 + 0xFFFF + 0x0003 = 0x10042 -> folded 0x0043; plus the length 0x100.
    assert_eq!(pe_checksum(&data), Some(0x0043 + 0x100));
    // An odd length pads the last byte with zero.
    data.push(0x01);
    assert_eq!(pe_checksum(&data), Some(0x0044 + 0x101));
}

#[test]
fn missing_relocations_fail() {
    let image = build(&Spec {
        relocs: false,
        ..Spec::default()
    });
    assert_eq!(failed(&image), [Rule::Relocations]);
}

#[test]
fn not_a_pe_fails_as_format() {
    assert_eq!(failed(b"MZ but nothing else"), [Rule::Format]);
    assert_eq!(failed(&[]), [Rule::Format]);
}

#[test]
fn largest_frame_is_reported() {
    for machine in [pe::IMAGE_FILE_MACHINE_AMD64, pe::IMAGE_FILE_MACHINE_ARM64] {
        let image = build(&Spec {
            frames: Some(vec![64, 2048, 512]),
            imports: vec![("ntoskrnl.exe", vec!["memcpy"])],
            machine,
            ..Spec::default()
        });
        let summary = check(&image).unwrap_or_else(|v| panic!("{v:?}"));
        assert_eq!(summary.largest_frame.map(|f| f.size), Some(2048));
    }
}

#[test]
fn a_frame_over_the_budget_fails() {
    for machine in [pe::IMAGE_FILE_MACHINE_AMD64, pe::IMAGE_FILE_MACHINE_ARM64] {
        let image = build(&Spec {
            frames: Some(vec![64, super::FRAME_BUDGET + 16, 32]),
            imports: vec![("ntoskrnl.exe", vec!["memcpy"])],
            machine,
            ..Spec::default()
        });
        assert_eq!(failed(&image), [Rule::StackFrames]);
        let detail = &check(&image).unwrap_err()[0].detail;
        assert!(detail.contains("2064 bytes"), "{detail}");
    }
}

#[test]
fn no_unwind_data_fails() {
    let image = build(&Spec {
        frames: None,
        ..Spec::default()
    });
    assert_eq!(failed(&image), [Rule::StackFrames]);
}

#[test]
fn a_chkstk_import_fails_its_own_rule_only() {
    let image = build(&Spec {
        imports: vec![("ntoskrnl.exe", vec!["memcpy", "__chkstk"])],
        ..Spec::default()
    });
    assert_eq!(failed(&image), [Rule::NoStackProbe]);
}

#[test]
fn the_codeview_record_is_reported() {
    let summary = check(&build(&Spec::default())).unwrap_or_else(|v| panic!("{v:?}"));
    assert_eq!(
        summary.pdb,
        Some(super::PdbRef {
            name: "test.pdb".to_owned(),
            guid: PDB_GUID,
            age: PDB_AGE,
        })
    );
}

#[test]
fn no_codeview_record_fails() {
    let image = build(&Spec {
        pdb: None,
        ..Spec::default()
    });
    assert_eq!(failed(&image), [Rule::CodeView]);
}

#[test]
fn a_codeview_record_with_a_path_or_no_pdb_fails() {
    for name in [
        r"C:\build\target\release\test.pdb",
        "/work/target/test.pdb",
        "test.dbg",
        ".pdb",
    ] {
        let image = build(&Spec {
            pdb: Some(name),
            ..Spec::default()
        });
        assert_eq!(failed(&image), [Rule::CodeView], "{name}");
    }
}
