//! What a sample allows a user to see. Each sample's README and module doc say it; the oracles
//! below check every result of a storm against that.
//!
//! - **Every sample**: an error is one the file system gives without any filter (a sharing
//!   violation, a missing name, a directory opened as a file, a read past the end, ...), or the
//!   status of a fault the storm injected and the trace shows firing. A conflicting operation
//!   (truncation, overwrite, non-cached write, flush-and-purge) never fails because of a
//!   data-scan section: Filter Manager (or the file system) pends it until no section is left and
//!   then reissues it (`FSCTL_SET_PURGE_FAILURE_MODE`), so `STATUS_USER_MAPPED_FILE` or
//!   `STATUS_PURGE_FAILED` reaching the user is a finding, and so is `STATUS_PENDING`: the model's
//!   answer for an operation pended past its limit, where on Windows the caller hangs.
//! - **Fail-open samples** (passthrough, callback-data, section-context): nothing else.
//! - **section-conflict**: the same.
//! - **data-scan**: `STATUS_VIRUS_INFECTED` only for an open with read or execute access of a
//!   file that held the signature before the storm (a storm never writes one), in the demo folder
//!   on `C:`; a clean file is never denied. And an open of such a file whose signature was intact
//!   all along, with the filter loaded throughout, is never allowed unless the sample said, on
//!   that operation's thread, that it did not scan ("not scanned": an injected fault, the
//!   attempts bound, the wait bound).

use std::collections::BTreeSet;

use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_END_OF_FILE, STATUS_FILE_IS_A_DIRECTORY,
    STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER, STATUS_NOT_A_DIRECTORY,
    STATUS_OBJECT_NAME_COLLISION, STATUS_OBJECT_NAME_NOT_FOUND, STATUS_OBJECT_PATH_NOT_FOUND,
    STATUS_PENDING, STATUS_PURGE_FAILED, STATUS_SHARING_VIOLATION, STATUS_USER_MAPPED_FILE,
    STATUS_VIRUS_INFECTED,
};

use crate::{
    EventKind,
    status::NtStatus,
    storm::{
        Oracle, Target,
        case::{Case, FileKind, Op},
        run::{Outcome, Ran, Record},
    },
};

/// The statuses the file system beneath the filters gives a storm's operations on its own.
const FILE_SYSTEM: &[NTSTATUS] = &[
    STATUS_SHARING_VIOLATION,
    STATUS_OBJECT_NAME_NOT_FOUND,
    STATUS_OBJECT_PATH_NOT_FOUND,
    STATUS_OBJECT_NAME_COLLISION,
    STATUS_FILE_IS_A_DIRECTORY,
    STATUS_NOT_A_DIRECTORY,
    STATUS_ACCESS_DENIED,
    STATUS_INVALID_PARAMETER,
    STATUS_END_OF_FILE,
    STATUS_INVALID_DEVICE_REQUEST,
];

/// Whether an operation conflicts with a data-scan section: it truncates the file, writes
/// around the cache, or purges it. An open that overwrites or supersedes the file truncates it.
fn conflicting(op: Op) -> bool {
    match op {
        Op::Open { disposition, .. } => disposition.truncates(),
        Op::Write { non_cached, .. } => non_cached,
        // A set-end-of-file below the current size truncates; the oracle does not know the size
        // at that moment, so any set-end-of-file counts.
        Op::SetEndOfFile { .. } | Op::Purge { .. } => true,
        _ => false,
    }
}

/// Checks every result of a storm; returns one line per result the sample does not allow.
#[must_use]
pub fn check(target: &Target, case: &Case, ran: &Ran) -> Vec<String> {
    let injected: BTreeSet<String> = ran
        .trace
        .iter()
        .filter(|e| e.kind == EventKind::Verifier)
        .filter_map(|e| e.text.strip_prefix("fault injected: "))
        .filter_map(|t| t.rsplit(" fails with ").next())
        .map(str::to_owned)
        .collect();
    let mut wrong = unchanged_files(case, &ran.records, &ran.contents);
    for record in &ran.records {
        if let Some(why) = judge(target, case, ran, record, &injected) {
            wrong.push(format!(
                "T{}.{} {:?} on {} -> {:?}: {why}",
                record.thread,
                record.index,
                record.op,
                record
                    .file
                    .map_or("(no file)", |f| case.files[f].path.as_str()),
                record.outcome
            ));
        }
    }
    wrong
}

/// Whether `op`, had it succeeded, could have changed its file's contents (or brought it into
/// being): a write, a set-end-of-file, or an open that may create, overwrite or supersede.
fn may_change(op: Op) -> bool {
    match op {
        Op::Write { .. } | Op::SetEndOfFile { .. } => true,
        Op::Open { disposition, .. } => disposition != super::Disposition::Open,
        _ => false,
    }
}

