//! section-context against fltsim: the section is created, found again by every later operation,
//! closed at the last cleanup, and never leaked; every status of `FltGetSectionContext`; every
//! fault at every call site; a race of many gets against the final cleanup.

use common::bindings::{
    FILE_EXECUTE, FILE_SHARE_READ, STATUS_ACCESS_DENIED, STATUS_END_OF_FILE,
    STATUS_FLT_CONTEXT_ALREADY_DEFINED, STATUS_INSUFFICIENT_RESOURCES, STATUS_NOT_SUPPORTED,
    STATUS_SHARING_VIOLATION,
};
use fltsim::{NtStatus, Open, RegValue, World, sweep_faults};
use rs_section_context::{DriverEntry, TAG};
use windows_sys::Win32::Storage::FileSystem::{DELETE, FILE_SHARE_DELETE, SYNCHRONIZE};

const ALTITUDE: u32 = 370_230;
const FILE: &str = "C:\\docs\\a.txt";
const NAME: &str = "\\Device\\HarddiskVolume1\\docs\\a.txt";

/// Read access, sharing read only: the open that holds a section.
fn holder() -> Open {
    Open::read().share(FILE_SHARE_READ)
}

fn loaded() -> World {
    let world = World::new();
    world.create_file(FILE, b"hello, section");
    world.create_file("C:\\docs\\b.txt", b"another stream");
    world.set_parameter(TAG, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(TAG, ALTITUDE, DriverEntry).expect("loads");
    world
}

/// The lines that mention `needle`.
fn lines_with(world: &World, needle: &str) -> Vec<String> {
    world
        .log_lines(TAG)
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}

/// The statuses `FltGetSectionContext` returned, in order.
fn get_results(world: &World) -> Vec<String> {
    world
        .calls("FltGetSectionContext")
        .iter()
        .map(|e| {
            let result = e.text.rsplit("-> ").next().unwrap_or_default();
            result
                .split([',', ' '])
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn the_section_is_found_at_each_step_then_closed_at_the_last_cleanup() {
    let world = loaded();
    let h = world.open(FILE, holder()).unwrap();
    assert_eq!(world.read(h, 0, 64).unwrap(), b"hello, section");
    assert_eq!(world.query_standard(h).unwrap().EndOfFile, 14);
    world.close(h).unwrap();

    // After the close, the stream has no section: a new open (with write sharing) sees NOT_FOUND.
    let h = world.open(FILE, Open::read()).unwrap();
    assert_eq!(world.read(h, 0, 5).unwrap(), b"hello");
    world.close(h).unwrap();

    let found = "section found (FltGetSectionContext), read";
    assert_eq!(
        world.log_lines(TAG)[1..],
        [
            format!(
                "{TAG}: {NAME}: section created (FltCreateSectionForDataScan), 14 bytes, process 1000"
            ),
            format!(
                "{TAG}: {NAME}: read: {found} 1, query 0, opened by process 1000 with 14 bytes"
            ),
            format!(
                "{TAG}: {NAME}: query information: {found} 1, query 1, opened by process 1000 with 14 bytes"
            ),
            format!(
                "{TAG}: {NAME}: cleanup: {found} 1, query 1, opened by process 1000 with 14 bytes"
            ),
            format!(
                "{TAG}: {NAME}: last cleanup: section closed (FltCloseSectionForDataScan STATUS_SUCCESS (0x00000000)), context released"
            ),
            format!(
                "{TAG}: {NAME}: opened with write access or write sharing: no section (a writer could conflict with it)"
            ),
            format!(
                "{TAG}: {NAME}: read: no section (FltGetSectionContext STATUS_NOT_FOUND (0xC0000225))"
            ),
            format!(
                "{TAG}: {NAME}: cleanup: no section (FltGetSectionContext STATUS_NOT_FOUND (0xC0000225))"
            ),
        ]
    );
    assert_eq!(
        get_results(&world),
        [
            "STATUS_NOT_FOUND",
            "STATUS_SUCCESS",
            "STATUS_SUCCESS",
            "STATUS_SUCCESS",
            "STATUS_NOT_FOUND",
            "STATUS_NOT_FOUND"
        ]
    );
    // The documented close order, once.
    let order: Vec<_> = world
        .trace()
        .iter()
        .filter_map(|e| match e.kind {
            fltsim::EventKind::Call(
                api @ ("ObCloseHandle" | "ObfDereferenceObject" | "FltCloseSectionForDataScan"),
            ) => Some(api),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        [
            "ObCloseHandle",
            "ObfDereferenceObject",
            "FltCloseSectionForDataScan"
        ]
    );
    world.finish();
}

#[test]
fn several_holders_share_one_section_and_only_the_last_holder_closes_it() {
    let world = loaded();
    let first = world.open(FILE, holder()).unwrap();
    let second = world.open(FILE, holder()).unwrap();
    // A reader that shares write may open too; it sees the section but does not hold it.
    let reader = world.open(FILE, Open::read()).unwrap();
    assert_eq!(
        lines_with(&world, "joined"),
        [format!(
            "{TAG}: {NAME}: joined the open section (FltGetSectionContext): 2 holders"
        )]
    );
    world.close(first).unwrap();
    world.read(reader, 0, 5).unwrap();
    world.close(reader).unwrap();
    assert_eq!(lines_with(&world, "section closed"), Vec::<String>::new());
    assert_eq!(world.calls("FltCreateSectionForDataScan").len(), 1);
    world.read(second, 0, 5).unwrap();
    world.close(second).unwrap();
    assert_eq!(
        lines_with(&world, "section closed"),
        [format!(
            "{TAG}: {NAME}: last cleanup: section closed (FltCloseSectionForDataScan STATUS_SUCCESS (0x00000000)), context released"
        )]
    );
    // The reader's read counted on the same context as the second holder's.
    assert!(
        lines_with(&world, "read: section found")
            .last()
            .unwrap()
            .contains("read 2,")
    );
    world.finish();
}

#[test]
fn closing_one_stream_leaves_the_other_streams_section_untouched() {
    let world = loaded();
    let a = world.open(FILE, holder()).unwrap();
    let b = world.open("C:\\docs\\b.txt", holder()).unwrap();
    world.close(a).unwrap();
    world.read(b, 0, 7).unwrap();
    let a = world.open(FILE, Open::read()).unwrap();
    world.read(a, 0, 5).unwrap();
    assert_eq!(
        &world.log_lines(TAG)[world.log_lines(TAG).len() - 3..],
        [
            format!(
                "{TAG}: \\Device\\HarddiskVolume1\\docs\\b.txt: read: section found (FltGetSectionContext), read 1, query 0, opened by process 1000 with 14 bytes"
            ),
            format!(
                "{TAG}: {NAME}: opened with write access or write sharing: no section (a writer could conflict with it)"
            ),
            format!(
                "{TAG}: {NAME}: read: no section (FltGetSectionContext STATUS_NOT_FOUND (0xC0000225))"
            ),
        ]
    );
    world.close(a).unwrap();
    world.close(b).unwrap();
    assert_eq!(lines_with(&world, "section closed").len(), 2);
    world.finish();
}

#[test]
fn not_supported_is_logged_once_per_instance_and_the_io_goes_on() {
    let world = loaded();
    world.create_file("Z:\\docs\\remote.txt", b"remote");
    for _ in 0..3 {
        let h = world.open("Z:\\docs\\remote.txt", holder()).unwrap();
        assert_eq!(world.read(h, 0, 6).unwrap(), b"remote");
        world.query_standard(h).unwrap();
        world.close(h).unwrap();
    }
    assert!(
        get_results(&world)
            .iter()
            .all(|s| s == "STATUS_NOT_SUPPORTED")
    );
    assert_eq!(world.calls("FltGetSectionContext").len(), 12);
    assert_eq!(
        lines_with(&world, "NOT_SUPPORTED"),
        [
            format!(
                "{TAG}: network (MUP) volume: FltRegisterForDataScan: STATUS_NOT_SUPPORTED (0xC00000BB); attaching anyway"
            ),
            format!(
                "{TAG}: \\Device\\Mup\\server\\share\\docs\\remote.txt: create: FltGetSectionContext: STATUS_NOT_SUPPORTED (0xC00000BB): this volume has no section contexts (logged once per instance)"
            ),
        ]
    );
    world.finish();
}

#[test]
fn not_supported_on_a_data_scan_volume_is_also_logged_once() {
    let world = loaded();
    world.fail_nth_with("FltGetSectionContext", 2, STATUS_NOT_SUPPORTED);
    world.fail_nth_with("FltGetSectionContext", 3, STATUS_NOT_SUPPORTED);
    let h = world.open(FILE, holder()).unwrap();
    world.read(h, 0, 5).unwrap();
    world.query_standard(h).unwrap();
    world.close(h).unwrap();
    assert_eq!(lines_with(&world, "STATUS_NOT_SUPPORTED").len(), 2); // setup on Z:, then C: once
    assert_eq!(lines_with(&world, "section closed").len(), 1);
    world.finish();
}

#[test]
fn an_undocumented_failure_of_the_lookup_is_logged_and_the_io_goes_on() {
    let world = loaded();
    world.fail_nth_with("FltGetSectionContext", 2, STATUS_INSUFFICIENT_RESOURCES);
    let h = world.open(FILE, holder()).unwrap();
    assert_eq!(world.read(h, 0, 5).unwrap(), b"hello");
    world.close(h).unwrap();
    assert_eq!(
        lines_with(&world, "INSUFFICIENT"),
        [format!(
            "{TAG}: {NAME}: read: FltGetSectionContext: STATUS_INSUFFICIENT_RESOURCES (0xC000009A)"
        )]
    );
    world.finish();
}

#[test]
fn a_lost_creation_race_joins_the_winner_instead() {
    let world = loaded();
    // The create says another open linked a section first; the retry finds none (the injected
    // status had no section behind it) and creates one.
    world.fail_nth_with(
        "FltCreateSectionForDataScan",
        1,
        STATUS_FLT_CONTEXT_ALREADY_DEFINED,
    );
    let h = world.open(FILE, holder()).unwrap();
    world.read(h, 0, 5).unwrap();
    world.close(h).unwrap();
    assert_eq!(world.calls("FltCreateSectionForDataScan").len(), 2);
    assert_eq!(
        get_results(&world)[..2],
        ["STATUS_NOT_FOUND", "STATUS_NOT_FOUND"]
    );
    assert_eq!(lines_with(&world, "section created").len(), 1);
    assert_eq!(lines_with(&world, "section closed").len(), 1);
    world.finish();
}

#[test]
fn an_empty_file_gets_end_of_file_and_no_section() {
    let world = loaded();
    world.create_file("C:\\docs\\empty.txt", b"");
    let h = world.open("C:\\docs\\empty.txt", holder()).unwrap();
    world.query_standard(h).unwrap();
    world.close(h).unwrap();
    let end = NtStatus(STATUS_END_OF_FILE);
    assert_eq!(
        lines_with(&world, "FltCreateSectionForDataScan"),
        [format!(
            "{TAG}: \\Device\\HarddiskVolume1\\docs\\empty.txt: FltCreateSectionForDataScan: {end}: no section"
        )]
    );
    world.finish();
}

/// A flush-and-purge needs write or append access (`NtFlushBuffersFileEx`), and a holder opens
/// without write access and denies write sharing, so no handle that could flush is open beside a
/// section: the I/O manager refuses the holder's own flush-and-purge with `STATUS_ACCESS_DENIED`
/// before any filter sees it, and the section stays.
#[test]
fn a_holders_flush_and_purge_is_refused_before_it_reaches_the_sample() {
    let world = loaded();
    let h = world.open(FILE, holder()).unwrap();
    assert_eq!(world.purge(h), Err(NtStatus(STATUS_ACCESS_DENIED)));
    assert!(
        world.open(FILE, Open::write()).is_err(),
        "a writer cannot open beside the holder"
    );
    world.read(h, 0, 5).unwrap();
    world.close(h).unwrap();
    assert_eq!(
        lines_with(&world, ": section closed ("),
        [format!(
            "{TAG}: {NAME}: last cleanup: section closed (FltCloseSectionForDataScan STATUS_SUCCESS (0x00000000)), context released"
        )]
    );
    world.finish();
}

/// A writer that opens while the holder's `FltCreateSectionForDataScan` is still running
/// (fltsim's `race_conflict_on_next_section`) is refused: the holder's share access was set in
/// the file system's create, before its post-create began, and it does not share write. So no
/// truncation can meet the section, during the create or after, and the callback is not called.
#[test]
fn a_writer_during_the_holders_create_is_refused_by_share_access() {
    let world = loaded();
    world.race_conflict_on_next_section(fltsim::Conflict::Truncate(1));
    let h = world.open(FILE, holder()).unwrap();
    assert_eq!(
        world.race_results(),
        [Err(NtStatus(STATUS_SHARING_VIOLATION))]
    );
    assert_ne!(world.contents(FILE).unwrap(), b"h");
    assert!(
        lines_with(&world, "SectionNotificationCallback").is_empty(),
        "nothing conflicted"
    );
    world.close(h).unwrap();
    assert_eq!(
        lines_with(&world, ": section closed ("),
        [format!(
            "{TAG}: {NAME}: last cleanup: section closed (FltCloseSectionForDataScan STATUS_SUCCESS (0x00000000)), context released"
        )]
    );
    world.finish();
}

#[test]
fn unload_with_streams_still_open_closes_every_section_and_leaks_nothing() {
    let world = loaded();
    let a = world.open(FILE, holder()).unwrap();
    let b = world.open("C:\\docs\\b.txt", holder()).unwrap();
    world.read(a, 0, 5).unwrap();
    world.unload(TAG).expect("unloads");
    assert_eq!(
        lines_with(&world, "instance teardown: section closed").len(),
        2
    );
    world.assert_clean();
    // The user's handles outlive the filter and still work.
    assert_eq!(world.read(b, 0, 7).unwrap(), b"another");
    world.close(a).unwrap();
    world.close(b).unwrap();
    world.finish();
}

#[test]
fn post_operations_at_dispatch_level_change_nothing() {
    let world = loaded();
    world.set_post_operation_irql(common::irql::DISPATCH_LEVEL);
    let h = world.open(FILE, holder()).unwrap();
    world.read(h, 0, 5).unwrap();
    world.close(h).unwrap();
    world.finish();
    assert_eq!(world.violations().len(), 0);
}

fn scenario(world: &World) -> Result<(), NtStatus> {
    world.create_file(FILE, b"hello, section");
    world.create_file("Z:\\docs\\remote.txt", b"remote");
    world.set_parameter(TAG, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(TAG, ALTITUDE, DriverEntry)?;
    let h = world.open(FILE, holder()).expect("holder open");
    let joined = world.open(FILE, holder()).expect("second holder");
    assert_eq!(world.read(h, 0, 64).expect("read"), b"hello, section");
    assert_eq!(world.query_standard(h).expect("query").EndOfFile, 14);
    world.close(h).expect("close");
    world.close(joined).expect("close");
    // A writer after the last holder: it must never meet a section left open.
    let w = world.open(FILE, Open::read_write()).expect("writer");
    world.set_end_of_file(w, 5).expect("truncate");
    world.close(w).expect("close");
    let z = world
        .open("Z:\\docs\\remote.txt", holder())
        .expect("remote open");
    assert_eq!(world.read(z, 0, 6).expect("remote read"), b"remote");
    world.close(z).expect("close");
    // Left open across the unload that `finish` does.
    let open = world.open(FILE, holder()).expect("open at unload");
    world.read(open, 0, 1).expect("read");
    Ok(())
}

#[test]
fn every_fault_at_every_call_site_leaves_the_user_io_working_and_nothing_leaked() {
    let faults = sweep_faults(scenario, |world, fault, result| match fault.api {
        "FltRegisterFilter" | "FltStartFiltering" => {
            assert!(result.is_err(), "{fault:?}: DriverEntry must fail");
        }
        _ => {
            assert!(result.is_ok(), "{fault:?}");
            assert_eq!(world.contents(FILE).unwrap(), b"hello", "{fault:?}");
        }
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
            "FltSetInstanceContext",
            "FltGetSectionContext",
            "FltRegisterForDataScan",
            "FltCreateSectionForDataScan",
            "FltGetFileNameInformation",
        ]
    );
}

#[test]
fn gets_from_many_threads_racing_the_final_cleanup_never_touch_a_freed_context() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 5;
    const READS: usize = 20;
    let world = loaded();
    for _ in 0..ROUNDS {
        let h = world.open(FILE, holder()).unwrap();
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        let r = world.open(FILE, Open::read()).expect("reader open");
                        for _ in 0..READS {
                            assert_eq!(world.read(r, 0, 5).expect("read"), b"hello");
                            world.query_standard(r).expect("query");
                        }
                        world.close(r).expect("reader close");
                    })
                })
                .collect();
            // The final cleanup of the holder races the readers' gets.
            world.close(h).unwrap();
            for reader in readers {
                reader.join().expect("reader thread");
            }
        });
        world.assert_clean();
    }
    assert_eq!(
        lines_with(&world, "last cleanup: section closed").len(),
        ROUNDS
    );
    // Every successful get was logged, and each was released once (the verifier checks the count).
    let found = world
        .calls("FltGetSectionContext")
        .iter()
        .filter(|e| e.text.contains("STATUS_SUCCESS"))
        .count();
    assert_eq!(found, lines_with(&world, "section found").len());
    world.finish();
}

