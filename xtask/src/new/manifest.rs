//! Crate manifests for the `--out` workspace: [`explicit_manifest`] writes into a member's
//! `Cargo.toml` what it inherited from this workspace ([`Inherited`]: package fields, dependencies
//! with their paths rebased for the member, and lints), so that no crate inherits from a workspace.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result, bail};

use super::template::read;

/// The workspace's shared manifest settings, which the `--out` form writes into each crate.
pub(super) struct Inherited {
    package: toml::Table,
    dependencies: toml::Table,
    lints: toml::Table,
}

impl Inherited {
    pub(super) fn read(root: &Path) -> Result<Self> {
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
pub(super) fn explicit_manifest(text: &str, member: &str, inherited: &Inherited) -> Result<String> {
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
