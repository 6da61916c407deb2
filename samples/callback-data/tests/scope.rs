//! The demo folder (`common::scope`) in callback-data: the scope comes from the service's
//! `Parameters\DemoFolder` value, falls back to `rs-minifilter-demo` with one line when the value
//! is missing or malformed, and an open outside it costs nothing: no name query, no allocation,
//! no log line, in any callback.

use common::scope::{DEFAULT_FOLDER, MAX_FOLDER_CHARS};
use fltsim::{EventKind, Open, RegValue, World};
use rs_callback_data::DriverEntry;

const NAME: &str = "rs-callback-data";
const ALTITUDE: u32 = 370_220;
const INSIDE: &str = "C:\\Users\\me\\AppData\\Local\\Temp\\rs-minifilter-demo\\a.txt";
const OUTSIDE: &str = "C:\\docs\\a.txt";

fn files(world: &World) {
    world.create_file(INSIDE, b"inside");
    world.create_file(OUTSIDE, b"outside");
}

/// Opens, reads and closes `path`; returns what was read.
fn use_file(world: &World, path: &str) -> Vec<u8> {
    let h = world.open(path, Open::read()).unwrap();
    let bytes = world.read(h, 0, 16).unwrap();
    world.query_standard(h).unwrap();
    world.close(h).unwrap();
    bytes
}

/// Whether the sample acted on `path`: its line names the file.
fn acted_on(world: &World, file: &str) -> bool {
    world.log_lines(NAME).iter().any(|l| l.contains(file))
}

#[test]
fn an_out_of_scope_open_costs_no_name_query_no_allocation_and_no_line() {
    let world = World::new();
    files(&world);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz(DEFAULT_FOLDER.into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    assert_eq!(
        world.log_lines(NAME),
        [] as [String; 0],
        "a good value is read silently"
    );

    let since = world.trace_len();
    assert_eq!(use_file(&world, OUTSIDE), b"outside");
    world.assert_out_of_scope_is_free(since, NAME);

    // The same open inside the folder does all of it: the check above is not vacuous.
    let since = world.trace_len();
    assert_eq!(use_file(&world, INSIDE), b"inside");
    assert!(acted_on(&world, "\\rs-minifilter-demo\\a.txt"));
    let calls: Vec<&str> = world.trace()[since..]
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Call(api) if e.who == NAME => Some(api),
            _ => None,
        })
        .collect();
    assert!(calls.contains(&"FltGetFileNameInformation"), "{calls:?}");
    assert!(calls.contains(&"FltAllocateCallbackDataEx"), "{calls:?}");
    world.finish();
}

#[test]
fn a_configured_folder_replaces_the_default() {
    let world = World::new();
    files(&world);
    world.set_parameter(NAME, "DemoFolder", RegValue::Sz("DOCS".into()));
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    let since = world.trace_len();
    use_file(&world, INSIDE);
    world.assert_out_of_scope_is_free(since, NAME);
    use_file(&world, OUTSIDE);
    assert!(acted_on(&world, "\\docs\\a.txt"), "case-insensitive match");
    // The driver's Parameters key was opened through its driver object, as driver package
    // isolation asks, and closed again (a leak would be a finding at `finish`); no key was
    // opened by a path built from RegistryPath.
    assert_eq!(world.calls("IoOpenDriverRegistryKey").len(), 1);
    assert!(world.calls("ZwOpenKey").is_empty());
    assert_eq!(world.calls("ZwClose").len(), 1);
    world.finish();
}

/// The one line the sample prints at load, and whether it then acts in the default folder only.
fn load_with(value: Option<(&str, RegValue)>) -> Vec<String> {
    let world = World::new();
    files(&world);
    if let Some((name, value)) = value {
        world.set_parameter(NAME, name, value);
    }
    world.load(NAME, ALTITUDE, DriverEntry).unwrap();
    let lines = world.log_lines(NAME);
    let since = world.trace_len();
    use_file(&world, OUTSIDE);
    world.assert_out_of_scope_is_free(since, NAME);
    use_file(&world, INSIDE);
    assert!(acted_on(&world, "\\rs-minifilter-demo\\a.txt"));
    world.finish();
    lines
}

#[test]
fn a_missing_value_falls_back_to_the_default_with_one_line() {
    let no_key = format!(
        "{NAME}: Parameters\\DemoFolder: not found (STATUS_OBJECT_NAME_NOT_FOUND (0xC0000034)): \
         acting only in folders named {DEFAULT_FOLDER}"
    );
    // No Parameters key at all.
    assert_eq!(load_with(None), std::slice::from_ref(&no_key));
    // A Parameters key without the value.
    assert_eq!(
        load_with(Some(("Other", RegValue::Sz("docs".into())))),
        [no_key]
    );
}

#[test]
fn a_malformed_value_falls_back_to_the_default_with_one_line() {
    let line = |why: &str| {
        format!(
            "{NAME}: Parameters\\DemoFolder: {why}: acting only in folders named {DEFAULT_FOLDER}"
        )
    };
    let not_a_name = "not one folder name (printable ASCII, no \\ or /, not . or ..)";
    for (value, why) in [
        (RegValue::Dword(1), "type 4, not REG_SZ (1)".to_owned()),
        (RegValue::Sz(String::new()), "empty".to_owned()),
        (
            RegValue::Sz("Temp\\rs-minifilter-demo".into()),
            not_a_name.to_owned(),
        ),
        (RegValue::Sz("..".into()), not_a_name.to_owned()),
        (RegValue::Sz("d\u{e9}mo".into()), not_a_name.to_owned()),
        (
            RegValue::Sz("x".repeat(MAX_FOLDER_CHARS + 1)),
            format!("longer than {MAX_FOLDER_CHARS} characters"),
        ),
        (
            RegValue::Sz("x".repeat(1000)),
            format!("longer than {MAX_FOLDER_CHARS} characters"),
        ),
        (
            RegValue::Raw(1, vec![b'a', 0, b'b']),
            "an odd number of bytes".to_owned(),
        ),
    ] {
        assert_eq!(
            load_with(Some(("DemoFolder", value.clone()))),
            [line(&why)],
            "{value:?}"
        );
    }
}
