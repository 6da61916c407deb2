//! What one storm is: the files, each user thread's operations, the order in which those
//! operations start, the unload/reload events and the injected faults; and the proptest
//! strategies that generate it from a seed (and shrink it when it fails).

use std::fmt;

use proptest::{collection::vec, prelude::*};
use windows_sys::{
    Wdk::Storage::FileSystem::{
        FILE_CREATE, FILE_OPEN, FILE_OPEN_IF, FILE_OVERWRITE, FILE_OVERWRITE_IF, FILE_SUPERSEDE,
    },
    Win32::{
        Foundation::{
            NTSTATUS, STATUS_FILE_LOCK_CONFLICT, STATUS_INSUFFICIENT_RESOURCES,
            STATUS_INVALID_FILE_FOR_SECTION, STATUS_PRIVILEGE_NOT_HELD,
        },
        Storage::FileSystem::{
            FILE_EXECUTE, FILE_READ_ATTRIBUTES, FILE_READ_DATA, FILE_SHARE_DELETE, FILE_SHARE_READ,
            FILE_SHARE_WRITE, FILE_WRITE_DATA,
        },
    },
};

/// The demo folder every sample acts in by default (`common::scope`'s default): the storm's files
/// live there, so that the samples act on them.
pub const DEMO_FOLDER: &str = "rs-minifilter-demo";

/// The EICAR test string, as data-scan searches for it. It has no lowercase letter, so the
/// lowercase bytes a storm writes can neither form it nor complete a part of it: a file never
/// gains a signature during a storm, it can only lose one.
pub const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// data-scan's scan window (`rs_data_scan::WINDOW`): signatures are placed across its boundary.
pub const SCAN_WINDOW: u32 = 64 * 1024;

/// What a storm file holds before the storm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// An empty file.
    Empty,
    /// A directory.
    Directory,
    /// A name that does not exist yet (an open may create it).
    Missing,
    /// `len` bytes of lowercase text.
    Clean {
        /// The size.
        len: u32,
    },
    /// `len` bytes of lowercase text with EICAR at `offset` (`offset + 68 <= len`).
    Eicar {
        /// The size.
        len: u32,
        /// Where the signature starts.
        offset: u32,
    },
}

/// One file of the storm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    /// The full path, `C:\rs-minifilter-demo\clean.txt`.
    pub path: String,
    /// What it holds.
    pub kind: FileKind,
}

impl FileSpec {
    /// Whether the file is in the demo folder.
    #[must_use]
    pub fn in_scope(&self) -> bool {
        self.path
            .split('\\')
            .rev()
            .skip(1)
            .any(|c| c.eq_ignore_ascii_case(DEMO_FOLDER))
    }

    /// The volume letter.
    #[must_use]
    pub fn volume(&self) -> char {
        self.path.chars().next().unwrap_or('C')
    }

    /// The contents before the storm (`None` for a directory or a missing file).
    #[must_use]
    pub fn contents(&self) -> Option<Vec<u8>> {
        match self.kind {
            FileKind::Empty => Some(Vec::new()),
            FileKind::Directory | FileKind::Missing => None,
            FileKind::Clean { len } => Some(text(len as usize)),
            FileKind::Eicar { len, offset } => {
                let mut data = text(len as usize);
                let at = offset as usize;
                data[at..at + EICAR.len()].copy_from_slice(EICAR);
                Some(data)
            }
        }
    }
}

/// `len` bytes of lowercase text.
fn text(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// `DesiredAccess` of a storm open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `FILE_READ_DATA`.
    Read,
    /// `FILE_EXECUTE`.
    Execute,
    /// `FILE_WRITE_DATA`.
    Write,
    /// `FILE_READ_DATA | FILE_WRITE_DATA`.
    ReadWrite,
    /// `FILE_READ_ATTRIBUTES` only.
    Attributes,
}

impl Access {
    /// The access mask.
    #[must_use]
    pub fn mask(self) -> u32 {
        match self {
            Self::Read => FILE_READ_DATA,
            Self::Execute => FILE_EXECUTE,
            Self::Write => FILE_WRITE_DATA,
            Self::ReadWrite => FILE_READ_DATA | FILE_WRITE_DATA,
            Self::Attributes => FILE_READ_ATTRIBUTES,
        }
    }

    /// Whether a scanner looks at an open with this access (read or execute).
    #[must_use]
    pub fn reads(self) -> bool {
        matches!(self, Self::Read | Self::Execute | Self::ReadWrite)
    }
}

