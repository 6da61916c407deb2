//! The storms find every planted bug: each mutant fails some storm among the first seeds.
//!
//! The bound is a number of seeds, not seconds: the CI seeds run in a fixed order, so "found
//! within N seeds" holds on any machine. It is [`WITHIN`] unless a test states its own, for a
//! mistake on a path that few storms take. Each test's doc gives what was measured: the seed
//! range, how many of its seeds found the mutant, the first that did, and how often that seed
//! failed again in 20 replays; every mutant is found far more often than its bound needs. On a
//! 2-core machine the slowest test takes about 20 s (a leak: each of its failing replays waits
//! out a 2 s teardown), and the whole file about 55 s.
//!
//! A replay is not fully deterministic: the model's threads are scheduled by the OS, not by a
//! seeded scheduler (issue 25 item 2). A mistake on a path every storm takes replays every time,
//! and its test requires most replays to fail again. A race replays only sometimes: its test
//! prints how often, and requires only the finding.

use fltsim::storm::{Oracle, Target, check_seed};

/// A mutant of callback-data, judged as callback-data is.
const fn callback_data(entry: fltsim::DriverEntry) -> Target {
    Target {
        sample: "callback-data",
        name: "rs-callback-data",
        altitude: 370_220,
        entry,
        oracle: Oracle::FailOpen,
        imports: include_str!("../../../samples/callback-data/driver-imports.txt"),
    }
}

/// A mutant of data-scan, judged as data-scan is.
const fn data_scan(entry: fltsim::DriverEntry) -> Target {
    Target {
        sample: "data-scan",
        name: "rs-data-scan",
        altitude: 265_130,
        entry,
        oracle: Oracle::DataScan,
        imports: include_str!("../../../samples/data-scan/driver-imports.txt"),
    }
}

/// A mutant of section-conflict, judged as section-conflict is.
const fn section_conflict(entry: fltsim::DriverEntry) -> Target {
    Target {
        sample: "section-conflict",
        name: "rs-section-conflict",
        altitude: 265_140,
        entry,
        oracle: Oracle::SectionConflict,
        imports: include_str!("../../../samples/section-conflict/driver-imports.txt"),
    }
}

/// A mutant of section-context, judged as section-context is.
const fn section_context(entry: fltsim::DriverEntry) -> Target {
    Target {
        sample: "section-context",
        name: "rs-section-context",
        altitude: 370_230,
        entry,
        oracle: Oracle::FailOpen,
        imports: include_str!("../../../samples/section-context/driver-imports.txt"),
    }
}

/// How many seeds a storm may take to find a planted bug, unless its test states another bound.
const WITHIN: u64 = 200;

/// How often a finding's seed is replayed.
const REPLAYS: u32 = 10;

/// The first seed (of `1..=WITHIN`) whose storm finds a problem, with the problem; then how many
/// of [`REPLAYS`] replays of it fail again.
fn found(target: &Target, expect: &str) -> (u64, u32) {
    found_within(target, expect, WITHIN)
}

/// [`found`], among seeds `1..=within`: for a mistake on a path that few storms take.
fn found_within(target: &Target, expect: &str, within: u64) -> (u64, u32) {
    let (seed, why) = (1..=within)
        .find_map(|seed| check_seed(target, seed).err().map(|why| (seed, why)))
        .unwrap_or_else(|| panic!("no storm of seeds 1..={within} found the planted bug"));
    assert!(
        why.contains(expect),
        "seed {seed} found something else:\n{why}"
    );
    let again = (0..REPLAYS)
        .filter(|_| check_seed(target, seed).is_err())
        .count();
    let again = u32::try_from(again).unwrap_or(u32::MAX);
    eprintln!("seed {seed}, replayed: {again} of {REPLAYS} fail again\n{why}");
    (seed, again)
}

/// A mistake on a path that the storm takes every time: found, and found again on replay.
fn assert_found_and_replayed(target: &Target, expect: &str) {
    let (seed, again) = found(target, expect);
    assert!(
        again * 2 >= REPLAYS,
        "seed {seed} failed again in only {again} of {REPLAYS} replays"
    );
}

/// 64 of seeds 1..=1000 find it (the first is 19), each replay of seed 19 fails again (20 of
/// 20): it needs a fault in `FltAllocateCallbackDataEx` at the asynchronous query's call.
#[test]
fn a_pool_block_leaked_on_a_failed_allocation_is_found() {
    use fltsim_mutants::callback_data_leaks_on_a_failed_allocation::DriverEntry;
    assert_found_and_replayed(&callback_data(DriverEntry), "were never freed");
}

/// 716 of seeds 1..=1000 find it; replays 20 of 20.
#[test]
fn a_reference_released_twice_is_found() {
    use fltsim_mutants::callback_data_dereferences_twice::DriverEntry;
    assert_found_and_replayed(
        &callback_data(DriverEntry),
        "ObDereferenceObject: no filter holds a reference",
    );
}

/// 839 of seeds 1..=1000 find it; replays 20 of 20.
#[test]
fn a_callback_data_performed_again_without_reuse_is_found() {
    use fltsim_mutants::callback_data_skips_the_reuse::DriverEntry;
    assert_found_and_replayed(
        &callback_data(DriverEntry),
        "issued twice without FltReuseCallbackData",
    );
}

/// A race: the completion routine frees after unload stopped waiting, so the storm finds it only
/// when an unload meets a query in flight. 81 of seeds 1..=1000 find it (the first is 22), and
/// seed 22 fails again in 8 of 20 replays: the replay waits for the seeded scheduler.
#[test]
fn a_rundown_released_before_the_frees_is_found() {
    use fltsim_mutants::callback_data_releases_rundown_too_early::DriverEntry;
    found(&callback_data(DriverEntry), "never freed");
}

