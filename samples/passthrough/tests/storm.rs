//! Random operation storms against this sample: `cargo test` runs its regressions and two quick
//! seeds, `cargo xtask stress` its CI seeds (`fltsim::storm_main!` says what runs).

fltsim::storm_main!(rs_passthrough, altitude: 370_210, oracle: FailOpen);
