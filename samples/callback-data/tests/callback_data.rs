//! callback-data against fltsim: what the user sees (opens succeed, one line per file), where the
//! sample's own I/O goes (only below it), every status path of the calls it teaches, every fault at
//! every call site, IRQL, leaks, and a multi-threaded run.

use common::{
    bindings::{
        IRP_MJ_QUERY_INFORMATION, STATUS_ACCESS_DENIED, STATUS_FLT_INVALID_ASYNCHRONOUS_REQUEST,
        STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_REQUEST, STATUS_OBJECT_NAME_NOT_FOUND,
    },
    irql,
};
use fltsim::{EventKind, NtStatus, Open, RegValue, World, sweep_faults};
use rs_callback_data::DriverEntry;

const NAME: &str = "rs-callback-data";
const ALTITUDE: u32 = 370_220;
const QUERY: usize = IRP_MJ_QUERY_INFORMATION as usize;

/// The files every test starts from.
fn files(world: &World) {
    world.create_file("C:\\docs\\a.txt", b"hello");
    world.create_file("C:\\docs\\big.bin", &[7; 10_000]);
    world.create_file("C:\\docs\\empty.log", b"");
    world.create_dir("C:\\docs\\photos");
}

/// The line the sample prints for a file it could ask about.
fn line(path: &str, size: usize, id: i64) -> String {
    format!(
        "rs-callback-data: \\Device\\HarddiskVolume1{path}: size {size}, links 1, delete pending no, file id {id:#x}"
    )
}

/// The line the completion routine prints for a file whose asynchronous query succeeded.
fn async_line(path: &str, size: usize) -> String {
    format!(
        "rs-callback-data: \\Device\\HarddiskVolume1{path}: async FileStandardInformation: size \
         {size}, links 1 (completion routine at DISPATCH_LEVEL)"
    )
}

/// The sample's lines from the synchronous queries (steps 1 to 5), in order.
fn sync_lines(world: &World) -> Vec<String> {
    let lines = world.log_lines(NAME);
    lines
        .into_iter()
        .filter(|l| !l.contains(": async "))
        .collect()
}

/// The sample's lines about the asynchronous query (step 6), in order.
fn async_lines(world: &World) -> Vec<String> {
    let lines = world.log_lines(NAME);
    lines
        .into_iter()
        .filter(|l| l.contains(": async "))
        .collect()
}

/// The sample's calls since `since`, split into those on the opener's thread and those on any
/// other thread (the asynchronous completions).
fn sample_calls_by_thread(
    world: &World,
    since: usize,
    opener: u32,
) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut mine = Vec::new();
    let mut others = Vec::new();
    for e in world.trace().into_iter().skip(since) {
        if e.who != NAME {
            continue;
        }
        if let EventKind::Call(api) = e.kind
            && e.text.starts_with(&format!("{api}("))
        {
            if e.thread == opener {
                mine.push(api);
            } else {
                others.push(api);
            }
        }
    }
    (mine, others)
}

/// A bound on a hang, not a timing assertion.
const BOUND: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits (at most `bound`) until the asynchronous request's completion routine has made its
/// last call since `since`: its `ExReleaseRundownProtection`, which follows the file-object
/// dereference that `World::close` waits for. The model records a call when it returns, so
/// until then the routine's last calls may not be in the trace yet. `false` if it did not come.
fn completion_finished(world: &World, since: usize, bound: std::time::Duration) -> bool {
    let start = world.trace()[since..].first().map_or(u64::MAX, |e| e.seq);
    world
        .wait_for_event(bound, |e| {
            e.seq >= start
                && e.who == NAME
                && e.kind == EventKind::Call("ExReleaseRundownProtection")
                && e.text.starts_with("ExReleaseRundownProtection(")
        })
        .is_some()
}

/// [`sample_calls_by_thread`] for the first open since `since`, once its completion routine
/// has finished (at most [`BOUND`]).
fn settled_calls(world: &World, since: usize) -> (Vec<&'static str>, Vec<&'static str>) {
    assert!(
        completion_finished(world, since, BOUND),
        "the completion routine did not finish within {BOUND:?}"
    );
    sample_calls_by_thread(world, since, opener_thread(world, since))
}

/// The model's number for the thread that ran the first post-create since `since`.
fn opener_thread(world: &World, since: usize) -> u32 {
    world
        .trace()
        .into_iter()
        .skip(since)
        .find(|e| e.who == NAME)
        .expect("the sample ran")
        .thread
}