/// `FltUnregisterFilter` waits for callbacks in flight, and those callbacks still use the filter
/// handle: a post-create parked mid-way while the unload begins must still allocate its section
/// context with a live handle (`FltAllocateContext`'s Filter "is required and cannot be NULL").
#[test]
fn an_unload_that_begins_while_a_post_create_is_mid_way_leaves_it_a_live_filter_handle() {
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
    let world = loaded();
    // Parked while it fills in the section context, just before allocating it.
    let parked = world.hold_next_call("FltGetRequestorProcessId");
    std::thread::scope(|s| {
        let opener = s.spawn(|| world.open(FILE, holder()));
        assert!(
            parked.wait_held(PATIENCE),
            "the post-create never got there"
        );
        let unloading = s.spawn(|| world.unload(TAG));
        assert!(
            world
                .wait_for_event(PATIENCE, |e| e.kind == fltsim::EventKind::FltMgr
                    && e.text.starts_with("instance teardown waits for"))
                .is_some(),
            "the unload never waited for the parked post-create"
        );
        parked.release();
        let h = opener.join().expect("no panic").expect("the open succeeds");
        unloading.join().expect("no panic").expect("unloads");
        world.close(h).unwrap();
    });
    for call in world.calls("FltAllocateContext") {
        assert!(!call.text.contains("not a filter handle"), "{call}");
    }
    // The open went on with a live handle: its section was created, and closed as it was
    // published, since the instance was already being torn down.
    assert_eq!(
        world.log_lines(TAG)[1..],
        [
            format!(
                "{TAG}: {NAME}: section created (FltCreateSectionForDataScan), 14 bytes, process 1000"
            ),
            format!(
                "{TAG}: {NAME}: instance teardown: section closed (FltCloseSectionForDataScan STATUS_SUCCESS (0x00000000)), context released"
            ),
        ]
    );
    world.finish();
}

