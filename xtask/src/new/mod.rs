//! `cargo xtask new <name>`: a new minifilter, made from the `passthrough` sample.
//!
//! There is no separate template: the new driver is generated from `samples/passthrough` (its
//! manifest, build script, source, test, demo, import list and its INF source
//! `samples/passthrough/rs_passthrough.inx`) as they are when the command runs, by renaming. So the template is the sample CI builds and tests,
//! and cannot drift from it. Every substitution must find what it replaces; if passthrough changes
//! so that one no longer does, the command fails (and its tests with it) instead of leaving a
//! half-renamed copy.
//!
//! Two forms:
//! - in this workspace: `samples/<name>`, its INF source `samples/<name>/rs_<name>.inx` beside it
//!   (where cargo-wdk and cargo-make's `copy-inx-to-output` read it), which the workspace members,
//!   `cargo xtask build`, `check-inf`, the pool-tag test and `.ci/run` find by themselves (they
//!   list `samples/*`), and the sample's entries in the scripts' lists (`-Name`, the table of
//!   samples, the demo's scenario);
//! - `--out DIR`: a workspace of its own that builds and tests with no access to this repository.
//!   The crates it needs (`common`, `common/build`, `fltsim`, `xtask`) are copied, because a path
//!   into this repository would not be there. Each crate's manifest states its package fields,
//!   dependencies and lints itself (no `workspace = true`), so any crate can be moved again;
//!   `xtask` is a workspace of its own there (its tests check this repository's samples).
//!
//! The new INF's altitude is a placeholder that `check-inf` rejects with the way to get a real one.
//! Bad input (an existing name or folder, an invalid name, an unknown group) is reported in one
//! line before anything is written.
//!
//! Where things are: this file checks the input ([`names`], [`group`]), works out every file to
//! write before writing one ([`plan`]) and writes them ([`run`]). The files come from
//! - [`template`]: the new sample's crate, README and INF, renamed from `samples/passthrough`;
//! - [`mod@scripts`]: the PowerShell scripts with the new sample in their lists;
//! - [`out_workspace`]: with `--out`, the rest of a workspace of its own, whose manifests
//!   [`manifest`] writes out without inheriting from a workspace.

mod manifest;
mod out_workspace;
mod scripts;
mod template;
#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use self::{
    manifest::{Inherited, explicit_manifest},
    out_workspace::workspace_files,
    scripts::scripts,
    template::driver_files,
};
use crate::check_inf::{GROUPS, Group};

/// The template sample's directory under `samples/`.
const TEMPLATE: &str = "passthrough";
/// The template's altitude, as its INF, test and demo write it.
const TEMPLATE_ALTITUDE: &str = "370210";
/// The template's load order group (its INF's `LoadOrderGroup`).
const TEMPLATE_GROUP: &str = "FSFilter Activity Monitor";
/// The longest name accepted: the service name, `Rs` + the name, stays short enough to read in
/// `fltmc filters`.
const MAX_NAME: usize = 32;
/// The workspace's own crates (and their directories): a sample of the same name would be
/// mistaken for them in commands and paths.
const WORKSPACE_CRATES: [&str; 4] = ["common", "common-build", "fltsim", "xtask"];
/// Names Windows reserves for devices: no file or folder may have them.
const RESERVED: [&str; 22] = [
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// The names of the new driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    /// The directory under `samples/` and the demo's prefix: `my-filter`.
    pub(crate) dir: String,
    /// The package: `rs-my-filter`.
    pub(crate) package: String,
    /// The library, driver and INF file name: `rs_my_filter`.
    pub(crate) lib: String,
    /// The service (and filter) name: `RsMyFilter`.
    pub(crate) service: String,
}

/// Checks `name` and derives the other names from it.
///
/// # Errors
/// One line saying what is wrong and what is accepted.
pub(crate) fn names(name: &str) -> Result<Names> {
    let rule = "use lowercase ASCII letters, digits and single hyphens, starting with a letter, \
                e.g. `my-filter`";
    if name.is_empty() {
        bail!("the name is empty: {rule}");
    }
    if name.len() > MAX_NAME {
        bail!("`{name}` is longer than {MAX_NAME} characters");
    }
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let starts_with_letter = name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid_chars || !starts_with_letter || name.ends_with('-') || name.contains("--") {
        bail!("`{name}` is not a valid name: {rule}");
    }
    if let Some(rest) = name.strip_prefix("rs-") {
        bail!("`{name}`: leave out the `rs-` prefix (the package is `rs-<name>`): use `{rest}`");
    }
    if RESERVED.contains(&name) {
        bail!("`{name}` is a name Windows reserves for a device: choose another");
    }
    if WORKSPACE_CRATES.contains(&name) {
        bail!("`{name}` is the name of one of this workspace's own crates: choose another");
    }
    let service: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    Ok(Names {
        dir: name.to_owned(),
        package: format!("rs-{name}"),
        lib: format!("rs_{}", name.replace('-', "_")),
        service: format!("Rs{service}"),
    })
}