/// Opens `path` for reading, reads it all and closes it: what the user observes.
fn open_and_read(world: &World, path: &str) -> Result<Vec<u8>, NtStatus> {
    let h = world.open(path, Open::read())?;
    let bytes = world.read(h, 0, 1 << 16).or_else(|status| {
        // An empty file reads as end-of-file.
        if status.0 == common::bindings::STATUS_END_OF_FILE {
            Ok(Vec::new())
        } else {
            Err(status)
        }
    });
    world.close(h)?;
    bytes
}

#[test]
fn logs_size_links_delete_pending_and_file_id_for_each_open() {
    let world = World::new();
    files(&world);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();

    assert_eq!(open_and_read(&world, "C:\\docs\\a.txt").unwrap(), b"hello");
    assert_eq!(
        open_and_read(&world, "C:\\docs\\big.bin").unwrap(),
        vec![7; 10_000]
    );
    assert_eq!(open_and_read(&world, "C:\\docs\\empty.log").unwrap(), b"");

    // The IDs the file system gives a user who asks for them.
    let id = |path| {
        let h = world.open(path, Open::read()).unwrap();
        let id = world.query_file_id(h).unwrap();
        world.close(h).unwrap();
        id
    };
    let ids = [
        id("C:\\docs\\a.txt"),
        id("C:\\docs\\big.bin"),
        id("C:\\docs\\empty.log"),
    ];
    assert_eq!(
        sync_lines(&world)[..3],
        [
            line("\\docs\\a.txt", 5, ids[0]),
            line("\\docs\\big.bin", 10_000, ids[1]),
            line("\\docs\\empty.log", 0, ids[2]),
        ]
    );
    // Step 6: one asynchronous answer per open (the ID queries above opened the files again).
    assert_eq!(
        async_lines(&world),
        [
            async_line("\\docs\\a.txt", 5),
            async_line("\\docs\\big.bin", 10_000),
            async_line("\\docs\\empty.log", 0),
            async_line("\\docs\\a.txt", 5),
            async_line("\\docs\\big.bin", 10_000),
            async_line("\\docs\\empty.log", 0),
        ]
    );
    world.finish();
}

#[test]
fn one_callback_data_serves_both_queries_and_is_freed_after() {
    let world = World::new();
    files(&world);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    let since = world.trace_len();
    open_and_read(&world, "C:\\docs\\a.txt").unwrap();
    let (opener, completion) = settled_calls(&world, since);
    assert_eq!(
        opener,
        [
            "FltGetEcpListFromCallbackData",
            "FltIsDirectory",
            // The name, copied and released before any I/O (`common::name::CopiedName`).
            "FltGetFileNameInformation",
            "FltReleaseFileNameInformation",
            "FltAllocateCallbackDataEx",
            "FltPerformSynchronousIo",
            "FltReuseCallbackData",
            "FltPerformSynchronousIo",
            "FltFreeCallbackData",
            // Step 6: issue, and hand everything to the completion routine.
            "ExAcquireRundownProtection",
            "ExAllocatePool2",
            "FltAllocateCallbackDataEx",
            "ObfReferenceObject",
            "FltPerformAsynchronousIo",
        ]
    );
    // The request was pending: its completion ran on another thread and freed everything.
    assert_eq!(
        completion,
        [
            "FltFreeCallbackData",
            "ExFreePoolWithTag",
            "ObDereferenceObjectDeferDelete",
            "ExReleaseRundownProtection",
        ]
    );
    let allocate = &world.calls("FltAllocateCallbackDataEx")[0].text;
    assert!(
        allocate.contains("FLT_ALLOCATE_CALLBACK_DATA_PREALLOCATE_ALL_MEMORY"),
        "{allocate}"
    );
    // The normalized name was asked for first (FLT_FILE_NAME_NORMALIZED | QUERY_DEFAULT).
    assert!(
        world.calls("FltGetFileNameInformation")[0]
            .text
            .contains("options 0x101")
    );
    world.finish();
}

