//! data-scan against fltsim: what the user sees (open results, file contents), what the debugger
//! shows (log lines) and the calls the sample makes (the trace), for the happy path, every
//! documented status of `FltCreateSectionForDataScan`, every fault at every call site, the
//! signature at every window boundary, and several threads scanning one file at once. Every test
//! ends in `World::finish`, which unloads the sample and fails on any leak, double release, misuse
//! or IRQL violation.

use std::{
    sync::Barrier,
    time::{Duration, Instant},
};

use common::{
    bindings::{
        NTSTATUS, STATUS_CANCELLED, STATUS_END_OF_FILE, STATUS_FILE_IS_A_DIRECTORY,
        STATUS_FILE_LOCK_CONFLICT, STATUS_FLT_CONTEXT_ALREADY_DEFINED, STATUS_IN_PAGE_ERROR,
        STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_FILE_FOR_SECTION, STATUS_NOT_SUPPORTED,
        STATUS_PRIVILEGE_NOT_HELD, STATUS_THREAD_IS_TERMINATING, STATUS_TIMEOUT,
        STATUS_VIRUS_INFECTED,
    },
    irql,
    section::WindowReader,
};
use fltsim::{Event, EventKind, NtStatus, Open, RegValue, World, sweep_faults};
use memchr::memmem;
use rs_data_scan::{DriverEntry, EICAR, MAX_ATTEMPTS, TAG, WINDOW};

const ALTITUDE: u32 = 265_130;
const CLEAN: &str = "C:\\scan\\clean.txt";
const INFECTED: &str = "C:\\scan\\eicar.com";

/// What the debugger prints for a file on `C:`: `C:\scan\a` is `\Device\HarddiskVolume1\scan\a`.
fn device_name(path: &str) -> String {
    let rest = path.strip_prefix("C:").expect("a path on C:");
    format!("\\Device\\HarddiskVolume1{rest}")
}

/// 5400 bytes of text with no signature in it.
fn clean_text() -> Vec<u8> {
    b"a clean line\r\n".repeat(400)[..5400].to_vec()
}

/// A world with the sample loaded, a clean file and the EICAR file.
fn loaded() -> World {
    let world = World::new();
    world.create_file(CLEAN, &clean_text());
    world.create_file(INFECTED, EICAR);
    world.set_parameter(TAG, "DemoFolder", RegValue::Sz("scan".into()));
    world.load(TAG, ALTITUDE, DriverEntry).expect("loads");
    world
}

/// Opens `path` for read and closes it again; the open's result.
fn open_and_close(world: &World, path: &str) -> Result<(), NtStatus> {
    let handle = world.open(path, Open::read())?;
    world.close(handle).expect("close");
    Ok(())
}

/// The lines the sample printed that contain `needle`.
fn lines_with(world: &World, needle: &str) -> Vec<String> {
    world
        .log_lines(TAG)
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}

/// The names of the calls among `apis`, in trace order.
fn calls_among(trace: &[Event], apis: &[&str]) -> Vec<&'static str> {
    trace
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Call(api) if apis.contains(&api) => Some(api),
            _ => None,
        })
        .collect()
}

/// The context address a `FltCreateSectionForDataScan` event names (`..., context 0x...)`).
fn context_of(create: &Event) -> String {
    let after = create
        .text
        .split("context ")
        .nth(1)
        .expect("the create names its context");
    after[..after.find(')').expect("closing parenthesis")].to_owned()
}

/// The calls that name `context` (as argument or result), in trace order.
fn calls_on(world: &World, context: &str) -> Vec<&'static str> {
    world
        .trace()
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Call(api) if e.text.contains(context) => Some(api),
            _ => None,
        })
        .collect()
}

/// How many times `api` was called.
fn count(world: &World, api: &str) -> usize {
    world.calls(api).len()
}

/// The calls on the context of a create that failed: allocated, its event initialized, refused,
/// released once. Never closed.
const FAILED_CREATE: [&str; 4] = [
    "FltAllocateContext",
    "KeInitializeEvent",
    "FltCreateSectionForDataScan",
    "FltReleaseContext",
];

/// The calls of the close, in avscan's order, and the release of the scan's own reference.
const CLOSE_ORDER: [&str; 5] = [
    "MmUnmapViewInSystemSpace",
    "ObCloseHandle",
    "ObfDereferenceObject",
    "FltCloseSectionForDataScan",
    "FltReleaseContext",
];

// ---- the happy path ----------------------------------------------------------------------------

#[test]
fn a_clean_file_opens_and_its_section_is_closed_in_avscan_order() {
    let world = loaded();
    let handle = world.open(CLEAN, Open::read()).expect("a clean file opens");
    assert_eq!(world.read(handle, 0, 12).unwrap(), b"a clean line");
    world.close(handle).unwrap();
    assert_eq!(
        world.log_lines(TAG),
        [
            format!(
                "{TAG}: attached to volume type NTFS (FltRegisterForDataScan returned STATUS_SUCCESS (0x00000000))"
            ),
            format!(
                "{TAG}: not attaching to volume type network (MUP): FltRegisterForDataScan returned STATUS_NOT_SUPPORTED (0xC00000BB); its files are not scanned"
            ),
            format!(
                "{TAG}: {}: open: clean: 5400 bytes scanned in 1 window(s)",
                device_name(CLEAN)
            ),
        ]
    );
    // One scan: every call on its section context, in order. The allocation reference, the
    // link, and the scan's own reference (to publish the verdict) are each released once.
    let creates = world.calls("FltCreateSectionForDataScan");
    assert_eq!(creates.len(), 1);
    assert!(creates[0].text.contains("STATUS_SUCCESS"), "{}", creates[0]);
    let context = context_of(&creates[0]);
    assert_eq!(
        calls_on(&world, &context),
        [
            "FltAllocateContext",
            "KeInitializeEvent",
            "FltCreateSectionForDataScan",
            "FltReferenceContext",
            "FltCloseSectionForDataScan",
            "FltReleaseContext",
            // The verdict is published after the section is closed, for a scan waiting on it.
            "KeSetEvent",
            "FltReleaseContext",
        ]
    );
    // The five releases, in avscan's order, after the scan mapped its view.
    let trace = world.trace();
    let mut apis = vec![
        "FltCreateSectionForDataScan",
        "MmMapViewInSystemSpaceEx",
        "MmCopyMemory",
        "FltCancelFileOpen",
    ];
    apis.extend(CLOSE_ORDER);
    let mut expected = vec![
        "FltCreateSectionForDataScan",
        "MmMapViewInSystemSpaceEx",
        "MmCopyMemory",
    ];
    expected.extend(CLOSE_ORDER);
    expected.push("FltReleaseContext");
    assert_eq!(
        calls_among(&trace, &apis),
        expected,
        "the section's calls, then the scan's own reference"
    );
    // Every object of the close is the one the create returned.
    let create_text = &creates[0].text;
    let handle_id = create_text
        .split("handle ")
        .nth(1)
        .unwrap()
        .split(',')
        .next();
    let object_id = create_text
        .split("object ")
        .nth(1)
        .unwrap()
        .split(',')
        .next();
    assert!(
        world.calls("ObCloseHandle")[0]
            .text
            .contains(handle_id.unwrap())
    );
    assert!(
        world.calls("ObfDereferenceObject")[0]
            .text
            .contains(object_id.unwrap())
    );
    world.unload(TAG).unwrap();
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!("{TAG}: unloaded: 1 clean, 0 infected, 0 not scanned")
    );
    world.finish();
}

