//! section-conflict against fltsim: conflicting I/O succeeds while a scan is in flight, fails
//! without the notification, races with the create, every status and fault, unload, stress.

use std::{
    sync::mpsc,
    time::{Duration, Instant},
};

use common::{
    NtStatus,
    bindings::{
        STATUS_END_OF_FILE, STATUS_FILE_IS_A_DIRECTORY, STATUS_FILE_LOCK_CONFLICT,
        STATUS_FLT_CONTEXT_ALREADY_DEFINED, STATUS_INSUFFICIENT_RESOURCES,
        STATUS_INVALID_FILE_FOR_SECTION, STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED,
        STATUS_PRIVILEGE_NOT_HELD, STATUS_USER_MAPPED_FILE,
    },
    irql::PASSIVE_LEVEL,
};
use fltsim::{Conflict, EventKind, Open, World, sweep_faults};
use rs_section_conflict::{CHUNK_SIZE, DriverEntry, chunk_count};

const NAME: &str = "rs-section-conflict";
const ALTITUDE: u32 = 265_140;
const BIG: &str = "C:\\data\\big.bin";
const SMALL: &str = "C:\\data\\small.bin";
/// 1 MiB: 256 chunks, at least half a second of scanning, so a conflict meets it in flight.
const BIG_SIZE: usize = 1 << 20;
/// Three chunks: a scan that finishes in a few milliseconds.
const SMALL_SIZE: usize = 2 * CHUNK_SIZE + 100;

fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
}

fn world_with_files() -> World {
    let world = World::new();
    world.create_file(BIG, &bytes(BIG_SIZE));
    world.create_file(SMALL, &bytes(SMALL_SIZE));
    world
}