/// The two tests above read the completion routine's calls after `World::close`, which waits only
/// for the routine's file-object dereference: under load the routine's last call was not in the
/// trace yet (1 run in 15). Here that call is held at its entry, so the race is forced: the
/// calls must not be counted before the routine has finished, and are all there once it has.
#[test]
fn the_completion_routine_is_awaited_before_its_calls_are_counted() {
    let world = World::new();
    files(&world);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    let since = world.trace_len();
    let hold = world.hold_next_call("ExReleaseRundownProtection");
    open_and_read(&world, "C:\\docs\\a.txt").unwrap();
    assert!(
        hold.wait_held(BOUND),
        "the completion routine never released its rundown"
    );
    // Held: the routine has not finished, whatever the threads do meanwhile.
    assert!(!completion_finished(
        &world,
        since,
        std::time::Duration::from_millis(50)
    ));
    hold.release();
    let (_, completion) = settled_calls(&world, since);
    assert_eq!(
        completion,
        [
            "FltFreeCallbackData",
            "ExFreePoolWithTag",
            "ObDereferenceObjectDeferDelete",
            "ExReleaseRundownProtection",
        ]
    );
    world.finish();
}

#[test]
fn the_queries_reach_filters_below_and_never_those_above() {
    let world = World::new();
    files(&world);
    world.load_counting_filter("above", 380_000);
    world.load_counting_filter("below", 360_000);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();

    for path in [
        "C:\\docs\\a.txt",
        "C:\\docs\\big.bin",
        "C:\\docs\\empty.log",
    ] {
        open_and_read(&world, path).unwrap();
    }
    let (above, below) = (world.counts("above"), world.counts("below"));
    // Three queries per open (two synchronous, one asynchronous), all of them generated I/O, all
    // of them seen below...
    assert_eq!(below.pre[QUERY], 9);
    assert_eq!(below.generated[QUERY], 9);
    // ...and none above: Filter Manager starts the request below the issuing instance.
    assert_eq!(above.pre[QUERY], 0);
    assert_eq!(above.generated[QUERY], 0);
    // Both saw the user's opens, so both were attached and listening.
    assert_eq!(above.pre[0], 3);
    assert_eq!(below.pre[0], 3);

    // A user's own query goes through both, and is not generated I/O.
    let h = world.open("C:\\docs\\a.txt", Open::read()).unwrap();
    assert_eq!(world.query_standard(h).unwrap().EndOfFile, 5);
    world.close(h).unwrap();
    let (above, below) = (world.counts("above"), world.counts("below"));
    assert_eq!((above.pre[QUERY], above.generated[QUERY]), (1, 0));
    assert_eq!((below.pre[QUERY], below.generated[QUERY]), (13, 12));
    world.finish();
}

#[test]
fn skips_directories_volume_opens_paging_files_and_failed_opens() {
    let world = World::new();
    files(&world);
    world.create_file("C:\\pagefile.sys", &[0; 4096]);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();

    let dir = world.open("C:\\docs\\photos", Open::directory()).unwrap();
    world.close(dir).unwrap();
    let volume = world.open("C:", Open::read()).unwrap();
    world.close(volume).unwrap();
    let paging = world
        .open("C:\\pagefile.sys", Open::read_write().paging_file())
        .unwrap();
    world.close(paging).unwrap();
    assert_eq!(
        world
            .open("C:\\docs\\missing.txt", Open::read())
            .unwrap_err(),
        NtStatus(STATUS_OBJECT_NAME_NOT_FOUND)
    );

    assert_eq!(world.log_lines(NAME), [] as [String; 0]);
    assert_eq!(world.calls("FltAllocateCallbackDataEx").len(), 0);
    assert_eq!(world.calls("FltGetFileNameInformation").len(), 0);
    // Only the directory got as far as FltIsDirectory; the others were ruled out before it.
    assert_eq!(world.calls("FltIsDirectory").len(), 1);
    world.finish();
}

#[test]
fn allocation_failure_is_logged_by_name_and_the_open_succeeds() {
    let world = World::new();
    files(&world);
    world.load_counting_filter("below", 360_000);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    world.fail_nth_with(
        "FltAllocateCallbackDataEx",
        1,
        STATUS_INSUFFICIENT_RESOURCES,
    );

    assert_eq!(open_and_read(&world, "C:\\docs\\a.txt").unwrap(), b"hello");
    assert_eq!(
        world.log_lines(NAME),
        [
            "rs-callback-data: \\Device\\HarddiskVolume1\\docs\\a.txt: FltAllocateCallbackDataEx \
          failed with STATUS_INSUFFICIENT_RESOURCES (0xC000009A); the open goes on"
                .to_owned(),
            // The asynchronous query allocates its own callback data, which succeeded.
            async_line("\\docs\\a.txt", 5),
        ]
    );
    // No synchronous request was sent; only the asynchronous one, whose data was freed.
    assert_eq!(world.counts("below").pre[QUERY], 1);
    assert_eq!(world.calls("FltPerformSynchronousIo").len(), 0);
    assert_eq!(world.calls("FltFreeCallbackData").len(), 1);
    world.finish();
}

