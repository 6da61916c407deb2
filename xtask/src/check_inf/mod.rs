//! `cargo xtask check-inf`: parses every sample's INF source, `samples/<dir>/<crate fs name>.inx`
//! beside its crate (`inf/` must hold none), and enforces the minifilter INF rules of the workspace
//! (the modern "primitive driver" form), then checks that every sample under `samples/` has
//! exactly one INF, with unique service names and altitudes.
//!
//! The INF parser is deliberately small but careful: sections (names compared without regard to
//! case, repeated sections merged), `key = value` lines, quoted strings (`""` is a literal quote),
//! `;` comments outside quotes, `\` line continuations, and `%strkey%` substitution from
//! `[Strings]` (`%%` is a literal `%`; `%13%`-style dirids are left as they are).
//!
//! Every failure names the file, the section and the rule; all failures are collected before
//! the command fails.
//!
//! Beyond the INF form, three facts are checked against data:
//! - **minimum Windows version**: the down-level install section is decorated with the build the
//!   driver needs (`[DefaultInstall.NT$ARCH$.10.0...<build>]`, a `TargetOSVersion`), so that Windows
//!   refuses the INF on older builds instead of installing a driver that cannot load. The build
//!   must equal the highest of Windows 10 version 1903 (primitive drivers) and the documented
//!   minimum of every function the driver imports, in either build mode (the WDK-mode runtime's
//!   imports are `exports::WDK_RUNTIME_IMPORTS`). check-inf does not build the drivers: it reads
//!   the sample's committed `samples/<dir>/driver-imports.txt`, which `cargo xtask build` keeps
//!   equal to the real import tables, and the versions in `xtask/src/exports.rs`.
//! - **altitude**: inside its load order group's range, and not allocated to anyone on
//!   Microsoft's "Allocated filter altitudes" page (`xtask/data/allocated-altitudes.tsv`).
//! - **driver package isolation, as `infverif /w` enforces it** (error 1323: "Service registry
//!   key must be under the Parameters subkey"): every install section used on builds at or above
//!   the `/wbuild` build (10.0.17763 unless `WDK_BUILD_ADDITIONAL_INFVERIF_FLAGS` in
//!   `Makefile.toml` says otherwise) writes service registry values under `Parameters` only.
//!
//! Where each part is checked:
//! - [`parser`]: reading an INF (decoding, logical lines, sections, `[Strings]` substitution);
//! - [`text`]: one INF's text against every rule below, in the order of the INF
//!   ([`text::Checker`]);
//! - [`version`]: the `[Version]` section and the setup class of the load order group;
//! - [`structure`]: what a primitive driver's INF has and lacks (`[Manufacturer]`, decorated
//!   `DefaultInstall`, `DefaultUninstall`, `[DestinationDirs]`);
//! - [`install`]: the modern and the down-level install sections, their `CopyFiles` and
//!   `.Services`, and the minimum Windows build the down-level one states;
//! - [`services`]: the service install section and the registry values of its `AddReg`;
//! - [`isolation`]: driver package isolation as `infverif /w` enforces it;
//! - [`instances`]: the instance configuration (`DefaultInstance`, `Flags`, `Altitude`);
//! - [`altitudes`]: the load order groups, their altitude ranges and the allocated altitudes;
//! - [`workspace`]: every sample's INF against its sample and the others.

mod altitudes;
mod install;
mod instances;
mod isolation;
mod parser;
mod services;
mod structure;
#[cfg(test)]
mod test_support;
mod text;
mod version;
mod workspace;

use std::{fmt, path::Path};

use anyhow::{Result, bail};

pub(crate) use self::altitudes::{GROUPS, Group, PLACEHOLDER_ALTITUDE};
use self::workspace::check_workspace;

/// One rule violation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    file: String,
    section: String,
    rule: &'static str,
    message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: [{}] rule `{}`: {}",
            self.file, self.section, self.rule, self.message
        )
    }
}

/// Runs `cargo xtask check-inf` for the workspace at `workspace_root`.
///
/// # Errors
///
/// Fails if `samples/` (or `inf/`, when present) cannot be read, or if any rule is violated; the
/// error lists every violation.
pub fn run(workspace_root: &Path) -> Result<()> {
    let findings = check_workspace(workspace_root)?;
    if findings.is_empty() {
        println!(
            "check-inf: every sample's INX follows the minifilter INF rules, one per sample, none in inf/"
        );
        return Ok(());
    }
    for finding in &findings {
        eprintln!("{finding}");
    }
    bail!("check-inf: {} INF rule violation(s)", findings.len())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::run;
    use crate::check_inf::test_support::{GOOD, check, workspace};

    #[test]
    fn findings_name_file_section_and_rule() {
        let findings = check(&GOOD.replace("StartType      = 3 ", "StartType      = 2 "));
        let shown: Vec<String> = findings.iter().map(ToString::to_string).collect();
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("test.inx: [MiniFilter.Service] rule `service.start`")),
            "{shown:?}"
        );
    }

    #[test]
    fn run_reports_failure() {
        let dir = workspace(&[(
            "samples/passthrough/Cargo.toml",
            "[package]\nname = \"rs-passthrough\"\n",
        )]);
        fs::create_dir_all(dir.path().join("inf")).unwrap();
        let err = run(dir.path()).unwrap_err();
        assert!(err.to_string().contains("1 INF rule violation"), "{err:#}");
    }
}
