//! The README's generated block: where it sits, how it is replaced, and the drift tests'
//! comparisons.

use super::references::unmatched_releases;
use crate::kernel::Event;

/// The line before a README's generated diagram.
pub const BEGIN: &str = "<!-- diagram:begin -->";
/// The line after it.
pub const END: &str = "<!-- diagram:end -->";

/// The generated block of `readme`: the text between the line [`BEGIN`] and the line [`END`].
///
/// # Errors
/// A message if either marker is missing or they are out of order.
pub fn block_of(readme: &str) -> Result<&str, String> {
    let begin = readme
        .find(BEGIN)
        .ok_or_else(|| format!("no `{BEGIN}` line"))?;
    let start = begin + BEGIN.len();
    let start = start + usize::from(readme[start..].starts_with('\n'));
    let end = readme[start..]
        .find(END)
        .ok_or_else(|| format!("no `{END}` line after `{BEGIN}`"))?;
    Ok(&readme[start..start + end])
}

/// `readme` with its generated block replaced by `block`.
///
/// # Errors
/// As [`block_of`].
pub fn replace_block(readme: &str, block: &str) -> Result<String, String> {
    let old = block_of(readme)?;
    let start = old.as_ptr() as usize - readme.as_ptr() as usize;
    Ok(format!(
        "{}{block}{}",
        &readme[..start],
        &readme[start + old.len()..]
    ))
}

/// A sample's drift test: the README at `path` holds `diagram` between its diagram markers and
/// each of `excerpts` between its output markers, or the test panics with the first difference
/// and what to run.
///
/// # Panics
/// When the README cannot be read or differs from what the model gives now.
pub fn assert_readme_is_current(path: &str, diagram: &str, excerpts: &[(&str, String)]) {
    let readme = std::fs::read_to_string(path).expect("the sample's README");
    if let Err(message) = check_readme(&readme, diagram) {
        panic!("{path}: {message}");
    }
    if let Err(message) = crate::excerpt::check_readme(&readme, excerpts) {
        panic!("{path}: {message}");
    }
}

/// A demo's printed traces show, for every release they show, the call that took what it gives
/// back.
///
/// # Panics
/// When nothing was printed, or a printed release has no acquire before it.
pub fn assert_every_release_has_its_acquire(printed: &[Vec<Event>]) {
    assert!(!printed.is_empty() && printed.iter().all(|trace| !trace.is_empty()));
    for trace in printed {
        let unmatched = unmatched_releases(trace);
        assert!(
            unmatched.is_empty(),
            "the demo prints these releases without the call that took what they give back: \
             {unmatched:#?}"
        );
    }
}

/// A demo's opening summary: headed `== Summary`, at most [`crate::excerpt::SUMMARY_LINES`]
/// lines, and reporting no verifier finding (`- verifier findings: 0`, or `0 and 0` for a demo of
/// two runs).
///
/// # Panics
/// When any of the three does not hold.
pub fn assert_summary_fits(summary: &[String]) {
    assert_eq!(
        summary.first().map(String::as_str),
        Some("== Summary"),
        "{summary:#?}"
    );
    assert!(
        summary.len() <= crate::excerpt::SUMMARY_LINES,
        "{summary:#?}"
    );
    assert!(
        summary
            .iter()
            .any(|l| l == "- verifier findings: 0" || l.starts_with("- verifier findings: 0 and 0")),
        "{summary:#?}"
    );
}

/// The drift test's comparison: `Ok` if `readme`'s generated block is `block`.
///
/// # Errors
/// A message naming the first line that differs and saying how to regenerate.
pub fn check_readme(readme: &str, block: &str) -> Result<(), String> {
    let current = block_of(readme)?;
    if current == block {
        return Ok(());
    }
    let line = current
        .lines()
        .zip(block.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| current.lines().count().min(block.lines().count()));
    Err(format!(
        "the README's diagram differs from what the model draws now (block line {}: README has \
         {:?}, the model draws {:?}): run `cargo xtask diagrams` and commit the README",
        line + 1,
        current.lines().nth(line).unwrap_or("<end>"),
        block.lines().nth(line).unwrap_or("<end>")
    ))
}
