//! `cargo xtask demo section-context`: load the sample into the Filter Manager model; open a file
//! read-only without write sharing, read it, query it and close it (the section is found at each
//! step, then closed); open it again with write sharing (`STATUS_NOT_FOUND`); touch a file on the
//! network share (`STATUS_NOT_SUPPORTED`, logged once); unload. Prints what the debugger would
//! show, then the calls the sample made.

use common::bindings::FILE_SHARE_READ;
use fltsim::{Open, RegValue, World};
use rs_section_context::{DriverEntry, TAG};

/// The calls worth seeing in the trace: the API this sample teaches and its neighbours.
const SHOWN: &[&str] = &[
    "FltRegisterForDataScan",
    "FltCreateSectionForDataScan",
    "FltGetSectionContext",
    "FltReferenceContext",
    "FltReleaseContext",
    "ObCloseHandle",
    "ObfDereferenceObject",
    "FltCloseSectionForDataScan",
];

fn main() {
    let world = World::new();
    world.create_file(
        "C:\\rs-minifilter-demo\\section.txt",
        &b"section-context demo line\r\n".repeat(200),
    );
    world.create_file("Z:\\remote.txt", b"on the network share");
    // As the INF writes it at install: the sample acts in this folder only.
    world.set_parameter(TAG, "DemoFolder", RegValue::Sz("rs-minifilter-demo".into()));
    world
        .load(TAG, 370_230, DriverEntry)
        .expect("the sample loads");

    let h = world
        .open(
            "C:\\rs-minifilter-demo\\section.txt",
            Open::read().share(FILE_SHARE_READ),
        )
        .expect("open read-only, sharing read only");
    world.read(h, 0, 4096).expect("read");
    world.query_standard(h).expect("query");
    world.close(h).expect("close");

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
    world.unload(TAG).expect("the sample unloads");

    println!("== What the debugger shows ({TAG})");
    for line in world.log_lines(TAG) {
        println!("{line}");
    }
    println!();
    println!("== The calls the sample made, and what the user did");
    world.print_calls(SHOWN);
    world.finish();
}
