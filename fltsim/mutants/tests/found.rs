//! The storms find every planted bug: each mutant fails some storm among the first seeds.
//!
//! The bound is a number of seeds, not seconds: the CI seeds run in a fixed order, so "found
//! within N seeds" holds on any machine. Measured over seeds 1..=1000 (the figures in each test's
//! doc) every mutant is found far more often than the bound needs.
//!
//! A replay is deterministic: every thread of a storm runs under one scheduler seeded with the
//! storm's seed, on a virtual clock (`fltsim::storm`'s doc, issue 25 item 2). So each finding's
//! seed must fail again in every one of [`REPLAYS`] replays, races included.

use fltsim::storm::{Target, check_seed};
use fltsim_mutants::{callback_data, data_scan};

/// How many seeds a storm may take to find a planted bug.
const WITHIN: u64 = 200;

/// How often a finding's seed is replayed.
const REPLAYS: u32 = 20;

/// The first seed (of `1..=WITHIN`) whose storm finds a problem, which must be `expect`; then
/// every one of [`REPLAYS`] replays of that seed must fail again.
fn assert_found_and_replayed(target: &Target, expect: &str) {
    let (seed, why) = (1..=WITHIN)
        .find_map(|seed| check_seed(target, seed).err().map(|why| (seed, why)))
        .unwrap_or_else(|| panic!("no storm of seeds 1..={WITHIN} found the planted bug"));
    assert!(
        why.contains(expect),
        "seed {seed} found something else:\n{why}"
    );
    let again = (0..REPLAYS)
        .filter(|_| check_seed(target, seed).is_err())
        .count();
    eprintln!("seed {seed}, replayed: {again} of {REPLAYS} fail again\n{why}");
    assert_eq!(
        again, REPLAYS as usize,
        "seed {seed} failed again in only {again} of {REPLAYS} replays"
    );
}

/// 66 of seeds 1..=1000 find it (the first is 19; 20 of 20 replays fail again): it needs a fault
/// in `FltAllocateCallbackDataEx` at the asynchronous query's call.
#[test]
fn a_pool_block_leaked_on_a_failed_allocation_is_found() {
    use fltsim_mutants::callback_data_leaks_on_a_failed_allocation::DriverEntry;
    assert_found_and_replayed(&callback_data(DriverEntry), "were never freed");
}

/// 797 of seeds 1..=1000 find it (the first is 1; 20 of 20 replays fail again).
#[test]
fn a_reference_released_twice_is_found() {
    use fltsim_mutants::callback_data_dereferences_twice::DriverEntry;
    assert_found_and_replayed(
        &callback_data(DriverEntry),
        "ObDereferenceObject: no filter holds a reference",
    );
}

/// 869 of seeds 1..=1000 find it (the first is 1; 20 of 20 replays fail again).
#[test]
fn a_callback_data_performed_again_without_reuse_is_found() {
    use fltsim_mutants::callback_data_skips_the_reuse::DriverEntry;
    assert_found_and_replayed(
        &callback_data(DriverEntry),
        "issued twice without FltReuseCallbackData",
    );
}

/// A race: the completion routine frees after unload stopped waiting, so the storm finds it only
/// when an unload meets a query in flight. 57 of seeds 1..=1000 find it (the first is 46), and
/// under the seeded scheduler each replay of seed 46 meets it again (20 of 20; with the OS
/// scheduling the threads, seed 22 once failed again in 8 of 20).
#[test]
fn a_rundown_released_before_the_frees_is_found() {
    use fltsim_mutants::callback_data_releases_rundown_too_early::DriverEntry;
    assert_found_and_replayed(&callback_data(DriverEntry), "never freed");
}

/// It needs a fault in `FltCreateSectionForDataScan`, and whether the armed fault fires depends on
/// how the storm's threads are scheduled, which the seed now fixes: 96 of seeds 1..=1000 find it
/// (the first is 6; 20 of 20 replays fail again).
#[test]
fn a_context_released_twice_after_a_failed_create_is_found() {
    use fltsim_mutants::data_scan_releases_twice_on_a_failed_create::DriverEntry;
    assert_found_and_replayed(&data_scan(DriverEntry), "was already freed");
}

/// It needs a fault in `FltCreateSectionForDataScan` (see the test above): 96 of seeds 1..=1000
/// find it (the first is 6; 20 of 20 replays fail again).
#[test]
fn a_context_leaked_after_a_failed_create_is_found() {
    use fltsim_mutants::data_scan_leaks_the_context_on_a_failed_create::DriverEntry;
    assert_found_and_replayed(&data_scan(DriverEntry), "leaked context");
}

/// It needs a fault in `MmCopyMemory`: 86 of seeds 1..=1000 find it (the first is 1; 20 of 20
/// replays fail again).
#[test]
fn a_view_left_mapped_after_a_failed_copy_is_found() {
    use fltsim_mutants::data_scan_leaves_a_view_mapped_on_a_failed_copy::DriverEntry;
    assert_found_and_replayed(&data_scan(DriverEntry), "was never unmapped");
}