/// It needs a fault in `FltCreateSectionForDataScan`, and whether the armed fault fires depends on
/// how the storm's threads are scheduled: 25 of seeds 1..=250 found it; the first was seed 6 in
/// two runs (20 of 20 replays fail again) and seed 4 in a third (0 of 20). So only the finding is
/// required.
#[test]
fn a_context_released_twice_after_a_failed_create_is_found() {
    use fltsim_mutants::data_scan_releases_twice_on_a_failed_create::DriverEntry;
    found(&data_scan(DriverEntry), "was already freed");
}

/// It needs a fault in `FltCreateSectionForDataScan` (see the test above): 24 of seeds 1..=250
/// found it, the first seed 6 in three runs, 20 of 20 replays failing again each time; only the
/// finding is required, as a fault's firing may vary with scheduling.
#[test]
fn a_context_leaked_after_a_failed_create_is_found() {
    use fltsim_mutants::data_scan_leaks_the_context_on_a_failed_create::DriverEntry;
    found(&data_scan(DriverEntry), "leaked context");
}

/// It needs a fault in `MmCopyMemory`: 17 of seeds 1..=250 found it, the first seed 1 in three
/// runs, 20 of 20 replays failing again each time.
#[test]
fn a_view_left_mapped_after_a_failed_copy_is_found() {
    use fltsim_mutants::data_scan_leaves_a_view_mapped_on_a_failed_copy::DriverEntry;
    assert_found_and_replayed(&data_scan(DriverEntry), "was never unmapped");
}

/// A close out of order: the section unlinked before its handle and object are gone, so that a
/// conflicting operation in that window is no longer pended by Filter Manager and fails with
/// `STATUS_USER_MAPPED_FILE` (the oracle's finding). A race whose window is two kernel calls:
/// 4 of seeds 1..=1000 found it in one run (the first was 31), 9 of 1..=5000 in another (the
/// first 24); seeds 24, 31 and 239 failed again in 0, 1 and 0 of 20 replays. Only the finding is
/// required.
#[test]
fn a_section_unlinked_before_it_is_closed_is_found() {
    use fltsim_mutants::data_scan_unlinks_before_closing_the_section::DriverEntry;
    found_within(&data_scan(DriverEntry), "STATUS_USER_MAPPED_FILE", 5000);
}

/// A hand-off that both sides win: the scan thread closes first and takes its slot afterwards,
/// so a conflict or a teardown that takes the slot meanwhile closes again (the second closer's
/// `ObCloseHandle` meets a closed handle). A race: measured over seeds 1..=250, 79 find it (the
/// first is 2), and seed 2 fails again in 20 of 20 replays. Only the finding is required.
#[test]
fn a_section_closed_before_the_exchange_is_found() {
    use fltsim_mutants::section_conflict_closes_before_the_exchange::DriverEntry;
    found(&section_conflict(DriverEntry), "was already");
}

/// The scan thread closes without the exchange: its section stays in its slot, and teardown or
/// a conflict closes it again. 125 of seeds 1..=250 find it (the first is 1); replays 20 of 20.
#[test]
fn a_section_closed_without_the_exchange_is_found() {
    use fltsim_mutants::section_conflict_closes_without_the_exchange::DriverEntry;
    assert_found_and_replayed(&section_conflict(DriverEntry), "was already");
}

/// A post-create path that forgets a reference on failure: when publishing fails, the creator
/// closes the section but keeps its reference on the scan, whose instance reference then holds
/// up the instance's teardown. A rare race: publishing fails only when a conflict comes before
/// `FltCreateSectionForDataScan` returns or teardown begins while it runs. 26 of seeds 1..=3000
/// found it in one run (the first was 4; seeds 36 and 80 the first in two runs of 1..=250), and
/// seeds 4 and 36 each fail again in 1 of 20 replays. Each finding takes 4 s (teardown waits
/// 2 s, twice). Only the finding is required.
#[test]
fn a_scan_leaked_when_publishing_fails_is_found() {
    use fltsim_mutants::section_conflict_leaks_the_scan_when_publishing_fails::DriverEntry;
    found_within(
        &section_conflict(DriverEntry),
        "instance teardown waited",
        1000,
    );
}

/// A post-create that forgets a reference on failure: the handle's mark cannot be set (a fault
/// in `FltAllocateContext` or `FltSetStreamHandleContext`) on an open that holds a section.
/// Few storms make such an open and fail its mark: 12 of seeds 1..=3000 find it (the first is
/// 352, the same seeds in two runs), and seed 352 fails again in 14 of 20 replays: whether the
/// armed fault meets that open depends on how the threads are scheduled. Only the finding is
/// required.
#[test]
fn a_section_leaked_when_the_mark_fails_is_found() {
    use fltsim_mutants::section_context_leaks_the_section_when_the_mark_fails::DriverEntry;
    found_within(&section_context(DriverEntry), "leaked context", 3000);
}

/// A context released twice on a rare path: the same path as the test above, where the section
/// is released by hand and again by its reference. 12 of seeds 1..=3000 find it (the first is
/// 352), and seed 352 fails again in 13 of 20 replays. Only the finding is required.
#[test]
fn a_section_released_twice_when_the_mark_fails_is_found() {
    use fltsim_mutants::section_context_releases_the_section_twice_when_the_mark_fails::DriverEntry;
    found_within(&section_context(DriverEntry), "was already freed", 3000);
}
