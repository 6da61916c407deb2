//! `cargo xtask demo section-conflict`: a file outside the demo folder is out of the sample's
//! scope (`Parameters\DemoFolder`), so nothing happens to it; a file in the demo folder is scanned
//! slowly, and a truncation from a second handle makes that scan give way. Then the same truncation
//! with the notification withheld: Filter Manager keeps it pended until the scan has read the
//! whole file and closed its section, then requeues it, and it succeeds. With `--mermaid`, prints
//! the README's diagram instead, and with `--excerpt NAME` one of the README's output blocks
//! ([`excerpts`]); `cargo xtask diagrams` writes both.
//!
//! The demo stops the slow scan at a known point (fltsim's `hold_delays`: the scan is parked in
//! the pause after its first chunk), so its output is the same on every run.

use std::{ops::Range, time::Duration};

use fltsim::{
    Event, Open, RegValue, World,
    diagram::{Demo, Diagram},
};
use rs_section_conflict::{DriverEntry, TAG};

/// The service name (`ServiceName` in `inf/rs_section_conflict.inx`): what `fltmc load` takes and
/// `fltmc filters` shows, and the registry key under `Services` the driver's parameters live in.
pub(crate) const SERVICE: &str = "RsSectionConflict";

/// How the README's diagram draws the scenario: the first run, from the open of the demo file.
pub(crate) const DIAGRAM: Diagram<'static> = Diagram {
    filter: SERVICE,
    others: &[],
    calls: &[
        "FltAllocateContext",
        "FltCreateSectionForDataScan",
        "MmMapViewInSystemSpaceEx",
        "MmCopyMemory",
        "MmUnmapViewInSystemSpace",
        "KeDelayExecutionThread",
        "ObCloseHandle",
        "ObfDereferenceObject",
        "FltCloseSectionForDataScan",
        "FltReleaseContext",
        "FltObjectDereference",
        "PsTerminateSystemThread",
        "FltUnregisterFilter",
    ],
    // The scan runs until its first pause, which the demo holds; at the unload, the thread
    // ends before `FltUnregisterFilter` returns.
    forks: &[
        ("FltCreateSectionForDataScan", "KeDelayExecutionThread"),
        ("fltmc unload", ""),
    ],
    covers: "The first run (`SectionNotificationCallback` registered), from the open of \
             `C:\\rs-minifilter-demo\\big.bin` to the unload: the scan on the sample's system \
             thread, held in its first pause; the truncation from a second handle, for which \
             Filter Manager calls `SectionNotificationCallback`, which closes the section; the \
             scan giving way. The demo orders the two threads with holds, so the order is the \
             same on every run.",
};

/// Outside the demo folder: out of scope, not scanned.
const OTHER: &str = "C:\\data\\report.bin";
/// In the demo folder (a path component `rs-minifilter-demo`): one clock tick of pause per chunk.
const DEMO: &str = "C:\\rs-minifilter-demo\\big.bin";
/// A bound on a hang, not a timing: each wait below ends within milliseconds.
const BOUND: Duration = Duration::from_secs(20);

/// One run of the demo's scenario, with or without the notification. Returns the truncation's
/// result and the part of the trace from the open of [`DEMO`] to the unload.
pub(crate) fn scenario(
    world: &World,
    notify: bool,
) -> (Result<(), fltsim::NtStatus>, Range<usize>) {
    world.set_section_notifications(notify);
    let contents: Vec<u8> = (0..1usize << 20)
        .map(|i| u8::try_from(i % 251).expect("below 251"))
        .collect();
    world.create_file(OTHER, &contents);
    world.create_file(DEMO, &contents);
    // As the INF writes it at install: the sample acts in this folder only.
    world.set_parameter(
        SERVICE,
        "DemoFolder",
        RegValue::Sz("rs-minifilter-demo".into()),
    );
    world
        .load(SERVICE, 265_140, DriverEntry)
        .expect("the sample loads");
    // 1. A read-open outside the demo folder: out of scope, so the pre-create lets it pass with
    //    no post-create, no scan and no line.
    let other = world.open(OTHER, Open::read()).expect("open for read");
    world.close(other).expect("close");
    // 2. A read-open in the demo folder: the scan pauses after each chunk; hold it in its first
    //    pause, so the conflict meets it in flight.
    let start = world.trace_len();
    let paused = world.hold_delays();
    let reader = world.open(DEMO, Open::read()).expect("open for read");
    assert!(paused.wait_held(BOUND), "the scan of big.bin never paused");
    // 3. Truncate it from a second handle (write-only: this open starts no scan). With the
    //    notification, the callback closes the section and the truncation goes through at once.
    //    Without it, Filter Manager pends the truncation; once it is pended, let the scan go on:
    //    it reads the whole file, closes its section, and the truncation is requeued.
    let writer = world.open(DEMO, Open::write()).expect("open for write");
    let result = std::thread::scope(|s| {
        let truncation = s.spawn(|| world.set_end_of_file(writer, 10));
        if !notify {
            let pended =
                world.wait_for_event(BOUND, |e| e.text.contains("Filter Manager pends it"));
            assert!(pended.is_some(), "the truncation was not pended");
            paused.release();
        }
        truncation.join().expect("no panic")
    });
    world.close(writer).expect("close");
    world.close(reader).expect("close");
    // 4. Unload: the scan thread ends. In the first run the scan was aborted after its first
    //    chunk (the unload's wait for the thread lets the held pause go).
    world.unload(SERVICE).expect("unloads");
    (result, start..world.trace_len())
}

