//! The new sample's files, from the template `samples/passthrough` as it is when the command runs:
//! its crate (manifest, build script, import list, source, tests, demo), its README (with
//! passthrough's diagram and demo output under the new names) and its INF source (in the chosen
//! load order group, with the placeholder altitude). [`replace`] fails when the template no longer
//! contains what it replaces.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use super::{Files, Names, TEMPLATE, TEMPLATE_ALTITUDE, TEMPLATE_GROUP};
use crate::check_inf::{GROUPS, Group, PLACEHOLDER_ALTITUDE};

/// Reads a file of the repository, relative to `root`.
pub(super) fn read(root: &Path, path: &str) -> Result<String> {
    fs::read_to_string(root.join(path))
        .with_context(|| format!("reading {} (the template)", root.join(path).display()))
}

/// Replaces every `from` in `text` with `to`; `from` must occur.
pub(super) fn replace(text: &str, from: &str, to: &str, file: &str) -> Result<String> {
    if !text.contains(from) {
        bail!(
            "the template {file} no longer contains {from:?}: update xtask/src/new/ to match \
             samples/{TEMPLATE}"
        );
    }
    Ok(text.replace(from, to))
}

/// The renames every template file gets, most specific first.
fn rename(text: &str, names: &Names) -> String {
    text.replace("rs-passthrough", &names.package)
        .replace("rs_passthrough", &names.lib)
        .replace("RsPassthrough", &names.service)
        .replace("passthrough-demo", &format!("{}-demo", names.dir))
        .replace(
            "cargo xtask demo passthrough",
            &format!("cargo xtask demo {}", names.dir),
        )
}

/// The new sample's crate files and its INF source, all under `samples/<dir>/`, from the template.
pub(super) fn driver_files(root: &Path, names: &Names, group: &Group) -> Result<Files> {
    let mut files = Files::new();
    let sample = PathBuf::from("samples").join(&names.dir);
    let template = format!("samples/{TEMPLATE}");

    // Cargo.toml: renamed, with its own description.
    let file = format!("{template}/Cargo.toml");
    let text = read(root, &file)?;
    let description = text
        .lines()
        .find(|l| l.starts_with("description = "))
        .with_context(|| format!("the template {file} has no description line"))?;
    let text = replace(
        &text,
        description,
        &format!(
            "description = \"{}: a minifilter started from the passthrough sample (cargo xtask \
             new).\"",
            names.dir
        ),
        &file,
    )?;
    files.insert(sample.join("Cargo.toml"), rename(&text, names));

    // build.rs and the import list: renamed only.
    for name in ["build.rs", crate::exports::LIST_FILE] {
        let text = read(root, &format!("{template}/{name}"))?;
        files.insert(sample.join(name), rename(&text, names));
    }

    // The source: a module doc that says where it came from, the rest as it is.
    let file = format!("{template}/src/lib.rs");
    let text = read(root, &file)?;
    let read_on = "//! Read it top-down";
    let start = text
        .find(read_on)
        .with_context(|| format!("the template {file} has no {read_on:?} paragraph"))?;
    let intro = format!(
        "//! # {}: a minifilter started from the passthrough sample\n//!\n//! Made by `cargo xtask \
         new {}`.\n//! It registers with Filter Manager, attaches to every volume, counts the \
         create, read, write,\n//! cleanup and close operations it sees, prints the counts at \
         unload and changes nothing.\n//! Replace the callbacks with your own; keep the \
         registration steps and their rules.\n//!\n",
        names.dir, names.dir
    );
    let text = intro + &text[start..];
    let text = replace(
        &text,
        &format!("at altitude {TEMPLATE_ALTITUDE}"),
        "at the altitude in its INF",
        &file,
    )?;
    files.insert(sample.join("src/lib.rs"), rename(&text, names));

    // The test and the demo: the altitude is not chosen yet. 0 loads in the model; check-inf
    // names both places once the INF has a real altitude that differs.
    let file = format!("{template}/tests/{TEMPLATE}.rs");
    let text = read(root, &file)?;
    let text = replace(
        &text,
        "const ALTITUDE: u32 = 370_210;",
        &format!(
            "// The altitude of {}.inx beside this crate, once you have set it there (`cargo xtask check-inf` \
             compares\n// the two).\nconst ALTITUDE: u32 = 0;",
            names.lib
        ),
        &file,
    )?;
    let text = replace(
        &text,
        "passthrough against fltsim",
        &format!("{} against fltsim", names.dir),
        &file,
    )?;
    files.insert(
        sample.join("tests").join(format!("{}.rs", names.dir)),
        rename(&text, names),
    );
    let file = format!("{template}/examples/demo.rs");
    let text = read(root, &file)?;
    let text = replace(
        &text,
        ".load(SERVICE, 370_210, DriverEntry)",
        ".load(SERVICE, 0, DriverEntry)",
        &file,
    )?;
    files.insert(sample.join("examples/demo.rs"), rename(&text, names));

    files.insert(sample.join("tests/storm.rs"), storm_test(root, names)?);
    // The diagram drift test, and the diagram it checks: passthrough's, drawn from the same
    // scenario, under the new names and at altitude 0. Once the altitude is set, the test says to
    // run `cargo xtask diagrams`.
    let file = format!("{template}/tests/diagram.rs");
    files.insert(
        sample.join("tests/diagram.rs"),
        rename(&read(root, &file)?, names),
    );
    files.insert(
        sample.join("README.md"),
        sample_readme(
            names,
            group,
            &template_diagram(root, names)?,
            &template_output(root, names)?,
        ),
    );
    files.insert(
        sample.join(format!("{}.inx", names.lib)),
        inf(root, names, group)?,
    );
    Ok(files)
}