/// Only an open that reads data holds a section. An execute-only open (every image load) has
/// `FILE_OBJECT.ReadAccess` set too, but gets no section and no line, and its cleanup leaves the
/// holders' section alone. Directories, paging files and volume opens are not files to hold.
#[test]
fn only_opens_that_read_data_hold_a_section_and_directories_and_paging_files_are_left_alone() {
    let world = loaded();
    world.create_dir("C:\\docs\\dir");
    world.create_file("C:\\pagefile.sys", &[0; 4096]);
    let holder_handle = world.open(FILE, holder()).unwrap();
    let since = world.log_lines(TAG).len();
    let execute_only = Open {
        access: FILE_EXECUTE | SYNCHRONIZE,
        ..holder()
    };
    let image = world.open(FILE, execute_only).unwrap();
    world.close(image).unwrap();
    let dir = world
        .open(
            "C:\\docs\\dir",
            Open {
                options: 0,
                ..holder()
            },
        )
        .unwrap();
    world.close(dir).unwrap();
    let paging = world
        .open("C:\\pagefile.sys", Open::read().paging_file())
        .unwrap();
    world.close(paging).unwrap();
    // None of the three said anything or created anything, and their cleanups neither: a handle
    // post-create did not mark is not reported on. The execute-only cleanup (a marked handle)
    // found the holder's section and did not leave it: the holder still holds it.
    let lines = world.log_lines(TAG)[since..].to_vec();
    assert_eq!(
        lines,
        [format!(
            "{TAG}: {NAME}: cleanup: section found (FltGetSectionContext), read 0, query 0, opened by process {} with 14 bytes",
            fltsim::USER_PROCESS_ID
        )],
    );
    assert_eq!(world.calls("FltCreateSectionForDataScan").len(), 1);
    assert!(lines_with(&world, "section closed").is_empty());
    // The holder's own cleanup is the last one: it closes the section.
    world.close(holder_handle).unwrap();
    assert_eq!(lines_with(&world, "last cleanup: section closed").len(), 1);
    world.finish();
}

