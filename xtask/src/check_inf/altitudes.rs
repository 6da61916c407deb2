//! Altitudes: the load order groups the samples may use, each with its setup class and altitude
//! range ([`GROUPS`]); the altitudes Microsoft has allocated (its "Allocated filter altitudes"
//! page, `xtask/data/allocated-altitudes.tsv`); and the placeholder `cargo xtask new` writes.

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

/// The altitude `cargo xtask new` writes into a new INF: not an altitude, so the INF cannot be
/// installed by mistake, and check-inf says how to get a real one.
pub(crate) const PLACEHOLDER_ALTITUDE: &str = "SET-AN-ALTITUDE";

/// Microsoft's page on requesting an altitude.
pub(super) const ALTITUDE_REQUEST_PAGE: &str =
    "https://learn.microsoft.com/windows-hardware/drivers/ifs/minifilter-altitude-request";

/// Microsoft's "Allocated filter altitudes" page as data (its source is in its first line).
const ALLOCATED_ALTITUDES: &str = include_str!("../../data/allocated-altitudes.tsv");

/// Parses an altitude string: decimal digits, optionally with a fractional part ("370210.5").
/// Returns its integer part.
pub(super) fn parse_altitude(text: &str) -> Option<u32> {
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
pub(super) fn allocated_to(altitude: &str) -> Option<(&'static str, &'static str)> {
    let wanted = canonical_altitude(altitude)?;
    allocations()
        .find(|[allocated, ..]| canonical_altitude(allocated).as_deref() == Some(wanted.as_str()))
        .map(|[_, _, minifilter, company]| (minifilter, company))
}

#[cfg(test)]
mod tests {
    use super::{GROUPS, allocated_to, allocations, canonical_altitude};
    use crate::check_inf::test_support::assert_fails;

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
}
