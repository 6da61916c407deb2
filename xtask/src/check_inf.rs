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

use std::{
    collections::{BTreeMap, HashMap},
    fmt, fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use crate::exports::{self, WinVer};

/// The install section for Windows 11 24H2 (build 25952) and later.
const MODERN_INSTALL: &str = "DefaultInstall.NT$ARCH$.10.0...25952";
/// The build of [`MODERN_INSTALL`]: Windows 11 24H2's.
const MODERN_BUILD: u32 = 25952;
/// How every down-level install section name starts (builds before 25952); the decoration after
/// it, `.10.0...<build>`, states the driver's minimum Windows build.
const DOWNLEVEL_INSTALL: &str = "DefaultInstall.NT$ARCH$";
/// `infverif /wbuild`'s default: the build from which `/w` enforces the Windows Driver rules
/// (Microsoft's page "Running `InfVerif` from the Command Line").
const DEFAULT_WBUILD: u32 = 17763;
/// Microsoft's "Allocated filter altitudes" page as data (its source is in its first line).
const ALLOCATED_ALTITUDES: &str = include_str!("../data/allocated-altitudes.tsv");
/// Where the instance configuration lives for the modern section (24H2 and later).
const MODERN_INSTANCES_KEY: &str = "Parameters\\Instances";
/// Where the instance configuration lives for the down-level section.
const DOWNLEVEL_INSTANCES_KEY: &str = "Instances";
/// The altitude `cargo xtask new` writes into a new INF: not an altitude, so the INF cannot be
/// installed by mistake, and check-inf says how to get a real one.
pub(crate) const PLACEHOLDER_ALTITUDE: &str = "SET-AN-ALTITUDE";
/// Microsoft's page on requesting an altitude.
const ALTITUDE_REQUEST_PAGE: &str =
    "https://learn.microsoft.com/windows-hardware/drivers/ifs/minifilter-altitude-request";
/// `FLG_ADDREG_TYPE_SZ`.
const REG_SZ: u32 = 0x0000_0000;
/// `FLG_ADDREG_TYPE_DWORD`.
const REG_DWORD: u32 = 0x0001_0001;

/// A load order group a minifilter sample may use: its setup class and altitude range.
pub(crate) struct Group {
    /// The `LoadOrderGroup` name.
    pub(crate) name: &'static str,
    /// The INF's `Class`.
    pub(crate) class: &'static str,
    /// The INF's `ClassGuid`.
    pub(crate) class_guid: &'static str,
    /// The group's altitude range.
    pub(crate) altitudes: std::ops::RangeInclusive<u32>,
}

/// The load order groups the samples may use, with the ranges of Microsoft's "Allocated filter
/// altitudes" page (a test checks them against `xtask/data/allocated-altitudes.tsv`).
pub(crate) const GROUPS: &[Group] = &[
    Group {
        name: "FSFilter Activity Monitor",
        class: "ActivityMonitor",
        class_guid: "{b86dff51-a31e-4bac-b3cf-e8cfe75c9fc2}",
        altitudes: 360_000..=389_999,
    },
    Group {
        name: "FSFilter Anti-Virus",
        class: "AntiVirus",
        class_guid: "{b1d1a169-c54f-4379-81db-bee7d88d7454}",
        altitudes: 320_000..=329_998,
    },
    Group {
        name: "FSFilter Content Screener",
        class: "ContentScreener",
        class_guid: "{3e3f0674-c83c-4558-bb26-9820e1eba5c5}",
        altitudes: 260_000..=269_998,
    },
];

// ------------------------------------------------------------------------------------------------
// Parsing
// ------------------------------------------------------------------------------------------------

/// One logical line of a section (continuations joined), split into key and fields.
#[derive(Debug, Clone)]
struct Entry {
    /// 1-based line number where the logical line starts.
    line: usize,
    /// The key before `=`, unquoted, if the line has one.
    key: Option<String>,
    /// The comma-separated fields after `=` (or of the whole line), unquoted and substituted.
    fields: Vec<String>,
}

impl Entry {
    /// The whole value, fields joined by commas.
    fn value(&self) -> String {
        self.fields.join(",")
    }

    fn field(&self, index: usize) -> &str {
        self.fields.get(index).map_or("", String::as_str)
    }
}

/// One section: its name as first written and its entries (all occurrences merged).
#[derive(Debug, Clone)]
struct Section {
    name: String,
    entries: Vec<Entry>,
}

impl Section {
    /// The entries whose key is `key` (without regard to case).
    fn values<'s>(&'s self, key: &str) -> impl Iterator<Item = &'s Entry> + use<'s> {
        let key = key.to_owned();
        self.entries.iter().filter(move |e| {
            e.key
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case(&key))
        })
    }

    /// The single value of `key`, if the key occurs.
    fn value(&self, key: &str) -> Option<&Entry> {
        self.values(key).next()
    }
}

