//! The workspace checks: every sample's INF source, `samples/<dir>/<crate fs name>.inx` beside its
//! crate (`inf/` must hold none), checked against its sample (its driver's name and the minimum
//! Windows version its imports need); exactly one INF per sample, with unique service names and
//! altitudes; and the places outside the INF that name a sample's altitude agreeing with it.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use super::{
    Finding,
    isolation::{DEFAULT_WBUILD, wbuild_of},
    parser::decode,
    text::{Expected, check_text},
};
use crate::exports::{self, WinVer};

/// A sample crate: its directory and package name.
struct Sample {
    dir: String,
    package: String,
}

impl Sample {
    /// The cargo-make file-system name (`rs-data-scan` -> `rs_data_scan`).
    fn fs_name(&self) -> String {
        self.package.replace('-', "_")
    }
}

/// The `name` of the `[package]` table of a Cargo.toml.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_package = t == "[package]";
            continue;
        }
        if in_package
            && let Some((key, value)) = t.split_once('=')
            && key.trim() == "name"
        {
            return Some(value.trim().trim_matches('"').to_string());
        }
    }
    None
}

fn find_samples(root: &Path, findings: &mut Vec<Finding>) -> Result<Vec<Sample>> {
    let dir = root.join("samples");
    let mut samples = Vec::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for path in entries.into_iter().filter(|p| p.is_dir()) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let manifest_path = path.join("Cargo.toml");
        let Ok(manifest) = fs::read_to_string(&manifest_path) else {
            findings.push(Finding {
                file: format!("samples/{name}"),
                section: "-".into(),
                rule: "workspace.sample",
                message: "a sample directory without a Cargo.toml".into(),
            });
            continue;
        };
        match package_name(&manifest) {
            Some(package) if package.starts_with("rs-") => {
                samples.push(Sample { dir: name, package });
            }
            other => findings.push(Finding {
                file: format!("samples/{name}/Cargo.toml"),
                section: "package".into(),
                rule: "workspace.sample",
                message: format!("package name {other:?} does not start with `rs-`"),
            }),
        }
    }
    Ok(samples)
}

/// The minimum Windows version `sample`'s driver package needs ([`exports::package_minimum`] of
/// the functions its committed `driver-imports.txt` lists). Reports a missing list or an unknown
/// function.
fn driver_needs(root: &Path, sample: &Sample, findings: &mut Vec<Finding>) -> Option<WinVer> {
    let file = format!("samples/{}/{}", sample.dir, exports::LIST_FILE);
    let Ok(text) = fs::read_to_string(root.join(&file)) else {
        findings.push(Finding {
            file,
            section: "-".into(),
            rule: "workspace.driver-imports",
            message: "missing: the committed list of the driver's imports (`cargo xtask build` \
                      checks it against the built drivers)"
                .into(),
        });
        return None;
    };
    let functions = exports::parse_list(&text);
    let unknown: Vec<&str> = functions
        .iter()
        .map(String::as_str)
        .filter(|f| exports::find(f).is_none())
        .collect();
    if !unknown.is_empty() {
        findings.push(Finding {
            file,
            section: "-".into(),
            rule: "workspace.driver-imports",
            message: format!("{unknown:?} are not in xtask/src/exports.rs's table of exports"),
        });
        return None;
    }
    Some(exports::package_minimum(exports::minimum(
        functions.iter().map(String::as_str),
    )))
}

