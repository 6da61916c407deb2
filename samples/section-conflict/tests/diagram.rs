//! The README's diagram is what the model draws now: the demo's scenario runs here as it does in
//! `cargo xtask diagrams`, and the block between the README's diagram markers must match it. So
//! must the README's quoted demo output, block by block. And every reference the demo's printed
//! trace shows given back, it shows taken.

#[path = "../examples/demo.rs"]
#[expect(
    dead_code,
    reason = "the demo's `main` and printing are not this test's"
)]
mod demo;

use fltsim::{World, diagram::unmatched_releases};

#[test]
fn the_readme_diagram_is_what_the_model_draws_now() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).expect("the sample's README");
    if let Err(message) = fltsim::diagram::check_readme(&readme, &demo::diagram()) {
        panic!("{path}: {message}");
    }
}

#[test]
fn the_readme_output_is_what_the_demo_prints_now() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).expect("the sample's README");
    if let Err(message) = fltsim::excerpt::check_readme(&readme, &demo::excerpts()) {
        panic!("{path}: {message}");
    }
}

#[test]
fn every_release_the_demo_prints_comes_with_its_acquire() {
    let world = World::new();
    let (truncation, _) = demo::scenario(&world, true);
    assert!(truncation.is_ok(), "the scan gives way: {truncation:?}");
    let printed = demo::printed(&world);
    world.finish();
    assert!(!printed.is_empty() && printed.iter().all(|trace| !trace.is_empty()));
    for trace in &printed {
        let unmatched = unmatched_releases(trace);
        assert!(
            unmatched.is_empty(),
            "the demo prints these releases without the call that took what they give back: \
             {unmatched:#?}"
        );
    }
}