/// A parsed INF file.
#[derive(Debug, Default)]
struct Inf {
    sections: Vec<Section>,
    index: HashMap<String, usize>,
}

impl Inf {
    fn section(&self, name: &str) -> Option<&Section> {
        self.index
            .get(&name.to_ascii_lowercase())
            .map(|&i| &self.sections[i])
    }
}

/// A problem the parser itself found.
#[derive(Debug)]
struct SyntaxError {
    line: usize,
    message: String,
}

/// A raw logical line: text with comments removed and continuations joined.
struct RawLine {
    line: usize,
    text: String,
}

/// Decodes the bytes of an INF: UTF-8 (with or without BOM) or UTF-16LE with BOM.
fn decode(bytes: &[u8]) -> Result<String> {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let (pairs, odd) = rest.as_chunks::<2>();
        if !odd.is_empty() {
            bail!("UTF-16LE text with an odd number of bytes");
        }
        let units: Vec<u16> = pairs.iter().map(|pair| u16::from_le_bytes(*pair)).collect();
        return String::from_utf16(&units).context("invalid UTF-16LE");
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    String::from_utf8(bytes.to_vec()).context("neither UTF-8 nor UTF-16LE with a byte order mark")
}

/// Splits the text into logical lines: strips `;` comments outside quotes, and joins a line
/// whose last non-blank character (outside quotes and comments) is `\` with the next one.
fn logical_lines(text: &str, errors: &mut Vec<SyntaxError>) -> Vec<RawLine> {
    let mut out = Vec::new();
    let mut pending: Option<RawLine> = None;
    for (i, physical) in text.lines().enumerate() {
        let number = i + 1;
        let mut in_quotes = false;
        let mut code = String::new();
        for c in physical.chars() {
            if c == '"' {
                in_quotes = !in_quotes;
            } else if c == ';' && !in_quotes {
                break;
            }
            code.push(c);
        }
        if in_quotes {
            errors.push(SyntaxError {
                line: number,
                message: "unterminated quoted string".into(),
            });
        }
        let trimmed = code.trim_end();
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) if !in_quotes => (body.to_string(), true),
            _ => (trimmed.to_string(), false),
        };
        let mut current = pending.take().unwrap_or(RawLine {
            line: number,
            text: String::new(),
        });
        current.text.push_str(&body);
        if continues {
            pending = Some(current);
        } else {
            out.push(current);
        }
    }
    if let Some(last) = pending {
        errors.push(SyntaxError {
            line: last.line,
            message: "line continuation at end of file".into(),
        });
        out.push(last);
    }
    out
}

