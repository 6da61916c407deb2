//! The demo folder (`common::scope`) in section-conflict: an open outside it costs nothing, in any callback.

use common::scope::DEFAULT_FOLDER;
use fltsim::{Event, EventKind, Open, RegValue, World};
use rs_section_conflict::DriverEntry;

const NAME: &str = "rs-section-conflict";
const ALTITUDE: u32 = 265_140;

/// Asserts that nothing `name` did from trace position `since` on cost anything: no name query,
/// no allocation, no section, no log line, in any callback; and that Filter Manager did call the
/// filter (its pre-create), so the silence is the filter's choice.
fn assert_out_of_scope_is_free(world: &World, since: usize, name: &str) {
    let events: Vec<Event> = world.trace()[since..]
        .iter()
        .filter(|e| e.who == name)
        .cloned()
        .collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Callback(c) if c == "PreCreate")),
        "the filter's pre-create ran: {events:#?}"
    );
    for event in &events {
        match event.kind {
            EventKind::Log => panic!("a log line for an out-of-scope file: {event}"),
            EventKind::Call(api) => assert!(
                !api.contains("FileName")
                    && !api.contains("Allocate")
                    && !api.contains("Section")
                    && !api.starts_with("ExAllocate"),
                "a name query or an allocation for an out-of-scope file: {event}"
            ),
            EventKind::Callback(callback) => assert!(
                callback != "PostCreate",
                "post-create ran for an out-of-scope open: {event}"
            ),
            _ => {}
        }
    }
}

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
    assert_out_of_scope_is_free(&world, since, NAME);
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