/// A held section does not stop a co-opener's delete: the section maps no view, and the delete
/// is refused (`STATUS_CANNOT_DELETE`) only for a mapped view, nor is a delete a conflict that
/// Filter Manager notifies. The holder shares delete; the deleter's disposition goes through while
/// the section is open, the callback is never called, and the holder's close still closes the
/// section.
#[test]
fn a_co_openers_delete_goes_through_while_a_holder_holds_the_section() {
    let world = loaded();
    let h = world
        .open(FILE, holder().share(FILE_SHARE_READ | FILE_SHARE_DELETE))
        .unwrap();
    assert_eq!(lines_with(&world, "section created").len(), 1);
    let deleter = world
        .open(
            FILE,
            Open {
                access: DELETE | SYNCHRONIZE,
                ..Open::read()
            },
        )
        .unwrap();
    world
        .set_disposition(deleter, true)
        .expect("the delete goes through while the section is open");
    assert!(world.query_standard(h).unwrap().DeletePending);
    assert!(
        world
            .trace()
            .iter()
            .all(|e| e.kind != fltsim::EventKind::Callback("SectionNotificationCallback"))
    );
    // The section was open all along, and the holder's last cleanup closes it.
    assert!(lines_with(&world, ": section closed (").is_empty());
    world.close(deleter).unwrap();
    world.close(h).unwrap();
    assert_eq!(lines_with(&world, "last cleanup: section closed").len(), 1);
    world.finish();
}