/// Splits `text` at `sep` characters outside quotes.
fn split_outside_quotes(text: &str, sep: char, limit: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut current = String::new();
    for c in text.chars() {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if c == sep && !in_quotes && parts.len() + 1 < limit {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

/// Removes quotes from a field: `"a""b"` becomes `a"b`; text outside quotes is kept, and
/// whitespace outside quotes at either end is dropped.
fn unquote(field: &str) -> String {
    let field = field.trim();
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        if c == '"' {
            if in_quotes && chars.peek() == Some(&'"') {
                out.push('"');
                chars.next();
            } else {
                in_quotes = !in_quotes;
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Substitutes `%strkey%` tokens from `strings`. `%%` is a literal `%`; a token that names no
/// string and is not a number (a dirid such as `%13%`) is reported and left as it is.
fn substitute(
    text: &str,
    strings: &HashMap<String, String>,
    line: usize,
    errors: &mut Vec<SyntaxError>,
) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('%') else {
            errors.push(SyntaxError {
                line,
                message: format!("unmatched '%' in `{text}`"),
            });
            out.push_str(&rest[start..]);
            return out;
        };
        let token = &after[..end];
        if token.is_empty() {
            out.push('%');
        } else if let Some(value) = strings.get(&token.to_ascii_lowercase()) {
            out.push_str(value);
        } else {
            if !token.chars().all(|c| c.is_ascii_digit()) {
                errors.push(SyntaxError {
                    line,
                    message: format!("%{token}% is not defined in [Strings]"),
                });
            }
            out.push('%');
            out.push_str(token);
            out.push('%');
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `[Strings]`: values are quoted or bare, and are not themselves substituted. Keys are
/// compared without case, as INF string keys are.
fn read_strings(
    raw_sections: &[(String, Vec<RawLine>)],
    raw_index: &HashMap<String, usize>,
    errors: &mut Vec<SyntaxError>,
) -> HashMap<String, String> {
    // A key given twice is reported with both lines: which value a Windows tool takes is
    // documented nowhere (a section given twice is legal: its entries merge).
    let mut strings = HashMap::new();
    let mut defined: HashMap<String, &RawLine> = HashMap::new();
    if let Some(&i) = raw_index.get("strings") {
        for line in &raw_sections[i].1 {
            let parts = split_outside_quotes(&line.text, '=', 2);
            if parts.len() == 2 {
                let key = unquote(&parts[0]);
                if let Some(first) = defined.get(&key.to_ascii_lowercase()) {
                    errors.push(SyntaxError {
                        line: line.line,
                        message: format!(
                            "[Strings] defines `{key}` twice: line {} `{}` and line {} `{}`; keep \
                             one (which value wins is undocumented)",
                            first.line,
                            first.text.trim(),
                            line.line,
                            line.text.trim()
                        ),
                    });
                } else {
                    defined.insert(key.to_ascii_lowercase(), line);
                }
                strings
                    .entry(key.to_ascii_lowercase())
                    .or_insert_with(|| unquote(&parts[1]));
            } else {
                errors.push(SyntaxError {
                    line: line.line,
                    message: "[Strings] line without '='".into(),
                });
            }
        }
    }
    strings
}

/// Parses INF text.
fn parse(text: &str) -> (Inf, Vec<SyntaxError>) {
    let mut errors = Vec::new();
    let lines = logical_lines(text, &mut errors);

    // First pass: sections with their raw lines, so that [Strings] is known before substitution.
    let mut raw_sections: Vec<(String, Vec<RawLine>)> = Vec::new();
    let mut raw_index: HashMap<String, usize> = HashMap::new();
    let mut current: Option<usize> = None;
    for line in lines {
        let t = line.text.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(header) = t.strip_prefix('[') {
            // A header without its `]` is reported once and read as the section it names, so
            // that its lines (and, for `[Strings`, every %key% they define) are not reported
            // again one by one.
            let name = header.strip_suffix(']').unwrap_or_else(|| {
                errors.push(SyntaxError {
                    line: line.line,
                    message: format!(
                        "malformed section header `{t}`: it lacks its closing `]` (read as \
                         [{}])",
                        header.trim()
                    ),
                });
                header
            });
            let name = name.trim().to_string();
            let key = name.to_ascii_lowercase();
            let i = *raw_index.entry(key).or_insert_with(|| {
                raw_sections.push((name.clone(), Vec::new()));
                raw_sections.len() - 1
            });
            current = Some(i);
            continue;
        }
        match current {
            Some(i) => raw_sections[i].1.push(line),
            None => errors.push(SyntaxError {
                line: line.line,
                message: "text before the first section".into(),
            }),
        }
    }

    let strings = read_strings(&raw_sections, &raw_index, &mut errors);

    let mut inf = Inf::default();
    for (name, raw_lines) in raw_sections {
        let is_strings = name.eq_ignore_ascii_case("Strings");
        let mut entries = Vec::new();
        for raw in raw_lines {
            let parts = split_outside_quotes(&raw.text, '=', 2);
            let (key, value) = if parts.len() == 2 {
                (Some(unquote(&parts[0])), parts[1].clone())
            } else {
                (None, parts[0].clone())
            };
            let fields = split_outside_quotes(&value, ',', usize::MAX)
                .iter()
                .map(|f| {
                    if is_strings {
                        unquote(f)
                    } else {
                        // Quotes protect separators, not tokens: substitute, then unquote.
                        unquote(&substitute(f, &strings, raw.line, &mut errors))
                    }
                })
                .collect();
            let key = key.map(|k| {
                if is_strings {
                    k
                } else {
                    substitute(&k, &strings, raw.line, &mut errors)
                }
            });
            entries.push(Entry {
                line: raw.line,
                key,
                fields,
            });
        }
        inf.index
            .insert(name.to_ascii_lowercase(), inf.sections.len());
        inf.sections.push(Section { name, entries });
    }
    (inf, errors)
}

// ------------------------------------------------------------------------------------------------
// Rules
// ------------------------------------------------------------------------------------------------

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

/// What the checks of one file learnt, for the workspace-wide checks.
#[derive(Debug, Default, Clone)]
struct InfFacts {
    service_name: Option<String>,
    binary: Option<String>,
    altitude: Option<u32>,
    /// The build the down-level install section is decorated with.
    min_build: Option<u32>,
}

/// Collects the findings of one file.
struct Checker<'a> {
    file: &'a str,
    inf: &'a Inf,
    findings: Vec<Finding>,
}

/// One value from an `AddReg` section: `HKR,subkey,name,flags,value`.
struct RegValue {
    section: String,
    subkey: String,
    name: String,
    flags: Option<u32>,
    value: String,
}

fn parse_number(text: &str) -> Option<u32> {
    let t = text.trim();
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else {
        t.parse().ok()
    }
}

/// Parses an altitude string: decimal digits, optionally with a fractional part ("370210.5").
/// Returns its integer part.
fn parse_altitude(text: &str) -> Option<u32> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if digits(whole) && digits(fraction) {
        whole.parse().ok()
    } else {
        None
    }
}

/// An altitude in a canonical form for comparison: no leading zeros, no trailing fractional
/// zeros ("0370210.50" and "370210.5" are the same altitude).
fn canonical_altitude(text: &str) -> Option<String> {
    parse_altitude(text.trim())?;
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    Some(if fraction.is_empty() {
        whole.to_owned()
    } else {
        format!("{whole}.{fraction}")
    })
}

/// The rows of [`ALLOCATED_ALTITUDES`]: `(altitude, load order group, minifilter, company)`.
fn allocations() -> impl Iterator<Item = [&'static str; 4]> {
    ALLOCATED_ALTITUDES
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let mut fields = line.split('\t');
            Some([
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            ])
        })
}

/// Who `altitude` is allocated to, `(minifilter, company)`, if anyone.
fn allocated_to(altitude: &str) -> Option<(&'static str, &'static str)> {
    let wanted = canonical_altitude(altitude)?;
    allocations()
        .find(|[allocated, ..]| canonical_altitude(allocated).as_deref() == Some(wanted.as_str()))
        .map(|[_, _, minifilter, company]| (minifilter, company))
}

/// The build a `DefaultInstall.NT$ARCH$.10.0...<build>` section name is decorated with (the
/// `TargetOSVersion` `NT<arch>.<major>.<minor>.<product type>.<suite mask>.<build>`); `None` when it
/// states no build.
fn install_build(name: &str) -> Option<u32> {
    let decoration = name.get(DOWNLEVEL_INSTALL.len()..)?.strip_prefix('.')?;
    let parts: Vec<&str> = decoration.split('.').collect();
    match parts[..] {
        ["10", "0", _, _, build] => build.parse().ok(),
        _ => None,
    }
}

/// The `/wbuild <major.minor.build>` of `WDK_BUILD_ADDITIONAL_INFVERIF_FLAGS` in the root
/// `Makefile.toml` text (the flags the cargo-make flow passes to infverif), or infverif's default.
/// The `[env]` entry is a string, or a cargo-make conditional value (`{ value = "...", condition =
/// ... }`), read here by its `value`: the flags the flow uses when the environment sets none.
fn wbuild_of(makefile: &str) -> u32 {
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

/// The `.sys` file named by `ServiceBinary = %13%\name.sys`.
fn binary_file_name(service_binary: &str) -> &str {
    service_binary.rsplit('\\').next().unwrap_or(service_binary)
}

impl<'a> Checker<'a> {
    fn fail(&mut self, section: &str, rule: &'static str, message: impl Into<String>) {
        self.findings.push(Finding {
            file: self.file.to_string(),
            section: section.to_string(),
            rule,
            message: message.into(),
        });
    }

    /// The section `name`, or a finding under `rule` if it is missing.
    fn require_section(
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
    fn require_value(
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

    fn check_version(&mut self, expected_binary: Option<&str>) -> Option<&'static Group> {
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

    fn check_structure(&mut self) {
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

    /// Checks one install section (modern or down-level) and its `.Services` section. Returns the
    /// service install section it names.
    #[expect(
        clippy::too_many_lines,
        reason = "one rule after another, in the order of the INF"
    )]
    fn check_install(
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

    /// Checks a service install section. Returns its `AddReg` values.
    #[expect(
        clippy::too_many_lines,
        reason = "one rule after another, in the order of the INF"
    )]
    fn check_service(
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

    /// Driver package isolation as `infverif /w` enforces it (error 1323): the service install
    /// section of an install section used on builds from `from_build` on, when those reach the
    /// `/wbuild` build, writes its service registry values under `Parameters` only.
    fn check_isolation(
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

    /// `SupportedFeatures` (a DWORD) is where Filter Manager reads it: under `Parameters` from
    /// 24H2 on, at the service key before, as Microsoft's minifilter INFs write it.
    fn check_supported_features(&mut self, values: &[RegValue], service: &str, subkey: &str) {
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

    /// Checks the instance configuration under `instances_key`. Returns the default instance's
    /// altitude.
    #[expect(
        clippy::too_many_lines,
        reason = "one rule after another, in the order of the INF"
    )]
    fn check_instances(
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

/// What a sample expects of its INF.
#[derive(Debug, Clone)]
struct Expected {
    binary: String,
    /// The minimum Windows version the driver needs, if known.
    min_windows: Option<WinVer>,
    /// The build from which infverif /w enforces driver package isolation.
    wbuild: u32,
}

/// Checks one INF's text. `expected` is the sample it belongs to, if known.
#[expect(
    clippy::too_many_lines,
    reason = "one rule after another, in the order of the INF"
)]
fn check_text(file: &str, text: &str, expected: Option<&Expected>) -> (InfFacts, Vec<Finding>) {
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

// ------------------------------------------------------------------------------------------------
// Workspace
// ------------------------------------------------------------------------------------------------

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
/// `const ALTITUDE: u32 = N;`, the storm test's `altitude: N,`, the demo's `.load(SERVICE, N, DriverEntry)` and the root README's
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
                // The storm test's `Target { altitude: N, .. }`.
                if let Some(rest) = line_text.strip_prefix("altitude:")
                    && sub == "tests"
                {
                    mention(shown.clone(), number(rest.trim_end_matches(',')), i + 1);
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
fn check_workspace(root: &Path) -> Result<Vec<Finding>> {
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
    use super::*;

    const GOOD: &str = include_str!("../../samples/passthrough/rs_passthrough.inx");
    const BINARY: &str = "rs_passthrough.sys";

    /// What the workspace expects of the passthrough INF (its driver needs 1903), with the
    /// infverif flags of the root Makefile.toml.
    fn expected(binary: &str) -> Expected {
        let makefile = include_str!("../../Makefile.toml");
        Expected {
            binary: binary.into(),
            min_windows: Some(WinVer::WIN10_2004),
            wbuild: wbuild_of(makefile),
        }
    }

    fn check(text: &str) -> Vec<Finding> {
        check_text("test.inx", text, Some(&expected(BINARY))).1
    }

    /// Replaces `from` (which must occur) with `to` in the good INF and returns the rules that fail.
    fn rules_after(from: &str, to: &str) -> Vec<&'static str> {
        assert!(
            GOOD.contains(from),
            "the good INF does not contain {from:?}"
        );
        let findings = check(&GOOD.replace(from, to));
        assert!(
            !findings.is_empty(),
            "replacing {from:?} with {to:?} broke no rule"
        );
        findings.iter().map(|f| f.rule).collect()
    }

    fn assert_fails(from: &str, to: &str, rule: &str) {
        let rules = rules_after(from, to);
        assert!(rules.contains(&rule), "expected rule {rule}, got {rules:?}");
    }

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
    fn allocated_altitude_fails() {
        // 265110: PrintDriver.sys on Microsoft's page; also outside this group's range.
        assert_fails(
            "Instance1.Altitude = \"370210\"",
            "Instance1.Altitude = \"370030\"",
            "altitude.allocated",
        );
        assert_eq!(
            allocated_to("265110.0"),
            Some(("PrintDriver.sys", "Beijing Shu Yan Science"))
        );
        assert_eq!(allocated_to("370210"), None);
        assert_eq!(
            canonical_altitude("0370210.50").as_deref(),
            Some("370210.5")
        );
    }

    #[test]
    fn group_ranges_are_microsofts() {
        for group in GROUPS {
            let stated = format!(
                "{} ({}-{})",
                group.name,
                group.altitudes.start(),
                group.altitudes.end()
            );
            assert!(
                allocations().any(|[_, g, ..]| g == stated),
                "no row of the data says {stated}"
            );
        }
    }

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
            wbuild_of(include_str!("../../Makefile.toml")),
            MODERN_BUILD,
            "the cargo-make flow's infverif must enforce /w from the modern section's build"
        );
    }

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
    fn good_inf_facts() {
        let (facts, findings) = check_text("test.inx", GOOD, Some(&expected(BINARY)));
        assert!(findings.is_empty(), "{findings:#?}");
        assert_eq!(facts.service_name.as_deref(), Some("RsPassthrough"));
        assert_eq!(facts.altitude, Some(370_210));
    }

    #[test]
    fn parser_handles_quotes_comments_continuations_and_strings() {
        let text = "[Version]\r\nSignature = \"$Windows NT$\" ; comment\r\n[A]\r\nKey = \"x;y\", %S% , \\\r\n  \"q\"\"r\"\r\nNoKey, two\r\n%K% = v\r\nP = 100%%\r\n[a]\r\nMore = 1\r\n[Strings]\r\nS = \"sub, stituted\"\r\nK = key\r\n";
        let (inf, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        let a = inf.section("A").unwrap();
        let key = a.value("Key").unwrap();
        assert_eq!(key.fields, vec!["x;y", "sub, stituted", "q\"r"]);
        assert_eq!(key.line, 4);
        let bare = a.entries.iter().find(|e| e.key.is_none()).unwrap();
        assert_eq!(bare.fields, vec!["NoKey", "two"]);
        assert_eq!(a.value("key").unwrap().field(0), "x;y");
        assert_eq!(
            a.entries
                .iter()
                .filter(|e| e.key.as_deref() == Some("key"))
                .count(),
            1
        );
        assert_eq!(a.value("P").unwrap().value(), "100%");
        assert!(a.value("More").is_some(), "repeated sections merge");
        assert_eq!(
            inf.section("version")
                .unwrap()
                .value("signature")
                .unwrap()
                .value(),
            "$Windows NT$"
        );
    }

    /// A `[Strings` header without its `]` is one finding, with its line, not one per string.
    #[test]
    fn a_header_without_its_bracket_is_one_finding() {
        let text = GOOD.replace("[Strings]", "[Strings");
        let line = text.lines().position(|l| l == "[Strings").unwrap() + 1;
        let findings = check(&text);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].file, "test.inx");
        assert_eq!(findings[0].section, format!("line {line}"));
        assert_eq!(
            findings[0].message,
            "malformed section header `[Strings`: it lacks its closing `]` (read as [Strings])"
        );
    }

    /// A `[Strings]` key given twice is one finding naming the key and both lines.
    #[test]
    fn a_strings_key_given_twice_is_one_finding_with_both_lines() {
        for (key, first) in [
            ("ServiceName", "ServiceName        = \"RsPassthrough\""),
            (
                "DiskName",
                "DiskName           = \"rs-passthrough sample installation disk\"",
            ),
        ] {
            let second = format!("{key} = \"Another\"");
            let text = GOOD.replacen(first, &format!("{first}\n{second}"), 1);
            let line = |l: &str| text.lines().position(|x| x == l).unwrap() + 1;
            let findings = check(&text);
            assert_eq!(findings.len(), 1, "{findings:#?}");
            assert_eq!(findings[0].section, format!("line {}", line(&second)));
            assert_eq!(
                findings[0].message,
                format!(
                    "[Strings] defines `{key}` twice: line {} `{first}` and line {} `{second}`; \
                     keep one (which value wins is undocumented)",
                    line(first),
                    line(&second)
                )
            );
        }
    }

    #[test]
    fn parser_reports_syntax_errors() {
        let (_, errors) = parse("stray\n[A\nx = 1\n[B]\ny = \"open\nz = %Missing%\nw = 1 \\");
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("malformed section header")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("text before the first section")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("unterminated")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("%Missing%")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("continuation at end of file")),
            "{messages:?}"
        );
        assert!(
            check("[Version]\nx = %Nope%\n")
                .iter()
                .any(|f| f.rule == "syntax")
        );
    }

    #[test]
    fn decodes_utf16() {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend("[Version]".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode(&bytes).unwrap(), "[Version]");
        assert_eq!(decode(b"\xEF\xBB\xBF[A]").unwrap(), "[A]");
    }

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

    #[test]
    fn sections_must_agree() {
        let text = GOOD.replace(
            "HKR,\"Instances\\\"%Instance1.Name%,\"Altitude\",0x00000000,%Instance1.Altitude%",
            "HKR,\"Instances\\\"%Instance1.Name%,\"Altitude\",0x00000000,\"370299\"",
        );
        assert!(check(&text).iter().any(|f| f.rule == "install.consistent"));
    }

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

    fn workspace(files: &[(&str, &str)]) -> tempdir::Dir {
        let dir = tempdir::Dir::new();
        for (path, text) in files {
            let full = dir.path().join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(full, text).unwrap();
        }
        dir
    }

    fn workspace_rules(files: &[(&str, &str)]) -> Vec<&'static str> {
        // What every workspace has: the root Makefile.toml (infverif's flags) and, beside each
        // sample's Cargo.toml, its driver-imports.txt.
        let mut all: Vec<(String, String)> = vec![(
            "Makefile.toml".into(),
            include_str!("../../Makefile.toml").into(),
        )];
        for (path, text) in files {
            all.push(((*path).into(), (*text).into()));
            if let Some(dir) = path.strip_suffix("/Cargo.toml") {
                all.push((
                    format!("{dir}/driver-imports.txt"),
                    "FltRegisterFilter\n".into(),
                ));
            }
        }
        let borrowed: Vec<(&str, &str)> =
            all.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        let dir = workspace(&borrowed);
        check_workspace(dir.path())
            .unwrap()
            .iter()
            .map(|f| f.rule)
            .collect()
    }

    /// A second good INF: the passthrough one renamed.
    fn other_inf() -> String {
        GOOD.replace("rs_passthrough", "rs_other")
            .replace("RsPassthrough", "RsOther")
            .replace("370210", "370299")
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
                "const TARGET: Target = Target {\n    altitude: 370_210,\n};\n",
            ),
        ];
        assert_eq!(workspace_rules(&agree), Vec::<&str>::new());
        for (index, stale) in [
            "const ALTITUDE: u32 = 370_299;\n",
            "    .load(SERVICE, 370_299, DriverEntry)\n",
            "| x | y | `RsPassthrough`, 370299 | 10 1903 |\n",
            "const TARGET: Target = Target {\n    altitude: 0,\n};\n",
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

    /// A throw-away directory, removed on drop (no extra dependency for it).
    mod tempdir {
        use std::{
            path::{Path, PathBuf},
            sync::atomic::{AtomicUsize, Ordering},
        };

        pub struct Dir(PathBuf);

        impl Dir {
            pub fn new() -> Self {
                static COUNTER: AtomicUsize = AtomicUsize::new(0);
                let n = COUNTER.fetch_add(1, Ordering::Relaxed);
                let path =
                    std::env::temp_dir().join(format!("check-inf-test-{}-{n}", std::process::id()));
                let _ = std::fs::remove_dir_all(&path);
                std::fs::create_dir_all(&path).unwrap();
                Self(path)
            }

            pub fn path(&self) -> &Path {
                &self.0
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
