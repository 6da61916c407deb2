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

mod build;
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
mod report;
mod sign;
mod stress;
mod symbols;
mod toolchain;
mod verify;
mod workspace;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

// emulate.rs calls `crate::build(..)` with `crate::ProfileChoice` and `crate::TargetChoice`, and
// `crate::samples` and `crate::run`: these imports keep the paths it names.
use crate::{
    build::{ProfileChoice, TargetChoice, run as build},
    process::{cargo, run},
    workspace::{demo_example, samples, workspace_root},
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
        } => build::run(&root, profile, target, verbose),
        Task::Verify { files } => verify::run(&files),
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