#[test]
fn the_eicar_file_is_denied_with_status_virus_infected_after_the_open_is_canceled() {
    let world = loaded();
    assert_eq!(
        world.open(INFECTED, Open::read()),
        Err(NtStatus(STATUS_VIRUS_INFECTED))
    );
    assert_eq!(
        lines_with(&world, "INFECTED"),
        [format!(
            "{TAG}: {}: open: INFECTED: EICAR signature at offset 0: open denied with STATUS_VIRUS_INFECTED (0xC0000906)",
            device_name(INFECTED)
        )]
    );
    // The section is closed before the open is canceled, and the cancel comes before the
    // create completes with the failure.
    let trace = world.trace();
    let mut apis = vec!["FltCreateSectionForDataScan", "FltCancelFileOpen"];
    apis.extend(CLOSE_ORDER);
    let mut expected = vec!["FltCreateSectionForDataScan"];
    expected.extend(CLOSE_ORDER);
    expected.extend(["FltReleaseContext", "FltCancelFileOpen"]);
    assert_eq!(calls_among(&trace, &apis), expected);
    let canceled = trace
        .iter()
        .position(|e| e.kind == EventKind::Call("FltCancelFileOpen"))
        .unwrap();
    assert!(trace[canceled].text.contains("eicar.com"));
    let failed = trace
        .iter()
        .position(|e| e.kind == EventKind::User && e.text.contains("-> STATUS_VIRUS_INFECTED"))
        .unwrap();
    assert!(canceled < failed);
    // The file is untouched, and so are the others: the clean file still opens.
    assert_eq!(world.contents(INFECTED).unwrap(), EICAR);
    assert_eq!(open_and_close(&world, CLEAN), Ok(()));
    // Denied every time, not just once.
    assert_eq!(
        world.open(INFECTED, Open::read()),
        Err(NtStatus(STATUS_VIRUS_INFECTED))
    );
    world.unload(TAG).unwrap();
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!("{TAG}: unloaded: 1 clean, 2 infected, 0 not scanned")
    );
    world.finish();
}

#[test]
fn an_execute_only_open_is_scanned_too() {
    let world = loaded();
    let execute = Open {
        access: common::bindings::FILE_EXECUTE | 0x0010_0000,
        ..Open::read()
    };
    assert_eq!(
        world.open(INFECTED, execute),
        Err(NtStatus(STATUS_VIRUS_INFECTED))
    );
    world.finish();
}

// ---- where the signature is --------------------------------------------------------------------

/// A file of more than three windows (`3 * WINDOW + 1000` bytes) of filler text, with `needle`
/// written at `at`.
fn large_with(needle: &[u8], at: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = b"filler text 0123456789 "
        .iter()
        .copied()
        .cycle()
        .take(3 * WINDOW + 1000)
        .collect();
    bytes[at..at + needle.len()].copy_from_slice(needle);
    bytes
}

#[test]
fn the_signature_is_found_at_the_start_the_end_and_across_window_boundaries() {
    let world = loaded();
    let len = 3 * WINDOW + 1000;
    let mut offsets = vec![0, len - EICAR.len()];
    // Across each boundary: first byte in one window, the rest in the next; half and half; all
    // but the last byte in the first.
    for k in 1..=3 {
        offsets.extend([
            WINDOW * k - 1,
            WINDOW * k - EICAR.len() / 2,
            WINDOW * k - (EICAR.len() - 1),
        ]);
    }
    for (i, at) in offsets.iter().copied().enumerate() {
        let path = format!("C:\\scan\\at-{i}.bin");
        world.create_file(&path, &large_with(EICAR, at));
        assert_eq!(
            world.open(&path, Open::read()),
            Err(NtStatus(STATUS_VIRUS_INFECTED)),
            "signature at {at}"
        );
        assert_eq!(
            world.log_lines(TAG).last().unwrap(),
            &format!(
                "{TAG}: {}: open: INFECTED: EICAR signature at offset {at}: open denied with STATUS_VIRUS_INFECTED (0xC0000906)",
                device_name(&path)
            )
        );
    }
    world.finish();
}

#[test]
fn a_truncated_signature_at_a_boundary_or_at_the_end_is_clean() {
    let world = loaded();
    let truncated = &EICAR[..EICAR.len() - 1];
    let len = 3 * WINDOW + 1000;
    let windows = window_count(len, EICAR.len(), WINDOW);
    for (i, at) in [WINDOW - 30, 2 * WINDOW - 1, len - truncated.len()]
        .into_iter()
        .enumerate()
    {
        let path = format!("C:\\scan\\almost-{i}.bin");
        world.create_file(&path, &large_with(truncated, at));
        assert_eq!(world.open(&path, Open::read()).map(|_| ()), Ok(()));
        assert_eq!(
            world.log_lines(TAG).last().unwrap(),
            &format!(
                "{TAG}: {}: open: clean: {len} bytes scanned in {windows} window(s)",
                device_name(&path)
            )
        );
    }
    world.finish();
}

