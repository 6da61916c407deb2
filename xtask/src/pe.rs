//! The PE checks every driver must pass, on any `.sys` file: the standalone ones `cargo xtask
//! build` links here, or one the WDK flow packaged on Windows.
//!
//! The file is parsed with the `object` crate. Each [`Rule`] is checked independently, and
//! [`check`] returns every rule that failed, with a detail, so that one report names all problems.

use std::fmt;

use object::{
    LittleEndian as LE, Object, pe,
    read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile},
};

use crate::{
    exports::{self, Arch, Refusal, WinVer},
    frames::{self, Frame},
};

/// The name of the export the image entry point must be.
pub const ENTRY_EXPORT: &str = "DriverEntry";

/// One rule of the driver PE checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// The file parses as a 64-bit PE image at all.
    Format,
    /// The optional header's subsystem is `IMAGE_SUBSYSTEM_NATIVE`.
    NativeSubsystem,
    /// The entry point is the address of the `DriverEntry` export.
    EntryPoint,
    /// Every import is a function of [`exports::EXPORTS`], imported from the module that exports
    /// it on the image's architecture (`ntoskrnl.exe`, `hal.dll` or `fltmgr.sys`), and nothing is
    /// delay-loaded.
    Imports,
    /// No section is both writable and executable.
    NoWritableExecutableSection,
    /// `IMAGE_DLLCHARACTERISTICS_NX_COMPAT` is set.
    NxCompat,
    /// `IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE` is set.
    DynamicBase,
    /// The optional header's checksum is the file's real PE checksum.
    Checksum,
    /// The image has base relocations (and is not marked relocations-stripped).
    Relocations,
    /// Every function's stack frame, read from the unwind data (see [`crate::frames`]), is at
    /// most [`FRAME_BUDGET`] bytes, and the unwind data is readable.
    StackFrames,
    /// Nothing imports `__chkstk`, the stack probe the compiler calls from the prologue of a
    /// function whose frame is larger than a page: a driver within [`FRAME_BUDGET`] never needs
    /// it, so an import means a frame of more than 4 KiB somewhere.
    NoStackProbe,
    /// The debug directory holds a `CodeView` `RSDS` record (the PDB's GUID and age, which a
    /// debugger matches against the `.pdb` it loads) naming a `.pdb` by file name only. rustc
    /// links MSVC targets with `/PDBALTPATH:%_PDB%` so that no build-machine path is written
    /// into the image (rust-lang/rust pull request 121297); a path here means some other link
    /// step put one back.
    CodeView,
}

/// The largest stack frame one function of a driver may have, in bytes, in every build (`x86_64`
/// and `aarch64`, dev and release): 2 KiB.
///
/// A minifilter's callbacks run on the kernel stack of the thread that issued the I/O (24 KiB on
/// x64), which they share with the I/O manager and Filter Manager above them and, when the
/// callback touches pageable memory, the memory manager, the file system and the storage stack
/// below them. 2 KiB is the most the issue allows for one frame; the measured largest frames are
/// 1,496 bytes (dev) and 1,448 bytes (release), so it leaves room without letting the 4-6 KiB
/// frames of an unoptimised `memchr` back in. Anything over one 4 KiB page also needs `__chkstk`
/// ([`Rule::NoStackProbe`]).
pub const FRAME_BUDGET: u32 = 2048;

/// The import [`Rule::NoStackProbe`] refuses.
pub const STACK_PROBE: &str = "__chkstk";

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Format => "PE format",
            Self::NativeSubsystem => "NATIVE subsystem",
            Self::EntryPoint => "entry point is DriverEntry",
            Self::Imports => "every import is a known export of its module",
            Self::NoWritableExecutableSection => "no writable and executable section",
            Self::NxCompat => "NX compatible",
            Self::DynamicBase => "dynamic base",
            Self::Checksum => "valid PE checksum",
            Self::Relocations => "base relocations present",
            Self::StackFrames => "every stack frame within the budget",
            Self::NoStackProbe => "no __chkstk import",
            Self::CodeView => "a CodeView record names the .pdb",
        })
    }
}

