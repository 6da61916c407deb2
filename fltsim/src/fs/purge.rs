//! The purge a conflicting operation needs, judged against the data-scan sections on the stream,
//! and what purge failure mode makes of a failure (`FSCTL_SET_PURGE_FAILURE_MODE`).

use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_PENDING, STATUS_PURGE_FAILED, STATUS_USER_MAPPED_FILE,
};

use crate::{
    kernel::{EventKind, Kernel},
    state::State,
    status::NtStatus,
};

use super::find_stream;

/// An operation that must purge the stream's cache, by its row on the `FSCTL_SET_PURGE_FAILURE_MODE`
/// page: what the file system answers when the purge fails while purge failure mode is
/// outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purge {
    /// `IRP_MJ_CREATE` that overwrites or supersedes (destructive): `STATUS_USER_MAPPED_FILE`.
    DestructiveCreate,
    /// `IRP_MJ_WRITE`, non-cached only: `STATUS_PURGE_FAILED`.
    NonCachedWrite,
    /// `IRP_MJ_SET_INFORMATION` (here a truncating end of file): `STATUS_PURGE_FAILED`.
    Truncate,
    /// Any other operation (here `IRP_MJ_FLUSH_BUFFERS` / `IRP_MN_FLUSH_AND_PURGE`): the file
    /// system pends it itself and reissues it when the outstanding count drops to zero.
    Other,
}

impl Purge {
    fn name(self) -> &'static str {
        match self {
            Self::DestructiveCreate => "the destructive IRP_MJ_CREATE",
            Self::NonCachedWrite => "the non-cached IRP_MJ_WRITE",
            Self::Truncate => "the truncating IRP_MJ_SET_INFORMATION",
            Self::Other => "the IRP_MJ_FLUSH_BUFFERS (flush and purge)",
        }
    }
}

/// The stream an operation's target file object names: its open stream, or for a create the
/// stream its name resolves to.
pub(crate) fn target_stream(state: &State, fo: usize) -> Option<usize> {
    let rec = state.file_objects.get(&fo)?;
    rec.stream
        .or_else(|| find_stream(state, rec.volume, &rec.path))
}

/// `C:\path` of a stream, for messages.
pub(crate) fn stream_name(state: &State, stream: usize) -> String {
    let s = &state.streams[stream];
    format!("{}:{}", state.volumes[s.volume].letter, s.path)
}

/// The file system's purge of `stream`'s cache before `op`. It fails while a data-scan section
/// on the stream still exists (its handle open or its object referenced: the section object is
/// what holds the cache, "the mapping object must be closed"). Then, per the
/// `FSCTL_SET_PURGE_FAILURE_MODE` page: while purge failure mode is outstanding on the stream,
/// the table's operations fail with the table's status, for Filter Manager to pend and requeue
/// (`io::perform`), and any other operation is pended here until the outstanding count drops to
/// zero, then reissued; with none outstanding, the failure goes to the application as
/// `STATUS_USER_MAPPED_FILE`, which is how a truncation of a mapped file fails
/// (`MmCanFileBeTruncated`).
///
/// A purge that succeeds runs `then` (the operation's change to the stream: the truncation)
/// under the same lock that judged it, as the file system holds the file's locks across both:
/// no data-scan section can be created, nor a view mapped, between the check and the change.
pub(crate) fn purge<R>(
    k: &Kernel,
    stream: usize,
    op: Purge,
    then: impl FnOnce(&mut State) -> R,
) -> Result<R, NTSTATUS> {
    let mut then = Some(then);
    loop {
        let (blocking, outstanding, name) = {
            let mut state = k.lock();
            // The earliest-named, not the first in the map's order: a storm replays its trace.
            let blocking = state
                .sections
                .values()
                .filter(|s| s.stream == stream && (s.handle_open || s.object_refs > 0))
                .map(|s| s.origin.clone())
                .min();
            if blocking.is_none() {
                let truncates = matches!(op, Purge::Truncate | Purge::DestructiveCreate);
                let mapped = if truncates {
                    mapped_across_truncation(&state, stream)
                } else {
                    Vec::new()
                };
                let result = (then.take().expect("a purge succeeds once"))(&mut state);
                drop(state);
                report_mapped_across_truncation(k, mapped);
                if truncates {
                    hold_truncation(k);
                }
                return Ok(result);
            }
            (
                blocking,
                state.streams[stream].purge_failure_mode,
                stream_name(&state, stream),
            )
        };
        let origin = blocking.expect("handled above");
        let why = format!("cannot purge {name}: the data-scan section created by {origin} is open");
        if outstanding == 0 {
            k.trace(
                EventKind::FileSystem,
                format!(
                    "{why} and no purge failure mode is outstanding: {} fails \
                     with STATUS_USER_MAPPED_FILE",
                    op.name()
                ),
            );
            return Err(STATUS_USER_MAPPED_FILE);
        }
        let status = match op {
            Purge::DestructiveCreate => STATUS_USER_MAPPED_FILE,
            Purge::NonCachedWrite | Purge::Truncate => STATUS_PURGE_FAILED,
            Purge::Other => {
                k.trace(
                    EventKind::FileSystem,
                    format!(
                        "{why}; purge failure mode is outstanding ({outstanding}), \
                         so it pends {} until the count drops to zero",
                        op.name()
                    ),
                );
                if !wait_for_purge_failure_mode_off(k, stream, "the file system", op.name()) {
                    return Err(STATUS_PENDING);
                }
                k.trace(
                    EventKind::FltMgr,
                    format!("reissues {} on {name}", op.name()),
                );
                continue;
            }
        };
        k.trace(
            EventKind::FileSystem,
            format!(
                "{why}; purge failure mode is outstanding ({outstanding}): {} \
                 fails with {}",
                op.name(),
                NtStatus(status)
            ),
        );
        FAILED_IN_PURGE_FAILURE_MODE.set(true);
        return Err(status);
    }
}