#[test]
fn a_file_larger_than_one_window_is_scanned_whole() {
    let world = loaded();
    let len = 3 * WINDOW + 1000;
    // Clean: every window is searched, and the log says how many.
    world.create_file("C:\\scan\\large-clean.bin", &large_with(b"", 0));
    assert_eq!(open_and_close(&world, "C:\\scan\\large-clean.bin"), Ok(()));
    assert_eq!(window_count(len, EICAR.len(), WINDOW), 4);
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!(
            "{TAG}: \\Device\\HarddiskVolume1\\scan\\large-clean.bin: open: clean: {len} bytes scanned in 4 window(s)"
        )
    );
    // The signature only in the last bytes of the last window.
    world.create_file("C:\\scan\\large.bin", &large_with(EICAR, len - EICAR.len()));
    assert_eq!(
        world.open("C:\\scan\\large.bin", Open::read()),
        Err(NtStatus(STATUS_VIRUS_INFECTED))
    );
    assert!(
        world
            .log_lines(TAG)
            .last()
            .unwrap()
            .contains(&format!("EICAR signature at offset {}", len - EICAR.len()))
    );
    // Each window had its own view at its offset, never the whole file; MmCopyMemory copied each
    // byte once (the overlap is kept from the window before, not copied again).
    let mapped = world.calls("MmMapViewInSystemSpaceEx");
    let overlap = EICAR.len() - 1;
    let view = (WINDOW + overlap).div_ceil(4096) * 4096;
    let offsets: Vec<String> = (0..4)
        .map(|k| format!("at offset {}", k * WINDOW))
        .collect();
    for (k, call) in mapped.iter().enumerate() {
        assert!(call.text.contains(&offsets[k % 4]), "{call}");
        assert!(
            call.text.contains(&format!("{view} bytes of the section"))
                || (k % 4 == 3
                    && call.text.contains(&format!(
                        "{} bytes of the section",
                        (len - 3 * WINDOW).div_ceil(4096) * 4096
                    ))),
            "{call}"
        );
    }
    assert_eq!(mapped.len(), 8, "four windows for each of the two files");
    let copied: usize = world
        .calls("MmCopyMemory")
        .iter()
        .map(|e| {
            e.text
                .rsplit(", ")
                .next()
                .and_then(|t| t.strip_suffix(" bytes transferred"))
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(copied, 2 * len);
    world.finish();
}

// ---- the search ----------------------------------------------------------------------------------

/// The driver's search, over a host buffer: `WindowReader::search` with windows of `window` bytes
/// (0 is taken as 1) that overlap by `needle.len() - 1`, each filled from `haystack` as the
/// driver's `MmCopyMemory` fills it from a view, and searched with a `memmem::Finder`, as the
/// driver's searcher does.
fn find_signature(haystack: &[u8], needle: &[u8], window: usize) -> Option<usize> {
    let window = window.max(1);
    let overlap = needle.len().saturating_sub(1);
    let finder = memmem::Finder::new(needle);
    let size = u64::try_from(haystack.len()).unwrap();
    let mut reader = WindowReader::with_buffer(vec![0; window + overlap], window, overlap, size);
    let fill = |offset: u64, target: &mut [u8]| {
        let from = usize::try_from(offset).unwrap();
        target.copy_from_slice(&haystack[from..from + target.len()]);
        Ok(())
    };
    let (found, _) = reader.search(fill, |w| finder.find(w)).unwrap();
    found.map(|at| usize::try_from(at).unwrap())
}

/// How many windows the driver reads in a file of `len` bytes (at least one): the count its
/// "clean" line gives.
fn window_count(len: usize, needle_len: usize, window: usize) -> usize {
    let window = window.max(1);
    let overlap = needle_len.saturating_sub(1);
    len.saturating_sub(overlap).div_ceil(window).max(1)
}

/// How many windows `find_signature`'s loop visits, counted the slow way.
fn windows_visited(len: usize, needle_len: usize, window: usize) -> usize {
    let window = window.max(1);
    let overlap = needle_len.saturating_sub(1);
    let mut start = 0;
    let mut visited = 1;
    while (start + window + overlap).min(len) < len {
        start += window;
        visited += 1;
    }
    visited
}

#[test]
fn find_signature_agrees_with_memmem_at_every_offset_across_every_boundary() {
    let len = 3 * WINDOW + 500;
    let filler = large_with(b"", 0)[..len].to_vec();
    let mut checked = 0;
    for k in 1..=3 {
        for j in 1..EICAR.len() {
            let at = WINDOW * k - j;
            let mut haystack = filler.clone();
            haystack[at..at + EICAR.len()].copy_from_slice(EICAR);
            assert_eq!(
                find_signature(&haystack, EICAR, WINDOW),
                Some(at),
                "at {at}"
            );
            assert_eq!(memmem::find(&haystack, EICAR), Some(at));
            // One byte short: clean, wherever it straddles.
            haystack[at + EICAR.len() - 1] = b'#';
            assert_eq!(find_signature(&haystack, EICAR, WINDOW), None, "at {at}");
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * (EICAR.len() - 1));
    // At the very start and the very end.
    let mut haystack = filler.clone();
    haystack[..EICAR.len()].copy_from_slice(EICAR);
    assert_eq!(find_signature(&haystack, EICAR, WINDOW), Some(0));
    let mut haystack = filler;
    haystack[len - EICAR.len()..].copy_from_slice(EICAR);
    assert_eq!(
        find_signature(&haystack, EICAR, WINDOW),
        Some(len - EICAR.len())
    );
    haystack[len - 1] = b'#';
    assert_eq!(find_signature(&haystack, EICAR, WINDOW), None);
}

#[test]
fn find_signature_agrees_with_memmem_for_every_offset_with_small_windows() {
    // Small windows make every boundary case cheap: every offset of the signature in a haystack of
    // many windows, for windows smaller than, equal to and larger than the signature.
    let len = 400;
    for window in [1, 2, 7, EICAR.len() - 1, EICAR.len(), EICAR.len() + 1, 100] {
        for at in 0..=len - EICAR.len() {
            let mut haystack = vec![b'.'; len];
            haystack[at..at + EICAR.len()].copy_from_slice(EICAR);
            assert_eq!(
                find_signature(&haystack, EICAR, window),
                memmem::find(&haystack, EICAR),
                "window {window}, at {at}"
            );
        }
        // Two signatures: the leftmost one, as memmem reports it.
        let mut haystack = vec![b'.'; len];
        haystack[300..300 + EICAR.len()].copy_from_slice(EICAR);
        haystack[150..150 + EICAR.len()].copy_from_slice(EICAR);
        assert_eq!(find_signature(&haystack, EICAR, window), Some(150));
    }
}

#[test]
fn find_signature_and_window_count_edge_cases() {
    // Empty haystack, and one shorter than the needle.
    assert_eq!(find_signature(b"", EICAR, WINDOW), None);
    assert_eq!(find_signature(&EICAR[..10], EICAR, WINDOW), None);
    assert_eq!(find_signature(&EICAR[..67], EICAR, 1), None);
    // The whole haystack is the needle.
    assert_eq!(find_signature(EICAR, EICAR, WINDOW), Some(0));
    assert_eq!(find_signature(EICAR, EICAR, 1), Some(0));
    // Window 0 is treated as 1.
    let mut haystack = vec![b'-'; 200];
    haystack[77..77 + EICAR.len()].copy_from_slice(EICAR);
    assert_eq!(find_signature(&haystack, EICAR, 0), Some(77));
    assert_eq!(
        window_count(200, EICAR.len(), 0),
        window_count(200, EICAR.len(), 1)
    );
    // An empty needle is found at 0, as memmem finds it.
    assert_eq!(
        find_signature(b"abc", b"", WINDOW),
        memmem::find(b"abc", b"")
    );
    // window_count: at least one, and one more each time the file outgrows the last window.
    let overlap = EICAR.len() - 1;
    assert_eq!(window_count(0, EICAR.len(), WINDOW), 1);
    assert_eq!(window_count(10, EICAR.len(), WINDOW), 1);
    assert_eq!(window_count(WINDOW + overlap, EICAR.len(), WINDOW), 1);
    assert_eq!(window_count(WINDOW + overlap + 1, EICAR.len(), WINDOW), 2);
    assert_eq!(window_count(3 * WINDOW + 1000, EICAR.len(), WINDOW), 4);
    assert_eq!(window_count(usize::MAX, EICAR.len(), usize::MAX), 1);
    // ... and it is exactly the number of windows find_signature visits.
    for window in [0, 1, 5, 67, 68, 69, 1000] {
        for len in (0..3000).step_by(7) {
            assert_eq!(
                window_count(len, EICAR.len(), window),
                windows_visited(len, EICAR.len(), window),
                "len {len}, window {window}"
            );
        }
    }
}

// ---- the documented statuses of FltCreateSectionForDataScan ------------------------------------

#[test]
fn an_empty_file_is_clean_end_of_file_and_only_the_context_is_released() {
    let world = loaded();
    world.create_file("C:\\scan\\empty.txt", b"");
    let handle = world
        .open("C:\\scan\\empty.txt", Open::read())
        .expect("an empty file opens");
    world.close(handle).unwrap();
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!(
            "{TAG}: \\Device\\HarddiskVolume1\\scan\\empty.txt: open: clean: an empty file (FltCreateSectionForDataScan returned {})",
            NtStatus(STATUS_END_OF_FILE)
        )
    );
    let creates = world.calls("FltCreateSectionForDataScan");
    assert_eq!(creates.len(), 1);
    assert!(creates[0].text.ends_with("STATUS_END_OF_FILE (0xC0000011)"));
    // The failed create: the allocation reference is released exactly once, nothing is closed.
    assert_eq!(calls_on(&world, &context_of(&creates[0])), FAILED_CREATE);
    for api in [
        "FltCloseSectionForDataScan",
        "ObCloseHandle",
        "ObfDereferenceObject",
        "MmMapViewInSystemSpaceEx",
        "MmCopyMemory",
    ] {
        assert_eq!(count(&world, api), 0, "{api}");
    }
    world.unload(TAG).unwrap();
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!("{TAG}: unloaded: 1 clean, 0 infected, 0 not scanned")
    );
    world.finish();
}

