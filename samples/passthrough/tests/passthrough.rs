//! passthrough against fltsim: registration order, load, I/O, unload, leak-free, every fault
//! injected.

use common::bindings::{STATUS_FLT_NOT_INITIALIZED, STATUS_INVALID_PARAMETER};
use fltsim::{EventKind, NtStatus, Open, World, sweep_faults};
use rs_passthrough::DriverEntry;

const NAME: &str = "rs-passthrough";
const ALTITUDE: u32 = 370_210;

fn scenario(world: &World) -> Result<(), NtStatus> {
    world.create_file("C:\\docs\\a.txt", b"hello");
    world.load(NAME, ALTITUDE, DriverEntry)?;
    let h = world
        .open("C:\\docs\\a.txt", Open::read_write())
        .expect("open");
    assert_eq!(world.read(h, 0, 16).expect("read"), b"hello");
    world.write(h, 5, b", world", false).expect("write");
    world.close(h).expect("close");
    Ok(())
}

#[test]
fn counts_every_operation_and_reports_them_at_unload() {
    let world = World::new();
    scenario(&world).expect("loads");
    world.unload(NAME).expect("unloads");
    assert_eq!(
        world.log_lines(NAME),
        [
            "rs-passthrough: Create: 1 pre, 1 post",
            "rs-passthrough: Read: 1 pre, 1 post",
            "rs-passthrough: Write: 1 pre, 1 post",
            "rs-passthrough: Cleanup: 1 pre, 1 post",
            "rs-passthrough: Close: 1 pre, 1 post",
        ]
    );
    assert_eq!(world.contents("C:\\docs\\a.txt").unwrap(), b"hello, world");
    world.finish();
}

#[test]
fn attaches_to_every_volume_and_passes_io_through_on_both() {
    let world = World::new();
    world.create_file("Z:\\share.txt", b"remote");
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    let setups = world
        .trace()
        .iter()
        .filter(|e| e.text.starts_with("InstanceSetup <-"))
        .count();
    assert_eq!(setups, 2);
    let h = world.open("Z:\\share.txt", Open::read()).unwrap();
    assert_eq!(world.read(h, 0, 6).unwrap(), b"remote");
    world.close(h).unwrap();
    world.finish();
}

#[test]
fn every_fault_leaves_the_user_io_working_and_nothing_leaked() {
    let faults = sweep_faults(scenario, |world, fault, result| match fault.api {
        // DriverEntry fails with the injected status, and the file is untouched.
        "FltRegisterFilter" | "FltStartFiltering" => {
            assert!(result.is_err(), "{fault:?}: DriverEntry must fail");
            let lines = world.log_lines(NAME);
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains(fault.api) && l.contains("STATUS_INSUFFICIENT_RESOURCES")),
                "{lines:?}"
            );
        }
        _ => assert!(result.is_ok(), "{fault:?}"),
    });
    let apis: Vec<_> = faults.iter().map(|f| f.api).collect();
    assert_eq!(apis, ["FltRegisterFilter", "FltStartFiltering"]);
}

#[test]
fn post_operations_at_dispatch_level_are_fine_for_interlocked_counting() {
    let world = World::new();
    world.set_post_operation_irql(common::irql::DISPATCH_LEVEL);
    scenario(&world).unwrap();
    world.finish();
    assert_eq!(world.violations(), []);
}

/// The position in the trace of the one call of `api`.
fn only_call(world: &World, api: &str) -> u64 {
    let calls = world.calls(api);
    assert_eq!(
        calls.len(),
        1,
        "{api} called {} times: {calls:#?}",
        calls.len()
    );
    calls[0].seq
}

#[test]
fn registers_starts_and_unregisters_in_the_documented_order() {
    let world = World::new();
    scenario(&world).expect("loads");
    world.unload(NAME).expect("unloads");
    let trace = world.trace();
    let register = only_call(&world, "FltRegisterFilter");
    let start = only_call(&world, "FltStartFiltering");
    let unregister = only_call(&world, "FltUnregisterFilter");
    assert!(register < start && start < unregister, "{trace:#?}");
    // Calls are traced when they return: the volumes were offered while FltStartFiltering ran,
    // after registration, before it returned.
    let setups: Vec<u64> = trace
        .iter()
        .filter(|e| e.kind == EventKind::Callback("InstanceSetup"))
        .map(|e| e.seq)
        .collect();
    assert!(!setups.is_empty());
    assert!(
        setups.iter().all(|s| register < *s && *s < start),
        "{trace:#?}"
    );
    // The counts are printed after FltUnregisterFilter has returned: they are final.
    let lines: Vec<u64> = world.log_events(NAME).iter().map(|e| e.seq).collect();
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|l| unregister < *l), "{trace:#?}");
    world.finish();
}

#[test]
fn a_failed_start_unregisters_the_filter_and_driver_entry_returns_its_status() {
    let world = World::new();
    // FltStartFiltering's one documented failure.
    world.fail_nth_with("FltStartFiltering", 1, STATUS_INVALID_PARAMETER);
    assert_eq!(
        world.load(NAME, ALTITUDE, DriverEntry),
        Err(NtStatus(STATUS_INVALID_PARAMETER))
    );
    let start = only_call(&world, "FltStartFiltering");
    let unregister = only_call(&world, "FltUnregisterFilter");
    assert!(start < unregister);
    assert_eq!(
        world.log_lines(NAME),
        ["rs-passthrough: FltStartFiltering failed: STATUS_INVALID_PARAMETER (0xC000000D)"]
    );
    // Nothing left registered, nothing leaked: the model reports both.
    world.assert_clean();
    // And the driver loads again, from a clean slate, and unloads.
    world
        .load(NAME, ALTITUDE, DriverEntry)
        .expect("loads again");
    world.unload(NAME).expect("unloads");
    assert_eq!(world.calls("FltUnregisterFilter").len(), 2);
    world.finish();
}

#[test]
fn a_failed_registration_returns_its_status_with_nothing_to_undo() {
    let world = World::new();
    // Filter Manager not running: one of FltRegisterFilter's documented failures.
    world.fail_nth_with("FltRegisterFilter", 1, STATUS_FLT_NOT_INITIALIZED);
    assert_eq!(
        world.load(NAME, ALTITUDE, DriverEntry),
        Err(NtStatus(STATUS_FLT_NOT_INITIALIZED))
    );
    assert_eq!(world.calls("FltStartFiltering").len(), 0);
    assert_eq!(world.calls("FltUnregisterFilter").len(), 0);
    world.finish();
}
