//! The demo folder (`common::scope`) in data-scan: an open outside it costs nothing, in any callback.

use common::scope::DEFAULT_FOLDER;
use fltsim::{Open, RegValue, World};
use rs_data_scan::DriverEntry;

const NAME: &str = "rs-data-scan";
const ALTITUDE: u32 = 265_130;

#[test]
fn an_out_of_scope_open_costs_no_name_query_no_allocation_and_no_line() {
    let world = World::new();
    world.create_file("C:\\docs\\a.bin", &vec![1; 20_000]);
    world.create_file("C:\\rs-minifilter-demo\\a.bin", &vec![1; 20_000]);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz(DEFAULT_FOLDER.into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    let lines_at_load = world.log_lines(NAME).len();

    let since = world.trace_len();
    let h = world.open("C:\\docs\\a.bin", Open::read()).unwrap();
    assert_eq!(world.read(h, 0, 4).unwrap(), [1; 4]);
    world.close(h).unwrap();
    let h = world.open("C:\\docs\\a.bin", Open::read_write()).unwrap();
    world.write(h, 0, b"data", false).unwrap();
    world.close(h).unwrap();
    world.assert_out_of_scope_is_free(since, NAME);
    assert_eq!(world.log_lines(NAME).len(), lines_at_load);

    // The same inside the folder: the sample acts (and says so).
    let h = world
        .open("C:\\rs-minifilter-demo\\a.bin", Open::read())
        .unwrap();
    world.read(h, 0, 4).unwrap();
    world.close(h).unwrap();
    world.unload(NAME).unwrap();
    assert!(
        world
            .log_lines(NAME)
            .iter()
            .any(|l| l.contains("rs-minifilter-demo\\a.bin")),
        "{:#?}",
        world.log_lines(NAME)
    );
    world.finish();
}