/// Polls the sample's log until a line satisfies `pred`, for at most 20 s (a bound, not a
/// timing assertion: the line is expected long before).
fn wait_for_line(world: &World, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(line) = file_lines(world).into_iter().find(|l| pred(l)) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no such line; log: {:#?}",
            file_lines(world)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The sample's debugger lines about files (the volume it does not attach to, `Z:`, says so
/// once at load; `network_volumes_are_not_attached...` checks that line).
fn file_lines(world: &World) -> Vec<String> {
    world
        .log_lines(NAME)
        .into_iter()
        .filter(|l| !l.contains("not attaching to this volume"))
        .collect()
}

fn callbacks(world: &World) -> usize {
    world
        .trace()
        .iter()
        .filter(|e| e.kind == EventKind::Callback("SectionNotificationCallback"))
        .filter(|e| e.text.starts_with("SectionNotificationCallback ->"))
        .count()
}

fn run(world: &World, handle: fltsim::Handle, conflict: Conflict) -> Result<(), NtStatus> {
    match conflict {
        Conflict::Truncate(size) => world.set_end_of_file(handle, size),
        Conflict::NonCachedWrite => world.write(handle, 0, b"XXXX", true),
        Conflict::Purge => world.purge(handle),
    }
}

fn describe(conflict: Conflict) -> String {
    match conflict {
        Conflict::Truncate(size) => format!("a set-end-of-file to {size} bytes"),
        Conflict::NonCachedWrite => "a non-cached write of 4 bytes at 0".into(),
        Conflict::Purge => "a flush-and-purge".into(),
    }
}

/// Starts a scan of BIG, then runs `conflict` from a second handle; returns the I/O's result.
fn conflict_in_flight(world: &World, conflict: Conflict) -> Result<(), NtStatus> {
    world.load(NAME, ALTITUDE, DriverEntry).expect("loads");
    let reader = world.open(BIG, Open::read()).expect("open for read");
    let chunks = chunk_count(i64::try_from(BIG_SIZE).unwrap());
    assert_eq!(
        file_lines(world),
        [format!(
            "{NAME}: \\data\\big.bin: scanning {BIG_SIZE} bytes in {chunks} chunks"
        )]
    );
    // Write-only, so this open starts no scan of its own.
    let writer = world.open(BIG, Open::write()).expect("second handle");
    let result = run(world, writer, conflict);
    world.close(writer).unwrap();
    world.close(reader).unwrap();
    result
}

fn assert_gives_way(conflict: Conflict) {
    let world = world_with_files();
    conflict_in_flight(&world, conflict).expect("the conflicting I/O succeeds");
    let io = describe(conflict);
    let aborted = wait_for_line(&world, |l| l.contains("scan aborted after"));
    let lines = file_lines(&world);
    assert_eq!(
        lines[1..3],
        [
            format!(
                "{NAME}: \\data\\big.bin: {io} conflicts with the scan's section: aborting the scan and closing the section"
            ),
            format!(
                "{NAME}: \\data\\big.bin: section closed (STATUS_SUCCESS (0x00000000)): {io} proceeds"
            ),
        ],
        "{lines:#?}"
    );
    // The scan had not finished: the callback did not wait for it.
    let done: usize = aborted
        .split("after ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a chunk count");
    assert!(done < 256, "{aborted}");
    assert_eq!(callbacks(&world), 1);
    assert_eq!(world.calls("FltCloseSectionForDataScan").len(), 1);
    assert_eq!(world.calls("ObCloseHandle").len(), 1);
    assert_eq!(world.calls("ObfDereferenceObject").len(), 1);
    assert_callback_closes_in_order(&world);
    match conflict {
        Conflict::Truncate(size) => assert_eq!(
            world.contents(BIG).unwrap().len(),
            usize::try_from(size).unwrap()
        ),
        Conflict::NonCachedWrite => assert_eq!(&world.contents(BIG).unwrap()[..4], b"XXXX"),
        Conflict::Purge => assert_eq!(world.contents(BIG).unwrap(), bytes(BIG_SIZE)),
    }
    world.unload(NAME).unwrap();
    assert_eq!(
        file_lines(&world).last().unwrap(),
        &format!(
            "{NAME}: unloaded: 1 scans: 0 complete, 1 aborted by conflicting I/O, 0 stopped for unload, 0 failed; 1 section conflicts, 0 before FltCreateSectionForDataScan returned"
        )
    );
    world.finish();
}

/// On the callback's thread, between its entry and its return, the calls are exactly: wait for
/// the current chunk, close handle, object, link, let go, signal. No wait for the scan.
fn assert_callback_closes_in_order(world: &World) {
    let trace = world.trace();
    let enter = trace
        .iter()
        .position(|e| e.text.starts_with("SectionNotificationCallback ->"))
        .expect("the callback ran");
    let thread = trace[enter].thread;
    assert_eq!(trace[enter].irql, PASSIVE_LEVEL);
    let calls: Vec<&str> = trace[enter..]
        .iter()
        .filter(|e| e.thread == thread)
        .take_while(|e| !e.text.starts_with("SectionNotificationCallback <-"))
        .filter_map(|e| match e.kind {
            EventKind::Call(api) => Some(api),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [
            "FltAcquirePushLockExclusive",
            "ObCloseHandle",
            "ObfDereferenceObject",
            "FltCloseSectionForDataScan",
            "FltReleasePushLock",
            "KeSetEvent",
        ]
    );
}

#[test]
fn a_truncation_from_another_handle_aborts_the_scan_and_succeeds() {
    assert_gives_way(Conflict::Truncate(10));
}

#[test]
fn a_non_cached_write_from_another_handle_aborts_the_scan_and_succeeds() {
    assert_gives_way(Conflict::NonCachedWrite);
}

#[test]
fn a_purge_from_another_handle_aborts_the_scan_and_succeeds() {
    assert_gives_way(Conflict::Purge);
}

#[test]
fn without_the_notification_the_same_io_fails_with_user_mapped_file() {
    for conflict in [
        Conflict::Truncate(10),
        Conflict::NonCachedWrite,
        Conflict::Purge,
    ] {
        let world = world_with_files();
        world.set_section_notifications(false);
        assert_eq!(
            conflict_in_flight(&world, conflict),
            Err(NtStatus(STATUS_USER_MAPPED_FILE)),
            "{conflict:?}"
        );
        assert_eq!(callbacks(&world), 0);
        assert_eq!(world.contents(BIG).unwrap(), bytes(BIG_SIZE));
        // Unload stops the scan, which closes its own section.
        world.unload(NAME).unwrap();
        let lines = file_lines(&world);
        assert!(
            lines[lines.len() - 2].contains("scan stopped for unload after")
                && lines[lines.len() - 2].ends_with("section closed (STATUS_SUCCESS (0x00000000))"),
            "{lines:#?}"
        );
        assert!(
            lines.last().unwrap().contains(
                "1 scans: 0 complete, 0 aborted by conflicting I/O, 1 stopped for unload"
            ),
            "{lines:#?}"
        );
        world.finish();
    }
}

#[test]
fn a_finished_scan_closes_its_own_section_and_a_later_conflict_is_a_no_op() {
    let world = world_with_files();
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    let reader = world.open(SMALL, Open::read()).unwrap();
    let hash = bytes(SMALL_SIZE).iter().fold(0x811C_9DC5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    });
    let line = wait_for_line(&world, |l| l.contains("scan complete"));
    assert_eq!(
        line,
        format!(
            "{NAME}: \\data\\small.bin: scan complete: 3 chunks, FNV-1a {hash:#010x}; section closed (STATUS_SUCCESS (0x00000000))"
        )
    );
    let writer = world.open(SMALL, Open::write()).unwrap();
    world.set_end_of_file(writer, 10).expect("truncates");
    world
        .write(writer, 0, b"abcd", true)
        .expect("non-cached write");
    world.purge(writer).expect("purge");
    assert_eq!(callbacks(&world), 0, "no section left: nothing to notify");
    assert_eq!(world.contents(SMALL).unwrap().len(), 10);
    assert_eq!(world.calls("FltCloseSectionForDataScan").len(), 1);
    world.close(writer).unwrap();
    world.close(reader).unwrap();
    world.unload(NAME).unwrap();
    assert!(
        file_lines(&world)
            .last()
            .unwrap()
            .contains("1 scans: 1 complete, 0 aborted by conflicting I/O, 0 stopped for unload, 0 failed; 0 section conflicts")
    );
    world.finish();
}

#[test]
fn a_conflict_while_the_create_is_still_running_is_handled() {
    for conflict in [
        Conflict::Truncate(10),
        Conflict::NonCachedWrite,
        Conflict::Purge,
    ] {
        let world = world_with_files();
        world.load(NAME, ALTITUDE, DriverEntry).unwrap();
        world.race_conflict_on_next_section(conflict);
        let reader = world.open(BIG, Open::read()).expect("the open succeeds");
        assert_eq!(world.race_results(), [Ok(())], "{conflict:?}");
        let io = describe(conflict);
        let lines = file_lines(&world);
        let expected = [
            format!(
                "{NAME}: \\data\\big.bin: {io} arrived before FltCreateSectionForDataScan returned: closing the section context"
            ),
            format!(
                "{NAME}: \\data\\big.bin: section closed (STATUS_SUCCESS (0x00000000)): {io} proceeds"
            ),
            format!(
                "{NAME}: \\data\\big.bin: the section was closed for a conflicting I/O before FltCreateSectionForDataScan returned: handle and object closed, no scan"
            ),
        ];
        for line in &expected {
            assert!(lines.contains(line), "{conflict:?}: {lines:#?}");
        }
        // The racing open's own create found our section linked, and left it alone.
        assert!(
            lines.iter().any(|l| l.ends_with(
                "not scanned: FltCreateSectionForDataScan returned STATUS_FLT_CONTEXT_ALREADY_DEFINED (0xC01C0002)"
            )),
            "{lines:#?}"
        );
        assert_eq!(world.calls("FltCloseSectionForDataScan").len(), 1);
        assert_eq!(world.calls("ObCloseHandle").len(), 1);
        assert!(world.calls("FltQueueGenericWorkItem").is_empty());
        world.close(reader).unwrap();
        world.unload(NAME).unwrap();
        assert!(
            file_lines(&world)
                .last()
                .unwrap()
                .ends_with("0 scans: 0 complete, 0 aborted by conflicting I/O, 0 stopped for unload, 0 failed; 1 section conflicts, 1 before FltCreateSectionForDataScan returned")
        );
        world.finish();
    }
}

#[test]
fn every_create_status_is_logged_and_the_open_goes_on() {
    // Natural ones: an empty file, a second open while a scan is in flight, a directory opened
    // without FILE_DIRECTORY_FILE.
    let world = world_with_files();
    world.create_file("C:\\data\\empty.bin", b"");
    world.create_dir("C:\\data\\dir");
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    let empty = world.open("C:\\data\\empty.bin", Open::read()).unwrap();
    let first = world.open(BIG, Open::read()).unwrap();
    let second = world.open(BIG, Open::read()).unwrap();
    let dir = world
        .open(
            "C:\\data\\dir",
            Open {
                options: 0,
                ..Open::read()
            },
        )
        .unwrap();
    let lines = file_lines(&world);
    for (file, status) in [
        ("empty.bin", STATUS_END_OF_FILE),
        ("big.bin", STATUS_FLT_CONTEXT_ALREADY_DEFINED),
        ("dir", STATUS_FILE_IS_A_DIRECTORY),
    ] {
        let line = format!(
            "{NAME}: \\data\\{file}: not scanned: FltCreateSectionForDataScan returned {}",
            NtStatus(status)
        );
        assert!(lines.contains(&line), "{line}\n{lines:#?}");
    }
    assert_eq!(world.read(second, 0, 4).unwrap(), bytes(4));
    for h in [empty, first, second, dir] {
        world.close(h).unwrap();
    }
    world.finish();
    // Only one World is alive at a time.
    drop(world);

    // The ones the model cannot produce naturally, injected.
    for status in [
        STATUS_FILE_LOCK_CONFLICT,
        STATUS_INVALID_FILE_FOR_SECTION,
        STATUS_NOT_SUPPORTED,
        STATUS_PRIVILEGE_NOT_HELD,
        STATUS_INSUFFICIENT_RESOURCES,
        STATUS_INVALID_PARAMETER,
    ] {
        let world = world_with_files();
        world.load(NAME, ALTITUDE, DriverEntry).unwrap();
        world.fail_nth_with("FltCreateSectionForDataScan", 1, status);
        let h = world.open(SMALL, Open::read()).expect("the open succeeds");
        assert_eq!(world.read(h, 0, 4).unwrap(), bytes(4));
        assert_eq!(
            file_lines(&world),
            [format!(
                "{NAME}: \\data\\small.bin: not scanned: FltCreateSectionForDataScan returned {}",
                NtStatus(status)
            )]
        );
        assert!(world.calls("FltCloseSectionForDataScan").is_empty());
        world.close(h).unwrap();
        world.finish();
    }
}

#[test]
fn network_volumes_are_not_attached_and_writers_are_not_scanned() {
    let world = world_with_files();
    world.create_file("Z:\\share.bin", &bytes(100));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    assert_eq!(
        world.log_lines(NAME),
        [
            "rs-section-conflict: not attaching to this volume: FltRegisterForDataScan returned STATUS_NOT_SUPPORTED (0xC00000BB)"
        ]
    );
    let remote = world.open("Z:\\share.bin", Open::read()).unwrap();
    world
        .set_end_of_file(remote, 0)
        .expect_err("opened read-only");
    world.close(remote).unwrap();
    let remote = world.open("Z:\\share.bin", Open::read_write()).unwrap();
    world.set_end_of_file(remote, 1).unwrap();
    world.close(remote).unwrap();
    let writer = world.open(BIG, Open::write()).unwrap();
    world.set_end_of_file(writer, 1).unwrap();
    world.close(writer).unwrap();
    assert!(world.calls("FltCreateSectionForDataScan").is_empty());
    world.finish();
}

#[test]
fn unload_stops_a_scan_in_flight_and_leaves_nothing_behind() {
    let world = world_with_files();
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    let reader = world.open(BIG, Open::read()).unwrap();
    world.unload(NAME).unwrap();
    let lines = file_lines(&world);
    assert!(
        lines[1]
            .starts_with("rs-section-conflict: \\data\\big.bin: scan stopped for unload after "),
        "{lines:#?}"
    );
    assert!(lines[2].contains("1 stopped for unload"), "{lines:#?}");
    // The handle outlives the filter; the file is intact and truncatable.
    world.close(reader).unwrap();
    let writer = world.open(BIG, Open::read_write()).unwrap();
    world.set_end_of_file(writer, 0).unwrap();
    world.close(writer).unwrap();
    world.finish();
}

fn fault_scenario(world: &World) -> Result<(), NtStatus> {
    world.create_file(BIG, &bytes(BIG_SIZE));
    world.create_file(SMALL, &bytes(SMALL_SIZE));
    world.load(NAME, ALTITUDE, DriverEntry)?;
    // A scan that completes...
    let small = world.open(SMALL, Open::read()).expect("open small");
    // If its scan started, let it end (bounded), so its calls are part of every run.
    if world
        .log_lines(NAME)
        .iter()
        .any(|l| l.contains("small.bin: scanning"))
    {
        wait_for_line(world, |l| l.contains("small.bin: scan "));
    }
    // ... and one that a truncation aborts.
    let reader = world.open(BIG, Open::read()).expect("open big");
    // Write-only, so this open starts no scan of its own.
    let writer = world.open(BIG, Open::write()).expect("second handle");
    world
        .set_end_of_file(writer, 10)
        .expect("the truncation succeeds whatever failed inside the sample");
    world.close(writer).expect("close");
    world.close(reader).expect("close");
    world.close(small).expect("close");
    Ok(())
}

#[test]
fn every_fault_leaves_the_user_io_working_and_nothing_leaked() {
    let faults = sweep_faults(fault_scenario, |world, fault, result| match fault.api {
        "FltRegisterFilter" | "FltStartFiltering" => {
            assert!(result.is_err(), "{fault:?}: DriverEntry must fail");
        }
        _ => {
            assert!(result.is_ok(), "{fault:?}");
            assert_eq!(world.contents(BIG).unwrap().len(), 10, "{fault:?}");
            let lines = world.log_lines(NAME);
            let expected = match fault.api {
                "FltRegisterForDataScan" => {
                    "FltRegisterForDataScan returned STATUS_INSUFFICIENT_RESOURCES"
                }
                "ExAllocatePool2" => {
                    "not scanned: ExAllocatePool2 failed: STATUS_INSUFFICIENT_RESOURCES"
                }
                "FltAllocateContext" => {
                    "not scanned: FltAllocateContext failed: STATUS_INSUFFICIENT_RESOURCES"
                }
                "FltAllocateGenericWorkItem" => "not scanned: FltAllocateGenericWorkItem failed",
                "FltCreateSectionForDataScan" => {
                    "not scanned: FltCreateSectionForDataScan returned STATUS_INSUFFICIENT_RESOURCES"
                }
                "MmMapViewInSystemSpace" => {
                    "MmMapViewInSystemSpace returned STATUS_INSUFFICIENT_RESOURCES (0xC000009A); section closed (STATUS_SUCCESS (0x00000000))"
                }
                other => panic!("unexpected fault site {other}"),
            };
            // The scan of BIG maps a timing-dependent number of views before the truncation
            // aborts it, so a late MmMapViewInSystemSpace fault may not fire in this run.
            let fired = world.trace().iter().any(|e| {
                e.kind == EventKind::Verifier
                    && e.text.starts_with(&format!(
                        "fault injected: call #{} of {} ",
                        fault.nth, fault.api
                    ))
            });
            assert!(
                !fired || lines.iter().any(|l| l.contains(expected)),
                "{fault:?}: {lines:#?}"
            );
        }
    });
    let apis: std::collections::BTreeSet<_> = faults.iter().map(|f| f.api).collect();
    for api in [
        "FltRegisterFilter",
        "FltStartFiltering",
        "FltRegisterForDataScan",
        "ExAllocatePool2",
        "FltAllocateContext",
        "FltAllocateGenericWorkItem",
        "FltCreateSectionForDataScan",
        "MmMapViewInSystemSpace",
    ] {
        assert!(apis.contains(api), "{api} was never failed: {faults:?}");
    }
}

#[test]
fn callbacks_and_kernel_calls_respect_their_irql() {
    let world = world_with_files();
    world.set_post_operation_irql(common::irql::DISPATCH_LEVEL);
    conflict_in_flight(&world, Conflict::Truncate(100)).unwrap();
    wait_for_line(&world, |l| l.contains("scan aborted"));
    for api in [
        "FltCreateSectionForDataScan",
        "ObCloseHandle",
        "MmMapViewInSystemSpace",
        "FltCloseSectionForDataScan",
    ] {
        for call in world.calls(api) {
            assert_eq!(call.irql, PASSIVE_LEVEL, "{call}");
        }
    }
    world.finish();
    assert_eq!(world.violations(), []);
}

/// Many threads open, scan, conflict with and close the same two files. Every conflicting I/O
/// succeeds; the run ends with no leak, no double close (`finish()` checks), and no deadlock (the
/// watchdog below bounds it).
#[test]
fn stress_many_threads_conflicting_with_scans_of_the_same_files() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 12;
    const SIZE: usize = 16 * CHUNK_SIZE;
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let world = World::new();
        let files = ["C:\\data\\one.bin", "C:\\data\\two.bin"];
        for file in files {
            world.create_file(file, &bytes(SIZE));
        }
        world.load(NAME, ALTITUDE, DriverEntry).unwrap();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let world = &world;
                s.spawn(move || {
                    for round in 0..ROUNDS {
                        let file = files[(t + round) % 2];
                        let reader = world.open(file, Open::read()).expect("open for read");
                        let writer = world.open(file, Open::read_write()).expect("open rw");
                        let conflict = match (t + round) % 3 {
                            0 => Conflict::Truncate(1000),
                            1 => Conflict::NonCachedWrite,
                            _ => Conflict::Purge,
                        };
                        run(world, writer, conflict)
                            .unwrap_or_else(|s| panic!("{conflict:?} on {file}: {s}"));
                        // Grow the file back (cached: no conflict) for the next scans.
                        world
                            .write(writer, 0, &bytes(SIZE), false)
                            .expect("cached write");
                        world.close(writer).expect("close");
                        world.close(reader).expect("close");
                    }
                });
            }
        });
        world.unload(NAME).unwrap();
        let summary = file_lines(&world).last().unwrap().clone();
        world.finish();
        done.send(summary).unwrap();
    });
    let summary = finished
        .recv_timeout(Duration::from_mins(2))
        .expect("the stress run finished (no deadlock)");
    // Every scan started ended exactly one way.
    let numbers: Vec<u32> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [started, complete, aborted, stopped, failed, ..] = numbers[..] else {
        panic!("{summary}")
    };
    assert!(started > 0, "{summary}");
    assert_eq!(started, complete + aborted + stopped + failed, "{summary}");
    assert_eq!(failed, 0, "{summary}");
}
