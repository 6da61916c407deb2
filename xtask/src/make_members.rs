//! `cargo xtask check-make-members`: every workspace member the cargo-make flow builds compiles
//! for both Windows targets.
//!
//! `cargo make` at the root runs its task in each workspace member (cargo-make's workspace
//! support), minus the members `Makefile.toml` lists in `CARGO_MAKE_WORKSPACE_SKIP_MEMBERS` (and,
//! if set, only those in `CARGO_MAKE_WORKSPACE_INCLUDE_MEMBERS`). A member in that flow is built
//! with `--target x86_64-pc-windows-msvc` or `aarch64-pc-windows-msvc`, so a host-only crate left
//! in it (`fltsim`: `std`, and a `common` that brings its own panic handler on Windows targets)
//! breaks `cargo make` on Windows with `E0152 duplicate lang item`.
//!
//! This check reads the same two places cargo-make reads, the workspace's members (`cargo
//! metadata`, which expands `Cargo.toml`'s `members` globs) and `Makefile.toml`'s `[env]`, picks the
//! members the flow builds the way cargo-make does (exact member path, or a glob, matched with the
//! `glob` crate cargo-make uses), and runs `cargo check --no-default-features --target <triple>`
//! on each one, one package at a time as the flow builds them. The WDK mode itself needs a Windows
//! host; the standalone mode checks the same crates' Windows-target code.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use crate::{
    process::{cargo, run},
    workspace::ARCHES,
};

/// A workspace member: its path relative to the workspace root (`/`-separated, as cargo-make
/// spells it) and its package name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member's directory relative to the workspace root, e.g. `samples/passthrough`.
    pub path: String,
    /// Its package name, e.g. `rs-passthrough`.
    pub package: String,
}

/// The workspace members, from `cargo metadata`.
fn workspace_members(root: &Path) -> Result<Vec<Member>> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .current_dir(root)
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let workspace_root = PathBuf::from(metadata.workspace_root.as_std_path());
    let mut members = Vec::new();
    for package in metadata.workspace_packages() {
        let dir = package
            .manifest_path
            .parent()
            .with_context(|| format!("{}: no manifest directory", package.name))?;
        let relative = dir
            .as_std_path()
            .strip_prefix(&workspace_root)
            .with_context(|| format!("{dir} is outside the workspace"))?;
        let path = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        members.push(Member {
            path,
            package: package.name.to_string(),
        });
    }
    members.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(members)
}

/// The value of an `[env]` entry of `Makefile.toml` as cargo-make reads a member list: an array
/// of strings, or one string with `;` between the entries. Absent: empty.
fn env_list(makefile: &toml::Table, name: &str) -> Result<Vec<String>> {
    let Some(value) = makefile
        .get("env")
        .and_then(toml::Value::as_table)
        .and_then(|env| env.get(name))
    else {
        return Ok(Vec::new());
    };
    let entries: Vec<String> = match value {
        toml::Value::String(list) => list.split(';').map(str::to_owned).collect(),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("Makefile.toml: {name} holds a non-string: {item}"))
            })
            .collect::<Result<_>>()?,
        other => bail!("Makefile.toml: {name} is neither a list nor a string: {other}"),
    };
    Ok(entries.into_iter().filter(|e| !e.is_empty()).collect())
}

/// Whether `member` matches one of `patterns` as cargo-make matches it: the exact member path, or
/// a pattern with a `*`, as a glob.
fn matches(member: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|pattern| {
        pattern == member
            || (pattern.contains('*')
                && glob::Pattern::new(pattern).is_ok_and(|glob| glob.matches(member)))
    })
}

/// The members the cargo-make flow builds: not skipped, and included if an include list is set.
pub fn flow_members(members: &[Member], skip: &[String], include: &[String]) -> Vec<Member> {
    members
        .iter()
        .filter(|m| !matches(&m.path, skip) && (include.is_empty() || matches(&m.path, include)))
        .cloned()
        .collect()
}

