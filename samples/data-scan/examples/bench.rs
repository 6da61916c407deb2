//! `cargo xtask bench` (that is, `cargo run --release -p rs-data-scan --example bench`): the
//! driver's copy-and-scan path against its physical floor, on the same bytes.
//!
//! - **copy and scan**: the driver's search, `common::section::WindowReader::search`: the reader
//!   copies each window's new bytes into one bounded buffer (a `memcpy` standing in for
//!   `MmCopyMemory`, which is a kernel copy from the cache), keeps the overlap with the last
//!   window, and runs one `memmem` `Finder` over the window;
//! - **floor**: the same work with no bookkeeping: each window's bytes (with the overlap) copied
//!   into one window-sized buffer by a plain `memcpy`, and one `memmem` pass over that buffer.
//!   It copies and searches exactly the bytes the driver does, through a buffer of the same size,
//!   so it stays in cache as the driver's does (a whole-file copy falls out of cache and would be
//!   a floor the driver could beat).
//!
//! Each measurement takes the best of several rounds over a 64 MiB buffer with no signature in
//! it (the worst case: every byte is copied and searched), and prints GB/s, then a verdict: the
//! goal is met when copy and scan reaches at least 90 % of the floor, that is, when the reader's
//! own bookkeeping costs at most a tenth of the unavoidable copy and search.

use std::{hint::black_box, time::Instant};

use common::section::WindowReader;
use memchr::memmem;
use rs_data_scan::{EICAR, WINDOW};

const SIZE_MIB: u32 = 64;
const SIZE: usize = SIZE_MIB as usize * 1024 * 1024;
const ROUNDS: usize = 15;

/// The best throughput of `ROUNDS` runs of `body` over `SIZE` bytes, in GB/s.
fn best_gbps(mut body: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        body();
        best = best.min(start.elapsed().as_secs_f64());
    }
    f64::from(SIZE_MIB) * 1024.0 * 1024.0 / best / 1e9
}

fn main() {
    // Text-like bytes with plenty of the signature's first byte ('X') and of its rarer bytes, so
    // the searcher's candidate filter has work to do; no full signature anywhere.
    let pattern: &[u8] = b"X5O!P%@AP[4 the quick brown fox EICAR-STANDARD\r\n";
    let mut haystack: Vec<u8> = (0..SIZE).map(|i| pattern[i % pattern.len()]).collect();
    haystack[SIZE - 1] = b'*';
    assert_eq!(memmem::find(&haystack, EICAR), None);
    let finder = memmem::Finder::new(EICAR);
    let mut copy = vec![0u8; SIZE];

    let overlap = EICAR.len() - 1;
    let mut window_buffer = vec![0u8; WINDOW + overlap];
    let size = SIZE as u64;

    let copy_and_scan = best_gbps(|| {
        let mut reader = WindowReader::with_buffer(&mut window_buffer[..], WINDOW, overlap, size);
        let fill = |offset: u64, target: &mut [u8]| {
            let from = usize::try_from(offset).unwrap();
            target.copy_from_slice(&black_box(&haystack)[from..from + target.len()]);
            Ok(())
        };
        black_box(reader.search(fill, |window| finder.find(window)).unwrap());
    });
    let floor = best_gbps(|| {
        let mut found = None;
        let mut start = 0;
        while start < SIZE {
            // The window and the overlap before it, as the reader presents them.
            let from = start.saturating_sub(overlap);
            let end = (start + WINDOW).min(SIZE);
            let window = &mut window_buffer[..end - from];
            window.copy_from_slice(&black_box(&haystack)[from..end]);
            if let Some(at) = finder.find(window) {
                found = Some(from + at);
                break;
            }
            start = end;
        }
        black_box(found);
    });
    let whole_file = best_gbps(|| {
        copy.copy_from_slice(black_box(&haystack));
        black_box(finder.find(black_box(&copy)));
    });
    let raw = best_gbps(|| {
        black_box(finder.find(black_box(&haystack)));
    });
    let memcpy = best_gbps(|| {
        copy.copy_from_slice(black_box(&haystack));
        black_box(&mut copy);
    });
    println!("data-scan bench: {SIZE_MIB} MiB, no signature, best of {ROUNDS}");
    println!(
        "  copy and scan ({} KiB windows, the driver's path): {copy_and_scan:6.2} GB/s",
        WINDOW >> 10
    );
    println!("  floor (the same windows, memcpy + memmem each): {floor:6.2} GB/s");
    println!("  one memcpy of the file + one memmem (info):     {whole_file:6.2} GB/s");
    println!("  memmem alone:                                   {raw:6.2} GB/s");
    println!("  memcpy alone:                                   {memcpy:6.2} GB/s");
    let ratio = copy_and_scan / floor * 100.0;
    println!("  copy and scan / floor: {ratio:.1} %  (target: at least 90 %)");
    if ratio >= 90.0 {
        println!(
            "verdict: goal met: the driver's path runs at {ratio:.1} % of the speed of the bare copy \
             and search of the same windows"
        );
    } else {
        println!(
            "verdict: goal NOT met: the driver's path runs at {ratio:.1} % of the bare copy and \
             search of the same windows (at least 90 % wanted): its bookkeeping costs too much"
        );
    }
}
