//! Random operation storms against callback-data (`fltsim::storm`): user threads on both volumes, unloads
//! and reloads while they run, injected faults. `cargo test` runs the fixed seeds below; `cargo
//! xtask stress --sample callback-data` runs the CI seeds, `--seed N` replays one, `--minutes M` runs fresh
//! seeds.

use std::ops::RangeInclusive;

use fltsim::storm::{Oracle, Target, main as storm_main};

const TARGET: Target = Target {
    sample: "callback-data",
    name: "rs-callback-data",
    altitude: 370_220,
    entry: rs_callback_data::DriverEntry,
    oracle: Oracle::FailOpen,
    imports: include_str!("../driver-imports.txt"),
};

/// Seeds that once failed, each with what it found (kept as regression cases).
const REGRESSION: &[u64] = &[];

/// Run by `cargo test`, after the regressions.
const QUICK: &[u64] = &[1, 2];

/// Run by `cargo xtask stress` (and CI), after the regressions: the same seeds every time.
const CI: RangeInclusive<u64> = 1..=1000;

fn main() {
    storm_main(&TARGET, REGRESSION, QUICK, CI);
}
