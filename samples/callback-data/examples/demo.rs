//! `cargo xtask demo callback-data`: open a few files of different sizes, a directory and a file
//! whose query fails, with a counting filter loaded below the sample. Prints the debugger lines,
//! then the trace of the sample's own I/O (synchronous, then asynchronous with its completion on
//! another thread) for the first file and for the failing one. With `--mermaid`, prints the
//! README's diagram instead, and with `--excerpt NAME` one of the README's output blocks
//! ([`excerpts`]); `cargo xtask diagrams` writes both.

use std::ops::Range;

use common::bindings::{IRP_MJ_QUERY_INFORMATION, STATUS_INVALID_DEVICE_REQUEST};
use fltsim::{
    Event, EventKind, Open, RegValue, World,
    diagram::{Demo, Diagram},
    who,
};
use rs_callback_data::{DriverEntry, TAG};

/// The service name (`ServiceName` in `inf/rs_callback_data.inx`): what `fltmc load` takes and
/// `fltmc filters` shows, and the registry key under `Services` the driver's parameters live in.
pub(crate) const SERVICE: &str = "RsCallbackData";

/// The counting filter the demo loads below the sample, which sees the sample's own I/O.
const BELOW: &str = "below";

/// How the README's diagram draws the scenario: the open and close of the first file.
pub(crate) const DIAGRAM: Diagram<'static> = Diagram {
    filter: SERVICE,
    others: &[(BELOW, "counting filter below")],
    calls: &[],
    forks: &[("FltPerformAsynchronousIo", "")],
    covers: "The open and close of `C:\\rs-minifilter-demo\\readme.txt`: post-create's two \
             synchronous queries, then its asynchronous one, whose completion Filter Manager \
             calls on another thread (drawn after `FltPerformAsynchronousIo` returns: it runs \
             concurrently with the user's next steps, and the close waits for its file-object \
             reference).",
};

/// The files the demo opens, and how.
fn opens() -> [(&'static str, Open); 5] {
    [
        ("C:\\rs-minifilter-demo\\readme.txt", Open::read()),
        ("C:\\rs-minifilter-demo\\report.pdf", Open::read()),
        ("C:\\rs-minifilter-demo\\empty.log", Open::read_write()),
        ("C:\\rs-minifilter-demo\\photos", Open::directory()),
        ("C:\\rs-minifilter-demo\\odd.dat", Open::read()),
    ]
}

/// The demo's scenario. Returns, for each open, its path and its part of the trace (from the
/// open to the end of the close), and how many query-information requests the filter below saw
/// that the sample generated.
pub(crate) fn scenario(world: &World) -> (Vec<(&'static str, Range<usize>)>, u32) {
    world.create_file("C:\\rs-minifilter-demo\\readme.txt", b"Read me first.\r\n");
    world.create_file("C:\\rs-minifilter-demo\\report.pdf", &vec![0x25; 48 * 1024]);
    world.create_file("C:\\rs-minifilter-demo\\empty.log", b"");
    world.create_dir("C:\\rs-minifilter-demo\\photos");
    world.create_file(
        "C:\\rs-minifilter-demo\\odd.dat",
        b"a file system that will not say",
    );
    world.fail_file_operation(
        "C:\\rs-minifilter-demo\\odd.dat",
        IRP_MJ_QUERY_INFORMATION,
        STATUS_INVALID_DEVICE_REQUEST,
    );

    world.load_counting_filter(BELOW, 360_000);
    // As the INF writes it at install: the sample acts in this folder only.
    world.set_parameter(
        SERVICE,
        "DemoFolder",
        RegValue::Sz("rs-minifilter-demo".into()),
    );
    world
        .load(SERVICE, 370_220, DriverEntry)
        .expect("the sample loads");

    let mut traces = Vec::new();
    for (path, how) in opens() {
        let start = world.trace_len();
        let handle = world.open(path, how).expect("the open succeeds");
        // The close waits for the file-object reference the asynchronous query holds, so by
        // then its completion has run too.
        world.close(handle).expect("close");
        traces.push((path, start..world.trace_len()));
    }
    let below = world.counts(BELOW).generated[IRP_MJ_QUERY_INFORMATION as usize];
    world.unload(SERVICE).expect("the sample unloads");
    (traces, below)
}

/// The traces the demo prints once the scenario has run: for the first file and the failing one,
/// the open-to-close part of the trace without the user's own lines.
pub(crate) fn printed(
    world: &World,
    traces: &[(&'static str, Range<usize>)],
) -> Vec<(&'static str, Vec<Event>)> {
    let trace = world.trace();
    traces
        .iter()
        .filter(|(path, _)| path.ends_with("readme.txt") || path.ends_with("odd.dat"))
        .map(|(path, range)| {
            let events = trace[range.clone()]
                .iter()
                .filter(|e| e.who != who::USER || e.kind != EventKind::User)
                .cloned()
                .collect();
            (*path, events)
        })
        .collect()
}

/// The README's diagram: the scenario, run in a new world, drawn.
pub(crate) fn diagram() -> String {
    let world = World::new();
    let (traces, _) = scenario(&world);
    let block = DIAGRAM.render(&world.trace()[traces[0].1.clone()]);
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

/// The demo's opening summary ([`fltsim::excerpt::summary`]), once the scenario has run and the
/// filter below saw `below` of the sample's queries.
pub(crate) fn summary(world: &World, traces: &[(&str, Range<usize>)], below: u32) -> Vec<String> {
    let mut happened: Vec<String> = traces
        .iter()
        .map(|(path, _)| format!("open {path}: ok"))
        .collect();
    happened.push(format!(
        "{} debugger lines: what the sample's own queries learned (odd.dat: the failure, by name)",
        world.log_lines(SERVICE).len()
    ));
    happened.push(format!(
        "the filter below saw {below} query-information requests, all of them the sample's own"
    ));
    happened.push(format!("verifier findings: {}", world.violations().len()));
    fltsim::excerpt::summary(
        happened,
        &[
            "Issuing your own I/O: allocate, perform, reuse and free callback data, sent only to",
            "the filters below. A query that fails is logged, and the user's open still succeeds.",
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
        let (traces, below) = scenario(&world);
        let summary = summary(&world, &traces, below);
        world.finish();
        summary
    }

    fn printed(world: &World) -> Vec<Vec<Event>> {
        let (traces, _) = scenario(world);
        let printed = printed(world, &traces)
            .into_iter()
            .map(|(_, events)| events);
        printed.collect()
    }
}

fn main() {
    if Shown::print_readme_block() {
        return;
    }
    let world = World::new();
    let (traces, below) = scenario(&world);

    for line in summary(&world, &traces, below) {
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
        "== The filter below saw {below} query-information requests, all generated by the \
         sample (two synchronous and one asynchronous per file, one of each for odd.dat)"
    );
    for (path, events) in printed(&world, &traces) {
        println!();
        println!("== The trace of {path}, open to close (all but the user's own lines)");
        for event in &events {
            println!("{event}");
        }
    }
    world.finish();
}