/// `CreateDisposition` of a storm open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// `FILE_OPEN`.
    Open,
    /// `FILE_OPEN_IF`.
    OpenIf,
    /// `FILE_CREATE`.
    Create,
    /// `FILE_OVERWRITE`.
    Overwrite,
    /// `FILE_OVERWRITE_IF`.
    OverwriteIf,
    /// `FILE_SUPERSEDE`.
    Supersede,
}

impl Disposition {
    /// The `FILE_*` value.
    #[must_use]
    pub fn value(self) -> u32 {
        match self {
            Self::Open => FILE_OPEN,
            Self::OpenIf => FILE_OPEN_IF,
            Self::Create => FILE_CREATE,
            Self::Overwrite => FILE_OVERWRITE,
            Self::OverwriteIf => FILE_OVERWRITE_IF,
            Self::Supersede => FILE_SUPERSEDE,
        }
    }

    /// Whether an open with it may replace the file's contents.
    #[must_use]
    pub fn truncates(self) -> bool {
        matches!(self, Self::Overwrite | Self::OverwriteIf | Self::Supersede)
    }
}

/// One user operation. Handles live in a few numbered slots per thread; an operation on an empty
/// slot runs on the thread's next live slot, and is skipped only when the thread has no handle
/// (which keeps every shrunk operation list meaningful).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `NtCreateFile` into `slot` (an open slot is closed first).
    Open {
        /// The handle slot.
        slot: u8,
        /// Index into the storm's files.
        file: u8,
        /// Desired access.
        access: Access,
        /// `FILE_SHARE_*` bits (read 1, write 2, delete 4).
        share: u8,
        /// Create disposition.
        disposition: Disposition,
        /// `FILE_DIRECTORY_FILE` rather than `FILE_NON_DIRECTORY_FILE`.
        directory: bool,
    },
    /// `NtReadFile`, cached.
    Read {
        /// The handle slot.
        slot: u8,
        /// Byte offset.
        offset: u32,
        /// Length.
        len: u32,
    },
    /// `NtWriteFile` of lowercase bytes.
    Write {
        /// The handle slot.
        slot: u8,
        /// Byte offset.
        offset: u32,
        /// Length.
        len: u16,
        /// `IRP_NOCACHE`.
        non_cached: bool,
    },
    /// `FileEndOfFileInformation`.
    SetEndOfFile {
        /// The handle slot.
        slot: u8,
        /// The new size.
        size: u32,
    },
    /// `IRP_MJ_FLUSH_BUFFERS` with `IRP_MN_FLUSH_AND_PURGE`.
    Purge {
        /// The handle slot.
        slot: u8,
    },
    /// `FileStandardInformation`.
    Query {
        /// The handle slot.
        slot: u8,
    },
    /// `CloseHandle`: cleanup, then close.
    Close {
        /// The handle slot.
        slot: u8,
    },
}

impl Op {
    /// The same operation on another handle slot.
    #[must_use]
    pub fn on_slot(self, to: u8) -> Self {
        let mut op = self;
        match &mut op {
            Self::Open { slot, .. }
            | Self::Read { slot, .. }
            | Self::Write { slot, .. }
            | Self::SetEndOfFile { slot, .. }
            | Self::Purge { slot }
            | Self::Query { slot }
            | Self::Close { slot } => *slot = to,
        }
        op
    }

    /// The handle slot the operation uses.
    #[must_use]
    pub fn slot(self) -> u8 {
        match self {
            Self::Open { slot, .. }
            | Self::Read { slot, .. }
            | Self::Write { slot, .. }
            | Self::SetEndOfFile { slot, .. }
            | Self::Purge { slot }
            | Self::Query { slot }
            | Self::Close { slot } => slot,
        }
    }
}

/// A fault armed before the storm: the `nth` call of `api` fails with `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultSpec {
    /// One of [`crate::FALLIBLE_APIS`].
    pub api: &'static str,
    /// Which call (1-based).
    pub nth: u32,
    /// The status, one the API's documentation lists.
    pub status: NTSTATUS,
}

/// One storm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// The files, created before the filter loads.
    pub files: Vec<FileSpec>,
    /// Each user thread's operations, in order.
    pub threads: Vec<Vec<Op>>,
    /// Which thread starts its next operation (modulo the thread count): operations start in
    /// this order, one at a time; once it is used up, the remaining operations start round-robin.
    pub schedule: Vec<u8>,
    /// After how many started operations the filter is unloaded and loaded again, taken modulo
    /// the storm's operation count ([`Case::reload_points`]), so that every reload lands while
    /// operations are still starting (a position past the last one once meant a reload after all
    /// I/O had started).
    pub reloads: Vec<u16>,
    /// The faults armed before the filter loads.
    pub faults: Vec<FaultSpec>,
}