#[test]
fn a_query_the_file_system_fails_is_logged_by_status_and_the_open_succeeds() {
    for status in [STATUS_INVALID_DEVICE_REQUEST, STATUS_ACCESS_DENIED] {
        let world = World::new();
        files(&world);
        world.fail_file_operation("C:\\docs\\a.txt", IRP_MJ_QUERY_INFORMATION, status);
        world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
        world.load(NAME, ALTITUDE, DriverEntry).unwrap();
        let since = world.trace_len();

        assert_eq!(open_and_read(&world, "C:\\docs\\a.txt").unwrap(), b"hello");
        assert_eq!(
            world.log_lines(NAME),
            [
                format!(
                    "rs-callback-data: \\Device\\HarddiskVolume1\\docs\\a.txt: \
                     FileStandardInformation query failed with {}; the open goes on",
                    NtStatus(status)
                ),
                // The asynchronous request failed in the file system too, and its completion
                // routine still ran and said so.
                format!(
                    "rs-callback-data: \\Device\\HarddiskVolume1\\docs\\a.txt: async \
                     FileStandardInformation query failed with {}; the open went on (completion \
                     routine at DISPATCH_LEVEL)",
                    NtStatus(status)
                ),
            ]
        );
        // The first failure ends the synchronous questions; the callback data is still freed.
        let (opener, completion) = settled_calls(&world, since);
        assert_eq!(
            opener,
            [
                "FltGetEcpListFromCallbackData",
                "FltIsDirectory",
                "FltGetFileNameInformation",
                "FltReleaseFileNameInformation",
                "FltAllocateCallbackDataEx",
                "FltPerformSynchronousIo",
                "FltFreeCallbackData",
                "ExAcquireRundownProtection",
                "ExAllocatePool2",
                "FltAllocateCallbackDataEx",
                "ObfReferenceObject",
                "FltPerformAsynchronousIo",
            ]
        );
        assert_eq!(
            completion,
            [
                "FltFreeCallbackData",
                "ExFreePoolWithTag",
                "ObDereferenceObjectDeferDelete",
                "ExReleaseRundownProtection",
            ]
        );
        world.finish();
    }
}

#[test]
fn preallocated_callback_data_never_fails_for_memory_mid_io() {
    let world = World::new();
    files(&world);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    // Every mid-I/O allocation Filter Manager would make fails...
    world.fail_always("FltPerformSynchronousIo.allocation", None);
    open_and_read(&world, "C:\\docs\\a.txt").unwrap();
    // ...and none is made, because FLT_ALLOCATE_CALLBACK_DATA_PREALLOCATE_ALL_MEMORY reserved
    // everything up front.
    assert_eq!(sync_lines(&world).len(), 1);
    assert!(
        sync_lines(&world)[0].contains("size 5, links 1"),
        "{:?}",
        world.log_lines(NAME)
    );
    assert_eq!(async_lines(&world), [async_line("\\docs\\a.txt", 5)]);
    world.finish();
}

#[test]
fn falls_back_to_the_opened_name_then_to_no_name() {
    let world = World::new();
    files(&world);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();

    // The normalized name cannot be had: the opened name will do.
    world.fail_nth("FltGetFileNameInformation", 1);
    open_and_read(&world, "C:\\docs\\a.txt").unwrap();
    // Neither can be had: the queries still run and the line says why there is no name.
    world.fail_nth("FltGetFileNameInformation", 3);
    world.fail_nth("FltGetFileNameInformation", 4);
    open_and_read(&world, "C:\\docs\\empty.log").unwrap();

    let lines = sync_lines(&world);
    assert_eq!(lines.len(), 2);
    // The completion routine prints the name it was given a copy of.
    assert_eq!(
        async_lines(&world),
        [
            async_line("\\docs\\a.txt (opened name)", 5),
            "rs-callback-data: <name unavailable: STATUS_INSUFFICIENT_RESOURCES (0xC000009A)>: \
             async FileStandardInformation: size 0, links 1 (completion routine at DISPATCH_LEVEL)"
                .to_owned(),
        ]
    );
    assert!(
        lines[0].starts_with(
            "rs-callback-data: \\Device\\HarddiskVolume1\\docs\\a.txt (opened name): size 5,"
        ),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(
            "rs-callback-data: <name unavailable: STATUS_INSUFFICIENT_RESOURCES (0xC000009A)>: size 0,"
        ),
        "{lines:?}"
    );
    assert!(
        world.calls("FltGetFileNameInformation")[1]
            .text
            .contains("options 0x102")
    );
    world.finish();
}

