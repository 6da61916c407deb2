//! What a primitive driver's INF has and lacks: no `[Manufacturer]`, architecture-decorated
//! `DefaultInstall`/`DefaultUninstall` sections, no `DefaultUninstall` unless it says
//! `LegacyUninstall=1`, and a `[DestinationDirs]` that sends every file to dirid 13 (the driver
//! store).

use super::text::Checker;

impl Checker<'_> {
    pub(super) fn check_structure(&mut self) {
        for section in &self.inf.sections {
            let lower = section.name.to_ascii_lowercase();
            if lower == "manufacturer" {
                self.fail(
                    &section.name,
                    "primitive.no-manufacturer",
                    "a primitive driver has no [Manufacturer] section",
                );
            }
            if lower.starts_with("defaultinstall") || lower.starts_with("defaultuninstall") {
                let decoration = lower.split_once('.').map(|(_, d)| d);
                let decorated = decoration.is_some_and(|d| {
                    d.starts_with("nt$arch$")
                        || d.starts_with("ntamd64")
                        || d.starts_with("ntarm64")
                });
                if !decorated {
                    self.fail(&section.name, "primitive.decorated", "DefaultInstall/DefaultUninstall sections must be architecture decorated (.NT$ARCH$)");
                }
            }
            if lower.starts_with("defaultuninstall") && !lower.ends_with(".services") {
                let legacy = section
                    .value("LegacyUninstall")
                    .is_some_and(|e| e.value().trim() == "1");
                if !legacy {
                    self.fail(&section.name, "primitive.no-uninstall", "DefaultUninstall is not allowed from Windows 10 1903 on unless it says LegacyUninstall=1");
                }
            }
        }
        if let Some(dirs) = self.require_section(
            "DestinationDirs",
            "destinationdirs.dirid13",
            "the driver goes to the driver store, dirid 13",
        ) {
            if dirs.entries.is_empty() {
                self.fail(
                    &dirs.name,
                    "destinationdirs.dirid13",
                    "no destination is given",
                );
            }
            for entry in &dirs.entries {
                if entry.field(0).trim() != "13" {
                    let key = entry.key.clone().unwrap_or_default();
                    self.fail(
                        &dirs.name,
                        "destinationdirs.dirid13",
                        format!(
                            "`{key}` goes to dirid {}, not 13 (the driver store)",
                            entry.field(0)
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::check_inf::test_support::{GOOD, assert_fails, check};

    #[test]
    fn structure_rules_fail() {
        assert_fails(
            "MiniFilter.DriverFiles = 13",
            "MiniFilter.DriverFiles = 12",
            "destinationdirs.dirid13",
        );
        assert_fails(
            "[DestinationDirs]",
            "[OtherDirs]",
            "destinationdirs.dirid13",
        );
        assert_fails(
            "[SourceDisksNames]",
            "[Manufacturer]\n[SourceDisksNames]",
            "primitive.no-manufacturer",
        );
        assert_fails(
            "[SourceDisksNames]",
            "[DefaultInstall]\nCopyFiles = MiniFilter.DriverFiles\n[SourceDisksNames]",
            "primitive.decorated",
        );
        assert_fails(
            "[SourceDisksNames]",
            "[DefaultUninstall.NT$ARCH$]\nDelFiles = MiniFilter.DriverFiles\n[SourceDisksNames]",
            "primitive.no-uninstall",
        );
        let legacy = GOOD.replace(
            "[SourceDisksNames]",
            "[DefaultUninstall.NT$ARCH$]\nLegacyUninstall = 1\n[SourceDisksNames]",
        );
        assert!(check(&legacy).is_empty(), "LegacyUninstall=1 is allowed");
    }
}