impl Case {
    /// The started-operation counts after which the filter is unloaded and reloaded, in order:
    /// each of [`reloads`](Self::reloads) modulo the number of operations, so that each lands
    /// before the last operation starts.
    #[must_use]
    pub fn reload_points(&self) -> Vec<usize> {
        let total = self.operations().max(1);
        let mut points: Vec<usize> = self
            .reloads
            .iter()
            .map(|&at| usize::from(at) % total)
            .collect();
        points.sort_unstable();
        points
    }

    /// How many user operations the storm has.
    #[must_use]
    pub fn operations(&self) -> usize {
        self.threads.iter().map(Vec::len).sum()
    }

    /// The order in which the operations start: (thread, index in its list).
    #[must_use]
    pub fn start_order(&self) -> Vec<(usize, usize)> {
        let n = self.threads.len();
        let mut next = vec![0usize; n];
        let mut order = Vec::with_capacity(self.operations());
        if n == 0 {
            return order;
        }
        for &t in &self.schedule {
            let t = usize::from(t) % n;
            if next[t] < self.threads[t].len() {
                order.push((t, next[t]));
                next[t] += 1;
            }
        }
        while order.len() < self.operations() {
            for (t, (next, ops)) in next.iter_mut().zip(&self.threads).enumerate() {
                if *next < ops.len() {
                    order.push((t, *next));
                    *next += 1;
                }
            }
        }
        order
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "files:")?;
        for (i, file) in self.files.iter().enumerate() {
            writeln!(f, "  #{i} {} {:?}", file.path, file.kind)?;
        }
        writeln!(f, "faults: {:?}", self.faults)?;
        writeln!(
            f,
            "unload+reload after started operations: {:?}",
            self.reload_points()
        )?;
        writeln!(f, "start order (thread.op):")?;
        for (t, i) in self.start_order() {
            writeln!(f, "  T{t}.{i}: {:?}", self.threads[t][i])?;
        }
        Ok(())
    }
}

// ---- strategies --------------------------------------------------------------------------------

/// How many handle slots each thread has.
pub const SLOTS: u8 = 3;

/// The files of a storm, on both volumes: in each volume's demo folder an empty file, a
/// directory, a missing name, a clean file and two files with EICAR; and one clean file outside
/// the demo folder.
fn files() -> impl Strategy<Value = Vec<FileSpec>> {
    let volume = || (clean_len(), eicar(), eicar());
    (volume(), volume(), clean_len()).prop_map(|(c, z, outside)| {
        let mut files = Vec::new();
        for (letter, (clean, e1, e2)) in [('C', c), ('Z', z)] {
            let at = |name: &str| format!("{letter}:\\{DEMO_FOLDER}\\{name}");
            files.push(FileSpec {
                path: at("empty.txt"),
                kind: FileKind::Empty,
            });
            files.push(FileSpec {
                path: at("folder"),
                kind: FileKind::Directory,
            });
            files.push(FileSpec {
                path: at("new.txt"),
                kind: FileKind::Missing,
            });
            files.push(FileSpec {
                path: at("clean.txt"),
                kind: clean,
            });
            files.push(FileSpec {
                path: at("eicar1.com"),
                kind: e1,
            });
            files.push(FileSpec {
                path: at("eicar2.com"),
                kind: e2,
            });
        }
        files.push(FileSpec {
            path: "C:\\outside\\plain.txt".into(),
            kind: outside,
        });
        files
    })
}

/// A clean file of up to about two scan windows.
fn clean_len() -> impl Strategy<Value = FileKind> {
    prop_oneof![1u32..4096, 4096u32..(2 * SCAN_WINDOW + 4096)]
        .prop_map(|len| FileKind::Clean { len })
}

