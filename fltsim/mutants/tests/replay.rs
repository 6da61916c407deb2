//! A storm replays: run twice under the scheduler seeded with its seed, a storm against a driver
//! with system threads, work items, asynchronous I/O, delays and waits gives the same trace,
//! event for event (thread numbers and addresses renumbered: `fltsim::storm::normalized`).

use fltsim::storm::{Target, case_of, normalized, run};
use fltsim_mutants::{callback_data, data_scan};

/// The first event at which two normalized traces differ, shown.
fn first_difference(a: &[String], b: &[String]) -> Option<String> {
    let at = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i))?;
    Some(format!(
        "event {at} of {} and {}:\n  {}\n  {}",
        a.len(),
        b.len(),
        a.get(at).map_or("(end)", String::as_str),
        b.get(at).map_or("(end)", String::as_str)
    ))
}

fn assert_replays(target: &Target, seeds: std::ops::RangeInclusive<u64>) {
    for seed in seeds {
        let case = case_of(target, seed);
        let first = normalized(&run(target, &case, seed).trace);
        let again = normalized(&run(target, &case, seed).trace);
        if let Some(difference) = first_difference(&first, &again) {
            panic!("{} seed {seed} did not replay: {difference}", target.sample);
        }
    }
}

#[test]
fn data_scan_storms_replay_event_for_event() {
    use fltsim_mutants::data_scan_leaves_a_view_mapped_on_a_failed_copy::DriverEntry;
    assert_replays(&data_scan(DriverEntry), 1..=4);
}

#[test]
fn callback_data_storms_replay_event_for_event() {
    use fltsim_mutants::callback_data_releases_rundown_too_early::DriverEntry;
    assert_replays(&callback_data(DriverEntry), 1..=4);
}
