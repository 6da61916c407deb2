//! Random operation storms against section-context (`fltsim::storm`): user threads on both volumes, unloads
//! and reloads while they run, injected faults. `cargo test` runs the fixed seeds below; `cargo
//! xtask stress --sample section-context` runs the CI seeds, `--seed N` replays one, `--minutes M` runs fresh
//! seeds.

use std::ops::RangeInclusive;

use fltsim::storm::{Oracle, Target, main as storm_main};

const TARGET: Target = Target {
    sample: "section-context",
    name: "rs-section-context",
    altitude: 370_230,
    entry: rs_section_context::DriverEntry,
    oracle: Oracle::FailOpen,
};

/// Seeds that once failed, each with what it found (kept as regression cases).
const REGRESSION: &[u64] = &[
    // An unload tore the C: instance down while a post-create in flight created a section;
    // fltsim then notified no torn-down instance, so an overwriting open that met the section
    // failed with STATUS_USER_MAPPED_FILE. Filter Manager notifies an instance until its
    // teardown completes (and teardown waits for the notification).
    3_628_745_496_438_162_139,
];

/// Run by `cargo test`, after the regressions.
const QUICK: &[u64] = &[1, 2];

/// Run by `cargo xtask stress` (and CI), after the regressions: the same seeds every time.
const CI: RangeInclusive<u64> = 1..=1000;

fn main() {
    storm_main(&TARGET, REGRESSION, QUICK, CI);
}