/// A file with EICAR: at the start, at the end, across the first window boundary, or anywhere.
fn eicar() -> impl Strategy<Value = FileKind> {
    let sig = EICAR.len() as u32;
    prop_oneof![
        // Across the boundary at SCAN_WINDOW: it starts 1 to 67 bytes before it.
        (1u32..sig, 0u32..SCAN_WINDOW).prop_map(move |(before, tail)| FileKind::Eicar {
            len: SCAN_WINDOW + sig + tail,
            offset: SCAN_WINDOW - before,
        }),
        (0u32..(2 * SCAN_WINDOW)).prop_map(move |pad| FileKind::Eicar {
            len: pad + sig,
            offset: 0,
        }),
        (0u32..(2 * SCAN_WINDOW)).prop_map(move |pad| FileKind::Eicar {
            len: pad + sig,
            offset: pad,
        }),
        (0u32..(2 * SCAN_WINDOW), 0u32..4096).prop_map(move |(offset, tail)| FileKind::Eicar {
            len: offset + sig + tail,
            offset,
        }),
    ]
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![
        3 => Just(Access::Read),
        1 => Just(Access::Execute),
        2 => Just(Access::Write),
        3 => Just(Access::ReadWrite),
        1 => Just(Access::Attributes),
    ]
}

fn disposition() -> impl Strategy<Value = Disposition> {
    prop_oneof![
        8 => Just(Disposition::Open),
        2 => Just(Disposition::OpenIf),
        1 => Just(Disposition::Create),
        1 => Just(Disposition::Overwrite),
        1 => Just(Disposition::OverwriteIf),
        1 => Just(Disposition::Supersede),
    ]
}

fn share() -> impl Strategy<Value = u8> {
    prop_oneof![
        // Mostly share everything, so that threads meet on one stream.
        3 => Just(7u8),
        2 => 0u8..8,
    ]
}

/// A file index, biased towards the files on `C:` that the samples scan (3 to 5, in
/// [`files`]'s order), so that threads meet on the same streams.
fn file(file_count: u8) -> impl Strategy<Value = u8> {
    prop_oneof![
        2 => 0..file_count,
        3 => 3u8..6,
    ]
}

fn op(file_count: u8) -> impl Strategy<Value = Op> {
    let slot = || 0..SLOTS;
    prop_oneof![
        4 => (slot(), file(file_count), access(), share(), disposition(), prop::bool::weighted(0.1))
            .prop_map(|(slot, file, access, share, disposition, directory)| Op::Open {
                slot,
                file,
                access,
                share,
                disposition,
                directory,
            }),
        3 => (slot(), 0u32..(2 * SCAN_WINDOW + 8192), 1u32..(SCAN_WINDOW + 4096))
            .prop_map(|(slot, offset, len)| Op::Read { slot, offset, len }),
        2 => (slot(), 0u32..(2 * SCAN_WINDOW + 8192), 1u16..2048, prop::bool::weighted(0.3))
            .prop_map(|(slot, offset, len, non_cached)| Op::Write {
                slot,
                offset,
                len,
                non_cached,
            }),
        1 => (slot(), 0u32..(2 * SCAN_WINDOW + 8192))
            .prop_map(|(slot, size)| Op::SetEndOfFile { slot, size }),
        1 => slot().prop_map(|slot| Op::Purge { slot }),
        1 => slot().prop_map(|slot| Op::Query { slot }),
        2 => slot().prop_map(|slot| Op::Close { slot }),
    ]
}

