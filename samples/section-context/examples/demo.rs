//! `cargo xtask demo section-context`: load the sample into the Filter Manager model; open a file
//! read-only without write sharing, read it, query it and close it (the section is found at each
//! step, then closed); open it again with write sharing (`STATUS_NOT_FOUND`); touch a file on the
//! network share (`STATUS_NOT_SUPPORTED`, logged once); unload. Prints what the debugger would
//! show, then the calls the sample made. With `--mermaid`, prints the README's diagram instead,
//! and with `--excerpt NAME` one of the README's output blocks ([`excerpts`]);
//! `cargo xtask diagrams` writes both.

use std::ops::Range;

use common::bindings::FILE_SHARE_READ;
use fltsim::{
    Event, Open, RegValue, World,
    diagram::{Demo, Diagram},
};
use rs_section_context::{DriverEntry, TAG};

/// The service name (`ServiceName` in `inf/rs_section_context.inx`): what `fltmc load` takes and
/// `fltmc filters` shows, and the registry key under `Services` the driver's parameters live in.
pub(crate) const SERVICE: &str = "RsSectionContext";

/// How the README's diagram draws the scenario: the first open, from create to close.
pub(crate) const DIAGRAM: Diagram<'static> = Diagram {
    filter: SERVICE,
    others: &[],
    calls: SHOWN,
    forks: &[],
    covers: "The first open of `C:\\rs-minifilter-demo\\section.txt` (read-only, sharing read \
             only), its read, its query and its close: the section created in post-create, found \
             again at each step, closed at the last cleanup (the calls of `SHOWN` in \
             `examples/demo.rs`, and what took each reference they give back).",
};

/// The calls worth seeing in the trace: the API this sample teaches and its neighbours.
pub(crate) const SHOWN: &[&str] = &[
    "FltRegisterForDataScan",
    "FltCreateSectionForDataScan",
    "FltGetSectionContext",
    "FltReferenceContext",
    "FltReleaseContext",
    "ObCloseHandle",
    "ObfDereferenceObject",
    "FltCloseSectionForDataScan",
];

/// The demo's scenario. Returns the part of the trace the diagram draws: the first open, from
/// the open to the end of its close.
pub(crate) fn scenario(world: &World) -> Range<usize> {
    world.create_file(
        "C:\\rs-minifilter-demo\\section.txt",
        &b"section-context demo line\r\n".repeat(200),
    );
    world.create_file("Z:\\remote.txt", b"on the network share");
    // As the INF writes it at install: the sample acts in this folder only.
    world.set_parameter(
        SERVICE,
        "DemoFolder",
        RegValue::Sz("rs-minifilter-demo".into()),
    );
    world
        .load(SERVICE, 370_230, DriverEntry)
        .expect("the sample loads");

    let start = world.trace_len();
    let h = world
        .open(
            "C:\\rs-minifilter-demo\\section.txt",
            Open::read().share(FILE_SHARE_READ),
        )
        .expect("open read-only, sharing read only");
    world.read(h, 0, 4096).expect("read");
    world.query_standard(h).expect("query");
    world.close(h).expect("close");
    let slice = start..world.trace_len();

    let h = world
        .open("C:\\rs-minifilter-demo\\section.txt", Open::read())
        .expect("open with write sharing");
    world.read(h, 0, 4096).expect("read");
    world.close(h).expect("close");

    let h = world
        .open("Z:\\remote.txt", Open::read().share(FILE_SHARE_READ))
        .expect("open on the share");
    world.read(h, 0, 64).expect("read");
    world.query_standard(h).expect("query");
    world.close(h).expect("close");
    world.unload(SERVICE).expect("the sample unloads");
    slice
}

/// The traces the demo prints once the scenario has run: the user's operations and the calls of
/// [`SHOWN`], with what took each reference they give back.
pub(crate) fn printed(world: &World) -> Vec<Vec<Event>> {
    vec![world.shown_calls(SHOWN)]
}

/// The README's diagram: the scenario, run in a new world, drawn.
pub(crate) fn diagram() -> String {
    let world = World::new();
    let slice = scenario(&world);
    let block = DIAGRAM.render(&world.trace()[slice]);
    world.finish();
    block
}

/// The README's output blocks, by name: the scenario, run in a new world, as the debugger shows it.
pub(crate) fn excerpts() -> Vec<(&'static str, String)> {
    let world = World::new();
    scenario(&world);
    let debugger = fltsim::excerpt::block(world.log_lines(SERVICE));
    world.finish();
    vec![("debugger", debugger)]
}

/// The demo's opening summary ([`fltsim::excerpt::summary`]), once the scenario has run.
pub(crate) fn summary(world: &World) -> Vec<String> {
    let got = world.calls("FltGetSectionContext").len();
    fltsim::excerpt::summary(
        [
            "open section.txt read-only, denying writers: a section is created and held,"
                .to_owned(),
            "  and the read, the query and the cleanup find it again (FltGetSectionContext)"
                .to_owned(),
            "open section.txt sharing write: no section (a writer could conflict with it)"
                .to_owned(),
            "open Z:\\remote.txt: no section (the share answers FltRegisterForDataScan with \
             STATUS_NOT_SUPPORTED)"
                .to_owned(),
            format!(
                "FltGetSectionContext calls: {got}, each released; {} debugger lines",
                world.log_lines(SERVICE).len()
            ),
            format!("verifier findings: {}", world.violations().len()),
        ],
        &[
            "A section context is found again from any later callback on the same stream, and",
            "every FltGetSectionContext success is paired with one FltReleaseContext.",
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
        scenario(&world);
        let summary = summary(&world);
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
    scenario(&world);

    for line in summary(&world) {
        println!("{line}");
    }
    println!();
    world.print_legend();
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