/// A failed rule and what was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The rule that failed.
    pub rule: Rule,
    /// What the file has instead.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule \"{}\" failed: {}", self.rule, self.detail)
    }
}

/// What a driver that passed looks like, for the build report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// `(module, function)` for every import, in table order; ordinal imports as `#N`.
    pub imports: Vec<(String, String)>,
    /// The architecture the image is for.
    pub arch: Option<Arch>,
    /// The highest minimum Windows version its imports' pages state (`None`: none states one).
    pub min_windows: Option<WinVer>,
    /// Its largest stack frame (`None`: no function has a frame).
    pub largest_frame: Option<Frame>,
    /// The `.pdb` its `CodeView` record names (`None` only in a failed check).
    pub pdb: Option<PdbRef>,
}

/// The PDB a driver's `CodeView` (`RSDS`) record names: the debugger loads a `.pdb` for the image
/// only if the file has this name and its own GUID and age are these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdbRef {
    /// The file name, without a directory.
    pub name: String,
    /// The GUID as the record stores it (the `GUID` structure's little-endian bytes).
    pub guid: [u8; 16],
    /// The age.
    pub age: u32,
}

/// Checks `data` (a whole `.sys` file) against every [`Rule`].
///
/// # Errors
///
/// Every violated rule, in [`Rule`] order.
pub fn check(data: &[u8]) -> Result<Summary, Vec<Violation>> {
    match object::read::pe::optional_header_magic(data) {
        Ok(pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC) => {}
        Ok(magic) => {
            return Err(vec![Violation {
                rule: Rule::Format,
                detail: format!("optional header magic {magic:#x}: not a 64-bit (PE32+) image"),
            }]);
        }
        Err(err) => {
            return Err(vec![Violation {
                rule: Rule::Format,
                detail: format!("not a PE image: {err}"),
            }]);
        }
    }
    let file = match PeFile::<pe::ImageNtHeaders64>::parse(data) {
        Ok(file) => file,
        Err(err) => {
            return Err(vec![Violation {
                rule: Rule::Format,
                detail: format!("malformed PE image: {err}"),
            }]);
        }
    };
    let mut violations = Vec::new();
    let mut fail = |rule, detail: String| violations.push(Violation { rule, detail });
    check_subsystem(&file, &mut fail);
    check_entry_point(&file, &mut fail);
    let arch = image_arch(&file);
    if arch.is_none() {
        fail(
            Rule::Format,
            format!(
                "machine {:#06x} is neither AMD64 nor ARM64",
                file.nt_headers().file_header().machine.get(LE)
            ),
        );
    }
    let imports = check_imports(&file, arch, &mut fail);
    check_sections(&file, &mut fail);
    check_dll_characteristics(&file, &mut fail);
    check_checksum(&file, data, &mut fail);
    check_relocations(&file, &mut fail);
    let largest_frame = arch.and_then(|arch| check_frames(&file, arch, &mut fail));
    check_stack_probe(&imports, &mut fail);
    let pdb = check_codeview(&file, &mut fail);
    if violations.is_empty() {
        let min_windows = exports::minimum(imports.iter().map(|(_, f)| f.as_str()));
        Ok(Summary {
            imports,
            arch,
            min_windows,
            largest_frame,
            pdb,
        })
    } else {
        violations.sort_by_key(|v| v.rule);
        Err(violations)
    }
}

/// Reports a violated rule.
type Fail<'a> = dyn FnMut(Rule, String) + 'a;

/// [`Rule::NativeSubsystem`].
fn check_subsystem(file: &PeFile<'_, pe::ImageNtHeaders64>, fail: &mut Fail<'_>) {
    let subsystem = file.nt_headers().optional_header().subsystem().0;
    if subsystem != pe::IMAGE_SUBSYSTEM_NATIVE.0 {
        fail(
            Rule::NativeSubsystem,
            format!(
                "subsystem is {subsystem}, not NATIVE ({})",
                pe::IMAGE_SUBSYSTEM_NATIVE.0
            ),
        );
    }
}