thread_local! {
    /// Set when the file system, on this thread, failed a purge with the page's status because
    /// purge failure mode was outstanding: Filter Manager (`io::perform`) reads and clears it
    /// after the operation returns, so it pends the operation even if the last section closed
    /// in between (the failure was issued inside the mode, and the requeue then runs at once).
    static FAILED_IN_PURGE_FAILURE_MODE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the operation that just returned on this thread failed its purge inside purge
/// failure mode (and clears the mark).
pub(crate) fn take_failed_in_purge_failure_mode() -> bool {
    FAILED_IN_PURGE_FAILURE_MODE.replace(false)
}

/// `World::hold_next_truncation`: the truncation waits here, its purge judged clear.
pub(super) fn hold_truncation(k: &Kernel) {
    let Some((reached, release)) = k.lock().options.hold_truncation.take() else {
        return;
    };
    k.trace(
        EventKind::Verifier,
        "hold: the file system judged a truncation's purge clear and waits before returning".into(),
    );
    reached.set();
    if !release.wait(Some(TRUNCATION_HOLD_LIMIT)) {
        k.violation(format!(
            "hold: the held truncation was not released within {TRUNCATION_HOLD_LIMIT:?} (a test \
             forgot to release World::hold_next_truncation?)"
        ));
    }
}

/// The creators of data-scan sections on the stream with a view still mapped: a truncation that
/// proceeds now truncates under them (sorted: a storm replays its trace, whatever the map's
/// order).
pub(super) fn mapped_across_truncation(state: &State, stream: usize) -> Vec<String> {
    let mut origins: Vec<String> = state
        .sections
        .values()
        .filter(|s| s.stream == stream && s.views > 0)
        .map(|s| s.origin.clone())
        .collect();
    origins.sort();
    origins
}

/// Reports a truncation that proceeded while views (of sections by `mapped`) were mapped.
pub(super) fn report_mapped_across_truncation(k: &Kernel, mapped: Vec<String>) {
    for origin in mapped {
        k.violation(format!(
            "a truncation proceeds while a view of a data-scan section (created by {origin}) is \
             still mapped: touching it now raises STATUS_IN_PAGE_ERROR, a bugcheck in a driver \
             without an exception handler. Stop using and unmap views before the \
             SectionNotificationCallback returns"
        ));
    }
}

/// Waits until no `FSCTL_SET_PURGE_FAILURE_MODE` is outstanding on `stream`, for `who` (Filter
/// Manager or the file system) holding `what` pended. On Windows the wait has no bound and the
/// caller hangs; the model reports a wait longer than its pend limit as a finding and gives up
/// (returns `false`): the operation completes with `STATUS_PENDING`, neither failed nor done.
pub(crate) fn wait_for_purge_failure_mode_off(
    k: &Kernel,
    stream: usize,
    who: &str,
    what: &str,
) -> bool {
    wait_for_sections_closed(k, stream, &[], who, what).is_some()
}

/// Waits until the data-scan sections `pended_on` (Filter Manager's: those linked on `stream`
/// when it pended the operation) are all closed for data scan, or no
/// `FSCTL_SET_PURGE_FAILURE_MODE` is outstanding on `stream` at all (with `pended_on` empty, only
/// the latter: the file system's own pend). Returns the count still outstanding then: above zero,
/// sections created while the operation was pended, which the requeued operation meets, so that
/// Filter Manager pends it again and notifies their owners in turn. `None`, with a finding, past
/// the pend limit (see [`wait_for_purge_failure_mode_off`]).
///
/// Choice where the page is silent: it says Filter Manager requeues once the outstanding count
/// drops to zero. A section created after the notification would then hold the operation,
/// never notified, for as long as its owner keeps it. The model requeues once the sections it
/// notified are closed, and a section created since fails the requeued operation's purge again
/// and is notified in turn: no section can hold a notified operation without a notification.
pub(crate) fn wait_for_sections_closed(
    k: &Kernel,
    stream: usize,
    pended_on: &[usize],
    who: &str,
    what: &str,
) -> Option<u32> {
    let limit = {
        let mut state = k.lock();
        state.streams[stream].pended += 1;
        state.options.pend_limit
    };
    let start = crate::sched::now();
    let left = loop {
        {
            let state = k.lock();
            let s = &state.streams[stream];
            let closed = !pended_on.is_empty() && pended_on.iter().all(|o| !s.sections.contains(o));
            if s.purge_failure_mode == 0 || closed {
                break Some(s.purge_failure_mode);
            }
        }
        if crate::sched::since(start) > limit {
            break None;
        }
        crate::sched::sleep(std::time::Duration::from_millis(1));
    };
    let (name, owners) = {
        let mut state = k.lock();
        state.streams[stream].pended -= 1;
        let owners: Vec<String> = state.streams[stream]
            .sections
            .iter()
            .map(|obj| state.sections[obj].origin.clone())
            .collect();
        (stream_name(&state, stream), owners)
    };
    if left.is_none() {
        k.violation(format!(
            "{what} on {name} has been pended by {who} for {limit:?} on data-scan section(s) \
             that stay open (created by {}): on Windows its caller hangs until every data-scan \
             section on the stream is closed with FltCloseSectionForDataScan. Close the section \
             in the SectionNotificationCallback, or bound the scan",
            owners.join("; ")
        ));
    }
    left
}

/// How long `World::hold_next_truncation` may hold a truncation before it is a finding.
pub(super) const TRUNCATION_HOLD_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