/// The load order group called `name` (compared without regard to case).
///
/// # Errors
/// One line listing the groups `check-inf` knows.
pub(crate) fn group(name: &str) -> Result<&'static Group> {
    GROUPS
        .iter()
        .find(|g| g.name.eq_ignore_ascii_case(name.trim()))
        .with_context(|| {
            let known: Vec<String> = GROUPS.iter().map(|g| format!("\"{}\"", g.name)).collect();
            format!(
                "unknown load order group \"{name}\": choose one of {}",
                known.join(", ")
            )
        })
}

/// The files to write: paths relative to the destination, and their text.
type Files = BTreeMap<PathBuf, String>;

/// What `cargo xtask new` writes: files relative to `dest`.
struct Plan {
    dest: PathBuf,
    files: Files,
}

/// Works out what to write, checking every input first.
fn plan(root: &Path, name: &str, group_name: &str, out: Option<&Path>) -> Result<Plan> {
    let names = names(name)?;
    let group = group(group_name)?;
    if !root
        .join("samples")
        .join(TEMPLATE)
        .join("Cargo.toml")
        .is_file()
    {
        bail!(
            "no samples/{TEMPLATE} in {}: `cargo xtask new` copies it",
            root.display()
        );
    }
    let driver = driver_files(root, &names, group)?;
    match out {
        None => {
            let sample = root.join("samples").join(&names.dir);
            if sample.exists() {
                bail!("{} already exists: choose another name", sample.display());
            }
            // Service names are compared without regard to case by Windows. Each sample's INF
            // source is beside its crate (samples/<dir>/<crate fs name>.inx).
            for entry in fs::read_dir(root.join("samples")).context("reading samples/")? {
                let path = entry?.path();
                let Some(stem) = path
                    .file_name()
                    .map(|n| n.to_string_lossy().replace('-', "_"))
                else {
                    continue;
                };
                let path = path.join(format!("rs_{stem}.inx"));
                let text = fs::read_to_string(&path).unwrap_or_default();
                if text.lines().any(|l| {
                    l.split_once('=').is_some_and(|(k, v)| {
                        k.trim() == "ServiceName"
                            && v.trim()
                                .trim_matches('"')
                                .eq_ignore_ascii_case(&names.service)
                    })
                }) {
                    bail!(
                        "the service name {} is already used by {}: choose another name",
                        names.service,
                        path.display()
                    );
                }
            }
            let mut files = driver;
            files.extend(scripts(root, &names, false)?);
            Ok(Plan {
                dest: root.to_path_buf(),
                files,
            })
        }
        Some(out) => {
            if out.exists() {
                bail!(
                    "{} already exists: give --out a folder that does not exist yet",
                    out.display()
                );
            }
            let mut files = workspace_files(root, &names)?;
            let mut driver = driver;
            let manifest = PathBuf::from("samples").join(&names.dir).join("Cargo.toml");
            if let Some(text) = driver.get(&manifest) {
                let member = format!("samples/{}", names.dir);
                let text = explicit_manifest(text, &member, &Inherited::read(root)?)?;
                driver.insert(manifest, text);
            }
            files.extend(driver);
            Ok(Plan {
                dest: out.to_path_buf(),
                files,
            })
        }
    }
}

/// Runs rustfmt on the new driver's Rust files: renaming can change a line's length, and the
/// copy should pass `cargo fmt --check` as the template does. Best effort: without rustfmt the
/// files stay as generated, which compile all the same.
fn format_sources(plan: &Plan) {
    let sources: Vec<&PathBuf> = plan
        .files
        .keys()
        .filter(|p| p.starts_with("samples") && p.extension().is_some_and(|e| e == "rs"))
        .collect();
    let status = std::process::Command::new("rustfmt")
        .current_dir(&plan.dest)
        .args(["--edition", "2024"])
        .args(&sources)
        .stderr(std::process::Stdio::null())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        println!("note: rustfmt did not run on the new files; run `cargo fmt --all` yourself");
    }
}

/// `cargo xtask new <name> [--group GROUP] [--out DIR]` for the workspace at `root`.
///
/// # Errors
/// Bad input, before anything is written; or an I/O error while writing.
pub fn run(root: &Path, name: &str, group_name: &str, out: Option<&Path>) -> Result<()> {
    let plan = plan(root, name, group_name, out)?;
    for (path, text) in &plan.files {
        let full = plan.dest.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&full, text).with_context(|| format!("writing {}", full.display()))?;
    }
    let names = names(name)?;
    format_sources(&plan);
    match out {
        None => println!(
            "created samples/{dir} ({} files, with samples/{dir}/{lib}.inx and the scripts' entries). Next: set \
             the altitude in samples/{dir}/{lib}.inx and the places cargo xtask check-inf names, run cargo \
             xtask diagrams (the README shows the altitude), then cargo test -p {} and cargo \
             xtask build.",
            plan.files.len(),
            names.package,
            dir = names.dir,
            lib = names.lib
        ),
        Some(out) => println!(
            "created the workspace {} ({} files). Next: set the altitude in samples/{dir}/{}.inx and the \
             places cargo xtask check-inf names, then, in that folder, cargo xtask diagrams, cargo \
             xtask build and cargo test --workspace.",
            out.display(),
            plan.files.len(),
            names.lib,
            dir = names.dir
        ),
    }
    Ok(())
}
