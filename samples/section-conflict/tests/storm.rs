//! Random operation storms against this sample: `cargo test` runs its regressions and two quick
//! seeds, `cargo xtask stress` its CI seeds (`fltsim::storm_main!` says what runs).

// The first finding (an unload during a `SectionNotificationCallback`'s close: teardown did not
// wait for the callback) came from a seed of an earlier storm generator, which no longer replays;
// `an_unload_waits_for_a_notification_in_flight` in `section_conflict.rs` keeps it, ordered by
// holds. CI runs fewer seeds than the other samples': a conflicting operation here waits until
// the paced scan closes its section (Filter Manager pends it), so each storm takes about ten
// times as long.
fltsim::storm_main!(rs_section_conflict, altitude: 265_140, oracle: SectionConflict, ci: 1..=250);
