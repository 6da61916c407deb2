//! The two install sections, the modern one ([`MODERN_INSTALL`], Windows 11 24H2 and later) and
//! the down-level one ([`DOWNLEVEL_INSTALL`], decorated with the minimum Windows build the driver
//! needs): each copies the driver and names its `.Services` section, which installs one service.

use super::{parser::Section, text::Checker};

/// The install section for Windows 11 24H2 (build 25952) and later.
pub(super) const MODERN_INSTALL: &str = "DefaultInstall.NT$ARCH$.10.0...25952";

/// The build of [`MODERN_INSTALL`]: Windows 11 24H2's.
pub(super) const MODERN_BUILD: u32 = 25952;

/// How every down-level install section name starts (builds before 25952); the decoration after
/// it, `.10.0...<build>`, states the driver's minimum Windows build.
pub(super) const DOWNLEVEL_INSTALL: &str = "DefaultInstall.NT$ARCH$";

/// The build a `DefaultInstall.NT$ARCH$.10.0...<build>` section name is decorated with (the
/// `TargetOSVersion` `NT<arch>.<major>.<minor>.<product type>.<suite mask>.<build>`); `None` when it
/// states no build.
pub(super) fn install_build(name: &str) -> Option<u32> {
    let decoration = name.get(DOWNLEVEL_INSTALL.len()..)?.strip_prefix('.')?;
    let parts: Vec<&str> = decoration.split('.').collect();
    match parts[..] {
        ["10", "0", _, _, build] => build.parse().ok(),
        _ => None,
    }
}

impl<'a> Checker<'a> {
    /// Checks one install section (modern or down-level) and its `.Services` section. Returns the
    /// service install section it names.
    #[expect(
        clippy::too_many_lines,
        reason = "one rule after another, in the order of the INF"
    )]
    pub(super) fn check_install(
        &mut self,
        install_name: &str,
        rule: &'static str,
        binary: Option<&str>,
        service_name: Option<&str>,
    ) -> Option<&'a Section> {
        let install = self.require_section(
            install_name,
            rule,
            "the modern minifilter INF has both the 10.0...25952 section and the down-level one",
        )?;
        if let Some(copy) = self.require_value(install, "CopyFiles", "install.copyfiles") {
            let lists = copy.fields.clone();
            let mut copies_binary = false;
            for list in lists.iter().map(|l| l.trim()) {
                if list.starts_with('@') {
                    copies_binary |= binary.is_some_and(|b| list[1..].eq_ignore_ascii_case(b));
                    continue;
                }
                let dirs = self.inf.section("DestinationDirs");
                let has_dir = dirs.is_some_and(|d| {
                    d.value(list).is_some() || d.value("DefaultDestDir").is_some()
                });
                if !has_dir {
                    self.fail(
                        &install.name,
                        "install.copyfiles",
                        format!("file list `{list}` has no DestinationDirs entry"),
                    );
                }
                match self.inf.section(list) {
                    None => self.fail(
                        &install.name,
                        "install.copyfiles",
                        format!("file list section [{list}] is missing"),
                    ),
                    Some(files) => {
                        copies_binary |= files.entries.iter().any(|e| {
                            binary.is_some_and(|b| {
                                e.key.is_none() && e.field(0).eq_ignore_ascii_case(b)
                            })
                        });
                    }
                }
            }
            if let Some(b) = binary {
                if !copies_binary {
                    self.fail(
                        &install.name,
                        "install.copyfiles",
                        format!("CopyFiles does not copy {b}"),
                    );
                }
                let in_source = self
                    .inf
                    .section("SourceDisksFiles")
                    .is_some_and(|s| s.value(b).is_some());
                if !in_source {
                    self.fail(
                        "SourceDisksFiles",
                        "install.copyfiles",
                        format!("{b} is not listed in [SourceDisksFiles]"),
                    );
                }
            }
        }
        let services_section = format!("{install_name}.Services");
        let services = self.require_section(
            &services_section,
            rule,
            "the install section needs its .Services section with AddService",
        )?;
        let mut adds = services.values("AddService");
        let Some(add) = adds.next() else {
            self.fail(
                &services.name,
                "services.addservice",
                "AddService is missing",
            );
            return None;
        };
        if adds.next().is_some() {
            self.fail(
                &services.name,
                "services.addservice",
                "a sample installs exactly one service",
            );
        }
        if let Some(name) = service_name
            && add.field(0) != name
        {
            self.fail(
                &services.name,
                "services.addservice",
                format!(
                    "AddService installs `{}`, expected service `{name}`",
                    add.field(0)
                ),
            );
        }
        let section_name = add.field(2).trim().to_string();
        if section_name.is_empty() {
            self.fail(
                &services.name,
                "services.addservice",
                "AddService names no service install section",
            );
            return None;
        }
        self.require_section(&section_name, "services.addservice", "AddService names it")
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        check_inf::{
            test_support::{BINARY, GOOD, assert_fails, expected},
            text::{Expected, check_text},
        },
        exports::WinVer,
    };

    #[test]
    fn stated_minimum_must_match_the_driver_needs() {
        // The passthrough INF states 2004; a driver that needs a later build fails.
        let needs_more = Expected {
            min_windows: Some(WinVer::new((10, 0, 22000), "Windows 11")),
            ..expected(BINARY)
        };
        let findings = check_text("test.inx", GOOD, Some(&needs_more)).1;
        assert!(
            findings
                .iter()
                .any(|f| f.rule == "install.min-windows" && f.message.contains("10.0...22000")),
            "{findings:#?}"
        );
        // Stating more than the driver needs refuses Windows versions it could run on.
        assert_fails(
            "DefaultInstall.NT$ARCH$.10.0...19041",
            "DefaultInstall.NT$ARCH$.10.0...22000",
            "install.min-windows",
        );
        // Stating nothing installs it anywhere.
        assert_fails(
            "DefaultInstall.NT$ARCH$.10.0...19041",
            "DefaultInstall.NT$ARCH$",
            "install.min-windows",
        );
    }

    #[test]
    fn install_rules_fail() {
        assert_fails(
            "[DefaultInstall.NT$ARCH$.10.0...25952]",
            "[DefaultInstall.NT$ARCH$.10.0...22000]",
            "install.modern",
        );
        assert_fails(
            "[DefaultInstall.NT$ARCH$.10.0...25952.Services]",
            "[Other.Services]",
            "install.modern",
        );
        assert_fails(
            "DefaultInstall.NT$ARCH$.10.0...19041",
            "DefaultInstall.NT$ARCH$.10.0...30000",
            "install.min-windows",
        );
        assert_fails(
            "[DefaultInstall.NT$ARCH$.10.0...19041.Services]",
            "[Other2.Services]",
            "install.downlevel",
        );
        assert_fails(
            "[MiniFilter.DriverFiles]\r\nrs_passthrough.sys",
            "[MiniFilter.DriverFiles]\r\nother.sys",
            "install.copyfiles",
        );
        assert_fails(
            "rs_passthrough.sys = 1,,",
            "other.sys = 1,,",
            "install.copyfiles",
        );
        assert_fails(
            "AddService = %ServiceName%,,MiniFilterDownlevel.Service",
            "AddService = Other,,MiniFilterDownlevel.Service",
            "services.addservice",
        );
        assert_fails(
            "AddService = %ServiceName%,,MiniFilter.Service",
            "AddService = %ServiceName%,,Missing.Service",
            "services.addservice",
        );
    }
}