/// The scenario the fault sweep runs: three files opened and read, one directory opened.
fn scenario(world: &World) -> Result<Vec<Vec<u8>>, NtStatus> {
    files(world);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(NAME, ALTITUDE, DriverEntry)?;
    let mut read = Vec::new();
    for path in [
        "C:\\docs\\a.txt",
        "C:\\docs\\big.bin",
        "C:\\docs\\empty.log",
    ] {
        read.push(open_and_read(world, path)?);
    }
    let dir = world.open("C:\\docs\\photos", Open::directory())?;
    world.close(dir)?;
    Ok(read)
}

#[test]
fn every_fault_at_every_call_site_fails_open_and_leaks_nothing() {
    let faults = sweep_faults(scenario, |world, fault, result| match fault.api {
        // DriverEntry fails with the injected status; nothing else happens.
        "FltRegisterFilter" | "FltStartFiltering" => {
            assert_eq!(
                result.unwrap_err(),
                NtStatus(STATUS_INSUFFICIENT_RESOURCES),
                "{fault:?}"
            );
        }
        _ => {
            // The user's opens and reads all succeed, with the right bytes.
            let read = result.unwrap_or_else(|s| panic!("{fault:?}: the user saw {s}"));
            assert_eq!(read, [b"hello".to_vec(), vec![7; 10_000], Vec::new()]);
            // Still one synchronous and one asynchronous line per file, and the failure is
            // named where it happened.
            let (sync, asynchronous) = (sync_lines(world), async_lines(world));
            assert_eq!(sync.len(), 3, "{fault:?}: {sync:?}");
            assert_eq!(asynchronous.len(), 3, "{fault:?}: {asynchronous:?}");
            let nth = fault.nth as usize;
            let resources = "failed with STATUS_INSUFFICIENT_RESOURCES (0xC000009A)";
            match fault.api {
                // Odd calls are the synchronous queries' allocations, even ones step 6's.
                "FltAllocateCallbackDataEx" if nth % 2 == 1 => {
                    let failed = &sync[nth / 2];
                    assert!(
                        failed.contains(&format!("FltAllocateCallbackDataEx {resources}")),
                        "{failed}"
                    );
                }
                "FltAllocateCallbackDataEx" | "ExAllocatePool2" => {
                    let failed = &asynchronous
                        [(nth - 1) / if fault.api == "ExAllocatePool2" { 1 } else { 2 }];
                    assert!(
                        failed.contains(&format!(
                            "async query not issued: {} {resources}",
                            fault.api
                        )),
                        "{failed}"
                    );
                }
                // The routine ran anyway, and logged the failure it found in IoStatus.
                "FltPerformAsynchronousIo" => {
                    let failed = &asynchronous[nth - 1];
                    assert!(
                        failed.contains(&format!(
                            "async FileStandardInformation query {resources}; the open went on"
                        )),
                        "{failed}"
                    );
                }
                // The normalized name failed; the next call, for the opened name, succeeded
                // and stands in.
                "FltGetFileNameInformation" => {
                    let failed = &sync[nth - 1];
                    assert!(failed.contains(" (opened name): size "), "{failed}");
                }
                other => panic!("unexpected fault site {other}"),
            }
        }
    });
    let apis: Vec<_> = faults.iter().map(|f| (f.api, f.nth)).collect();
    assert_eq!(
        apis,
        [
            ("FltRegisterFilter", 1),
            ("FltStartFiltering", 1),
            ("FltAllocateCallbackDataEx", 1),
            ("FltAllocateCallbackDataEx", 2),
            ("FltAllocateCallbackDataEx", 3),
            ("FltAllocateCallbackDataEx", 4),
            ("FltAllocateCallbackDataEx", 5),
            ("FltAllocateCallbackDataEx", 6),
            ("FltPerformAsynchronousIo", 1),
            ("FltPerformAsynchronousIo", 2),
            ("FltPerformAsynchronousIo", 3),
            ("FltGetFileNameInformation", 1),
            ("FltGetFileNameInformation", 2),
            ("FltGetFileNameInformation", 3),
            ("ExAllocatePool2", 1),
            ("ExAllocatePool2", 2),
            ("ExAllocatePool2", 3),
        ],
        "the sweep reached every call site, and never FltPerformSynchronousIo.allocation"
    );
}