/// The traces the demo prints once a run has ended: all of it, from the load, so that the thread
/// object the unload dereferences is seen taken (`ObReferenceObjectByHandle` in `DriverEntry`).
pub(crate) fn printed(world: &World) -> Vec<Vec<Event>> {
    vec![world.trace()]
}

/// The README's diagram: the first run, in a new world, drawn.
pub(crate) fn diagram() -> String {
    let world = World::new();
    let (_, slice) = scenario(&world, true);
    let block = DIAGRAM.render(&world.trace()[slice]);
    world.finish();
    block
}

/// One run, printed.
fn run(title: &str, notify: bool) {
    let world = World::new();
    let (result, _) = scenario(&world, notify);
    println!("== {title}");
    println!();
    println!("== What the debugger shows ({TAG})");
    for line in world.log_lines(SERVICE) {
        println!("{line}");
    }
    println!();
    println!("== The truncation from the second handle: {result:?}");
    println!();
    for trace in printed(&world) {
        println!("== The trace");
        for event in &trace {
            println!("{event}");
        }
    }
    world.finish();
}

/// The README's output blocks, by name: each run, in a new world, as the debugger shows it, and
/// the truncation's result as [`run`] prints it.
pub(crate) fn excerpts() -> Vec<(&'static str, String)> {
    let excerpt = |notify| {
        let world = World::new();
        let (result, _) = scenario(&world, notify);
        let mut lines = world.log_lines(SERVICE);
        lines.push(format!(
            "== The truncation from the second handle: {result:?}"
        ));
        world.finish();
        fltsim::excerpt::block(lines)
    };
    vec![("notified", excerpt(true)), ("withheld", excerpt(false))]
}

/// The demo's opening summary ([`fltsim::excerpt::summary`]): both runs, each in a new world.
pub(crate) fn summary() -> Vec<String> {
    let result = |notify| {
        let world = World::new();
        let (result, _) = scenario(&world, notify);
        let findings = world.violations().len();
        world.finish();
        (result, findings)
    };
    let (notified, notified_findings) = result(true);
    let (withheld, withheld_findings) = result(false);
    fltsim::excerpt::summary(
        [
            format!(
                "run 1, notification registered: a scan holds its section, a second handle \
                 truncates the file: {notified:?}"
            ),
            "  Filter Manager pends the truncation and calls the SectionNotificationCallback; \
             the scan gives way"
                .to_owned(),
            format!("run 2, notification withheld (control): the truncation: {withheld:?}"),
            "  it waits, pended, until the scan has read the whole file and closed its section"
                .to_owned(),
            format!("verifier findings: {notified_findings} and {withheld_findings}"),
        ],
        &[
            "A scan that holds a section makes conflicting I/O wait; giving the section up in",
            "the notification is what lets that I/O go on at once.",
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
        summary()
    }

    fn printed(world: &World) -> Vec<Vec<Event>> {
        let (truncation, _) = scenario(world, true);
        assert!(truncation.is_ok(), "the scan gives way: {truncation:?}");
        printed(world)
    }
}

fn main() {
    if Shown::print_readme_block() {
        return;
    }
    for line in summary() {
        println!("{line}");
    }
    println!();
    println!("{}", fltsim::LEGEND);
    println!();
    run(
        "Run 1: SectionNotificationCallback registered, the scan gives way",
        true,
    );
    println!();
    run(
        "Run 2: the notification withheld (control run), the truncation waits for the scan",
        false,
    );
}
