//! `cargo xtask stress`: random operation storms against the samples (`fltsim::storm`).
//!
//! Each sample's storms run in its own test binary, `samples/<dir>/tests/storm.rs` (its
//! `DriverEntry` is linked unmangled, so one binary holds one sample). This task builds those
//! binaries, runs them one sample at a time with the mode asked for, and sums up what each
//! reported:
//!
//! - no option: the fixed seeds CI runs (each sample's regression seeds, then its CI seeds);
//! - `--seed N`: replays the storm of seed `N` (the number a failing storm printed), shrinking it
//!   if it fails; with `--repeat K`, runs it `K` times unshrunk and counts the failures;
//! - `--minutes M`: fresh seeds for `M` minutes *per sample*, one sample after the other;
//! - `--sample S`: only the sample in `samples/S`.
//!
//! A bad option (an unknown sample, a malformed seed, a duration that is not a positive number of
//! minutes, `--seed` with `--minutes`, `--repeat` without `--seed` or not a positive whole
//! number) prints one line and exits with status 2 before anything is built.
//!
//! The table gives, per sample, storms per minute, user operations per second and the armed
//! faults that fired, so that runs can be compared.

use std::{path::Path, process::Stdio, time::Instant};

use anyhow::{Context, Result, bail};

use crate::{process::cargo, workspace::samples};

/// `cargo xtask stress` options. They are read as text and checked here, so that each mistake
/// gets one line rather than clap's usage block.
#[derive(clap::Args)]
pub struct Args {
    /// Replay the storm of this seed (the number a failing storm printed).
    #[arg(long, value_name = "N")]
    seed: Option<String>,
    /// Run fresh seeds for this many minutes, per sample (a positive number, fractions allowed).
    #[arg(long, value_name = "M")]
    minutes: Option<String>,
    /// Only this sample (its directory under samples/, e.g. `data-scan`).
    #[arg(long, value_name = "S")]
    sample: Option<String>,
    /// With --seed: run that storm this many times, unshrunk, and count the failures.
    #[arg(long, value_name = "K")]
    repeat: Option<String>,
}

/// What to run, once the options are checked.
#[derive(Debug, PartialEq)]
struct Plan {
    /// The samples' directories.
    samples: Vec<String>,
    /// The storm binary's arguments.
    mode: Vec<String>,
}

/// Checks the options against the samples there are.
fn plan(
    seed: Option<&str>,
    minutes: Option<&str>,
    sample: Option<&str>,
    repeat: Option<&str>,
    known: &[String],
) -> Result<Plan, String> {
    let samples = match sample {
        Some(s) if known.iter().any(|k| k == s) => vec![s.to_owned()],
        Some(s) => {
            return Err(format!(
                "unknown sample `{s}`: choose one of {}",
                known.join(", ")
            ));
        }
        None => known.to_vec(),
    };
    let mode = match (seed, minutes) {
        (Some(_), Some(_)) => {
            return Err(
                "--seed replays one storm and --minutes runs fresh ones: give one of them".into(),
            );
        }
        (Some(seed), None) => {
            let n: u64 = seed.parse().map_err(|_| {
                format!("malformed seed `{seed}`: expected an unsigned 64-bit integer")
            })?;
            vec!["--seed".into(), n.to_string()]
        }
        (None, Some(minutes)) => {
            let m = minutes
                .parse::<f64>()
                .ok()
                .filter(|m| m.is_finite() && *m > 0.0)
                .ok_or_else(|| {
                    format!("invalid duration `{minutes}`: --minutes takes a positive number")
                })?;
            vec!["--minutes".into(), m.to_string()]
        }
        (None, None) => vec!["--ci".into()],
    };
    let mut mode = mode;
    if let Some(repeat) = repeat {
        if seed.is_none() {
            return Err("--repeat replays one storm: give it with --seed N".into());
        }
        let k: u32 = repeat.parse().ok().filter(|k| *k > 0).ok_or_else(|| {
            format!("invalid count `{repeat}`: --repeat takes a positive whole number")
        })?;
        mode.extend(["--repeat".into(), k.to_string()]);
    }
    Ok(Plan { samples, mode })
}

/// What one sample's storm binary reported.
#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    storms: u64,
    operations: u64,
    findings: u64,
    faults_armed: u64,
    faults_fired: u64,
    skipped: u64,
}

/// Reads `storm summary: sample=S storms=N operations=O findings=F ...` from the binary's output.
fn summary(stdout: &str) -> Option<Summary> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("storm summary: "))?;
    let mut found = Summary::default();
    for field in line.split_whitespace() {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        let slot = match key {
            "storms" => &mut found.storms,
            "operations" => &mut found.operations,
            "findings" => &mut found.findings,
            "faults_armed" => &mut found.faults_armed,
            "faults_fired" => &mut found.faults_fired,
            "skipped" => &mut found.skipped,
            _ => continue,
        };
        *slot = value.parse().ok()?;
    }
    Some(found)
}

