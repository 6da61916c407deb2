//! [`Demo`]: what a sample's demo gives its tests, and [`demo_tests!`](crate::demo_tests), the
//! tests themselves.

use crate::kernel::Event;

/// What a sample's demo (`examples/demo.rs`) gives the tests that keep it honest, and what its
/// `main` prints: the README's generated blocks, and one run of the scenario. Each sample's
/// `tests/diagram.rs` is then one line, [`demo_tests!`](crate::demo_tests).
pub trait Demo {
    /// The README's diagram: the scenario, run in a new world, drawn.
    fn diagram() -> String;
    /// The README's output blocks, by name, each from the scenario run in a new world.
    fn excerpts() -> Vec<(&'static str, String)>;
    /// The demo's opening summary ([`crate::excerpt::summary`]), from the scenario run in new
    /// worlds (one at a time: only one `World` is alive in a process).
    fn summary() -> Vec<String>;
    /// Runs the scenario in `world` and returns the traces the demo prints after its summary.
    fn printed(world: &crate::World) -> Vec<Vec<Event>>;

    /// The demo's `--mermaid` and `--excerpt NAME` handling (`cargo xtask diagrams` runs both): if
    /// the arguments ask for one of the README's blocks, prints it and returns `true`.
    #[must_use]
    fn print_readme_block() -> bool {
        if crate::excerpt::print_requested(Self::excerpts) {
            return true;
        }
        let mermaid = std::env::args().any(|arg| arg == "--mermaid");
        if mermaid {
            print!("{}", Self::diagram());
        }
        mermaid
    }
}

/// The three checks every sample's demo passes, as `#[test]` functions: the README's diagram and
/// output blocks are what the model gives now ([`assert_readme_is_current`](super::assert_readme_is_current)); every release the
/// printed traces show comes with its acquire ([`assert_every_release_has_its_acquire`](super::assert_every_release_has_its_acquire)); and
/// the printed output opens with a summary that fits on a screen and reports no verifier finding.
/// `fltsim::demo_tests!(demo::Shown)` in a sample's `tests/diagram.rs`, where `demo` is its
/// `examples/demo.rs` and `Shown` implements [`Demo`].
#[macro_export]
macro_rules! demo_tests {
    ($demo:ty) => {
        #[test]
        fn the_readme_is_what_the_model_gives_now() {
            $crate::diagram::assert_readme_is_current(
                concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"),
                &<$demo as $crate::diagram::Demo>::diagram(),
                &<$demo as $crate::diagram::Demo>::excerpts(),
            );
        }

        #[test]
        fn every_release_the_demo_prints_comes_with_its_acquire() {
            let world = $crate::World::new();
            let printed = <$demo as $crate::diagram::Demo>::printed(&world);
            world.finish();
            $crate::diagram::assert_every_release_has_its_acquire(&printed);
        }

        /// The demo opens with a summary of what happened and why it matters, on one screen; the
        /// full trace follows it.
        #[test]
        fn the_demo_opens_with_a_summary_that_fits_on_a_screen() {
            $crate::diagram::assert_summary_fits(&<$demo as $crate::diagram::Demo>::summary());
        }
    };
}
