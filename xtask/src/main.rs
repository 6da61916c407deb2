//! `cargo xtask`: the workspace's tasks (the alias is in `.cargo/config.toml`).
//!
//! - `build`: builds every sample under `samples/` as a standalone kernel driver (no WDK) for
//!   `x86_64` and `aarch64`, copies each to `target/drivers/<arch>/<profile>/<name>.sys` with its
//!   `<name>.pdb` beside it, and runs the PE checks on it and the [`symbols`] check on the pair.
//! - `verify FILE.sys...`: the PE checks on any driver (see [`pe::Rule`]), including the exact
//!   import rule of [`exports`], and the [`symbols`] check of the `.pdb` beside it; prints each
//!   driver's minimum Windows version (the highest of its imports').
//! - `demo <sample>`: the sample's scenario in the Filter Manager model.
//! - `diagrams`: each sample's README diagram and quoted demo output, generated from its demo
//!   scenario (see [`diagrams`]).
//! - `emulate [SAMPLE]`: the x64 release drivers run in Speakeasy (see [`emulate`]).
//! - `bench`: the benchmarks.
//! - `stress`: random operation storms against the samples (see [`stress`]).
//! - `lines`: each sample's code lines, held to the budget (see [`lines`]).
//! - `check-inf`, `sign`: the INF checks and test signing.
//! - `check-make-members`: every crate `cargo make` builds compiles for both Windows targets
//!   (see [`make_members`]).
//! - `new <name> [--out DIR]`: a new minifilter from the passthrough sample (see [`new`]).

mod check_inf;
mod diagrams;
mod emulate;
mod exports;
mod frames;
mod lines;
mod make_members;
mod new;
mod pe;
mod process;
mod sign;
mod stress;
mod symbols;
mod toolchain;
mod workspace;

use std::{
    collections::{BTreeMap, BTreeSet},
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    process::{cargo, run},
    toolchain::ensure_toolchain,
    workspace::{AARCH64, ARCHES, Arch, Sample, X86_64, demo_example, samples, workspace_root},
};