#[test]
fn nothing_runs_above_apc_level_and_every_callback_data_is_freed() {
    let world = World::new();
    world.set_post_operation_irql(irql::DISPATCH_LEVEL);
    files(&world);
    world.fail_file_operation(
        "C:\\docs\\big.bin",
        IRP_MJ_QUERY_INFORMATION,
        STATUS_ACCESS_DENIED,
    );
    world.load_counting_filter("below", 360_000);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    world.fail_nth("FltAllocateCallbackDataEx", 3);
    for path in [
        "C:\\docs\\a.txt",
        "C:\\docs\\big.bin",
        "C:\\docs\\empty.log",
        "C:\\docs\\a.txt",
    ] {
        open_and_read(&world, path).unwrap();
    }
    world.unload(NAME).unwrap();

    let calls: Vec<_> = world
        .trace()
        .into_iter()
        .filter(|e| e.who == NAME && matches!(e.kind, EventKind::Call(_)))
        .collect();
    assert!(!calls.is_empty());
    // Everything runs at <= APC_LEVEL but the completion routine, which runs at DISPATCH_LEVEL
    // and calls only what is allowed there.
    let dispatch_safe = [
        "FltFreeCallbackData",
        "ExFreePoolWithTag",
        "ObDereferenceObjectDeferDelete",
        "ExReleaseRundownProtection",
    ];
    for call in &calls {
        let EventKind::Call(api) = call.kind else {
            unreachable!()
        };
        assert!(
            call.irql <= irql::APC_LEVEL
                || (call.irql == irql::DISPATCH_LEVEL && dispatch_safe.contains(&api)),
            "{call}"
        );
    }
    // Seven allocations succeeded (the third of eight failed); each was freed exactly once.
    let allocated = world
        .calls("FltAllocateCallbackDataEx")
        .iter()
        .filter(|e| e.text.contains("-> STATUS_SUCCESS"))
        .count();
    assert_eq!(allocated, 7);
    assert_eq!(world.calls("FltFreeCallbackData").len(), 7);
    assert_eq!(world.log_lines(NAME).len(), 8);
    world.finish();
}

#[test]
fn unloads_cleanly_and_stops_asking() {
    let world = World::new();
    files(&world);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    let held = world.open("C:\\docs\\a.txt", Open::read()).unwrap();
    world.unload(NAME).unwrap();
    // A handle opened while the filter was loaded keeps working after it left.
    assert_eq!(world.read(held, 0, 5).unwrap(), b"hello");
    world.close(held).unwrap();
    open_and_read(&world, "C:\\docs\\big.bin").unwrap();
    assert_eq!(world.log_lines(NAME).len(), 2);
    world.finish();
}

#[test]
fn many_threads_opening_files_at_once() {
    const THREADS: usize = 4;
    const OPENS: usize = 25;
    let world = World::new();
    files(&world);
    world.load_counting_filter("below", 360_000);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    let paths = [
        "C:\\docs\\a.txt",
        "C:\\docs\\big.bin",
        "C:\\docs\\empty.log",
    ];
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let world = &world;
            s.spawn(move || {
                for i in 0..OPENS {
                    let path = paths[(t + i) % paths.len()];
                    open_and_read(world, path).unwrap();
                }
            });
        }
    });
    let lines = sync_lines(&world);
    assert_eq!(lines.len(), THREADS * OPENS);
    let asynchronous = async_lines(&world);
    assert_eq!(asynchronous.len(), THREADS * OPENS);
    for line in &asynchronous {
        assert!(
            line.contains(": async FileStandardInformation: size ")
                && line.ends_with(", links 1 (completion routine at DISPATCH_LEVEL)"),
            "{line}"
        );
    }
    for line in &lines {
        assert!(
            line.contains(": size ") && line.contains(", links 1, delete pending no, file id 0x"),
            "{line}"
        );
    }
    assert_eq!(
        world.counts("below").generated[QUERY] as usize,
        3 * THREADS * OPENS
    );
    world.finish();
}

