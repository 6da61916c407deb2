//! The service install section: its type, start, error control, `FltMgr` dependency, load order
//! group and binary, and the registry values its `AddReg` sections write ([`RegValue`]), with
//! `SupportedFeatures` where Filter Manager reads it.

use super::{
    altitudes::{GROUPS, Group},
    parser::Section,
    text::Checker,
};

/// `FLG_ADDREG_TYPE_SZ`.
pub(super) const REG_SZ: u32 = 0x0000_0000;

/// `FLG_ADDREG_TYPE_DWORD`.
pub(super) const REG_DWORD: u32 = 0x0001_0001;

/// One value from an `AddReg` section: `HKR,subkey,name,flags,value`.
pub(super) struct RegValue {
    pub(super) section: String,
    pub(super) subkey: String,
    pub(super) name: String,
    pub(super) flags: Option<u32>,
    pub(super) value: String,
}

/// A number as INF fields write it: decimal, or hexadecimal after `0x`.
pub(super) fn parse_number(text: &str) -> Option<u32> {
    let t = text.trim();
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else {
        t.parse().ok()
    }
}

/// The `.sys` file named by `ServiceBinary = %13%\name.sys`.
pub(super) fn binary_file_name(service_binary: &str) -> &str {
    service_binary.rsplit('\\').next().unwrap_or(service_binary)
}