/// The APIs a storm fails: each with the most calls a storm's fault may skip before it fires
/// (about how often a storm of [`crate::storm::MAX_OPS`]-long threads calls it: a fault armed
/// past that never fires) and the statuses it fails with: the model's default (documented for
/// every one of [`crate::FALLIBLE_APIS`]) and, for `FltCreateSectionForDataScan`, the other
/// failures its page lists. A storm arms only the ones its driver imports ([`case`]).
const FAULTS: &[(&str, u32, &[NTSTATUS])] = &[
    ("FltAllocateContext", 4, &[STATUS_INSUFFICIENT_RESOURCES]),
    (
        "FltSetStreamHandleContext",
        3,
        &[STATUS_INSUFFICIENT_RESOURCES],
    ),
    ("FltSetInstanceContext", 4, &[STATUS_INSUFFICIENT_RESOURCES]),
    ("FltGetSectionContext", 4, &[STATUS_INSUFFICIENT_RESOURCES]),
    (
        "FltAllocateCallbackData",
        8,
        &[STATUS_INSUFFICIENT_RESOURCES],
    ),
    (
        "FltAllocateCallbackDataEx",
        8,
        &[STATUS_INSUFFICIENT_RESOURCES],
    ),
    (
        "FltPerformSynchronousIo.allocation",
        8,
        &[STATUS_INSUFFICIENT_RESOURCES],
    ),
    (
        "FltPerformAsynchronousIo",
        8,
        &[STATUS_INSUFFICIENT_RESOURCES],
    ),
    (
        "FltRegisterForDataScan",
        2,
        &[STATUS_INSUFFICIENT_RESOURCES],
    ),
    (
        "FltCreateSectionForDataScan",
        2,
        &[
            STATUS_INSUFFICIENT_RESOURCES,
            STATUS_FILE_LOCK_CONFLICT,
            STATUS_INVALID_FILE_FOR_SECTION,
            STATUS_PRIVILEGE_NOT_HELD,
        ],
    ),
    (
        "MmMapViewInSystemSpace",
        3,
        &[STATUS_INSUFFICIENT_RESOURCES],
    ),
    (
        "MmMapViewInSystemSpaceEx",
        3,
        &[STATUS_INSUFFICIENT_RESOURCES],
    ),
    ("MmCopyMemory", 3, &[STATUS_INSUFFICIENT_RESOURCES]),
    (
        "FltGetFileNameInformation",
        6,
        &[STATUS_INSUFFICIENT_RESOURCES],
    ),
    ("ExAllocatePool2", 4, &[STATUS_INSUFFICIENT_RESOURCES]),
    (
        "FltAllocateGenericWorkItem",
        4,
        &[STATUS_INSUFFICIENT_RESOURCES],
    ),
    ("PsCreateSystemThread", 2, &[STATUS_INSUFFICIENT_RESOURCES]),
    ("FltRegisterFilter", 2, &[STATUS_INSUFFICIENT_RESOURCES]),
    ("FltStartFiltering", 2, &[STATUS_INSUFFICIENT_RESOURCES]),
];

/// The rows of [`FAULTS`] whose API the driver imports (`imports` is its `driver-imports.txt`:
/// one function a line, `#` comments). `FltPerformSynchronousIo.allocation` is a call site of
/// `FltPerformSynchronousIo`.
fn armable(imports: &str) -> Vec<(&'static str, u32, &'static [NTSTATUS])> {
    let imported: Vec<&str> = imports
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    FAULTS
        .iter()
        .copied()
        .filter(|(api, _, _)| {
            let function = api.split('.').next().unwrap_or(api);
            imported.contains(&function)
        })
        .collect()
}

fn fault(
    armable: Vec<(&'static str, u32, &'static [NTSTATUS])>,
) -> impl Strategy<Value = FaultSpec> {
    (
        prop::sample::select(armable),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|((api, most, statuses), nth, pick)| FaultSpec {
            api,
            nth: 1 + u32::try_from(nth.index(most as usize)).unwrap_or(0),
            status: statuses[pick.index(statuses.len())],
        })
}

/// How many files [`files`] makes: six per volume and one outside the demo folder.
const FILE_COUNT: u8 = 13;

/// The strategy of a whole storm: 2 to 4 user threads of up to `max_ops` operations each, and up
/// to 3 faults in the APIs the driver imports (`imports`: its `driver-imports.txt`), so that an
/// armed fault names a call the driver makes. A plain tuple of strategies (no `prop_flat_map`),
/// so that proptest shrinks every part.
pub fn case(max_ops: usize, imports: &str) -> impl Strategy<Value = Case> {
    let max_start = u16::try_from(4 * max_ops).unwrap_or(u16::MAX);
    let mut armable = armable(imports);
    let most_faults = if armable.is_empty() {
        // `select` needs a row even when no fault is drawn from it.
        armable.push(FAULTS[0]);
        0
    } else {
        3
    };
    (
        files(),
        vec(vec(op(FILE_COUNT), 0..=max_ops), 2..=4),
        vec(any::<u8>(), 0..=4 * max_ops),
        vec(0..max_start, 0..=2),
        vec(fault(armable), 0..=most_faults),
    )
        .prop_map(|(files, threads, schedule, mut reloads, faults)| {
            debug_assert_eq!(files.len(), usize::from(FILE_COUNT));
            reloads.sort_unstable();
            Case {
                files,
                threads,
                schedule,
                reloads,
                faults,
            }
        })
}

/// `FILE_SHARE_*` from the storm's three bits.
#[must_use]
pub fn share_bits(share: u8) -> u32 {
    let mut bits = 0;
    if share & 1 != 0 {
        bits |= FILE_SHARE_READ;
    }
    if share & 2 != 0 {
        bits |= FILE_SHARE_WRITE;
    }
    if share & 4 != 0 {
        bits |= FILE_SHARE_DELETE;
    }
    bits
}
