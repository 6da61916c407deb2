//! One INF's text against every rule of check-inf: [`check_text`] parses it and runs the checks of
//! the other parts in the order of the INF, collecting every [`Finding`] in a [`Checker`], and
//! returns what the workspace checks need to know of the file ([`InfFacts`]).

use super::{
    Finding,
    install::{DOWNLEVEL_INSTALL, MODERN_BUILD, MODERN_INSTALL, install_build},
    instances::{DOWNLEVEL_INSTANCES_KEY, MODERN_INSTANCES_KEY},
    isolation::DEFAULT_WBUILD,
    parser::{Entry, Inf, Section, parse},
    services::binary_file_name,
};
use crate::exports::WinVer;

/// What the checks of one file learnt, for the workspace-wide checks.
#[derive(Debug, Default, Clone)]
pub(super) struct InfFacts {
    pub(super) service_name: Option<String>,
    pub(super) binary: Option<String>,
    pub(super) altitude: Option<u32>,
    /// The build the down-level install section is decorated with.
    pub(super) min_build: Option<u32>,
}

/// Collects the findings of one file.
pub(super) struct Checker<'a> {
    file: &'a str,
    pub(super) inf: &'a Inf,
    findings: Vec<Finding>,
}

impl<'a> Checker<'a> {
    pub(super) fn fail(&mut self, section: &str, rule: &'static str, message: impl Into<String>) {
        self.findings.push(Finding {
            file: self.file.to_string(),
            section: section.to_string(),
            rule,
            message: message.into(),
        });
    }

    /// The section `name`, or a finding under `rule` if it is missing.
    pub(super) fn require_section(
        &mut self,
        name: &str,
        rule: &'static str,
        why: &str,
    ) -> Option<&'a Section> {
        let found = self.inf.section(name);
        if found.is_none() {
            self.fail(name, rule, format!("section is missing: {why}"));
        }
        found
    }

    /// The single value of `key` in `section`, or a finding under `rule`.
    pub(super) fn require_value(
        &mut self,
        section: &'a Section,
        key: &str,
        rule: &'static str,
    ) -> Option<&'a Entry> {
        let mut values = section.values(key);
        let first = values.next();
        match first {
            None => self.fail(&section.name, rule, format!("`{key}` is missing")),
            Some(_) if values.next().is_some() => {
                self.fail(
                    &section.name,
                    rule,
                    format!("`{key}` is given more than once"),
                );
            }
            Some(_) => {}
        }
        first
    }
}

/// What a sample expects of its INF.
#[derive(Debug, Clone)]
pub(super) struct Expected {
    pub(super) binary: String,
    /// The minimum Windows version the driver needs, if known.
    pub(super) min_windows: Option<WinVer>,
    /// The build from which infverif /w enforces driver package isolation.
    pub(super) wbuild: u32,
}

