//! The demo output quoted in each sample's README, generated rather than copied.
//!
//! A README quotes a demo's output in named blocks: the line [`begin`]`(name)`, a ```` ```text ````
//! block, the line [`END`]. Each demo returns its excerpts by name (the debugger's lines, what the
//! application sees), built with [`block`], and prints one with `--excerpt NAME`;
//! `cargo xtask diagrams` writes each into its README block, and the sample's drift test
//! ([`check_readme`]) fails when a block differs from what the demo prints now, or when the README
//! and the demo do not name the same blocks. Excerpts hold no pointers: those differ from run to
//! run, so [`block`] refuses them.

/// The line after a generated excerpt.
pub const END: &str = "<!-- output:end -->";

/// The start of the line before a generated excerpt: `<!-- output:begin NAME -->`.
const BEGIN_PREFIX: &str = "<!-- output:begin ";

/// The line before the excerpt called `name`.
#[must_use]
pub fn begin(name: &str) -> String {
    format!("{BEGIN_PREFIX}{name} -->")
}

/// `lines` as a README excerpt: a ```` ```text ```` block.
///
/// # Panics
/// If a line holds a pointer or handle (`0x` and more than eight hex digits): its value differs
/// from run to run, so the README could never match it.
#[must_use]
pub fn block<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> String {
    let mut out = String::from("```text\n");
    for line in lines {
        let line = line.as_ref();
        assert!(
            !has_pointer(line),
            "an excerpt line holds a pointer, which differs from run to run: {line:?}"
        );
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("```\n");
    out
}

/// Whether `text` holds a `0x` number of more than eight hex digits (a pointer or a handle; a
/// status or a flag has at most eight).
fn has_pointer(text: &str) -> bool {
    text.match_indices("0x").any(|(at, _)| {
        text[at + 2..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .count()
            > 8
    })
}

/// The names of `readme`'s excerpt blocks, in order.
///
/// # Errors
/// A message if a begin line is not closed by `-->`.
pub fn names(readme: &str) -> Result<Vec<&str>, String> {
    readme
        .match_indices(BEGIN_PREFIX)
        .map(|(at, _)| {
            let rest = &readme[at + BEGIN_PREFIX.len()..];
            let line = rest.lines().next().unwrap_or_default();
            line.strip_suffix(" -->")
                .filter(|name| !name.is_empty() && !name.contains(' '))
                .ok_or_else(|| format!("`{BEGIN_PREFIX}{line}`: expected `{}`", begin("NAME")))
        })
        .collect()
}

/// The text of `readme`'s excerpt `name`: between its begin line and the next [`END`] line.
///
/// # Errors
/// A message if the block is missing, unclosed, or there twice.
pub fn block_of<'a>(readme: &'a str, name: &str) -> Result<&'a str, String> {
    let marker = format!("{}\n", begin(name));
    let mut found = readme.match_indices(&marker);
    let (at, _) = found
        .next()
        .ok_or_else(|| format!("no `{}` line", begin(name)))?;
    if found.next().is_some() {
        return Err(format!("`{}` is there twice", begin(name)));
    }
    let start = at + marker.len();
    let end = readme[start..]
        .find(END)
        .ok_or_else(|| format!("no `{END}` line after `{}`", begin(name)))?;
    Ok(&readme[start..start + end])
}

/// `readme` with its excerpt `name` replaced by `block`.
///
/// # Errors
/// As [`block_of`].
pub fn replace_block(readme: &str, name: &str, block: &str) -> Result<String, String> {
    let old = block_of(readme, name)?;
    let start = old.as_ptr() as usize - readme.as_ptr() as usize;
    Ok(format!(
        "{}{block}{}",
        &readme[..start],
        &readme[start + old.len()..]
    ))
}

/// The drift test's comparison: `Ok` if `readme` has exactly the excerpts `excerpts` names, in
/// that order, each as the demo prints it now.
///
/// # Errors
/// A message naming the first difference and saying how to regenerate.
pub fn check_readme(readme: &str, excerpts: &[(&str, String)]) -> Result<(), String> {
    const FIX: &str = "run `cargo xtask diagrams` and commit the README";
    let in_readme = names(readme)?;
    let in_demo: Vec<&str> = excerpts.iter().map(|(name, _)| *name).collect();
    if in_readme != in_demo {
        return Err(format!(
            "the README's output blocks are {in_readme:?}, the demo's excerpts are {in_demo:?}: \
             add or remove the README's `{}` ... `{END}` blocks, then {FIX}",
            begin("NAME")
        ));
    }
    for (name, block) in excerpts {
        let current = block_of(readme, name)?;
        if current == block {
            continue;
        }
        let line = current
            .lines()
            .zip(block.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| current.lines().count().min(block.lines().count()));
        return Err(format!(
            "the README's output block `{name}` differs from what the demo prints now (block \
             line {}: README has {:?}, the demo prints {:?}): {FIX}",
            line + 1,
            current.lines().nth(line).unwrap_or("<end>"),
            block.lines().nth(line).unwrap_or("<end>")
        ));
    }
    Ok(())
}