/// [`Rule::EntryPoint`].
fn check_entry_point(file: &PeFile<'_, pe::ImageNtHeaders64>, fail: &mut Fail<'_>) {
    let entry = file.nt_headers().optional_header().address_of_entry_point();
    match entry_export_address(file) {
        Ok(Some(address)) if address == entry => {}
        Ok(Some(address)) => fail(
            Rule::EntryPoint,
            format!("entry point RVA {entry:#x} is not DriverEntry's RVA {address:#x}"),
        ),
        Ok(None) => fail(Rule::EntryPoint, "no DriverEntry export".to_owned()),
        Err(err) => fail(Rule::EntryPoint, format!("unreadable export table: {err}")),
    }
}

/// The architecture of the image, from its machine type.
fn image_arch(file: &PeFile<'_, pe::ImageNtHeaders64>) -> Option<Arch> {
    match file.nt_headers().file_header().machine.get(LE) {
        pe::IMAGE_FILE_MACHINE_AMD64 => Some(Arch::X86_64),
        pe::IMAGE_FILE_MACHINE_ARM64 => Some(Arch::Aarch64),
        _ => None,
    }
}

/// [`Rule::Imports`]. Returns the imports (empty if unreadable).
fn check_imports(
    file: &PeFile<'_, pe::ImageNtHeaders64>,
    arch: Option<Arch>,
    fail: &mut Fail<'_>,
) -> Vec<(String, String)> {
    let imports = match import_list(file) {
        Ok(imports) => imports,
        Err(err) => {
            fail(Rule::Imports, format!("unreadable import table: {err}"));
            Vec::new()
        }
    };
    if let Some(arch) = arch {
        // `__chkstk` is Rule::NoStackProbe's to report.
        for (module, function) in imports.iter().filter(|(_, f)| f != STACK_PROBE) {
            match exports::check_import(arch, module, function) {
                Ok(_) => {}
                Err(Refusal::Unknown) => fail(
                    Rule::Imports,
                    format!(
                        "imports {module}!{function}, which is not in xtask's table of known \
                         exports (xtask/src/exports.rs): add it with its module and minimum \
                         Windows version from its documentation page, or do not import it"
                    ),
                ),
                Err(Refusal::WrongModule {
                    expected: Some(expected),
                }) => fail(
                    Rule::Imports,
                    format!(
                        "imports {module}!{function}, but on {arch} {function} is exported by \
                         {expected} ({}): the driver would not load",
                        exports::find(function).map_or("", |e| e.source)
                    ),
                ),
                Err(Refusal::WrongModule { expected: None }) => fail(
                    Rule::Imports,
                    format!(
                        "imports {module}!{function}, which no module exports to {arch} drivers \
                         ({}): the driver would not load",
                        exports::find(function).map_or("", |e| e.source)
                    ),
                ),
            }
        }
    }
    if file
        .data_directory(pe::IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT)
        .is_some_and(|dir| dir.size.get(LE) != 0)
    {
        fail(Rule::Imports, "has delay-load imports".to_owned());
    }
    imports
}

/// [`Rule::NoWritableExecutableSection`].
fn check_sections(file: &PeFile<'_, pe::ImageNtHeaders64>, fail: &mut Fail<'_>) {
    for section in file.section_table().iter() {
        let flags = section.characteristics.get(LE).0;
        if flags & pe::IMAGE_SCN_MEM_WRITE.0 != 0 && flags & pe::IMAGE_SCN_MEM_EXECUTE.0 != 0 {
            fail(
                Rule::NoWritableExecutableSection,
                format!(
                    "section {} is writable and executable (characteristics {flags:#010x})",
                    String::from_utf8_lossy(section.raw_name())
                ),
            );
        }
    }
}

