//! `cargo xtask demo data-scan`: load the scanner into the Filter Manager model, then open a clean
//! file, the EICAR test file (the open is denied), an empty file, a large file with the signature
//! in its last bytes, and a file on the network share (no instance there). Last, write the
//! signature into the clean file through a handle and close it: the cleanup scan finds it, and the
//! next open is denied. Prints what the debugger would show, then the calls the sample made.

use fltsim::{Open, RegValue, World};
use rs_data_scan::{DriverEntry, EICAR, TAG, WINDOW};

/// The calls worth seeing in the trace: the API this sample teaches and its neighbours.
const SHOWN: &[&str] = &[
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

/// Opens `path` for read and closes it again, printing what the application saw.
fn open_and_close(world: &World, path: &str) {
    match world.open(path, Open::read()) {
        Ok(handle) => {
            world.close(handle).expect("close");
            println!("open {path}: ok");
        }
        Err(status) => println!("open {path}: failed with {status}"),
    }
}

fn main() {
    let world = World::new();
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
    world.set_parameter(TAG, "DemoFolder", RegValue::Sz("rs-minifilter-demo".into()));
    world
        .load(TAG, 265_130, DriverEntry)
        .expect("the sample loads");

    println!("== What the application sees");
    for path in [
        "C:\\rs-minifilter-demo\\clean.txt",
        "C:\\rs-minifilter-demo\\eicar.com",
        "C:\\rs-minifilter-demo\\empty.txt",
        "C:\\rs-minifilter-demo\\large.bin",
        "Z:\\share\\eicar.com",
    ] {
        open_and_close(&world, path);
    }
    let writer = world
        .open("C:\\rs-minifilter-demo\\clean.txt", Open::write())
        .expect("open the clean file for write");
    world
        .write(writer, 0, EICAR, false)
        .expect("write the signature");
    world.close(writer).expect("close: the cleanup scan runs");
    println!("write EICAR into C:\\rs-minifilter-demo\\clean.txt and close: ok");
    open_and_close(&world, "C:\\rs-minifilter-demo\\clean.txt");
    world.unload(TAG).expect("the sample unloads");

    println!();
    println!("== What the debugger shows ({TAG})");
    for line in world.log_lines(TAG) {
        println!("{line}");
    }
    println!();
    println!("== The calls the sample made, and what the user did");
    world.print_calls(SHOWN);
    world.finish();
}
