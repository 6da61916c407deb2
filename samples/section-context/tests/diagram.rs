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

use fltsim::{World, diagram::assert_every_release_has_its_acquire};

#[test]
fn the_readme_is_what_the_model_gives_now() {
    fltsim::diagram::assert_readme_is_current(
        concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"),
        &demo::diagram(),
        &demo::excerpts(),
    );
}

#[test]
fn every_release_the_demo_prints_comes_with_its_acquire() {
    let world = World::new();
    demo::scenario(&world);
    let printed = demo::printed(&world);
    world.finish();
    assert_every_release_has_its_acquire(&printed);
}

/// The demo opens with a summary of what happened and why it matters, on one screen; the full
/// trace follows it.
#[test]
fn the_demo_opens_with_a_summary_that_fits_on_a_screen() {
    let world = World::new();
    demo::scenario(&world);
    let summary = demo::summary(&world);
    world.finish();
    assert_eq!(summary[0], "== Summary");
    assert!(
        summary.len() <= fltsim::excerpt::SUMMARY_LINES,
        "{summary:#?}"
    );
    assert!(summary.iter().any(|l| l == "- verifier findings: 0" || l.starts_with("- verifier findings: 0 and 0")), "{summary:#?}");
}
