//! The instance configuration, under `Parameters\Instances` for the modern section and under
//! `Instances` for the down-level one: the `DefaultInstance`, its `Flags` and its `Altitude`, which
//! must be a real altitude (not `cargo xtask new`'s placeholder), unallocated and inside the load
//! order group's range.

use super::{
    altitudes::{ALTITUDE_REQUEST_PAGE, Group, PLACEHOLDER_ALTITUDE, allocated_to, parse_altitude},
    services::{REG_DWORD, REG_SZ, RegValue, parse_number},
    text::Checker,
};

/// Where the instance configuration lives for the modern section (24H2 and later).
pub(super) const MODERN_INSTANCES_KEY: &str = "Parameters\\Instances";

/// Where the instance configuration lives for the down-level section.
pub(super) const DOWNLEVEL_INSTANCES_KEY: &str = "Instances";

impl Checker<'_> {
    /// Checks the instance configuration under `instances_key`. Returns the default instance's
    /// altitude.
    #[expect(
        clippy::too_many_lines,
        reason = "one rule after another, in the order of the INF"
    )]
    pub(super) fn check_instances(
        &mut self,
        service_section: &str,
        values: &[RegValue],
        instances_key: &str,
        other_key: &str,
        group: Option<&Group>,
    ) -> Option<u32> {
        let key_eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        for v in values {
            let under_other = key_eq(&v.subkey, other_key)
                || v.subkey
                    .to_ascii_lowercase()
                    .starts_with(&format!("{}\\", other_key.to_ascii_lowercase()));
            if under_other {
                self.fail(&v.section, "registry.24h2", format!("`{}` is the wrong place for this section: from Windows 11 24H2 (build 25952) on the instance configuration is under Parameters\\Instances, before it under Instances; this section must use {instances_key}", v.subkey));
            }
            if key_eq(&v.name, "SupportedFeatures") && v.flags != Some(REG_DWORD) {
                self.fail(
                    &v.section,
                    "registry.supportedfeatures",
                    "SupportedFeatures must be a DWORD (0x00010001)",
                );
            }
        }
        let default = values
            .iter()
            .find(|v| key_eq(&v.subkey, instances_key) && key_eq(&v.name, "DefaultInstance"));
        let Some(default) = default else {
            self.fail(
                service_section,
                "registry.defaultinstance",
                format!("no HKR,\"{instances_key}\",\"DefaultInstance\" value in its AddReg"),
            );
            return None;
        };
        if default.flags != Some(REG_SZ) {
            self.fail(
                &default.section,
                "registry.defaultinstance",
                "DefaultInstance must be a string (0x00000000)",
            );
        }
        let default_key = format!("{instances_key}\\{}", default.value);
        let altitude = values
            .iter()
            .find(|v| key_eq(&v.subkey, &default_key) && key_eq(&v.name, "Altitude"));
        let flags = values
            .iter()
            .find(|v| key_eq(&v.subkey, &default_key) && key_eq(&v.name, "Flags"));
        if flags.is_none() {
            self.fail(
                &default.section,
                "registry.flags",
                format!(
                    "the default instance `{}` has no Flags value",
                    default.value
                ),
            );
        }
        if let Some(flags) = flags {
            if flags.flags != Some(REG_DWORD) {
                self.fail(
                    &flags.section,
                    "registry.flags",
                    "Flags must be a DWORD (0x00010001)",
                );
            }
            if parse_number(&flags.value).is_none() {
                self.fail(
                    &flags.section,
                    "registry.flags",
                    format!("Flags `{}` is not a number", flags.value),
                );
            }
        }
        let Some(altitude) = altitude else {
            self.fail(
                &default.section,
                "registry.altitude",
                format!(
                    "the default instance `{}` has no Altitude value",
                    default.value
                ),
            );
            return None;
        };
        if altitude.flags != Some(REG_SZ) {
            self.fail(
                &altitude.section,
                "registry.altitude",
                "Altitude must be a string (0x00000000), not a number",
            );
        }
        if altitude.value == PLACEHOLDER_ALTITUDE {
            let range = group.map_or_else(String::new, |g| {
                format!(
                    " ({} {}-{})",
                    g.name,
                    g.altitudes.start(),
                    g.altitudes.end()
                )
            });
            self.fail(
                &altitude.section,
                "altitude.placeholder",
                format!(
                    "the altitude is still `cargo xtask new`'s placeholder: set Instance1.Altitude. \
                     On a test machine, any altitude in the group's range{range} that Microsoft's \
                     \"Allocated filter altitudes\" page (xtask/data/allocated-altitudes.tsv) does \
                     not list, also set as ALTITUDE in the sample's test and demo; for a driver you \
                     ship, request one from Microsoft: an e-mail to fsfcomm@microsoft.com with the \
                     subject \"Filter altitude request\" and the fields listed on \
                     {ALTITUDE_REQUEST_PAGE}"
                ),
            );
            return None;
        }
        let Some(number) = parse_altitude(&altitude.value) else {
            self.fail(
                &altitude.section,
                "registry.altitude",
                format!("Altitude `{}` is not a decimal altitude", altitude.value),
            );
            return None;
        };
        if let Some((minifilter, company)) = allocated_to(&altitude.value) {
            self.fail(
                &altitude.section,
                "altitude.allocated",
                format!(
                    "Altitude {} is allocated to {minifilter} ({company}) on Microsoft's \
                     \"Allocated filter altitudes\" page: instances of two filters at one \
                     altitude fail to attach; choose an unallocated one",
                    altitude.value
                ),
            );
        }
        if let Some(g) = group
            && !g.altitudes.contains(&number)
        {
            self.fail(
                &altitude.section,
                "altitude.range",
                format!(
                    "Altitude {number} is outside {} ({}-{})",
                    g.name,
                    g.altitudes.start(),
                    g.altitudes.end()
                ),
            );
        }
        Some(number)
    }
}