/// Workspace tasks for the Rust minifilter samples.
#[derive(Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build every sample as a standalone driver (.sys) and verify it.
    Build {
        /// Which profile(s) to build.
        #[arg(long, value_enum, default_value_t = ProfileChoice::All)]
        profile: ProfileChoice,
        /// Which architecture(s) to build.
        #[arg(long, value_enum, default_value_t = TargetChoice::All)]
        target: TargetChoice,
        /// Print each driver's full report line (size, symbols, largest stack frame, minimum
        /// Windows, imports) as well as writing it to target/drivers/build-report.txt.
        #[arg(long)]
        verbose: bool,
    },
    /// Run the driver PE checks on the given .sys files.
    Verify {
        /// The driver files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a sample's demo scenario in the Filter Manager model (`examples/demo.rs`, the example
    /// `<sample>-demo`).
    Demo {
        /// The sample's directory name under samples/, e.g. `passthrough`.
        sample: String,
    },
    /// Write each sample's README diagram (Mermaid) and quoted demo output, generated from its
    /// demo scenario in the model.
    Diagrams,
    /// Run each sample's x64 release driver in the Speakeasy emulator (a pinned venv under
    /// target/emulate/): `DriverEntry`, the `FLT_REGISTRATION`, unload. arm64 is not emulated.
    Emulate(emulate::Args),
    /// Run the benchmarks.
    Bench,
    /// Random operation storms against the samples (fltsim's storms): the fixed CI seeds, one
    /// seed (`--seed`), or fresh seeds for a while (`--minutes`).
    Stress(stress::Args),
    /// Count each sample's code lines (not blank, not a comment) and hold them to the budget.
    Lines,
    /// Check the INF files.
    CheckInf,
    /// Test-sign the built drivers.
    Sign,
    /// Check that every workspace member the cargo-make flow builds compiles for both Windows
    /// targets (standalone mode).
    CheckMakeMembers,
    /// Start a new minifilter from the passthrough sample: `samples/<name>` in this workspace, or
    /// with --out a workspace of its own.
    New {
        /// The new driver's name: lowercase letters, digits and single hyphens, e.g. `my-filter`
        /// (package `rs-<name>`, driver `rs_<name>.sys`, service `Rs<Name>`).
        name: String,
        /// Write a self-contained workspace into this folder (which must not exist) instead.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The load order group: the INF's class and the altitude range to choose from.
        #[arg(long, default_value = "FSFilter Activity Monitor")]
        group: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProfileChoice {
    Dev,
    Release,
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetChoice {
    #[value(name = "x86_64")]
    X86_64,
    Aarch64,
    All,
}

/// The benchmarks `cargo xtask bench` runs: package, the directory that must exist, and the
/// example that measures. Add a row when a sample gets one.
///
/// They are examples run with `--release`, not `[[bench]]` targets: the workspace profiles say
/// `panic = "abort"` (the drivers need it), and `cargo build --all-targets` would build a bench
/// target with the test harness's `unwind` against `abort` dependencies, and fail.
const BENCH_PACKAGES: &[(&str, &str, &str)] = &[("rs-data-scan", "samples/data-scan", "bench")];

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.task {
        Task::Build {
            profile,
            target,
            verbose,
        } => build(&root, profile, target, verbose),
        Task::Verify { files } => verify(&files),
        Task::Demo { sample } => demo(&root, &sample),
        Task::Diagrams => diagrams::run(&root),
        Task::Emulate(args) => emulate::run(&root, &args),
        Task::Bench => bench(&root),
        Task::Stress(args) => stress::run(&root, &args),
        Task::Lines => lines::run(&root),
        Task::CheckInf => check_inf::run(&root),
        Task::Sign => sign::run(&root),
        Task::CheckMakeMembers => make_members::run_check(&root),
        Task::New { name, out, group } => new::run(&root, &name, &group, out.as_deref()),
    }
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
fn build(root: &Path, profile: ProfileChoice, target: TargetChoice, verbose: bool) -> Result<()> {
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

/// A driver's minimum Windows version for the reports.
fn describe_minimum(min: Option<exports::WinVer>) -> String {
    min.map_or_else(
        || "not stated by any import's documentation".to_owned(),
        |min| min.to_string(),
    )
}

/// A driver's largest stack frame for the reports.
fn describe_frame(frame: Option<frames::Frame>) -> String {
    frame.map_or_else(|| "none".to_owned(), |frame| frame.to_string())
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
    run(
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

/// Checks the PDB `pdb` names in `dir` and describes it, or says why it does not serve.
fn describe_symbols(dir: &Path, pdb: &pe::PdbRef) -> Result<String> {
    match symbols::check_beside(dir, pdb) {
        Ok(found) => Ok(format!("{} {} bytes", pdb.name, found.size)),
        Err(mismatch) => bail!(
            "{} (GUID {} age {}): {mismatch}",
            dir.join(&pdb.name).display(),
            symbols::guid_string(&pdb.guid),
            pdb.age
        ),
    }
}

/// `CARGO_TARGET_<TRIPLE>_LINKER` for a target triple.
fn linker_variable(triple: &str) -> String {
    format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_ascii_uppercase().replace('-', "_")
    )
}

/// `module!function` for every import, comma-separated.
fn imports_line(summary: &pe::Summary) -> String {
    summary
        .imports
        .iter()
        .map(|(module, function)| format!("{module}!{function}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The names of the failed rules, comma-separated.
fn rule_list(violations: &[pe::Violation]) -> String {
    let mut rules: Vec<String> = violations.iter().map(|v| v.rule.to_string()).collect();
    rules.dedup();
    rules.join(", ")
}

/// `cargo xtask verify`.
fn verify(files: &[PathBuf]) -> Result<()> {
    let mut failed = 0usize;
    for file in files {
        let data = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let checked = pe::check(&data).map(|summary| {
            let dir = file.parent().unwrap_or(Path::new("."));
            let symbols = summary.pdb.as_ref().map(|pdb| describe_symbols(dir, pdb));
            (summary, symbols)
        });
        match checked {
            Ok((summary, Some(Ok(symbols)))) => println!(
                "{}: ok ({} bytes; {symbols}; largest stack frame: {}; minimum Windows: {}; \
                 imports: {})",
                file.display(),
                data.len(),
                describe_frame(summary.largest_frame),
                describe_minimum(summary.min_windows),
                imports_line(&summary)
            ),
            Ok((_, symbols)) => {
                failed += 1;
                let why = symbols.map_or_else(
                    || "names no .pdb".to_owned(),
                    |result| result.err().map_or_else(String::new, |e| format!("{e:#}")),
                );
                eprintln!("{}: its symbols: {why}", file.display());
            }
            Err(violations) => {
                failed += 1;
                for violation in &violations {
                    eprintln!("{}: {violation}", file.display());
                }
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} drivers failed the PE checks", files.len());
    }
    Ok(())
}

/// `cargo xtask demo <sample>`: runs the example `<sample>-demo` of package `rs-<sample>`. Each
/// demo has its own example name, since all examples share one output directory.
fn demo(root: &Path, sample: &str) -> Result<()> {
    let Some(found) = samples(root)?.into_iter().find(|s| s.dir == sample) else {
        let known: Vec<String> = samples(root)?.into_iter().map(|s| s.dir).collect();
        bail!("no sample `{sample}`: choose one of {}", known.join(", "));
    };
    let example = demo_example(&found.dir);
    let mut command = cargo();
    command
        .current_dir(root)
        .args(["run", "-q", "-p", &found.package, "--example", &example]);
    run(command, &format!("demo of sample `{sample}`"))
}

/// `cargo xtask bench`.
fn bench(root: &Path) -> Result<()> {
    let mut ran = 0;
    for (package, dir, example) in BENCH_PACKAGES {
        if !root.join(dir).join("Cargo.toml").is_file() {
            println!("{package}: no crate at {dir} yet, nothing to benchmark");
            continue;
        }
        let mut command = cargo();
        command.current_dir(root).args([
            "run",
            "--release",
            "-q",
            "-p",
            package,
            "--example",
            example,
        ]);
        run(command, &format!("benchmarks of {package}"))?;
        ran += 1;
    }
    println!("{ran} benchmark package(s) run.");
    Ok(())
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