/// The demo folder (`common::scope`): an open outside it, and its read, query and cleanup, cost
/// nothing in any callback: the pre-create passes the open by, and later operations find no
/// handle mark and return at once. No name query, no allocation, no line.
#[test]
fn io_outside_the_demo_folder_costs_no_name_query_no_allocation_and_no_line() {
    // The files of `loaded` are in folders named `docs`, the tests' scope.
    let world = loaded();
    world.create_file("C:\\elsewhere\\a.txt", b"outside");
    let since = world.trace_len();
    let h = world.open("C:\\elsewhere\\a.txt", holder()).unwrap();
    assert_eq!(world.read(h, 0, 7).unwrap(), b"outside");
    world.query_standard(h).unwrap();
    world.close(h).unwrap();
    world.assert_out_of_scope_is_free(since, TAG);
    // The same I/O in scope is reported: the check above is not vacuous.
    let h = world.open(FILE, holder()).unwrap();
    world.read(h, 0, 5).unwrap();
    world.close(h).unwrap();
    assert!(!lines_with(&world, "read: section found").is_empty());
    world.finish();
}

/// A holder's mark names the section it joined, not the stream. Here the first holder's section
/// closes at once, because every slot of the instance is taken (64 other streams hold theirs);
/// once a slot is free, a second holder creates a new section on the same stream. The first
/// holder's cleanup must leave that new section to its own holder.
#[test]
fn a_holder_whose_section_closed_early_leaves_a_newer_section_of_its_stream_alone() {
    const SLOTS: usize = 64;
    let world = loaded();
    let others: Vec<_> = (0..SLOTS)
        .map(|i| {
            let path = format!("C:\\docs\\slot{i}.txt");
            world.create_file(&path, b"fills a slot");
            world.open(&path, holder()).unwrap()
        })
        .collect();
    let first = world.open(FILE, holder()).unwrap();
    assert_eq!(
        lines_with(&world, "no free slot"),
        [format!(
            "{TAG}: {NAME}: no free slot: section closed (FltCloseSectionForDataScan STATUS_SUCCESS (0x00000000)), context released"
        )]
    );
    // A slot frees, and a second holder of the same stream creates section B.
    let mut others = others.into_iter();
    world.close(others.next().unwrap()).unwrap();
    let second = world.open(FILE, holder()).unwrap();
    assert_eq!(
        lines_with(&world, &format!("{NAME}: section created")).len(),
        2
    );
    // The first holder's cleanup finds B, and leaves it: it never held B.
    world.close(first).unwrap();
    assert!(
        lines_with(&world, &format!("{NAME}: last cleanup: section closed")).is_empty(),
        "the first holder closed the section it never joined"
    );
    world.read(second, 0, 5).unwrap();
    assert!(
        lines_with(&world, &format!("{NAME}: read: section found"))
            .last()
            .is_some_and(|l| l.contains("read 1,")),
        "section B is still there for its holder"
    );
    world.close(second).unwrap();
    assert_eq!(
        lines_with(&world, &format!("{NAME}: last cleanup: section closed")).len(),
        1
    );
    for h in others {
        world.close(h).unwrap();
    }
    world.finish();
}

