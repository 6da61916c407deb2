//! Mermaid sequence diagrams drawn from the trace, and the README block that holds one.
//!
//! A sample's demo picks a slice of its scenario's trace and a [`Diagram`] says how to draw it;
//! [`Diagram::render`] turns the slice's events into a `sequenceDiagram` with five participants:
//! the user, the I/O manager, Filter Manager, the sample's callbacks, the file system (plus the
//! kernel when the sample calls its `Ob`/`Mm`/`Ex`/`Ke`/`Ps` services, and any other filter the
//! diagram names). Nothing in it is drawn by hand: every arrow is one event of the model.
//!
//! What is left out, so that the picture stays readable and the same on every run:
//! - pointers and handles: each value of more than eight hex digits is named `@1`, `@2`, ... in
//!   the order the diagram first shows it, so the same object keeps its name from arrow to arrow;
//! - the calls [`Diagram::calls`] does not list (but the acquire of every release it lists, see
//!   [`acquires_of`]), the debugger lines, the verifier's notes, and other filters' events;
//! - thread numbers: a slice that spans threads is drawn thread by thread (see
//!   [`Diagram::forks`]).
//!
//! [`check_readme`] is the drift test's comparison: the block between [`BEGIN`] and [`END`] in
//! a README must be exactly what the model draws now.

//!
//! Files: `references.rs` (which calls take and give back), `draw.rs` ([`Diagram`]),
//! `readme.rs` (the README's block and the drift tests' comparisons), `demo.rs` ([`Demo`] and
//! [`demo_tests!`](crate::demo_tests)).

mod demo;
mod draw;
mod readme;
mod references;
#[cfg(test)]
mod tests;

pub use self::{
    demo::Demo,
    draw::Diagram,
    readme::{
        BEGIN, END, assert_every_release_has_its_acquire, assert_readme_is_current,
        assert_summary_fits, block_of, check_readme, replace_block,
    },
    references::{acquires_of, unmatched_releases, with_acquires},
};