/// The new INF: the template's, renamed, in `group`, with the placeholder altitude.
fn inf(root: &Path, names: &Names, group: &Group) -> Result<String> {
    let file = format!("samples/{TEMPLATE}/rs_{TEMPLATE}.inx");
    let text = read(root, &file)?;
    let template_group = GROUPS
        .iter()
        .find(|g| g.name == TEMPLATE_GROUP)
        .context("the template's load order group is not in check-inf's list")?;
    let mut text = replace(
        &text,
        &format!("Instance1.Altitude = \"{TEMPLATE_ALTITUDE}\""),
        &format!("Instance1.Altitude = \"{PLACEHOLDER_ALTITUDE}\""),
        &file,
    )?;
    // The comment above the altitude: what to put there instead.
    let comment_start = text
        .find(&format!("; An altitude in the {TEMPLATE_GROUP} range"))
        .with_context(|| format!("the template {file} has no altitude comment"))?;
    let comment_end = text[comment_start..]
        .find("Instance1.Altitude")
        .map(|i| comment_start + i)
        .context("no altitude after the altitude comment")?;
    let comment = format!(
        "; Not set yet: `cargo xtask check-inf` rejects this placeholder. On a test machine, use an\n\
         ; altitude in the {} range ({}-{}) that Microsoft's \"Allocated filter altitudes\" page\n\
         ; does not list (xtask/data/allocated-altitudes.tsv). A driver you ship needs its own, from\n\
         ; Microsoft: e-mail fsfcomm@microsoft.com, subject \"Filter altitude request\", with the\n\
         ; fields listed on https://learn.microsoft.com/windows-hardware/drivers/ifs/minifilter-altitude-request\n",
        group.name,
        group.altitudes.start(),
        group.altitudes.end()
    );
    text.replace_range(comment_start..comment_end, &comment);
    if group.name != template_group.name {
        text = replace(
            &text,
            &format!("LoadOrderGroup = \"{}\"", template_group.name),
            &format!("LoadOrderGroup = \"{}\"", group.name),
            &file,
        )?;
        text = replace(
            &text,
            &format!("Class       = \"{}\"", template_group.class),
            &format!("Class       = \"{}\"", group.class),
            &file,
        )?;
        text = replace(&text, template_group.class_guid, group.class_guid, &file)?;
    }
    let text = replace(
        &text,
        "Rust passthrough sample minifilter: attaches, counts operations, unloads cleanly",
        &format!(
            "{}: a minifilter started from the passthrough sample",
            names.service
        ),
        &file,
    )?;
    let text = replace(
        &text,
        &format!("sample minifilter ({TEMPLATE})"),
        &format!("minifilter ({})", names.dir),
        &file,
    )?;
    Ok(rename(&text, names))
}

/// The storm test (`cargo xtask stress`), under the new names, at altitude 0 like the test.
fn storm_test(root: &Path, names: &Names) -> Result<String> {
    let template = format!("samples/{TEMPLATE}");
    let file = format!("{template}/tests/storm.rs");
    let text = read(root, &file)?;
    let text = replace(&text, "altitude: 370_210,", "altitude: 0,", &file)?;
    Ok(rename(&text, names))
}

