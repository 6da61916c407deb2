//! `cargo xtask demo passthrough`: load the sample into the Filter Manager model, open, read, write
//! and close a file, then unload. Prints what the debugger would show, then the model's trace.
//! With `--mermaid`, prints the README's diagram instead, and with `--excerpt NAME` one of the
//! README's output blocks ([`excerpts`]); `cargo xtask diagrams` writes both.

use std::ops::Range;

use fltsim::{
    Event, Open, World,
    diagram::{Demo, Diagram},
};
use rs_passthrough::{DriverEntry, TAG};

/// The service name (`ServiceName` in `inf/rs_passthrough.inx`): what `fltmc load` takes and
/// `fltmc filters` shows, and the registry key under `Services` the driver's parameters live in.
pub(crate) const SERVICE: &str = "RsPassthrough";

/// How the README's diagram draws the scenario: all of it.
pub(crate) const DIAGRAM: Diagram<'static> = Diagram {
    filter: SERVICE,
    others: &[],
    calls: &[],
    forks: &[],
    covers: "The whole demo: load, open, read, write, close, unload.",
};

/// The demo's scenario. Returns the part of the trace the diagram draws.
pub(crate) fn scenario(world: &World) -> Range<usize> {
    world.create_file("C:\\docs\\notes.txt", b"passthrough sees everything");
    world
        .load(SERVICE, 370_210, DriverEntry)
        .expect("the sample loads");
    let handle = world
        .open("C:\\docs\\notes.txt", Open::read_write())
        .expect("open");
    let bytes = world.read(handle, 0, 64).expect("read");
    world
        .write(handle, bytes.len() as u64, b" and changes nothing", false)
        .expect("write");
    world.close(handle).expect("close");
    world.unload(SERVICE).expect("the sample unloads");
    0..world.trace_len()
}

/// The traces the demo prints once the scenario has run: all of it.
pub(crate) fn printed(world: &World) -> Vec<Vec<Event>> {
    vec![world.trace()]
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
    let lines = world.log_lines(SERVICE);
    fltsim::excerpt::summary(
        [
            format!("{SERVICE} registered, started filtering and attached to every volume"),
            "the user opened, read, wrote and closed C:\\docs\\notes.txt: all succeeded, \
             untouched"
                .to_owned(),
            format!(
                "the unload printed what it counted ({} debugger lines) and {SERVICE} unloaded",
                lines.len()
            ),
            format!("verifier findings: {}", world.violations().len()),
        ],
        &[
            "The smallest complete minifilter: registration, callbacks that only count, and an",
            "unload that Filter Manager can finish. Every other sample starts from this one.",
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
    for trace in printed(&world) {
        println!("== The trace");
        for event in &trace {
            println!("{event}");
        }
    }
    world.finish();
}
