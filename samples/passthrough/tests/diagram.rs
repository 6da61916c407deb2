//! The README's diagram is what the model draws now: the demo's scenario runs here as it does in
//! `cargo xtask diagrams`, and the block between the README's diagram markers must match it.

#[path = "../examples/demo.rs"]
#[expect(
    dead_code,
    reason = "the demo's `main` and printing are not this test's"
)]
mod demo;

#[test]
fn the_readme_diagram_is_what_the_model_draws_now() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).expect("the sample's README");
    if let Err(message) = fltsim::diagram::check_readme(&readme, &demo::diagram()) {
        panic!("{path}: {message}");
    }
}