/// A demo's `--excerpt NAME` handling: if the arguments ask for an excerpt, prints it (or, for an
/// unknown name, says which exist and exits with status 2) and returns `true`.
pub fn print_requested(excerpts: impl FnOnce() -> Vec<(&'static str, String)>) -> bool {
    let mut args = std::env::args().skip_while(|arg| arg != "--excerpt");
    if args.next().is_none() {
        return false;
    }
    let Some(name) = args.next() else {
        eprintln!("--excerpt needs a NAME");
        std::process::exit(2);
    };
    let excerpts = excerpts();
    if let Some((_, block)) = excerpts.iter().find(|(known, _)| *known == name) {
        print!("{block}");
        return true;
    }
    let known: Vec<&str> = excerpts.iter().map(|(known, _)| *known).collect();
    eprintln!("no excerpt `{name}`: this demo has {known:?}");
    std::process::exit(2);
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::{END, begin, block, block_of, check_readme, names, replace_block};

    fn readme(blocks: &[(&str, &str)]) -> String {
        let mut out = String::from("# sample\n\nIntro.\n\n");
        for (name, text) in blocks {
            let _ = write!(out, "Prose.\n\n{}\n{text}{END}\n\n", begin(name));
        }
        out
    }

    #[test]
    fn a_block_is_a_text_fence() {
        assert_eq!(block(["a", "b"]), "```text\na\nb\n```\n");
        assert_eq!(block(Vec::<String>::new()), "```text\n```\n");
    }

    #[test]
    #[should_panic(expected = "holds a pointer")]
    fn a_pointer_is_refused() {
        let _ = block(["context 0x55f10ad88a80"]);
    }

    #[test]
    fn statuses_and_flags_are_not_pointers() {
        let _ = block(["STATUS_VIRUS_INFECTED (0xC0000906), access 0x100003"]);
    }

    #[test]
    fn current_blocks_pass_in_order() {
        let excerpts = [("debugger", block(["x"])), ("seen", block(["y"]))];
        let text = readme(&[("debugger", &excerpts[0].1), ("seen", &excerpts[1].1)]);
        assert_eq!(names(&text).unwrap(), ["debugger", "seen"]);
        assert_eq!(check_readme(&text, &excerpts), Ok(()));
    }

    #[test]
    fn a_changed_line_fails_and_says_what_to_run() {
        let excerpts = [("debugger", block(["one", "two"]))];
        let text = readme(&[("debugger", "```text\none\nto\n```\n")]);
        let message = check_readme(&text, &excerpts).expect_err("a changed line is drift");
        assert!(message.contains("run `cargo xtask diagrams`"), "{message}");
        assert!(message.contains("block line 3"), "{message}");
        assert!(message.contains("`debugger`"), "{message}");
    }

    #[test]
    fn a_missing_or_extra_block_fails() {
        let excerpts = [("debugger", block(["x"]))];
        let none = readme(&[]);
        assert!(check_readme(&none, &excerpts).is_err());
        let extra = readme(&[("debugger", &excerpts[0].1), ("old", "```text\n```\n")]);
        let message = check_readme(&extra, &excerpts).expect_err("an extra block");
        assert!(message.contains("\"old\""), "{message}");
    }

    #[test]
    fn replacing_a_block_keeps_the_rest_and_then_passes() {
        let old = readme(&[("a", "old\n"), ("b", "keep\n")]);
        let new = replace_block(&old, "a", "new\n").unwrap();
        assert_eq!(new, readme(&[("a", "new\n"), ("b", "keep\n")]));
        assert_eq!(block_of(&new, "b"), Ok("keep\n"));
        assert_eq!(replace_block(&new, "a", "new\n").unwrap(), new);
    }

    #[test]
    fn a_bad_or_unclosed_marker_fails() {
        assert!(names("<!-- output:begin two words -->\n").is_err());
        assert!(block_of(&format!("{}\ntext\n", begin("a")), "a").is_err());
        let twice = readme(&[("a", "x\n"), ("a", "x\n")]);
        assert!(block_of(&twice, "a").unwrap_err().contains("twice"));
    }
}

/// The most lines a demo's summary may have: it must fit on one screen above the full trace.
pub const SUMMARY_LINES: usize = 20;

/// A demo's opening summary: what happened (`happened`, one line per step the user would
/// notice; a line that starts with two spaces continues the step above), then `why` it matters, under a `== Summary` heading, ending with a pointer to the
/// full trace below it. Every demo prints this first.
///
/// # Panics
/// If the summary would take more than [`SUMMARY_LINES`] lines, or says nothing.
#[must_use]
pub fn summary<S: AsRef<str>>(happened: impl IntoIterator<Item = S>, why: &[&str]) -> Vec<String> {
    let mut lines = vec!["== Summary".to_owned()];
    // A line that starts with two spaces goes on the step above it.
    lines.extend(happened.into_iter().map(|l| {
        let l = l.as_ref();
        if l.starts_with("  ") {
            l.to_owned()
        } else {
            format!("- {l}")
        }
    }));
    assert!(lines.len() > 1, "a summary says what happened");
    lines.push("Why it matters:".to_owned());
    lines.extend(why.iter().map(|l| format!("  {l}")));
    lines
        .push("(The full trace follows: the legend, the debugger's lines, every call.)".to_owned());
    assert!(
        lines.len() <= SUMMARY_LINES,
        "a demo's summary takes {} lines, more than {SUMMARY_LINES}: {lines:#?}",
        lines.len()
    );
    lines
}

#[cfg(test)]
mod summary_tests {
    #[test]
    fn a_summary_has_its_heading_its_steps_and_why() {
        let lines = super::summary(["one", "  more of one", "two"], &["because"]);
        assert_eq!(
            lines,
            [
                "== Summary",
                "- one",
                "  more of one",
                "- two",
                "Why it matters:",
                "  because",
                "(The full trace follows: the legend, the debugger's lines, every call.)",
            ]
        );
    }

    #[test]
    #[should_panic(expected = "more than 20")]
    fn a_summary_longer_than_a_screen_is_refused() {
        let steps: Vec<String> = (0..20).map(|i| format!("step {i}")).collect();
        let _ = super::summary(steps, &["why"]);
    }
}