#[cfg(test)]
mod tests {
    use crate::check_inf::{
        Finding,
        altitudes::{ALTITUDE_REQUEST_PAGE, PLACEHOLDER_ALTITUDE},
        test_support::{GOOD, assert_fails, check},
    };

    #[test]
    fn registry_rules_fail() {
        assert_fails(
            "HKR,\"Parameters\\Instances\",\"DefaultInstance\"",
            "HKR,\"Parameters\\Instances\",\"Default\"",
            "registry.defaultinstance",
        );
        assert_fails(
            "HKR,\"Parameters\\Instances\",\"DefaultInstance\",0x00000000",
            "HKR,\"Parameters\\Instances\",\"DefaultInstance\",0x00010001",
            "registry.defaultinstance",
        );
        assert_fails(
            "HKR,\"Parameters\\Instances\\\"%Instance1.Name%,\"Altitude\",0x00000000",
            "HKR,\"Parameters\\Instances\\\"%Instance1.Name%,\"Altitude\",0x00010001",
            "registry.altitude",
        );
        assert_fails(
            "HKR,\"Parameters\\Instances\\\"%Instance1.Name%,\"Altitude\"",
            "HKR,\"Parameters\\Instances\\\"%Instance1.Name%,\"Height\"",
            "registry.altitude",
        );
        assert_fails(
            "Instance1.Altitude = \"370210\"",
            "Instance1.Altitude = \"37x\"",
            "registry.altitude",
        );
        assert_fails(
            "Instance1.Altitude = \"370210\"",
            "Instance1.Altitude = \"265000\"",
            "altitude.range",
        );
        assert_fails(
            "HKR,\"Parameters\\Instances\\\"%Instance1.Name%,\"Flags\",0x00010001",
            "HKR,\"Parameters\\Instances\\\"%Instance1.Name%,\"Flags\",0x00000000",
            "registry.flags",
        );
        assert_fails(
            "HKR,\"Parameters\\Instances\\\"%Instance1.Name%,\"Flags\"",
            "HKR,\"Parameters\\Instances\\\"%Instance1.Name%,\"Flagz\"",
            "registry.flags",
        );
        assert_fails(
            "HKR,\"Parameters\\Instances\\\"%Instance1.Name%,\"Flags\",0x00010001,%Instance1.Flags%",
            "HKR,\"Parameters\\Instances\\\"%Instance1.Name%,\"Flags\",0x00010001,abc",
            "registry.flags",
        );
        assert_fails(
            "[MiniFilter.AddRegistry]\r\n",
            "[MiniFilter.AddRegistry]\r\nHKR,\"Parameters\",\"SupportedFeatures\",0x00000000,3\r\n",
            "registry.supportedfeatures",
        );
        assert_fails(
            "[MiniFilter.AddRegistry]\r\n",
            "[MiniFilter.AddRegistry]\r\nHKLM,\"x\",\"y\",0,1\r\n",
            "registry.hkr",
        );
        // The 24H2 rule: modern section under Instances, down-level under Parameters\Instances.
        assert_fails(
            "HKR,\"Parameters\\Instances\",\"DefaultInstance\"",
            "HKR,\"Instances\",\"DefaultInstance\"",
            "registry.24h2",
        );
        assert_fails(
            "HKR,\"Instances\",\"DefaultInstance\"",
            "HKR,\"Parameters\\Instances\",\"DefaultInstance\"",
            "registry.24h2",
        );
    }

    #[test]
    fn the_placeholder_altitude_is_refused_with_the_way_to_get_one() {
        let text = GOOD.replace(
            "Instance1.Altitude = \"370210\"",
            &format!("Instance1.Altitude = \"{PLACEHOLDER_ALTITUDE}\""),
        );
        let findings = check(&text);
        let placeholder: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.rule == "altitude.placeholder")
            .collect();
        // Once per install section (modern and down-level), and nothing else.
        assert_eq!(placeholder.len(), 2, "{findings:#?}");
        assert_eq!(findings.len(), 2, "{findings:#?}");
        for finding in placeholder {
            assert!(
                finding.message.contains("360000-389999"),
                "{}",
                finding.message
            );
            assert!(finding.message.contains("fsfcomm@microsoft.com"));
            assert!(finding.message.contains(ALTITUDE_REQUEST_PAGE));
        }
    }
}
