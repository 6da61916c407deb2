//! Which calls take a reference (or another resource the caller must give back) and which give
//! it back: what a diagram always draws in pairs, and what a demo's printed trace must show whole.

use crate::kernel::{Event, EventKind};

/// What a call does to a reference (or other resource the caller must give back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reference {
    /// The caller owns one more, and must give it back.
    Taken,
    /// The caller gives one back.
    Released,
}

/// The calls that take or give back something the caller owns, and each release's acquires.
/// Taken from each function's documented contract: a `FltGet*Context` or `FltAllocateContext`
/// context is released with `FltReleaseContext`; a data-scan section's handle with
/// `ObCloseHandle`, its object with `ObDereferenceObject` and the section with
/// `FltCloseSectionForDataScan`; and so on.
const RELEASES: &[(&str, &[&str])] = &[
    (
        "FltReleaseContext",
        &[
            "FltAllocateContext",
            "FltReferenceContext",
            "FltGetSectionContext",
            "FltGetStreamHandleContext",
            "FltGetStreamContext",
            "FltGetInstanceContext",
            "FltGetVolumeContext",
            "FltGetFileContext",
            "FltGetTransactionContext",
        ],
    ),
    (
        "ObfDereferenceObject",
        &[
            "ObfReferenceObject",
            "ObReferenceObjectByHandle",
            "FltCreateSectionForDataScan",
        ],
    ),
    ("ObDereferenceObjectDeferDelete", &["ObfReferenceObject"]),
    (
        "ObCloseHandle",
        &["FltCreateSectionForDataScan", "PsCreateSystemThread"],
    ),
    (
        "FltCloseSectionForDataScan",
        &["FltCreateSectionForDataScan"],
    ),
    ("FltObjectDereference", &["FltObjectReference"]),
    (
        "FltReleaseFileNameInformation",
        &["FltGetFileNameInformation"],
    ),
    (
        "FltFreeCallbackData",
        &["FltAllocateCallbackData", "FltAllocateCallbackDataEx"],
    ),
    (
        "MmUnmapViewInSystemSpace",
        &["MmMapViewInSystemSpace", "MmMapViewInSystemSpaceEx"],
    ),
    ("ExFreePoolWithTag", &["ExAllocatePool2"]),
    (
        "ExReleaseRundownProtection",
        &["ExAcquireRundownProtection"],
    ),
    (
        "FltReleasePushLock",
        &["FltAcquirePushLockExclusive", "FltAcquirePushLockShared"],
    ),
];

/// The calls that can have taken what `release` gives back (empty if `release` gives nothing
/// back). A trace that shows a release shows these too, so the reader sees where it came from.
#[must_use]
pub fn acquires_of(release: &str) -> &'static [&'static str] {
    RELEASES
        .iter()
        .find(|(name, _)| *name == release)
        .map_or(&[], |(_, acquires)| acquires)
}

/// `apis`, with the acquires of every release in it ([`acquires_of`]), without duplicates.
#[must_use]
pub fn with_acquires<'a>(apis: &[&'a str]) -> Vec<&'a str> {
    let mut all: Vec<&'a str> = apis.to_vec();
    for api in apis {
        for acquire in acquires_of(api) {
            if !all.contains(acquire) {
                all.push(acquire);
            }
        }
    }
    all
}

/// The releases in `events` whose acquire is not among the events before them: a trace that
/// shows them would show a reference given back that it never showed taken. A release is
/// matched by the first pointer or handle in its arguments (a value of more than eight hex
/// digits), which the text of an earlier call of one of its [`acquires_of`] must name; a release
/// with no such argument (`FltReleaseFileNameInformation`) is not checked.
#[must_use]
pub fn unmatched_releases(events: &[Event]) -> Vec<Event> {
    let mut unmatched = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let EventKind::Call(api) = event.kind else {
            continue;
        };
        let acquires = acquires_of(api);
        if acquires.is_empty() {
            continue;
        }
        let arguments = event.text.split(" -> ").next().unwrap_or_default();
        let Some(value) = pointers(arguments).into_iter().next() else {
            continue;
        };
        let taken = events[..index].iter().any(|earlier| {
            matches!(earlier.kind, EventKind::Call(a) if acquires.contains(&a))
                && pointers(&earlier.text).contains(&value)
        });
        if !taken {
            unmatched.push(event.clone());
        }
    }
    unmatched
}

/// The values of more than eight hex digits in `text` (pointers and handles), in order.
pub(super) fn pointers(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("0x") {
        let digits = rest[at + 2..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len() - at - 2);
        if digits > 8 {
            found.push(&rest[at..at + 2 + digits]);
        }
        rest = &rest[at + 2 + digits..];
    }
    found
}

/// Whether `api` takes or gives back a reference. Push locks are held, not referenced: their
/// acquire and release are paired in a trace but not marked as references.
pub(super) fn reference(api: &str) -> Option<Reference> {
    if api.contains("PushLock") {
        return None;
    }
    if !acquires_of(api).is_empty() {
        return Some(Reference::Released);
    }
    RELEASES
        .iter()
        .any(|(_, acquires)| acquires.contains(&api))
        .then_some(Reference::Taken)
}
