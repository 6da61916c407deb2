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
//!
//! Where things go: this file only reads the command line and hands each command to its module,
//! named after it (`check-inf` is [`check_inf`], `check-make-members` is [`make_members`]); a
//! command's code and tests live there. What several commands use lives in modules that import
//! no command module:
//! - [`workspace`]: the workspace root, the sample crates under `samples/` and the kernel
//!   architectures;
//! - [`process`]: starting cargo and other programs;
//! - [`toolchain`]: the pinned toolchain, with both kernel targets;
//! - [`pe`], [`frames`], [`exports`], [`symbols`]: the driver checks and the data behind them;
//! - [`report`]: how `build` and `verify` describe a checked driver.

mod bench;
mod build;
mod check_inf;
mod demo;
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

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::{
    build::{ProfileChoice, TargetChoice},
    workspace::workspace_root,
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
        Task::Demo { sample } => demo::run(&root, &sample),
        Task::Diagrams => diagrams::run(&root),
        Task::Emulate(args) => emulate::run(&root, &args),
        Task::Bench => bench::run(&root),
        Task::Stress(args) => stress::run(&root, &args),
        Task::Lines => lines::run(&root),
        Task::CheckInf => check_inf::run(&root),
        Task::Sign => sign::run(&root),
        Task::CheckMakeMembers => make_members::run_check(&root),
        Task::New { name, out, group } => new::run(&root, &name, &group, out.as_deref()),
    }
}