#[test]
fn a_directory_opened_without_file_directory_file_is_skipped() {
    let world = loaded();
    world.create_dir("C:\\scan\\folder");
    // No FILE_DIRECTORY_FILE and no FILE_NON_DIRECTORY_FILE: the open succeeds on a directory.
    // `common::create::is_opened_file` asks the file system (FltIsDirectory), and the sample
    // leaves it alone: no section, no line.
    let either = Open {
        options: 0,
        ..Open::read()
    };
    let lines = world.log_lines(TAG).len();
    let handle = world
        .open("C:\\scan\\folder", either)
        .expect("the directory opens");
    world.close(handle).unwrap();
    assert_eq!(world.log_lines(TAG).len(), lines);
    assert_eq!(count(&world, "FltIsDirectory"), 1);
    assert_eq!(count(&world, "FltCreateSectionForDataScan"), 0);
    // Should the create still say STATUS_FILE_IS_A_DIRECTORY (injected here on a file): not
    // scanned, the context released once and never closed, and the open goes on.
    world.fail_nth_with("FltCreateSectionForDataScan", 1, STATUS_FILE_IS_A_DIRECTORY);
    assert_eq!(open_and_close(&world, INFECTED), Ok(()));
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!(
            "{TAG}: {}: open: not scanned: FltCreateSectionForDataScan returned {}; the open goes on",
            device_name(INFECTED),
            NtStatus(STATUS_FILE_IS_A_DIRECTORY)
        )
    );
    let creates = world.calls("FltCreateSectionForDataScan");
    assert_eq!(calls_on(&world, &context_of(&creates[0])), FAILED_CREATE);
    assert_eq!(count(&world, "FltCloseSectionForDataScan"), 0);
    world.unload(TAG).unwrap();
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!("{TAG}: unloaded: 0 clean, 0 infected, 1 not scanned")
    );
    world.finish();
}

#[test]
fn context_already_defined_without_a_section_to_wait_for_scans_again() {
    let world = loaded();
    // The create says another scan holds the stream; the lookup finds none (it just finished):
    // STATUS_NOT_FOUND, so the sample tries again and scans itself.
    world.fail_nth_with(
        "FltCreateSectionForDataScan",
        1,
        STATUS_FLT_CONTEXT_ALREADY_DEFINED,
    );
    world.fail_nth_with(
        "FltCreateSectionForDataScan",
        3,
        STATUS_FLT_CONTEXT_ALREADY_DEFINED,
    );
    assert_eq!(open_and_close(&world, CLEAN), Ok(()));
    assert_eq!(
        world.open(INFECTED, Open::read()),
        Err(NtStatus(STATUS_VIRUS_INFECTED))
    );
    let creates = world.calls("FltCreateSectionForDataScan");
    let results: Vec<_> = creates
        .iter()
        .map(|e| {
            e.text
                .rsplit("-> ")
                .next()
                .unwrap()
                .split([',', ' '])
                .next()
        })
        .collect();
    assert_eq!(
        results,
        [
            Some("STATUS_FLT_CONTEXT_ALREADY_DEFINED"),
            Some("STATUS_SUCCESS"),
            Some("STATUS_FLT_CONTEXT_ALREADY_DEFINED"),
            Some("STATUS_SUCCESS"),
        ]
    );
    let lookups = world.calls("FltGetSectionContext");
    assert_eq!(lookups.len(), 2);
    assert!(
        lookups
            .iter()
            .all(|e| e.text.ends_with("STATUS_NOT_FOUND (0xC0000225)"))
    );
    // The refused contexts were released once each, never closed.
    for refused in [&creates[0], &creates[2]] {
        assert_eq!(calls_on(&world, &context_of(refused)), FAILED_CREATE);
    }
    assert_eq!(count(&world, "FltCloseSectionForDataScan"), 2);
    // Nothing to wait for, so no waiting line: just the verdicts.
    assert_eq!(lines_with(&world, "waiting").len(), 0);
    assert_eq!(lines_with(&world, "clean: 5400 bytes").len(), 1);
    assert_eq!(lines_with(&world, "open: INFECTED").len(), 1);
    world.finish();
}

#[test]
fn context_already_defined_every_time_fails_open_after_max_attempts() {
    let world = loaded();
    for nth in 1..=MAX_ATTEMPTS {
        world.fail_nth_with(
            "FltCreateSectionForDataScan",
            nth,
            STATUS_FLT_CONTEXT_ALREADY_DEFINED,
        );
    }
    // Fail open: the scanner could not get a section, so it lets the open through, and says so.
    assert_eq!(open_and_close(&world, INFECTED), Ok(()));
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!(
            "{TAG}: {}: open: not scanned: other scans of this stream held its section {MAX_ATTEMPTS} times; the open goes on",
            device_name(INFECTED)
        )
    );
    assert_eq!(
        count(&world, "FltCreateSectionForDataScan"),
        MAX_ATTEMPTS as usize
    );
    assert_eq!(count(&world, "FltGetSectionContext"), MAX_ATTEMPTS as usize);
    assert_eq!(count(&world, "FltCloseSectionForDataScan"), 0);
    // The next open has a section again, and is denied.
    assert_eq!(
        world.open(INFECTED, Open::read()),
        Err(NtStatus(STATUS_VIRUS_INFECTED))
    );
    world.finish();
}

#[test]
fn any_other_create_failure_fails_open_with_a_log_line_and_no_leak() {
    for status in [
        STATUS_INSUFFICIENT_RESOURCES,
        STATUS_FILE_LOCK_CONFLICT,
        STATUS_INVALID_FILE_FOR_SECTION,
        STATUS_PRIVILEGE_NOT_HELD,
    ] {
        let world = loaded();
        world.fail_nth_with("FltCreateSectionForDataScan", 1, status);
        let handle = world
            .open(INFECTED, Open::read())
            .expect("fail open: the open goes on unscanned");
        assert_eq!(world.read(handle, 0, 68).unwrap(), EICAR);
        world.close(handle).unwrap();
        assert_eq!(
            world.log_lines(TAG).last().unwrap(),
            &format!(
                "{TAG}: {}: open: not scanned: FltCreateSectionForDataScan returned {}; the open goes on",
                device_name(INFECTED),
                NtStatus(status)
            )
        );
        let creates = world.calls("FltCreateSectionForDataScan");
        assert_eq!(
            calls_on(&world, &context_of(&creates[0])),
            FAILED_CREATE,
            "{}",
            NtStatus(status)
        );
        assert_eq!(count(&world, "FltCloseSectionForDataScan"), 0);
        assert_eq!(count(&world, "FltCancelFileOpen"), 0);
        world.unload(TAG).unwrap();
        assert_eq!(
            world.log_lines(TAG).last().unwrap(),
            &format!("{TAG}: unloaded: 0 clean, 0 infected, 1 not scanned")
        );
        world.finish();
    }
}

#[test]
fn a_failed_allocation_or_mapping_fails_open_and_closes_what_was_opened() {
    let world = loaded();
    world.fail_nth("FltAllocateContext", 1);
    assert_eq!(open_and_close(&world, INFECTED), Ok(()));
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!(
            "{TAG}: {}: open: not scanned: FltAllocateContext returned {}; the open goes on",
            device_name(INFECTED),
            NtStatus(STATUS_INSUFFICIENT_RESOURCES)
        )
    );
    assert_eq!(count(&world, "FltCreateSectionForDataScan"), 0);

    world.fail_nth("MmMapViewInSystemSpaceEx", 1);
    assert_eq!(open_and_close(&world, INFECTED), Ok(()));
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!(
            "{TAG}: {}: open: not scanned: MmMapViewInSystemSpaceEx returned {}; the open goes on",
            device_name(INFECTED),
            NtStatus(STATUS_INSUFFICIENT_RESOURCES)
        )
    );
    // Nothing to unmap, but the section was created: closed in order all the same.
    let trace = world.trace();
    let second_open = trace
        .iter()
        .rposition(|e| {
            e.kind == EventKind::User && e.text.starts_with("open C:\\scan\\eicar.com access")
        })
        .unwrap();
    assert_eq!(
        calls_among(&trace[second_open..], &CLOSE_ORDER),
        [
            "ObCloseHandle",
            "ObfDereferenceObject",
            "FltCloseSectionForDataScan",
            "FltReleaseContext",
            "FltReleaseContext",
        ]
    );
    world.finish();
}

