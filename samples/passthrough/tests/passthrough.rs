//! passthrough against fltsim: load, I/O, unload, leak-free, every fault injected.

use fltsim::{Open, World, sweep_faults};
use rs_passthrough::DriverEntry;

const NAME: &str = "rs-passthrough";
const ALTITUDE: u32 = 370_210;

fn scenario(world: &World) -> Result<(), common::NtStatus> {
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
