//! `cargo xtask bench` (that is, `cargo run --release -p rs-data-scan --example bench`): the
//! windowed scan against raw `memchr::memmem` over the same buffer, and a `memcpy` of it, in one
//! run.
//!
//! Each measurement takes the best of several rounds over a
//! 64 MiB buffer with no signature in it (the worst case: every byte is searched), and prints
//! GB/s. The windowed scan should cost little over raw `memmem`: the target is at least 90 %.

use std::{hint::black_box, time::Instant};

use memchr::memmem;
use rs_data_scan::{EICAR, WINDOW, find_signature};

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
    assert_eq!(find_signature(&haystack, EICAR, WINDOW), None);
    let finder = memmem::Finder::new(EICAR);
    let mut copy = vec![0u8; SIZE];

    let windowed = best_gbps(|| {
        black_box(find_signature(black_box(&haystack), EICAR, WINDOW));
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
        "  windowed scan ({} KiB windows): {windowed:6.2} GB/s",
        WINDOW >> 10
    );
    println!("  raw memmem (one Finder):      {raw:6.2} GB/s");
    println!("  memcpy (copy_from_slice):     {memcpy:6.2} GB/s");
    println!(
        "  windowed / raw memmem: {:.1} %  (target: at least 90 %)",
        windowed / raw * 100.0
    );
}