#[test]
fn a_copy_that_fails_part_way_is_not_scanned_and_the_open_goes_on() {
    // The signature sits in the second window; the first window's copy fails part-way (a paging
    // read that failed: MmCopyMemory returns an error status and a partial count instead of
    // raising). The scan stops there: "not scanned", the open goes on, everything is closed.
    let world = loaded();
    world.create_file("C:\\scan\\large.bin", &large_with(EICAR, WINDOW + 10));
    world.fail_nth("MmCopyMemory", 1);
    assert_eq!(open_and_close(&world, "C:\\scan\\large.bin"), Ok(()));
    let copy = &world.calls("MmCopyMemory")[0];
    assert!(
        copy.text.ends_with(&format!(
            "{}, 32768 bytes transferred",
            NtStatus(STATUS_IN_PAGE_ERROR)
        )),
        "{copy}"
    );
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!(
            "{TAG}: \\Device\\HarddiskVolume1\\scan\\large.bin: open: not scanned: MmCopyMemory returned {} at offset 32768; the open goes on",
            NtStatus(STATUS_IN_PAGE_ERROR)
        )
    );
    // One view, unmapped; the section closed in order; the window buffer freed.
    assert_eq!(count(&world, "MmMapViewInSystemSpaceEx"), 1);
    let trace = world.trace();
    let mut close = vec!["MmCopyMemory"];
    close.extend(CLOSE_ORDER);
    assert_eq!(
        calls_among(&trace, &close),
        [
            "MmCopyMemory",
            "MmUnmapViewInSystemSpace",
            "ObCloseHandle",
            "ObfDereferenceObject",
            "FltCloseSectionForDataScan",
            "FltReleaseContext",
            "FltReleaseContext"
        ]
    );
    assert_eq!(
        count(&world, "ExAllocatePool2"),
        count(&world, "ExFreePoolWithTag")
    );
    // Without the fault the same file is found.
    assert_eq!(
        world.open("C:\\scan\\large.bin", Open::read()),
        Err(NtStatus(STATUS_VIRUS_INFECTED))
    );
    world.finish();
}

#[test]
fn a_page_whose_paging_read_fails_is_not_scanned_and_the_open_and_the_cleanup_go_on() {
    // A bad page in the first window, the signature in the second. The views are mapped with
    // MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS (else the model reports a finding, which
    // `finish` fails on), so MmCopyMemory returns the in-page error with the bytes before the
    // page: "not scanned", the operation goes on, everything is closed.
    let world = loaded();
    let path = "C:\\scan\\bad-sector.bin";
    world.create_file(path, &large_with(EICAR, WINDOW + 10));
    world.fail_paging_read(path, 3 * 4096 + 5, STATUS_IN_PAGE_ERROR);
    let not_scanned = |what: &str| {
        format!(
            "{TAG}: {}: {what}: not scanned: MmCopyMemory returned {} at offset 12288; the {what} goes on",
            device_name(path),
            NtStatus(STATUS_IN_PAGE_ERROR)
        )
    };
    assert_eq!(open_and_close(&world, path), Ok(()));
    assert_eq!(world.log_lines(TAG).last().unwrap(), &not_scanned("open"));
    // A handle that writes is scanned again at cleanup: the same, and the file stays as written.
    let handle = world.open(path, Open::write()).unwrap();
    world.write(handle, 0, b"rewritten", false).unwrap();
    world.close(handle).unwrap();
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &not_scanned("cleanup after a write")
    );
    assert!(world.contents(path).unwrap().starts_with(b"rewritten"));
    assert_eq!(
        count(&world, "MmMapViewInSystemSpaceEx"),
        count(&world, "MmUnmapViewInSystemSpace")
    );
    assert_eq!(
        count(&world, "ExAllocatePool2"),
        count(&world, "ExFreePoolWithTag")
    );
    world.finish();
}

#[test]
fn the_scan_reads_the_file_as_it_is_now_and_only_up_to_its_size() {
    // A view shows the file's current data (the model's views are live), and a view is whole
    // pages: 5400 bytes map as 8192. The count logged is the file size the create reported.
    let world = loaded();
    assert_eq!(open_and_close(&world, CLEAN), Ok(()));
    let map = &world.calls("MmMapViewInSystemSpaceEx")[0];
    assert!(
        map.text.contains("8192 bytes of the section at offset 0"),
        "{map}"
    );
    assert_eq!(
        world.calls("MmCopyMemory")[0]
            .text
            .rsplit(", ")
            .next()
            .unwrap(),
        "5400 bytes transferred"
    );
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!(
            "{TAG}: {}: open: clean: 5400 bytes scanned in 1 window(s)",
            device_name(CLEAN)
        )
    );
    world.finish();
}

#[test]
fn the_network_share_gets_no_instance_and_its_files_open_normally() {
    let world = World::new();
    world.create_file("Z:\\share\\eicar.com", EICAR);
    world.set_parameter(TAG, "DemoFolder", RegValue::Sz("scan".into()));
    world.load(TAG, ALTITUDE, DriverEntry).expect("loads");
    assert!(world.instance_handle(TAG, 'C').is_some());
    assert_eq!(world.instance_handle(TAG, 'Z'), None);
    let handle = world
        .open("Z:\\share\\eicar.com", Open::read())
        .expect("not scanned there: opens");
    assert_eq!(world.read(handle, 0, 68).unwrap(), EICAR);
    world.close(handle).unwrap();
    assert_eq!(
        lines_with(&world, "not attaching"),
        [format!(
            "{TAG}: not attaching to volume type network (MUP): FltRegisterForDataScan returned {}; its files are not scanned",
            NtStatus(STATUS_NOT_SUPPORTED)
        )]
    );
    let registers = world.calls("FltRegisterForDataScan");
    assert_eq!(registers.len(), 2);
    assert!(
        registers[1]
            .text
            .ends_with("STATUS_NOT_SUPPORTED (0xC00000BB)")
    );
    assert_eq!(count(&world, "FltCreateSectionForDataScan"), 0);
    assert_eq!(count(&world, "FltAllocateContext"), 0);
    world.finish();
}

