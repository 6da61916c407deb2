//! `cargo xtask demo passthrough`: load the sample into the Filter Manager model, open, read, write
//! and close a file, then unload. Prints what the debugger would show, then the model's trace.

use fltsim::{Open, World};
use rs_passthrough::{DriverEntry, TAG};

fn main() {
    let world = World::new();
    world.create_file("C:\\docs\\notes.txt", b"passthrough sees everything");

    world
        .load(TAG, 370_210, DriverEntry)
        .expect("the sample loads");
    let handle = world
        .open("C:\\docs\\notes.txt", Open::read_write())
        .expect("open");
    let bytes = world.read(handle, 0, 64).expect("read");
    world
        .write(handle, bytes.len() as u64, b" and changes nothing", false)
        .expect("write");
    world.close(handle).expect("close");
    world.unload(TAG).expect("the sample unloads");

    println!("== What the debugger shows ({TAG})");
    for line in world.log_lines(TAG) {
        println!("{line}");
    }
    println!();
    println!("== The Filter Manager trace");
    world.print_trace(0);
    world.finish();
}
