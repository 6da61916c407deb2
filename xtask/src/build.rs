//! `cargo xtask build`: every sample under `samples/` as a standalone kernel driver (no WDK), for
//! each kernel architecture and profile asked for. Each is copied to
//! `target/drivers/<arch>/<profile>/<name>.sys` with its `<name>.pdb` beside it, and must pass the
//! PE checks ([`pe`]) and the symbols check ([`crate::symbols`]); its imports must be the ones its
//! committed [`exports::LIST_FILE`] lists. One progress line per driver, each within a terminal's
//! width; the full report line of each goes to `target/drivers/build-report.txt`.

use std::{
    collections::{BTreeMap, BTreeSet},
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;

use crate::{
    exports, pe,
    process::{self, cargo},
    report::{describe_frame, describe_minimum, describe_symbols, imports_line},
    toolchain::ensure_toolchain,
    workspace::{AARCH64, ARCHES, Arch, Sample, X86_64, samples},
};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileChoice {
    Dev,
    Release,
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetChoice {
    #[value(name = "x86_64")]
    X86_64,
    Aarch64,
    All,
}

/// The widest line `cargo xtask build` prints by default: a terminal's width.
const LINE_WIDTH: usize = 100;

/// `line` cut to [`LINE_WIDTH`] characters, with `…` where it was cut.
fn fit(line: &str) -> String {
    if line.chars().count() <= LINE_WIDTH {
        line.to_owned()
    } else {
        let mut cut: String = line.chars().take(LINE_WIDTH - 1).collect();
        cut.push('…');
        cut
    }
}

/// `cargo xtask build`: a progress line per driver from the first seconds (which one, how many
/// of how many), each within a terminal's width; the full report of each driver goes to
/// `target/drivers/build-report.txt`, and to the terminal as well with `verbose`.
pub fn run(root: &Path, profile: ProfileChoice, target: TargetChoice, verbose: bool) -> Result<()> {
    let profiles: &[&str] = match profile {
        ProfileChoice::Dev => &["dev"],
        ProfileChoice::Release => &["release"],
        ProfileChoice::All => &["dev", "release"],
    };
    let arches: &[Arch] = match target {
        TargetChoice::X86_64 => &[X86_64],
        TargetChoice::Aarch64 => &[AARCH64],
        TargetChoice::All => &ARCHES,
    };
    let samples = samples(root)?;
    if samples.is_empty() {
        bail!("no sample crates under {}", root.join("samples").display());
    }
    ensure_toolchain(&mut || Command::new("rustup"), root)?;
    let target_dir =
        env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut built = Vec::new();
    let mut report = String::new();
    let total = arches.len() * profiles.len() * samples.len();
    // Per sample: every function any of its builds imports, and its committed list.
    let mut imported: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut lists = BTreeMap::new();
    for sample in &samples {
        lists.insert(sample.dir.as_str(), import_list(root, sample)?);
    }
    for arch in arches {
        for &profile in profiles {
            for sample in &samples {
                let n = built.len() + 1;
                println!(
                    "{}",
                    fit(&format!(
                        "[{n}/{total}] {} {} {profile}: building…",
                        sample.dir, arch.name
                    ))
                );
                let (sys, summary, detail) = build_one(root, &target_dir, sample, *arch, profile)?;
                println!(
                    "{}",
                    fit(&format!(
                        "[{n}/{total}] {} {} {profile}: {}, {} bytes, PE checks passed",
                        sample.dir,
                        arch.name,
                        sys.file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        fs::metadata(&sys).map_or(0, |m| m.len())
                    ))
                );
                if verbose {
                    println!("{detail}");
                }
                report.push_str(&detail);
                report.push('\n');
                let listed = &lists[sample.dir.as_str()];
                let unlisted: Vec<&str> = summary
                    .imports
                    .iter()
                    .map(|(_, function)| function.as_str())
                    .filter(|function| !listed.contains(*function))
                    .collect();
                if !unlisted.is_empty() {
                    bail!(
                        "sample `{}` ({}, {profile}): {} imports {}, which samples/{}/{} does not \
                         list: add them (check-inf reads the driver's minimum Windows version \
                         from that list)",
                        sample.dir,
                        arch.name,
                        sys.display(),
                        unlisted.join(", "),
                        sample.dir,
                        exports::LIST_FILE
                    );
                }
                imported
                    .entry(sample.dir.as_str())
                    .or_default()
                    .extend(summary.imports.into_iter().map(|(_, function)| function));
                built.push(sys);
            }
        }
    }
    // Only a build of every architecture and profile sees every import.
    if profile == ProfileChoice::All && target == TargetChoice::All {
        check_no_stale_imports(&samples, &lists, &mut imported)?;
    }
    let report_file = target_dir.join("drivers").join("build-report.txt");
    fs::write(&report_file, &report)
        .with_context(|| format!("writing {}", report_file.display()))?;
    println!("{} drivers built and verified.", built.len());
    let shown = report_file.strip_prefix(root).unwrap_or(&report_file);
    println!(
        "each driver in full (size, symbols, stack frame, imports): {}",
        shown.display()
    );
    print_minimums(&samples, &lists);
    Ok(())
}

/// Every function a sample's committed import list names is imported by one of its builds.
fn check_no_stale_imports(
    samples: &[Sample],
    lists: &BTreeMap<&str, BTreeSet<String>>,
    imported: &mut BTreeMap<&str, BTreeSet<String>>,
) -> Result<()> {
    for sample in samples {
        let listed = &lists[sample.dir.as_str()];
        let seen = imported.remove(sample.dir.as_str()).unwrap_or_default();
        let stale: Vec<&String> = listed.difference(&seen).collect();
        if !stale.is_empty() {
            bail!(
                "sample `{}`: samples/{}/{} lists {stale:?}, which no build of it imports: \
                 remove them",
                sample.dir,
                sample.dir,
                exports::LIST_FILE
            );
        }
    }
    Ok(())
}

/// Each driver's minimum Windows version: what its imports need, and what its package (a
/// primitive-driver INF, shared with the WDK-mode build) installs from.
fn print_minimums(samples: &[Sample], lists: &BTreeMap<&str, BTreeSet<String>>) {
    for sample in samples {
        let imports = exports::minimum(lists[sample.dir.as_str()].iter().map(String::as_str));
        println!(
            "{}",
            fit(&format!(
                "{}.sys: its imports need {}",
                sample.lib,
                describe_minimum(imports)
            ))
        );
        println!(
            "{}",
            fit(&format!(
                "  and its package installs from {}",
                exports::package_minimum(imports)
            ))
        );
    }
}

/// The sample's committed [`exports::LIST_FILE`].
fn import_list(root: &Path, sample: &Sample) -> Result<BTreeSet<String>> {
    let path = root
        .join("samples")
        .join(&sample.dir)
        .join(exports::LIST_FILE);
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "sample `{}`: reading {} (the committed list of its driver's imports)",
            sample.dir,
            path.display()
        )
    })?;
    Ok(exports::parse_list(&text).into_iter().collect())
}

