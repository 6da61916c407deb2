//! Driver package isolation, as `infverif /w` enforces it (error 1323: "Service registry key must
//! be under the Parameters subkey"): every install section used on builds at or above the
//! `/wbuild` build ([`wbuild_of`] the root `Makefile.toml`, [`DEFAULT_WBUILD`] without it) writes
//! service registry values under `Parameters` only.

use super::{services::RegValue, text::Checker};

/// `infverif /wbuild`'s default: the build from which `/w` enforces the Windows Driver rules
/// (Microsoft's page "Running `InfVerif` from the Command Line").
pub(super) const DEFAULT_WBUILD: u32 = 17763;

/// The `/wbuild <major.minor.build>` of `WDK_BUILD_ADDITIONAL_INFVERIF_FLAGS` in the root
/// `Makefile.toml` text (the flags the cargo-make flow passes to infverif), or infverif's default.
/// The `[env]` entry is a string, or a cargo-make conditional value (`{ value = "...", condition =
/// ... }`), read here by its `value`: the flags the flow uses when the environment sets none.
pub(super) fn wbuild_of(makefile: &str) -> u32 {
    let Ok(makefile) = toml::from_str::<toml::Table>(makefile) else {
        return DEFAULT_WBUILD;
    };
    let flags = makefile
        .get("env")
        .and_then(|env| env.get("WDK_BUILD_ADDITIONAL_INFVERIF_FLAGS"))
        .and_then(|entry| match entry {
            toml::Value::String(flags) => Some(flags.as_str()),
            toml::Value::Table(conditional) => conditional.get("value")?.as_str(),
            _ => None,
        });
    flags
        .and_then(|flags| {
            let mut words = flags.split_whitespace();
            words.find(|w| w.eq_ignore_ascii_case("/wbuild"))?;
            words.next()?.rsplit('.').next()?.parse().ok()
        })
        .unwrap_or(DEFAULT_WBUILD)
}

impl Checker<'_> {
    /// Driver package isolation as `infverif /w` enforces it (error 1323): the service install
    /// section of an install section used on builds from `from_build` on, when those reach the
    /// `/wbuild` build, writes its service registry values under `Parameters` only.
    pub(super) fn check_isolation(
        &mut self,
        values: &[RegValue],
        service: &str,
        from_build: u32,
        wbuild: u32,
    ) {
        let used = if from_build == 0 {
            "on every build".to_owned()
        } else {
            format!("from build {from_build}")
        };
        for v in values {
            let subkey = v.subkey.to_ascii_lowercase();
            if subkey != "parameters" && !subkey.starts_with("parameters\\") {
                self.fail(
                    &v.section,
                    "registry.parameters",
                    format!(
                        "HKR,\"{}\",\"{}\" (service section {service}, used {used}): \
                         infverif /w (error 1323) requires service registry values under the \
                         Parameters subkey on builds from /wbuild {wbuild} on",
                        v.subkey, v.name
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT_WBUILD, wbuild_of};
    use crate::check_inf::{
        install::MODERN_BUILD,
        test_support::{BINARY, GOOD, assert_fails, expected},
        text::{Expected, check_text},
    };

    #[test]
    fn service_values_outside_parameters_fail_from_wbuild_on() {
        // With infverif's default /wbuild (17763), the down-level section's Instances fail.
        let default_wbuild = Expected {
            wbuild: DEFAULT_WBUILD,
            ..expected(BINARY)
        };
        let findings = check_text("test.inx", GOOD, Some(&default_wbuild)).1;
        assert!(
            findings.iter().any(|f| f.rule == "registry.parameters"),
            "{findings:#?}"
        );
        // With /wbuild 10.0.25952 only the modern section is held to it.
        assert_fails(
            "HKR,\"Parameters\",\"SupportedFeatures\"",
            "HKR,,\"SupportedFeatures\"",
            "registry.parameters",
        );
        assert_eq!(
            wbuild_of("[env]\nWDK_BUILD_ADDITIONAL_INFVERIF_FLAGS = \"/wbuild 10.0.25952\""),
            25952
        );
        // cargo-make's conditional form, as Makefile.toml has it: its value counts.
        assert_eq!(
            wbuild_of(
                "[env]\nWDK_BUILD_ADDITIONAL_INFVERIF_FLAGS = { value = \"/v /wbuild 10.0.25952\", \
                 condition = { env_not_set = [\"WDK_BUILD_ADDITIONAL_INFVERIF_FLAGS\"] } }"
            ),
            25952
        );
        assert_eq!(wbuild_of("[env]\n"), DEFAULT_WBUILD);
        assert_eq!(
            wbuild_of("[env]\nWDK_BUILD_ADDITIONAL_INFVERIF_FLAGS = \"/v\""),
            DEFAULT_WBUILD
        );
        assert_eq!(
            wbuild_of(include_str!("../../../Makefile.toml")),
            MODERN_BUILD,
            "the cargo-make flow's infverif must enforce /w from the modern section's build"
        );
    }
}