/// passthrough's README diagram (the block between its markers), under the new names and at
/// altitude 0: the new sample runs the same scenario.
fn template_diagram(root: &Path, names: &Names) -> Result<String> {
    let template = format!("samples/{TEMPLATE}");
    let file = format!("{template}/README.md");
    let readme = read(root, &file)?;
    let (begin, end) = ("<!-- diagram:begin -->\n", "<!-- diagram:end -->");
    let diagram = readme
        .find(begin)
        .and_then(|start| {
            let body = start + begin.len();
            readme[body..]
                .find(end)
                .map(|len| &readme[body..body + len])
        })
        .with_context(|| format!("the template {file} has no diagram block"))?;
    let diagram = replace(
        diagram,
        &format!("(altitude {TEMPLATE_ALTITUDE})"),
        "(altitude 0)",
        &file,
    )?;
    Ok(rename(&diagram, names))
}

/// passthrough's README output blocks (`<!-- output:begin NAME -->` to `<!-- output:end -->`),
/// markers included, under the new names: the new sample's demo prints the same lines under its
/// own tag. Its drift test checks them as passthrough's checks passthrough's.
fn template_output(root: &Path, names: &Names) -> Result<String> {
    let file = format!("samples/{TEMPLATE}/README.md");
    let readme = read(root, &file)?;
    let (begin, end) = ("<!-- output:begin ", "<!-- output:end -->\n");
    let mut blocks = String::new();
    let mut rest = readme.as_str();
    while let Some(start) = rest.find(begin) {
        let len = rest[start..]
            .find(end)
            .with_context(|| format!("the template {file} has an unclosed output block"))?;
        if !blocks.is_empty() {
            blocks.push('\n');
        }
        blocks.push_str(&rest[start..start + len + end.len()]);
        rest = &rest[start + len + end.len()..];
    }
    if blocks.is_empty() {
        bail!("the template {file} has no output block");
    }
    Ok(rename(&blocks, names))
}

/// The new sample's README, with `diagram` (the block between its markers) already drawn and the
/// demo's `output` blocks written.
fn sample_readme(names: &Names, group: &Group, diagram: &str, output: &str) -> String {
    let Names {
        dir,
        package,
        lib,
        service,
    } = names;
    let (low, high) = (group.altitudes.start(), group.altitudes.end());
    format!(
        "# {dir}\n\n\
         `{package}`, a minifilter made by `cargo xtask new {dir}` from the `passthrough` sample: it\n\
         registers with Filter Manager, attaches to every volume, counts create, read, write, cleanup\n\
         and close operations and prints the counts at unload. `src/lib.rs` explains each call and\n\
         its documented rules; replace the callbacks with your own.\n\n\
         ## Set its altitude first\n\n\
         `{lib}.inx` (beside the crate) carries a placeholder altitude, which `cargo xtask check-inf` rejects. On a\n\
         test machine, use any altitude in the {} range ({low}-{high}) that Microsoft's\n\
         [Allocated filter altitudes](https://learn.microsoft.com/windows-hardware/drivers/ifs/allocated-altitudes)\n\
         page does not list, and set the same number as `ALTITUDE` in `tests/{dir}.rs` and in the\n\
         demo's `.load(SERVICE, ...)`; `check-inf` names any place that differs. A driver you ship needs\n\
         an altitude from Microsoft: see\n\
         [Minifilter altitude request](https://learn.microsoft.com/windows-hardware/drivers/ifs/minifilter-altitude-request)\n\
         (an e-mail to fsfcomm@microsoft.com with the subject \"Filter altitude request\").\n\n\
         ## Build, test, watch it\n\n\
         ```sh\n\
         # Every driver of the workspace, x86_64 and aarch64, dev and release, PE-checked\n\
         cargo xtask build\n\
         # Its tests, against fltsim, the Filter Manager model\n\
         cargo test -p {package}\n\
         # Its scenario in the model, with the trace\n\
         cargo xtask demo {dir}\n\
         ```\n\n\
         ## The flow\n\n\
         <!-- diagram:begin -->\n\
         {diagram}<!-- diagram:end -->\n\n\
         ## What the demo prints\n\n\
         `cargo xtask demo {dir}` loads the driver in the model, opens, reads, writes and closes one\n\
         file, and unloads it. What the debugger shows (the counts the unload callback prints):\n\n\
         {output}\n\
         ## Load it on Windows\n\n\
         Service `{service}`, driver `{lib}.sys`, group {},\n\
         INF source `samples/{dir}/{lib}.inx`. With the altitude set, test signing on and Secure Boot off,\n\
         in an elevated PowerShell in `scripts`:\n\n\
         ```powershell\n\
         .\\Install-Sample.ps1 -Name {dir}\n\
         .\\Start-SampleDemo.ps1 -Name {dir}\n\
         .\\Uninstall-Sample.ps1 -Name {dir}\n\
         ```\n",
        group.name, group.name
    )
}