/// Where the share-mode rule ends: a kernel-mode `IoCreateFileEx` with
/// `IO_IGNORE_SHARE_ACCESS_CHECK` skips the share check (`Open::ignoring_share_access`), so a
/// writer opens beside the holder and truncates. Filter Manager pends the truncation and calls
/// `SectionNotificationCallback`, which closes the section while its holder is still open; the
/// truncation then goes through. The next holder of the stream creates a new section, and the
/// first holder's cleanup leaves it alone: its mark names the section that was closed.
#[test]
fn a_kernel_writer_that_ignores_share_access_gets_the_section_closed_and_truncates() {
    let world = loaded();
    let first = world.open(FILE, holder()).unwrap();
    let writer = world
        .open(FILE, Open::read_write().ignoring_share_access())
        .expect("the kernel-mode writer skips the share check");
    world
        .set_end_of_file(writer, 1)
        .expect("the truncation goes through once the section is closed");
    assert_eq!(world.contents(FILE).unwrap(), b"h");
    assert_eq!(
        lines_with(&world, ": section closed ("),
        [format!(
            "{TAG}: {NAME}: section conflict: section closed (FltCloseSectionForDataScan STATUS_SUCCESS (0x00000000)), context released"
        )]
    );
    world.close(writer).unwrap();
    let second = world.open(FILE, holder()).unwrap();
    world.close(first).unwrap();
    world.read(second, 0, 1).unwrap();
    assert!(
        lines_with(&world, "last cleanup: section closed").is_empty(),
        "the first holder closed the second holder's section"
    );
    world.close(second).unwrap();
    assert_eq!(lines_with(&world, "last cleanup: section closed").len(), 1);
    world.finish();
}