/// The places outside the INF that name a sample's altitude agree with it: the tests'
/// `const ALTITUDE: u32 = N;`, the storm test's `storm_main!(.., altitude: N, ..)`, the demo's `.load(SERVICE, N, DriverEntry)` and the root README's
/// table row for the service (`` `Service`, N ``).
fn check_altitude_mentions(
    root: &Path,
    sample: &Sample,
    service: Option<&str>,
    altitude: u32,
    findings: &mut Vec<Finding>,
) {
    let number = |text: &str| -> Option<u32> {
        let digits: String = text.chars().filter(|c| *c != '_').collect();
        digits.trim().parse().ok()
    };
    let mut mention = |file: String, found: Option<u32>, line: usize| {
        if let Some(found) = found
            && found != altitude
        {
            findings.push(Finding {
                file,
                section: format!("line {line}"),
                rule: "workspace.altitude-mentions",
                message: format!(
                    "names altitude {found}; the sample's INF says {altitude}: set {altitude} \
                     here, then run `cargo xtask diagrams` (the README's diagram and demo output \
                     show the altitude)"
                ),
            });
        }
    };
    let dir = root.join("samples").join(&sample.dir);
    for sub in ["tests", "examples"] {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            let shown = format!(
                "samples/{}/{sub}/{}",
                sample.dir,
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            for (i, line) in text.lines().enumerate() {
                let line_text = line.trim();
                if let Some(rest) = line_text.strip_prefix("const ALTITUDE: u32 =") {
                    mention(shown.clone(), number(rest.trim_end_matches(';')), i + 1);
                }
                // The storm test's `fltsim::storm_main!(krate, altitude: N, ..)`.
                if let Some((_, rest)) = line_text.split_once("altitude:")
                    && line_text.starts_with("fltsim::storm_main!(")
                    && let Some((value, _)) = rest.split_once([',', ')'])
                {
                    mention(shown.clone(), number(value), i + 1);
                }
                if let Some(rest) = line_text.strip_prefix(".load(SERVICE,")
                    && let Some((value, _)) = rest.split_once(',')
                {
                    mention(shown.clone(), number(value), i + 1);
                }
            }
        }
    }
    if let (Some(service), Ok(readme)) = (service, fs::read_to_string(root.join("README.md"))) {
        let key = format!("`{service}`, ");
        for (i, line) in readme.lines().enumerate() {
            if let Some((_, rest)) = line.split_once(&key) {
                let value: String = rest.chars().take_while(char::is_ascii_digit).collect();
                mention("README.md".into(), number(&value), i + 1);
            }
        }
    }
}

/// Checks every sample's INF source (`samples/<dir>/<crate fs name>.inx`) against its sample, and
/// that `inf/` holds none.
pub(super) fn check_workspace(root: &Path) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let samples = find_samples(root, &mut findings)?;
    let by_binary: HashMap<String, &Sample> = samples
        .iter()
        .map(|s| (format!("{}.sys", s.fs_name()), s))
        .collect();
    // The flags the cargo-make flow passes to infverif (no Makefile.toml: infverif's defaults).
    let wbuild = fs::read_to_string(root.join("Makefile.toml"))
        .map_or(DEFAULT_WBUILD, |text| wbuild_of(&text));

    // Each INF source lives beside its crate, as samples/<dir>/<crate fs name>.inx: cargo-wdk and
    // the stock cargo-make copy-inx-to-output task both read it from the crate's own folder. inf/
    // holds the shared form's README and no INF, so that no second copy can drift.
    let is_inf = |p: &Path| {
        p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("inx") || e.eq_ignore_ascii_case("inf"))
    };
    let inf_dir = root.join("inf");
    if inf_dir.is_dir() {
        for entry in
            fs::read_dir(&inf_dir).with_context(|| format!("reading {}", inf_dir.display()))?
        {
            let path = entry?.path();
            if is_inf(&path) {
                findings.push(Finding {
                    file: relative(root, &path),
                    section: "-".into(),
                    rule: "workspace.inx-place",
                    message: "inf/ holds no INF: each sample's INF source is samples/<dir>/<crate fs name>.inx, where cargo-wdk and cargo-make's copy-inx-to-output read it".into(),
                });
            }
        }
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for sample in &samples {
        let dir = root.join("samples").join(&sample.dir);
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if is_inf(&path) {
                files.push(path);
            }
        }
    }
    files.sort();

    let mut infs_per_sample: BTreeMap<String, Vec<String>> = samples
        .iter()
        .map(|s| (s.dir.clone(), Vec::new()))
        .collect();
    let mut services: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut altitudes: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for path in &files {
        let display = relative(root, path);
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let text = match decode(&bytes) {
            Ok(t) => t,
            Err(e) => {
                findings.push(Finding {
                    file: display,
                    section: "-".into(),
                    rule: "syntax",
                    message: format!("{e:#}"),
                });
                continue;
            }
        };
        // Which sample is it for? The service binary says so; fall back to the file name.
        let (facts, _) = check_text(&display, &text, None);
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sample = facts
            .binary
            .as_ref()
            .and_then(|b| by_binary.get(&b.to_ascii_lowercase()).copied())
            .or_else(|| by_binary.get(&format!("{stem}.sys")).copied());
        let expected = sample.map(|s| Expected {
            binary: format!("{}.sys", s.fs_name()),
            min_windows: driver_needs(root, s, &mut findings),
            wbuild,
        });
        let (facts, file_findings) = check_text(&display, &text, expected.as_ref());
        findings.extend(file_findings);
        let Some(sample) = sample else {
            findings.push(Finding {
                file: display.clone(),
                section: "-".into(),
                rule: "workspace.sample-inf",
                message: format!(
                    "its service binary {:?} is no sample's driver (samples/*: rs_<name>.sys)",
                    facts.binary
                ),
            });
            continue;
        };
        if facts
            .binary
            .as_deref()
            .is_some_and(|b| b.eq_ignore_ascii_case(&format!("{}.sys", sample.fs_name())))
        {
            infs_per_sample
                .entry(sample.dir.clone())
                .or_default()
                .push(display.clone());
        }
        let want_name = format!("{}.inx", sample.fs_name());
        let want = format!("samples/{}/{want_name}", sample.dir);
        if display != want {
            findings.push(Finding {
                file: display.clone(),
                section: "-".into(),
                rule: "workspace.inx-name",
                message: format!("the INF source of {} must be {want}: cargo-wdk and cargo-make's copy-inx-to-output look for <crate fs name>.inx in the crate's folder", sample.package),
            });
        }
        if let Some(name) = &facts.service_name {
            services
                .entry(name.to_ascii_lowercase())
                .or_default()
                .push(display.clone());
        }
        if let Some(altitude) = facts.altitude {
            check_altitude_mentions(
                root,
                sample,
                facts.service_name.as_deref(),
                altitude,
                &mut findings,
            );
            altitudes.entry(altitude).or_default().push(display);
        }
    }
    for (dir, infs) in &infs_per_sample {
        if infs.len() != 1 {
            findings.push(Finding {
                file: format!("samples/{dir}"),
                section: "-".into(),
                rule: "workspace.sample-inf",
                message: format!("a sample has exactly one INF beside its crate whose ServiceBinary is its .sys; found {}: {infs:?}", infs.len()),
            });
        }
    }
    for (name, infs) in services.iter().filter(|(_, v)| v.len() > 1) {
        findings.push(Finding {
            file: infs.join(", "),
            section: "-".into(),
            rule: "workspace.unique-service",
            message: format!("service name `{name}` is used by more than one INF"),
        });
    }
    for (altitude, infs) in altitudes.iter().filter(|(_, v)| v.len() > 1) {
        findings.push(Finding {
            file: infs.join(", "),
            section: "-".into(),
            rule: "workspace.unique-altitude",
            message: format!("altitude {altitude} is used by more than one INF"),
        });
    }
    Ok(findings)
}

