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

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use crate::check_inf::{GROUPS, Group, PLACEHOLDER_ALTITUDE};

/// The template sample's directory under `samples/`.
const TEMPLATE: &str = "passthrough";
/// The template's altitude, as its INF, test and demo write it.
const TEMPLATE_ALTITUDE: &str = "370210";
/// The template's load order group (its INF's `LoadOrderGroup`).
const TEMPLATE_GROUP: &str = "FSFilter Activity Monitor";
/// The longest name accepted: the service name, `Rs` + the name, stays short enough to read in
/// `fltmc filters`.
const MAX_NAME: usize = 32;
/// Names Windows reserves for devices: no file or folder may have them.
/// The workspace's own crates (and their directories): a sample of the same name would be
/// mistaken for them in commands and paths.
const WORKSPACE_CRATES: [&str; 4] = ["common", "common-build", "fltsim", "xtask"];

const RESERVED: [&str; 22] = [
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];
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

/// Reads a file of the repository, relative to `root`.
fn read(root: &Path, path: &str) -> Result<String> {
    fs::read_to_string(root.join(path))
        .with_context(|| format!("reading {} (the template)", root.join(path).display()))
}

/// Replaces every `from` in `text` with `to`; `from` must occur.
fn replace(text: &str, from: &str, to: &str, file: &str) -> Result<String> {
    if !text.contains(from) {
        bail!(
            "the template {file} no longer contains {from:?}: update xtask/src/new.rs to match \
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
fn driver_files(root: &Path, names: &Names, group: &Group) -> Result<Files> {
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
    let text = replace(
        &text,
        &format!("sample: \"{TEMPLATE}\","),
        &format!("sample: \"{}\",", names.dir),
        &file,
    )?;
    let text = text
        .replace(
            &format!("against {TEMPLATE}"),
            &format!("against {}", names.dir),
        )
        .replace(
            &format!("--sample {TEMPLATE}"),
            &format!("--sample {}", names.dir),
        );
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

/// The scripts with the new sample added: the `-Name` choices, the table of samples, and the
/// demo's expected lines and scenario (passthrough's, under the new name). With `only`, the new
/// sample replaces the others (the `--out` workspace has no other sample).
fn scripts(root: &Path, names: &Names, only: bool) -> Result<Files> {
    let mut files = Files::new();
    let dir = &names.dir;
    // Every script's `-Name` parameter lists the samples.
    for script in [
        "Install-Sample.ps1",
        "Start-SampleDemo.ps1",
        "Uninstall-Sample.ps1",
    ] {
        let file = format!("scripts/{script}");
        let text = read(root, &file)?;
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("[ValidateSet("))
            .with_context(|| format!("{file}: no [ValidateSet(...)] line"))?;
        let indent = &line[..line.len() - line.trim_start().len()];
        let new_line = if only {
            format!("{indent}[ValidateSet('{dir}')]")
        } else {
            let list = line
                .trim_end()
                .strip_suffix(")]")
                .with_context(|| format!("{file}: the ValidateSet line does not end in `)]`"))?;
            format!("{list}, '{dir}')]")
        };
        let mut text = text.replacen(line, &new_line, 1);
        if script == "Start-SampleDemo.ps1" {
            text = with_block_copied(
                &text,
                "    'passthrough'      = @(",
                "    )",
                &file,
                names,
                only,
            )?;
            text = with_block_copied(
                &text,
                "        'passthrough' {",
                "        }",
                &file,
                names,
                only,
            )?;
        }
        files.insert(PathBuf::from(&file), text);
    }
    // The table of samples in the shared module.
    let file = "scripts/SampleCommon.psm1";
    let text = read(root, file)?;
    let start = "$script:Samples = [ordered]@{\n";
    let at = text
        .find(start)
        .with_context(|| format!("{file}: no $script:Samples table"))?
        + start.len();
    let end = at
        + text[at..]
            .find("\n}\n")
            .with_context(|| format!("{file}: the $script:Samples table does not end"))?;
    let entry = format!(
        "    '{dir}' = @{{ Package = '{}'; Service = '{}' }}",
        names.package, names.service
    );
    let table = if only {
        entry
    } else {
        format!("{}\n{entry}", &text[at..end])
    };
    let mut text = text;
    text.replace_range(at..end, &table);
    files.insert(PathBuf::from(file), text);
    Ok(files)
}

/// In a script, copies the block from the line `first` to the next line equal to `last`, with
/// the sample renamed, after the last block of its kind (or, with `only`, instead of them all).
fn with_block_copied(
    text: &str,
    first: &str,
    last: &str,
    file: &str,
    names: &Names,
    only: bool,
) -> Result<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == first)
        .with_context(|| format!("{file}: no line {first:?}"))?;
    let len = lines[start..]
        .iter()
        .position(|l| *l == last)
        .with_context(|| format!("{file}: the block at {first:?} does not end"))?
        + 1;
    let block: Vec<String> = lines[start..start + len]
        .iter()
        .map(|l| {
            l.replace("'passthrough'", &format!("'{}'", names.dir))
                .replace("passthrough demo file", &format!("{} demo file", names.dir))
        })
        .collect();
    // The blocks of this kind follow one another from the template's on: each starts at the same
    // indentation with a quoted sample name.
    let indent = &first[..first.len() - first.trim_start().len()];
    let is_entry = |l: &str| {
        l.strip_prefix(indent)
            .is_some_and(|rest| rest.starts_with('\''))
    };
    let mut run_end = start;
    while run_end < lines.len() && is_entry(lines[run_end]) {
        run_end += lines[run_end..]
            .iter()
            .position(|l| *l == last)
            .with_context(|| format!("{file}: a block at line {} does not end", run_end + 1))?
            + 1;
    }
    let kept = if only { start } else { run_end };
    let mut out: Vec<String> = lines[..kept].iter().map(|l| (*l).to_owned()).collect();
    out.extend(block);
    out.extend(lines[run_end..].iter().map(|l| (*l).to_owned()));
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    Ok(joined)
}

/// The workspace's shared manifest settings, which the `--out` form writes into each crate.
struct Inherited {
    package: toml::Table,
    dependencies: toml::Table,
    lints: toml::Table,
}

impl Inherited {
    fn read(root: &Path) -> Result<Self> {
        let text = read(root, "Cargo.toml")?;
        let manifest: toml::Table = toml::from_str(&text).context("parsing Cargo.toml")?;
        let workspace = manifest
            .get("workspace")
            .and_then(toml::Value::as_table)
            .context("Cargo.toml has no [workspace]")?;
        let table = |key: &str| {
            workspace
                .get(key)
                .and_then(toml::Value::as_table)
                .cloned()
                .unwrap_or_default()
        };
        Ok(Self {
            package: table("package"),
            dependencies: table("dependencies"),
            lints: table("lints"),
        })
    }
}

/// A TOML value as it is written inline.
fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        toml::Value::Table(table) => {
            let items: Vec<String> = table
                .iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// A path of the workspace's root, as seen from the member at `member` (`samples/x`).
fn rebase(path: &str, member: &str) -> String {
    let ups = member.split('/').filter(|p| !p.is_empty()).count();
    format!("{}{path}", "../".repeat(ups))
}

/// The dependency `name` of a member, `member_spec` (its own keys beside `workspace = true`)
/// merged into the workspace's, with a path rebased for the member.
fn dependency(
    inherited: &Inherited,
    name: &str,
    member_spec: &toml::Table,
    member: &str,
) -> Result<toml::Value> {
    let base = inherited
        .dependencies
        .get(name)
        .with_context(|| format!("{member}: `{name}` is not in [workspace.dependencies]"))?;
    let mut spec = match base {
        toml::Value::String(version) => {
            let mut t = toml::Table::new();
            t.insert("version".into(), toml::Value::String(version.clone()));
            t
        }
        toml::Value::Table(t) => t.clone(),
        other => bail!("{member}: workspace dependency `{name}` is {other}"),
    };
    if let Some(toml::Value::String(path)) = spec.get("path") {
        let path = rebase(path, member);
        spec.insert("path".into(), toml::Value::String(path));
    }
    for (key, value) in member_spec {
        match key.as_str() {
            "workspace" => {}
            "features" => {
                let mut features = spec
                    .get("features")
                    .and_then(toml::Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for feature in value.as_array().into_iter().flatten() {
                    if !features.contains(feature) {
                        features.push(feature.clone());
                    }
                }
                spec.insert("features".into(), toml::Value::Array(features));
            }
            _ => {
                spec.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(toml::Value::Table(spec))
}

/// A member manifest with everything it inherited from the workspace written out: package fields,
/// dependencies (paths rebased for `member`) and lints.
fn explicit_manifest(text: &str, member: &str, inherited: &Inherited) -> Result<String> {
    let mut out = String::new();
    let mut table = String::new();
    let mut skipping_lints = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            trimmed.clone_into(&mut table);
            skipping_lints = false;
            if table == "[lints]" {
                // `[lints] workspace = true` becomes the workspace's lint tables.
                for (tool, lints) in &inherited.lints {
                    let lints = lints
                        .as_table()
                        .with_context(|| format!("[workspace.lints.{tool}] is not a table"))?;
                    let _ = writeln!(out, "[lints.{tool}]");
                    for (lint, level) in lints {
                        let _ = writeln!(out, "{lint} = {}", inline(level));
                    }
                    out.push('\n');
                }
                skipping_lints = true;
                continue;
            }
        }
        if skipping_lints {
            if trimmed.is_empty() || trimmed.replace(' ', "") == "workspace=true" {
                continue;
            }
            bail!("{member}/Cargo.toml: [lints] has more than `workspace = true`: {trimmed}");
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if table == "[package]"
            && let Some(field) = key.strip_suffix(".workspace")
        {
            let value = inherited
                .package
                .get(field)
                .with_context(|| format!("{member}: [workspace.package] has no `{field}`"))?;
            let _ = writeln!(out, "{field} = {}", inline(value));
            continue;
        }
        if table.ends_with("dependencies]") && !key.starts_with('#') {
            if let Some(name) = key.strip_suffix(".workspace") {
                let spec = dependency(inherited, name, &toml::Table::new(), member)?;
                let _ = writeln!(out, "{name} = {}", inline(&spec));
                continue;
            }
            if value.starts_with('{') && value.contains("workspace") {
                let parsed: toml::Table = toml::from_str(&format!("spec = {value}"))
                    .with_context(|| format!("{member}: parsing the dependency {key}"))?;
                let own = parsed
                    .get("spec")
                    .and_then(toml::Value::as_table)
                    .cloned()
                    .unwrap_or_default();
                let spec = dependency(inherited, key, &own, member)?;
                let _ = writeln!(out, "{key} = {}", inline(&spec));
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    if out.contains("workspace = true") || out.contains(".workspace") {
        bail!("{member}/Cargo.toml still inherits from the workspace after the rewrite");
    }
    Ok(out)
}

/// Every file under `dir` (relative to `root`), recursively.
fn files_under(root: &Path, dir: &str, out: &mut Vec<String>) -> Result<()> {
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
fn workspace_files(root: &Path, names: &Names) -> Result<Files> {
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

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeMap,
        fs,
        path::{Path, PathBuf},
        sync::atomic::{AtomicUsize, Ordering},
    };

    use super::{PLACEHOLDER_ALTITUDE, names, run};
    use crate::workspace::workspace_root;

    /// A throw-away directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("xtask-new-test-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Copies `rel` (a file or a folder) from the repository into `dest`.
    fn copy(dest: &Path, rel: &str) {
        let mut found = Vec::new();
        super::files_under(&workspace_root(), rel, &mut found).unwrap();
        for path in found {
            let to = dest.join(&path);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(workspace_root().join(&path), to).unwrap();
        }
    }

    /// A workspace with what the in-workspace form reads and checks: the template, its INF,
    /// the scripts, and the root Makefile.toml (check-inf reads infverif's flags from it).
    fn repository() -> TempDir {
        let dir = TempDir::new();
        for rel in ["samples/passthrough", "scripts", "Makefile.toml"] {
            copy(&dir.0, rel);
        }
        dir
    }

    /// Every file under `dir` with its contents.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut found = Vec::new();
        if dir.exists() {
            super::files_under(dir, ".", &mut found).unwrap();
        }
        found
            .into_iter()
            .map(|p| (PathBuf::from(&p), fs::read(dir.join(&p)).unwrap()))
            .collect()
    }

    fn text(dir: &Path, rel: &str) -> String {
        fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    #[test]
    fn names_follow_the_samples_conventions() {
        for own in super::WORKSPACE_CRATES {
            let error = names(own).unwrap_err().to_string();
            assert_eq!(
                error,
                format!(
                    "`{own}` is the name of one of this workspace's own crates: choose another"
                )
            );
        }
        let n = names("my-filter2").unwrap();
        assert_eq!(n.dir, "my-filter2");
        assert_eq!(n.package, "rs-my-filter2");
        assert_eq!(n.lib, "rs_my_filter2");
        assert_eq!(n.service, "RsMyFilter2");
    }

    #[test]
    fn bad_input_is_one_line_and_changes_nothing() {
        let repo = repository();
        fs::create_dir_all(repo.0.join("samples/other")).unwrap();
        fs::write(
            repo.0.join("samples/other/rs_other.inx"),
            "[MiniFilter.Service]\nServiceName = \"RsGhost\"\n",
        )
        .unwrap();
        let before = snapshot(&repo.0);
        let out = repo.0.join("elsewhere");
        let activity = "FSFilter Activity Monitor";
        let cases: [(&str, &str, Option<&Path>, &str); 13] = [
            ("passthrough", activity, None, "already exists"),
            (
                "ghost",
                activity,
                None,
                "the service name RsGhost is already used",
            ),
            ("", activity, None, "empty"),
            ("My-Filter", activity, None, "not a valid name"),
            ("my_filter", activity, None, "not a valid name"),
            ("2filter", activity, None, "not a valid name"),
            ("my--filter", activity, None, "not a valid name"),
            ("filter-", activity, None, "not a valid name"),
            ("rs-filter", activity, None, "leave out the `rs-` prefix"),
            ("aux", activity, None, "reserves"),
            (&"x".repeat(33), activity, None, "longer than"),
            (
                "my-filter",
                "FSFilter Bottom",
                None,
                "unknown load order group",
            ),
            (
                "my-filter",
                activity,
                Some(repo.0.as_path()),
                "already exists",
            ),
        ];
        for (name, group, out_dir, expected) in cases {
            let error = run(&repo.0, name, group, out_dir).expect_err(name);
            let message = format!("{error:#}");
            assert!(message.contains(expected), "{name}: {message}");
            assert!(
                !message.contains('\n'),
                "{name}: more than one line: {message}"
            );
            assert_eq!(snapshot(&repo.0), before, "{name} changed the repository");
        }
        // --out with a bad name or group creates no folder either.
        run(&repo.0, "Bad", activity, Some(&out)).unwrap_err();
        run(&repo.0, "good", "nope", Some(&out)).unwrap_err();
        assert!(!out.exists());
        assert_eq!(snapshot(&repo.0), before);
    }

    #[test]
    fn the_workspace_form_adds_a_sample_that_check_inf_holds_until_its_altitude_is_set() {
        let repo = repository();
        run(&repo.0, "my-filter", "FSFilter Content Screener", None).unwrap();
        let root = &repo.0;
        for rel in [
            "samples/my-filter/Cargo.toml",
            "samples/my-filter/build.rs",
            "samples/my-filter/driver-imports.txt",
            "samples/my-filter/src/lib.rs",
            "samples/my-filter/tests/my-filter.rs",
            "samples/my-filter/examples/demo.rs",
            "samples/my-filter/README.md",
        ] {
            let t = text(root, rel);
            assert!(
                !t.contains("rs-passthrough") && !t.contains("rs_passthrough"),
                "{rel}"
            );
            assert!(!t.contains("RsPassthrough") && !t.contains("370"), "{rel}");
        }
        let manifest = text(root, "samples/my-filter/Cargo.toml");
        assert!(manifest.contains("name = \"rs-my-filter\""));
        assert!(manifest.contains("name = \"my-filter-demo\"\npath = \"examples/demo.rs\""));
        let lib = text(root, "samples/my-filter/src/lib.rs");
        assert!(lib.contains("FltRegisterFilter(") && lib.contains("FltUnregisterFilter("));
        assert!(lib.contains("pub const TAG: &str = \"rs-my-filter\";"));
        let readme = text(root, "samples/my-filter/README.md");
        // passthrough's diagram, under the new names, at altitude 0.
        assert!(readme.contains("<!-- diagram:begin -->\n```mermaid\nsequenceDiagram\n"));
        assert!(readme.contains("fltmc load RsMyFilter (altitude 0)"));
        assert!(readme.contains("participant F as RsMyFilter callbacks"));
        assert!(root.join("samples/my-filter/tests/diagram.rs").is_file());
        // passthrough's output block, under the new tag.
        assert!(readme.contains(
            "<!-- output:begin debugger -->\n```text\nrs-my-filter: Create: 1 pre, 1 post\n"
        ));
        let inf = text(root, "samples/my-filter/rs_my_filter.inx");
        assert!(inf.contains(&format!("Instance1.Altitude = \"{PLACEHOLDER_ALTITUDE}\"")));
        assert!(inf.contains("LoadOrderGroup = \"FSFilter Content Screener\""));
        assert!(inf.contains("Class       = \"ContentScreener\""));
        assert!(inf.contains("ServiceName        = \"RsMyFilter\""));
        assert!(inf.contains("fsfcomm@microsoft.com"));
        for script in [
            "Install-Sample.ps1",
            "Start-SampleDemo.ps1",
            "Uninstall-Sample.ps1",
        ] {
            let t = text(root, &format!("scripts/{script}"));
            // The new sample ends the list, whatever samples the copy already had.
            assert!(t.contains(", 'my-filter')]"), "{script}");
        }
        let demo = text(root, "scripts/Start-SampleDemo.ps1");
        assert!(
            demo.contains("    'my-filter'      = @(") && demo.contains("        'my-filter' {")
        );
        assert!(
            demo.contains("    'passthrough'      = @(")
                && demo.contains("        'passthrough' {")
        );
        let common = text(root, "scripts/SampleCommon.psm1");
        assert!(
            common.contains("'my-filter' = @{ Package = 'rs-my-filter'; Service = 'RsMyFilter' }")
        );
        // The same name twice is refused.
        let error = run(root, "my-filter", "FSFilter Activity Monitor", None).unwrap_err();
        assert!(error.to_string().contains("already exists"), "{error}");

        // check-inf refuses the placeholder, then accepts an unallocated altitude of the group
        // once the test, the storm test and the demo say it too.
        let error = crate::check_inf::run(root).unwrap_err();
        assert!(
            error.to_string().contains("2 INF rule violation"),
            "{error:#}"
        );
        fs::write(
            root.join("samples/my-filter/rs_my_filter.inx"),
            inf.replace(PLACEHOLDER_ALTITUDE, "265190"),
        )
        .unwrap();
        assert!(
            crate::check_inf::run(root).is_err(),
            "the test and demo still say 0"
        );
        for (rel, from, to) in [
            (
                "samples/my-filter/tests/my-filter.rs",
                "const ALTITUDE: u32 = 0;",
                "const ALTITUDE: u32 = 265_190;",
            ),
            (
                "samples/my-filter/examples/demo.rs",
                ".load(SERVICE, 0, DriverEntry)",
                ".load(SERVICE, 265_190, DriverEntry)",
            ),
            (
                "samples/my-filter/tests/storm.rs",
                "altitude: 0,",
                "altitude: 265_190,",
            ),
        ] {
            let t = text(root, rel);
            assert!(t.contains(from), "{rel}");
            fs::write(root.join(rel), t.replace(from, to)).unwrap();
        }
        crate::check_inf::run(root).expect("the altitude is set everywhere");
    }

    #[test]
    fn the_out_form_is_a_workspace_of_its_own() {
        let dir = TempDir::new();
        let out = dir.0.join("my-filter");
        run(
            &workspace_root(),
            "my-filter",
            "FSFilter Activity Monitor",
            Some(&out),
        )
        .unwrap();
        let mut manifests = Vec::new();
        super::files_under(&out, ".", &mut manifests).unwrap();
        manifests.retain(|p| p.ends_with("Cargo.toml"));
        assert_eq!(manifests.len(), 6, "{manifests:?}");
        for rel in &manifests {
            let t = text(&out, rel);
            let manifest: toml::Table = toml::from_str(&t).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert!(
                !t.contains("workspace = true") && !t.contains(".workspace"),
                "{rel}"
            );
            let member = out.join(rel);
            let member = member.parent().unwrap();
            // Every path dependency stays inside the new workspace.
            for table in ["dependencies", "build-dependencies", "dev-dependencies"] {
                let deps = manifest.get(table).and_then(toml::Value::as_table);
                for (name, spec) in deps.into_iter().flatten() {
                    if let Some(path) = spec.get("path").and_then(toml::Value::as_str) {
                        let target = member.join(path).canonicalize().unwrap();
                        assert!(
                            target.starts_with(out.canonicalize().unwrap()),
                            "{rel}: {name}"
                        );
                        assert!(target.join("Cargo.toml").is_file(), "{rel}: {name}");
                    }
                }
            }
            if let Some(package) = manifest.get("package").and_then(toml::Value::as_table) {
                for field in ["version", "edition", "rust-version", "license"] {
                    assert!(
                        package.get(field).is_some_and(toml::Value::is_str),
                        "{rel}: {field}"
                    );
                }
                let lints = manifest
                    .get("lints")
                    .and_then(toml::Value::as_table)
                    .unwrap();
                assert!(
                    lints.contains_key("clippy") && lints.contains_key("rust"),
                    "{rel}"
                );
            }
        }
        let root = text(&out, "Cargo.toml");
        assert!(root.contains("[profile.dev]\npanic = \"abort\""));
        assert!(root.contains("[profile.release]\npanic = \"abort\""));
        assert!(text(&out, "xtask/Cargo.toml").contains("\n[workspace]\n"));
        assert!(text(&out, ".cargo/config.toml").contains("--manifest-path xtask/Cargo.toml"));
        for file in [
            "rust-toolchain.toml",
            "rustfmt.toml",
            "Cargo.lock",
            "xtask/Cargo.lock",
        ] {
            assert!(out.join(file).is_file(), "{file}");
        }
        let readme = text(&out, "README.md");
        assert!(readme.contains("```sh\ncargo xtask build\n```"));
        assert!(readme.contains("```sh\ncargo test --workspace\n```"));
        let demo = text(&out, "scripts/Start-SampleDemo.ps1");
        assert!(demo.contains("[ValidateSet('my-filter')]"));
        assert!(!demo.contains("'passthrough'") && !demo.contains("'data-scan'"));
        assert!(demo.contains("        'my-filter' {"));
        let common = text(&out, "scripts/SampleCommon.psm1");
        assert!(!common.contains("'passthrough'") && common.contains("'my-filter' = @{"));
        assert!(out.join("samples/my-filter/src/lib.rs").is_file());
        assert!(out.join("samples/my-filter/rs_my_filter.inx").is_file());
    }
}
