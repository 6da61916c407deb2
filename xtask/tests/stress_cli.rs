//! `cargo xtask stress` with bad input: one clear line on stderr, a non-zero exit, and nothing
//! built or run.

use std::process::Command;

/// Runs the xtask binary with `args`; returns its exit code and stderr.
fn xtask(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("runs xtask");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_one_line(args: &[&str], expected: &str) {
    let (code, stderr) = xtask(args);
    assert_eq!(code, Some(2), "{args:?}: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: not one line:\n{stderr}"
    );
    assert_eq!(stderr.trim_end(), expected, "{args:?}");
}

#[test]
fn an_unknown_sample_is_one_line_naming_the_samples() {
    let args = ["stress", "--sample", "nope"];
    let (code, stderr) = xtask(&args);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line:\n{stderr}");
    let known = stderr
        .trim_end()
        .strip_prefix("cargo xtask stress: unknown sample `nope`: choose one of ")
        .unwrap_or_else(|| panic!("{stderr}"));
    for sample in ["passthrough", "data-scan", "section-conflict"] {
        assert!(known.split(", ").any(|k| k == sample), "{stderr}");
    }
}

#[test]
fn a_malformed_seed_is_one_line() {
    assert_one_line(
        &["stress", "--seed", "12ab"],
        "cargo xtask stress: malformed seed `12ab`: expected an unsigned 64-bit integer",
    );
}

#[test]
fn a_zero_duration_is_one_line() {
    assert_one_line(
        &["stress", "--minutes", "0"],
        "cargo xtask stress: invalid duration `0`: --minutes takes a positive number",
    );
}

#[test]
fn repeat_without_a_seed_or_with_a_bad_count_is_one_line() {
    assert_one_line(
        &["stress", "--repeat", "20"],
        "cargo xtask stress: --repeat replays one storm: give it with --seed N",
    );
    assert_one_line(
        &["stress", "--seed", "1", "--repeat", "0"],
        "cargo xtask stress: invalid count `0`: --repeat takes a positive whole number",
    );
}
