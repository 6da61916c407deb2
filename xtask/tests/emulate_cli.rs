//! `cargo xtask emulate` with bad input: one line on stderr, a non-zero exit, before any virtual
//! environment is created or any driver is built.

use std::{fs, process::Command};

fn xtask(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        // anyhow appends a backtrace when these ask for one: the message alone is the contract.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("runs xtask");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_file_that_is_not_a_driver_is_one_line() {
    let dir = std::env::temp_dir().join(format!("emulate-cli-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.sys");
    fs::write(&bad, "this is text, not a PE image").expect("write");
    let (code, stderr) = xtask(&["emulate", "--file", bad.to_str().expect("utf-8 path")]);
    fs::remove_dir_all(&dir).expect("cleanup");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line:\n{stderr}");
    assert!(
        stderr.contains("bad.sys: not a 64-bit PE image"),
        "{stderr}"
    );
}

#[test]
fn a_missing_file_is_one_line() {
    let (code, stderr) = xtask(&["emulate", "--file", "/nonexistent/driver.sys"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "Error: /nonexistent/driver.sys: no such file"
    );
}

#[test]
fn an_unknown_sample_names_the_samples() {
    let (code, stderr) = xtask(&["emulate", "no-such-sample"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line:\n{stderr}");
    assert!(
        stderr.starts_with("Error: no sample `no-such-sample` (samples: "),
        "{stderr}"
    );
    assert!(stderr.contains("passthrough"), "{stderr}");
}
