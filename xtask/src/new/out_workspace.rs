//! The `--out` form's workspace besides the new driver: the crates it needs ([`COPIED_CRATES`],
//! their manifests written out by [`super::manifest`]), the files copied as they are, a root
//! manifest, Cargo and cargo-make settings for a workspace of its own, the scripts with only the
//! new sample, and a README.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use super::{
    Files, Names,
    manifest::{Inherited, explicit_manifest},
    scripts::scripts,
    template::{read, replace},
};

/// The crates the `--out` workspace copies, with the parts of each it needs (tests of the model
/// itself stay here: they test this repository's model, not the new driver).
const COPIED_CRATES: [(&str, &[&str]); 4] = [
    ("common", &["Cargo.toml", "src"]),
    ("common/build", &["Cargo.toml", "src"]),
    ("fltsim", &["Cargo.toml", "build.rs", "src"]),
    ("xtask", &["Cargo.toml", "src", "data"]),
];

/// Files copied as they are into the `--out` workspace.
const COPIED_FILES: [&str; 3] = ["rust-toolchain.toml", "rustfmt.toml", "Cargo.lock"];

/// Every file under `dir` (relative to `root`), recursively.
pub(super) fn files_under(root: &Path, dir: &str, out: &mut Vec<String>) -> Result<()> {
    let path = root.join(dir);
    if path.is_file() {
        out.push(dir.to_owned());
        return Ok(());
    }
    let mut entries: Vec<_> = fs::read_dir(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        files_under(root, &format!("{dir}/{name}"), out)?;
    }
    Ok(())
}

/// The `--out` workspace's files besides the driver's.
pub(super) fn workspace_files(root: &Path, names: &Names) -> Result<Files> {
    let inherited = Inherited::read(root)?;
    let mut files = Files::new();
    for (krate, parts) in COPIED_CRATES {
        for part in parts {
            let mut found = Vec::new();
            files_under(root, &format!("{krate}/{part}"), &mut found)?;
            for path in found {
                let text = read(root, &path)?;
                let text = if *part == "Cargo.toml" {
                    let mut text = explicit_manifest(&text, krate, &inherited)?;
                    if krate == "xtask" {
                        // Its own workspace: `cargo test --workspace` at the root tests the
                        // driver and the crates it uses, and xtask's tests are about this
                        // repository's samples.
                        text = format!(
                            "{text}\n# A workspace of its own, run by the `cargo xtask` alias \
                             (.cargo/config.toml).\n[workspace]\n"
                        );
                    }
                    text
                } else {
                    text
                };
                files.insert(PathBuf::from(path), text);
            }
        }
    }
    for file in COPIED_FILES {
        files.insert(PathBuf::from(file), read(root, file)?);
    }
    // xtask resolves against the same crate versions.
    files.insert(PathBuf::from("xtask/Cargo.lock"), read(root, "Cargo.lock")?);

    // The root manifest: the members, no inheritance, the panic strategy the drivers need.
    let manifest = read(root, "Cargo.toml")?;
    let profiles = manifest
        .find("[profile.")
        .map(|at| &manifest[at..])
        .context("Cargo.toml has no [profile.*] tables")?;
    files.insert(
        PathBuf::from("Cargo.toml"),
        format!(
            "# {dir}: a Windows file-system minifilter in Rust, made by `cargo xtask new` from the\n\
             # Rust minifilter samples. Every crate states its own package fields, dependencies and\n\
             # lints, so none inherits from this file.\n\
             [workspace]\n\
             resolver = \"3\"\n\
             members = [\"common\", \"common/build\", \"fltsim\", \"samples/*\"]\n\
             # xtask is a workspace of its own (`cargo xtask` runs it).\n\
             exclude = [\"xtask\"]\n\
             # A bare `cargo build`/`cargo test` builds the host model only: select the rest with\n\
             # `--workspace` or `-p`.\n\
             default-members = [\"fltsim\"]\n\n\
             # wdk-build and cargo-make treat every crate with [package.metadata.wdk] as a WDM driver.\n\
             [workspace.metadata.wdk.driver-model]\n\
             driver-type = \"WDM\"\n\n\
             # A driver cannot unwind: a panic bugchecks, so both profiles abort (wdk-build requires\n\
             # it). opt-level 1 in dev keeps kernel stack frames small.\n\
             {profiles}",
            dir = names.dir
        ),
    );

    // Cargo config: the xtask alias points at its own workspace; the kernel CRT is static.
    let file = ".cargo/config.toml";
    let text = replace(
        &read(root, file)?,
        "xtask = \"run --quiet --package xtask --\"",
        "xtask = \"run --quiet --manifest-path xtask/Cargo.toml --\"",
        file,
    )?;
    files.insert(PathBuf::from(file), text);

    // cargo-make: xtask is no member any more, so not in the skip list either.
    let file = "Makefile.toml";
    let text = replace(
        &read(root, file)?,
        "CARGO_MAKE_WORKSPACE_SKIP_MEMBERS = [\"common/build\", \"fltsim\", \"fltsim/mutants\", \"xtask\"]",
        "CARGO_MAKE_WORKSPACE_SKIP_MEMBERS = [\"common/build\", \"fltsim\"]",
        file,
    )?;
    files.insert(PathBuf::from(file), text);

    files.insert(
        PathBuf::from(".gitignore"),
        "target/\n*.pfx\n*.cer\n".to_owned(),
    );
    let mut other = Vec::new();
    files_under(root, "scripts", &mut other)?;
    for path in other {
        files.insert(PathBuf::from(&path), read(root, &path)?);
    }
    files.extend(scripts(root, names, true)?);
    files.insert(PathBuf::from("README.md"), workspace_readme(names));
    Ok(files)
}

/// The `--out` workspace's README: the same two commands as the samples' README.
fn workspace_readme(names: &Names) -> String {
    let Names {
        dir, package, lib, ..
    } = names;
    format!(
        "# {dir}\n\n\
         A Windows file-system minifilter in Rust, `{package}` in `samples/{dir}`, made by\n\
         `cargo xtask new` from the `passthrough` sample of the Rust minifilter samples. Read\n\
         `samples/{dir}/README.md` first: the INF's altitude must be set before the driver is\n\
         installed.\n\n\
         ## Quick start (any Linux machine)\n\n\
         Build the driver, for x86_64 and aarch64, debug and release, and check each `.sys` (PE\n\
         checks, imports, minimum Windows version):\n\n\
         ```sh\n\
         cargo xtask build\n\
         ```\n\n\
         Run every test, against `fltsim`, the Filter Manager model:\n\n\
         ```sh\n\
         cargo test --workspace\n\
         ```\n\n\
         `cargo xtask demo {dir}` runs its scenario in the model; `cargo xtask check-inf` checks\n\
         the INF; on Windows with a WDK, `cargo make` builds the driver package.\n\n\
         ## Layout\n\n\
         | path | what |\n\
         |---|---|\n\
         | `samples/{dir}/` | the driver, its test, its demo |\n\
         | `samples/{dir}/{lib}.inx` | its INF source, beside the crate (cargo-wdk and cargo-make read it there) |\n\
         | `common/`, `common/build/` | the helpers and the build script the driver uses, in all three build modes (host, WDK, standalone) |\n\
         | `fltsim/` | the Filter Manager model the tests run against |\n\
         | `xtask/` | `cargo xtask`: build, verify, demo, check-inf, sign (a workspace of its own) |\n\
         | `scripts/` | PowerShell: install, demo, uninstall on a Windows test machine |\n"
    )
}