/// Builds one sample for one architecture and profile, copies it to `.sys`, verifies it and
/// reports it. Returns the `.sys` path, what the PE check found, and its report line.
fn build_one(
    root: &Path,
    target_dir: &Path,
    sample: &Sample,
    arch: Arch,
    profile: &str,
) -> Result<(PathBuf, pe::Summary, String)> {
    let mut command = cargo();
    command
        .current_dir(root)
        .args(["build", "--quiet", "--lib", "--no-default-features"])
        .args([
            "--package",
            &sample.package,
            "--target",
            arch.triple,
            "--profile",
            profile,
        ])
        .env(linker_variable(arch.triple), "rust-lld");
    process::run(
        command,
        &format!(
            "sample `{}`: cargo build for {} ({profile})",
            sample.dir, arch.triple
        ),
    )?;

    let out_profile = if profile == "dev" { "debug" } else { profile };
    let dll = target_dir
        .join(arch.triple)
        .join(out_profile)
        .join(format!("{}.dll", sample.lib));
    let dest_dir = target_dir.join("drivers").join(arch.name).join(profile);
    fs::create_dir_all(&dest_dir).with_context(|| format!("creating {}", dest_dir.display()))?;
    let sys = dest_dir.join(format!("{}.sys", sample.lib));
    fs::copy(&dll, &sys).with_context(|| {
        format!(
            "sample `{}`: copying {} to {}",
            sample.dir,
            dll.display(),
            sys.display()
        )
    })?;
    let data = fs::read(&sys).with_context(|| format!("reading {}", sys.display()))?;
    match pe::check(&data) {
        Ok(summary) => {
            let symbols = ship_pdb(&dll, &dest_dir, &summary).with_context(|| {
                format!(
                    "sample `{}` ({}, {profile}): the .pdb beside {}",
                    sample.dir,
                    arch.name,
                    sys.display()
                )
            })?;
            let detail = format!(
                "{}  {} bytes  {}  largest stack frame: {}  minimum Windows: {}  imports: {}",
                sys.display(),
                data.len(),
                symbols,
                describe_frame(summary.largest_frame),
                describe_minimum(summary.min_windows),
                imports_line(&summary)
            );
            Ok((sys, summary, detail))
        }
        Err(violations) => {
            for violation in &violations {
                eprintln!(
                    "sample `{}` ({}, {profile}): {violation}",
                    sample.dir, arch.name
                );
            }
            bail!(
                "sample `{}` ({}, {profile}) failed the PE checks: {}",
                sample.dir,
                arch.name,
                rule_list(&violations)
            )
        }
    }
}

/// Copies the PDB the linker wrote beside `dll` (the one `summary`'s `CodeView` record names) to
/// `dest_dir`, beside the `.sys`, and checks that the copy is that PDB. Returns the report's
/// `name.pdb N bytes` part.
fn ship_pdb(dll: &Path, dest_dir: &Path, summary: &pe::Summary) -> Result<String> {
    let Some(pdb) = &summary.pdb else {
        bail!("the driver names no .pdb");
    };
    let built = dll.with_file_name(&pdb.name);
    let shipped = dest_dir.join(&pdb.name);
    fs::copy(&built, &shipped)
        .with_context(|| format!("copying {} to {}", built.display(), shipped.display()))?;
    describe_symbols(dest_dir, pdb)
}

/// `CARGO_TARGET_<TRIPLE>_LINKER` for a target triple.
fn linker_variable(triple: &str) -> String {
    format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_ascii_uppercase().replace('-', "_")
    )
}

/// The names of the failed rules, comma-separated.
fn rule_list(violations: &[pe::Violation]) -> String {
    let mut rules: Vec<String> = violations.iter().map(|v| v.rule.to_string()).collect();
    rules.dedup();
    rules.join(", ")
}

#[cfg(test)]
mod tests {
    use super::linker_variable;

    #[test]
    fn build_lines_fit_a_terminal() {
        let long = "x".repeat(1450);
        assert_eq!(super::fit(&long).chars().count(), super::LINE_WIDTH);
        assert!(super::fit(&long).ends_with('…'));
        assert_eq!(super::fit("short"), "short");
    }

    #[test]
    fn linker_variable_is_cargos_spelling() {
        assert_eq!(
            linker_variable("aarch64-pc-windows-msvc"),
            "CARGO_TARGET_AARCH64_PC_WINDOWS_MSVC_LINKER"
        );
    }
}