/// The members `cargo make` builds in this workspace, read from its `Makefile.toml` and members.
pub fn members_of(root: &Path) -> Result<Vec<Member>> {
    let path = root.join("Makefile.toml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let makefile: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let skip = env_list(&makefile, "CARGO_MAKE_WORKSPACE_SKIP_MEMBERS")?;
    let include = env_list(&makefile, "CARGO_MAKE_WORKSPACE_INCLUDE_MEMBERS")?;
    Ok(flow_members(&workspace_members(root)?, &skip, &include))
}

/// `cargo xtask check-make-members`.
pub fn run_check(root: &Path) -> Result<()> {
    let members = members_of(root)?;
    if members.is_empty() {
        bail!("the cargo-make flow builds no workspace member: check Makefile.toml");
    }
    let names: Vec<&str> = members.iter().map(|m| m.path.as_str()).collect();
    println!("cargo make builds: {}", names.join(", "));
    for arch in ARCHES {
        for member in &members {
            let mut command = cargo();
            command.current_dir(root).args([
                "check",
                "--quiet",
                "--no-default-features",
                "--package",
                &member.package,
                "--target",
                arch.triple,
            ]);
            run(
                command,
                &format!(
                    "`{}` is in the cargo-make flow (Makefile.toml) but does not compile for {}",
                    member.path, arch.triple
                ),
            )?;
            println!("{}: compiles for {}", member.path, arch.triple);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Member, env_list, flow_members, members_of};

    fn member(path: &str) -> Member {
        Member {
            path: path.to_owned(),
            package: path.replace('/', "-"),
        }
    }

    fn paths(members: &[Member]) -> Vec<&str> {
        members.iter().map(|m| m.path.as_str()).collect()
    }

    #[test]
    fn skip_and_include_lists_work_as_in_cargo_make() {
        let all = [
            member("common"),
            member("common/build"),
            member("fltsim"),
            member("samples/a"),
            member("samples/b"),
            member("tools/x"),
        ];
        let skip = ["fltsim".to_owned(), "tools/*".to_owned()];
        assert_eq!(
            paths(&flow_members(&all, &skip, &[])),
            ["common", "common/build", "samples/a", "samples/b"]
        );
        let include = ["samples/*".to_owned(), "common".to_owned()];
        assert_eq!(
            paths(&flow_members(&all, &skip, &include)),
            ["common", "samples/a", "samples/b"]
        );
        // A skipped name matches the whole member path, not a prefix.
        assert_eq!(
            paths(&flow_members(&all, &["common".to_owned()], &[])),
            [
                "common/build",
                "fltsim",
                "samples/a",
                "samples/b",
                "tools/x"
            ]
        );
    }

    #[test]
    fn member_lists_are_arrays_or_semicolon_strings() {
        let makefile: toml::Table = toml::from_str(
            "[env]\nA = [\"x\", \"y/*\"]\nB = \"x;y\"\nC = 3\n[tasks.default]\nclear = true\n",
        )
        .unwrap();
        assert_eq!(env_list(&makefile, "A").unwrap(), ["x", "y/*"]);
        assert_eq!(env_list(&makefile, "B").unwrap(), ["x", "y"]);
        assert!(env_list(&makefile, "C").is_err());
        assert!(env_list(&makefile, "D").unwrap().is_empty());
    }

    /// This workspace: `cargo make` builds the kernel crates and nothing host-only.
    #[test]
    fn this_workspace_keeps_host_only_crates_out_of_cargo_make() {
        let members =
            members_of(&crate::workspace::workspace_root()).expect("Makefile.toml and members");
        let paths = paths(&members);
        for host_only in ["fltsim", "xtask", "common/build"] {
            assert!(!paths.contains(&host_only), "{host_only} in {paths:?}");
        }
        assert!(paths.contains(&"common"), "{paths:?}");
        for sample in crate::workspace::samples(&crate::workspace::workspace_root()).unwrap() {
            let path = format!("samples/{}", sample.dir);
            assert!(paths.contains(&path.as_str()), "{path} not in {paths:?}");
        }
    }
}