/// Checks one INF's text. `expected` is the sample it belongs to, if known.
#[expect(
    clippy::too_many_lines,
    reason = "one rule after another, in the order of the INF"
)]
pub(super) fn check_text(
    file: &str,
    text: &str,
    expected: Option<&Expected>,
) -> (InfFacts, Vec<Finding>) {
    let (inf, syntax) = parse(text);
    let mut c = Checker {
        file,
        inf: &inf,
        findings: Vec::new(),
    };
    for e in syntax {
        c.fail(&format!("line {}", e.line), "syntax", e.message);
    }
    let binary = expected.map(|e| e.binary.as_str());
    let wbuild = expected.map_or(DEFAULT_WBUILD, |e| e.wbuild);
    let group = c.check_version(binary);
    c.check_structure();

    let mut facts = InfFacts::default();
    let modern = c.check_install(MODERN_INSTALL, "install.modern", binary, None);
    if let Some(service) = modern {
        if let Some(entry) = service.value("ServiceBinary") {
            facts.binary = Some(binary_file_name(&entry.value()).to_string());
        }
        if let Some(services) = inf.section(&format!("{MODERN_INSTALL}.Services"))
            && let Some(add) = services.value("AddService")
        {
            facts.service_name = Some(add.field(0).to_string());
        }
    }
    let service_name = facts.service_name.clone();

    // The down-level install section: the one other DefaultInstall.NT$ARCH$ section.
    let downlevel_names: Vec<&str> = inf
        .sections
        .iter()
        .map(|s| s.name.as_str())
        .filter(|name| {
            let lower = name.to_ascii_lowercase();
            lower.starts_with(&DOWNLEVEL_INSTALL.to_ascii_lowercase())
                && !lower.ends_with(".services")
                && !name.eq_ignore_ascii_case(MODERN_INSTALL)
        })
        .collect();
    let downlevel_name = match downlevel_names[..] {
        [name] => name.to_owned(),
        [] => DOWNLEVEL_INSTALL.to_owned(),
        _ => {
            c.fail(
                DOWNLEVEL_INSTALL,
                "install.downlevel",
                format!("one down-level install section, not {downlevel_names:?}"),
            );
            downlevel_names[0].to_owned()
        }
    };
    let downlevel = c.check_install(
        &downlevel_name,
        "install.downlevel",
        binary,
        service_name.as_deref(),
    );
    if downlevel.is_some() {
        match install_build(&downlevel_name) {
            None => c.fail(
                &downlevel_name,
                "install.min-windows",
                "the down-level install section states no minimum Windows build: decorate it \
                 [DefaultInstall.NT$ARCH$.10.0...<build>] with the build the driver needs",
            ),
            Some(build) if build >= MODERN_BUILD => c.fail(
                &downlevel_name,
                "install.min-windows",
                format!("the down-level section's build {build} is not below {MODERN_BUILD}"),
            ),
            Some(build) => {
                facts.min_build = Some(build);
                if let Some(needed) = expected.and_then(|e| e.min_windows)
                    && needed.number != (10, 0, build)
                {
                    c.fail(
                        &downlevel_name,
                        "install.min-windows",
                        format!(
                            "the INF states {} but the driver needs {needed} (the highest of \
                             primitive drivers' Windows 10 version 1903 and the documented \
                             minimums of its imports, WDK-mode runtime included): use \
                             [DefaultInstall.NT$ARCH$.10.0...{}]",
                            WinVer::windows10_build(build),
                            needed.number.2
                        ),
                    );
                }
            }
        }
    }

    let mut altitudes = Vec::new();
    if let Some(service) = modern {
        let values = c.check_service(service, group, binary);
        c.check_isolation(&values, &service.name, MODERN_BUILD, wbuild);
        c.check_supported_features(&values, &service.name, "Parameters");
        altitudes.push(c.check_instances(
            &service.name,
            &values,
            MODERN_INSTANCES_KEY,
            DOWNLEVEL_INSTANCES_KEY,
            group,
        ));
    }
    if let Some(service) = downlevel {
        if modern.is_some_and(|m| m.name.eq_ignore_ascii_case(&service.name)) {
            c.fail(&service.name, "registry.24h2", "the modern and down-level sections need separate service install sections: the instance configuration is under Parameters\\Instances from 24H2 on, under Instances before");
        } else {
            let values = c.check_service(service, group, binary);
            let build = install_build(&downlevel_name).unwrap_or(0);
            // Used from its build up to (not including) the modern section's.
            if MODERN_BUILD > wbuild {
                c.check_isolation(&values, &service.name, build, wbuild);
            }
            c.check_supported_features(&values, &service.name, "");
            altitudes.push(c.check_instances(
                &service.name,
                &values,
                DOWNLEVEL_INSTANCES_KEY,
                MODERN_INSTANCES_KEY,
                group,
            ));
        }
        for key in ["ServiceBinary", "LoadOrderGroup"] {
            let a = modern.and_then(|m| m.value(key)).map(Entry::value);
            let b = service.value(key).map(Entry::value);
            if a.is_some() && b.is_some() && a != b {
                c.fail(
                    &service.name,
                    "install.consistent",
                    format!("{key} differs between the modern and down-level service sections"),
                );
            }
        }
    }
    if let [Some(a), Some(b)] = altitudes[..]
        && a != b
    {
        c.fail(
            &downlevel_name,
            "install.consistent",
            format!("altitude {b} differs from the modern section's {a}"),
        );
    }
    facts.altitude = altitudes.iter().flatten().next().copied();
    (facts, c.findings)
}

#[cfg(test)]
mod tests {
    use super::check_text;
    use crate::check_inf::test_support::{BINARY, GOOD, check, expected};

    #[test]
    fn good_inf_facts() {
        let (facts, findings) = check_text("test.inx", GOOD, Some(&expected(BINARY)));
        assert!(findings.is_empty(), "{findings:#?}");
        assert_eq!(facts.service_name.as_deref(), Some("RsPassthrough"));
        assert_eq!(facts.altitude, Some(370_210));
    }

    #[test]
    fn sections_must_agree() {
        let text = GOOD.replace(
            "HKR,\"Instances\\\"%Instance1.Name%,\"Altitude\",0x00000000,%Instance1.Altitude%",
            "HKR,\"Instances\\\"%Instance1.Name%,\"Altitude\",0x00000000,\"370299\"",
        );
        assert!(check(&text).iter().any(|f| f.rule == "install.consistent"));
    }
}