/// [`Rule::NxCompat`] and [`Rule::DynamicBase`].
fn check_dll_characteristics(file: &PeFile<'_, pe::ImageNtHeaders64>, fail: &mut Fail<'_>) {
    let dll = file.nt_headers().optional_header().dll_characteristics().0;
    if dll & pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT.0 == 0 {
        fail(
            Rule::NxCompat,
            format!("DllCharacteristics {dll:#06x} lacks NX_COMPAT"),
        );
    }
    if dll & pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE.0 == 0 {
        fail(
            Rule::DynamicBase,
            format!("DllCharacteristics {dll:#06x} lacks DYNAMIC_BASE"),
        );
    }
}

/// [`Rule::Checksum`].
fn check_checksum(file: &PeFile<'_, pe::ImageNtHeaders64>, data: &[u8], fail: &mut Fail<'_>) {
    let stored = file.nt_headers().optional_header().check_sum();
    match pe_checksum(data) {
        Some(real) if real == stored => {}
        Some(real) => fail(
            Rule::Checksum,
            format!("header says {stored:#010x}, the file's checksum is {real:#010x}"),
        ),
        None => fail(Rule::Checksum, "no checksum field".to_owned()),
    }
}

/// [`Rule::Relocations`].
fn check_relocations(file: &PeFile<'_, pe::ImageNtHeaders64>, fail: &mut Fail<'_>) {
    let relocs = file
        .data_directory(pe::IMAGE_DIRECTORY_ENTRY_BASERELOC)
        .map_or(0, |dir| dir.size.get(LE));
    if relocs == 0 {
        fail(Rule::Relocations, "no base relocation directory".to_owned());
    }
    let characteristics = file.nt_headers().file_header().characteristics.get(LE).0;
    if characteristics & pe::IMAGE_FILE_RELOCS_STRIPPED.0 != 0 {
        fail(
            Rule::Relocations,
            "marked IMAGE_FILE_RELOCS_STRIPPED".to_owned(),
        );
    }
}

/// [`Rule::StackFrames`]. Returns the largest frame.
fn check_frames(
    file: &PeFile<'_, pe::ImageNtHeaders64>,
    arch: Arch,
    fail: &mut Fail<'_>,
) -> Option<Frame> {
    let frames = match frames::frames(file, arch) {
        Ok(frames) => frames,
        Err(err) => {
            fail(Rule::StackFrames, format!("unreadable unwind data: {err}"));
            return None;
        }
    };
    for frame in frames.iter().filter(|f| f.size > FRAME_BUDGET) {
        fail(
            Rule::StackFrames,
            format!(
                "a stack frame of {frame}, over the budget of {FRAME_BUDGET} bytes \
                 (xtask/src/pe.rs, FRAME_BUDGET): move large locals to pool or a static, build \
                 what can be built once outside the I/O path"
            ),
        );
    }
    frames
        .into_iter()
        .max_by_key(|f| (f.size, std::cmp::Reverse(f.function)))
}

/// [`Rule::NoStackProbe`].
fn check_stack_probe(imports: &[(String, String)], fail: &mut Fail<'_>) {
    for (module, function) in imports {
        if function == STACK_PROBE {
            fail(
                Rule::NoStackProbe,
                format!(
                    "imports {module}!{function}: some function has a frame larger than a 4 KiB \
                     page, which the compiler probes; the frame budget is {FRAME_BUDGET} bytes"
                ),
            );
        }
    }
}

/// [`Rule::CodeView`]. Returns what the record names.
fn check_codeview(file: &PeFile<'_, pe::ImageNtHeaders64>, fail: &mut Fail<'_>) -> Option<PdbRef> {
    let record = match file.pdb_info() {
        Ok(Some(record)) => record,
        Ok(None) => {
            fail(
                Rule::CodeView,
                "no CodeView (RSDS) debug record: link with /DEBUG (a profile with debug info) \
                 so that the driver has a .pdb a debugger can match"
                    .to_owned(),
            );
            return None;
        }
        Err(err) => {
            fail(Rule::CodeView, format!("unreadable debug directory: {err}"));
            return None;
        }
    };
    let name = String::from_utf8_lossy(record.path()).into_owned();
    if name.contains(['/', '\\']) {
        fail(
            Rule::CodeView,
            format!("the CodeView record names {name:?}: a path, not a file name"),
        );
    }
    let has_pdb_extension = name
        .rsplit_once('.')
        .is_some_and(|(stem, extension)| !stem.is_empty() && extension.eq_ignore_ascii_case("pdb"));
    if !has_pdb_extension {
        fail(
            Rule::CodeView,
            format!("the CodeView record names {name:?}, not a .pdb file"),
        );
    }
    Some(PdbRef {
        name,
        guid: record.guid(),
        age: record.age(),
    })
}