/// The one operation that would wait on the section unnotified: a flush-and-purge, which the
/// file system pends until the section closes (the `FSCTL_SET_PURGE_FAILURE_MODE` page: "it is
/// responsible for pending the operation"), and which no callback announces. Only a writer that
/// skipped the share check can send one beside a holder. The sample treats it as a conflict: its
/// pre-flush closes the section, and the flush goes through at once instead of hanging until the
/// holders close.
#[test]
fn a_kernel_writers_flush_and_purge_closes_the_section_instead_of_waiting_for_the_holders() {
    let world = loaded();
    let first = world.open(FILE, holder()).unwrap();
    let writer = world
        .open(FILE, Open::read_write().ignoring_share_access())
        .unwrap();
    world.purge(writer).expect("the flush is not left pended");
    assert_eq!(
        lines_with(&world, ": section closed ("),
        [format!(
            "{TAG}: {NAME}: flush and purge: section closed (FltCloseSectionForDataScan STATUS_SUCCESS (0x00000000)), context released"
        )]
    );
    world.close(writer).unwrap();
    // The holder's own handle goes on; the stream's next holder gets a new section.
    assert_eq!(world.read(first, 0, 5).unwrap(), b"hello");
    let second = world.open(FILE, holder()).unwrap();
    world.close(first).unwrap();
    world.close(second).unwrap();
    assert_eq!(lines_with(&world, "last cleanup: section closed").len(), 1);
    world.finish();
}

/// The prefetcher's open (a `GUID_ECP_PREFETCH_OPEN` from kernel mode) gets no section; the same
/// open with the ECP from user mode does (`common::create::is_prefetch_open`).
#[test]
fn a_kernel_mode_prefetch_open_gets_no_section_and_a_user_mode_one_does() {
    for (from, sections) in [(fltsim::EcpFrom::Kernel, 0), (fltsim::EcpFrom::User, 1)] {
        let world = loaded();
        let h = world.open(FILE, holder().prefetch_ecp(from)).unwrap();
        world.close(h).unwrap();
        assert_eq!(
            world.calls("FltCreateSectionForDataScan").len(),
            sections,
            "{from:?}"
        );
        world.finish();
    }
}
