//! `cargo xtask demo data-scan`: load the scanner into the Filter Manager model, then open a clean
//! file, the EICAR test file (the open is denied), an empty file, a large file with the signature
//! in its last bytes, and a file on the network share (no instance there). Last, write the
//! signature into the clean file through a handle and close it: the cleanup scan finds it, and the
//! next open is denied. Prints what the debugger would show, then the calls the sample made.
//! With `--mermaid`, prints the README's diagram instead, and with `--excerpt NAME` one of the
//! README's output blocks ([`excerpts`]); `cargo xtask diagrams` writes both.

use std::ops::Range;

use fltsim::{
    Event, Open, RegValue, World,
    diagram::{Demo, Diagram},
};
use rs_data_scan::{DriverEntry, EICAR, TAG, WINDOW};

/// The service name (`ServiceName` in `inf/rs_data_scan.inx`): what `fltmc load` takes and
/// `fltmc filters` shows, and the registry key under `Services` the driver's parameters live in.
pub(crate) const SERVICE: &str = "RsDataScan";

/// How the README's diagram draws the scenario: the denied open of the EICAR file.
pub(crate) const DIAGRAM: Diagram<'static> = Diagram {
    filter: SERVICE,
    others: &[],
    calls: SHOWN,
    forks: &[],
    covers: "The open of `C:\\rs-minifilter-demo\\eicar.com`, which the scan denies (the calls \
             of `SHOWN` in `examples/demo.rs`, and what took each reference they give back).",
};

/// The calls worth seeing in the trace: the API this sample teaches and its neighbours.
pub(crate) const SHOWN: &[&str] = &[
    "FltRegisterForDataScan",
    "FltCreateSectionForDataScan",
    "MmMapViewInSystemSpaceEx",
    "MmCopyMemory",
    "MmUnmapViewInSystemSpace",
    "ObCloseHandle",
    "ObfDereferenceObject",
    "FltCloseSectionForDataScan",
    "FltReleaseContext",
    "FltCancelFileOpen",
];

/// Opens `path` for read and closes it again; says what the application saw.
fn open_and_close(world: &World, path: &str) -> String {
    match world.open(path, Open::read()) {
        Ok(handle) => {
            world.close(handle).expect("close");
            format!("open {path}: ok")
        }
        Err(status) => format!("open {path}: failed with {status}"),
    }
}

/// The file the diagram follows.
const DENIED: &str = "C:\\rs-minifilter-demo\\eicar.com";

/// The demo's scenario. Returns what the application saw, and the part of the trace the diagram
/// draws (the open of [`DENIED`]).
pub(crate) fn scenario(world: &World) -> (Vec<String>, Range<usize>) {
    let mut large = b"large file line\r\n".repeat(3 * WINDOW / 17);
    large.extend_from_slice(EICAR);
    world.create_file(
        "C:\\rs-minifilter-demo\\clean.txt",
        &b"a clean line\r\n".repeat(400),
    );
    world.create_file("C:\\rs-minifilter-demo\\eicar.com", EICAR);
    world.create_file("C:\\rs-minifilter-demo\\empty.txt", b"");
    world.create_file("C:\\rs-minifilter-demo\\large.bin", &large);
    world.create_file("Z:\\share\\eicar.com", EICAR);
    // As the INF writes it at install: the sample acts in this folder only.
    world.set_parameter(
        SERVICE,
        "DemoFolder",
        RegValue::Sz("rs-minifilter-demo".into()),
    );
    world
        .load(SERVICE, 265_130, DriverEntry)
        .expect("the sample loads");

    let mut seen = Vec::new();
    let mut slice = 0..0;
    for path in [
        "C:\\rs-minifilter-demo\\clean.txt",
        "C:\\rs-minifilter-demo\\eicar.com",
        "C:\\rs-minifilter-demo\\empty.txt",
        "C:\\rs-minifilter-demo\\large.bin",
        "Z:\\share\\eicar.com",
    ] {
        let start = world.trace_len();
        seen.push(open_and_close(world, path));
        if path == DENIED {
            slice = start..world.trace_len();
        }
    }
    let writer = world
        .open("C:\\rs-minifilter-demo\\clean.txt", Open::write())
        .expect("open the clean file for write");
    world
        .write(writer, 0, EICAR, false)
        .expect("write the signature");
    world.close(writer).expect("close: the cleanup scan runs");
    seen.push("write EICAR into C:\\rs-minifilter-demo\\clean.txt and close: ok".to_owned());
    seen.push(open_and_close(world, "C:\\rs-minifilter-demo\\clean.txt"));
    world.unload(SERVICE).expect("the sample unloads");
    (seen, slice)
}

/// The traces the demo prints once the scenario has run: the user's operations and the calls of
/// [`SHOWN`], with what took each reference they give back.
pub(crate) fn printed(world: &World) -> Vec<Vec<Event>> {
    vec![world.shown_calls(SHOWN)]
}

/// The README's diagram: the scenario, run in a new world, drawn.
pub(crate) fn diagram() -> String {
    let world = World::new();
    let (_, slice) = scenario(&world);
    let block = DIAGRAM.render(&world.trace()[slice]);
    world.finish();
    block
}

/// The README's output blocks, by name: the scenario, run in a new world, as the application sees
/// it and as the debugger shows it.
pub(crate) fn excerpts() -> Vec<(&'static str, String)> {
    let world = World::new();
    let (seen, _) = scenario(&world);
    let application = fltsim::excerpt::block(seen);
    let debugger = fltsim::excerpt::block(world.log_lines(SERVICE));
    world.finish();
    vec![("application", application), ("debugger", debugger)]
}

/// The demo's opening summary ([`fltsim::excerpt::summary`]), once the scenario has run and
/// `seen` holds what the application saw.
pub(crate) fn summary(world: &World, seen: &[String]) -> Vec<String> {
    let mut happened = seen.to_vec();
    happened.push(format!("verifier findings: {}", world.violations().len()));
    fltsim::excerpt::summary(
        happened,
        &[
            "Each scan reads the file through a data-scan section, and closes it in the",
            "documented order, so an EICAR file is denied while every other open goes through.",
        ],
    )
}

/// The demo as `tests/diagram.rs` checks it (`fltsim::demo_tests!`): the README's blocks, the
/// summary it prints first and the traces it prints last.
pub(crate) struct Shown;

impl Demo for Shown {
    fn diagram() -> String {
        diagram()
    }

    fn excerpts() -> Vec<(&'static str, String)> {
        excerpts()
    }

    fn summary() -> Vec<String> {
        let world = World::new();
        let (seen, _) = scenario(&world);
        let summary = summary(&world, &seen);
        world.finish();
        summary
    }

    fn printed(world: &World) -> Vec<Vec<Event>> {
        scenario(world);
        printed(world)
    }
}

fn main() {
    if Shown::print_readme_block() {
        return;
    }
    let world = World::new();
    let (seen, _) = scenario(&world);

    for line in summary(&world, &seen) {
        println!("{line}");
    }
    println!();
    world.print_legend();
    println!();
    println!("== What the application sees");
    for line in seen {
        println!("{line}");
    }
    println!();
    println!("== What the debugger shows ({TAG})");
    for line in world.log_lines(SERVICE) {
        println!("{line}");
    }
    println!();
    println!(
        "== The trace: the user's operations, the calls of the API this sample teaches, and what \
         took each reference they give back"
    );
    for trace in printed(&world) {
        for event in &trace {
            println!("{event}");
        }
    }
    world.finish();
}
