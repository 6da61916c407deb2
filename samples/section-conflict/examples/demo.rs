//! `cargo xtask demo section-conflict`: open a large file so a scan starts, truncate it from a
//! second handle, and watch the scan give way. Then the same truncation with the notification
//! withheld, which fails with `STATUS_USER_MAPPED_FILE`.

use std::time::{Duration, Instant};

use fltsim::{Open, RegValue, World};
use rs_section_conflict::{DriverEntry, TAG};

const FILE: &str = "C:\\rs-minifilter-demo\\big.bin";

fn scenario(notify: bool) {
    let world = World::new();
    world.set_section_notifications(notify);
    let contents: Vec<u8> = (0..1usize << 20)
        .map(|i| u8::try_from(i % 251).expect("below 251"))
        .collect();
    world.create_file(FILE, &contents);
    // As the INF writes it at install: the sample acts in this folder only.
    world.set_parameter(TAG, "DemoFolder", RegValue::Sz("rs-minifilter-demo".into()));
    world
        .load(TAG, 265_140, DriverEntry)
        .expect("the sample loads");
    let start = world.trace_len();
    let reader = world.open(FILE, Open::read()).expect("open for read");
    // Let the scan read a few chunks first (bounded), so the conflict meets it mid-file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while world.calls("MmUnmapViewInSystemSpace").len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let writer = world.open(FILE, Open::write()).expect("open for write");
    let result = world.set_end_of_file(writer, 10);
    if notify {
        // Let the worker notice the abort (bounded).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !world
            .log_lines(TAG)
            .iter()
            .any(|l| l.contains("scan aborted"))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    world.close(writer).expect("close");
    world.close(reader).expect("close");
    world.unload(TAG).expect("unloads");
    println!("--- debugger output ---");
    for line in world.log_lines(TAG) {
        println!("{line}");
    }
    println!("--- the truncation from the second handle: {result:?}");
    println!("--- Filter Manager trace ---");
    world.print_trace(start);
    world.finish();
}

fn main() {
    println!("=== 1. SectionNotificationCallback registered: the scan gives way ===");
    scenario(true);
    println!();
    println!("=== 2. The notification withheld (control run): the truncation fails ===");
    scenario(false);
}