#[test]
fn a_pending_request_completes_on_another_thread_which_frees_it() {
    let world = World::new();
    files(&world);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    let since = world.trace_len();
    open_and_read(&world, "C:\\docs\\big.bin").unwrap();
    let trace: Vec<_> = world.trace().into_iter().skip(since).collect();
    // The call is traced when it returns; the I/O it started may be traced before that, from
    // another thread. Only the order within each thread is compared below.
    let issued = trace
        .iter()
        .find(|e| e.kind == EventKind::Call("FltPerformAsynchronousIo"))
        .expect("issued");
    let performed = trace
        .iter()
        .find(|e| e.kind == EventKind::FltMgr && e.text.starts_with("FltPerformAsynchronousIo: "))
        .expect("the request went down");
    assert!(issued.text.contains("-> STATUS_PENDING"), "{issued}");
    // The callback data it issued, by address: `FltPerformAsynchronousIo(data 0x...)`.
    let data = issued.text["FltPerformAsynchronousIo(".len()..]
        .split(')')
        .next()
        .unwrap();
    let freed = trace
        .iter()
        .find(|e| e.kind == EventKind::Call("FltFreeCallbackData") && e.text.contains(data))
        .expect("the completion freed it");
    assert_ne!(freed.thread, issued.thread, "{freed}");
    // The completion ran on the thread that performed the request, after it went down.
    assert_eq!(freed.thread, performed.thread, "{freed}");
    assert!(freed.seq > performed.seq, "{freed}");
    assert_eq!(freed.irql, irql::DISPATCH_LEVEL, "{freed}");
    assert_eq!(async_lines(&world), [async_line("\\docs\\big.bin", 10_000)]);
    world.finish();
}

#[test]
fn the_completion_runs_even_when_flt_perform_asynchronous_io_fails() {
    for status in [
        STATUS_INSUFFICIENT_RESOURCES,
        STATUS_FLT_INVALID_ASYNCHRONOUS_REQUEST,
    ] {
        let world = World::new();
        files(&world);
        world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
        world.load(NAME, ALTITUDE, DriverEntry).unwrap();
        world.fail_nth_with("FltPerformAsynchronousIo", 1, status);
        let since = world.trace_len();
        assert_eq!(open_and_read(&world, "C:\\docs\\a.txt").unwrap(), b"hello");
        assert_eq!(
            async_lines(&world),
            [format!(
                "rs-callback-data: \\Device\\HarddiskVolume1\\docs\\a.txt: async \
                 FileStandardInformation query failed with {}; the open went on (completion \
                 routine at DISPATCH_LEVEL)",
                NtStatus(status)
            )]
        );
        // The routine ran, on the issuer's thread, before the call returned the failure.
        let opener = opener_thread(&world, since);
        let (calls, elsewhere) = sample_calls_by_thread(&world, since, opener);
        assert_eq!(elsewhere, [] as [&str; 0]);
        let tail = &calls[calls.len() - 5..];
        assert_eq!(
            tail,
            [
                "FltFreeCallbackData",
                "ExFreePoolWithTag",
                "ObDereferenceObjectDeferDelete",
                "ExReleaseRundownProtection",
                "FltPerformAsynchronousIo",
            ]
        );
        let returned = &world.calls("FltPerformAsynchronousIo")[0];
        assert!(
            returned.text.ends_with(&format!("-> {}", NtStatus(status))),
            "{returned}"
        );
        // The synchronous line is unaffected, and nothing leaked (finish checks).
        assert_eq!(sync_lines(&world).len(), 1);
        world.finish();
    }
}

#[test]
fn when_the_async_request_cannot_be_built_nothing_is_issued_and_the_reason_is_logged() {
    for (api, nth) in [("FltAllocateCallbackDataEx", 2), ("ExAllocatePool2", 1)] {
        let world = World::new();
        files(&world);
        world.load_counting_filter("below", 360_000);
        world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
        world.load(NAME, ALTITUDE, DriverEntry).unwrap();
        world.fail_nth(api, nth);
        assert_eq!(open_and_read(&world, "C:\\docs\\a.txt").unwrap(), b"hello");
        assert_eq!(
            async_lines(&world),
            [format!(
                "rs-callback-data: \\Device\\HarddiskVolume1\\docs\\a.txt: async query not \
                 issued: {api} failed with STATUS_INSUFFICIENT_RESOURCES (0xC000009A); the open \
                 goes on"
            )]
        );
        assert_eq!(world.calls("FltPerformAsynchronousIo").len(), 0);
        assert_eq!(world.calls("ObfReferenceObject").len(), 0);
        // The rundown reference was given back on the failure path; only the two synchronous
        // queries went down.
        assert_eq!(world.calls("ExReleaseRundownProtection").len(), 1);
        assert_eq!(world.counts("below").generated[QUERY], 2);
        world.finish();
    }
}