/// `cargo xtask stress`.
pub fn run(root: &Path, args: &Args) -> Result<()> {
    let all = samples(root)?;
    let known: Vec<String> = all.iter().map(|s| s.dir.clone()).collect();
    let plan = match plan(
        args.seed.as_deref(),
        args.minutes.as_deref(),
        args.sample.as_deref(),
        args.repeat.as_deref(),
        &known,
    ) {
        Ok(plan) => plan,
        Err(line) => {
            eprintln!("cargo xtask stress: {line}");
            std::process::exit(2);
        }
    };
    let chosen: Vec<_> = all
        .iter()
        .filter(|s| plan.samples.contains(&s.dir))
        .collect();
    // Build every storm binary first, so that the runs below time storms, not compilation.
    let mut build = cargo();
    build.current_dir(root).args(["test", "--no-run", "-q"]);
    for s in &chosen {
        build.args(["-p", &s.package]);
    }
    build.args(["--test", "storm"]);
    crate::process::run(build, "building the storm binaries")?;

    let mut rows = Vec::new();
    for s in &chosen {
        let start = Instant::now();
        let output = cargo()
            .current_dir(root)
            .args(["test", "-q", "-p", &s.package, "--test", "storm", "--"])
            .args(&plan.mode)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running the storms of {}", s.dir))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        print!("{stdout}");
        let seconds = start.elapsed().as_secs_f64();
        let outcome = match (output.status.code(), summary(&stdout)) {
            (Some(0 | 1), Some(found)) => Ok(found),
            (Some(3), _) => Err("HANG (see the report above)".to_owned()),
            (code, _) => Err(format!("the storm binary failed ({code:?})")),
        };
        rows.push((s.dir.clone(), outcome, seconds));
    }

    println!();
    println!(
        "{:<18} {:>7} {:>11} {:>9} {:>8} {:>10} {:>8} {:>13} {:>8}",
        "sample",
        "storms",
        "operations",
        "findings",
        "seconds",
        "storms/min",
        "ops/s",
        "faults fired",
        "skipped"
    );
    let mut failed = false;
    for (dir, outcome, seconds) in &rows {
        match outcome {
            Ok(s) => {
                failed |= s.findings > 0;
                // Counts far below 2^52: exact as f64.
                #[allow(clippy::cast_precision_loss)]
                let per = |n: u64, unit: f64| n as f64 * unit / seconds.max(1e-9);
                println!(
                    "{dir:<18} {:>7} {:>11} {:>9} {seconds:>8.1} {:>10.0} {:>8.0} {:>13} {:>8}",
                    s.storms,
                    s.operations,
                    s.findings,
                    per(s.storms, 60.0),
                    per(s.operations, 1.0),
                    format!("{} of {}", s.faults_fired, s.faults_armed),
                    s.skipped
                );
            }
            Err(what) => {
                failed = true;
                println!("{dir:<18} {what}");
            }
        }
    }
    if failed {
        bail!("storms found problems (each is reported above with its seed)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        ["data-scan", "passthrough"].map(String::from).to_vec()
    }

    #[test]
    fn no_option_runs_the_ci_seeds_of_every_sample() {
        assert_eq!(
            plan(None, None, None, None, &known()),
            Ok(Plan {
                samples: known(),
                mode: vec!["--ci".into()]
            })
        );
    }

    #[test]
    fn a_seed_and_a_sample_replay_one_storm() {
        assert_eq!(
            plan(
                Some("18446744073709551615"),
                None,
                Some("data-scan"),
                None,
                &known()
            ),
            Ok(Plan {
                samples: vec!["data-scan".into()],
                mode: vec!["--seed".into(), "18446744073709551615".into()]
            })
        );
    }

    #[test]
    fn minutes_may_be_a_fraction() {
        assert_eq!(
            plan(None, Some("0.5"), None, None, &known()).map(|p| p.mode),
            Ok(vec!["--minutes".into(), "0.5".into()])
        );
    }

    #[test]
    fn an_unknown_sample_is_one_line_naming_the_known_ones() {
        let error = plan(None, None, Some("nope"), None, &known()).unwrap_err();
        assert_eq!(
            error,
            "unknown sample `nope`: choose one of data-scan, passthrough"
        );
    }

    #[test]
    fn a_malformed_seed_is_one_line() {
        for bad in ["", "-1", "12x", "0x10", "18446744073709551616"] {
            let error = plan(Some(bad), None, None, None, &known()).unwrap_err();
            assert_eq!(
                error,
                format!("malformed seed `{bad}`: expected an unsigned 64-bit integer")
            );
        }
    }

    #[test]
    fn a_zero_negative_or_malformed_duration_is_one_line() {
        for bad in ["0", "0.0", "-3", "soon", "NaN", "inf"] {
            let error = plan(None, Some(bad), None, None, &known()).unwrap_err();
            assert_eq!(
                error,
                format!("invalid duration `{bad}`: --minutes takes a positive number")
            );
        }
    }

    #[test]
    fn seed_and_minutes_together_are_refused() {
        assert!(plan(Some("1"), Some("1"), None, None, &known()).is_err());
    }

    #[test]
    fn repeat_replays_one_seed_k_times() {
        assert_eq!(
            plan(Some("7"), None, None, Some("20"), &known()).map(|p| p.mode),
            Ok(vec![
                "--seed".into(),
                "7".into(),
                "--repeat".into(),
                "20".into()
            ])
        );
        assert_eq!(
            plan(None, None, None, Some("20"), &known()).unwrap_err(),
            "--repeat replays one storm: give it with --seed N"
        );
        for bad in ["0", "-1", "x", "1.5"] {
            assert_eq!(
                plan(Some("7"), None, None, Some(bad), &known()).unwrap_err(),
                format!("invalid count `{bad}`: --repeat takes a positive whole number")
            );
        }
    }

    #[test]
    fn the_summary_line_is_read() {
        let out = "noise\nstorm summary: sample=data-scan storms=12 operations=340 findings=1 \
                   faults_armed=20 faults_fired=15 skipped=9 seconds=3.2\n";
        assert_eq!(
            summary(out),
            Some(Summary {
                storms: 12,
                operations: 340,
                findings: 1,
                faults_armed: 20,
                faults_fired: 15,
                skipped: 9,
            })
        );
        assert_eq!(summary("no summary"), None);
    }
}
