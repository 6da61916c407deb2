//! `cargo xtask bench`: the benchmarks, each an example of a sample run with `--release`
//! ([`BENCH_PACKAGES`]).

use std::path::Path;

use anyhow::Result;

use crate::process::{self, cargo};

/// The benchmarks `cargo xtask bench` runs: package, the directory that must exist, and the
/// example that measures. Add a row when a sample gets one.
///
/// They are examples run with `--release`, not `[[bench]]` targets: the workspace profiles say
/// `panic = "abort"` (the drivers need it), and `cargo build --all-targets` would build a bench
/// target with the test harness's `unwind` against `abort` dependencies, and fail.
const BENCH_PACKAGES: &[(&str, &str, &str)] = &[("rs-data-scan", "samples/data-scan", "bench")];

/// `cargo xtask bench`.
pub fn run(root: &Path) -> Result<()> {
    let mut ran = 0;
    for (package, dir, example) in BENCH_PACKAGES {
        if !root.join(dir).join("Cargo.toml").is_file() {
            println!("{package}: no crate at {dir} yet, nothing to benchmark");
            continue;
        }
        let mut command = cargo();
        command.current_dir(root).args([
            "run",
            "--release",
            "-q",
            "-p",
            package,
            "--example",
            example,
        ]);
        process::run(command, &format!("benchmarks of {package}"))?;
        ran += 1;
    }
    println!("{ran} benchmark package(s) run.");
    Ok(())
}
