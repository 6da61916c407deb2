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

fltsim::demo_tests!(demo::Shown);