/// The RVA of the `DriverEntry` export, if there is one.
fn entry_export_address<Pe: ImageNtHeaders>(
    file: &PeFile<'_, Pe>,
) -> object::read::Result<Option<u32>> {
    let Some(table) = file.export_table()? else {
        return Ok(None);
    };
    for (name_pointer, index) in table.name_iter() {
        if table.name_from_pointer(name_pointer)? == ENTRY_EXPORT.as_bytes() {
            return table.address_by_index(index).map(Some);
        }
    }
    Ok(None)
}

/// Every `(module, function)` the import table names.
fn import_list<Pe: ImageNtHeaders>(
    file: &PeFile<'_, Pe>,
) -> object::read::Result<Vec<(String, String)>> {
    let mut list = Vec::new();
    let Some(table) = file.import_table()? else {
        return Ok(list);
    };
    let mut descriptors = table.descriptors()?;
    while let Some(descriptor) = descriptors.next()? {
        let module = String::from_utf8_lossy(table.name(descriptor.name.get(LE))?).into_owned();
        let first = descriptor.original_first_thunk.get(LE);
        let thunks_at = if first == 0 {
            descriptor.first_thunk.get(LE)
        } else {
            first
        };
        let mut thunks = table.thunks(thunks_at)?;
        while let Some(thunk) = thunks.next::<Pe>()? {
            let function = match table.import::<Pe>(thunk)? {
                object::read::pe::Import::Ordinal(ordinal) => format!("#{ordinal}"),
                object::read::pe::Import::Name(_, name) => {
                    String::from_utf8_lossy(name).into_owned()
                }
            };
            list.push((module.clone(), function));
        }
        if list.last().is_none_or(|(last, _)| *last != module) {
            // A module with no thunks still counts as an import from it.
            list.push((module, String::new()));
        }
    }
    Ok(list)
}

/// The file offset of the optional header's `CheckSum` field, if the headers reach it.
fn checksum_offset(data: &[u8]) -> Option<usize> {
    let e_lfanew = u32::from_le_bytes(data.get(0x3C..0x40)?.try_into().ok()?);
    // Signature (4) + IMAGE_FILE_HEADER (20) + the CheckSum offset in either optional header (64).
    let offset = usize::try_from(e_lfanew).ok()? + 4 + 20 + 64;
    (offset + 4 <= data.len()).then_some(offset)
}

/// The PE image checksum of `data`, as `CheckSumMappedFile` and the loader compute it: the
/// one's-complement-style sum of all 16-bit little-endian words of the file (an odd last byte
/// padded with zero), with the `CheckSum` field itself counted as zero, folded to 16 bits, plus
/// the file length.
#[must_use]
pub fn pe_checksum(data: &[u8]) -> Option<u32> {
    let field = checksum_offset(data)?;
    let mut sum: u64 = 0;
    for (index, chunk) in data.chunks(2).enumerate() {
        let offset = index * 2;
        if (field..field + 4).contains(&offset) {
            continue;
        }
        let word = u16::from_le_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
        sum += u64::from(word);
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum = (sum & 0xFFFF) + (sum >> 16);
    u32::try_from(sum + data.len() as u64).ok()
}

/// Writes the real checksum into `data`'s header (used by the tests to make a variant that
/// differs from a good image in one rule only).
#[cfg(test)]
pub fn fix_checksum(data: &mut [u8]) {
    let field = checksum_offset(data).expect("headers");
    let sum = pe_checksum(data).expect("checksum");
    data[field..field + 4].copy_from_slice(&sum.to_le_bytes());
}

#[cfg(test)]
mod tests;