#[test]
fn a_write_of_the_signature_is_found_at_cleanup_and_the_next_open_is_denied() {
    let world = loaded();
    let writer = world.open(CLEAN, Open::write()).expect("open for write");
    // A write-only open is not scanned (nothing is read through it), but it is tracked.
    assert_eq!(count(&world, "FltCreateSectionForDataScan"), 0);
    assert_eq!(count(&world, "FltSetStreamHandleContext"), 1);
    world.write(writer, 100, EICAR, false).expect("the write");
    world.close(writer).expect("the close goes on");
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!(
            "{TAG}: {}: cleanup after a write: INFECTED: EICAR signature at offset 100: the file stays, its next open will be denied",
            device_name(CLEAN)
        )
    );
    // The file stays as written.
    let mut expected = clean_text();
    expected[100..100 + EICAR.len()].copy_from_slice(EICAR);
    assert_eq!(world.contents(CLEAN).unwrap(), expected);
    // The cleanup's scan closed its section in order.
    let trace = world.trace();
    // First the release of the stream-handle context the cleanup looked up, then the scan.
    let mut expected_calls = vec![
        "FltReleaseContext",
        "FltCreateSectionForDataScan",
        "MmMapViewInSystemSpaceEx",
        "MmCopyMemory",
    ];
    expected_calls.extend(CLOSE_ORDER);
    expected_calls.push("FltReleaseContext");
    let mut apis = expected_calls.clone();
    apis.push("FltCancelFileOpen");
    let from_cleanup = trace
        .iter()
        .position(|e| e.kind == EventKind::User && e.text.starts_with("write "))
        .unwrap();
    assert_eq!(calls_among(&trace[from_cleanup..], &apis), expected_calls);
    assert_eq!(
        world.open(CLEAN, Open::read()),
        Err(NtStatus(STATUS_VIRUS_INFECTED))
    );
    world.unload(TAG).unwrap();
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!("{TAG}: unloaded: 0 clean, 2 infected, 0 not scanned")
    );
    world.finish();
}

#[test]
fn a_read_write_handle_is_scanned_at_open_and_again_at_cleanup_after_a_write() {
    let world = loaded();
    let handle = world.open(CLEAN, Open::read_write()).expect("clean: opens");
    world.write(handle, 0, b"still clean", false).unwrap();
    world.close(handle).unwrap();
    assert_eq!(
        lines_with(&world, "clean.txt"),
        [
            format!(
                "{TAG}: {}: open: clean: 5400 bytes scanned in 1 window(s)",
                device_name(CLEAN)
            ),
            format!(
                "{TAG}: {}: cleanup after a write: clean: 5400 bytes scanned in 1 window(s)",
                device_name(CLEAN)
            ),
        ]
    );
    world.finish();
}

#[test]
fn handles_that_did_not_write_are_not_scanned_at_cleanup() {
    let world = loaded();
    // A write handle that never wrote.
    let writer = world.open(CLEAN, Open::write()).unwrap();
    world.close(writer).unwrap();
    assert_eq!(count(&world, "FltCreateSectionForDataScan"), 0);
    // A read handle gets no stream-handle context at all: its cleanup has nothing to look at.
    let reader = world.open(CLEAN, Open::read()).unwrap();
    world.read(reader, 0, 5).unwrap();
    world.close(reader).unwrap();
    assert_eq!(count(&world, "FltSetStreamHandleContext"), 1);
    assert_eq!(count(&world, "FltCreateSectionForDataScan"), 1);
    assert_eq!(lines_with(&world, "cleanup").len(), 0);
    world.finish();
}

#[test]
fn paging_file_directory_and_volume_opens_are_not_scanned() {
    let world = loaded();
    world.create_file("C:\\pagefile.sys", EICAR);
    world.create_dir("C:\\scan\\folder");
    let paging = world
        .open("C:\\pagefile.sys", Open::read_write().paging_file())
        .expect("the paging file opens");
    world.close(paging).unwrap();
    let dir = world
        .open("C:\\scan\\folder", Open::directory())
        .expect("the directory opens");
    world.close(dir).unwrap();
    let volume = world
        .open(
            "C:",
            Open {
                options: 0,
                ..Open::read_write()
            },
        )
        .expect("the volume opens");
    world.close(volume).unwrap();
    for api in [
        "FltCreateSectionForDataScan",
        "FltAllocateContext",
        "FltSetStreamHandleContext",
        "FltGetFileNameInformation",
    ] {
        assert_eq!(count(&world, api), 0, "{api}");
    }
    assert_eq!(world.log_lines(TAG).len(), 2, "only the attach lines");
    world.finish();
}

#[test]
fn a_failed_open_is_left_alone() {
    let world = loaded();
    assert!(world.open("C:\\scan\\missing.txt", Open::read()).is_err());
    assert_eq!(count(&world, "FltAllocateContext"), 0);
    world.finish();
}

// ---- every fault at every call site ------------------------------------------------------------

/// What the user saw in [`scenario`].
#[derive(Debug)]
struct Seen {
    clean: Result<(), NtStatus>,
    eicar: Result<(), NtStatus>,
    after_write: Result<(), NtStatus>,
}

/// Load, open a clean file and the EICAR file, write the signature into another file and close
/// it, then open that file.
fn scenario(world: &World) -> Result<Seen, NtStatus> {
    world.create_file(CLEAN, &clean_text());
    world.create_file(INFECTED, EICAR);
    world.create_file("C:\\scan\\target.txt", b"will be overwritten");
    world.set_parameter(TAG, "DemoFolder", RegValue::Sz("scan".into()));
    world.load(TAG, ALTITUDE, DriverEntry)?;
    let clean = open_and_close(world, CLEAN);
    let eicar = open_and_close(world, INFECTED);
    let writer = world
        .open("C:\\scan\\target.txt", Open::read_write())
        .expect("a clean file opens for write");
    world.write(writer, 0, EICAR, false).expect("the write");
    world.close(writer).expect("the close");
    let after_write = open_and_close(world, "C:\\scan\\target.txt");
    Ok(Seen {
        clean,
        eicar,
        after_write,
    })
}

#[test]
fn every_fault_at_every_call_site_fails_open_and_leaks_nothing() {
    let denied = Err(NtStatus(STATUS_VIRUS_INFECTED));
    let faults = sweep_faults(scenario, |world, fault, seen| {
        let seen = match (fault.api, seen) {
            ("FltRegisterFilter" | "FltStartFiltering", Err(_)) => return,
            (_, Ok(seen)) => seen,
            (_, Err(status)) => panic!("{fault:?}: the sample did not load: {status}"),
        };
        // The user's clean I/O always succeeds, and the written file stays as written.
        assert_eq!(seen.clean, Ok(()), "{fault:?}");
        assert_eq!(
            &world.contents("C:\\scan\\target.txt").unwrap()[..EICAR.len()],
            EICAR,
            "{fault:?}"
        );
        let lines = world.log_lines(TAG);
        let not_attached = lines
            .iter()
            .any(|l| l.contains("not attaching to volume type NTFS"));
        // The EICAR file is denied, or the fault hit its scan and the log says so.
        if seen.eicar != denied {
            assert_eq!(seen.eicar, Ok(()), "{fault:?}: only denied or allowed");
            assert!(
                not_attached
                    || lines
                        .iter()
                        .any(|l| l.contains("eicar.com: open: not scanned")),
                "{fault:?}: allowed without a reason:\n{}",
                lines.join("\n")
            );
        }
        if seen.after_write != denied {
            assert_eq!(seen.after_write, Ok(()), "{fault:?}");
            assert!(
                not_attached
                    || lines.iter().any(|l| l.contains("target.txt")
                        && (l.contains("not scanned") || l.contains("not tracked"))),
                "{fault:?}: allowed without a reason:\n{}",
                lines.join("\n")
            );
        }
        assert_eq!(world.violations().len(), 0, "{fault:?}");
    });
    let mut apis: Vec<_> = faults.iter().map(|f| f.api).collect();
    apis.dedup();
    assert_eq!(
        apis,
        [
            "FltRegisterFilter",
            "FltStartFiltering",
            "FltAllocateContext",
            "FltSetStreamHandleContext",
            "FltRegisterForDataScan",
            "FltCreateSectionForDataScan",
            "MmMapViewInSystemSpaceEx",
            "MmCopyMemory",
            "FltGetFileNameInformation",
            "ExAllocatePool2",
        ]
    );
}

