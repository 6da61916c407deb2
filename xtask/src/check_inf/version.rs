//! The `[Version]` section: `Signature`, `Provider`, `DriverVer`, `CatalogFile`, `PnpLockdown`,
//! and a `Class` and `ClassGuid` of one of the load order groups the samples may use
//! ([`GROUPS`]).

use super::{
    altitudes::{GROUPS, Group},
    parser::Entry,
    text::Checker,
};

impl Checker<'_> {
    pub(super) fn check_version(
        &mut self,
        expected_binary: Option<&str>,
    ) -> Option<&'static Group> {
        let version =
            self.require_section("Version", "version.section", "every INF needs [Version]")?;
        if let Some(sig) = self.require_value(version, "Signature", "version.signature")
            && !sig.value().eq_ignore_ascii_case("$Windows NT$")
        {
            self.fail(
                &version.name,
                "version.signature",
                format!("Signature is `{}`, not \"$Windows NT$\"", sig.value()),
            );
        }
        if let Some(provider) = self.require_value(version, "Provider", "version.provider")
            && provider.value().trim().is_empty()
        {
            self.fail(
                &version.name,
                "version.provider",
                "Provider is empty: a primitive driver must name its provider",
            );
        }
        if let Some(driver_ver) = self.require_value(version, "DriverVer", "version.driverver") {
            let ok = driver_ver.fields.len() == 2 && {
                let date: Vec<&str> = driver_ver.field(0).split('/').collect();
                let ver: Vec<&str> = driver_ver.field(1).split('.').collect();
                date.len() == 3
                    && date
                        .iter()
                        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                    && ver.len() == 4
                    && ver.iter().all(|p| p.parse::<u16>().is_ok())
            };
            if !ok {
                self.fail(
                    &version.name,
                    "version.driverver",
                    format!(
                        "DriverVer `{}` is not `mm/dd/yyyy,w.x.y.z`",
                        driver_ver.value()
                    ),
                );
            }
        }
        if let Some(catalog) = self.require_value(version, "CatalogFile", "version.catalogfile")
            && let Some(binary) = expected_binary
        {
            let want = format!("{}.cat", binary.trim_end_matches(".sys"));
            if !catalog.value().eq_ignore_ascii_case(&want) {
                self.fail(
                    &version.name,
                    "version.catalogfile",
                    format!("CatalogFile is `{}`, expected `{want}`", catalog.value()),
                );
            }
        }
        if let Some(lockdown) = self.require_value(version, "PnpLockdown", "version.pnplockdown")
            && lockdown.value().trim() != "1"
        {
            self.fail(
                &version.name,
                "version.pnplockdown",
                format!("PnpLockdown is `{}`, must be 1", lockdown.value()),
            );
        }
        let class = self
            .require_value(version, "Class", "version.class")
            .map(Entry::value);
        let guid = self
            .require_value(version, "ClassGuid", "version.class")
            .map(Entry::value);
        let (Some(class), Some(guid)) = (class, guid) else {
            return None;
        };
        let group = GROUPS.iter().find(|g| g.class.eq_ignore_ascii_case(&class));
        match group {
            None => {
                let known: Vec<&str> = GROUPS.iter().map(|g| g.class).collect();
                self.fail(
                    &version.name,
                    "version.class",
                    format!(
                        "Class `{class}` is not a minifilter class of the samples ({})",
                        known.join(", ")
                    ),
                );
                None
            }
            Some(g) if !g.class_guid.eq_ignore_ascii_case(&guid) => {
                self.fail(
                    &version.name,
                    "version.class",
                    format!(
                        "ClassGuid `{guid}` is not the GUID of class {}: {}",
                        g.class, g.class_guid
                    ),
                );
                None
            }
            Some(g) => Some(g),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::check_inf::test_support::{GOOD, assert_fails, check};

    #[test]
    fn version_rules_fail() {
        assert_fails(
            "Signature   = \"$Windows NT$\"",
            "Signature = \"$Chicago$\"",
            "version.signature",
        );
        assert_fails(
            "Provider    = %ProviderString%",
            "Provider = \"\"",
            "version.provider",
        );
        assert_fails("DriverVer   = ", "DriverVerX = ", "version.driverver");
        assert_fails(",0.1.0.0", ",0.1.0", "version.driverver");
        assert_fails(
            "CatalogFile = rs_passthrough.cat",
            "CatalogFile = other.cat",
            "version.catalogfile",
        );
        assert_fails("PnpLockdown = 1", "PnpLockdown = 0", "version.pnplockdown");
        assert_fails("PnpLockdown = 1", "", "version.pnplockdown");
        assert_fails(
            "Class       = \"ActivityMonitor\"",
            "Class = \"Bogus\"",
            "version.class",
        );
        assert_fails(
            "{b86dff51-a31e-4bac-b3cf-e8cfe75c9fc2}",
            "{3e3f0674-c83c-4558-bb26-9820e1eba5c5}",
            "version.class",
        );
        assert_fails("[Version]", "[NotVersion]", "version.section");
    }

    #[test]
    fn class_must_match_group() {
        let text = GOOD
            .replace(
                "Class       = \"ActivityMonitor\"",
                "Class = \"ContentScreener\"",
            )
            .replace(
                "{b86dff51-a31e-4bac-b3cf-e8cfe75c9fc2}",
                "{3e3f0674-c83c-4558-bb26-9820e1eba5c5}",
            );
        let rules: Vec<_> = check(&text).iter().map(|f| f.rule).collect();
        assert!(rules.contains(&"service.loadordergroup"), "{rules:?}");
        assert!(rules.contains(&"altitude.range"), "{rules:?}");
    }
}