/// Files change only through operations that succeeded: a file that no successful write,
/// set-end-of-file or creating/overwriting open touched holds at the end exactly what it held at
/// the start (a denied or failed operation changed nothing, whatever the sample did meanwhile).
/// One line per file that changed anyway. Directories are left out.
#[must_use]
pub fn unchanged_files(
    case: &Case,
    records: &[Record],
    contents: &[Option<Vec<u8>>],
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (i, file) in case.files.iter().enumerate() {
        if file.kind == FileKind::Directory {
            continue;
        }
        let changed_by_success = records
            .iter()
            .any(|r| r.file == Some(i) && r.outcome == Outcome::Ok && may_change(r.op));
        if changed_by_success {
            continue;
        }
        let before = file.contents();
        let after = contents.get(i).cloned().flatten();
        if before != after {
            let size = |c: &Option<Vec<u8>>| {
                c.as_ref()
                    .map_or_else(|| "no file".to_owned(), |c| format!("{} bytes", c.len()))
            };
            wrong.push(format!(
                "{}: changed though no operation that could change it succeeded: {} before, {} \
                 after",
                file.path,
                size(&before),
                size(&after)
            ));
        }
    }
    wrong
}

/// The log lines the sample printed on the operation's own thread while it ran.
fn own_lines<'a>(ran: &'a Ran, record: &Record) -> impl Iterator<Item = &'a str> {
    let (from, to) = record.trace;
    ran.trace[from.min(ran.trace.len())..to.min(ran.trace.len())]
        .iter()
        .filter(move |e| e.kind == EventKind::Log && e.thread == record.model_thread)
        .map(|e| e.text.as_str())
}

fn judge(
    target: &Target,
    case: &Case,
    ran: &Ran,
    record: &Record,
    injected: &BTreeSet<String>,
) -> Option<String> {
    let file = record.file.map(|f| &case.files[f]);
    let infected_before = file.is_some_and(|f| matches!(f.kind, FileKind::Eicar { .. }));
    let scanned_here = file.is_some_and(|f| f.in_scope() && f.volume() == 'C');
    match &record.outcome {
        Outcome::Skipped => None,
        Outcome::Ok => {
            if target.oracle != Oracle::DataScan {
                return None;
            }
            let Op::Open { access, .. } = record.op else {
                return None;
            };
            // `filter_steady`: loaded and attached to `C:` throughout (a failed
            // FltRegisterForDataScan leaves the volume without an instance, documented).
            let must_deny = infected_before
                && scanned_here
                && access.reads()
                && record.signature_intact
                && record.filter_steady;
            let said_not_scanned = own_lines(ran, record).any(|l| l.contains(": not scanned: "));
            (must_deny && !said_not_scanned).then(|| {
                "the file holds EICAR (untouched all along), the filter was loaded throughout, \
                 and the open was allowed without a \"not scanned\" line"
                    .to_owned()
            })
        }
        Outcome::Failed(status) => {
            let s = status.0;
            if FILE_SYSTEM.contains(&s) || injected.contains(&NtStatus(s).to_string()) {
                return None;
            }
            if s == STATUS_PENDING {
                return Some(
                    "STATUS_PENDING: the operation was still pended past the model's limit (on \
                     Windows its caller hangs)"
                        .to_owned(),
                );
            }
            if (s == STATUS_USER_MAPPED_FILE || s == STATUS_PURGE_FAILED) && conflicting(record.op)
            {
                return Some(format!(
                    "{status} for a conflicting operation: Filter Manager pends such an operation \
                     until no data-scan section is left and reissues it, so it never fails for a \
                     section"
                ));
            }
            if s == STATUS_VIRUS_INFECTED && target.oracle == Oracle::DataScan {
                let Op::Open { access, .. } = record.op else {
                    return Some(
                        "STATUS_VIRUS_INFECTED for an operation other than an open".into(),
                    );
                };
                return if !infected_before {
                    Some("a clean file was denied".into())
                } else if !scanned_here {
                    Some("denied a file data-scan does not scan (out of scope or on Z:)".into())
                } else if !access.reads() {
                    Some(
                        "denied an open without read or execute access, which is not scanned"
                            .into(),
                    )
                } else {
                    None
                };
            }
            Some(format!(
                "{status} is neither a file system status nor an injected fault's{}",
                if target.oracle == Oracle::DataScan {
                    ""
                } else {
                    " (this sample fails open)"
                }
            ))
        }
    }
}