// ---- IRQL ------------------------------------------------------------------------------------

#[test]
fn no_irql_violation_and_post_operation_irql_changes_nothing() {
    let mut logs = Vec::new();
    for level in [irql::DISPATCH_LEVEL, irql::APC_LEVEL, irql::PASSIVE_LEVEL] {
        let world = World::new();
        world.set_post_operation_irql(level);
        let seen = scenario(&world).expect("loads");
        assert_eq!(seen.clean, Ok(()));
        assert_eq!(seen.eicar, Err(NtStatus(STATUS_VIRUS_INFECTED)));
        assert_eq!(seen.after_write, Err(NtStatus(STATUS_VIRUS_INFECTED)));
        assert_eq!(world.violations().len(), 0);
        // Every scan ran at PASSIVE_LEVEL: post-create always does, and so does pre-cleanup.
        assert!(
            world
                .calls("FltCreateSectionForDataScan")
                .iter()
                .all(|e| e.irql == irql::PASSIVE_LEVEL)
        );
        logs.push(world.log_lines(TAG));
        world.finish();
    }
    assert_eq!(logs[0], logs[1]);
    assert_eq!(logs[0], logs[2]);
}

// ---- several threads, one file --------------------------------------------------------------

// ---- waiting for the scan in flight -------------------------------------------------------------

/// How long a test waits for another thread to get somewhere before it fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// Waits (bounded by [`PATIENCE`]) until the sample has printed `n` lines containing `needle`.
fn wait_for_lines(world: &World, needle: &str, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while lines_with(world, needle).len() < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} line(s) with {needle:?}: {:#?}",
            world.log_lines(TAG)
        );
        std::thread::yield_now();
    }
}

/// How many `FltCreateSectionForDataScan` calls returned `STATUS_SUCCESS` and how many
/// `STATUS_FLT_CONTEXT_ALREADY_DEFINED`.
fn creates_linked_and_refused(world: &World) -> (usize, usize) {
    let creates = world.calls("FltCreateSectionForDataScan");
    let linked = creates
        .iter()
        .filter(|e| e.text.contains("-> STATUS_SUCCESS"))
        .count();
    let refused = creates
        .iter()
        .filter(|e| e.text.contains("STATUS_FLT_CONTEXT_ALREADY_DEFINED"))
        .count();
    (linked, refused)
}

#[test]
fn a_second_open_waits_for_the_scan_in_flight_and_adopts_its_infected_verdict() {
    let world = loaded();
    // The first open's create links its section and then waits: the scan is "in flight".
    let hold = world.hold_next_section_create();
    std::thread::scope(|s| {
        let first = s.spawn(|| world.open(INFECTED, Open::read()));
        assert!(hold.wait_held(PATIENCE), "the first create never linked");
        let second = s.spawn(|| world.open(INFECTED, Open::read()));
        wait_for_lines(
            &world,
            "eicar.com: open: another scan of this file is in flight (FltCreateSectionForDataScan returned STATUS_FLT_CONTEXT_ALREADY_DEFINED (0xC01C0002)): waiting for it",
            1,
        );
        hold.release();
        for open in [first, second] {
            assert_eq!(
                open.join().expect("no panic"),
                Err(NtStatus(STATUS_VIRUS_INFECTED))
            );
        }
    });
    // The second open did not scan: it found the first scan's context (FltGetSectionContext),
    // waited on its event, and took its verdict.
    assert_eq!(
        lines_with(
            &world,
            "eicar.com: open: INFECTED: the scan in flight found the EICAR signature at offset 0"
        )
        .len(),
        1
    );
    assert_eq!(
        lines_with(
            &world,
            "eicar.com: open: INFECTED: EICAR signature at offset 0: open denied"
        )
        .len(),
        2
    );
    assert_eq!(creates_linked_and_refused(&world), (1, 1));
    assert_eq!(count(&world, "FltCloseSectionForDataScan"), 1);
    assert_eq!(count(&world, "FltGetSectionContext"), 1);
    assert_eq!(count(&world, "FltCancellableWaitForSingleObject"), 1);
    // The wait ran inside FsRtlEnterFileSystem / FsRtlLeaveFileSystem.
    assert_eq!(count(&world, "KeEnterCriticalRegion"), 1);
    assert_eq!(count(&world, "KeLeaveCriticalRegion"), 1);
    assert_eq!(count(&world, "FltCancelFileOpen"), 2);
    world.finish();
}

#[test]
fn a_clean_verdict_is_adopted_only_from_a_scan_that_started_after_the_waiter_began() {
    let world = loaded();
    let in_flight = "clean.txt: open: another scan of this file is in flight";
    let first_hold = world.hold_next_section_create();
    std::thread::scope(|s| {
        let scanner = s.spawn(|| open_and_close(&world, CLEAN));
        assert!(
            first_hold.wait_held(PATIENCE),
            "the first create never linked"
        );
        let waiters = [
            s.spawn(|| open_and_close(&world, CLEAN)),
            s.spawn(|| open_and_close(&world, CLEAN)),
        ];
        wait_for_lines(&world, in_flight, 2);
        // The first scan started before both waiters began, so its clean verdict could predate
        // what they must see: both scan again. Hold the first of those scans; the other waiter
        // meets it, and this time may take its clean verdict, because it started later.
        let second_hold = world.hold_next_section_create();
        first_hold.release();
        assert!(second_hold.wait_held(PATIENCE), "no waiter scanned again");
        wait_for_lines(&world, in_flight, 3);
        second_hold.release();
        for open in waiters.into_iter().chain([scanner]) {
            assert_eq!(open.join().expect("no panic"), Ok(()));
        }
    });
    assert_eq!(
        lines_with(
            &world,
            "clean.txt: open: clean: the scan in flight, which started after this open began, found nothing"
        )
        .len(),
        1
    );
    assert_eq!(
        lines_with(
            &world,
            "clean.txt: open: clean: 5400 bytes scanned in 1 window(s)"
        )
        .len(),
        2
    );
    assert_eq!(creates_linked_and_refused(&world), (2, 3));
    assert_eq!(count(&world, "FltCloseSectionForDataScan"), 2);
    assert_eq!(count(&world, "FltCancellableWaitForSingleObject"), 3);
    world.finish();
}

#[test]
fn threads_opening_the_same_files_at_once_always_get_the_right_verdict() {
    const THREADS: usize = 4;
    const OPENS: usize = 50;
    let world = loaded();
    let start = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                start.wait();
                for _ in 0..OPENS {
                    assert_eq!(
                        world.open(INFECTED, Open::read()),
                        Err(NtStatus(STATUS_VIRUS_INFECTED))
                    );
                    assert_eq!(open_and_close(&world, CLEAN), Ok(()));
                }
            });
        }
    });
    let opens = THREADS * OPENS;
    assert_eq!(
        lines_with(
            &world,
            "eicar.com: open: INFECTED: EICAR signature at offset 0: open denied"
        )
        .len(),
        opens
    );
    // No scan gave up, and every clean open has its clean verdict: its own scan, or that of a
    // scan that started after it began.
    assert_eq!(lines_with(&world, ": not scanned"), Vec::<String>::new());
    let own = lines_with(&world, "clean.txt: open: clean: 5400 bytes scanned").len();
    let adopted = lines_with(&world, "clean.txt: open: clean: the scan in flight").len();
    assert_eq!(own + adopted, opens);
    // Every section that was created was closed once; creates that found the stream taken were
    // refused with STATUS_FLT_CONTEXT_ALREADY_DEFINED and only released their context.
    let creates = world.calls("FltCreateSectionForDataScan");
    let linked = creates
        .iter()
        .filter(|e| e.text.contains("-> STATUS_SUCCESS"))
        .count();
    let refused = creates
        .iter()
        .filter(|e| e.text.contains("STATUS_FLT_CONTEXT_ALREADY_DEFINED"))
        .count();
    assert_eq!(linked + refused, creates.len());
    assert_eq!(count(&world, "FltCloseSectionForDataScan"), linked);
    // One section for every scan that ran: each verdict not adopted from another scan.
    let eicar_adopted = lines_with(&world, "eicar.com: open: INFECTED: the scan in flight").len();
    assert_eq!(linked, own + opens - eicar_adopted);
    eprintln!(
        "{linked} sections, {refused} creates refused (ALREADY_DEFINED), {} waits",
        lines_with(&world, "waiting for it").len()
    );
    world.finish();
}