#[test]
fn unload_waits_for_completions_in_flight_and_leaks_nothing() {
    const THREADS: usize = 3;
    const OPENS: usize = 4;
    let world = World::new();
    files(&world);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    // Completions wait until released: every request stays in flight.
    world.hold_async_completions();
    let paths = [
        "C:\\docs\\a.txt",
        "C:\\docs\\big.bin",
        "C:\\docs\\empty.log",
    ];
    let handles: Vec<_> = std::thread::scope(|s| {
        let opened: Vec<_> = (0..THREADS)
            .map(|t| {
                let world = &world;
                s.spawn(move || {
                    (0..OPENS)
                        .map(|i| world.open(paths[(t + i) % 3], Open::read()).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        opened.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(async_lines(&world).is_empty());
    std::thread::scope(|s| {
        let unloading = s.spawn(|| world.unload(NAME));
        // Bounded: wait until the unload callback is waiting for the completions.
        let started = std::time::Instant::now();
        while world.calls("ExWaitForRundownProtectionRelease").is_empty() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "unload never started waiting"
            );
            std::thread::yield_now();
        }
        let wait = &world.calls("ExWaitForRundownProtectionRelease")[0];
        assert!(
            wait.text
                .ends_with(&format!("waiting for {} holder(s)", THREADS * OPENS)),
            "{wait}"
        );
        // The filter is still registered: an open now is still seen, but the query is not issued.
        open_and_read(&world, "C:\\docs\\a.txt").unwrap();
        assert!(
            async_lines(&world)
                == [
                    "rs-callback-data: \\Device\\HarddiskVolume1\\docs\\a.txt: async query not \
                     issued: the filter is unloading; the open goes on"
                ],
            "{:?}",
            world.log_lines(NAME)
        );
        world.release_async_completions();
        unloading.join().unwrap().unwrap();
    });
    // Every completion ran, and all of them before the filter unregistered.
    assert_eq!(async_lines(&world).len(), THREADS * OPENS + 1);
    let unregistered = world.calls("FltUnregisterFilter")[0].seq;
    // (The trace records a call when it returns: a release can return after the waiter woke,
    // so the frees and dereferences, which come before it, are what is compared.)
    // The last release woke the unload before its own call returned, so it may still be on its
    // way into the trace: wait for it, bounded.
    let started = std::time::Instant::now();
    while world.calls("ExReleaseRundownProtection").len() < THREADS * OPENS
        && started.elapsed() < std::time::Duration::from_secs(10)
    {
        std::thread::yield_now();
    }
    assert_eq!(
        world.calls("ExReleaseRundownProtection").len(),
        THREADS * OPENS
    );
    let dereferenced = world.calls("ObDereferenceObjectDeferDelete");
    assert_eq!(dereferenced.len(), THREADS * OPENS);
    assert!(dereferenced.iter().all(|e| e.seq < unregistered));
    let freed = world.calls("FltFreeCallbackData");
    assert_eq!(freed.len(), 2 * THREADS * OPENS + 1);
    assert!(freed.iter().all(|e| e.seq < unregistered));
    for h in handles {
        world.close(h).unwrap();
    }
    world.finish();
}

/// The prefetcher's open (a `GUID_ECP_PREFETCH_OPEN` from kernel mode) is left alone: no
/// request of ours goes to the file system with its file object, since avscan warns that I/O on a
/// prefetch file object can deadlock. The same ECP from user mode is not trusted to be the
/// prefetcher's, and the open is queried as any other (`common::create::is_prefetch_open`).
#[test]
fn a_kernel_mode_prefetch_open_is_left_alone_and_a_user_mode_one_is_not() {
    for (from, queried) in [
        (fltsim::EcpFrom::Kernel, false),
        (fltsim::EcpFrom::User, true),
    ] {
        let world = World::new();
        files(&world);
        world.set_parameter(NAME, "DemoFolder", RegValue::Sz("docs".into()));
        world.load(NAME, ALTITUDE, DriverEntry).unwrap();
        let h = world
            .open("C:\\docs\\a.txt", Open::read().prefetch_ecp(from))
            .unwrap();
        assert_eq!(world.read(h, 0, 16).unwrap(), b"hello");
        world.close(h).unwrap();
        assert_eq!(
            world.calls("FltFindExtraCreateParameter").len(),
            1,
            "{from:?}"
        );
        assert_eq!(
            !world.calls("FltAllocateCallbackDataEx").is_empty(),
            queried,
            "{from:?}"
        );
        world.finish();
    }
}