/// `path` relative to the workspace `root`, with `/` separators, for findings.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use std::{fs, path::Path};

    use super::check_workspace;
    use crate::check_inf::{
        parser::decode,
        test_support::{GOOD, other_inf, workspace_rules},
        text::check_text,
    };

    #[test]
    fn every_workspace_inf_is_clean() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let findings = check_workspace(&root).unwrap();
        assert!(findings.is_empty(), "{findings:#?}");
        for entry in fs::read_dir(root.join("samples")).unwrap() {
            let dir = entry.unwrap().path();
            let lib = format!(
                "rs_{}",
                dir.file_name().unwrap().to_string_lossy().replace('-', "_")
            );
            let path = dir.join(format!("{lib}.inx"));
            let text = decode(&fs::read(&path).unwrap()).unwrap();
            let binary = format!("{}.sys", path.file_stem().unwrap().to_string_lossy());
            let (facts, _) = check_text(&path.display().to_string(), &text, None);
            assert_eq!(facts.binary.as_deref(), Some(binary.as_str()));
            assert!(facts.min_build.is_some(), "{}", path.display());
        }
    }

    #[test]
    fn workspace_rules_fail() {
        let manifest = "[package]\nname = \"rs-passthrough\"\n";
        let other_manifest = "[package]\nname = \"rs-other\"\n";
        let good = [
            ("samples/passthrough/Cargo.toml", manifest),
            ("samples/passthrough/rs_passthrough.inx", GOOD),
        ];
        assert_eq!(workspace_rules(&good), Vec::<&str>::new());

        // A sample without an INF.
        let rules = workspace_rules(&[
            good[0],
            good[1],
            ("samples/other/Cargo.toml", other_manifest),
        ]);
        assert!(rules.contains(&"workspace.sample-inf"), "{rules:?}");
        // Two INFs for one sample.
        let rules = workspace_rules(&[
            good[0],
            good[1],
            ("samples/passthrough/rs_passthrough.inf", GOOD),
        ]);
        assert!(rules.contains(&"workspace.sample-inf"), "{rules:?}");
        assert!(rules.contains(&"workspace.unique-service"), "{rules:?}");
        assert!(rules.contains(&"workspace.unique-altitude"), "{rules:?}");
        assert!(rules.contains(&"workspace.inx-name"), "{rules:?}");
        // An INF for no sample.
        let other = other_inf();
        let rules = workspace_rules(&[
            good[0],
            good[1],
            ("samples/passthrough/rs_other.inx", &other),
        ]);
        assert!(rules.contains(&"workspace.sample-inf"), "{rules:?}");
        // An INF left in inf/, where neither cargo-wdk nor cargo-make reads it.
        let rules = workspace_rules(&[good[0], good[1], ("inf/rs_passthrough.inx", GOOD)]);
        assert_eq!(rules, vec!["workspace.inx-place"]);
        // A sample's INF in another sample's folder.
        let rules = workspace_rules(&[
            good[0],
            ("samples/other/Cargo.toml", other_manifest),
            ("samples/other/rs_passthrough.inx", GOOD),
            ("samples/passthrough/rs_other.inx", &other),
        ]);
        assert!(rules.contains(&"workspace.inx-name"), "{rules:?}");
        // Duplicate altitude across samples.
        let same_altitude = other.replace("370299", "370210");
        let rules = workspace_rules(&[
            good[0],
            good[1],
            ("samples/other/Cargo.toml", other_manifest),
            ("samples/other/rs_other.inx", &same_altitude),
        ]);
        assert_eq!(rules, vec!["workspace.unique-altitude"]);
        // Duplicate service name across samples.
        let same_service = other.replace("RsOther", "RsPassthrough");
        let rules = workspace_rules(&[
            good[0],
            good[1],
            ("samples/other/Cargo.toml", other_manifest),
            ("samples/other/rs_other.inx", &same_service),
        ]);
        assert_eq!(rules, vec!["workspace.unique-service"]);
        // A sample whose package is not rs-*.
        let rules = workspace_rules(&[
            good[0],
            good[1],
            ("samples/bad/Cargo.toml", "[package]\nname = \"bad\"\n"),
        ]);
        assert!(rules.contains(&"workspace.sample"), "{rules:?}");
        // Both clean together.
        let rules = workspace_rules(&[
            good[0],
            good[1],
            ("samples/other/Cargo.toml", other_manifest),
            ("samples/other/rs_other.inx", &other),
        ]);
        assert!(rules.is_empty(), "{rules:?}");
    }

    #[test]
    fn altitude_mentions_must_agree() {
        let manifest = "[package]\nname = \"rs-passthrough\"\n";
        let base = [
            ("samples/passthrough/Cargo.toml", manifest),
            ("samples/passthrough/rs_passthrough.inx", GOOD),
        ];
        let agree = [
            base[0],
            base[1],
            (
                "samples/passthrough/tests/t.rs",
                "const ALTITUDE: u32 = 370_210;\n",
            ),
            (
                "samples/passthrough/examples/demo.rs",
                "    .load(SERVICE, 370_210, DriverEntry)\n",
            ),
            (
                "README.md",
                "| x | y | `RsPassthrough`, 370210 | 10 1903 |\n",
            ),
            (
                "samples/passthrough/tests/storm.rs",
                "fltsim::storm_main!(rs_passthrough, altitude: 370_210, oracle: FailOpen);\n",
            ),
        ];
        assert_eq!(workspace_rules(&agree), Vec::<&str>::new());
        for (index, stale) in [
            "const ALTITUDE: u32 = 370_299;\n",
            "    .load(SERVICE, 370_299, DriverEntry)\n",
            "| x | y | `RsPassthrough`, 370299 | 10 1903 |\n",
            "fltsim::storm_main!(rs_passthrough, altitude: 0, oracle: FailOpen);\n",
        ]
        .into_iter()
        .enumerate()
        {
            let mut files = agree;
            files[2 + index].1 = stale;
            assert_eq!(
                workspace_rules(&files),
                ["workspace.altitude-mentions"],
                "{stale}"
            );
        }
    }
}
