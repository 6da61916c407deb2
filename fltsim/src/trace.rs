//! The trace: its events, who each is attributed to, the key to its columns, and the verifier's
//! findings.

use crate::irql;

/// What a trace event records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A kernel or Filter Manager function called by filter code, with its name.
    Call(&'static str),
    /// A callback the model made into filter code, with its name.
    Callback(&'static str),
    /// A line the filter printed to the debugger.
    Log,
    /// An operation a user-mode program issued (the test's scripted I/O).
    User,
    /// A verifier finding, or a note of the model's own test machinery (an injected fault, a
    /// hold).
    Verifier,
    /// A step Filter Manager takes on its own inside a call, such as `FltUnregisterFilter`
    /// starting to wait for the operations in flight, or its `FSCTL_SET_PURGE_FAILURE_MODE`
    /// requests and the pending and requeueing of an operation they cause. Calls are traced when
    /// they return; this marks the moment inside one, so a test can order its next step after it.
    FltMgr,
    /// The I/O manager handing a user operation's request to Filter Manager.
    IoManager,
    /// The file system below every filter: the request it completed, and with what status; and
    /// a purge it could not do (a data-scan section open), what it answered, and an operation it
    /// pended and reissued for that.
    FileSystem,
}

/// The names the trace's `who` column uses for work that is not a filter's own code. A filter's
/// code is named by the name it was loaded with ([`World::load`](crate::World::load): the
/// service name, as `fltmc filters` shows it).
pub mod who {
    /// The user-mode program: the test's scripted operations, and `fltmc`.
    pub const USER: &str = "user";
    /// The I/O manager.
    pub const IO_MANAGER: &str = "IoMgr";
    /// Filter Manager (`FltMgr.sys`): its own steps, and the callbacks it calls from no filter's
    /// code (a completion routine, `SectionNotificationCallback`, a work item).
    pub const FILTER_MANAGER: &str = "FltMgr";
    /// The file system below every filter.
    pub const FILE_SYSTEM: &str = "FS";
    /// The kernel's own work, such as starting and ending a system thread.
    pub const KERNEL: &str = "kernel";
    /// A verifier finding or a note of the model's test machinery outside any filter's code.
    pub const VERIFIER: &str = "verifier";
}

impl EventKind {
    /// The `kind` column of a trace line.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Call(_) => "call",
            Self::Callback(_) => "cb",
            Self::Log => "log",
            Self::User => "user",
            Self::Verifier => "VERIFIER",
            Self::FltMgr => "fltmgr",
            Self::IoManager => "io",
            Self::FileSystem => "fs",
        }
    }
}

/// The key to the trace's columns, printed once above a trace ([`World::print_legend`]).
///
/// [`World::print_legend`]: crate::World::print_legend
pub const LEGEND: &str = "\
== How to read the trace
Each line: seq, thread, IRQL, who, kind, what happened.
  seq       the event's place in the trace, across all threads (gaps: lines left out)
  T1, T2..  the model's number for the thread it ran on (T1: the user's thread)
  IRQL      PASSIVE = PASSIVE_LEVEL, APC = APC_LEVEL, DISPATCH = DISPATCH_LEVEL
  who       user: the user-mode program and fltmc; IoMgr: the I/O manager; FltMgr: Filter
            Manager; FS: the file system; kernel: the kernel's own threads; verifier: the
            model's checks; any other name: that filter's code, by its service name
  kind      user: an operation the program issued; io: the I/O manager sending its request
            to Filter Manager (IRP_MJ_*); cb: a callback entered or returning; call: a function
            the filter called, with its arguments and result (traced when it returns); fltmgr:
            a step Filter Manager takes on its own (DriverEntry's result, the filters below a
            filter's own I/O, FSCTL_SET_PURGE_FAILURE_MODE around a data-scan section, pending
            and requeueing an operation whose purge failed); fs: the file system completing a
            request, or failing a purge, pending and reissuing; log: a line the filter
            printed to the debugger (DbgPrint); VERIFIER: a finding, or a note of the
            model's test machinery (an injected fault, a hold)
  0x...     pointers and handles: they differ from run to run";

/// One line of the trace.
#[derive(Clone, Debug)]
pub struct Event {
    /// Order of the event across all threads.
    pub seq: u64,
    /// The model's number for the thread it happened on.
    pub thread: u32,
    /// The IRQL of that thread at the time.
    pub irql: u8,
    /// The filter (by the name it was loaded with) or the part of the system ([`who`]) it is
    /// attributed to.
    pub who: String,
    /// What kind of event.
    pub kind: EventKind,
    /// The details: arguments and result for a call, the line for a log.
    pub text: String,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let irql = match self.irql {
            irql::PASSIVE_LEVEL => "PASSIVE ",
            irql::APC_LEVEL => "APC     ",
            irql::DISPATCH_LEVEL => "DISPATCH",
            _ => "DIRQL   ",
        };
        write!(
            f,
            "{:>5} T{:<2} {irql} {:<20} {:<4} {}",
            self.seq,
            self.thread,
            self.who,
            self.kind.label(),
            self.text
        )
    }
}

/// One verifier finding: what Driver Verifier would have stopped the machine for, or a leak.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The message, naming the API and where the object came from.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