impl<'a> Checker<'a> {
    /// Checks a service install section. Returns its `AddReg` values.
    #[expect(
        clippy::too_many_lines,
        reason = "one rule after another, in the order of the INF"
    )]
    pub(super) fn check_service(
        &mut self,
        service: &'a Section,
        group: Option<&Group>,
        binary: Option<&str>,
    ) -> Vec<RegValue> {
        let numeric = [
            (
                "ServiceType",
                2,
                "service.type",
                "2 (SERVICE_FILE_SYSTEM_DRIVER)",
            ),
            ("StartType", 3, "service.start", "3 (SERVICE_DEMAND_START)"),
            (
                "ErrorControl",
                1,
                "service.errorcontrol",
                "1 (SERVICE_ERROR_NORMAL)",
            ),
        ];
        for (key, want, rule, meaning) in numeric {
            if let Some(entry) = self.require_value(service, key, rule)
                && parse_number(&entry.value()) != Some(want)
            {
                self.fail(
                    &service.name,
                    rule,
                    format!("{key} is `{}`, must be {meaning}", entry.value()),
                );
            }
        }
        if let Some(deps) = self.require_value(service, "Dependencies", "service.dependencies")
            && !deps
                .fields
                .iter()
                .any(|d| d.trim().eq_ignore_ascii_case("FltMgr"))
        {
            self.fail(
                &service.name,
                "service.dependencies",
                format!("Dependencies is `{}`, must include FltMgr", deps.value()),
            );
        }
        if let Some(entry) = self.require_value(service, "LoadOrderGroup", "service.loadordergroup")
        {
            let value = entry.value();
            match GROUPS.iter().find(|g| g.name.eq_ignore_ascii_case(&value)) {
                None => self.fail(
                    &service.name,
                    "service.loadordergroup",
                    format!(
                        "LoadOrderGroup `{value}` is not one of the samples' minifilter groups"
                    ),
                ),
                Some(g) => {
                    if let Some(class_group) = group
                        && class_group.name != g.name
                    {
                        self.fail(
                            &service.name,
                            "service.loadordergroup",
                            format!(
                                "LoadOrderGroup `{value}` does not match Class {} (group {})",
                                class_group.class, class_group.name
                            ),
                        );
                    }
                }
            }
        }
        if let Some(entry) = self.require_value(service, "ServiceBinary", "service.binary") {
            let value = entry.value();
            let ok_dir = value.starts_with("%13%\\");
            let file = binary_file_name(&value);
            if !ok_dir {
                self.fail(
                    &service.name,
                    "service.binary",
                    format!("ServiceBinary `{value}` is not in the driver store (%13%\\name.sys)"),
                );
            }
            if let Some(b) = binary
                && !file.eq_ignore_ascii_case(b)
            {
                self.fail(
                    &service.name,
                    "service.binary",
                    format!("ServiceBinary names `{file}`, expected `{b}`"),
                );
            }
        }
        let mut values = Vec::new();
        let Some(addreg) = self.require_value(service, "AddReg", "service.addreg") else {
            return values;
        };
        for name in addreg.fields.iter().map(|n| n.trim().to_string()) {
            let Some(section) = self.require_section(&name, "service.addreg", "AddReg names it")
            else {
                continue;
            };
            for entry in &section.entries {
                if entry.key.is_some() || !entry.field(0).eq_ignore_ascii_case("HKR") {
                    self.fail(
                        &section.name,
                        "registry.hkr",
                        format!("line {}: a service AddReg line starts with HKR", entry.line),
                    );
                    continue;
                }
                values.push(RegValue {
                    section: section.name.clone(),
                    subkey: entry.field(1).trim().trim_end_matches('\\').to_string(),
                    name: entry.field(2).trim().to_string(),
                    flags: if entry.field(3).trim().is_empty() {
                        Some(REG_SZ)
                    } else {
                        parse_number(entry.field(3))
                    },
                    value: entry
                        .fields
                        .get(4..)
                        .map(|v| v.join(","))
                        .unwrap_or_default(),
                });
            }
        }
        values
    }

    /// `SupportedFeatures` (a DWORD) is where Filter Manager reads it: under `Parameters` from
    /// 24H2 on, at the service key before, as Microsoft's minifilter INFs write it.
    pub(super) fn check_supported_features(
        &mut self,
        values: &[RegValue],
        service: &str,
        subkey: &str,
    ) {
        let found = values.iter().any(|v| {
            v.subkey.eq_ignore_ascii_case(subkey)
                && v.name.eq_ignore_ascii_case("SupportedFeatures")
        });
        if !found {
            self.fail(
                service,
                "registry.supportedfeatures",
                format!("no HKR,\"{subkey}\",\"SupportedFeatures\" value in its AddReg"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::check_inf::test_support::assert_fails;

    #[test]
    fn supported_features_is_required() {
        assert_fails(
            "HKR,\"Parameters\",\"SupportedFeatures\",0x00010001,%SupportedFeatures%\r\n",
            "",
            "registry.supportedfeatures",
        );
        assert_fails(
            "HKR,,\"SupportedFeatures\",0x00010001,%SupportedFeatures%\r\n",
            "",
            "registry.supportedfeatures",
        );
    }

    #[test]
    fn service_rules_fail() {
        assert_fails("ServiceType    = 2 ", "ServiceType    = 1 ", "service.type");
        assert_fails(
            "StartType      = 3 ",
            "StartType      = 2 ",
            "service.start",
        );
        assert_fails(
            "ErrorControl   = 1 ",
            "ErrorControl   = 3 ",
            "service.errorcontrol",
        );
        assert_fails(
            "Dependencies   = \"FltMgr\"",
            "Dependencies   = \"Other\"",
            "service.dependencies",
        );
        assert_fails(
            "LoadOrderGroup = \"FSFilter Activity Monitor\"",
            "LoadOrderGroup = \"FSFilter Bogus\"",
            "service.loadordergroup",
        );
        assert_fails(
            "LoadOrderGroup = \"FSFilter Activity Monitor\"",
            "LoadOrderGroup = \"FSFilter Content Screener\"",
            "service.loadordergroup",
        );
        assert_fails(
            "ServiceBinary  = %13%\\rs_passthrough.sys",
            "ServiceBinary  = %12%\\rs_passthrough.sys",
            "service.binary",
        );
        assert_fails(
            "ServiceBinary  = %13%\\rs_passthrough.sys",
            "ServiceBinary  = %13%\\other.sys",
            "service.binary",
        );
        assert_fails(
            "AddReg         = MiniFilter.AddRegistry",
            "AddRegX = MiniFilter.AddRegistry",
            "service.addreg",
        );
        assert_fails(
            "AddReg         = MiniFilter.AddRegistry",
            "AddReg = Missing.AddRegistry",
            "service.addreg",
        );
        assert_fails(
            "AddReg         = MiniFilterDownlevel.AddRegistry",
            "AddReg = MiniFilter.AddRegistry",
            "registry.24h2",
        );
    }
}