#[test]
fn unload_after_the_scenario_leaks_nothing_and_counts_right() {
    let world = World::new();
    let seen = scenario(&world).expect("loads");
    assert_eq!(seen.clean, Ok(()));
    world.create_file("C:\\scan\\empty.txt", b"");
    assert_eq!(open_and_close(&world, "C:\\scan\\empty.txt"), Ok(()));
    world.unload(TAG).expect("unloads");
    // clean.txt, target.txt at open, empty.txt; eicar.com, target.txt at cleanup and open.
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!("{TAG}: unloaded: 3 clean, 3 infected, 0 not scanned")
    );
    world.assert_clean();
    // Loaded again, the counters start from zero.
    world.set_parameter(TAG, "DemoFolder", RegValue::Sz("scan".into()));
    world.load(TAG, ALTITUDE, DriverEntry).expect("loads again");
    assert_eq!(open_and_close(&world, CLEAN), Ok(()));
    world.unload(TAG).unwrap();
    assert_eq!(
        world.log_lines(TAG).last().unwrap(),
        &format!("{TAG}: unloaded: 1 clean, 0 infected, 0 not scanned")
    );
    world.finish();
}

/// `FltUnregisterFilter` waits for callbacks in flight, and those callbacks still use the filter
/// handle: a post-create parked mid-way while the unload begins must still allocate its section
/// context with a live handle (`FltAllocateContext`'s Filter "is required and cannot be NULL").
#[test]
fn an_unload_that_begins_while_a_post_create_is_mid_way_leaves_it_a_live_filter_handle() {
    let world = loaded();
    // Parked before the scan: the name query comes first.
    let parked = world.hold_next_call("FltGetFileNameInformation");
    std::thread::scope(|s| {
        let opener = s.spawn(|| open_and_close(&world, CLEAN));
        assert!(
            parked.wait_held(PATIENCE),
            "the post-create never got there"
        );
        let unloading = s.spawn(|| world.unload(TAG));
        assert!(
            world
                .wait_for_event(PATIENCE, |e| e.kind == EventKind::FltMgr
                    && e.text.starts_with("instance teardown waits for"))
                .is_some(),
            "the unload never waited for the parked post-create"
        );
        parked.release();
        assert_eq!(opener.join().expect("no panic"), Ok(()));
        unloading.join().expect("no panic").expect("unloads");
    });
    for call in world.calls("FltAllocateContext") {
        assert!(!call.text.contains("not a filter handle"), "{call}");
    }
    assert_eq!(
        world.log_lines(TAG)[2..],
        [
            format!(
                "{TAG}: {}: open: clean: 5400 bytes scanned in 1 window(s)",
                device_name(CLEAN)
            ),
            format!("{TAG}: unloaded: 1 clean, 0 infected, 0 not scanned"),
        ]
    );
    world.finish();
}

/// The second open's wait for the first scan ends without the scan's verdict: how it ended
/// (injected, since the model cannot cancel a user's I/O, kill a thread or wait 10 s by itself),
/// the second open's result, and the sample's lines about it.
fn second_open_whose_wait_ends_with(status: NTSTATUS) -> (World, Result<(), NtStatus>) {
    let world = loaded();
    world.fail_nth_with("FltCancellableWaitForSingleObject", 1, status);
    let hold = world.hold_next_section_create();
    let second = std::thread::scope(|s| {
        let first = s.spawn(|| world.open(INFECTED, Open::read()));
        assert!(hold.wait_held(PATIENCE), "the first create never linked");
        let second = s.spawn(|| open_and_close(&world, INFECTED));
        // The second open's wait ends on its own (injected); the first scan goes on after.
        let second = second.join().expect("no panic");
        hold.release();
        assert_eq!(
            first.join().expect("no panic"),
            Err(NtStatus(STATUS_VIRUS_INFECTED))
        );
        second
    });
    (world, second)
}

#[test]
fn a_wait_that_times_out_fails_open_with_a_line() {
    let (world, second) = second_open_whose_wait_ends_with(STATUS_TIMEOUT);
    // Fail open: the scan in flight is not this open's to wait for forever.
    assert_eq!(second, Ok(()));
    assert_eq!(
        lines_with(
            &world,
            "eicar.com: open: not scanned: the scan in flight did not finish"
        ),
        [format!(
            "{TAG}: {}: open: not scanned: the scan in flight did not finish within 10 s (STATUS_TIMEOUT (0x00000102)); the open goes on",
            device_name(INFECTED)
        )]
    );
    assert_eq!(count(&world, "KeEnterCriticalRegion"), 1);
    assert_eq!(count(&world, "KeLeaveCriticalRegion"), 1);
    world.finish();
}

#[test]
fn a_wait_ended_by_cancellation_or_thread_termination_cancels_the_open_with_that_status() {
    for status in [STATUS_CANCELLED, STATUS_THREAD_IS_TERMINATING] {
        let (world, second) = second_open_whose_wait_ends_with(status);
        // The user asked to abandon the open (or its thread is dying): it is cancelled with the
        // wait's status, as avscan does, and the file system's open is undone first.
        assert_eq!(second, Err(NtStatus(status)));
        assert_eq!(
            lines_with(&world, "eicar.com: open: not scanned: the wait"),
            [format!(
                "{TAG}: {}: open: not scanned: the wait for the scan in flight ended with {}; the open is cancelled with it",
                device_name(INFECTED),
                NtStatus(status)
            )]
        );
        // Both opens undone: the infected one and the cancelled one.
        assert_eq!(count(&world, "FltCancelFileOpen"), 2);
        assert_eq!(count(&world, "KeLeaveCriticalRegion"), 1);
        world.finish();
    }
}

/// The prefetcher's open (a `GUID_ECP_PREFETCH_OPEN` from kernel mode) is not scanned: no
/// section is created with its file object (avscan: I/O on a prefetch file object can
/// deadlock), and the open goes on. From user mode the ECP proves nothing, and the EICAR file is
/// scanned and denied as always.
#[test]
fn a_kernel_mode_prefetch_open_is_not_scanned_and_a_user_mode_one_is() {
    let world = loaded();
    let h = world
        .open(INFECTED, Open::read().prefetch_ecp(fltsim::EcpFrom::Kernel))
        .expect("the prefetcher's open is not scanned");
    world.close(h).expect("close");
    assert_eq!(count(&world, "FltCreateSectionForDataScan"), 0);
    assert_eq!(
        world
            .open(INFECTED, Open::read().prefetch_ecp(fltsim::EcpFrom::User))
            .map(drop),
        Err(NtStatus(STATUS_VIRUS_INFECTED))
    );
    assert_eq!(count(&world, "FltCreateSectionForDataScan"), 1);
    world.finish();
}
